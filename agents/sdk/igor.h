/*
 * igor.h: single-header C SDK for igor agents (wasm32, freestanding).
 *
 * Build with Debian's clang, no libc:
 *   clang --target=wasm32 -mcpu=mvp -nostdlib -ffreestanding -O2 \
 *         -Wl,--no-entry -o agent.wasm agent.c
 * (agents/Makefile does this for every agents/<name>/agent.c.)
 *
 * The header is meant to be included by exactly one translation unit: the
 * agent. It defines the non-inline memcpy/memset the compiler may call.
 *
 * ABI (igor/abi.py is the source of truth):
 *   imports, module "igor": clock_now, rand_bytes, log_emit, wallet_balance,
 *     wallet_receipt_count, wallet_receipt, node_price, http_request.
 *   exports: agent_init, agent_tick, agent_checkpoint, agent_checkpoint_ptr,
 *     agent_resume, malloc, memory.
 * Only the imports an agent actually calls end up in its module, and each one
 * must be covered by a capability in agent.manifest.json, or the module fails
 * to instantiate.
 */
#ifndef IGOR_H
#define IGOR_H

#if !defined(__wasm32__)
#error "igor.h targets wasm32: build with clang --target=wasm32"
#endif

typedef unsigned char u8;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;
typedef __SIZE_TYPE__ igor_size_t;

#define IGOR_EXPORT(name) __attribute__((export_name(#name)))
#define IGOR_IMPORT(name) \
    __attribute__((import_module("igor"), import_name(#name)))

/* ---- Host calls (return codes: >= 0 success, negative = error; the host
 * never traps on a host-call error, so always check). ---- */

#define IGOR_OK 0
#define IGOR_ERR_GENERIC (-1)
#define IGOR_ERR_INPUT_TOO_LARGE (-2)
#define IGOR_ERR_HOST_NOT_ALLOWED (-3)
/* rand_bytes / wallet_receipt: write out of bounds; http_request: timeout. */
#define IGOR_ERR_MEMORY_OOB (-4)
#define IGOR_ERR_TIMEOUT (-4)
/* The first 4 bytes of the buffer hold the needed length (u32 LE). */
#define IGOR_ERR_BUFFER_TOO_SMALL (-5)

/* capability "clock": unix time in ns. Recorded, so replay sees the same. */
IGOR_IMPORT(clock_now) i64 igor_clock_now(void);
/* capability "rand": fills buf; 0 on success. */
IGOR_IMPORT(rand_bytes) i32 igor_rand_bytes(void *buf, u32 len);
/* capability "log" */
IGOR_IMPORT(log_emit) void igor_log_emit(const void *msg, u32 len);
/* capability "wallet": budget in micro-cents. */
IGOR_IMPORT(wallet_balance) i64 igor_wallet_balance(void);
IGOR_IMPORT(wallet_receipt_count) i32 igor_wallet_receipt_count(void);
/* Returns bytes written, -1 bad index, -4 buffer too small. */
IGOR_IMPORT(wallet_receipt) i32 igor_wallet_receipt(i32 index, void *buf, u32 cap);
/* capability "pricing": the node's price, micro-cents per second. */
IGOR_IMPORT(node_price) i64 igor_node_price(void);
/* capability "http": returns the HTTP status (> 0) and writes
 * [body_len u32 LE][body] into resp; see IGOR_ERR_* for failures.
 * Headers are text lines "Key: Value\n". */
IGOR_IMPORT(http_request)
i32 igor_http_request(const void *method, u32 method_len, const void *url,
                      u32 url_len, const void *headers, u32 headers_len,
                      const void *body, u32 body_len, void *resp, u32 resp_cap);

/* ---- Memory functions ----
 * clang lowers struct copies and large zero-inits to calls to memcpy/memset
 * even in freestanding mode, and without the bulk-memory feature there is no
 * instruction for them, so they must exist as real (external) symbols: a
 * static definition would not satisfy those calls. Weak so that a second
 * translation unit including this header still links. The byte loops are
 * not turned back into memcpy calls because -ffreestanding implies
 * -fno-builtin and LLVM never does that inside functions with these names. */
__attribute__((weak)) void *memcpy(void *dst, const void *src, igor_size_t n) {
    u8 *d = (u8 *)dst;
    const u8 *s = (const u8 *)src;
    while (n--) *d++ = *s++;
    return dst;
}

__attribute__((weak)) void *memset(void *dst, int c, igor_size_t n) {
    u8 *d = (u8 *)dst;
    while (n--) *d++ = (u8)c;
    return dst;
}

static inline igor_size_t igor_strlen(const char *s) {
    igor_size_t n = 0;
    while (s[n]) n++;
    return n;
}

/* ---- Bump allocator ----
 * The host calls the exported malloc(len) once per resume to get a place
 * for the checkpoint bytes, so an allocator that never frees is enough and
 * keeps the module small and its behaviour deterministic. The heap starts at
 * __heap_base (set by wasm-ld after data and stack) and grows the linear
 * memory with memory.grow (__builtin_wasm_memory_grow) when it runs out; the
 * host's memory limit makes memory.grow fail, and then malloc returns 0,
 * which the host reports as out of memory. */
extern u8 __heap_base;
static u32 igor_heap_top;

static inline void *igor_alloc(u32 size) {
    if (igor_heap_top == 0) igor_heap_top = (u32)(igor_size_t)&__heap_base;
    u32 start = (igor_heap_top + 15u) & ~15u;
    if (size == 0) size = 1;
    if (start < igor_heap_top || size > 0xFFFFFFFFu - start) return 0;
    u32 end = start + size;
    u32 have = (u32)__builtin_wasm_memory_size(0) * 65536u;
    if (end > have) {
        u32 need = (end - have + 65535u) / 65536u;
        if (__builtin_wasm_memory_grow(0, need) == (igor_size_t)-1) return 0;
    }
    igor_heap_top = end;
    return (void *)(igor_size_t)start;
}

/* Defines the exported malloc the host uses to hand over checkpoint bytes. */
#define IGOR_EXPORT_MALLOC()                                  \
    IGOR_EXPORT(malloc) void *igor_export_malloc(u32 size) { \
        return igor_alloc(size);                              \
    }

/* ---- Little-endian helpers for checkpoint state ----
 * Checkpoints cross machines and languages; igor's format is LE throughout,
 * so encode explicitly rather than memcpy a struct (padding, layout). */
static inline void igor_put_u32(u8 *p, u32 v) {
    p[0] = (u8)v;
    p[1] = (u8)(v >> 8);
    p[2] = (u8)(v >> 16);
    p[3] = (u8)(v >> 24);
}

static inline u32 igor_get_u32(const u8 *p) {
    return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24);
}

static inline void igor_put_u64(u8 *p, u64 v) {
    igor_put_u32(p, (u32)v);
    igor_put_u32(p + 4, (u32)(v >> 32));
}

static inline u64 igor_get_u64(const u8 *p) {
    return (u64)igor_get_u32(p) | ((u64)igor_get_u32(p + 4) << 32);
}

/* ---- Logging and formatting (no libc, so no printf) ---- */

static inline void igor_log_str(const char *s) {
    igor_size_t n = igor_strlen(s);
    if (n) igor_log_emit(s, (u32)n); /* the host ignores empty messages anyway */
}

/* A fixed-capacity string builder; output past the capacity is dropped.
 * Not inlined: at -O2 clang would unroll every literal into per-character
 * stores and triple the size of a module for no measurable gain. */
#define IGOR_NOINLINE __attribute__((noinline))

typedef struct {
    char *buf;
    u32 len;
    u32 cap;
} igor_fmt;

static inline void igor_fmt_init(igor_fmt *f, char *buf, u32 cap) {
    f->buf = buf;
    f->len = 0;
    f->cap = cap;
}

static inline void igor_fmt_char(igor_fmt *f, char c) {
    if (f->len < f->cap) f->buf[f->len++] = c;
}

static inline IGOR_NOINLINE void igor_fmt_str(igor_fmt *f, const char *s) {
    while (*s) igor_fmt_char(f, *s++);
}

static inline IGOR_NOINLINE void igor_fmt_u64(igor_fmt *f, u64 v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) igor_fmt_char(f, tmp[--n]);
}

static inline IGOR_NOINLINE void igor_fmt_i64(igor_fmt *f, i64 v) {
    if (v < 0) {
        igor_fmt_char(f, '-');
        igor_fmt_u64(f, (u64)0 - (u64)v);
    } else {
        igor_fmt_u64(f, (u64)v);
    }
}

/* Fixed width, lower case, zero padded: "0x" is up to the caller. */
static inline IGOR_NOINLINE void igor_fmt_hex(igor_fmt *f, u64 v, int digits) {
    while (digits--) igor_fmt_char(f, "0123456789abcdef"[(v >> (4 * digits)) & 15]);
}

static inline void igor_fmt_log(const igor_fmt *f) {
    if (f->len) igor_log_emit(f->buf, f->len);
}

/* ---- HTTP convenience ----
 * resp must hold 4 + the largest body expected; on success the body starts
 * at resp + 4 and its length is igor_http_body_len(resp). On
 * IGOR_ERR_BUFFER_TOO_SMALL, igor_http_body_len(resp) is the length needed. */
static inline i32 igor_http_get(const char *url, void *resp, u32 cap) {
    return igor_http_request("GET", 3, url, (u32)igor_strlen(url), 0, 0, 0, 0,
                             resp, cap);
}

static inline u32 igor_http_body_len(const void *resp) {
    return igor_get_u32((const u8 *)resp);
}

static inline const u8 *igor_http_body(const void *resp) {
    return (const u8 *)resp + 4;
}

#endif /* IGOR_H */
