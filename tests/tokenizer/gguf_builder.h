// Test support: writes a small GGUF (version 3) holding only metadata, so
// tokenizer tests can build vocabularies, and malformed ones, of their own and
// open them through the real reader.
#ifndef TAI_TESTS_TOKENIZER_GGUF_BUILDER_H
#define TAI_TESTS_TOKENIZER_GGUF_BUILDER_H

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace tai_test {

class GgufBuilder {
  public:
    void Str(const std::string &key, const std::string &v) {
        Key(key, 8);
        PutStr(v);
    }
    void U32(const std::string &key, uint32_t v) {
        Key(key, 4);
        Put(&v, 4);
    }
    void I32(const std::string &key, int32_t v) {
        Key(key, 5);
        Put(&v, 4);
    }
    void Bool(const std::string &key, bool v) {
        Key(key, 7);
        uint8_t b = v;
        Put(&b, 1);
    }
    void StrArr(const std::string &key, const std::vector<std::string> &v) {
        ArrHead(key, 8, v.size());
        for (const auto &s : v) PutStr(s);
    }
    void I32Arr(const std::string &key, const std::vector<int32_t> &v) {
        ArrHead(key, 5, v.size());
        Put(v.data(), 4 * v.size());
    }
    void F32Arr(const std::string &key, const std::vector<float> &v) {
        ArrHead(key, 6, v.size());
        Put(v.data(), 4 * v.size());
    }

    // Writes the file; false on an I/O error.
    bool Write(const std::string &path) const {
        std::string out("GGUF", 4);
        uint32_t version = 3;
        uint64_t n_tensors = 0;
        out.append(reinterpret_cast<const char *>(&version), 4);
        out.append(reinterpret_cast<const char *>(&n_tensors), 8);
        out.append(reinterpret_cast<const char *>(&n_kv_), 8);
        out += kvs_;
        while (out.size() % 32) out.push_back('\0');
        FILE *f = std::fopen(path.c_str(), "wb");
        if (!f) return false;
        bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
        return std::fclose(f) == 0 && ok;
    }

  private:
    void Put(const void *p, size_t n) { kvs_.append(static_cast<const char *>(p), n); }
    void PutStr(const std::string &s) {
        uint64_t n = s.size();
        Put(&n, 8);
        Put(s.data(), s.size());
    }
    void Key(const std::string &key, uint32_t type) {
        PutStr(key);
        Put(&type, 4);
        n_kv_++;
    }
    void ArrHead(const std::string &key, uint32_t elem, uint64_t n) {
        Key(key, 9);
        Put(&elem, 4);
        Put(&n, 8);
    }

    std::string kvs_;
    uint64_t n_kv_ = 0;
};

}  // namespace tai_test

#endif
