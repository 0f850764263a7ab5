// A test fixture over the tokenizer of a real model file: the file opened,
// its tokenizer loaded, and Encode / Decode that size their output with a
// first call (as a caller would) and check the two calls agree.
#ifndef TAI_TESTS_TOKENIZER_FILE_TOKENIZER_H
#define TAI_TESTS_TOKENIZER_FILE_TOKENIZER_H

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/format/model_file.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tai_test {

class FileTokenizer : public ::testing::Test {
  protected:
    // Called by the derived fixture's SetUp with the model it tests.
    void Open(const std::string &path) {
        ASSERT_EQ(tai_model_file_open(path.c_str(), false, &mf_), TINYAI_OK) << tinyaiLastErrorMessage();
        ASSERT_EQ(tai_tokenizer_load(mf_, &tok_), TINYAI_OK) << tinyaiLastErrorMessage();
    }
    void TearDown() override {
        tai_tokenizer_free(tok_);
        tai_model_file_close(mf_);
    }

    std::vector<int32_t> Encode(const std::string &s, bool special = false) {
        size_t n = 0;
        TinyAIStatus st = tai_tokenize(tok_, s.data(), s.size(), special, nullptr, 0, &n);
        EXPECT_TRUE(st == TINYAI_OK || st == TINYAI_ERR_RANGE) << tinyaiLastErrorMessage();
        std::vector<int32_t> ids(n);
        size_t n2 = 0;
        EXPECT_EQ(tai_tokenize(tok_, s.data(), s.size(), special, ids.data(), ids.size(), &n2),
                  TINYAI_OK)
            << tinyaiLastErrorMessage();
        EXPECT_EQ(n2, n);
        return ids;
    }

    std::string Decode(const std::vector<int32_t> &ids, bool special = false) {
        size_t len = 0;
        TinyAIStatus st = tai_detokenize(tok_, ids.data(), ids.size(), special, nullptr, 0, &len);
        EXPECT_TRUE(st == TINYAI_OK || st == TINYAI_ERR_RANGE) << tinyaiLastErrorMessage();
        std::string out(len + 1, '\0');
        size_t len2 = 0;
        EXPECT_EQ(tai_detokenize(tok_, ids.data(), ids.size(), special, &out[0], out.size(), &len2),
                  TINYAI_OK)
            << tinyaiLastErrorMessage();
        EXPECT_EQ(len2, len);
        EXPECT_EQ(out[len], '\0');
        out.resize(len);
        return out;
    }

    tai_model_file *mf_ = nullptr;
    tai_tokenizer *tok_ = nullptr;
};

} // namespace tai_test

#endif
