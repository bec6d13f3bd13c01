/*
 * bench.h - definitions shared by the workloads (shared/bench/workloads.md).
 *
 * RNG: splitmix64; a "draw" is the high 32 bits of the output. Size
 * distribution from two draws (uc, us): c = uc % 100; c < 70: 8..128,
 * c < 95: 129..1024, else 1025..8192. Heap buffer: one static 4096-aligned
 * buffer, zero-filled before every heap initialisation (not timed).
 */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ RNG */

typedef struct {
    uint64_t state; /**< starts at the seed */
} bench_rng_t;

static inline uint32_t bench_draw(bench_rng_t *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z >> 32);
}

/** The size distribution: 70% 8..128, 25% 129..1024, 5% 1025..8192 bytes. */
static inline uint32_t bench_size(uint32_t u_class, uint32_t u_size)
{
    uint32_t c = u_class % 100u;
    if (c < 70u)
        return 8u + u_size % 121u;
    if (c < 95u)
        return 129u + u_size % 896u;
    return 1025u + u_size % 7168u;
}

/* ------------------------------------------------------------------ heap buffer */

#define BENCH_HEAP_W1 262144u /**< W1, W2, W4: 256 KiB */
#define BENCH_HEAP_W3 65536u  /**< W3: 64 KiB */

/**
 * Zero-fill the static heap buffer and give its first size bytes to the
 * allocator (fixed-heap allocators; a no-op init for host allocators).
 * Exits with a message if the allocator refuses the region.
 */
void bench_fresh_heap(size_t size);

/* ------------------------------------------------------------------ W1 steps */

/**
 * One pre-generated W1 step: the slot and the size, with BENCH_STEP_REALLOC
 * set when the coin says realloc (never set in the no-realloc variant).
 * Sizes are at most 8192, slots fewer than 65536.
 */
typedef struct {
    uint16_t slot;
    uint16_t size;
} bench_step_t;

#define BENCH_STEP_REALLOC 0x8000u
#define BENCH_STEP_SIZE_MASK 0x7FFFu
#define BENCH_MAX_SLOTS 65535u

/** Fill steps[0..n) from seed: four draws u_slot, u_coin, u_class, u_size per step. */
void bench_w1_generate(bench_step_t *steps, size_t n, uint64_t seed, uint32_t slots,
                       int use_realloc);

/** Kinds of call, as counted and as recorded by W4. */
enum { BENCH_KIND_MALLOC = 0, BENCH_KIND_REALLOC = 1, BENCH_KIND_FREE = 2, BENCH_KINDS = 3 };

/** Calls made by one W1 pass (failed calls included in calls[]). */
typedef struct {
    uint64_t calls[BENCH_KINDS];
    uint64_t fail_malloc;
    uint64_t fail_realloc;
} bench_counts_t;

/* ------------------------------------------------------------------ helpers */

/** Memory for the harness, straight from mmap (never from the allocator under test). */
void *bench_map(size_t bytes);
void bench_unmap(void *p, size_t bytes);

/** CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/** Abort the program with a message (bad usage, allocator refused a region...). */
void bench_die(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2), noreturn))
#endif
    ;

/* ------------------------------------------------------------------ workloads */

/* Option values shared by the workload entry points. */
typedef struct {
    uint64_t steps;     /**< W1/W4 steps (2,000,000) */
    uint64_t seed;      /**< W1/W4 seed (1) */
    uint32_t slots;     /**< W1/W4 slot table size (4096; lite 512) */
    int use_realloc;    /**< W1/W4 coin enabled (1) */
    unsigned seeds;     /**< W2: seeds 1..seeds (20) */
    unsigned replays;   /**< W4 replays (5) */
} bench_options_t;

int bench_run_w1(const bench_options_t *opt);
int bench_run_w2(const bench_options_t *opt);
int bench_run_w3(const bench_options_t *opt);
int bench_run_w4(const bench_options_t *opt);

#endif /* BENCH_H */
