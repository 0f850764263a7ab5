/*
 * offload/opencl/opencl_device.c: the OpenCL device (layer: offload).
 *
 * One context and one in-order queue per device: ops are enqueued and run
 * in order, and `sync` (clFinish) reports the first failure since the last
 * sync, with the OpenCL error's name and the op that met it. Buffers are
 * cl_mem objects (a tai_dbuf is the cl_mem); a tai_dref's offset is passed
 * to the kernels as an element offset beside the buffer. The small host
 * arrays ops take (token ids, positions) go into device buffers the device
 * owns, written before the kernels that read them (in-order queue).
 */
#define CL_TARGET_OPENCL_VERSION 120
#include "offload/opencl/opencl.h"

#include <CL/cl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/error.h"
#include "offload/opencl/kernels_cl.h"

#define NCOL 8 /* columns per work-item of a product: kernels.cl's NCOL */
#define MV_KS 16 /* K slices of the matrix-vector kernel: kernels.cl's KS */

typedef struct {
    cl_platform_id platform;
    cl_device_id device;
    cl_context ctx;
    cl_command_queue q;
    cl_program prog;
    cl_kernel mm;     /* products of every weight type */
    cl_kernel quant;  /* activations of the block types to 8-bit codes */
    cl_kernel embed, rmsnorm, add, swiglu, rope, scores, softmax, values;
    cl_kernel rope_neox, geglu, add_bias; /* other architectures' ops */
    cl_kernel matvec; /* one column: K split across a work-group (NULL: not usable here) */
    cl_mem ints; /* token ids / positions for the next op */
    size_t ints_cap;
    size_t norm_wg; /* work-group size of rmsnorm (a power of two) */
    int index;
    const char *source; /* the program's OpenCL C */
    int want_matvec;    /* -1 by device kind, 0 / 1 forced */
    tai_device_info info;
    char err[4096];
} ocl;

static const char *cl_name(cl_int e) {
    switch (e) {
#define N(x) \
    case x: return #x;
        N(CL_SUCCESS) N(CL_DEVICE_NOT_FOUND) N(CL_DEVICE_NOT_AVAILABLE) N(CL_COMPILER_NOT_AVAILABLE)
        N(CL_MEM_OBJECT_ALLOCATION_FAILURE) N(CL_OUT_OF_RESOURCES) N(CL_OUT_OF_HOST_MEMORY)
        N(CL_BUILD_PROGRAM_FAILURE) N(CL_INVALID_VALUE) N(CL_INVALID_DEVICE) N(CL_INVALID_BINARY)
        N(CL_INVALID_BUFFER_SIZE) N(CL_INVALID_MEM_OBJECT) N(CL_INVALID_PROGRAM_EXECUTABLE)
        N(CL_INVALID_KERNEL_ARGS) N(CL_INVALID_WORK_GROUP_SIZE) N(CL_INVALID_WORK_ITEM_SIZE)
        N(CL_INVALID_GLOBAL_WORK_SIZE) N(CL_INVALID_ARG_SIZE) N(CL_INVALID_ARG_VALUE)
        N(CL_INVALID_KERNEL_NAME) N(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
        N(CL_INVALID_OPERATION) N(CL_MISALIGNED_SUB_BUFFER_OFFSET)
#undef N
    default: return "an OpenCL error";
    }
}

static int errno_of(cl_int e) {
    return e == CL_MEM_OBJECT_ALLOCATION_FAILURE || e == CL_OUT_OF_HOST_MEMORY ||
                   e == CL_OUT_OF_RESOURCES
               ? -ENOMEM
           : e == CL_INVALID_VALUE || e == CL_INVALID_BUFFER_SIZE ? -EINVAL
                                                                   : -EIO;
}

static int fail(ocl *o, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ocl *o, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->err, sizeof o->err, fmt, ap);
    va_end(ap);
    return rc;
}

static int cl_fail(ocl *o, cl_int e, const char *what) {
    return fail(o, errno_of(e), "%s: %s (%d)", what, cl_name(e), (int)e);
}

/* An enqueue's result: a refused enqueue is this op's error; the queue's
 * later failures surface at sync. */
#define CL_TRY(o, call, what)                         \
    do {                                              \
        const cl_int e_ = (call);                     \
        if (e_ != CL_SUCCESS) return cl_fail((o), e_, (what)); \
    } while (0)

/* ---- enumeration ---- */

/* Device `index` in platform order: its platform and id. 0 or -1. */
static int find(int index, cl_platform_id *plat, cl_device_id *dev) {
    if (index < 0) return -1;
    cl_uint np = 0;
    if (clGetPlatformIDs(0, NULL, &np) != CL_SUCCESS || np == 0) return -1;
    cl_platform_id ps[16];
    if (np > 16) np = 16;
    if (clGetPlatformIDs(np, ps, NULL) != CL_SUCCESS) return -1;
    int seen = 0;
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(ps[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS) continue;
        if (index < seen + (int)nd) {
            cl_device_id ds[64];
            if (nd > 64) nd = 64;
            if (clGetDeviceIDs(ps[p], CL_DEVICE_TYPE_ALL, nd, ds, NULL) != CL_SUCCESS) return -1;
            *plat = ps[p];
            *dev = ds[index - seen];
            return 0;
        }
        seen += (int)nd;
    }
    return -1;
}

int tai_opencl_count(void) {
    cl_uint np = 0;
    if (clGetPlatformIDs(0, NULL, &np) != CL_SUCCESS || np == 0) return 0;
    cl_platform_id ps[16];
    if (np > 16) np = 16;
    if (clGetPlatformIDs(np, ps, NULL) != CL_SUCCESS) return 0;
    int n = 0;
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(ps[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) == CL_SUCCESS) n += (int)nd;
    }
    return n;
}

int tai_opencl_describe(int index, char *buf, size_t cap) {
    cl_platform_id p;
    cl_device_id d;
    if (find(index, &p, &d) != 0) return -1;
    char pn[128] = "", dn[128] = "";
    clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof pn - 1, pn, NULL);
    clGetDeviceInfo(d, CL_DEVICE_NAME, sizeof dn - 1, dn, NULL);
    snprintf(buf, cap, "%s: %s", pn, dn);
    return 0;
}

/* ---- program: built once, kept in the cache folder ---- */

static uint64_t program_key(ocl *o) {
    char dn[256] = "", dv[256] = "", pv[256] = "";
    clGetDeviceInfo(o->device, CL_DEVICE_NAME, sizeof dn - 1, dn, NULL);
    clGetDeviceInfo(o->device, CL_DRIVER_VERSION, sizeof dv - 1, dv, NULL);
    clGetPlatformInfo(o->platform, CL_PLATFORM_VERSION, sizeof pv - 1, pv, NULL);
    XXH64_state_t *st = XXH64_createState();
    if (!st) return 0;
    XXH64_reset(st, 0x7a1);
    XXH64_update(st, o->source, strlen(o->source));
    XXH64_update(st, dn, strlen(dn) + 1);
    XXH64_update(st, dv, strlen(dv) + 1);
    XXH64_update(st, pv, strlen(pv) + 1);
    const uint64_t h = XXH64_digest(st);
    XXH64_freeState(st);
    return h;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && sb.st_size > 0 && sb.st_size < (64 << 20)) {
        buf = malloc((size_t)sb.st_size);
        if (buf && fread(buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)sb.st_size;
    }
    fclose(f);
    return buf;
}

/* Saves the built program's binary (a failure only costs the next start a
 * compile). */
static void save_binary(ocl *o, const char *path) {
    size_t len = 0;
    if (clGetProgramInfo(o->prog, CL_PROGRAM_BINARY_SIZES, sizeof len, &len, NULL) != CL_SUCCESS ||
        len == 0)
        return;
    unsigned char *bin = malloc(len);
    if (!bin) return;
    unsigned char *bins[1] = {bin};
    if (clGetProgramInfo(o->prog, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS) {
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        if (f) {
            const bool ok = fwrite(bin, 1, len, f) == len;
            if (fclose(f) == 0 && ok)
                (void)rename(tmp, path);
            else
                (void)unlink(tmp);
        }
    }
    free(bin);
}

static int build(ocl *o, const char *cache_dir) {
    char path[4096] = "";
    if (cache_dir && *cache_dir)
        snprintf(path, sizeof path, "%s/opencl-%016llx.bin", cache_dir,
                 (unsigned long long)program_key(o));
    /* the activations' quantizer divides as the host does, correctly
     * rounded, where the device can (the codes then equal the CPU's) */
    cl_device_fp_config fp = 0;
    clGetDeviceInfo(o->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    const char *opts = fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT
                           ? "-cl-std=CL1.2 -cl-fp32-correctly-rounded-divide-sqrt"
                           : "-cl-std=CL1.2";
    cl_int e;
    if (path[0]) {
        size_t len = 0;
        unsigned char *bin = read_file(path, &len);
        if (bin) {
            const unsigned char *bins[1] = {bin};
            cl_int bs = CL_SUCCESS;
            o->prog = clCreateProgramWithBinary(o->ctx, 1, &o->device, &len, bins, &bs, &e);
            free(bin);
            if (e == CL_SUCCESS && bs == CL_SUCCESS &&
                clBuildProgram(o->prog, 1, &o->device, opts, NULL, NULL) == CL_SUCCESS)
                return 0;
            if (o->prog) clReleaseProgram(o->prog); /* a stale or corrupt file: rebuild */
            o->prog = NULL;
        }
    }
    const char *src = o->source;
    o->prog = clCreateProgramWithSource(o->ctx, 1, &src, NULL, &e);
    if (e != CL_SUCCESS) return cl_fail(o, e, "clCreateProgramWithSource");
    e = clBuildProgram(o->prog, 1, &o->device, opts, NULL, NULL);
    if (e != CL_SUCCESS) {
        char log[3000] = "";
        clGetProgramBuildInfo(o->prog, o->device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
        return fail(o, -EIO, "building the kernels failed (%s): %s", cl_name(e), log);
    }
    if (path[0]) save_binary(o, path);
    return 0;
}

/* ---- lifetime, identity ---- */

static void ocl_destroy(void *dev) {
    ocl *o = dev;
    if (o->q) clFinish(o->q);
    cl_kernel ks[] = {o->mm,     o->embed,   o->rmsnorm, o->add,      o->swiglu,
                      o->rope,   o->scores,  o->softmax, o->values,   o->matvec,
                      o->quant,  o->rope_neox, o->geglu, o->add_bias};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
        if (ks[i]) clReleaseKernel(ks[i]);
    if (o->ints) clReleaseMemObject(o->ints);
    if (o->prog) clReleaseProgram(o->prog);
    if (o->q) clReleaseCommandQueue(o->q);
    if (o->ctx) clReleaseContext(o->ctx);
    free(o);
}

static int ocl_info(void *dev, tai_device_info *out) {
    *out = ((ocl *)dev)->info;
    return 0;
}

static const char *ocl_last_error(void *dev) { return ((ocl *)dev)->err; }

/* ---- memory ---- */

static cl_mem M(tai_dref r) { return (cl_mem)(void *)r.buf; }

static int ocl_buf_alloc(void *dev, size_t bytes, tai_dbuf **out) {
    ocl *o = dev;
    cl_int e;
    cl_mem m = clCreateBuffer(o->ctx, CL_MEM_READ_WRITE, bytes ? bytes : 64, NULL, &e);
    if (e != CL_SUCCESS) return cl_fail(o, e, "clCreateBuffer");
    *out = (tai_dbuf *)(void *)m;
    return 0;
}

static void ocl_buf_free(void *dev, tai_dbuf *b) {
    (void)dev;
    if (b) clReleaseMemObject((cl_mem)(void *)b);
}

#define DEV(o, r, what)                                                            \
    do {                                                                           \
        if (!(r).buf) return fail((o), -EINVAL, "%s is not a device buffer", what); \
    } while (0)

static int ocl_upload(void *dev, tai_dref dst, const void *src, size_t bytes) {
    ocl *o = dev;
    DEV(o, dst, "upload destination");
    if (bytes == 0) return 0;
    CL_TRY(o, clEnqueueWriteBuffer(o->q, M(dst), CL_FALSE, dst.off, bytes, src, 0, NULL, NULL),
           "clEnqueueWriteBuffer");
    return 0;
}

static int ocl_download(void *dev, void *dst, tai_dref src, size_t bytes) {
    ocl *o = dev;
    DEV(o, src, "download source");
    if (bytes == 0) return 0;
    CL_TRY(o, clEnqueueReadBuffer(o->q, M(src), CL_TRUE, src.off, bytes, dst, 0, NULL, NULL),
           "clEnqueueReadBuffer");
    return 0;
}

static int ocl_sync(void *dev) {
    ocl *o = dev;
    const cl_int e = clFinish(o->q);
    if (e != CL_SUCCESS) return cl_fail(o, e, "clFinish (a kernel or transfer failed)");
    return 0;
}

static int ocl_copy(void *dev, tai_dref dst, tai_dref src, size_t bytes) {
    ocl *o = dev;
    DEV(o, dst, "copy destination");
    DEV(o, src, "copy source");
    if (bytes == 0) return 0;
    CL_TRY(o, clEnqueueCopyBuffer(o->q, M(src), M(dst), src.off, dst.off, bytes, 0, NULL, NULL),
           "clEnqueueCopyBuffer");
    return 0;
}

/* The device's int buffer, holding n values from the host (blocking write:
 * the in-order queue runs it after every earlier op that read the buffer). */
static int put_ints(ocl *o, const int32_t *v, size_t n) {
    const size_t bytes = (n ? n : 1) * sizeof(int32_t);
    if (bytes > o->ints_cap) {
        if (o->ints) clReleaseMemObject(o->ints);
        o->ints = NULL;
        o->ints_cap = 0;
        cl_int e;
        const size_t cap = bytes < 4096 ? 4096 : bytes * 2;
        o->ints = clCreateBuffer(o->ctx, CL_MEM_READ_ONLY, cap, NULL, &e);
        if (e != CL_SUCCESS) return cl_fail(o, e, "clCreateBuffer");
        o->ints_cap = cap;
    }
    if (n)
        CL_TRY(o, clEnqueueWriteBuffer(o->q, o->ints, CL_TRUE, 0, bytes, v, 0, NULL, NULL),
               "clEnqueueWriteBuffer");
    return 0;
}

/* ---- kernels' arguments and launches ---- */

typedef struct {
    ocl *o;
    cl_kernel k;
    cl_uint i;
    cl_int e;
} args;

static void arg(args *a, size_t size, const void *v) {
    if (a->e == CL_SUCCESS) a->e = clSetKernelArg(a->k, a->i, size, v);
    a->i++;
}
static void a_mem(args *a, cl_mem m) { arg(a, sizeof m, &m); }
static void a_u64(args *a, uint64_t v) {
    cl_ulong x = v;
    arg(a, sizeof x, &x);
}
static void a_i64(args *a, int64_t v) {
    cl_long x = v;
    arg(a, sizeof x, &x);
}
static void a_i32(args *a, int v) {
    cl_int x = v;
    arg(a, sizeof x, &x);
}
static void a_f32(args *a, float v) {
    cl_float x = v;
    arg(a, sizeof x, &x);
}
/* a dref of floats: the buffer and the element offset */
static void a_fref(args *a, tai_dref r) {
    a_mem(a, M(r));
    a_u64(a, r.off / sizeof(float));
}

static int launch(args *a, cl_uint dims, const size_t *global, const size_t *local,
                  const char *what) {
    if (a->e != CL_SUCCESS) return cl_fail(a->o, a->e, "clSetKernelArg");
    for (cl_uint d = 0; d < dims; d++)
        if (global[d] == 0) return 0;
    CL_TRY(a->o, clEnqueueNDRangeKernel(a->o->q, a->k, dims, NULL, global, local, 0, NULL, NULL),
           what);
    return 0;
}

static int aligned4(tai_dref r) { return r.off % 4 == 0; }

/* ---- ops ---- */

/* Block types: the quantized activations, (d, d * sum) per block then the
 * codes; the float types need none. */
static size_t q8_bytes(int64_t n, int64_t ncols) {
    return (size_t)(n / 32) * (size_t)ncols * (sizeof(cl_float2) + 32);
}

static size_t ocl_matmul_scratch(void *dev, int type, int64_t n, int64_t ncols) {
    (void)dev;
    if (type == TAI_TYPE_F32 || type == TAI_TYPE_F16 || n <= 0 || ncols <= 0) return 0;
    return q8_bytes(n, ncols);
}

static int ocl_matmul(void *dev, int type, tai_dref w, int64_t rows, int64_t n, tai_dref x,
                      tai_dref y, int64_t ncols, tai_dref scratch) {
    ocl *o = dev;
    if (!tai_type_valid(type)) return fail(o, -ENOTSUP, "no %s kernel", tai_type_name(type));
    DEV(o, w, "weights");
    DEV(o, x, "input");
    DEV(o, y, "output");
    const size_t pb = tai_pack_panel_bytes((tai_type)type, n);
    if (rows <= 0 || ncols <= 0 || pb == 0 || rows > INT32_MAX || n > INT32_MAX ||
        ncols > INT32_MAX || !aligned4(x) || !aligned4(y))
        return fail(o, -EINVAL, "bad shape %lld x %lld x %lld columns (%s)", (long long)rows,
                    (long long)n, (long long)ncols, tai_type_name(type));
    /* block types: the activations quantized into the scratch first */
    const bool blocks = type != TAI_TYPE_F32 && type != TAI_TYPE_F16;
    cl_mem qm = M(x);
    uint64_t qd_off = 0, qs_off = 0;
    if (blocks) {
        DEV(o, scratch, "scratch");
        if (scratch.off % sizeof(cl_float2) != 0)
            return fail(o, -EINVAL, "scratch offset %zu is not 8-byte aligned", scratch.off);
        qm = M(scratch);
        qd_off = scratch.off / sizeof(cl_float2);
        qs_off = scratch.off + (size_t)(n / 32) * (size_t)ncols * sizeof(cl_float2);
        args q = {o, o->quant, 0, CL_SUCCESS};
        a_fref(&q, x);
        a_i32(&q, (int)n);
        a_mem(&q, qm);
        a_u64(&q, qd_off);
        a_mem(&q, qm);
        a_u64(&q, qs_off);
        const size_t g[2] = {(size_t)(n / 32), (size_t)ncols};
        const int rc = launch(&q, 2, g, NULL, "matmul (quantizing activations)");
        if (rc) return rc;
    }
    /* the same arguments but the last: the matrix-vector kernel's local
     * memory, the product's column count */
    const bool mv = ncols == 1 && o->matvec;
    args a = {o, mv ? o->matvec : o->mm, 0, CL_SUCCESS};
    a_i32(&a, type);
    a_mem(&a, M(w));
    a_u64(&a, w.off);
    a_i64(&a, (int64_t)pb);
    a_i32(&a, (int)rows);
    a_i32(&a, (int)n);
    a_fref(&a, x);
    a_fref(&a, y);
    a_mem(&a, qm);
    a_u64(&a, qd_off);
    a_mem(&a, qm);
    a_u64(&a, qs_off);
    const size_t panels16 = (size_t)(rows + 15) / 16 * 16;
    if (mv) {
        arg(&a, 16 * MV_KS * sizeof(float), NULL);
        const size_t g[2] = {panels16, MV_KS}, l[2] = {16, MV_KS};
        return launch(&a, 2, g, l, "matmul");
    }
    a_i32(&a, (int)ncols);
    const size_t g[2] = {panels16, (size_t)(ncols + NCOL - 1) / NCOL};
    return launch(&a, 2, g, NULL, "matmul");
}

static int ocl_rmsnorm(void *dev, tai_dref out, tai_dref x, tai_dref w, int64_t n, int64_t ncols,
                       float eps) {
    ocl *o = dev;
    DEV(o, out, "output");
    DEV(o, x, "input");
    DEV(o, w, "weights");
    args a = {o, o->rmsnorm, 0, CL_SUCCESS};
    a_fref(&a, out);
    a_fref(&a, x);
    a_fref(&a, w);
    a_i32(&a, (int)n);
    a_f32(&a, eps);
    arg(&a, o->norm_wg * sizeof(float), NULL);
    const size_t g[2] = {o->norm_wg, (size_t)ncols}, l[2] = {o->norm_wg, 1};
    return launch(&a, 2, g, l, "rmsnorm");
}

static int elementwise(ocl *o, cl_kernel k, tai_dref x, tai_dref d, int64_t n, const char *what) {
    DEV(o, x, "x");
    DEV(o, d, "operand");
    args a = {o, k, 0, CL_SUCCESS};
    a_fref(&a, x);
    a_fref(&a, d);
    a_i64(&a, n);
    const size_t g[1] = {(size_t)n};
    return launch(&a, 1, g, NULL, what);
}

static int ocl_add(void *dev, tai_dref x, tai_dref d, int64_t n) {
    ocl *o = dev;
    return elementwise(o, o->add, x, d, n, "add");
}

static int ocl_swiglu(void *dev, tai_dref gate, tai_dref up, int64_t n) {
    ocl *o = dev;
    return elementwise(o, o->swiglu, gate, up, n, "swiglu");
}

static int ocl_geglu(void *dev, tai_dref gate, tai_dref up, int64_t n) {
    ocl *o = dev;
    return elementwise(o, o->geglu, gate, up, n, "geglu");
}

static int ocl_add_bias(void *dev, tai_dref x, tai_dref b, int64_t n, int64_t ncols) {
    ocl *o = dev;
    DEV(o, x, "x");
    DEV(o, b, "bias");
    if (n <= 0 || ncols <= 0) return fail(o, -EINVAL, "bias of %lld floats", (long long)n);
    args a = {o, o->add_bias, 0, CL_SUCCESS};
    a_fref(&a, x);
    a_fref(&a, b);
    a_i64(&a, n);
    a_i64(&a, n * ncols);
    const size_t g[1] = {(size_t)(n * ncols)};
    return launch(&a, 1, g, NULL, "add_bias");
}

static int rope_op(ocl *o, cl_kernel k, tai_dref x, int64_t ncols, int64_t col_stride,
                   int n_heads, int head_dim, int rot_dim, tai_dref cs) {
    DEV(o, x, "x");
    DEV(o, cs, "angles");
    if (rot_dim <= 0 || rot_dim > head_dim || rot_dim % 2)
        return fail(o, -EINVAL, "rope: rotation of %d dimensions in heads of %d", rot_dim, head_dim);
    args a = {o, k, 0, CL_SUCCESS};
    a_fref(&a, x);
    a_i64(&a, col_stride);
    a_i32(&a, head_dim);
    a_i32(&a, rot_dim);
    a_fref(&a, cs);
    const size_t g[3] = {(size_t)rot_dim / 2, (size_t)n_heads, (size_t)ncols};
    return launch(&a, 3, g, NULL, "rope");
}

static int ocl_rope(void *dev, tai_dref x, int64_t ncols, int64_t col_stride, int n_heads,
                    int head_dim, int rot_dim, tai_dref cs) {
    ocl *o = dev;
    return rope_op(o, o->rope, x, ncols, col_stride, n_heads, head_dim, rot_dim, cs);
}

static int ocl_rope_neox(void *dev, tai_dref x, int64_t ncols, int64_t col_stride, int n_heads,
                         int head_dim, int rot_dim, tai_dref cs) {
    ocl *o = dev;
    return rope_op(o, o->rope_neox, x, ncols, col_stride, n_heads, head_dim, rot_dim, cs);
}

static size_t ocl_attention_scratch(void *dev, int64_t max_pos, int n_head) {
    (void)dev;
    (void)max_pos;
    (void)n_head;
    return 0; /* the scores are sized per call: see ocl_attention */
}

static int attention_op(ocl *o, tai_dref out, tai_dref q, int64_t ncols, const tai_dref *k,
                        const tai_dref *v, const int32_t *pos, int n_head, int n_kv_head,
                        int head_dim, int window) {
    DEV(o, out, "output");
    DEV(o, q, "queries");
    if (n_kv_head <= 0 || n_head % n_kv_head)
        return fail(o, -EINVAL, "attention: %d query heads over %d kv heads", n_head, n_kv_head);
    int32_t max_pos = 0;
    for (int64_t c = 0; c < ncols; c++) {
        DEV(o, k[c], "key cache");
        DEV(o, v[c], "value cache");
        if (pos[c] < 0) return fail(o, -EINVAL, "attention: position %d", pos[c]);
        if (pos[c] + 1 > max_pos) max_pos = pos[c] + 1;
    }
    int rc = put_ints(o, pos, (size_t)ncols);
    if (rc) return rc;
    /* scores [ncols][n_head][max_pos], a buffer of this call's size */
    cl_int e;
    cl_mem s = clCreateBuffer(o->ctx, CL_MEM_READ_WRITE,
                              (size_t)ncols * (size_t)n_head * (size_t)max_pos * sizeof(float),
                              NULL, &e);
    if (e != CL_SUCCESS) return cl_fail(o, e, "clCreateBuffer (attention scores)");
    /* runs of columns over the same caches */
    for (int64_t c0 = 0; c0 < ncols && rc == 0;) {
        int64_t c1 = c0 + 1;
        int32_t mp = pos[c0] + 1;
        while (c1 < ncols && k[c1].buf == k[c0].buf && k[c1].off == k[c0].off &&
               v[c1].buf == v[c0].buf && v[c1].off == v[c0].off) {
            if (pos[c1] + 1 > mp) mp = pos[c1] + 1;
            c1++;
        }
        args a = {o, o->scores, 0, CL_SUCCESS};
        a_mem(&a, s);
        a_i32(&a, max_pos);
        a_fref(&a, q);
        a_fref(&a, k[c0]);
        a_mem(&a, o->ints);
        a_i32(&a, (int)c0);
        a_i32(&a, n_head);
        a_i32(&a, n_kv_head);
        a_i32(&a, head_dim);
        a_i32(&a, window);
        const size_t g1[3] = {(size_t)mp, (size_t)n_head, (size_t)(c1 - c0)};
        rc = launch(&a, 3, g1, NULL, "attention");
        if (rc) break;
        args b = {o, o->softmax, 0, CL_SUCCESS};
        a_mem(&b, s);
        a_i32(&b, max_pos);
        a_mem(&b, o->ints);
        a_i32(&b, (int)c0);
        a_i32(&b, n_head);
        a_i32(&b, window);
        const size_t g2[2] = {(size_t)n_head, (size_t)(c1 - c0)};
        rc = launch(&b, 2, g2, NULL, "attention");
        if (rc) break;
        args d = {o, o->values, 0, CL_SUCCESS};
        a_fref(&d, out);
        a_mem(&d, s);
        a_i32(&d, max_pos);
        a_fref(&d, v[c0]);
        a_mem(&d, o->ints);
        a_i32(&d, (int)c0);
        a_i32(&d, n_head);
        a_i32(&d, n_kv_head);
        a_i32(&d, head_dim);
        a_i32(&d, window);
        const size_t g3[3] = {(size_t)head_dim, (size_t)n_head, (size_t)(c1 - c0)};
        rc = launch(&d, 3, g3, NULL, "attention");
        c0 = c1;
    }
    clReleaseMemObject(s); /* released once the queued kernels are done with it */
    return rc;
}

static int ocl_attention(void *dev, tai_dref out, tai_dref q, int64_t ncols, const tai_dref *k,
                         const tai_dref *v, const int32_t *pos, int n_head, int n_kv_head,
                         int head_dim, tai_dref scratch, size_t scratch_bytes) {
    (void)scratch;
    (void)scratch_bytes;
    return attention_op(dev, out, q, ncols, k, v, pos, n_head, n_kv_head, head_dim, 0);
}

static int ocl_attention_window(void *dev, tai_dref out, tai_dref q, int64_t ncols,
                                const tai_dref *k, const tai_dref *v, const int32_t *pos,
                                int n_head, int n_kv_head, int head_dim, int window,
                                tai_dref scratch, size_t scratch_bytes) {
    (void)scratch;
    (void)scratch_bytes;
    if (window < 1) return fail(dev, -EINVAL, "attention: window of %d positions", window);
    return attention_op(dev, out, q, ncols, k, v, pos, n_head, n_kv_head, head_dim, window);
}

static int ocl_embed(void *dev, int type, tai_dref table, int64_t rows, int64_t n,
                     const int32_t *tokens, int64_t ncols, tai_dref out) {
    ocl *o = dev;
    DEV(o, table, "table");
    DEV(o, out, "output");
    const size_t pb = tai_type_valid(type) ? tai_pack_panel_bytes((tai_type)type, n) : 0;
    if (pb == 0 || rows <= 0)
        return fail(o, -EINVAL, "embedding table %s %lld x %lld", tai_type_name(type),
                    (long long)rows, (long long)n);
    for (int64_t t = 0; t < ncols; t++)
        if (tokens[t] < 0 || tokens[t] >= rows)
            return fail(o, -EINVAL, "token id %d out of range (0..%lld)", tokens[t],
                        (long long)rows - 1);
    int rc = put_ints(o, tokens, (size_t)ncols);
    if (rc) return rc;
    args a = {o, o->embed, 0, CL_SUCCESS};
    a_i32(&a, type);
    a_mem(&a, M(table));
    a_u64(&a, table.off);
    a_i64(&a, (int64_t)pb);
    a_i32(&a, (int)n);
    a_mem(&a, o->ints);
    a_fref(&a, out);
    const size_t g[2] = {(size_t)n, (size_t)ncols};
    return launch(&a, 2, g, NULL, "embed");
}

static const tai_device_ops ocl_ops = {
    .abi = TAI_DEVICE_ABI,
    .size = sizeof(tai_device_ops),
    .destroy = ocl_destroy,
    .info = ocl_info,
    .last_error = ocl_last_error,
    .buf_alloc = ocl_buf_alloc,
    .buf_free = ocl_buf_free,
    .upload = ocl_upload,
    .download = ocl_download,
    .sync = ocl_sync,
    .matmul_scratch = ocl_matmul_scratch,
    .matmul = ocl_matmul,
    .rmsnorm = ocl_rmsnorm,
    .add = ocl_add,
    .rope = ocl_rope,
    .swiglu = ocl_swiglu,
    .attention = ocl_attention,
    .attention_scratch = ocl_attention_scratch,
    .embed = ocl_embed,
    .copy = ocl_copy,
    .rope_neox = ocl_rope_neox,
    .geglu = ocl_geglu,
    .add_bias = ocl_add_bias,
    .attention_window = ocl_attention_window,
};

static int make_kernel(ocl *o, cl_kernel *k, const char *name) {
    cl_int e;
    *k = clCreateKernel(o->prog, name, &e);
    if (e != CL_SUCCESS) return cl_fail(o, e, name);
    return 0;
}

static int setup(ocl *o, const char *cache_dir) {
    cl_int e;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)o->platform, 0};
    o->ctx = clCreateContext(props, 1, &o->device, NULL, NULL, &e);
    if (e != CL_SUCCESS) return cl_fail(o, e, "clCreateContext");
    o->q = clCreateCommandQueue(o->ctx, o->device, 0, &e);
    if (e != CL_SUCCESS) return cl_fail(o, e, "clCreateCommandQueue");
    int rc = build(o, cache_dir);
    if (rc) return rc;
    if ((rc = make_kernel(o, &o->mm, "matmul")) || (rc = make_kernel(o, &o->quant, "quant_q8")))
        return rc;
    if ((rc = make_kernel(o, &o->embed, "embed")) || (rc = make_kernel(o, &o->rmsnorm, "rmsnorm")) ||
        (rc = make_kernel(o, &o->add, "add")) || (rc = make_kernel(o, &o->swiglu, "swiglu")) ||
        (rc = make_kernel(o, &o->rope, "rope")) || (rc = make_kernel(o, &o->scores, "att_scores")) ||
        (rc = make_kernel(o, &o->softmax, "att_softmax")) ||
        (rc = make_kernel(o, &o->values, "att_values")) ||
        (rc = make_kernel(o, &o->rope_neox, "rope_neox")) ||
        (rc = make_kernel(o, &o->geglu, "geglu")) || (rc = make_kernel(o, &o->add_bias, "add_bias")))
        return rc;
    /* the matrix-vector kernel needs work-groups of 16 x MV_KS */
    if ((rc = make_kernel(o, &o->matvec, "matvec"))) return rc;
    {
        size_t dmax = 0, kmax = 0, dims[3] = {0, 0, 0};
        clGetDeviceInfo(o->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof dmax, &dmax, NULL);
        clGetDeviceInfo(o->device, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof dims, dims, NULL);
        clGetKernelWorkGroupInfo(o->matvec, o->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax,
                                 &kmax, NULL);
        /* a CPU runs the one-item-per-row kernel faster (PoCL: 2.4 against
         * 5.7 tok/s on SmolLM2): its few cores are filled by rows alone,
         * and the slices only add a reduction */
        cl_device_type ty = 0;
        clGetDeviceInfo(o->device, CL_DEVICE_TYPE, sizeof ty, &ty, NULL);
        const bool want = o->want_matvec >= 0 ? o->want_matvec == 1 : !(ty & CL_DEVICE_TYPE_CPU);
        if (!want || dmax < 16 * MV_KS || kmax < 16 * MV_KS || dims[0] < 16 || dims[1] < MV_KS) {
            clReleaseKernel(o->matvec);
            o->matvec = NULL;
        }
    }
    /* rmsnorm's work-group: the largest power of two up to 256 that both
     * the device and the kernel allow */
    size_t wg = 256, kwg = 0, dwg = 0;
    clGetDeviceInfo(o->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof dwg, &dwg, NULL);
    clGetKernelWorkGroupInfo(o->rmsnorm, o->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg,
                             NULL);
    while (wg > 1 && ((dwg && wg > dwg) || (kwg && wg > kwg))) wg /= 2;
    o->norm_wg = wg;
    return 0;
}

static void describe_ids(int index, cl_platform_id plat, cl_device_id dev, tai_device_info *in) {
    memset(in, 0, sizeof *in);
    snprintf(in->name, sizeof in->name, "opencl:%d", index);
    clGetDeviceInfo(dev, CL_DEVICE_VENDOR, sizeof in->vendor - 1, in->vendor, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof in->model - 1, in->model, NULL);
    char dv[64] = "", pv[64] = "";
    clGetDeviceInfo(dev, CL_DRIVER_VERSION, sizeof dv - 1, dv, NULL);
    clGetPlatformInfo(plat, CL_PLATFORM_NAME, sizeof pv - 1, pv, NULL);
    snprintf(in->version, sizeof in->version, "%.40s, driver %.40s", pv, dv);
    cl_device_type ty = 0;
    clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof ty, &ty, NULL);
    in->kind = ty & CL_DEVICE_TYPE_GPU           ? TAI_DEVICE_GPU
               : ty & CL_DEVICE_TYPE_ACCELERATOR ? TAI_DEVICE_ACCELERATOR
               : ty & CL_DEVICE_TYPE_CPU         ? TAI_DEVICE_CPU
                                                 : TAI_DEVICE_OTHER;
    in->unified = 0; /* buffers are cl_mem objects whatever the hardware shares */
    cl_ulong mem = 0;
    clGetDeviceInfo(dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
    in->mem_total = mem;
    in->mem_free = mem; /* OpenCL 1.2 cannot tell; the placement tracks its own use */
    in->ops = TAI_OP_ALL;
    for (int t = 0; t < TAI_TYPE_COUNT; t++)
        if (tai_type_valid(t)) in->types |= 1u << t;
}

static void describe(ocl *o) { describe_ids(o->index, o->platform, o->device, &o->info); }

int tai_opencl_query(int index, tai_device_info *out) {
    cl_platform_id p;
    cl_device_id d;
    if (find(index, &p, &d) != 0) return -1;
    describe_ids(index, p, d, out);
    return 0;
}

TinyAIStatus tai_opencl_device_open(int index, const char *cache_dir, tai_device **out) {
    return tai_opencl_device_open_source(index, cache_dir, NULL, -1, out);
}

TinyAIStatus tai_opencl_device_open_source(int index, const char *cache_dir, const char *source,
                                           int matvec, tai_device **out) {
    *out = NULL;
    ocl *o = calloc(1, sizeof *o);
    if (!o) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    o->index = index;
    o->source = source ? source : tai_opencl_source;
    o->want_matvec = matvec;
    if (find(index, &o->platform, &o->device) != 0) {
        free(o);
        const int n = tai_opencl_count();
        return tai_error(TINYAI_ERR_INVALID_ARG, "no OpenCL device %d (this machine has %d%s)",
                         index, n, n ? "" : ": no ICD loader, platform or device");
    }
    if (setup(o, cache_dir) != 0) {
        char dn[128] = "";
        clGetDeviceInfo(o->device, CL_DEVICE_NAME, sizeof dn - 1, dn, NULL);
        TinyAIStatus st = tai_error(TINYAI_ERR_DEVICE, "device opencl:%d (%s): %s", index, dn,
                                    o->err);
        ocl_destroy(o);
        return st;
    }
    describe(o);
    return tai_device_wrap(&ocl_ops, o, out);
}
