#!/usr/bin/env python3
"""Independent reference for TinyAI's forward pass (test-time tool).

Reads a Llama GGUF (F32, F16, Q8_0, Q4_0, Q4_1 tensors dequantized here, the other types by the
gguf package's dequantizers where it is installed) using its own small GGUF parser (no
TinyAI code), runs the forward pass in float64 NumPy for a token sequence and
prints the logits of the last token, one per line.

    ref_llama.py MODEL.gguf TOKEN [TOKEN ...]
    ref_llama.py MODEL.gguf --ppl CTX BOS TOKEN ...   (perplexity as llama.cpp's tool
                                                     computes it; BOS -1: none)

RoPE follows GGUF's llama layout: adjacent pairs (2i, 2i+1) of each head are
rotated (the converter permuted q/k weights for it).
"""
import struct
import sys

import numpy as np


def _f16(raw, col):
    return raw[:, col:col + 2].copy().view("<f2").astype(np.float64)


def _nibbles(qs):
    # element j in the low nibble of byte j, element j + 16 in the high one
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float64)


def deq_q4_0(raw):
    return _f16(raw, 0) * (_nibbles(raw[:, 2:18]) - 8.0)


def deq_q4_1(raw):
    return _f16(raw, 0) * _nibbles(raw[:, 4:20]) + _f16(raw, 2)


def deq_q8_0(raw):
    return _f16(raw, 0) * raw[:, 2:34].view(np.int8).astype(np.float64)


# ggml type id -> (bytes per 32-element block, dequantizer)
DEQUANT = {2: (18, deq_q4_0), 3: (20, deq_q4_1), 8: (34, deq_q8_0)}


def read_gguf(path):
    data = open(path, "rb").read()
    off = 0

    def take(fmt):
        nonlocal off
        vals = struct.unpack_from("<" + fmt, data, off)
        off += struct.calcsize("<" + fmt)
        return vals

    def string():
        nonlocal off
        (n,) = take("Q")
        s = data[off:off + n].decode("utf-8", errors="replace")
        off += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            (et, n) = take("IQ")
            return [value(et) for _ in range(n)]
        return take(scalar[t])[0]

    magic, version = take("4sI")
    assert magic == b"GGUF" and version in (2, 3), (magic, version)
    n_tensors, n_kv = take("QQ")
    kv = {}
    for _ in range(n_kv):
        key = string()
        (t,) = take("I")
        kv[key] = value(t)
    infos = []
    for _ in range(n_tensors):
        name = string()
        (nd,) = take("I")
        dims = take("Q" * nd)
        (ttype, toff) = take("IQ")
        infos.append((name, dims, ttype, toff))
    align = kv.get("general.alignment", 32)
    start = (off + align - 1) // align * align
    tensors = {}
    for name, dims, ttype, toff in infos:
        count = int(np.prod(dims))
        if ttype == 0:
            arr = np.frombuffer(data, dtype="<f4", count=count, offset=start + toff)
        elif ttype == 1:
            arr = np.frombuffer(data, dtype="<f2", count=count, offset=start + toff)
        elif ttype in DEQUANT:
            block_bytes, fn = DEQUANT[ttype]
            nb = count // 32
            raw = np.frombuffer(data, dtype=np.uint8, count=nb * block_bytes, offset=start + toff)
            arr = fn(raw.reshape(nb, block_bytes)).reshape(-1)
        else:
            # the other types through the gguf package's own dequantizers (an
            # implementation independent of TinyAI's; in the test venv)
            try:
                from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
                from gguf.quants import dequantize
            except ImportError:
                raise SystemExit(f"{name}: tensor type {ttype} needs the gguf package")
            qt = GGMLQuantizationType(ttype)
            block, block_bytes = GGML_QUANT_SIZES[qt]
            raw = np.frombuffer(data, dtype=np.uint8, count=count // block * block_bytes,
                                offset=start + toff)
            arr = dequantize(raw.reshape(-1, dims[0] // block * block_bytes), qt).reshape(-1)
        # GGUF dims are innermost first; numpy shape is outermost first.
        tensors[name] = arr.astype(np.float64).reshape(tuple(reversed(dims)))
    return kv, tensors


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x) + eps) * w


def rope(x, n_heads, head_dim, rot_dim, pos, base):
    x = x.reshape(n_heads, head_dim).copy()
    for i in range(0, rot_dim, 2):
        theta = pos * base ** (-i / rot_dim)
        c, s = np.cos(theta), np.sin(theta)
        a, b = x[:, i].copy(), x[:, i + 1].copy()
        x[:, i] = a * c - b * s
        x[:, i + 1] = a * s + b * c
    return x.reshape(-1)


def forward(kv, t, tokens, every=False):
    L = kv["llama.block_count"]
    E = kv["llama.embedding_length"]
    H = kv["llama.attention.head_count"]
    HKV = kv.get("llama.attention.head_count_kv", H)
    hd = E // H
    rot = kv.get("llama.rope.dimension_count", hd)
    base = kv.get("llama.rope.freq_base", 10000.0)
    eps = kv.get("llama.attention.layer_norm_rms_epsilon", 1e-5)
    emb = t["token_embd.weight"]
    out_w = t.get("output.weight", emb)
    kc = [[] for _ in range(L)]
    vc = [[] for _ in range(L)]
    x = None
    logits = []
    for pos, tok in enumerate(tokens):
        x = emb[tok].copy()
        for l in range(L):
            p = f"blk.{l}."
            xb = rmsnorm(x, t[p + "attn_norm.weight"], eps)
            q = rope(t[p + "attn_q.weight"] @ xb, H, hd, rot, pos, base)
            k = rope(t[p + "attn_k.weight"] @ xb, HKV, hd, rot, pos, base)
            v = t[p + "attn_v.weight"] @ xb
            kc[l].append(k.reshape(HKV, hd))
            vc[l].append(v.reshape(HKV, hd))
            K = np.stack(kc[l])  # [pos+1, HKV, hd]
            V = np.stack(vc[l])
            att = np.zeros(E)
            qh = q.reshape(H, hd)
            for h in range(H):
                g = h // (H // HKV)
                s = K[:, g, :] @ qh[h] / np.sqrt(hd)
                s = np.exp(s - s.max())
                s /= s.sum()
                att[h * hd:(h + 1) * hd] = s @ V[:, g, :]
            x = x + t[p + "attn_output.weight"] @ att
            xb = rmsnorm(x, t[p + "ffn_norm.weight"], eps)
            g = t[p + "ffn_gate.weight"] @ xb
            u = t[p + "ffn_up.weight"] @ xb
            x = x + t[p + "ffn_down.weight"] @ (g / (1.0 + np.exp(-g)) * u)
        if every:
            logits.append(out_w @ rmsnorm(x, t["output_norm.weight"], eps))
    if every:
        return logits
    x = rmsnorm(x, t["output_norm.weight"], eps)
    return out_w @ x


def perplexity(kv, t, tokens, ctx, bos):
    """llama.cpp's perplexity: whole chunks of ctx tokens, BOS in place of
    each chunk's first token (bos >= 0), the second half of each scored."""
    nll, count = 0.0, 0
    first = ctx // 2
    for c in range(len(tokens) // ctx):
        toks = list(tokens[c * ctx:(c + 1) * ctx])
        if bos >= 0:
            toks[0] = bos
        logits = forward(kv, t, toks, every=True)
        for j in range(first, ctx - 1):
            l = logits[j]
            m = l.max()
            nll += m + np.log(np.exp(l - m).sum()) - l[toks[j + 1]]
            count += 1
    return np.exp(nll / count), nll, count


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    kv, tensors = read_gguf(sys.argv[1])
    if sys.argv[2] == "--ppl":  # --ppl CTX BOS TOKEN...: perplexity, nll, count
        ctx, bos = int(sys.argv[3]), int(sys.argv[4])
        ppl, nll, count = perplexity(kv, tensors, [int(a) for a in sys.argv[5:]], ctx, bos)
        print(repr(float(ppl)), repr(float(nll)), count)
        return
    tokens = [int(a) for a in sys.argv[2:]]
    for v in forward(kv, tensors, tokens):
        print(repr(float(v)))


if __name__ == "__main__":
    main()
