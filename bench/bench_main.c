/*
 * bench_main.c - command line of every bench program, and the shared helpers.
 *
 *   bench_<allocator> info | w1 | w2 | w3 | w4 [options]
 *
 * Each invocation runs one workload once and prints machine-readable result
 * lines ("w1 alloc=capheap ... ns_per_op=..."); bench/run.sh runs the
 * programs (separate processes, pinned, interleaved) and makes the tables.
 * Options:
 *   --steps N      W1/W4 steps (default 2000000)
 *   --seed N       W1/W4 seed (default 1)
 *   --slots N      W1/W4 slot table size (default 4096)
 *   --lite         same as --slots 512 (W1-lite)
 *   --no-realloc   W1/W4: ignore the coin, every occupied slot is freed
 *   --seeds N      W2: seeds 1..N (default 20)
 *   --replays N    W4: replays in the process (default 5)
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench_adapter.h"

/* The heap buffer of every fixed-heap workload (W1, W2, W4: 256 KiB; W3: 64 KiB). */
static _Alignas(4096) unsigned char bench_heap_buffer[BENCH_HEAP_W1];

void bench_fresh_heap(size_t size)
{
    if (size > sizeof bench_heap_buffer)
        bench_die("heap of %zu bytes does not fit the buffer", size);
    memset(bench_heap_buffer, 0, sizeof bench_heap_buffer);
    if (bench_alloc_init(bench_heap_buffer, size) != 0)
        bench_die("%s: heap initialisation over %zu bytes failed", bench_alloc_name, size);
}

/* Harness arrays, pre-faulted (MAP_POPULATE): W4 writes its tick and kind
 * arrays during the replays, and a page fault between two timed calls would
 * leave the next call's cache and TLB state to the kernel. */
void *bench_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED)
        bench_die("mmap of %zu bytes failed", bytes);
    return p;
}

void bench_unmap(void *p, size_t bytes)
{
    munmap(p, bytes);
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s info|w1|w2|w3|w4 [--steps N] [--seed N] [--slots N] [--lite]\n"
            "       [--no-realloc] [--seeds N] [--replays N]\n"
            "allocator: %s\n",
            argv0, bench_alloc_describe());
    exit(2);
}

static uint64_t parse_number(const char *argv0, const char *text, uint64_t max)
{
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 0);
    if (text[0] == '\0' || text[0] == '-' || *end != '\0' || v > max)
        usage(argv0);
    return (uint64_t)v;
}

static int run_info(void)
{
    printf("info alloc=%s bits=%u fixed_heap=%d", bench_alloc_name,
           (unsigned)(sizeof(void *) * 8u), bench_alloc_fixed_heap);
    if (bench_alloc_fixed_heap) {
        bench_fresh_heap(BENCH_HEAP_W1);
        printf(" overhead_256k=%zu", bench_alloc_overhead());
        bench_fresh_heap(BENCH_HEAP_W3);
        printf(" overhead_64k=%zu", bench_alloc_overhead());
    }
#if defined(__clang__)
    printf(" compiler=\"clang %s\"", __clang_version__);
#elif defined(__GNUC__)
    printf(" compiler=\"gcc %s\"", __VERSION__);
#endif
#if defined(__OPTIMIZE__)
    printf(" optimized=1");
#else
    printf(" optimized=0");
#endif
#if defined(NDEBUG)
    printf(" ndebug=1");
#else
    printf(" ndebug=0");
#endif
    printf(" describe=\"%s\"\n", bench_alloc_describe());
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage(argv[0]);
    bench_options_t opt = {
        .steps = 2000000u,
        .seed = 1u,
        .slots = 4096u,
        .use_realloc = 1,
        .seeds = 20u,
        .replays = 5u,
    };
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--lite") == 0) {
            opt.slots = 512u;
        } else if (strcmp(a, "--no-realloc") == 0) {
            opt.use_realloc = 0;
        } else if (i + 1 < argc && strcmp(a, "--steps") == 0) {
            opt.steps = parse_number(argv[0], argv[++i], 1000000000u);
        } else if (i + 1 < argc && strcmp(a, "--seed") == 0) {
            opt.seed = parse_number(argv[0], argv[++i], UINT64_MAX);
        } else if (i + 1 < argc && strcmp(a, "--slots") == 0) {
            opt.slots = (uint32_t)parse_number(argv[0], argv[++i], BENCH_MAX_SLOTS);
        } else if (i + 1 < argc && strcmp(a, "--seeds") == 0) {
            opt.seeds = (unsigned)parse_number(argv[0], argv[++i], 1000000u);
        } else if (i + 1 < argc && strcmp(a, "--replays") == 0) {
            opt.replays = (unsigned)parse_number(argv[0], argv[++i], 100u);
        } else {
            usage(argv[0]);
        }
    }
    if (opt.slots == 0u || opt.seeds == 0u || opt.replays == 0u || opt.steps == 0u)
        usage(argv[0]);

    const char *w = argv[1];
    if (strcmp(w, "info") == 0)
        return run_info();
    if (strcmp(w, "w1") == 0)
        return bench_run_w1(&opt);
    if (strcmp(w, "w2") == 0)
        return bench_run_w2(&opt);
    if (strcmp(w, "w3") == 0)
        return bench_run_w3(&opt);
    if (strcmp(w, "w4") == 0)
        return bench_run_w4(&opt);
    usage(argv[0]);
    return 2;
}
