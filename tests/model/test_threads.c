/*
 * test_threads.c - several threads hammer one heap that has a capheap_lock_t
 * attached with multi_heap_set_lock().
 *
 * Each thread owns up to 64 slots and does a random mix of malloc,
 * aligned_alloc, aligned_alloc_offs, realloc (grow, shrink, from NULL, to 0)
 * and free; every block is stamped with a token derived from its address and
 * checked before free and realloc (realloc keeps min(old, new) bytes), and
 * get_allocated_size is checked against the request. Now and then a thread
 * also runs multi_heap_check, get_info, walk-free queries (free_size,
 * minimum_free_size, find_containing_block of its own block) concurrently with
 * the others, and a monitor thread reads free / minimum free size and get_info
 * all the time (as firmware does). After all threads are joined and every block is freed:
 * multi_heap_check passes, the free size is exactly the initial one, there is
 * one free block and no used block.
 *
 * Usage: test_threads [--threads N] [--ops N]  (defaults 4 threads x 20000 ops;
 * env CAPHEAP_THREAD_OPS overrides the default op count; CAPHEAP_SEED replays).
 * The same binary runs under helgrind (test_threads_helgrind) and can be
 * built with ThreadSanitizer (tests/model/README.md).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getpid, dirent, pthreads */

#include <pthread.h>
#include <sched.h>

#include "model_util.h"

#define REGION (256u * 1024u)
#define SLOTS 64u
#define MAX_THREADS 16

static _Alignas(4096) uint8_t g_region[REGION];
static multi_heap_handle_t g_h;
static capheap_lock_t g_lock;
static unsigned long g_ops = 20000;
static uint64_t g_seed;

typedef struct {
    uint8_t *p;
    size_t size;
    uint32_t token;
} tblk_t;

/* Per-thread state; counters are summed after the join (no shared counters to race on). */
typedef struct {
    int id;
    pthread_t thread;
    unsigned long failures, allocs_ok, allocs_failed;
} targ_t;

#define TFAIL(t, ...)                                                   \
    do {                                                                \
        if ((t)->failures++ < 10) {                                     \
            fprintf(stderr, "FAIL thread %d (seed=%llu): ", (t)->id,    \
                    (unsigned long long)g_seed);                        \
            fprintf(stderr, __VA_ARGS__);                               \
            fprintf(stderr, "\n");                                      \
        }                                                               \
    } while (0)

static void take(targ_t *id, tblk_t *s, void *p, size_t size, size_t align, size_t offs)
{
    size_t usable = multi_heap_get_allocated_size(g_h, p);
    if (usable < size) {
        TFAIL(id, "block %p of %zu bytes has usable size %zu", p, size, usable);
    }
    if (align && (((uintptr_t)p + offs) % align) != 0) {
        TFAIL(id, "block %p + %zu is not %zu-aligned", p, offs, align);
    }
    if ((uintptr_t)p < (uintptr_t)g_region || (uintptr_t)p + size > (uintptr_t)g_region + REGION) {
        TFAIL(id, "block %p+%zu outside the region", p, size);
    }
    s->p = (uint8_t *)p;
    s->size = size;
    s->token = mu_token(p);
    mu_stamp(p, size, s->token);
    id->allocs_ok++;
}

static void check_stamp(targ_t *id, const tblk_t *s, size_t n, const char *when)
{
    size_t bad = mu_stamp_check(s->p, n, s->token);
    if (bad != n) {
        TFAIL(id, "%s: block %p (%zu bytes) lost its stamp at byte %zu", when, (void *)s->p, s->size,
              bad);
    }
}

static size_t pick_size(mu_rng_t *r)
{
    uint32_t k = mu_rng_below(r, 100);
    return k < 60 ? mu_rng_range(r, 1, 64) : k < 95 ? mu_rng_range(r, 1, 1024) : mu_rng_range(r, 1, 8192);
}

static void *worker(void *arg)
{
    targ_t *id = (targ_t *)arg;
    mu_rng_t rng = {mu_mix64(g_seed ^ (0xABCDu * (uint64_t)(id->id + 1)))};
    tblk_t slots[SLOTS];
    memset(slots, 0, sizeof slots);

    for (unsigned long op = 0; op < g_ops; op++) {
        tblk_t *s = &slots[mu_rng_below(&rng, SLOTS)];
        uint32_t r = mu_rng_below(&rng, 1000);
        if (r < 20) { /* concurrent whole-heap queries */
            if (r < 2) {
                if (!multi_heap_check(g_h, true)) {
                    TFAIL(id, "multi_heap_check failed during the run (op %lu)", op);
                }
            } else if (r < 4) {
                multi_heap_info_t info;
                multi_heap_get_info(g_h, &info);
                if (info.total_blocks != info.free_blocks + info.allocated_blocks ||
                    info.minimum_free_bytes > info.total_free_bytes) {
                    TFAIL(id, "inconsistent info: blocks %zu/%zu/%zu free %zu min %zu", info.total_blocks,
                          info.free_blocks, info.allocated_blocks, info.total_free_bytes,
                          info.minimum_free_bytes);
                }
            } else if (r < 6 && s->p != NULL) {
                size_t off = mu_rng_below(&rng, (uint32_t)s->size);
                void *c = multi_heap_find_containing_block(g_h, s->p + off);
                if (c != s->p) {
                    TFAIL(id, "find_containing_block(%p + %zu) = %p", (void *)s->p, off, c);
                }
            } else {
                size_t f = multi_heap_free_size(g_h);
                size_t m = multi_heap_minimum_free_size(g_h);
                if (f > REGION || m > REGION) {
                    TFAIL(id, "free %zu / minimum %zu out of range", f, m);
                }
            }
            continue;
        }
        if (s->p == NULL) {
            size_t size = pick_size(&rng);
            void *p;
            size_t align = 0, offs = 0;
            if (r < 600) {
                p = multi_heap_malloc(g_h, size);
            } else if (r < 800) {
                align = (size_t)1 << mu_rng_range(&rng, 2, 9);
                p = multi_heap_aligned_alloc(g_h, size, align);
            } else if (r < 900) {
                align = (size_t)1 << mu_rng_range(&rng, 3, 7);
                offs = 4u * mu_rng_below(&rng, 5);
                p = multi_heap_aligned_alloc_offs(g_h, size, align, offs);
            } else {
                p = multi_heap_realloc(g_h, NULL, size);
            }
            if (p != NULL) {
                take(id, s, p, size, align, offs);
            } else {
                id->allocs_failed++;
            }
        } else if (r < 550) {
            check_stamp(id, s, s->size, "before free");
            multi_heap_free(g_h, s->p);
            s->p = NULL;
        } else if (r < 900) {
            size_t size = r < 580 ? 0 : r < 750 ? s->size + mu_rng_range(&rng, 1, 512)
                                                : mu_rng_range(&rng, 1, (uint32_t)s->size);
            check_stamp(id, s, s->size, "before realloc");
            void *q = multi_heap_realloc(g_h, s->p, size);
            if (size == 0) {
                if (q != NULL) {
                    TFAIL(id, "realloc(p, 0) returned %p", q);
                }
                s->p = NULL;
            } else if (q == NULL) {
                id->allocs_failed++;
                check_stamp(id, s, s->size, "after failed realloc");
            } else {
                tblk_t moved = *s;
                moved.p = (uint8_t *)q;
                check_stamp(id, &moved, s->size < size ? s->size : size, "after realloc");
                take(id, s, q, size, 0, 0);
            }
        } else {
            size_t usable = multi_heap_get_allocated_size(g_h, s->p);
            if (usable < s->size) {
                TFAIL(id, "get_allocated_size(%p) = %zu < %zu", (void *)s->p, usable, s->size);
            }
            check_stamp(id, s, s->size, "while live");
        }
    }
    for (unsigned i = 0; i < SLOTS; i++) {
        if (slots[i].p != NULL) {
            check_stamp(id, &slots[i], slots[i].size, "final free");
            multi_heap_free(g_h, slots[i].p);
        }
    }
    return NULL;
}

/* Stop flag of the monitor thread, under its own mutex (no atomics: helgrind understands mutexes). */
static pthread_mutex_t g_stop_mutex = PTHREAD_MUTEX_INITIALIZER;
static int g_stop;

static bool stop_requested(void)
{
    pthread_mutex_lock(&g_stop_mutex);
    int s = g_stop;
    pthread_mutex_unlock(&g_stop_mutex);
    return s != 0;
}

/*
 * A monitor, as firmware has one: reads the counters (free and minimum free
 * size) and now and then get_info while the workers allocate, until they are done.
 */
static void *monitor(void *arg)
{
    targ_t *id = (targ_t *)arg;
    for (unsigned long i = 0; i < g_ops && !stop_requested(); i++) {
        size_t f = multi_heap_free_size(g_h);
        size_t m = multi_heap_minimum_free_size(g_h);
        if (f > REGION || m > REGION) {
            TFAIL(id, "monitor: free %zu / minimum %zu out of range", f, m);
        }
        if (i % 64 == 0) {
            multi_heap_info_t info;
            multi_heap_get_info(g_h, &info);
            if (info.minimum_free_bytes > info.total_free_bytes) {
                TFAIL(id, "monitor: minimum %zu above free %zu", info.minimum_free_bytes,
                      info.total_free_bytes);
            }
        }
        sched_yield();
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int nthreads = 4;
    g_ops = (unsigned long)mu_env_ull("CAPHEAP_THREAD_OPS", g_ops);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            nthreads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc) {
            g_ops = strtoul(argv[++i], NULL, 0);
        } else {
            fprintf(stderr, "usage: %s [--threads N] [--ops N]\n", argv[0]);
            return 2;
        }
    }
    if (nthreads < 1 || nthreads > MAX_THREADS) {
        fprintf(stderr, "threads must be 1..%d\n", MAX_THREADS);
        return 2;
    }
    g_seed = mu_seed("test_threads");
    printf("test_threads: %d threads x %lu ops (+ a monitor thread) on a %u-byte heap\n", nthreads, g_ops, REGION);

    if (capheap_lock_init(&g_lock) != 0) {
        fprintf(stderr, "capheap_lock_init failed\n");
        return 1;
    }
    g_h = multi_heap_register(g_region, REGION);
    if (g_h == NULL) {
        fprintf(stderr, "multi_heap_register failed\n");
        return 1;
    }
    multi_heap_set_lock(g_h, &g_lock);
    size_t f0 = multi_heap_free_size(g_h);
    multi_heap_info_t info0;
    multi_heap_get_info(g_h, &info0);

    targ_t args[MAX_THREADS + 1]; /* the workers, then the monitor */
    memset(args, 0, sizeof args);
    for (int i = 0; i <= nthreads; i++) {
        args[i].id = i;
        if (pthread_create(&args[i].thread, NULL, i < nthreads ? worker : monitor, &args[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    unsigned long failures = 0, allocs_ok = 0, allocs_failed = 0;
    for (int i = 0; i <= nthreads; i++) {
        if (i == nthreads) {
            pthread_mutex_lock(&g_stop_mutex);
            g_stop = 1;
            pthread_mutex_unlock(&g_stop_mutex);
        }
        pthread_join(args[i].thread, NULL);
        failures += args[i].failures;
        allocs_ok += args[i].allocs_ok;
        allocs_failed += args[i].allocs_failed;
    }

    int failed = failures != 0;
    if (!multi_heap_check(g_h, true)) {
        fprintf(stderr, "FAIL: multi_heap_check after the run\n");
        failed = 1;
    }
    size_t f1 = multi_heap_free_size(g_h);
    if (f1 != f0) {
        fprintf(stderr, "FAIL: free size %zu after freeing everything, initially %zu\n", f1, f0);
        failed = 1;
    }
    multi_heap_info_t info;
    multi_heap_get_info(g_h, &info);
    if (info.allocated_blocks != 0 || info.free_blocks != 1 || info.total_allocated_bytes != 0 ||
        info.largest_free_block != info0.largest_free_block) {
        fprintf(stderr, "FAIL: after the run: %zu used, %zu free blocks, %zu allocated bytes, "
                        "largest %zu (initially %zu)\n",
                info.allocated_blocks, info.free_blocks, info.total_allocated_bytes,
                info.largest_free_block, info0.largest_free_block);
        failed = 1;
    }
    if (multi_heap_minimum_free_size(g_h) > f0) {
        fprintf(stderr, "FAIL: minimum %zu above the initial free size %zu\n",
                multi_heap_minimum_free_size(g_h), f0);
        failed = 1;
    }
    multi_heap_set_lock(g_h, NULL);
    capheap_lock_destroy(&g_lock);
    printf("allocations ok=%lu failed=%lu minimum free=%zu of %zu\n", allocs_ok,
           allocs_failed, multi_heap_minimum_free_size(g_h), f0);
    printf("test_threads: %d passed, %d failed\n", failed ? 0 : 1, failed);
    if (failed) {
        printf("replay: CAPHEAP_SEED=%llu (thread interleaving is not replayable)\n",
               (unsigned long long)g_seed);
    }
    return failed;
}
