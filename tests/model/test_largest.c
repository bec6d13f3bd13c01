/*
 * test_largest.c - largest_free_block is exactly the largest malloc() that
 * succeeds, in many random heap states.
 *
 * For each state (its own seed, region size 512 B .. 256 KiB, heap alignment
 * 4/8/16, start offset 0..12) a fragmentation pattern is built: random churn,
 * a checkerboard, aligned allocations (16..1024), fill-to-failure then random
 * frees, realloc growth, and sizes at size-class boundaries (2^k +- d). At
 * several checkpoints of each state:
 *
 *   L = multi_heap_get_info().largest_free_block
 *   - malloc(L + 1) == NULL, malloc(L) != NULL, malloc(n) != NULL for random
 *     n <= L, and aligned_alloc(L, heap alignment) != NULL (each freed at once,
 *     after which free bytes and check are as before);
 *   - L equals what the walk says the largest free block can hold: the largest
 *     free block's raw capacity minus the poison overhead (0 if that is not
 *     positive); by malloc's contract ("NULL iff no free block can hold size
 *     bytes") nothing else is possible;
 *   - draining: repeatedly malloc(L) of the current L until L is 0, each state
 *     again probed with malloc(L + 1); then everything is freed.
 *
 * Environment: CAPHEAP_SEED (replay), CAPHEAP_LARGEST_STATES (default 300).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getpid, dirent, pthreads */

#include <stdarg.h>

#include "model_util.h"

#define MAX_REGION (256u * 1024u)
#define MAX_BLOCKS 8192u

static _Alignas(4096) uint8_t g_buf[MAX_REGION + 64];

typedef struct {
    void *p;
    size_t size;
    uint32_t token;
} lblk_t;

typedef struct {
    uint64_t seed;
    unsigned state;
    int pattern;
    const char *where;
    size_t region, align, P;
    multi_heap_handle_t h;
    mu_rng_t rng;
    lblk_t blk[MAX_BLOCKS];
    size_t n;
    mu_walk_t walk;
    unsigned long probes;
    unsigned long beyond_search; /* checkpoints where the largest block sat deeper than the search looks */
    bool quiet; /* after many failures: count them, print nothing */
    jmp_buf jb;
} lt_t;

static const char *const pattern_names[] = {"churn",          "checkerboard",     "aligned",
                                            "fill-then-free", "realloc-growth",   "class-boundaries",
                                            "deep-class-list"};
#define N_PATTERNS (int)(sizeof pattern_names / sizeof pattern_names[0])

static void lt_fail(lt_t *t, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4), noreturn))
#endif
    ;

static void lt_fail(lt_t *t, int line, const char *fmt, ...)
{
    va_list ap;
    if (t->quiet) {
        longjmp(t->jb, 1);
    }
    fflush(stdout);
    fprintf(stderr, "FAIL test_largest.c:%d seed=%llu state=%u pattern=%s region=%zu align=%zu at %s: ",
            line, (unsigned long long)t->seed, t->state, pattern_names[t->pattern], t->region, t->align,
            t->where);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n  live blocks=%zu free_size=%zu (replay: CAPHEAP_SEED=%llu)\n", t->n,
            multi_heap_free_size(t->h), (unsigned long long)t->seed);
    if (t->region <= 4096) {
        multi_heap_dump(t->h);
    }
    longjmp(t->jb, 1);
}

#define LCHECK(t, cond, ...)                          \
    do {                                              \
        if (!(cond)) {                                \
            lt_fail((t), __LINE__, __VA_ARGS__);      \
        }                                             \
    } while (0)

/* ------------------------------------------------------------------ blocks */

static bool lt_alloc(lt_t *t, size_t size, size_t align)
{
    if (t->n == MAX_BLOCKS) {
        return false;
    }
    void *p = align ? multi_heap_aligned_alloc(t->h, size, align) : multi_heap_malloc(t->h, size);
    if (p == NULL) {
        return false;
    }
    LCHECK(t, align == 0 || (uintptr_t)p % align == 0, "aligned_alloc(%zu, %zu) = %p misaligned", size,
           align, p);
    lblk_t *b = &t->blk[t->n++];
    b->p = p;
    b->size = size;
    b->token = mu_token(p);
    mu_stamp(p, size < 64 ? size : 64, b->token);
    return true;
}

static void lt_free_at(lt_t *t, size_t i)
{
    lblk_t *b = &t->blk[i];
    size_t n = b->size < 64 ? b->size : 64;
    LCHECK(t, mu_stamp_check(b->p, n, b->token) == n, "block %p lost its stamp", b->p);
    multi_heap_free(t->h, b->p);
    t->blk[i] = t->blk[--t->n];
}

static void lt_free_fraction(lt_t *t, uint32_t percent)
{
    for (size_t i = 0; i < t->n;) {
        if (mu_rng_below(&t->rng, 100) < percent) {
            lt_free_at(t, i);
        } else {
            i++;
        }
    }
}

/* ------------------------------------------------------------------ the property */

static size_t expected_largest(lt_t *t)
{
    mu_walk(t->h, &t->walk);
    LCHECK(t, !t->walk.overflow, "walk: out of host memory");
    size_t best = 0;
    for (size_t k = 0; k < t->walk.n; k++) {
        const mu_wblock_t *w = &t->walk.b[k];
        if (w->used) {
            continue;
        }
        /* The whole block holds capacity - P user bytes (head, data, tail); a capacity
         * need not be a multiple of the alignment (the pool's last block). */
        if (w->size > t->P && w->size - t->P > best) {
            best = w->size - t->P;
        }
    }
    return best;
}

static void probe_one(lt_t *t, size_t n, bool aligned)
{
    size_t f = multi_heap_free_size(t->h);
    void *p = aligned ? multi_heap_aligned_alloc(t->h, n, t->align) : multi_heap_malloc(t->h, n);
    LCHECK(t, p != NULL, "largest_free_block allows %zu but %s(%zu) failed", n,
           aligned ? "aligned_alloc" : "malloc", n);
    LCHECK(t, multi_heap_get_allocated_size(t->h, p) >= n, "usable size below %zu", n);
    mu_stamp(p, n, 0xA11CEu);
    LCHECK(t, multi_heap_check(t->h, true), "check failed with the probe block of %zu", n);
    multi_heap_free(t->h, p);
    LCHECK(t, multi_heap_free_size(t->h) == f, "free size %zu after the probe, %zu before",
           multi_heap_free_size(t->h), f);
}

static void checkpoint(lt_t *t, const char *where)
{
    t->where = where;
    t->probes++;
    LCHECK(t, multi_heap_check(t->h, true), "multi_heap_check failed");
    multi_heap_info_t info;
    multi_heap_get_info(t->h, &info);
    size_t L = info.largest_free_block;
    size_t X = expected_largest(t);
    if (X > L) {
        /* multi_heap.h: malloc's O(1) search sees the first block of the request's own
         * class; a larger block deeper in that list is not found, and largest_free_block
         * must then say exactly what malloc can do, not what the walk sees. */
        void *px = multi_heap_malloc(t->h, X);
        LCHECK(t, px == NULL,
               "largest_free_block %zu, but malloc(%zu) succeeds: the statistic under-reports", L, X);
        t->beyond_search++;
    }
    LCHECK(t, L <= X,
           "largest_free_block %zu, but the largest free block holds only %zu (raw capacity minus poison %zu)",
           L, X, t->P);
    void *q = multi_heap_malloc(t->h, L + 1);
    LCHECK(t, q == NULL, "largest_free_block %zu but malloc(%zu) = %p", L, L + 1, q);
    if (L == 0) {
        return;
    }
    probe_one(t, L, false);
    probe_one(t, L, true);
    for (int k = 0; k < 3; k++) {
        probe_one(t, 1 + mu_rng_below(&t->rng, (uint32_t)L), false);
    }
    if (L > 16) {
        probe_one(t, L - mu_rng_below(&t->rng, 16), false);
    }
}

/* malloc(largest) until nothing is left, probing each state; then free those blocks. */
static void drain(lt_t *t)
{
    size_t base = t->n;
    t->where = "drain";
    for (int k = 0; k < 64; k++) {
        multi_heap_info_t info;
        multi_heap_get_info(t->h, &info);
        size_t L = info.largest_free_block;
        /* L may be below the walk's largest block only as multi_heap.h allows: that block
         * is beyond the bounded search, and malloc of its size fails (checkpoint()). */
        LCHECK(t, L <= expected_largest(t), "drain step %d: largest_free_block %zu, walk says %zu", k,
               L, expected_largest(t));
        void *q = multi_heap_malloc(t->h, L + 1);
        LCHECK(t, q == NULL, "drain step %d: largest %zu but malloc(%zu) = %p", k, L, L + 1, q);
        if (L == 0) {
            break;
        }
        LCHECK(t, lt_alloc(t, L, 0) || t->n == MAX_BLOCKS, "drain step %d: malloc(largest %zu) failed",
               k, L);
        LCHECK(t, multi_heap_check(t->h, true), "drain step %d: check failed", k);
    }
    while (t->n > base) {
        lt_free_at(t, t->n - 1);
    }
}

/* ------------------------------------------------------------------ patterns */

static size_t rnd_size(lt_t *t, size_t max)
{
    if (max < 1) {
        max = 1;
    }
    uint32_t k = mu_rng_below(&t->rng, 100);
    size_t cap = k < 60 ? 64 : k < 90 ? 1024 : max;
    if (cap > max) {
        cap = max;
    }
    return 1 + mu_rng_below(&t->rng, (uint32_t)cap);
}

static void fill_until_fail(lt_t *t, size_t max, int fails_allowed)
{
    int fails = 0;
    while (fails < fails_allowed && t->n < MAX_BLOCKS) {
        if (!lt_alloc(t, rnd_size(t, max), 0)) {
            fails++;
        }
    }
}

static void build(lt_t *t)
{
    size_t R = t->region;
    switch (t->pattern) {
    case 0: /* churn */
        for (int i = 0; i < 400; i++) {
            if (t->n > 0 && mu_rng_below(&t->rng, 100) < 45) {
                lt_free_at(t, mu_rng_below(&t->rng, (uint32_t)t->n));
            } else {
                lt_alloc(t, rnd_size(t, R / 8), 0);
            }
        }
        break;
    case 1: { /* checkerboard: alternate two sizes, free every other */
        size_t a = rnd_size(t, R / 16), b = rnd_size(t, R / 16);
        for (int i = 0; t->n < MAX_BLOCKS; i++) {
            if (!lt_alloc(t, (i & 1) ? a : b, 0)) {
                break;
            }
        }
        for (size_t i = 0; i < t->n; i++) { /* blocks are in allocation order */
            if (i % 2 == 0) {
                t->blk[i].size = (size_t)-1; /* mark */
            }
        }
        for (size_t i = t->n; i-- > 0;) {
            if (t->blk[i].size == (size_t)-1) {
                t->blk[i].size = 0; /* stamp of 0 bytes: nothing to check */
                lt_free_at(t, i);
            }
        }
        break;
    }
    case 2: /* aligned allocations interleaved with plain ones */
        for (int i = 0; i < 300; i++) {
            size_t align = (size_t)1 << mu_rng_range(&t->rng, 4, 10);
            if (!lt_alloc(t, rnd_size(t, R / 16), mu_rng_below(&t->rng, 3) ? align : 0) &&
                mu_rng_below(&t->rng, 4) == 0) {
                break;
            }
            if (t->n > 0 && mu_rng_below(&t->rng, 100) < 30) {
                lt_free_at(t, mu_rng_below(&t->rng, (uint32_t)t->n));
            }
        }
        lt_free_fraction(t, 50);
        break;
    case 3: /* fill to failure, free a random share */
        fill_until_fail(t, R / 4, 8);
        lt_free_fraction(t, 30 + mu_rng_below(&t->rng, 41));
        break;
    case 4: /* realloc growth */
        for (int i = 0; i < 24; i++) {
            lt_alloc(t, rnd_size(t, 256), 0);
        }
        for (int i = 0; i < 300 && t->n > 0; i++) {
            size_t k = mu_rng_below(&t->rng, (uint32_t)t->n);
            lblk_t *b = &t->blk[k];
            size_t ns = mu_rng_below(&t->rng, 3) ? b->size + rnd_size(t, R / 32) : rnd_size(t, b->size);
            size_t keep = (b->size < ns ? b->size : ns);
            keep = keep < 64 ? keep : 64;
            size_t had = b->size < 64 ? b->size : 64;
            LCHECK(t, mu_stamp_check(b->p, had, b->token) == had, "block lost its stamp before realloc");
            void *q = multi_heap_realloc(t->h, b->p, ns);
            if (q != NULL) {
                LCHECK(t, mu_stamp_check(q, keep, b->token) == keep, "realloc lost the contents");
                b->p = q;
                b->size = ns;
                b->token = mu_token(q);
                mu_stamp(q, ns < 64 ? ns : 64, b->token);
            } else if (mu_rng_below(&t->rng, 2) == 0) {
                lt_free_at(t, k);
            }
        }
        break;
    case 6: { /* the largest free block deep in a crowded free list of its size class */
        /* Block sizes in [base, base + base/16) share one second-level class of a
         * TLSF-like engine (16 classes per power of two). Free Y (the largest that
         * stays), then Z (larger), then ten smaller ones S, each between used
         * separators so nothing merges; then take Z back. A list that keeps the
         * larger of head and newcomer in front now reads S x 10, Y: Y is the 11th
         * entry. malloc of Y's size must still succeed (a free block holds it),
         * and largest_free_block must say so. */
        size_t base = 1024;
        while (base * 2 * 16 <= R) {
            base *= 2;
        }
        if (base * 16 > R) {
            goto churn; /* region too small for twelve blocks of base bytes */
        }
        size_t g = base / 16;
        size_t P = t->P;
        size_t n_small = base - P, n_y = base + g / 2 - P, n_z = base + g / 2 + 16 - P;
        size_t first = t->n;
        bool ok = lt_alloc(t, n_y, 0) && lt_alloc(t, 1, 0) && lt_alloc(t, n_z, 0) && lt_alloc(t, 1, 0);
        for (int i = 0; ok && i < 10; i++) {
            ok = lt_alloc(t, n_small, 0) && lt_alloc(t, 1, 0);
        }
        LCHECK(t, ok, "deep-class-list: could not allocate the pattern (base %zu)", base);
        for (int k = 0; k < 256; k++) { /* use up everything else */
            multi_heap_info_t info;
            multi_heap_get_info(t->h, &info);
            if (info.largest_free_block == 0 || !lt_alloc(t, info.largest_free_block, 0)) {
                break;
            }
        }
        /* free Y, Z, then the ten small ones: indexes first, first + 2, first + 4 + 2i */
        void *y = t->blk[first].p, *z = t->blk[first + 2].p;
        void *smalls[10];
        for (int i = 0; i < 10; i++) {
            smalls[i] = t->blk[first + 4 + 2 * (size_t)i].p;
        }
        void *order[12] = {y, z};
        memcpy(order + 2, smalls, sizeof smalls);
        for (int k = 0; k < 12; k++) {
            for (size_t i = 0; i < t->n; i++) {
                if (t->blk[i].p == order[k]) {
                    lt_free_at(t, i);
                    break;
                }
            }
        }
        LCHECK(t, lt_alloc(t, n_z, 0), "deep-class-list: malloc(%zu) of Z's size failed", n_z);
        break;
    }
    churn:
    default: { /* sizes right at size-class boundaries */
        for (int i = 0; i < 600 && t->n < MAX_BLOCKS; i++) {
            uint32_t k = mu_rng_range(&t->rng, 4, 14);
            int64_t s = ((int64_t)1 << k) + (int64_t)mu_rng_below(&t->rng, 17) - 8;
            if (s < 1 || (size_t)s > R / 4) {
                continue;
            }
            if (!lt_alloc(t, (size_t)s, 0) && mu_rng_below(&t->rng, 3) == 0) {
                break;
            }
        }
        for (size_t i = t->n; i-- > 0;) {
            if (i % 3 == 0) {
                lt_free_at(t, i);
            }
        }
        break;
    }
    }
}

/* ------------------------------------------------------------------ states */

static bool run_state(lt_t *t)
{
    static const size_t regions[] = {512, 1024, 1500, 4096, 6432, 16384, 40000, 65536, 184632, MAX_REGION};
    static const size_t aligns[] = {4, 8, 16};
    t->rng.s = mu_mix64(t->seed ^ (0x51ED5u * (uint64_t)(t->state + 1)));
    t->region = regions[mu_rng_below(&t->rng, (uint32_t)(sizeof regions / sizeof regions[0]))];
    t->align = aligns[mu_rng_below(&t->rng, 3)];
    t->pattern = (int)(t->state % (unsigned)N_PATTERNS);
    t->n = 0;
    t->where = "register";
    uint8_t *start = g_buf + 4 * mu_rng_below(&t->rng, 4);
    if (setjmp(t->jb) != 0) {
        return false;
    }
    capheap_heap_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.alignment = t->align;
    t->h = capheap_heap_register(start, t->region, &opts);
    LCHECK(t, t->h != NULL, "register failed");
    size_t f0 = multi_heap_free_size(t->h);
    t->P = mu_heap_poison(t->h);
    LCHECK(t, t->P != SIZE_MAX, "malloc(1) fails on a fresh heap");
    LCHECK(t, t->P == capheap_heap_poison_overhead(t->h), "poison overhead %zu, heap says %zu", t->P,
           capheap_heap_poison_overhead(t->h));
    checkpoint(t, "fresh");
    build(t);
    checkpoint(t, "after the pattern");
    lt_free_fraction(t, 25);
    checkpoint(t, "after freeing a quarter");
    fill_until_fail(t, t->region / 8, 4);
    checkpoint(t, "after refilling");
    drain(t);
    checkpoint(t, "after draining");
    while (t->n > 0) {
        lt_free_at(t, t->n - 1);
    }
    checkpoint(t, "empty again");
    LCHECK(t, multi_heap_free_size(t->h) == f0, "free size %zu after freeing all, fresh %zu",
           multi_heap_free_size(t->h), f0);
    return true;
}

int main(void)
{
    static lt_t t; /* static: survives the longjmp of an abort */
    memset(&t, 0, sizeof t);
    t.seed = mu_seed("test_largest");
    unsigned states = (unsigned)mu_env_ull("CAPHEAP_LARGEST_STATES", 300);
    capheap_set_abort_handler(mu_abort_handler);
    int failed = 0, passed = 0;
    unsigned fails_by_pattern[N_PATTERNS] = {0}, runs_by_pattern[N_PATTERNS] = {0};
    jmp_buf abort_jb;
    for (t.state = 0; t.state < states; t.state++) {
        mu_abort_target = &abort_jb;
        if (setjmp(abort_jb) != 0) {
            fprintf(stderr, "FAIL: capheap aborted (%s) in state %u pattern %s at %s (seed=%llu)\n",
                    mu_abort_reason, t.state, pattern_names[t.pattern], t.where,
                    (unsigned long long)t.seed);
            failed++;
            fails_by_pattern[t.pattern]++;
            continue;
        }
        runs_by_pattern[t.state % (unsigned)N_PATTERNS]++;
        if (run_state(&t)) {
            passed++;
        } else {
            failed++;
            fails_by_pattern[t.pattern]++;
        }
        if (failed == 10 && !t.quiet) {
            fprintf(stderr, "(further failures are only counted)\n");
            t.quiet = true;
        }
    }
    for (int k = 0; k < N_PATTERNS; k++) {
        printf("  pattern %-16s states %3u failed %3u\n", pattern_names[k], runs_by_pattern[k],
               fails_by_pattern[k]);
    }
    mu_abort_target = NULL;
    printf("test_largest: %u states, %lu checkpoints probed, %lu with the largest block beyond the "
           "bounded search (allowed: multi_heap.h)\n",
           t.state, t.probes, t.beyond_search);
    printf("test_largest: %d passed, %d failed\n", passed, failed);
    free(t.walk.b);
    return failed ? 1 : 0;
}
