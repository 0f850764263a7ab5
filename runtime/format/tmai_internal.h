/*
 * runtime/format: the .tmai layout constants shared by its reader (tmai.c)
 * and writer (tmai_write.c). docs/FORMAT.md describes the format byte by
 * byte; the offsets below are the header's fields.
 */
#ifndef TAI_RUNTIME_FORMAT_TMAI_INTERNAL_H
#define TAI_RUNTIME_FORMAT_TMAI_INTERNAL_H

#define TMAI_VERSION 2     /* what the writer writes by default */
#define TMAI_VERSION_MIN 1 /* oldest version still read: no packed tensors */
#define TMAI_HEADER_SIZE 128
#define TMAI_ALIGNMENT 4096        /* each layer starts at a multiple of this */
#define TMAI_TENSOR_ALIGNMENT 64   /* each tensor inside a layer */
#define TMAI_LAYER_ENTRY_SIZE 64
/* Fixed part of a tensor table entry; the name's bytes come on top. */
#define TMAI_TENSOR_ENTRY_FIXED 72

/* Header field offsets. */
enum {
    TMAI_H_MAGIC = 0,
    TMAI_H_VERSION = 4,
    TMAI_H_HEADER_SIZE = 8,
    TMAI_H_FLAGS = 12,
    TMAI_H_FILE_SIZE = 16,
    TMAI_H_ALIGNMENT = 24,
    TMAI_H_TENSOR_ALIGNMENT = 32,
    TMAI_H_N_KV = 40,
    TMAI_H_N_TENSORS = 48,
    TMAI_H_N_LAYERS = 56,
    TMAI_H_KV_OFFSET = 64,
    TMAI_H_KV_SIZE = 72,
    TMAI_H_TENSORS_OFFSET = 80,
    TMAI_H_TENSORS_SIZE = 88,
    TMAI_H_LAYERS_OFFSET = 96,
    TMAI_H_LAYERS_SIZE = 104,
    TMAI_H_DATA_OFFSET = 112,
    TMAI_H_CHECKSUM = 120,
};

/* Layer entry field offsets. */
enum {
    TMAI_L_INDEX = 0,
    TMAI_L_PRECISION = 4,
    TMAI_L_OFFSET = 8,
    TMAI_L_SIZE = 16,
    TMAI_L_CHECKSUM = 24,
    TMAI_L_FIRST_TENSOR = 32,
    TMAI_L_N_TENSORS = 40,
    TMAI_L_RESERVED = 48, /* 16 bytes of zeros */
};

#endif
