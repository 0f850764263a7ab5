// Test helpers for runtime/format: whole-file read/write, a byte-level GGUF
// builder for crafting malformed files, and an open wrapper that captures the
// status and message.
#ifndef TAI_TESTS_FORMAT_FORMAT_TEST_UTIL_H
#define TAI_TESTS_FORMAT_FORMAT_TEST_UTIL_H

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <tinyai/status.h>

#include "runtime/format/model_file.h"

namespace tai_test {

inline std::string ReadFile(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline void WriteFile(const std::string &path, const std::string &bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), (std::streamsize)bytes.size());
}

inline bool FileExists(const std::string &path) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (f) std::fclose(f);
    return f != nullptr;
}

// Result of opening a file: status, message, and the file (closed by the
// destructor).
struct Opened {
    TinyAIStatus st = TINYAI_OK;
    std::string msg;
    tai_model_file *mf = nullptr;
    Opened() = default;
    Opened(const Opened &) = delete;
    Opened &operator=(const Opened &) = delete;
    ~Opened() { tai_model_file_close(mf); }
};

inline void OpenInto(Opened *o, const std::string &path, bool verify = false) {
    tinyaiClearError();
    o->st = tai_model_file_open(path.c_str(), verify, &o->mf);
    o->msg = o->st ? tinyaiLastErrorMessage() : "";
}

// Little-endian byte builder with GGUF helpers.
struct Bytes {
    std::string b;
    Bytes &u8(uint8_t v) { b.push_back((char)v); return *this; }
    Bytes &u32(uint32_t v) { b.append((const char *)&v, 4); return *this; }
    Bytes &u64(uint64_t v) { b.append((const char *)&v, 8); return *this; }
    Bytes &f32(float v) { b.append((const char *)&v, 4); return *this; }
    Bytes &str(const std::string &s) { u64(s.size()); b.append(s); return *this; }
    Bytes &raw(const std::string &s) { b.append(s); return *this; }
    Bytes &pad_to(size_t align) {
        while (b.size() % align) b.push_back('\0');
        return *this;
    }
    // kv helpers (key, type, value)
    Bytes &kv_str(const std::string &k, const std::string &v) { return str(k).u32(8).str(v); }
    Bytes &kv_u32(const std::string &k, uint32_t v) { return str(k).u32(4).u32(v); }
};

// A tensor info for BuildGguf; type ids as ggml's.
struct TInfo {
    std::string name;
    std::vector<int64_t> ne;
    uint32_t type = 0;  // F32
    int64_t offset = -1;  // -1: next aligned offset (for F32 data)
};

// A small GGUF: header, the given raw kv bytes (n_kv of them), tensor infos,
// padding to `align`, and `data_bytes` bytes of data (by default enough for
// F32 tensors at their offsets).
struct GgufSpec {
    uint32_t version = 3;
    uint64_t n_kv = 1;
    std::string kvs = Bytes().kv_str("general.architecture", "llama").b;
    std::vector<TInfo> tensors = {{"token_embd.weight", {32, 4}}, {"output_norm.weight", {32}}};
    int64_t n_tensors_override = -1;
    uint32_t align = 32;
    int64_t data_bytes = -1;
};

inline std::string BuildGguf(const GgufSpec &s) {
    Bytes b;
    b.raw("GGUF").u32(s.version);
    b.u64(s.n_tensors_override >= 0 ? (uint64_t)s.n_tensors_override : s.tensors.size());
    b.u64(s.n_kv);
    b.raw(s.kvs);
    uint64_t off = 0, end = 0;
    for (const TInfo &t : s.tensors) {
        b.str(t.name).u32((uint32_t)t.ne.size());
        uint64_t elems = 1;
        for (int64_t d : t.ne) {
            b.u64((uint64_t)d);
            elems *= (uint64_t)d;
        }
        b.u32(t.type);
        uint64_t o = t.offset >= 0 ? (uint64_t)t.offset : off;
        b.u64(o);
        uint64_t size = elems * 4;
        off = (o + size + s.align - 1) / s.align * s.align;
        if (o + size > end) end = o + size;
    }
    b.pad_to(s.align);
    uint64_t n = s.data_bytes >= 0 ? (uint64_t)s.data_bytes : end;
    for (uint64_t i = 0; i < n; i++) b.u8((uint8_t)(i * 7));
    return b.b;
}

}  // namespace tai_test

#endif
