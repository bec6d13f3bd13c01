/*
 * model_util.h - small helpers shared by the model, golden, thread and
 * largest-block tests (header-only, test code only).
 *
 * - A seeded PRNG (splitmix64) whose sequence is the same on every build
 *   (64-bit, -m32, any compiler): the golden test depends on that.
 * - The run seed: CAPHEAP_SEED from the environment, else one derived from the
 *   clock and the pid; always printed as "seed=<n>" so a failure can be replayed.
 * - Stamping: every live block is filled with bytes derived from a token (the
 *   block's address mixed, taken when the block was stamped) and verified
 *   before it is freed or reallocated.
 * - An abort handler that turns a capheap corruption report into a longjmp
 *   back into the test, so a report fails the test with its context instead of
 *   killing the process.
 *
 * These programs deliberately do not use cmocka: they are long seeded loops
 * whose failure message must carry the seed and the step number, and they
 * must build for -m32, where this machine has no 32-bit libcmocka.
 */
#ifndef CAPHEAP_MODEL_UTIL_H
#define CAPHEAP_MODEL_UTIL_H

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capheap/config.h"
#include "capheap/heap.h"
#include "capheap/port.h"
#include "capheap/report.h"
#include "multi_heap.h"

#if CAPHEAP_POISONING_COMPREHENSIVE
#define MU_POISON_NAME "comprehensive"
#elif CAPHEAP_POISONING_LIGHT
#define MU_POISON_NAME "light"
#else
#define MU_POISON_NAME "none"
#endif

/* ------------------------------------------------------------------ PRNG */

typedef struct {
    uint64_t s;
} mu_rng_t;

static inline uint64_t mu_rng_next(mu_rng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform-enough integer in [0, n) (n > 0); the modulo bias is irrelevant here. */
static inline uint32_t mu_rng_below(mu_rng_t *r, uint32_t n)
{
    return (uint32_t)(mu_rng_next(r) % n);
}

/* Integer in [lo, hi] (lo <= hi, both < 2^32). */
static inline uint32_t mu_rng_range(mu_rng_t *r, uint32_t lo, uint32_t hi)
{
    return lo + (uint32_t)(mu_rng_next(r) % ((uint64_t)hi - lo + 1u));
}

static inline uint64_t mu_mix64(uint64_t x)
{
    mu_rng_t r = {x};
    return mu_rng_next(&r);
}

/* ------------------------------------------------------------------ environment */

/* Unsigned value of an environment variable, or dflt when unset or unparsable. */
static inline unsigned long long mu_env_ull(const char *name, unsigned long long dflt)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        return dflt;
    }
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 0);
    if (end == v || *end != '\0') {
        fprintf(stderr, "warning: ignoring %s=%s (not a number)\n", name, v);
        return dflt;
    }
    return x;
}

/* ------------------------------------------------------------------ clocks */

/* POSIX clocks where the C library has them (every host build); the bare-metal
 * C library of tests/target has only ISO C's time() and clock(), and its
 * clock() under QEMU's semihosting does not count seconds: whole seconds there. */
#if defined(CLOCK_MONOTONIC) && defined(CLOCK_REALTIME)
#define MU_HAVE_POSIX_CLOCKS 1
#else
#define MU_HAVE_POSIX_CLOCKS 0
#endif

/* Seconds on a monotonic clock, for the programs' own timing lines. */
static inline double mu_seconds(void)
{
#if MU_HAVE_POSIX_CLOCKS
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
#else
    return (double)time(NULL);
#endif
}

/* Entropy for a fresh seed: the wall clock (to the nanosecond where there is
 * one) and the process id, or the time and the processor clock. */
static inline uint64_t mu_entropy(void)
{
#if MU_HAVE_POSIX_CLOCKS
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40);
#else
    return (uint64_t)time(NULL) * 1000000007ull ^ (uint64_t)clock();
#endif
}

/* The run seed: CAPHEAP_SEED if set, else fresh. Printed either way. */
static inline uint64_t mu_seed(const char *program)
{
    uint64_t seed;
    const char *v = getenv("CAPHEAP_SEED");
    if (v != NULL && *v != '\0') {
        seed = (uint64_t)mu_env_ull("CAPHEAP_SEED", 1);
    } else {
        seed = mu_mix64(mu_entropy()) % 1000000000000ull;
    }
    printf("%s: seed=%llu (replay with CAPHEAP_SEED=%llu) poisoning=%s %d-bit\n", program,
           (unsigned long long)seed, (unsigned long long)seed, MU_POISON_NAME,
           (int)(sizeof(void *) * 8));
    fflush(stdout);
    return seed;
}

/* ------------------------------------------------------------------ stamping */

/* Token for a block at address p: its address, mixed, never 0. */
static inline uint32_t mu_token(const void *p)
{
    uint32_t t = (uint32_t)mu_mix64((uint64_t)(uintptr_t)p);
    return t ? t : 0x5EEDu;
}

/* Byte i of a block stamped with token t. Position-dependent so that shifted copies fail. */
static inline uint8_t mu_stamp_byte(uint32_t t, size_t i)
{
    uint32_t x = t ^ (uint32_t)(i * 0x9E3779B1u);
    return (uint8_t)(x ^ (x >> 13) ^ (x >> 24));
}

static inline void mu_stamp(void *p, size_t n, uint32_t t)
{
    uint8_t *b = (uint8_t *)p;
    for (size_t i = 0; i < n; i++) {
        b[i] = mu_stamp_byte(t, i);
    }
}

/* Index of the first byte in [0, n) that does not carry the stamp, or n if all do. */
static inline size_t mu_stamp_check(const void *p, size_t n, uint32_t t)
{
    const uint8_t *b = (const uint8_t *)p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != mu_stamp_byte(t, i)) {
            return i;
        }
    }
    return n;
}

/* ------------------------------------------------------------------ walk */

typedef struct {
    void *ptr;   /* raw block pointer from the walk */
    size_t size; /* raw capacity */
    int used;
} mu_wblock_t;

typedef struct {
    mu_wblock_t *b;
    size_t n, cap;
    int overflow;
} mu_walk_t;

static inline bool mu_walk_cb(void *block_ptr, size_t block_size, int block_used, void *user)
{
    mu_walk_t *w = (mu_walk_t *)user;
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 256;
        mu_wblock_t *nb = (mu_wblock_t *)realloc(w->b, nc * sizeof *nb);
        if (nb == NULL) {
            w->overflow = 1;
            return false;
        }
        w->b = nb;
        w->cap = nc;
    }
    w->b[w->n].ptr = block_ptr;
    w->b[w->n].size = block_size;
    w->b[w->n].used = block_used;
    w->n++;
    return true;
}

/* Walk the heap into w (w->n reset first). */
static inline void mu_walk(multi_heap_handle_t h, mu_walk_t *w)
{
    w->n = 0;
    w->overflow = 0;
    multi_heap_walk(h, mu_walk_cb, w);
}

/*
 * The poison overhead of one block of heap h, measured: full block size minus
 * usable size of a malloc(1) (task tracking's owner word included; 0 without
 * poisoning and tracking). capheap_poison_overhead() is one number for the
 * whole build, but a 16-aligned heap pads the head to 16 bytes, so its blocks
 * carry 20 bytes, not 12. Returns SIZE_MAX if malloc(1) fails (heap full or
 * too small).
 */
static inline size_t mu_heap_poison(multi_heap_handle_t h)
{
    if (capheap_poison_overhead() == 0) {
        return 0;
    }
    void *p = multi_heap_malloc(h, 1);
    if (p == NULL) {
        return SIZE_MAX;
    }
    size_t P = multi_heap_get_full_block_size(h, p) - multi_heap_get_allocated_size(h, p);
    multi_heap_free(h, p);
    return P;
}

/* Bytes of the owner word task tracking builds end every block with (part of
 * the per-block overhead capheap_heap_poison_overhead reports); 0 without. */
#if CAPHEAP_TASK_TRACKING
#define MU_OWNER_BYTES 4u
#else
#define MU_OWNER_BYTES 0u
#endif

/* Bytes between the raw block pointer of a walk and the user's pointer, for
 * per-block overhead P: the poison head (P less the tail canary and the
 * owner word), 0 without poisoning. */
static inline size_t mu_head_bytes(size_t P)
{
    return P > MU_OWNER_BYTES ? P - 4u - MU_OWNER_BYTES : 0u;
}

/* ------------------------------------------------------------------ aborts */

#if defined(__GNUC__)
#define MU_UNUSED __attribute__((unused))
#else
#define MU_UNUSED
#endif

/* Where a capheap abort (corruption report) jumps to; NULL: really abort. */
static jmp_buf *mu_abort_target MU_UNUSED;
static char mu_abort_reason[160] MU_UNUSED;

static inline void mu_abort_handler(const char *reason)
{
    snprintf(mu_abort_reason, sizeof mu_abort_reason, "%s", reason ? reason : "(null)");
    if (mu_abort_target != NULL) {
        longjmp(*mu_abort_target, 1);
    }
    fprintf(stderr, "capheap abort outside a test: %s\n", mu_abort_reason);
    abort();
}

#endif /* CAPHEAP_MODEL_UTIL_H */
