/*
 * bench_adapter.h - the one interface between the workloads and an allocator.
 *
 * Every bench program is the same driver (bench_main.c and the workload
 * files) linked with exactly one adapter file. An adapter defines the
 * functions below; the driver never names an allocator. One executable per
 * allocator keeps symbol interposition clean: the jemalloc program replaces
 * malloc for its whole process, the glibc program does not.
 *
 * bench_malloc / bench_free / bench_realloc are the only way the workloads
 * reach the allocator. They are never inlined or cloned, so that
 *     valgrind --tool=callgrind --toggle-collect=bench_malloc ...
 * counts exactly the allocator (plus the 1-3 instructions of the adapter
 * itself, which the "null" adapter measures) and nothing of the harness.
 */
#ifndef BENCH_ADAPTER_H
#define BENCH_ADAPTER_H

#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__)
#define BENCH_CALL __attribute__((noinline, noclone))
#elif defined(__GNUC__)
#define BENCH_CALL __attribute__((noinline))
#else
#define BENCH_CALL
#endif

/** Short name of the allocator ("capheap", "glibc", ...), as printed in every result line. */
extern const char bench_alloc_name[];

/**
 * 1 if the allocator manages a caller-given region (W2 and W3 apply to it and
 * the driver hands it the static heap buffer); 0 for host allocators, which
 * get their memory from the OS and never run out in these workloads.
 */
extern const int bench_alloc_fixed_heap;

/**
 * Make a fresh heap over [region, region + size) (fixed-heap allocators; the
 * driver zero-fills the region first). Host allocators ignore the arguments.
 * Returns 0 on success. Not timed.
 */
int bench_alloc_init(void *region, size_t size);

/** Bytes of the last region kept by the allocator itself (fixed heap), else 0. */
size_t bench_alloc_overhead(void);

/** One line describing the allocator build (version, alignment, ...). */
const char *bench_alloc_describe(void);

BENCH_CALL void *bench_malloc(size_t size);
BENCH_CALL void bench_free(void *p);
BENCH_CALL void *bench_realloc(void *p, size_t size);

#endif /* BENCH_ADAPTER_H */
