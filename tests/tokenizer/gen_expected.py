#!/usr/bin/env python3
"""Writes tests/tokenizer/smollm2_expected.inc: reference token ids and chat
prompts for tokenizer_test.cc. NOT run by the test suite; run it by hand
(once) when the reference cases change, and commit its output:

    pip install gguf tokenizers jinja2
    python3 tests/tokenizer/gen_expected.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

Where the reference comes from (independent of TinyAI's C code):
  * Token ids: Hugging Face `tokenizers` (the Rust implementation that
    SmolLM2's own tokenizer.json runs on). The tokenizer is rebuilt from the
    GGUF's vocabulary and merges, with the pipeline of SmolLM2's
    tokenizer.json: no normalizer, pre_tokenizer Sequence[Digits(
    individual_digits=true), ByteLevel(add_prefix_space=false, use_regex=
    true)], a BPE model without dropout or unk, ByteLevel decoder, and the 17
    control tokens of the GGUF as special added tokens. (llama.cpp calls this
    pre-tokenizer "smollm": \\p{N} split first, then the GPT-2 regex.) Only
    the data comes from the GGUF; the algorithm is entirely HF's. Encoding
    with parse_special off is HF's `encode_special_tokens = True`.
  * Chat prompts: the GGUF's tokenizer.chat_template rendered by jinja2 with
    the settings transformers uses (trim_blocks, lstrip_blocks).
"""
import os
import sys

import jinja2
from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

DEFAULT = os.path.expanduser("~/.cache/tinyai/SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smollm2_expected.inc")

# (text, parse_special). Plain ASCII through emoji, whitespace runs, numbers,
# code, special tokens with parsing on and off.
CASES = [
    ("The capital of France is", False),
    ("Hello, world!", False),
    ("Héllo wörld, çà et là — naïve café, Ångström", False),
    ("日本語のテキスト、中文测试，한국어 텍스트", False),
    ("Emoji: 😀👍🏽🇺🇸 and ❤️!", False),
    ("  leading\tand\ttabs\n\n\nnew lines   trailing   ", False),
    ("Numbers: 12345, 3.14159, 1,000,000 and 2024-01-01 or x1y22z333", False),
    ("I'm sure they'll say it's fine, don't you think? We've seen it.", False),
    ("def foo(x):\n    return x ** 2  # square\n\nint main() { return 0; }\n", False),
    ("Punctuation!!! ??? ... --- (parens) [brackets] {braces} @#$%^&*", False),
    ("Россия и Україна; مرحبا بالعالم; Ελληνικά", False),
    ("a\u00a0b\u3000c\u2028d \u0085e", False),
    ("supercalifragilisticexpialidocioussupercalifragilisticexpialidocious", False),
    ("\n", False),
    ("   ", False),
    ("x\r\ny\r\n\r\n", False),
    ("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", True),
    ("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", False),
    ("<|endoftext|><repo_name>x<file_sep>", True),
    ("<|endoftext|><repo_name>x<file_sep>", False),
    ("", False),
]

CHATS = [
    ("one_user", [("user", "What is the capital of France?")], True),
    ("system_user_assistant",
     [("system", "You are terse."), ("user", "Hi!"), ("assistant", "Hello. What do you need?")], False),
    ("user_assistant_user",
     [("user", "Name a colour."), ("assistant", "Blue."), ("user", "Another one, please.")], True),
]


# Other chat template families, rendered by jinja2 too (the real templates of
# Llama 2 chat and Zephyr 7B beta). tai_chat_apply leaves BOS to its caller, so
# the rendered prompt's leading bos_token is dropped.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
OTHER_CHATS = [
    ("llama2", LLAMA2_TEMPLATE,
     [("system", "Be brief."), ("user", " Hi there "), ("assistant", "Hello!"), ("user", "Bye.")], True),
    ("zephyr", ZEPHYR_TEMPLATE,
     [("system", "Be brief."), ("user", "Hi there"), ("assistant", "Hello!"), ("user", "Bye.")], True),
]


def c_string(b: bytes) -> str:
    out = []
    for ch in b:
        c = chr(ch)
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif 32 <= ch < 127 and c != "?":
            out.append(c)
        else:
            out.append("\\%03o" % ch)  # octal: never swallows a following digit
    return '"' + "".join(out) + '"'


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    r = GGUFReader(path)

    def arr(key):
        f = r.fields[key]
        return [f.parts[i] for i in f.data]

    def s(key):
        f = r.fields[key]
        return bytes(f.parts[f.data[0]]).decode()

    tokens = [bytes(p).decode() for p in arr("tokenizer.ggml.tokens")]
    types = [int(p[0]) for p in arr("tokenizer.ggml.token_type")]
    merges = [bytes(p).decode() for p in arr("tokenizer.ggml.merges")]
    assert s("tokenizer.ggml.model") == "gpt2" and s("tokenizer.ggml.pre") == "smollm"

    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=pairs))
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False)
                           for t, ty in zip(tokens, types) if ty == 3])

    lines = ["// Generated by tests/tokenizer/gen_expected.py from SmolLM2-135M-Instruct's",
             "// GGUF with Hugging Face tokenizers and jinja2. Do not edit by hand.", "",
             "struct ExpectedCase {", "    const char *text;", "    size_t len;",
             "    bool parse_special;", "    std::vector<int32_t> ids;", "};", "",
             "static const ExpectedCase kSmolLM2Cases[] = {"]
    for text, special in CASES:
        tk.encode_special_tokens = not special
        ids = tk.encode(text, add_special_tokens=False).ids
        if not special:
            assert tk.decode(ids, skip_special_tokens=False) == text
        b = text.encode()
        lines.append("    {%s, %d, %s, {%s}}," % (c_string(b), len(b), "true" if special else "false",
                                                  ", ".join(map(str, ids))))
    lines.append("};")
    lines.append("")

    tmpl_src = s("tokenizer.chat_template")
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    tmpl = env.from_string(tmpl_src)
    lines += ["struct ExpectedChat {", "    const char *name;",
              "    std::vector<std::pair<const char *, const char *>> msgs;",
              "    bool add_assistant;", "    const char *prompt;", "};", "",
              "static const ExpectedChat kSmolLM2Chats[] = {"]
    for name, msgs, gen in CHATS:
        out = tmpl.render(messages=[{"role": a, "content": c} for a, c in msgs],
                          add_generation_prompt=gen, bos_token=tokens[1], eos_token=tokens[2])
        m = ", ".join("{%s, %s}" % (c_string(a.encode()), c_string(c.encode())) for a, c in msgs)
        lines.append("    {%s, {%s}, %s, %s}," % (c_string(name.encode()), m,
                                                   "true" if gen else "false", c_string(out.encode())))
    lines.append("};")
    lines += ["", "struct ExpectedOtherChat {", "    const char *name;", "    const char *tmpl;",
              "    std::vector<std::pair<const char *, const char *>> msgs;",
              "    bool add_assistant;", "    const char *prompt;", "};", "",
              "// Rendered with bos_token <s>, eos_token </s>; the leading <s> dropped.",
              "static const ExpectedOtherChat kOtherChats[] = {"]
    for name, src, msgs, gen in OTHER_CHATS:
        out = env.from_string(src).render(messages=[{"role": a, "content": c} for a, c in msgs],
                                          add_generation_prompt=gen, bos_token="<s>", eos_token="</s>")
        if out.startswith("<s>"):
            out = out[3:]
        m = ", ".join("{%s, %s}" % (c_string(a.encode()), c_string(c.encode())) for a, c in msgs)
        lines.append("    {%s, %s, {%s}, %s, %s}," % (c_string(name.encode()), c_string(src.encode()), m,
                                                       "true" if gen else "false", c_string(out.encode())))
    lines.append("};")
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
