/*
 * api_test.c - every function of libcapheap_malloc.so, run under LD_PRELOAD.
 *
 *   LD_PRELOAD=build/preload/libcapheap_malloc.so build/tests/preload/preload_api_test
 *
 * A plain program: it calls malloc & co. as any program does, and the
 * dynamic loader binds them to the preloaded library. It first proves that
 * (dladdr of the malloc the loader resolved must be in libcapheap_malloc), so
 * that a preload the loader silently ignored cannot pass. Then, one check per
 * contract of docs/preload.md: malloc(0) uniqueness, alignment and capacity
 * (every usable byte is written and read back with an address-derived stamp),
 * calloc and reallocarray overflow, realloc content, posix_memalign errors
 * without touching *out or errno, aligned_alloc / memalign / valloc /
 * pvalloc alignment (up to 256 MiB on 64-bit), huge requests, growth past the
 * first region and past the geometric cap, free and realloc(p, 0) giving the
 * memory back (no leak), four churning threads, and fork
 * (with and without threads busy in the allocator at the moment of the fork).
 *
 * Output is TAP-like: "ok N - what" or "not ok N - what (detail)". The exit
 * status is the number of failures (capped at 100). CAPHEAP_TEST_SEED sets the
 * random seed (printed).
 */
#define _GNU_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

/* Where results go that the compiler must not reason about (with opaque(), tap.h). */
static void *volatile sink;

static bool aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1u)) == 0;
}

/* Address-derived stamp: a block that moved or was overwritten shows it. */
static unsigned char stamp_byte(const void *base, size_t i)
{
    return (unsigned char)(((uintptr_t)base >> 4) * 31u + i * 7u + 1u);
}

static void stamp(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = stamp_byte(p, i);
}

static bool stamp_ok(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != stamp_byte(p, i))
            return false;
    return true;
}

/* The churn's cheaper variant: both ends (the bytes a neighbour's overrun or a
 * wrong block would hit first), at most 2 x 64 bytes. */
static void stamp_ends(unsigned char *p, size_t n)
{
    if (n <= 128) {
        stamp(p, n);
        return;
    }
    for (size_t i = 0; i < 64; i++) {
        p[i] = stamp_byte(p, i);
        p[n - 64 + i] = stamp_byte(p, n - 64 + i);
    }
}

static bool stamp_ends_ok(const unsigned char *p, size_t n)
{
    if (n <= 128)
        return stamp_ok(p, n);
    for (size_t i = 0; i < 64; i++)
        if (p[i] != stamp_byte(p, i) || p[n - 64 + i] != stamp_byte(p, n - 64 + i))
            return false;
    return true;
}

/* Pattern that does not depend on the address (survives realloc moves). */
static void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 13u);
}

static bool pattern_ok(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 13u))
            return false;
    return true;
}

static uint64_t rng_state;
static uint64_t rng(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ---- 0: are we preloaded? ------------------------------------------------ */

static void test_preloaded(void)
{
    const char *object = check_preloaded("malloc");
    void *free_sym = dlsym(RTLD_DEFAULT, "free");
    Dl_info finfo;
    memset(&finfo, 0, sizeof finfo);
    check(free_sym != NULL && dladdr(free_sym, &finfo) != 0 && finfo.dli_fname != NULL &&
              object != NULL && strcmp(finfo.dli_fname, object) == 0,
          "free comes from the same object", finfo.dli_fname);
    /* Only the malloc API leaves the object. */
    check(dlsym(RTLD_DEFAULT, "heap_caps_malloc") == NULL, "heap_caps_malloc is not exported", NULL);
    check(dlsym(RTLD_DEFAULT, "capheap_preload_grow") == NULL, "internal symbols are not exported", NULL);
}

/* ---- 1: malloc, free, usable size ------------------------------------------ */

static void test_malloc_basics(void)
{
    errno = 0;
    void *a = malloc(opaque(0)), *b = malloc(opaque(0));
    check(a != NULL && b != NULL && a != b, "malloc(0) returns distinct unique pointers", NULL);
    check(errno == 0, "malloc(0) leaves errno alone", NULL);
    free(a);
    free(b);
    free(NULL);
    check(true, "free(NULL) is a no-op", NULL);
    check(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) == 0", NULL);

    /* Under LIGHT/COMPREHENSIVE poisoning, heap_caps_get_allocated_size() keeps
     * ESP-IDF's meaning (capacity minus the canaries, spec 2.10) while the tail
     * canary sits right after the size asked for: writing every "usable" byte
     * would be reported as a bad tail. Those builds write only the request.
     * (docs/preload.md, "Poisoning builds"). */
    const char *poisoning = getenv("CAPHEAP_PRELOAD_POISONING");
    bool write_usable = poisoning == NULL || strcmp(poisoning, "NONE") == 0;
    if (!write_usable)
        printf("# poisoning %s: writing the requested bytes only, not all usable ones\n", poisoning);
    bool ok_align = true, ok_usable = true, ok_stamp = true;
    enum { N = 600 };
    static unsigned char *blocks[N];
    static size_t sizes[N];
    for (size_t i = 0; i < N; i++) {
        size_t n = (i < 300) ? i + 1 : (size_t)(rng(&rng_state) % 70000u) + 1u;
        errno = 0;
        blocks[i] = malloc(n);
        sizes[i] = malloc_usable_size(blocks[i]);
        if (blocks[i] == NULL || !aligned(blocks[i], 16))
            ok_align = false;
        if (sizes[i] < n)
            ok_usable = false;
        else if (write_usable)
            stamp(blocks[i], sizes[i]); /* every usable byte is ours */
        else {
            sizes[i] = n;
            stamp(blocks[i], n);
        }
    }
    for (size_t i = 0; i < N; i++) {
        if (sizes[i] && !stamp_ok(blocks[i], sizes[i]))
            ok_stamp = false;
        free(blocks[i]);
    }
    check(ok_align, "malloc results are 16-aligned", NULL);
    check(ok_usable, "malloc_usable_size >= request", NULL);
    check(ok_stamp, write_usable ? "every usable byte holds what was written" : "every requested byte holds what was written", NULL);

    errno = 0;
    sink = malloc(opaque(SIZE_MAX));
    check(sink == NULL && errno == ENOMEM, "malloc(SIZE_MAX) is NULL, ENOMEM", NULL);
    if (sizeof(void *) == 8) { /* 2 GiB may well succeed in a 32-bit process on a 64-bit kernel */
        errno = 0;
        sink = malloc(opaque(SIZE_MAX / 2));
        check(sink == NULL && errno == ENOMEM, "malloc(SIZE_MAX / 2) is NULL, ENOMEM", NULL);
    }
}

/* ---- 2: calloc ------------------------------------------------------------- */

static void test_calloc(void)
{
    bool zero = true;
    for (size_t n = 1; n < 20000; n = n * 3 + 1) {
        /* dirty memory first, so a recycled block would show */
        unsigned char *d = malloc(n * 8);
        if (d) {
            memset(d, 0xA5, n * 8);
            free(d);
        }
        unsigned char *p = calloc(n, 8);
        if (p == NULL) {
            zero = false;
            continue;
        }
        for (size_t i = 0; i < n * 8; i++)
            if (p[i] != 0)
                zero = false;
        free(p);
    }
    check(zero, "calloc memory is zero", NULL);
    errno = 0;
    sink = calloc(opaque(SIZE_MAX / 2), 3);
    check(sink == NULL && errno == ENOMEM, "calloc overflow is NULL, ENOMEM", NULL);
    errno = 0;
    sink = calloc(opaque(((size_t)1 << (sizeof(size_t) * 4)) + 1), ((size_t)1 << (sizeof(size_t) * 4)));
    check(sink == NULL && errno == ENOMEM, "calloc overflow (2^k+1 x 2^k) is NULL, ENOMEM", NULL);
    /* (2^(w-1) + 1) x 2 wraps to 2: an unchecked product would be served as a
     * 2-byte block (the two overflows above wrap to sizes that fail anyway). */
    errno = 0;
    sink = calloc(opaque(SIZE_MAX / 2 + 2), 2);
    check(sink == NULL && errno == ENOMEM, "calloc overflow wrapping to 2 bytes is NULL, ENOMEM", NULL);
    void *z = calloc(opaque(0), 16), *z2 = calloc(16, opaque(0));
    check(z != NULL && z2 != NULL && z != z2, "calloc of 0 bytes returns unique pointers", NULL);
    free(z);
    free(z2);
}

/* ---- 3: realloc, reallocarray ---------------------------------------------- */

static void test_realloc(void)
{
    unsigned char *p = realloc(NULL, 100);
    check(p != NULL, "realloc(NULL, n) allocates", NULL);
    fill_pattern(p, 100, 3);
    bool ok = true;
    size_t n = 100;
    /* grow through many sizes, across region boundaries, then shrink back */
    static const size_t steps[] = {200, 4000, 5000, 70000, 1 << 20, 3 << 20, 40 << 20, 1 << 20, 5000, 64, 10};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t keep = n < steps[i] ? n : steps[i];
        unsigned char *q = realloc(p, steps[i]);
        if (q == NULL || !aligned(q, 16) || !pattern_ok(q, keep, 3)) {
            ok = false;
            if (q == NULL)
                break;
        }
        p = q;
        n = steps[i];
        fill_pattern(p, n, 3);
        if (malloc_usable_size(p) < n)
            ok = false;
    }
    check(ok, "realloc grow and shrink keep the content", NULL);

    errno = 0;
    unsigned char *q = realloc(p, opaque(SIZE_MAX - 64));
    check(q == NULL && errno == ENOMEM && pattern_ok(p, n, 3), "realloc too large: NULL, ENOMEM, block intact",
          NULL);
    errno = 0;
    q = realloc(p, 0);
    check(q == NULL && errno == 0, "realloc(p, 0) frees and returns NULL", NULL);

    void *r = realloc(NULL, 0);
    check(r != NULL, "realloc(NULL, 0) is malloc(0)", NULL);
    free(r);

    unsigned char *a = reallocarray(NULL, 10, 10);
    check(a != NULL, "reallocarray(NULL, 10, 10)", NULL);
    fill_pattern(a, 100, 9);
    errno = 0;
    unsigned char *b = reallocarray(a, opaque(SIZE_MAX / 4), 8);
    /* a stays valid when reallocarray fails; GCC's -Wuse-after-free cannot know that */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif
    check(b == NULL && errno == ENOMEM && pattern_ok(a, 100, 9), "reallocarray overflow: NULL, ENOMEM, p intact",
          NULL);
    /* (2^(w-1) + 1) x 2 wraps to 2: an unchecked product would shrink a to 2 bytes. */
    errno = 0;
    b = reallocarray(a, opaque(SIZE_MAX / 2 + 2), 2);
    check(b == NULL && errno == ENOMEM && pattern_ok(a, 100, 9),
          "reallocarray overflow wrapping to 2 bytes: NULL, ENOMEM, p intact", NULL);
    if (b != NULL) /* the product was not checked: a is gone, b is all that is left */
        a = b;
    b = reallocarray(a, 1000, 10);
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif
    check(b != NULL && pattern_ok(b, 100, 9), "reallocarray grows and keeps content", NULL);
    free(b);
}

/* ---- 4: aligned allocation --------------------------------------------------- */

static void test_posix_memalign(void)
{
    void *sentinel = (void *)(uintptr_t)0x1234;
    static const size_t bad[] = {0, 3, 12, 24, sizeof(void *) / 2, sizeof(void *) * 3, 100};
    bool einval = true;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *out = sentinel;
        errno = 77;
        int rc = posix_memalign(&out, opaque(bad[i]), 16);
        if (rc != EINVAL || out != sentinel || errno != 77)
            einval = false;
    }
    check(einval, "posix_memalign EINVAL: bad alignment, *out and errno untouched", NULL);

    void *out = sentinel;
    errno = 77;
    int rc = posix_memalign(&out, 64, opaque(SIZE_MAX - 100));
    check(rc == ENOMEM && out == sentinel && errno == 77, "posix_memalign ENOMEM: *out and errno untouched", NULL);

    bool ok = true;
    for (size_t a = sizeof(void *); a <= ((size_t)1 << 20); a <<= 1) {
        void *p = NULL;
        errno = 77;
        rc = posix_memalign(&p, a, a * 3 + 5);
        if (rc != 0 || p == NULL || !aligned(p, a) || errno != 77 || malloc_usable_size(p) < a * 3 + 5)
            ok = false;
        else
            stamp(p, a * 3 + 5);
        if (p && !stamp_ok(p, a * 3 + 5))
            ok = false;
        free(p);
    }
    check(ok, "posix_memalign alignments 8..1 MiB", NULL);
    void *z = NULL;
    rc = posix_memalign(&z, 64, 0);
    check(rc == 0 && z != NULL && aligned(z, 64), "posix_memalign size 0 gives a unique pointer", NULL);
    free(z);
}

static void test_aligned_alloc_memalign(void)
{
    void *p = aligned_alloc(64, 100);
    check(p != NULL && aligned(p, 64), "aligned_alloc(64, 100)", NULL);
    free(p);
    p = aligned_alloc(4096, 4096 * 3);
    check(p != NULL && aligned(p, 4096), "aligned_alloc(4096, 12288)", NULL);
    free(p);
    p = aligned_alloc(1, 10);
    check(p != NULL, "aligned_alloc(1, 10)", NULL);
    free(p);
    errno = 0;
    sink = aligned_alloc(opaque(24), 48);
    check(sink == NULL && errno == EINVAL, "aligned_alloc(24, 48): NULL, EINVAL", NULL);
    errno = 0;
    sink = aligned_alloc(opaque(0), 48);
    check(sink == NULL && errno == EINVAL, "aligned_alloc(0, 48): NULL, EINVAL", NULL);

    p = memalign(opaque(24), 10);
    check(p != NULL && aligned(p, 32), "memalign(24, n) rounds the alignment up to 32 (glibc)", NULL);
    free(p);

    /* huge alignments: each needs a region with room for size + alignment */
    size_t top = sizeof(void *) == 8 ? ((size_t)256 << 20) : ((size_t)32 << 20);
    bool ok = true;
    for (size_t a = (size_t)1 << 16; a <= top; a <<= 2) {
        unsigned char *m = memalign(a, 1000);
        if (m == NULL || !aligned(m, a)) {
            ok = false;
            printf("# memalign(%zu, 1000) = %p\n", a, (void *)m);
        } else {
            stamp(m, 1000);
            ok = ok && stamp_ok(m, 1000);
        }
        free(m);
    }
    check(ok, "memalign with alignments 64 KiB .. 256 MiB (32 MiB on 32-bit)", NULL);
    if (sizeof(void *) == 8) { /* 2 GiB alignment can succeed in a 32-bit process */
        errno = 0;
        sink = memalign(opaque((size_t)1 << (sizeof(size_t) * 8 - 1)), 16);
        check(sink == NULL && errno == ENOMEM, "memalign(2^63, 16): NULL, ENOMEM", NULL);
    }
    errno = 0;
    sink = memalign(opaque(SIZE_MAX), 16);
    check(sink == NULL && errno == EINVAL, "memalign(SIZE_MAX, 16): NULL, EINVAL", NULL);
}

static void test_valloc(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *v = valloc(10);
    check(v != NULL && aligned(v, page) && malloc_usable_size(v) >= 10, "valloc is page-aligned", NULL);
    free(v);
    void *pv = pvalloc(1);
    check(pv != NULL && aligned(pv, page) && malloc_usable_size(pv) >= page, "pvalloc(1): a whole page", NULL);
    if (pv)
        memset(pv, 1, page);
    free(pv);
    pv = pvalloc(page + 1);
    check(pv != NULL && aligned(pv, page) && malloc_usable_size(pv) >= 2 * page, "pvalloc(page + 1): two pages",
          NULL);
    free(pv);
    pv = pvalloc(0);
    check(pv != NULL && aligned(pv, page), "pvalloc(0): one page", NULL);
    free(pv);
    /* Every size rounds up to whole pages, all of them the caller's (pvalloc(0):
     * one page), also where one page more or less is the only difference. */
    const size_t sizes[] = {0, 1, page - 1, page, page + 1, 2 * page + 1, 3 * page + 5, 7 * page};
    bool ok = true;
    char detail[96] = "";
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i], whole = n == 0 ? page : (n + page - 1) / page * page;
        unsigned char *w = pvalloc(opaque(n));
        if (w == NULL || !aligned(w, page) || malloc_usable_size(w) < whole) {
            if (ok)
                snprintf(detail, sizeof detail, "pvalloc(%zu) = %p, usable %zu, want %zu", n, (void *)w,
                         w ? malloc_usable_size(w) : 0u, whole);
            ok = false;
        } else {
            stamp(w, whole);
            ok = ok && stamp_ok(w, whole);
        }
        free(w);
    }
    check(ok, "pvalloc(n) for n = 0, 1, page - 1, page, page + 1, 2 pages + 1, ...: whole pages, all usable", detail);
    errno = 0;
    sink = pvalloc(opaque(SIZE_MAX - 10));
    check(sink == NULL && errno == ENOMEM, "pvalloc(SIZE_MAX - 10): NULL, ENOMEM", NULL);
}

/* ---- 5: growth ------------------------------------------------------------- */

static void test_growth(void)
{
    /* 1 MiB blocks well past the first region (32 MiB on 64-bit, 4 MiB on
     * 32-bit); stamp only the first and last 64 bytes so RSS stays small. */
    enum { COUNT = 300 };
    static unsigned char *b[COUNT];
    size_t sz = (size_t)1 << 20;
    bool ok = true;
    for (int i = 0; i < COUNT; i++) {
        b[i] = malloc(sz);
        if (b[i] == NULL) {
            ok = false;
            break;
        }
        stamp(b[i], 64);
        stamp(b[i] + sz - 64, 64);
    }
    for (int i = 0; i < COUNT; i++) {
        if (b[i] && (!stamp_ok(b[i], 64) || !stamp_ok(b[i] + sz - 64, 64)))
            ok = false;
        free(b[i]);
        b[i] = NULL;
    }
    check(ok, "300 x 1 MiB: the heaps grow", NULL);

    /* A request bigger than the geometric cap gets a region of its own. */
    size_t big = sizeof(void *) == 8 ? ((size_t)3 << 30) : ((size_t)300 << 20);
    unsigned char *g = malloc(opaque(big));
    if (sizeof(void *) == 8) {
        check(g != NULL, "a 3 GiB block (its own region)", NULL);
    } else if (g == NULL) {
        printf("# 300 MiB block refused on 32-bit (address space): acceptable\n");
    }
    if (g) {
        g[0] = 1;
        g[big - 1] = 2;
        check(g[0] == 1 && g[big - 1] == 2, "first and last byte of the big block", NULL);
    }
    free(g);

    /* A request no region can hold (one region is < 4 GiB): ENOMEM, quickly. */
    if (sizeof(void *) == 8) {
        errno = 0;
        sink = malloc(opaque((size_t)5 << 30));
        check(sink == NULL && errno == ENOMEM, "malloc(5 GiB): NULL, ENOMEM (one region < 4 GiB)", NULL);
    }
}

/* free and realloc(p, 0) give the block back to its heap: 200 blocks of 1 GiB
 * (64 MiB on 32-bit), each released before the next, need one block's room;
 * kept, they would be 200 GiB, more than the 64 regions ever map (about
 * 118 GiB), and the allocations would start failing. Only the first byte of
 * each block is written: address space, not memory (skipped under
 * comprehensive poisoning, which fills every block). */
static void test_release(void)
{
    const char *poisoning = getenv("CAPHEAP_PRELOAD_POISONING");
    if (poisoning != NULL && strcmp(poisoning, "COMPREHENSIVE") == 0) {
        /* each block would be filled with 0xCE, then 0xFE: 400 GiB written */
        printf("# poisoning COMPREHENSIVE: free / realloc(p, 0) release test skipped\n");
        return;
    }
    size_t sz = sizeof(void *) == 8 ? (size_t)1 << 30 : (size_t)64 << 20;
    int ok_free = 0, ok_realloc = 0;
    for (int i = 0; i < 200; i++) {
        unsigned char *p = malloc(opaque(sz));
        if (p == NULL)
            break;
        p[0] = 1;
        free(p);
        ok_free++;
    }
    for (int i = 0; i < 200; i++) {
        unsigned char *p = malloc(opaque(sz));
        if (p == NULL)
            break;
        p[0] = 1;
        if (realloc(p, 0) != NULL)
            break;
        ok_realloc++;
    }
    char detail[64];
    snprintf(detail, sizeof detail, "%d of 200", ok_free);
    check(ok_free == 200, "free gives the block back: 200 x malloc(1 GiB) + free", detail);
    snprintf(detail, sizeof detail, "%d of 200", ok_realloc);
    check(ok_realloc == 200, "realloc(p, 0) gives the block back: 200 x malloc(1 GiB) + realloc(p, 0)", detail);
}

/* ---- 6: threads ------------------------------------------------------------ */

struct churn_arg {
    uint64_t seed;
    unsigned iterations;
    volatile int *stop; /* NULL: run the iterations; else run until *stop */
    bool ok;
};

static void *churn(void *varg)
{
    struct churn_arg *arg = varg;
    enum { SLOTS = 256 };
    unsigned char *slot[SLOTS] = {0};
    size_t size[SLOTS] = {0};
    uint64_t s = arg->seed;
    arg->ok = true;
    for (unsigned it = 0; arg->stop ? !*arg->stop : it < arg->iterations; it++) {
        unsigned i = (unsigned)(rng(&s) % SLOTS);
        uint64_t r = rng(&s);
        if (slot[i]) {
            if (!stamp_ends_ok(slot[i], size[i]))
                arg->ok = false;
            if (r % 4 == 0) {
                size_t n = (size_t)(r >> 8) % 3000u + 1u;
                unsigned char *q = realloc(slot[i], n);
                if (q == NULL) {
                    arg->ok = false;
                    continue;
                }
                slot[i] = q;
                size[i] = n;
                stamp_ends(q, n);
                continue;
            }
            free(slot[i]);
            slot[i] = NULL;
        } else {
            size_t n = (r % 16 == 0) ? (size_t)(r >> 8) % 200000u + 1u : (size_t)(r >> 8) % 512u + 1u;
            unsigned char *p = (r % 8 == 1) ? memalign(64, n) : (r % 8 == 2) ? calloc(1, n) : malloc(n);
            if (p == NULL) {
                arg->ok = false;
                continue;
            }
            slot[i] = p;
            size[i] = n;
            stamp_ends(p, n);
        }
    }
    for (unsigned i = 0; i < SLOTS; i++) {
        if (slot[i] && !stamp_ends_ok(slot[i], size[i]))
            arg->ok = false;
        free(slot[i]);
    }
    return NULL;
}

static void test_threads(void)
{
    enum { T = 4 };
    pthread_t th[T];
    struct churn_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (struct churn_arg){.seed = rng(&rng_state) | 1u, .iterations = 100000, .stop = NULL};
        if (pthread_create(&th[i], NULL, churn, &args[i]) != 0) {
            check(false, "pthread_create", NULL);
            return;
        }
    }
    bool ok = true;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        ok = ok && args[i].ok;
    }
    check(ok, "4 threads churn malloc/calloc/memalign/realloc/free, stamps intact", NULL);
}

/* ---- 7: fork --------------------------------------------------------------- */

/* In the child: allocate and free, check the parent's block, exit 0. Any
 * deadlock becomes SIGALRM. */
static int child_work(const unsigned char *parent_block, size_t n)
{
    alarm(20);
    if (!stamp_ok(parent_block, n))
        return 3;
    uint64_t s = 42;
    for (int i = 0; i < 2000; i++) {
        size_t k = (size_t)(rng(&s) % 5000u) + 1u;
        unsigned char *p = malloc(k);
        if (p == NULL)
            return 4;
        stamp_ends(p, k);
        if (!stamp_ends_ok(p, k))
            return 5;
        free(p);
    }
    unsigned char *big = malloc((size_t)64 << 20); /* may need a new region in the child */
    if (big == NULL)
        return 6;
    big[0] = 1;
    free(big);
    return 0;
}

static bool fork_once(const unsigned char *block, size_t n, char *why, size_t why_len)
{
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, why_len, "fork: %s", strerror(errno));
        return false;
    }
    if (pid == 0)
        _exit(child_work(block, n));
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        snprintf(why, why_len, "waitpid failed");
        return false;
    }
    if (WIFSIGNALED(status)) {
        snprintf(why, why_len, "child killed by signal %d%s", WTERMSIG(status),
                 WTERMSIG(status) == SIGALRM ? " (deadlock: a lock held across fork)" : "");
        return false;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(why, why_len, "child exit status %d", WEXITSTATUS(status));
        return false;
    }
    return true;
}

static void test_fork(void)
{
    size_t n = 5000;
    unsigned char *block = malloc(n);
    stamp(block, n);
    char why[160] = "";
    bool ok = fork_once(block, n, why, sizeof why);
    check(ok, "fork: the child allocates and frees, exits 0", why);

    /* The parent goes on. */
    unsigned char *after = malloc(100000);
    check(after != NULL && stamp_ok(block, n), "fork: the parent goes on allocating", NULL);
    free(after);

    /* Fork while other threads are inside the allocator: without the atfork
     * handlers the child would inherit a held heap lock and hang. */
    enum { T = 2 };
    volatile int stop = 0;
    pthread_t th[T];
    struct churn_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (struct churn_arg){.seed = rng(&rng_state) | 1u, .iterations = 0, .stop = &stop};
        pthread_create(&th[i], NULL, churn, &args[i]);
    }
    ok = true;
    why[0] = 0;
    for (int k = 0; k < 30 && ok; k++)
        ok = fork_once(block, n, why, sizeof why);
    stop = 1;
    bool threads_ok = true;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        threads_ok = threads_ok && args[i].ok;
    }
    check(ok, "fork x30 while 2 threads churn: every child works", why);
    check(threads_ok, "fork: the parent's threads keep their blocks intact", NULL);
    free(block);
}

int main(void)
{
    const char *seed_env = getenv("CAPHEAP_TEST_SEED");
    rng_state = seed_env ? strtoull(seed_env, NULL, 0) : 0x9E3779B97F4A7C15ULL;
    if (rng_state == 0)
        rng_state = 1;
    printf("# preload_api_test: seed 0x%llx (CAPHEAP_TEST_SEED to replay)\n", (unsigned long long)rng_state);

    test_preloaded();
    if (failures) {
        printf("# not running under libcapheap_malloc.so: stopping\n");
        return 1;
    }
    test_malloc_basics();
    test_calloc();
    test_realloc();
    test_posix_memalign();
    test_aligned_alloc_memalign();
    test_valloc();
    test_growth();
    test_release();
    test_threads();
    test_fork();

    printf("1..%d\n# %d failure(s)\n", checks, failures);
    return failures > 100 ? 100 : failures;
}
