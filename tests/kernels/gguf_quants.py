"""The gguf Python package's (de)quantizers as an independent reference for
TinyAI's weight types (tests/kernels/unit_types_test.cc).

  gguf_quants.py dequantize TYPE ROWS IN OUT   GGUF blocks -> float32
  gguf_quants.py quantize TYPE ROWS IN OUT     float32 -> GGUF blocks
"""
import sys

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize


def main():
    mode, name, rows, src, dst = sys.argv[1:6]
    qtype = GGMLQuantizationType[name]
    rows = int(rows)
    if mode == "dequantize":
        data = np.fromfile(src, dtype=np.uint8).reshape(rows, -1)
        dequantize(data, qtype).astype(np.float32).tofile(dst)
    else:
        data = np.fromfile(src, dtype=np.float32).reshape(rows, -1)
        np.ascontiguousarray(quantize(data, qtype)).tofile(dst)


if __name__ == "__main__":
    main()
