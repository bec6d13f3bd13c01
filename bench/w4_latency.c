/*
 * w4_latency.c - W4 per-call latency.
 *
 * The W1 sequence (same steps as w1, so --lite and --no-realloc apply too)
 * is replayed R = 5 times in this process, each time on a fresh heap (fixed-
 * heap allocators: zero-filled and re-registered; host allocators: every live
 * block freed, untimed, so replays 2..R start warm). Every allocator call is
 * bracketed by "lfence; rdtsc; lfence" and "rdtscp; lfence"; the tick count
 * includes the bracket itself (reported as bracket_ns, from the null
 * allocator-free loop at start).
 *
 * Reported, for malloc, free and realloc separately, in ns (ticks / TSC
 * frequency calibrated against CLOCK_MONOTONIC_RAW at start):
 *   raw       median, p99, p99.9, max of each replay ("w4raw" lines), and the
 *             median of those per-replay figures ("w4 ... stat=raw");
 *   denoised  the same statistics of the element-wise minimum over the R
 *             replays: call i's time is its fastest of R. Only meaningful if
 *             every replay made the same calls, which is checked.
 * Percentiles are nearest-rank; the median is the lower median.
 */
#define _DEFAULT_SOURCE /* CLOCK_MONOTONIC_RAW */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "bench_adapter.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define W4_HAVE_TSC 1
#else
#define W4_HAVE_TSC 0
#endif

#if W4_HAVE_TSC

/* Inline assembly rather than <x86intrin.h>: _mm_lfence needs SSE2, which
 * gcc -m32 does not assume, while lfence and rdtscp exist on every x86-64 CPU. */
static inline uint64_t bracket_open(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("lfence\n\trdtsc\n\tlfence" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t bracket_close(void)
{
    uint32_t lo, hi, aux;
    __asm__ __volatile__("rdtscp\n\tlfence" : "=a"(lo), "=d"(hi), "=c"(aux) : : "memory");
    (void)aux;
    return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t read_tsc(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static uint64_t raw_clock_ns(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_RAW
    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* TSC ticks per second: best (shortest-bracketed) of 3 measurements of 100 ms. */
static double tsc_calibrate(void)
{
    double best = 0.0;
    uint64_t best_window = UINT64_MAX;
    for (int k = 0; k < 3; k++) {
        uint64_t a0 = raw_clock_ns();
        uint64_t t0 = read_tsc();
        uint64_t a1 = raw_clock_ns();
        uint64_t b0, b1, t1;
        do {
            b0 = raw_clock_ns();
            t1 = read_tsc();
            b1 = raw_clock_ns();
        } while (b0 - a0 < 100000000u);
        uint64_t window = (a1 - a0) + (b1 - b0);
        double hz = (double)(t1 - t0) * 1e9 / ((double)(b0 + b1) / 2.0 - (double)(a0 + a1) / 2.0);
        if (window < best_window) {
            best_window = window;
            best = hz;
        }
    }
    return best;
}

/* ------------------------------------------------------------------ statistics */

/* LSD radix sort of 32-bit values, 11 bits per pass; result in a. */
static void radix_sort(uint32_t *a, uint32_t *tmp, size_t n)
{
    uint32_t max = 0;
    for (size_t i = 0; i < n; i++)
        max = a[i] > max ? a[i] : max;
    static size_t count[2048];
    for (unsigned shift = 0; shift < 32u && (shift == 0 || (max >> shift) != 0); shift += 11u) {
        memset(count, 0, sizeof count);
        for (size_t i = 0; i < n; i++)
            count[(a[i] >> shift) & 2047u]++;
        size_t sum = 0;
        for (size_t b = 0; b < 2048u; b++) {
            size_t c = count[b];
            count[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[count[(a[i] >> shift) & 2047u]++] = a[i];
        memcpy(a, tmp, n * sizeof *a);
    }
}

typedef struct {
    size_t n;
    uint32_t median, p99, p999, max; /* ticks */
} w4_stats_t;

/* Nearest rank: the smallest value with at least permille/1000 of n at or below it. */
static uint32_t rank(const uint32_t *sorted, size_t n, unsigned permille)
{
    size_t k = (n * permille + 999u) / 1000u;
    return sorted[k == 0 ? 0 : k - 1];
}

static w4_stats_t stats_of(const uint32_t *ticks, const uint8_t *kinds, size_t n, int kind,
                           uint32_t *scratch, uint32_t *tmp)
{
    w4_stats_t s = {0, 0, 0, 0, 0};
    for (size_t i = 0; i < n; i++)
        if (kinds[i] == kind)
            scratch[s.n++] = ticks[i];
    if (s.n == 0)
        return s;
    radix_sort(scratch, tmp, s.n);
    s.median = rank(scratch, s.n, 500u);
    s.p99 = rank(scratch, s.n, 990u);
    s.p999 = rank(scratch, s.n, 999u);
    s.max = scratch[s.n - 1];
    return s;
}

static uint32_t median_u32(uint32_t *v, unsigned n)
{
    for (unsigned i = 1; i < n; i++) /* insertion sort, n <= 100 */
        for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint32_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[(n - 1u) / 2u];
}

static const char *const kind_name[BENCH_KINDS] = {"malloc", "realloc", "free"};

/* ------------------------------------------------------------------ the replay */

#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void
w4_replay(const bench_step_t *steps, size_t n, void **slot_table, uint32_t *ticks, uint8_t *kinds)
{
    for (size_t i = 0; i < n; i++) {
        unsigned slot = steps[i].slot;
        unsigned size = steps[i].size;
        void *p = slot_table[slot];
        uint64_t t0, t1;
        if (p == NULL) {
            t0 = bracket_open();
            void *q = bench_malloc(size & BENCH_STEP_SIZE_MASK);
            t1 = bracket_close();
            slot_table[slot] = q;
            kinds[i] = BENCH_KIND_MALLOC;
        } else if (size & BENCH_STEP_REALLOC) {
            t0 = bracket_open();
            void *q = bench_realloc(p, size & BENCH_STEP_SIZE_MASK);
            t1 = bracket_close();
            if (q != NULL)
                slot_table[slot] = q;
            kinds[i] = BENCH_KIND_REALLOC;
        } else {
            t0 = bracket_open();
            bench_free(p);
            t1 = bracket_close();
            slot_table[slot] = NULL;
            kinds[i] = BENCH_KIND_FREE;
        }
        uint64_t d = t1 - t0;
        ticks[i] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    }
}

/* Median ticks of an empty bracket (what every figure includes). */
static uint32_t empty_bracket(uint32_t *scratch, uint32_t *tmp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = bracket_open();
        uint64_t t1 = bracket_close();
        scratch[i] = (uint32_t)(t1 - t0);
    }
    radix_sort(scratch, tmp, n);
    return rank(scratch, n, 500u);
}

/* The W4_WORST slowest calls of one kind in the denoised sequence, with their
 * step number and size: where to look when the denoised max is high. */
#define W4_WORST 3
static void print_worst(const uint32_t *best, const uint8_t *kinds, const bench_step_t *steps,
                        size_t n, int kind, double ns_per_tick)
{
    size_t top[W4_WORST];
    unsigned found = 0;
    for (size_t i = 0; i < n; i++) {
        if (kinds[i] != kind)
            continue;
        unsigned pos = found < W4_WORST ? found++ : W4_WORST;
        while (pos > 0 && best[top[pos - 1]] < best[i]) {
            if (pos < W4_WORST)
                top[pos] = top[pos - 1];
            pos--;
        }
        if (pos < W4_WORST)
            top[pos] = i;
    }
    /* size is the request of a malloc or realloc; a free's step carries none */
    for (unsigned k = 0; k < found; k++)
        printf("w4worst alloc=%s bits=%u op=%s rank=%u step=%zu slot=%u size=%u ns=%.1f\n",
               bench_alloc_name, (unsigned)(sizeof(void *) * 8u), kind_name[kind], k + 1u,
               top[k], (unsigned)steps[top[k]].slot,
               kind == BENCH_KIND_FREE ? 0u : (unsigned)(steps[top[k]].size & BENCH_STEP_SIZE_MASK),
               (double)best[top[k]] * ns_per_tick);
}

int bench_run_w4(const bench_options_t *opt)
{
    unsigned bits = (unsigned)(sizeof(void *) * 8u);
    size_t n = (size_t)opt->steps;
    unsigned replays = opt->replays;
    bench_step_t *steps = bench_map(n * sizeof *steps);
    void **slot_table = bench_map(opt->slots * sizeof *slot_table);
    /* Every replay's ticks and call kinds are kept and analysed only after the
     * last replay, so that nothing but the heap reset runs between replays
     * (sorting millions of values would leave the caches and branch predictors
     * cold for the start of the next replay, in every replay alike). */
    uint32_t *ticks = bench_map((size_t)replays * n * sizeof *ticks);
    uint8_t *kinds = bench_map((size_t)replays * n);
    uint32_t *best = bench_map(n * sizeof *best);
    uint32_t *scratch = bench_map(n * sizeof *scratch);
    uint32_t *tmp = bench_map(n * sizeof *tmp);
    bench_w1_generate(steps, n, opt->seed, opt->slots, opt->use_realloc);

    double hz = tsc_calibrate();
    double ns_per_tick = 1e9 / hz;
    uint32_t bracket = empty_bracket(scratch, tmp, 1000000u < n ? 1000000u : n);
    printf("w4tsc alloc=%s bits=%u tsc_ghz=%.4f ns_per_tick=%.4f bracket_ticks=%u bracket_ns=%.1f\n",
           bench_alloc_name, bits, hz / 1e9, ns_per_tick, (unsigned)bracket,
           (double)bracket * ns_per_tick);

    /* Between replays the slot table (32 KiB: the size of the L1 data cache)
     * is cleared before the heap is initialised, not after: cleared after, it
     * evicted the control structure the initialisation had just written, and
     * the first malloc of every replay paid for that (step 0 was the denoised
     * malloc maximum in most runs: 100-190 ns, against 100 ns for the slowest
     * call of the sequence proper). Both are untimed set-up. */
    for (unsigned r = 0; r < replays; r++) {
        if (bench_alloc_fixed_heap) {
            memset(slot_table, 0, opt->slots * sizeof *slot_table);
            bench_fresh_heap(BENCH_HEAP_W1);
        } else {
            if (r == 0)
                bench_fresh_heap(BENCH_HEAP_W1);
            for (uint32_t s = 0; s < opt->slots; s++)
                if (slot_table[s] != NULL)
                    bench_free(slot_table[s]);
            memset(slot_table, 0, opt->slots * sizeof *slot_table);
        }
        w4_replay(steps, n, slot_table, ticks + (size_t)r * n, kinds + (size_t)r * n);
    }
    if (!bench_alloc_fixed_heap)
        for (uint32_t s = 0; s < opt->slots; s++)
            if (slot_table[s] != NULL)
                bench_free(slot_table[s]);

    /* per-replay raw statistics, kept to report their median */
    w4_stats_t raw[100][BENCH_KINDS];
    int same_sequence = 1;
    memcpy(best, ticks, n * sizeof *best);
    for (unsigned r = 0; r < replays; r++) {
        const uint32_t *t = ticks + (size_t)r * n;
        const uint8_t *kd = kinds + (size_t)r * n;
        if (r > 0) {
            if (memcmp(kinds, kd, n) != 0)
                same_sequence = 0;
            for (size_t i = 0; i < n; i++)
                best[i] = t[i] < best[i] ? t[i] : best[i];
        }
        for (int k = 0; k < BENCH_KINDS; k++) {
            w4_stats_t s = stats_of(t, kd, n, k, scratch, tmp);
            raw[r][k] = s;
            if (s.n == 0)
                continue;
            printf("w4raw alloc=%s bits=%u replay=%u op=%s n=%zu median_ns=%.1f p99_ns=%.1f "
                   "p999_ns=%.1f max_ns=%.1f\n",
                   bench_alloc_name, bits, r + 1u, kind_name[k], s.n,
                   (double)s.median * ns_per_tick, (double)s.p99 * ns_per_tick,
                   (double)s.p999 * ns_per_tick, (double)s.max * ns_per_tick);
        }
    }
    const uint8_t *kinds_first = kinds;

    for (int k = 0; k < BENCH_KINDS; k++) {
        if (raw[0][k].n == 0)
            continue;
        uint32_t v[4][100];
        uint32_t worst_max = 0;
        for (unsigned r = 0; r < replays; r++) {
            v[0][r] = raw[r][k].median;
            v[1][r] = raw[r][k].p99;
            v[2][r] = raw[r][k].p999;
            v[3][r] = raw[r][k].max;
            worst_max = raw[r][k].max > worst_max ? raw[r][k].max : worst_max;
        }
        printf("w4 alloc=%s bits=%u op=%s stat=raw n=%zu median_ns=%.1f p99_ns=%.1f p999_ns=%.1f "
               "max_ns=%.1f worst_max_ns=%.1f\n",
               bench_alloc_name, bits, kind_name[k], raw[0][k].n,
               (double)median_u32(v[0], replays) * ns_per_tick,
               (double)median_u32(v[1], replays) * ns_per_tick,
               (double)median_u32(v[2], replays) * ns_per_tick,
               (double)median_u32(v[3], replays) * ns_per_tick, (double)worst_max * ns_per_tick);
        if (!same_sequence)
            continue;
        w4_stats_t s = stats_of(best, kinds_first, n, k, scratch, tmp);
        printf("w4 alloc=%s bits=%u op=%s stat=denoised n=%zu median_ns=%.1f p99_ns=%.1f "
               "p999_ns=%.1f max_ns=%.1f max_over_median=%.4f\n",
               bench_alloc_name, bits, kind_name[k], s.n, (double)s.median * ns_per_tick,
               (double)s.p99 * ns_per_tick, (double)s.p999 * ns_per_tick,
               (double)s.max * ns_per_tick, s.median ? (double)s.max / (double)s.median : 0.0);
        print_worst(best, kinds_first, steps, n, k, ns_per_tick);
    }
    if (!same_sequence)
        printf("w4 alloc=%s bits=%u denoised n/a: the replays made different calls\n",
               bench_alloc_name, bits);
    printf("w4end alloc=%s bits=%u replays=%u steps=%zu slots=%u use_realloc=%d same_sequence=%d\n",
           bench_alloc_name, bits, replays, n, (unsigned)opt->slots, opt->use_realloc,
           same_sequence);
    return 0;
}

#else /* !W4_HAVE_TSC */

int bench_run_w4(const bench_options_t *opt)
{
    (void)opt;
    printf("w4 alloc=%s n/a (no x86 time-stamp counter)\n", bench_alloc_name);
    return 0;
}

#endif
