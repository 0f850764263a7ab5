/*
 * runtime/tokenizer: text <-> token ids from a model file's tokenizer
 * metadata, and the chat template.
 *
 * Two tokenizer models, chosen by `tokenizer.ggml.model`:
 *  - "gpt2": byte-level BPE with ranked merges (SmolLM2, Llama 3). Text is
 *    first split by the GPT-2 pre-tokenizer regex (through PCRE2), each piece
 *    mapped byte -> unicode symbol, then merged by rank.
 *  - "llama": SentencePiece-style BPE with scores (Llama 2, TinyLlama): spaces
 *    become U+2581, an optional leading space, the highest-scoring merge
 *    first, unknown bytes as <0xXX> byte tokens.
 * Special tokens (token_type CONTROL, e.g. <|im_start|>) are matched verbatim
 * in the text when parse_special is true.
 *
 * Notes on the implementation: USER_DEFINED tokens
 * are matched verbatim whether or not parse_special is set (as llama.cpp and
 * Hugging Face do). A byte for which a byte-level vocabulary has no symbol
 * (SmolLM2 lacks 0xC0, 0xC1, 0xF5..0xFF and a few control bytes) is encoded
 * as U+FFFD rather than dropped; every other byte, valid UTF-8 or not, round
 * trips exactly. A tokenizer is read-only after load: any number of threads
 * may encode and decode with it at once.
 */
#ifndef TAI_RUNTIME_TOKENIZER_TOKENIZER_H
#define TAI_RUNTIME_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/status.h>

#include "runtime/format/model_file.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tai_tokenizer tai_tokenizer;

/* Builds the tokenizer from mf's metadata (the strings are copied, mf may be
 * closed afterwards). Fails with TINYAI_ERR_FORMAT / _UNSUPPORTED and a
 * message on missing or malformed metadata. Caller frees with
 * tai_tokenizer_free. */
TinyAIStatus tai_tokenizer_load(const tai_model_file *mf, tai_tokenizer **out);
void tai_tokenizer_free(tai_tokenizer *tok); /* accepts NULL */

int32_t tai_tokenizer_n_vocab(const tai_tokenizer *tok);
/* Heap bytes the tokenizer's tables hold (vocabulary, hash, merges). */
size_t tai_tokenizer_memory_bytes(const tai_tokenizer *tok);
int32_t tai_tokenizer_bos(const tai_tokenizer *tok); /* -1 if none */
int32_t tai_tokenizer_eos(const tai_tokenizer *tok); /* -1 if none */
/* Whether the metadata asks for BOS to be prepended (add_bos_token). */
bool tai_tokenizer_add_bos(const tai_tokenizer *tok);
/* Whether `id` ends generation (EOS, EOT, <|im_end|> and similar). */
bool tai_tokenizer_is_eog(const tai_tokenizer *tok, int32_t id);
/* Id of a token given by its exact text ("<|im_end|>"), or -1. */
int32_t tai_tokenizer_find(const tai_tokenizer *tok, const char *text);

/* Encodes len bytes of text (need not be NUL-terminated; invalid UTF-8 is
 * encoded byte-wise, never rejected). Writes at most cap ids; *n_out gets
 * the number the full encoding needs. Returns TINYAI_ERR_RANGE if cap was
 * too small. Does not add BOS: callers do that. */
TinyAIStatus tai_tokenize(const tai_tokenizer *tok, const char *text, size_t len,
                          bool parse_special, int32_t *ids, size_t cap,
                          size_t *n_out);

/* A range of bytes of a text: [off, off + len). */
typedef struct {
    size_t off, len;
} tai_text_span;

/* tai_tokenize with parse_special true, except that a control token is not
 * matched where any of its bytes lie in one of the n_lit spans (in order,
 * not overlapping): there the text is encoded as with parse_special false
 * (user-defined tokens still match, as everywhere). With no spans, or no
 * control-token spelling inside them, the ids are tai_tokenize's with
 * parse_special true. For a chat template's output: its markers are
 * control tokens, the messages' contents text. */
TinyAIStatus tai_tokenize_spans(const tai_tokenizer *tok, const char *text, size_t len,
                                const tai_text_span *lit, size_t n_lit, int32_t *ids,
                                size_t cap, size_t *n_out);

/* The bytes a token stands for when decoding (byte-level symbols mapped back
 * to bytes, U+2581 to space, <0xXX> to the byte). Borrowed; *len gets the
 * byte count (the bytes may be a partial UTF-8 sequence). NULL for an id out
 * of range. Control tokens give their text only if `special` is true,
 * otherwise "". */
const char *tai_token_piece(const tai_tokenizer *tok, int32_t id, bool special,
                            size_t *len);

/* Decodes n ids into buf (cap bytes, always NUL-terminated when cap > 0);
 * *len_out gets the full length needed (without NUL). TINYAI_ERR_RANGE if
 * cap was too small; TINYAI_ERR_INVALID_ARG for an id out of range.
 * SentencePiece vocabularies with add_space_prefix: the leading space of the
 * first piece is the one encoding added, and is dropped. */
TinyAIStatus tai_detokenize(const tai_tokenizer *tok, const int32_t *ids, size_t n,
                            bool special, char *buf, size_t cap, size_t *len_out);

/* Chat messages and the model's template. ChatML (<|im_start|>role\n
 * content<|im_end|>\n, as SmolLM2 and Qwen use) is recognised from the
 * tokenizer.chat_template metadata or from the presence of <|im_start|>;
 * Llama-2 style [INST] and Zephyr style templates likewise. The result is
 * malloc'ed; the caller frees it. add_assistant appends the opening of the
 * assistant's turn. SmolLM2's template adds its default system message when
 * the first message is not a system message. */
typedef struct {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} tai_chat_message;

TinyAIStatus tai_chat_apply(const tai_model_file *mf, const tai_tokenizer *tok,
                            const tai_chat_message *msgs, size_t n,
                            bool add_assistant, char **out);
/* The same with the template's text given (NULL: none), as read from
 * tokenizer.chat_template. */
TinyAIStatus tai_chat_apply_template(const char *tmpl, const tai_tokenizer *tok,
                                     const tai_chat_message *msgs, size_t n, bool add_assistant,
                                     char **out);
/* tai_chat_apply, also giving where the messages' contents went in *out:
 * *n_spans spans in order (*spans malloc'ed, NULL when there are none;
 * the caller frees it), for tai_tokenize_spans. Empty contents have none. */
TinyAIStatus tai_chat_apply_spans(const tai_model_file *mf, const tai_tokenizer *tok,
                                  const tai_chat_message *msgs, size_t n, bool add_assistant,
                                  char **out, tai_text_span **spans, size_t *n_spans);
TinyAIStatus tai_chat_apply_template_spans(const char *tmpl, const tai_tokenizer *tok,
                                           const tai_chat_message *msgs, size_t n,
                                           bool add_assistant, char **out, tai_text_span **spans,
                                           size_t *n_spans);

#ifdef __cplusplus
}
#endif

#endif /* TAI_RUNTIME_TOKENIZER_TOKENIZER_H */
