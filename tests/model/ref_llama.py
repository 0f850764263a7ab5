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

Other architectures, from their published definitions (the Hugging Face
models' code, restated here, not TinyAI's):
  qwen2   q, k, v biases; RoPE on the halves (x[:d/2], x[d/2:]) ("rotate_half")
  qwen3   RMS norm of each q and k head (attn_q_norm, attn_k_norm) before RoPE;
          rotate_half; heads of attention.key_length
  gemma3  embeddings times sqrt(n_embd); q/k head norms; RMS norm of the
          attention and feed-forward outputs before their residual adds
          (post_attention_norm, post_ffw_norm); GELU (tanh) gate; rotate_half;
          blocks l with (l + 1) % 6 != 0 attend only the last
          attention.sliding_window positions and use RoPE base 10000, the
          others the file's base (GGUF's norm weights already hold 1 + w);
          where final_logit_softcapping c is given, logits are c tanh(l / c)
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


def rope_half(x, n_heads, head_dim, rot_dim, pos, base):
    """rotate_half: element i pairs with i + rot_dim / 2."""
    x = x.reshape(n_heads, head_dim).copy()
    half = rot_dim // 2
    theta = pos * base ** (-np.arange(0, rot_dim, 2) / rot_dim)
    c, s = np.cos(theta), np.sin(theta)
    a, b = x[:, :half].copy(), x[:, half:rot_dim].copy()
    x[:, :half] = a * c - b * s
    x[:, half:rot_dim] = b * c + a * s
    return x.reshape(-1)


def head_norm(x, n_heads, head_dim, w, eps):
    x = x.reshape(n_heads, head_dim)
    return (x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + eps) * w).reshape(-1)


def gelu_tanh(g):
    return 0.5 * g * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (g + 0.044715 * g ** 3)))


def forward(kv, t, tokens, every=False):
    a = kv.get("general.architecture", "llama")
    if a not in ("llama", "qwen2", "qwen3", "gemma3"):
        raise SystemExit(f"architecture {a} not in this reference")
    L = kv[a + ".block_count"]
    E = kv[a + ".embedding_length"]
    H = kv[a + ".attention.head_count"]
    HKV = kv.get(a + ".attention.head_count_kv", H)
    hd = kv.get(a + ".attention.key_length", E // H)
    rot = kv.get(a + ".rope.dimension_count", hd)
    base = kv.get(a + ".rope.freq_base", 10000.0)
    eps = kv.get(a + ".attention.layer_norm_rms_epsilon", 1e-5)
    window = kv.get(a + ".attention.sliding_window", 0) if a == "gemma3" else 0
    rot_fn = rope if a == "llama" else rope_half
    cap = kv.get(a + ".final_logit_softcapping", 0.0) if a == "gemma3" else 0.0

    def head(y):
        lg = out_w @ rmsnorm(y, t["output_norm.weight"], eps)
        return cap * np.tanh(lg / cap) if cap > 0 else lg

    emb = t["token_embd.weight"]
    out_w = t.get("output.weight", emb)
    kc = [[] for _ in range(L)]
    vc = [[] for _ in range(L)]
    x = None
    logits = []
    for pos, tok in enumerate(tokens):
        x = emb[tok].copy()
        if a == "gemma3":
            x = x * np.sqrt(E)
        for l in range(L):
            p = f"blk.{l}."
            sliding = a == "gemma3" and (l + 1) % 6 != 0
            lbase = 10000.0 if sliding else base
            xb = rmsnorm(x, t[p + "attn_norm.weight"], eps)
            q = t[p + "attn_q.weight"] @ xb
            k = t[p + "attn_k.weight"] @ xb
            v = t[p + "attn_v.weight"] @ xb
            if a == "qwen2":
                q, k, v = q + t[p + "attn_q.bias"], k + t[p + "attn_k.bias"], v + t[p + "attn_v.bias"]
            if a in ("qwen3", "gemma3"):
                q = head_norm(q, H, hd, t[p + "attn_q_norm.weight"], eps)
                k = head_norm(k, HKV, hd, t[p + "attn_k_norm.weight"], eps)
            q = rot_fn(q, H, hd, rot, pos, lbase)
            k = rot_fn(k, HKV, hd, rot, pos, lbase)
            kc[l].append(k.reshape(HKV, hd))
            vc[l].append(v.reshape(HKV, hd))
            first = max(0, pos + 1 - window) if sliding else 0
            K = np.stack(kc[l][first:])  # [positions, HKV, hd]
            V = np.stack(vc[l][first:])
            att = np.zeros(H * hd)
            qh = q.reshape(H, hd)
            for h in range(H):
                g = h // (H // HKV)
                s = K[:, g, :] @ qh[h] / np.sqrt(hd)
                s = np.exp(s - s.max())
                s /= s.sum()
                att[h * hd:(h + 1) * hd] = s @ V[:, g, :]
            o = t[p + "attn_output.weight"] @ att
            if a == "gemma3":
                o = rmsnorm(o, t[p + "post_attention_norm.weight"], eps)
            x = x + o
            xb = rmsnorm(x, t[p + "ffn_norm.weight"], eps)
            g = t[p + "ffn_gate.weight"] @ xb
            u = t[p + "ffn_up.weight"] @ xb
            act = gelu_tanh(g) if a == "gemma3" else g / (1.0 + np.exp(-g))
            f = t[p + "ffn_down.weight"] @ (act * u)
            if a == "gemma3":
                f = rmsnorm(f, t[p + "post_ffw_norm.weight"], eps)
            x = x + f
        if every:
            logits.append(head(x))
    if every:
        return logits
    return head(x)


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
