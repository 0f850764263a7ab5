// Tokenizer tests on small vocabularies written as GGUF files by the test:
// SentencePiece-style BPE (scores, byte fallback, U+2581, space prefix), the
// byte-level pre-tokenizer families (gpt2, smollm, llama-bpe), verbatim
// tokens, chat template families, and malformed metadata.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "runtime/format/model_file.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/common/test_paths.h"
#include "tests/tokenizer/gguf_builder.h"

namespace {

#include "tests/tokenizer/smollm2_expected.inc"

using tai_test::GgufBuilder;

// A vocabulary to write: every field optional so that tests can break it.
struct Vocab {
    std::string model = "gpt2";
    std::string pre;  // empty: no tokenizer.ggml.pre
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    std::vector<float> scores;
    std::vector<std::string> merges;
    bool has_tokens = true, has_types = true, has_scores = false, has_merges = true;
    int64_t bos = -1, eos = -1;
    std::string chat_template;
    void (*extra)(GgufBuilder &) = nullptr;

    int32_t Add(const std::string &text, int32_t type = 1, float score = 0) {
        tokens.push_back(text);
        types.push_back(type);
        scores.push_back(score);
        return (int32_t)tokens.size() - 1;
    }
    GgufBuilder Build() const {
        GgufBuilder b;
        b.Str("general.architecture", "llama");
        if (!model.empty()) b.Str("tokenizer.ggml.model", model);
        if (!pre.empty()) b.Str("tokenizer.ggml.pre", pre);
        if (has_tokens) b.StrArr("tokenizer.ggml.tokens", tokens);
        if (has_types) b.I32Arr("tokenizer.ggml.token_type", types);
        if (has_scores) b.F32Arr("tokenizer.ggml.scores", scores);
        if (has_merges && model == "gpt2") b.StrArr("tokenizer.ggml.merges", merges);
        if (bos >= 0) b.U32("tokenizer.ggml.bos_token_id", (uint32_t)bos);
        if (eos >= 0) b.U32("tokenizer.ggml.eos_token_id", (uint32_t)eos);
        if (!chat_template.empty()) b.Str("tokenizer.chat_template", chat_template);
        if (extra) extra(b);
        return b;
    }
};

// Opens the vocabulary through the real GGUF reader and loads a tokenizer.
struct Loaded {
    tai_model_file *mf = nullptr;
    tai_tokenizer *tok = nullptr;
    TinyAIStatus st = TINYAI_OK;
    std::string msg;
    std::string path;

    explicit Loaded(const Vocab &v) : Loaded(v.Build()) {}
    explicit Loaded(const GgufBuilder &b) {
        path = tai_test::TempPath(".gguf");
        if (!b.Write(path)) {
            st = TINYAI_ERR_IO;
            msg = "cannot write " + path;
            return;
        }
        st = tai_model_file_open(path.c_str(), false, &mf);
        if (st != TINYAI_OK) {
            msg = std::string("open: ") + tinyaiLastErrorMessage();
            return;
        }
        st = tai_tokenizer_load(mf, &tok);
        msg = tinyaiLastErrorMessage();
    }
    ~Loaded() {
        tai_tokenizer_free(tok);
        tai_model_file_close(mf);
        std::remove(path.c_str());
    }

    std::vector<int32_t> Encode(const std::string &s, bool special = false) {
        std::vector<int32_t> ids(s.size() * 4 + 8);
        size_t n = 0;
        TinyAIStatus r = tai_tokenize(tok, s.data(), s.size(), special, ids.data(), ids.size(), &n);
        EXPECT_EQ(r, TINYAI_OK) << tinyaiLastErrorMessage();
        ids.resize(r == TINYAI_OK ? n : 0);
        return ids;
    }
    std::string Decode(const std::vector<int32_t> &ids, bool special = false) {
        std::string out(ids.size() * 64 + 1, '\0');
        size_t len = 0;
        EXPECT_EQ(tai_detokenize(tok, ids.data(), ids.size(), special, &out[0], out.size(), &len),
                  TINYAI_OK)
            << tinyaiLastErrorMessage();
        out.resize(len);
        return out;
    }
};

// ---- Byte-level BPE ---------------------------------------------------------

// GPT-2's bytes_to_unicode, written the way the original Python does it.
std::string ByteSymbol(int byte) {
    std::vector<int> bs, cs;
    for (int b = '!'; b <= '~'; b++) bs.push_back(b);
    for (int b = 0xA1; b <= 0xAC; b++) bs.push_back(b);
    for (int b = 0xAE; b <= 0xFF; b++) bs.push_back(b);
    cs = bs;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool in = false;
        for (int x : bs) in |= x == b;
        if (!in) {
            bs.push_back(b);
            cs.push_back(256 + n++);
        }
    }
    int cp = 0;
    for (size_t i = 0; i < bs.size(); i++) {
        if (bs[i] == byte) cp = cs[i];
    }
    std::string s;
    if (cp < 0x80) {
        s += (char)cp;
    } else {
        s += (char)(0xC0 | (cp >> 6));
        s += (char)(0x80 | (cp & 0x3F));
    }
    return s;
}

// Ids 0..255 are the byte symbols (id == byte); then a few merged tokens and
// specials.
enum : int32_t {
    kT12 = 256, kT123, kT45, kT12345, kXyz, kAa, kEot, kImStart, kImEnd, kTool, kSpaceA
};

Vocab ByteVocab(const std::string &pre) {
    Vocab v;
    v.pre = pre;
    for (int b = 0; b < 256; b++) v.Add(ByteSymbol(b));
    v.Add("12");
    v.Add("123");
    v.Add("45");
    v.Add("12345");
    v.Add("xyz");  // a token no merge makes
    v.Add("aa");
    v.Add("<|endoftext|>", 3);
    v.Add("<|im_start|>", 3);
    v.Add("<|im_end|>", 3);
    v.Add("<tool>", 4);  // user-defined: matched even without parse_special
    v.Add(ByteSymbol(' ') + "a");
    v.merges = {"1 2", "12 3", "4 5", "123 45", "a a", ByteSymbol(' ') + " a"};
    v.eos = kEot;
    return v;
}

TEST(ByteLevelBpe, Gpt2PatternKeepsDigitRunsTogether) {
    // llama.cpp's converter writes "gpt-2" (and "phi-2" for the same
    // pattern); files TinyAI wrote before say "gpt2"
    for (const char *pre : {"gpt-2", "gpt2", "phi-2"}) {
        SCOPED_TRACE(pre);
        Loaded t(ByteVocab(pre));
        ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
        EXPECT_EQ(t.Encode("12345"), (std::vector<int32_t>{kT12345}));
        EXPECT_EQ(t.Encode("xyz"), (std::vector<int32_t>{'x', 'y', 'z'}));
        // Equal ranks: the leftmost pair merges first.
        EXPECT_EQ(t.Encode("aaa"), (std::vector<int32_t>{kAa, 'a'}));
        EXPECT_EQ(t.Encode(" a a"), (std::vector<int32_t>{kSpaceA, kSpaceA}));
        EXPECT_EQ(t.Decode(t.Encode("x 12345 aaa")), "x 12345 aaa");
    }
}

TEST(ByteLevelBpe, UnknownPreIsRefusedByName) {
    Loaded t(ByteVocab("gpt-3-turbo"));
    EXPECT_EQ(t.st, TINYAI_ERR_UNSUPPORTED);
    EXPECT_NE(t.msg.find("gpt-3-turbo"), std::string::npos) << t.msg;
}

TEST(ByteLevelBpe, MissingPreMeansGpt2) {
    Loaded t(ByteVocab(""));
    ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
    EXPECT_EQ(t.Encode("12345"), (std::vector<int32_t>{kT12345}));
    Loaded d(ByteVocab("default"));
    ASSERT_EQ(d.st, TINYAI_OK) << d.msg;
    EXPECT_EQ(d.Encode("12345"), (std::vector<int32_t>{kT12345}));
}

TEST(ByteLevelBpe, SmolLMSplitsEveryDigit) {
    Loaded t(ByteVocab("smollm"));
    ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
    EXPECT_EQ(t.Encode("12345"), (std::vector<int32_t>{'1', '2', '3', '4', '5'}));
    // The space before a digit stays a piece of its own.
    EXPECT_EQ(t.Encode("a 1"), (std::vector<int32_t>{'a', ' ', '1'}));
}

TEST(ByteLevelBpe, Llama3GroupsThreeDigitsAndUsesWholeTokens) {
    for (const char *pre : {"llama-bpe", "llama3"}) {
        SCOPED_TRACE(pre);
        Loaded t(ByteVocab(pre));
        ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
        EXPECT_EQ(t.Encode("12345"), (std::vector<int32_t>{kT123, kT45}));
        // ignore_merges: a piece that is a token is taken whole.
        EXPECT_EQ(t.Encode("xyz"), (std::vector<int32_t>{kXyz}));
        EXPECT_TRUE(tai_tokenizer_add_bos(t.tok));
    }
}

TEST(ByteLevelBpe, Qwen2SplitsEveryDigitAndKeepsMerges) {
    for (const char *pre : {"qwen2", "deepseek-r1-qwen"}) {
        SCOPED_TRACE(pre);
        Loaded t(ByteVocab(pre));
        ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
        EXPECT_EQ(t.Encode("12345"), (std::vector<int32_t>{'1', '2', '3', '4', '5'}));
        // merges are used (no whole-token shortcut as in Llama 3)
        EXPECT_EQ(t.Encode("xyz"), (std::vector<int32_t>{'x', 'y', 'z'}));
        EXPECT_FALSE(tai_tokenizer_add_bos(t.tok));
    }
}

TEST(ByteLevelBpe, VerbatimTokens) {
    Loaded t(ByteVocab("gpt2"));
    ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
    // Control tokens only with parse_special; user-defined ones always.
    EXPECT_EQ(t.Encode("<|im_start|>x<tool>", true), (std::vector<int32_t>{kImStart, 'x', kTool}));
    std::vector<int32_t> off = t.Encode("<|im_start|>x<tool>", false);
    EXPECT_EQ(off.back(), kTool);
    EXPECT_EQ(off.front(), '<');
    EXPECT_EQ(t.Decode(off), "<|im_start|>x<tool>");
    EXPECT_EQ(t.Decode({kImStart, 'x'}, false), "x");
    EXPECT_EQ(t.Decode({kImStart, 'x'}, true), "<|im_start|>x");
    EXPECT_TRUE(tai_tokenizer_is_eog(t.tok, kEot));
    EXPECT_TRUE(tai_tokenizer_is_eog(t.tok, kImEnd));
    EXPECT_FALSE(tai_tokenizer_is_eog(t.tok, kImStart));
    EXPECT_FALSE(tai_tokenizer_add_bos(t.tok));
}

// ---- SentencePiece-style BPE ------------------------------------------------

const std::string kSp = "\xe2\x96\x81";  // U+2581

enum : int32_t {
    kUnk = 0, kBos = 1, kEos = 2, kByte0 = 3,
    kSpace = 259, kH, kE, kL, kO, kW, kR, kD, kLl, kLlo, kHe, kHello, kSpHello, kSpW, kOr, kSpWor,
    kLd, kSpWorld, kTag
};

Vocab SpmVocab(bool byte_tokens = true) {
    Vocab v;
    v.model = "llama";
    v.has_scores = true;
    v.Add("<unk>", 2);
    v.Add("<s>", 3);
    v.Add("</s>", 3);
    char buf[8];
    for (int b = 0; b < 256; b++) {
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        v.Add(byte_tokens ? buf : std::string("unused") + std::to_string(b), byte_tokens ? 6 : 5);
    }
    v.Add(kSp, 1, -1.0f);
    for (const char *c : {"h", "e", "l", "o", "w", "r", "d"}) v.Add(c, 1, -2.0f);
    v.Add("ll", 1, -1.5f);
    v.Add("llo", 1, -1.2f);
    v.Add("he", 1, -1.6f);
    v.Add("hello", 1, -1.0f);
    v.Add(kSp + "hello", 1, -0.5f);
    v.Add(kSp + "w", 1, -2.5f);
    v.Add("or", 1, -2.6f);
    v.Add(kSp + "wor", 1, -2.2f);
    v.Add("ld", 1, -2.7f);
    v.Add(kSp + "world", 1, -0.4f);
    v.Add("<tag>", 4);
    return v;
}

TEST(SentencePieceBpe, HighestScoreFirst) {
    Loaded t(SpmVocab());
    ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
    // ll, llo, he, hello, ▁hello, ▁w, or, ▁wor, ld, ▁world: each step the
    // best-scoring pair in vocabulary.
    EXPECT_EQ(t.Encode("hello world"), (std::vector<int32_t>{kSpHello, kSpWorld}));
    EXPECT_EQ(t.Decode({kSpHello, kSpWorld}), "hello world");
    // Equal scores: leftmost first.
    EXPECT_EQ(t.Encode("lll"), (std::vector<int32_t>{kSpace, kLl, kL}));
    // A leading space is kept: the prefix space is the one dropped on decode.
    EXPECT_EQ(t.Encode(" hello"), (std::vector<int32_t>{kSpace, kSpHello}));
    EXPECT_EQ(t.Decode(t.Encode(" hello")), " hello");
}

TEST(SentencePieceBpe, ByteFallback) {
    Loaded t(SpmVocab());
    ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
    EXPECT_EQ(t.Encode("h\xc3\xa9"),
              (std::vector<int32_t>{kSpace, kH, kByte0 + 0xC3, kByte0 + 0xA9}));
    const std::string cases[] = {"h\xc3\xa9llo w\xc3\xb6rld", "\xff\xfe raw",
                                 "emoji \xf0\x9f\x98\x80!", "tabs\tand\nnewlines  ",
                                 "\xe4\xbd\xa0\xe5\xa5\xbd"};
    for (const std::string &s : cases) {
        SCOPED_TRACE(s);
        EXPECT_EQ(t.Decode(t.Encode(s)), s);
    }
    size_t len;
    const char *p = tai_token_piece(t.tok, kByte0 + 0xC3, false, &len);
    EXPECT_EQ(std::string(p, len), "\xc3");
    p = tai_token_piece(t.tok, kSpHello, false, &len);
    EXPECT_EQ(std::string(p, len), " hello");
}

TEST(SentencePieceBpe, UnknownWithoutByteTokens) {
    Loaded t(SpmVocab(false));
    ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
    std::vector<int32_t> ids = t.Encode("h\xc3\xa9");
    EXPECT_EQ(ids, (std::vector<int32_t>{kSpace, kH, kUnk, kUnk}));
}

TEST(SentencePieceBpe, SpecialTokensAndSpacePrefix) {
    Loaded t(SpmVocab());
    ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
    EXPECT_EQ(tai_tokenizer_bos(t.tok), kBos);
    EXPECT_EQ(tai_tokenizer_eos(t.tok), kEos);
    EXPECT_TRUE(tai_tokenizer_add_bos(t.tok));
    EXPECT_TRUE(tai_tokenizer_is_eog(t.tok, kEos));
    // After a special token the text gets its prefix space again.
    EXPECT_EQ(t.Encode("<s>hello", true), (std::vector<int32_t>{kBos, kSpHello}));
    EXPECT_EQ(t.Encode("<s>hello", false),
              (std::vector<int32_t>{kSpace, kByte0 + '<', kByte0 + 's', kByte0 + '>', kHello}));
    EXPECT_EQ(t.Encode("<tag>hello", false), (std::vector<int32_t>{kTag, kSpHello}));
    EXPECT_EQ(t.Decode({kBos, kSpHello, kSpWorld}, false), "hello world");
    EXPECT_EQ(t.Decode({kBos, kSpHello}, true), "<s> hello");

    Vocab nv = SpmVocab();
    nv.extra = [](GgufBuilder &b) { b.Bool("tokenizer.ggml.add_space_prefix", false); };
    Loaded n(nv);
    ASSERT_EQ(n.st, TINYAI_OK) << n.msg;
    EXPECT_EQ(n.Encode("hello"), (std::vector<int32_t>{kHello}));
    EXPECT_EQ(n.Decode(n.Encode(" hello world")), " hello world");
}

TEST(SentencePieceBpe, LongText) {
    Loaded t(SpmVocab());
    ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
    std::string s;
    while (s.size() < 100000) s += "hello world lll h\xc3\xa9 ";
    std::vector<int32_t> ids = t.Encode(s);
    EXPECT_EQ(t.Decode(ids), s);
    std::string one(100000, 'l');
    EXPECT_EQ(t.Decode(t.Encode(one)), one);
}

// ---- Chat templates --------------------------------------------------------

std::string Chat(Loaded &t, std::vector<tai_chat_message> msgs, bool add_assistant,
                 TinyAIStatus want = TINYAI_OK) {
    char *out = nullptr;
    TinyAIStatus st = tai_chat_apply(t.mf, t.tok, msgs.data(), msgs.size(), add_assistant, &out);
    EXPECT_EQ(st, want) << tinyaiLastErrorMessage();
    std::string s = out ? out : "";
    free(out);
    return s;
}

TEST(ChatTemplate, OtherFamiliesMatchJinja) {
    for (const ExpectedOtherChat &c : kOtherChats) {
        SCOPED_TRACE(c.name);
        Vocab v = SpmVocab();
        v.chat_template = c.tmpl;
        Loaded t(v);
        ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
        std::vector<tai_chat_message> msgs;
        for (const auto &m : c.msgs) msgs.push_back({m.first, m.second});
        EXPECT_EQ(Chat(t, msgs, c.add_assistant), std::string(c.prompt));
    }
}

TEST(ChatTemplate, ChatMLWithoutTemplateFromVocabulary) {
    Loaded t(ByteVocab("gpt2"));
    ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
    EXPECT_EQ(Chat(t, {{"user", "Hi"}}, true),
              "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, ChatMLDefaultSystemFromTemplate) {
    // Qwen 2 style: the default system message inside a Jinja string with \n
    // escapes; a system message built from content is not taken.
    Vocab v = ByteVocab("gpt2");
    v.chat_template =
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\n' + tools_text + '<|im_end|>' }}"
        "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    Loaded t(v);
    ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
    EXPECT_EQ(Chat(t, {{"user", "Hi"}}, false),
              "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\nHi<|im_end|>\n");
    EXPECT_EQ(Chat(t, {{"system", "S"}, {"user", "Hi"}}, false),
              "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplate, Unsupported) {
    Loaded t(SpmVocab());  // no template, no <|im_start|>
    ASSERT_EQ(t.st, TINYAI_OK) << t.msg;
    Chat(t, {{"user", "Hi"}}, true, TINYAI_ERR_UNSUPPORTED);
    Vocab v = SpmVocab();
    v.chat_template = "{{ messages | tojson }}";
    Loaded u(v);
    ASSERT_EQ(u.st, TINYAI_OK) << u.msg;
    Chat(u, {{"user", "Hi"}}, true, TINYAI_ERR_UNSUPPORTED);
}

// ---- Malformed metadata ----------------------------------------------------

void ExpectLoadError(const Vocab &v, TinyAIStatus want, const std::string &needle) {
    Loaded t(v);
    EXPECT_EQ(t.st, want) << t.msg;
    EXPECT_EQ(t.tok, nullptr);
    EXPECT_NE(t.msg.find(needle), std::string::npos) << "message: " << t.msg;
}

TEST(MalformedMetadata, MissingOrUnknownModel) {
    Vocab v = ByteVocab("gpt2");
    v.model = "";
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "tokenizer.ggml.model");
    v.model = "bert";
    ExpectLoadError(v, TINYAI_ERR_UNSUPPORTED, "bert");
    v = ByteVocab("gpt2");
    v.model = "";
    v.extra = [](GgufBuilder &b) { b.U32("tokenizer.ggml.model", 7); };
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "tokenizer.ggml.model");
}

TEST(MalformedMetadata, UnknownPre) {
    ExpectLoadError(ByteVocab("tekken-9"), TINYAI_ERR_UNSUPPORTED, "tekken-9");
}

TEST(MalformedMetadata, Tokens) {
    Vocab v = ByteVocab("gpt2");
    v.has_tokens = false;
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "tokenizer.ggml.tokens");
    v = ByteVocab("gpt2");
    v.tokens.clear();
    v.has_types = false;
    v.has_merges = false;
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "tokenizer.ggml.tokens");
    v = ByteVocab("gpt2");
    v.has_tokens = false;
    v.extra = [](GgufBuilder &b) { b.I32Arr("tokenizer.ggml.tokens", {1, 2, 3}); };
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "tokenizer.ggml.tokens");
}

TEST(MalformedMetadata, CountsMustMatch) {
    Vocab v = ByteVocab("gpt2");
    v.types.pop_back();
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "token_type");
    v = SpmVocab();
    v.scores.push_back(0);
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "scores");
    v = ByteVocab("gpt2");
    v.types[5] = 42;
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "type");
}

TEST(MalformedMetadata, Merges) {
    Vocab v = ByteVocab("gpt2");
    v.has_merges = false;
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "tokenizer.ggml.merges");
    v = ByteVocab("gpt2");
    v.merges.push_back("zz q");  // "zz" is no token
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "merge 6");
    v = ByteVocab("gpt2");
    v.merges.push_back("x y");  // "xy" is no token
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "merged");
    v = ByteVocab("gpt2");
    v.merges.push_back("xy");  // not two tokens
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "merge 6");
}

TEST(MalformedMetadata, SpecialIds) {
    Vocab v = ByteVocab("gpt2");
    v.bos = 100000;
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "bos_token_id");
    v = ByteVocab("gpt2");
    v.extra = [](GgufBuilder &b) { b.Str("tokenizer.ggml.eos_token_id", "2"); };
    v.eos = -1;
    ExpectLoadError(v, TINYAI_ERR_FORMAT, "eos_token_id");
}

TEST(MalformedMetadata, NullArguments) {
    tai_tokenizer *tok = reinterpret_cast<tai_tokenizer *>(1);
    EXPECT_EQ(tai_tokenizer_load(nullptr, &tok), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tok, nullptr);
    EXPECT_EQ(tai_tokenizer_n_vocab(nullptr), 0);
    EXPECT_EQ(tai_tokenizer_bos(nullptr), -1);
    EXPECT_FALSE(tai_tokenizer_is_eog(nullptr, 0));
    size_t len = 5;
    EXPECT_EQ(tai_token_piece(nullptr, 0, true, &len), nullptr);
    EXPECT_EQ(len, 0u);
}

}  // namespace
