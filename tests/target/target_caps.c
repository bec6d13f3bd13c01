/*
 * target_caps.c - heap_caps and the bare-metal port on an emulated target.
 *
 * Runs under QEMU (Cortex-M4 on mps2-an386, RV32IMC on riscv32 virt) with
 * picolibc and semihosting, linked with a libcapheap.a built for the target
 * (bare-metal port), and integrates capheap the way a firmware does:
 *
 *  - It overrides the port's weak hooks (capheap/port.h) with strong
 *    definitions: the text sink (stdout plus a capture buffer), abort
 *    (longjmp back to an armed test, else print and exit(3)), the lock pair
 *    (a counting recursive lock that records the objects it is given) and the
 *    current task and its name (NULL: a port that cannot name tasks, so task
 *    tracking names them after their handles). The tests prove these
 *    overrides are the ones linked:
 *    reports arrive in the capture buffer, misuse reaches our abort, every
 *    allocation and free takes our lock, balanced after every public call,
 *    and nests it when the caller already holds it. On bare metal heap_caps
 *    attaches each heap's descriptor as its lock object (src/caps/registry.c,
 *    attach_lock) and uses a separate object for its registry: so each heap
 *    must pass its own object, distinct from the others and from the
 *    registry's, and never one inside heap memory.
 *  - No heap_caps_init(): the chip tables' addresses do not exist on these
 *    boards. Regions ("DRAM": internal and DMA-capable, "SPIRAM", "RTC", and
 *    a minimum-size one) are added at run time over static buffers; bad
 *    registrations return the error codes esp_heap_caps_init.h documents.
 *  - A seeded model-based random test (seed: argv[1], else CAPHEAP_SEED,
 *    else 1) checks after every step integrity, caps, bounds, alignment,
 *    contents, exact free-byte accounting and the failure callbacks (ESP-IDF's
 *    and the extended one, with its user pointer, the hooks balanced); that
 *    capheap_would_fit() predicts each allocation; and, every 32 steps, that
 *    the largest free block (plain and aligned) can be allocated and one byte
 *    more cannot.
 *  - Misuse (double free, free and realloc of a pointer in no heap) is
 *    reported through our sink, reaches our abort, and leaves the heaps intact.
 *  - The critical section (capheap_port_critical_enter/exit), overridden too,
 *    is what a check pass's token costs on CPUs without an atomic add
 *    (RV32IMC, Armv6-M), once per pass; elsewhere it is never called.
 *
 * Output: "target_caps: N checks passed" and status 0, or one line
 * "FAIL target_caps: <file>:<line>: <what>" per failed check and status 1.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capheap/caps.h"
#include "capheap/check.h"
#include "capheap/heap.h"
#include "capheap/port.h"
#include "capheap/report.h"
#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"
#include "esp_heap_task_info.h"
#include "multi_heap.h"

/* ---- checks ----------------------------------------------------------------- */

static unsigned long checks, failures;
static uint32_t seed = 1;
static long cur_step = -1; /* the model's step while it runs */

static bool check_at(bool ok, const char *file, int line, const char *what)
{
    checks++;
    if (!ok) {
        failures++;
        printf("FAIL target_caps: %s:%d: %s", file, line, what);
        if (cur_step >= 0)
            printf(" (seed=%" PRIu32 " step=%ld)", seed, cur_step);
        printf("\n");
    }
    return ok;
}
#define CHECK(cond, what) check_at((cond), __FILE__, __LINE__, (what))

static bool check_eq_at(size_t got, size_t want, const char *file, int line, const char *what)
{
    if (got != want)
        printf("  %s: got %lu (0x%lx), want %lu\n", what, (unsigned long)got, (unsigned long)got,
               (unsigned long)want);
    return check_at(got == want, file, line, what);
}
#define CHECK_EQ(got, want, what) check_eq_at((size_t)(got), (size_t)(want), __FILE__, __LINE__, (what))

/* ---- the port overrides ------------------------------------------------------- */

static char capture[2048];
static size_t capture_len;

void capheap_port_write(const char *text, size_t len)
{
    (void)fwrite(text, 1, len, stdout);
    size_t n = sizeof capture - 1u - capture_len;
    n = len < n ? len : n;
    memcpy(capture + capture_len, text, n);
    capture_len += n;
    capture[capture_len] = '\0';
}

static jmp_buf abort_jmp;
static volatile bool abort_armed;
static const char *volatile abort_reason;
static volatile unsigned long abort_calls;

void capheap_port_abort(const char *reason)
{
    abort_calls++;
    if (abort_armed) {
        abort_armed = false;
        abort_reason = reason;
        longjmp(abort_jmp, 1);
    }
    printf("target_caps: capheap_port_abort: %s (seed=%" PRIu32 " step=%ld)\n",
           reason != NULL ? reason : "(null)", seed, cur_step);
    exit(3);
}

/* A recursive lock that counts acquisitions, releases and nesting, and per
 * object its nesting, its deepest nesting and whether it was taken since
 * lock_seen_reset(). (A firmware would mask interrupts here.) */
#define LOCK_OBJECTS (CAPHEAP_MAX_HEAPS + 4)
static unsigned long lock_acq, lock_rel, lock_errors;
static unsigned lock_depth, lock_max_depth;
static struct {
    const void *obj;
    unsigned depth, max;
    bool seen;
} objs[LOCK_OBJECTS];

static size_t obj_slot(const void *lock) /* LOCK_OBJECTS: the table is full */
{
    size_t i = 0;
    while (i < LOCK_OBJECTS && objs[i].obj != lock && objs[i].obj != NULL)
        i++;
    return i;
}

void capheap_port_lock_acquire(void *lock)
{
    lock_acq++;
    size_t i = obj_slot(lock);
    if (lock == NULL || i == LOCK_OBJECTS) {
        lock_errors++;
        return;
    }
    objs[i].obj = lock;
    objs[i].seen = true;
    if (++objs[i].depth > objs[i].max)
        objs[i].max = objs[i].depth;
    if (++lock_depth > lock_max_depth)
        lock_max_depth = lock_depth;
}

void capheap_port_lock_release(void *lock)
{
    lock_rel++;
    size_t i = obj_slot(lock);
    if (lock == NULL || i == LOCK_OBJECTS || objs[i].depth == 0) {
        lock_errors++; /* released without being held */
        return;
    }
    objs[i].depth--;
    lock_depth--;
}

static void lock_seen_reset(void)
{
    for (size_t i = 0; i < LOCK_OBJECTS; i++)
        objs[i].seen = false;
}

static bool lock_was_seen(const void *obj)
{
    size_t i = obj_slot(obj);
    return obj != NULL && i < LOCK_OBJECTS && objs[i].seen;
}

/* The one object taken since lock_seen_reset(), or NULL (none, or several). */
static const void *lock_only_seen(void)
{
    const void *one = NULL;
    size_t n = 0;
    for (size_t i = 0; i < LOCK_OBJECTS; i++)
        if (objs[i].seen) {
            one = objs[i].obj;
            n++;
        }
    return n == 1 ? one : NULL;
}

/* Every public call leaves no lock held and as many releases as acquisitions. */
#define CHECK_BALANCED() \
    CHECK(lock_depth == 0 && lock_acq == lock_rel && lock_errors == 0, "lock hooks balanced")

/* The critical section (port.h) stands in for an atomic add on CPUs that
 * have none (RV32IMC, Armv6-M): counted here, nesting refused. */
static unsigned long crit_enters, crit_exits;
static bool crit_inside;

uint32_t capheap_port_critical_enter(void)
{
    if (crit_inside)
        lock_errors++;
    crit_inside = true;
    crit_enters++;
    return 0x5Au;
}

void capheap_port_critical_exit(uint32_t state)
{
    if (!crit_inside || state != 0x5Au)
        lock_errors++;
    crit_inside = false;
    crit_exits++;
}

/* Task tracking asks for the current task on every allocation (checked
 * against this build's config.h at the end). */
static unsigned long task_calls;
static int fake_task;

void *capheap_port_current_task(void)
{
    task_calls++;
    return &fake_task;
}

/* A port that cannot name its tasks (capheap/port.h): task tracking then
 * names a task after its handle, "task-" and the handle in hex. */
static unsigned long name_calls;

const char *capheap_port_task_name(void *task)
{
    (void)task;
    name_calls++;
    return NULL;
}

/* ---- regions -------------------------------------------------------------------- */

#define KIB 1024u
#define PAD 1024u /* around the DRAM region: room for the overlap attempts */
#define DRAM_SIZE (96u * KIB)
#define SPIRAM_SIZE (256u * KIB)
#define RTC_SIZE (8u * KIB)
#define TINY_STRIDE 256u

static _Alignas(16) uint8_t dram_arena[DRAM_SIZE + 2u * PAD];
static _Alignas(16) uint8_t spiram_buf[SPIRAM_SIZE];
static _Alignas(16) uint8_t rtc_buf[RTC_SIZE];
static _Alignas(16) uint8_t tiny_arena[(CAPHEAP_MAX_HEAPS + 1u) * TINY_STRIDE];
static _Alignas(16) uint8_t foreign[64]; /* in no heap */

#define TINY_CAPS MALLOC_CAP_RETENTION /* no test mask asks for it */

typedef struct {
    uint32_t caps[3];
    uintptr_t start, end;
    uint32_t all;
    multi_heap_handle_t heap;
    const void *lock; /* the object our hooks get for this heap */
    size_t base_free; /* multi_heap_free_size() of the fresh heap */
} region_t;

#define N_REGIONS 4
static region_t regions[N_REGIONS] = {
    {.caps = {MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT, MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA | MALLOC_CAP_32BIT, 0}},
    {.caps = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT}},
    {.caps = {0, 0, MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT | MALLOC_CAP_32BIT}},
    {.caps = {TINY_CAPS, 0, 0}},
};
#define DRAM (&regions[0])

/* The region holding [p, p + n), or NULL. */
static region_t *region_of(const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p;
    for (size_t i = 0; i < N_REGIONS; i++)
        if (a >= regions[i].start && a < regions[i].end && n <= regions[i].end - a)
            return &regions[i];
    return NULL;
}

static void check_all_free(const char *what)
{
    for (size_t i = 0; i < N_REGIONS; i++)
        CHECK_EQ(multi_heap_free_size(regions[i].heap), regions[i].base_free, what);
}

static esp_err_t add(const uint32_t caps[3], const void *start, const void *end)
{
    esp_err_t e = heap_caps_add_region_with_caps(caps, (intptr_t)start, (intptr_t)end);
    CHECK_BALANCED();
    return e;
}

static void test_registration(void)
{
    const uint8_t *d = dram_arena + PAD;
    size_t min = capheap_heap_min_region_size(4);
    CHECK(min > 0 && min + 16u <= TINY_STRIDE, "the minimum region size fits the tiny stride");
    const uint8_t *bounds[N_REGIONS][2] = {{d, d + DRAM_SIZE},
                                           {spiram_buf, spiram_buf + SPIRAM_SIZE},
                                           {rtc_buf, rtc_buf + RTC_SIZE},
                                           {tiny_arena, tiny_arena + min}};
    unsigned long acq0 = lock_acq;
    for (size_t i = 0; i < N_REGIONS; i++) {
        region_t *r = &regions[i];
        r->start = (uintptr_t)bounds[i][0];
        r->end = (uintptr_t)bounds[i][1];
        r->all = r->caps[0] | r->caps[1] | r->caps[2];
        CHECK_EQ(add(r->caps, bounds[i][0], bounds[i][1]), ESP_OK, "register a region");
    }
    CHECK(lock_acq > acq0, "registration takes a lock through our hook");

    /* Refused registrations change nothing. */
    lock_seen_reset();
    CHECK_EQ(add(DRAM->caps, dram_arena, d + 64), ESP_FAIL, "overlap: straddles a heap's start");
    const void *registry_lock = lock_only_seen();
    CHECK(registry_lock != NULL, "a refused registration takes exactly one lock object");
    CHECK_EQ(add(DRAM->caps, d + DRAM_SIZE - 64, d + DRAM_SIZE + PAD), ESP_FAIL, "overlap: straddles an end");
    CHECK_EQ(add(DRAM->caps, d, d + DRAM_SIZE), ESP_FAIL, "overlap: equals a heap");
    CHECK_EQ(add(DRAM->caps, dram_arena, d + DRAM_SIZE + PAD), ESP_FAIL, "overlap: covers a heap");
    CHECK_EQ(add(DRAM->caps, foreign, foreign), ESP_ERR_INVALID_ARG, "start == end");
    CHECK_EQ(add(DRAM->caps, foreign + 32, foreign), ESP_ERR_INVALID_ARG, "start > end");
    CHECK_EQ(add(NULL, foreign, foreign + 32), ESP_ERR_INVALID_ARG, "caps NULL");
    const uint8_t *t = tiny_arena + TINY_STRIDE;
    CHECK_EQ(add(regions[3].caps, t, t + min - 1u), ESP_ERR_INVALID_SIZE,
             "one byte below the minimum region size");
    CHECK_EQ(add(DRAM->caps, foreign, foreign + 16), ESP_ERR_INVALID_SIZE, "a 16-byte region");
    CHECK_EQ(capheap_heap_count(), N_REGIONS, "only the good registrations made heaps");

    /* Each heap's handle, lock object and fresh free bytes. */
    for (size_t i = 0; i < N_REGIONS; i++) {
        region_t *r = &regions[i];
        capheap_heap_desc_t desc;
        int k = capheap_heap_find((const void *)(r->start + 64u));
        if (!CHECK(k >= 0 && capheap_heap_get((size_t)k, &desc), "capheap_heap_find a region"))
            continue;
        CHECK(desc.start == (intptr_t)r->start && desc.end == (intptr_t)r->end && desc.runtime &&
                  desc.heap != NULL && memcmp(desc.caps, r->caps, sizeof desc.caps) == 0,
              "the descriptor is the region as registered");
        r->heap = desc.heap;
        r->base_free = multi_heap_free_size(r->heap);
        CHECK(r->base_free > 0 && r->base_free < r->end - r->start, "a fresh heap's free bytes");
        lock_seen_reset();
        unsigned long a0 = lock_acq;
        (void)capheap_heap_largest_request(r->heap, 4); /* documented to take the heap's lock */
        r->lock = lock_only_seen();
        CHECK(lock_acq == a0 + 1u && r->lock != NULL, "largest_request takes one lock, once");
        CHECK(r->lock != registry_lock && region_of(r->lock, 1) == NULL,
              "a heap's lock is not the registry's, and not in heap memory");
        for (size_t j = 0; j < i; j++)
            CHECK(regions[j].lock != r->lock, "every heap has its own lock object");
    }
    void *p = heap_caps_malloc(1, TINY_CAPS);
    CHECK(p != NULL && region_of(p, 1) == &regions[3], "a minimum-size heap serves malloc(1)");
    heap_caps_free(p);
    check_all_free("every heap fresh after registration");
    CHECK_BALANCED();
}

/* ---- the model ------------------------------------------------------------------- */

/* Caps no region has. (DMA|SPIRAM was, until SPIRAM dropped DMA without a chip too, as
 * chips.md 0.3 says: such a request is served from the SPIRAM region now.) */
#define IMPOSSIBLE (MALLOC_CAP_INTERNAL | MALLOC_CAP_SPIRAM)
static const uint32_t masks[] = {MALLOC_CAP_DEFAULT,  MALLOC_CAP_DMA,  MALLOC_CAP_SPIRAM, MALLOC_CAP_INTERNAL,
                                 MALLOC_CAP_8BIT, MALLOC_CAP_32BIT, IMPOSSIBLE};
#define N_MASKS (sizeof masks / sizeof masks[0])

typedef struct {
    uint8_t *p;
    size_t size;   /* requested */
    uint32_t caps; /* requested */
    size_t align;  /* requested, at least 4 */
    uint32_t token;
} block_t;

#define MAX_LIVE 64
static block_t live[MAX_LIVE];
static size_t n_live;
static unsigned long n_alloc, n_null, n_no_room, n_realloc, n_moved, n_free, max_live;
static unsigned long failed_calls;

static void on_failed(size_t size, uint32_t caps, const char *fn)
{
    (void)size;
    (void)caps;
    (void)fn;
    failed_calls++;
}

/* The extended callback (capheap/caps.h), registered with &failed_ext_user:
 * counted when it comes with that pointer. It runs after the lock that pairs
 * it with its pointer is released (fit.c), which the hooks' balance checks. */
static unsigned long failed_ext_calls;
static int failed_ext_user;

static void on_failed_ext(size_t size, uint32_t caps, const char *fn, const capheap_fit_t *why, void *user)
{
    (void)size;
    (void)caps;
    (void)fn;
    failed_ext_calls += why != NULL && user == &failed_ext_user;
}

static uint32_t rng;

static uint32_t rnd(void) /* xorshift32 */
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static size_t below(size_t n)
{
    return (size_t)(rnd() % (uint32_t)n);
}

static size_t random_size(void) /* 0 .. 40 KiB, mostly small */
{
    uint32_t r = rnd() % 100u;
    return r < 1u ? 0 : r < 55u ? 1u + below(64) : r < 80u ? 65u + below(960)
           : r < 90u ? 1025u + below(7 * KIB) : 8u * KIB + below(32 * KIB);
}

static uint8_t stamp_byte(uint32_t token, size_t i)
{
    return (uint8_t)((token >> ((i & 3u) * 8u)) ^ (uint32_t)(i * 0x3Bu) ^ (uint32_t)(i >> 9));
}

static void stamp(uint8_t *p, size_t n, uint32_t token)
{
    for (size_t i = 0; i < n; i++)
        p[i] = stamp_byte(token, i);
}

/* The first byte in [from, to) that is not token's pattern, or to. */
static size_t mismatch(const uint8_t *p, size_t from, size_t to, uint32_t token)
{
    while (from < to && p[from] == stamp_byte(token, from))
        from++;
    return from;
}

static bool intact(const block_t *b)
{
    size_t at = mismatch(b->p, 0, b->size, b->token);
    if (at != b->size)
        printf("  block %p (%lu bytes) differs at byte %lu\n", (void *)b->p, (unsigned long)b->size,
               (unsigned long)at);
    return at == b->size;
}

static void check_block(const block_t *b)
{
    region_t *r = region_of(b->p, b->size);
    CHECK(r != NULL && (r->all & b->caps) == b->caps, "a block lies in a region with the caps asked for");
    CHECK(((uintptr_t)b->p & (b->align - 1u)) == 0, "a block has its alignment");
    size_t want = (b->caps & MALLOC_CAP_32BIT) ? (b->size + 3u) & ~(size_t)3u : b->size;
    CHECK(heap_caps_get_allocated_size(b->p) >= want, "allocated size >= requested");
}

/* Statistics: per mask, free and total sizes are the sums over the matching
 * heaps; per heap, free bytes plus each live block's footprint (full size and
 * 4-byte header) are the fresh heap's free bytes; get_info counts the blocks. */
static void check_accounting(void)
{
    for (size_t m = 0; m < N_MASKS; m++) {
        size_t free_sum = 0, total = 0;
        for (size_t i = 0; i < N_REGIONS; i++)
            if ((regions[i].all & masks[m]) == masks[m]) {
                free_sum += multi_heap_free_size(regions[i].heap);
                total += regions[i].end - regions[i].start;
            }
        CHECK_EQ(heap_caps_get_free_size(masks[m]), free_sum, "free size = sum over the matching heaps");
        CHECK_EQ(heap_caps_get_total_size(masks[m]), total, "total size = sum over the matching heaps");
        CHECK(heap_caps_get_minimum_free_size(masks[m]) <= free_sum, "minimum free <= free");
    }
    size_t used[N_REGIONS] = {0}, usable = 0;
    for (size_t k = 0; k < n_live; k++) {
        region_t *r = region_of(live[k].p, live[k].size);
        if (r != NULL)
            used[r - regions] += multi_heap_get_full_block_size(r->heap, live[k].p) + 4u;
        usable += heap_caps_get_allocated_size(live[k].p);
    }
    for (size_t i = 0; i < N_REGIONS; i++) {
        /* With poisoning the free bytes are one poison overhead less, clamped
         * at 0 (multi_heap.h): a full heap says 0 with up to that many left. */
        size_t f = multi_heap_free_size(regions[i].heap), base = regions[i].base_free;
        if (f == 0 && used[i] > base)
            CHECK(used[i] <= base + capheap_heap_poison_overhead(regions[i].heap),
                  "exact accounting of a full heap");
        else
            CHECK_EQ(f + used[i], base, "exact accounting: free + live footprints = fresh free");
    }
    multi_heap_info_t info;
    heap_caps_get_info(&info, 0);
    CHECK_EQ(info.allocated_blocks, n_live, "get_info: allocated blocks = live blocks");
    CHECK_EQ(info.total_allocated_bytes, usable, "get_info: allocated bytes = sum of allocated sizes");
    CHECK_EQ(info.total_free_bytes, heap_caps_get_free_size(0), "get_info: free bytes");
}

static void check_model(void)
{
    CHECK(heap_caps_check_integrity_all(true), "heap_caps_check_integrity_all");
    bool disjoint = true, edges = true;
    uintptr_t end[MAX_LIVE];
    for (size_t k = 0; k < n_live; k++) {
        const block_t *b = &live[k];
        size_t n = b->size, e = n < 16u ? n : 16u;
        edges = edges && mismatch(b->p, 0, e, b->token) == e && mismatch(b->p, n - e, n, b->token) == n;
        end[k] = (uintptr_t)b->p + heap_caps_get_allocated_size(b->p);
        for (size_t j = 0; j < k; j++)
            disjoint = disjoint && (end[k] <= (uintptr_t)live[j].p || end[j] <= (uintptr_t)b->p);
    }
    CHECK(edges, "every live block's first and last 16 bytes keep their stamp");
    CHECK(disjoint, "live blocks do not overlap (up to their allocated sizes)");
    check_accounting();
    CHECK_BALANCED();
}

/* malloc, calloc or aligned_alloc, checked against capheap_would_fit(), the
 * failure callback and the lock hooks. */
static void model_alloc(uint32_t caps)
{
    size_t size = random_size(), align = 0, n = 1, each = size;
    unsigned kind = (unsigned)below(3);
    if (kind == 1u && size > 1u && (rnd() & 1u)) {
        n = 2u + below(4); /* calloc(n, each) */
        each = size / n;
        size = n * each;
    }
    if (kind == 2u)
        align = (size_t)1u << below(11); /* 1 .. 1024 */
    capheap_fit_t fit;
    bool fits = capheap_would_fit(size, caps, align, &fit);
    unsigned long failed0 = failed_calls;
    lock_seen_reset();
    uint8_t *p = kind == 0u   ? heap_caps_malloc(size, caps)
                 : kind == 1u ? heap_caps_calloc(n, each, caps)
                              : heap_caps_aligned_alloc(align, size, caps);
    CHECK_BALANCED();
    n_alloc++;
    CHECK((p != NULL) == fits, "capheap_would_fit agrees with the allocation");
    CHECK(caps != IMPOSSIBLE || (p == NULL && (size == 0 || fit.reason == CAPHEAP_FIT_NO_HEAP_WITH_CAPS)),
          "no heap has INTERNAL|SPIRAM");
    if (p == NULL) {
        n_null++;
        n_no_room += fit.reason == CAPHEAP_FIT_NO_ROOM || fit.reason == CAPHEAP_FIT_ALIGNMENT_IMPOSSIBLE;
        CHECK_EQ(failed_calls, failed0 + (size != 0), "a failed allocation calls the callback once (not for 0)");
        return;
    }
    region_t *r = region_of(p, size);
    CHECK(r != NULL && lock_was_seen(r->lock), "an allocation takes the lock of the block's heap");
    CHECK(failed_calls == failed0 && capheap_heap_find(p) == fit.heap_index,
          "no callback, and the block is in the heap the dry run named");
    block_t *b = &live[n_live++];
    *b = (block_t){p, size, caps, align > 4u ? align : 4u, rnd()};
    max_live = n_live > max_live ? n_live : max_live;
    if (kind == 1u) {
        size_t i = 0;
        while (i < size && p[i] == 0)
            i++;
        CHECK_EQ(i, size, "calloc zeroes every byte");
    }
    check_block(b);
    stamp(p, size, b->token);
}

static void model_free(size_t k)
{
    block_t *b = &live[k];
    CHECK(intact(b), "a block keeps its stamp until it is freed");
    region_t *r = region_of(b->p, b->size);
    lock_seen_reset();
    if (rnd() & 1u)
        heap_caps_free(b->p);
    else
        heap_caps_aligned_free(b->p); /* deprecated: the same as heap_caps_free */
    CHECK_BALANCED();
    CHECK(r != NULL && lock_was_seen(r->lock), "free takes the lock of the block's heap");
    n_free++;
    *b = live[--n_live];
}

static void model_realloc(size_t k, uint32_t caps)
{
    block_t *b = &live[k];
    CHECK(intact(b), "a block keeps its stamp until it is resized");
    size_t size = random_size();
    unsigned long failed0 = failed_calls;
    uint8_t *q = heap_caps_realloc(b->p, size, caps);
    CHECK_BALANCED();
    n_realloc++;
    if (size == 0) {
        CHECK(q == NULL && failed_calls == failed0, "realloc(p, 0): NULL, p freed, no callback");
        *b = live[--n_live];
        return;
    }
    if (q == NULL) {
        CHECK_EQ(failed_calls, failed0 + 1u, "a failed realloc calls the callback once");
        CHECK(intact(b), "a failed realloc leaves the block untouched");
        return;
    }
    n_moved += region_of(q, 1) != region_of(b->p, 1);
    size_t keep = b->size < size ? b->size : size;
    CHECK(mismatch(q, 0, keep, b->token) == keep, "realloc keeps min(old, new) bytes");
    *b = (block_t){q, size, caps, 4u, rnd()};
    check_block(b);
    stamp(q, size, b->token);
}

/* heap_caps_get_largest_free_block: "largest size heap_caps_malloc(size,
 * caps) satisfies now (capheap: exact)", so it succeeds and one byte more
 * fails; the same for capheap_get_largest_free_block_aligned and
 * heap_caps_aligned_alloc; capheap_would_fit agrees with both. */
static void probe_honesty(size_t probe)
{
    /* Two masks a probe, every mask in turn and one at random: with
     * comprehensive poisoning each probe writes and checks the fill of up
     * to a whole heap, four times per mask. */
    for (size_t m = 0; m < 2u; m++) {
        uint32_t caps = masks[m == 0 ? probe % N_MASKS : below(N_MASKS)];
        size_t align = (size_t)4u << below(9); /* 4 .. 1024 */
        size_t l = heap_caps_get_largest_free_block(caps);
        size_t la = capheap_get_largest_free_block_aligned(caps, align);
        CHECK(caps != IMPOSSIBLE || l == 0, "no heap with the caps: largest free block 0");
        if (l > 0) {
            capheap_fit_t fit;
            CHECK(capheap_would_fit(l, caps, 0, &fit) && !capheap_would_fit(l + 1u, caps, 0, NULL),
                  "would_fit agrees with the largest free block");
            void *p = heap_caps_malloc(l, caps);
            CHECK(p != NULL && capheap_heap_find(p) == fit.heap_index, "malloc(largest free block) succeeds");
            heap_caps_free(p);
            CHECK(heap_caps_malloc(l + 1u, caps) == NULL, "malloc(largest free block + 1) fails");
        }
        if (la > 0) {
            CHECK(capheap_would_fit(la, caps, align, NULL) && !capheap_would_fit(la + 1u, caps, align, NULL),
                  "would_fit agrees with the largest aligned block");
            void *p = heap_caps_aligned_alloc(align, la, caps);
            CHECK(p != NULL && ((uintptr_t)p & (align - 1u)) == 0, "aligned_alloc(largest) succeeds");
            heap_caps_free(p);
            CHECK(heap_caps_aligned_alloc(align, la + 1u, caps) == NULL, "aligned_alloc(largest + 1) fails");
        }
        CHECK_BALANCED();
    }
}

#define STEPS 4000u

static void test_model(void)
{
    rng = seed != 0 ? seed : 0x9E3779B9u;
    size_t capture0 = capture_len;
    for (size_t step = 0; step < STEPS && failures == 0; step++) {
        cur_step = (long)step;
        uint32_t caps = masks[below(N_MASKS)];
        /* phases of 500 steps: filling (few frees), then draining */
        uint32_t op = rnd() % 100u, frees = (step / 500u) % 2u == 0 ? 20u : 45u;
        if (n_live == MAX_LIVE || (n_live > 0 && op < frees))
            model_free(below(n_live));
        else if (n_live > 0 && op < frees + 20u)
            model_realloc(below(n_live), caps);
        else
            model_alloc(caps);
        check_model();
        if (step % 32u == 31u)
            probe_honesty(step / 32u);
    }
    if (failures == 0) { /* else the heaps may be corrupt: a free could only abort */
        while (n_live > 0)
            model_free(n_live - 1u);
        check_model();
    }
    cur_step = -1;
    printf("target_caps: model: %u steps, %lu allocations (%lu NULL, %lu for want of room), %lu reallocs "
           "(%lu to another heap), %lu frees, up to %lu live\n",
           STEPS, n_alloc, n_null, n_no_room, n_realloc, n_moved, n_free, max_live);
    CHECK_EQ(capture_len, capture0, "an intact run prints nothing");
    if (failures == 0)
        check_all_free("every heap free again after the model");
}

/* ---- edges ------------------------------------------------------------------------- */

static void test_edges(void)
{
    unsigned long failed0 = failed_calls;
    CHECK(heap_caps_malloc(0, MALLOC_CAP_DEFAULT) == NULL, "malloc(0) is NULL");
    CHECK(heap_caps_calloc(0, 8, MALLOC_CAP_DEFAULT) == NULL, "calloc(0, 8) is NULL");
    CHECK(heap_caps_aligned_alloc(3, 16, MALLOC_CAP_DEFAULT) == NULL, "alignment 3: NULL");
    CHECK(heap_caps_aligned_alloc(0, 16, MALLOC_CAP_DEFAULT) == NULL, "alignment 0: NULL");
    CHECK(heap_caps_aligned_calloc(8, SIZE_MAX / 2u, 4, MALLOC_CAP_DEFAULT) == NULL, "aligned_calloc overflow");
    CHECK_EQ(failed_calls, failed0, "size 0, bad alignment, aligned_calloc overflow: no callback");
    CHECK(heap_caps_calloc(SIZE_MAX / 2u, 4, MALLOC_CAP_DEFAULT) == NULL, "calloc overflow is NULL");
    CHECK(heap_caps_malloc(16, IMPOSSIBLE) == NULL, "malloc with caps no heap has is NULL");
    CHECK_EQ(failed_calls, failed0 + 2u, "calloc overflow and caps no heap has: the callback");
    heap_caps_free(NULL);
    heap_caps_aligned_free(NULL);
    CHECK_EQ(heap_caps_get_allocated_size(NULL), 0, "allocated size of NULL");
    static const struct {
        size_t size;
        uint32_t caps;
        size_t align;
        capheap_fit_reason_t reason;
    } fits[] = {{0, MALLOC_CAP_DEFAULT, 0, CAPHEAP_FIT_ZERO_SIZE},
                {8, MALLOC_CAP_DEFAULT, 3, CAPHEAP_FIT_BAD_ALIGNMENT},
                {8, 0, 0, CAPHEAP_FIT_CONFLICTING_CAPS},
                {8, IMPOSSIBLE, 0, CAPHEAP_FIT_NO_HEAP_WITH_CAPS},
                {SPIRAM_SIZE, MALLOC_CAP_SPIRAM, 0, CAPHEAP_FIT_NO_ROOM}};
    for (size_t i = 0; i < sizeof fits / sizeof fits[0]; i++) {
        capheap_fit_t fit;
        CHECK(!capheap_would_fit(fits[i].size, fits[i].caps, fits[i].align, &fit), "would_fit refuses");
        CHECK_EQ(fit.reason, fits[i].reason, "would_fit's reason");
    }
    uint8_t *p = heap_caps_realloc(NULL, 100, MALLOC_CAP_DMA);
    CHECK(p != NULL && region_of(p, 100) == DRAM, "realloc(NULL, n, DMA) allocates DMA memory");
    CHECK(heap_caps_realloc(p, 0, MALLOC_CAP_DMA) == NULL, "realloc(p, 0) is NULL");
    CHECK_EQ(multi_heap_free_size(DRAM->heap), DRAM->base_free, "realloc(p, 0) freed p");
    p = heap_caps_malloc(40, MALLOC_CAP_SPIRAM);
    if (CHECK(p != NULL && region_of(p, 40) == &regions[1], "malloc(40, SPIRAM)")) {
        stamp(p, 40, 0xC0FFEEu);
        uint8_t *q = heap_caps_realloc(p, 60, MALLOC_CAP_DMA);
        CHECK(q != NULL && region_of(q, 60) == DRAM && mismatch(q, 0, 40, 0xC0FFEEu) == 40,
              "realloc to DMA caps moves the block to DMA memory with its bytes");
        heap_caps_free(q);
    }
    check_all_free("the edge cases leave every heap free");
    CHECK_BALANCED();
}

/* The lock must be recursive (port.h). With every lock held through
 * capheap_caps_lock_all(), as around a fork or a snapshot, an allocation
 * takes its heap's lock a second time. */
static void test_recursion(void)
{
    /* Bare metal: tracing and task tracking take port locks of their own (trace.c, task_info.c),
     * which lock_all holds too, as it holds the minimum-free monitor's (stats.c). */
    const unsigned all = N_REGIONS + 2u + (CAPHEAP_TASK_TRACKING ? 1u : 0u) + (CAPHEAP_TRACING ? 1u : 0u);
    capheap_caps_lock_all();
    CHECK_EQ(lock_depth, all, "lock_all takes the monitor's and the registry's locks, every heap's and the "
                              "debug layers'");
    size_t dram = obj_slot(DRAM->lock);
    CHECK(dram < LOCK_OBJECTS && objs[dram].depth == 1, "lock_all holds the DMA heap's lock once");
    if (dram == LOCK_OBJECTS)
        return;
    objs[dram].max = 1;
    void *p = heap_caps_malloc(100, MALLOC_CAP_DMA);
    CHECK(p != NULL && region_of(p, 100) == DRAM, "malloc while every lock is held");
    heap_caps_free(p);
    CHECK_EQ(objs[dram].max, 2, "the DMA heap's lock was taken again, nested");
    CHECK_EQ(lock_depth, all, "the nested acquisitions were released");
    capheap_caps_unlock_all();
    CHECK_BALANCED();
}

/* A check step that finds the heap changed takes a new token from a counter
 * all heaps share (multi_heap.c, next_token): an atomic add where the CPU
 * has one, else a critical section (this build's compiler says which). A
 * change before each of three passes: one token each; a pass over a heap
 * that did not change since: none. */
static void test_check_token(void)
{
#if defined(__GCC_ATOMIC_INT_LOCK_FREE) && __GCC_ATOMIC_INT_LOCK_FREE == 2
    const unsigned long per_pass = 0;
#else
    const unsigned long per_pass = 1;
#endif
    unsigned long counted = 0;
    for (unsigned pass = 0; pass < 4; pass++) {
        if (pass < 3) {
            void *p = heap_caps_malloc(24, MALLOC_CAP_DMA); /* a change */
            CHECK(p != NULL, "malloc before a check pass");
            heap_caps_free(p);
        }
        unsigned long before = crit_enters;
        capheap_check_cursor_t cursor;
        capheap_check_cursor_init(&cursor);
        bool done = false;
        unsigned steps = 0;
        while (!done && steps++ < 1000u)
            CHECK(capheap_heap_check_step(DRAM->heap, &cursor, 4, false, &done), "check step on a sound heap");
        CHECK(done, "a check pass over the DMA heap ends");
        counted += crit_enters - before;
    }
    CHECK_EQ(counted, 3u * per_pass, "critical sections per changed heap's check pass (none with an atomic add)");
    CHECK(crit_enters == crit_exits && !crit_inside, "critical sections balanced");
    CHECK_BALANCED();
}

/* ---- misuse ------------------------------------------------------------------------- */

static void do_free(void *p)
{
    heap_caps_free(p);
}

static void do_realloc(void *p)
{
    (void)heap_caps_realloc(p, 32, MALLOC_CAP_DEFAULT);
}

/* fn(p) must print one report (text, address as the report prints it:
 * lowercase hex, no padding) through capheap_port_write and end in
 * capheap_port_abort; afterwards no lock is held, every heap intact. */
static void misuse(void (*fn)(void *), void *p, const void *address, const char *text)
{
    printf("target_caps: misuse of %p, a \"%s\" report follows:\n", p, text);
    capture_len = 0;
    capture[0] = '\0';
    abort_reason = NULL;
    capheap_clear_last_report();
    unsigned long calls0 = abort_calls;
    bool jumped = false;
    abort_armed = true;
    if (setjmp(abort_jmp) == 0) {
        fn(p);
        abort_armed = false; /* capheap_port_abort was not called, or returned */
    } else {
        jumped = true;
    }
    CHECK(jumped && abort_calls == calls0 + 1u, "the misuse ended in capheap_port_abort");
    capheap_report_t r = capheap_last_report();
    CHECK(r.what != NULL && abort_reason == r.what && strcmp(r.what, text) == 0, "the report's text");
    if (!CHECK(r.address == address, "the report names the expected address"))
        printf("  report at %p, expected %p\n", r.address, address);
    char at[32];
    snprintf(at, sizeof at, " at 0x%" PRIxPTR ".", (uintptr_t)address); /* then " Expected", or the end of a report without values */
    CHECK(strncmp(capture, "CORRUPT HEAP: ", 14) == 0 && strstr(capture, text) != NULL &&
              strstr(capture, at) != NULL,
          "the report came through capheap_port_write");
    CHECK_BALANCED();
    CHECK(heap_caps_check_integrity_all(true), "the heaps are intact after the misuse");
}

static void test_misuse(void)
{
    /* the middle block stays a block of its own once freed */
    uint8_t *a = heap_caps_malloc(48, MALLOC_CAP_DEFAULT);
    uint8_t *p = heap_caps_malloc(48, MALLOC_CAP_DEFAULT);
    uint8_t *c = heap_caps_malloc(48, MALLOC_CAP_DEFAULT);
    if (!CHECK(a != NULL && p != NULL && c != NULL, "three blocks for the misuse tests"))
        return;
    heap_caps_free(p);
    /* A double free names the pointer passed, in every poisoning mode. */
    misuse(do_free, p, p, "Double free");
    misuse(do_free, foreign + 16, foreign + 16, "target pointer is outside heap areas");
    misuse(do_realloc, foreign + 16, foreign + 16, "target pointer is outside heap areas");
    heap_caps_free(a);
    heap_caps_free(c);
    check_all_free("the misuse left every heap as it was");
}

/* Descriptors run out at CAPHEAP_MAX_HEAPS: ESP_ERR_NO_MEM. */
static void test_exhaustion(void)
{
    size_t min = capheap_heap_min_region_size(4), added = 0;
    esp_err_t e = ESP_OK;
    for (size_t i = 1; i <= CAPHEAP_MAX_HEAPS && e == ESP_OK; i++) {
        const uint8_t *t = tiny_arena + i * TINY_STRIDE;
        e = add(regions[3].caps, t, t + min);
        added += e == ESP_OK;
    }
    CHECK_EQ(e, ESP_ERR_NO_MEM, "a registration beyond CAPHEAP_MAX_HEAPS");
    CHECK_EQ(added + N_REGIONS, CAPHEAP_MAX_HEAPS, "every descriptor was usable");
    CHECK_EQ(capheap_heap_count(), CAPHEAP_MAX_HEAPS, "heap count at the limit");
    CHECK(heap_caps_check_integrity_all(true), "integrity with every descriptor in use");
    CHECK_BALANCED();
}

/* The seed: a numeric argument, else CAPHEAP_SEED, else 1. (Under QEMU
 * without arg=, picolibc's semihosting argv[1] is the image's path, hence
 * "numeric"; QEMU semihosting passes no environment.) */
static bool parse_seed(const char *s)
{
    char *end;
    unsigned long v = s != NULL ? strtoul(s, &end, 0) : 0;
    if (s == NULL || end == s || *end != '\0')
        return false;
    seed = (uint32_t)v;
    return true;
}

int main(int argc, char **argv)
{
    bool given = false;
    for (int i = 1; i < argc && !given; i++)
        given = parse_seed(argv[i]);
    if (!given)
        (void)parse_seed(getenv("CAPHEAP_SEED"));
    printf("target_caps: seed=%" PRIu32 "\n", seed);
    heap_caps_register_failed_alloc_callback(on_failed);
    capheap_register_failed_alloc_callback(on_failed_ext, &failed_ext_user);

    /* Each part needs the heaps as the one before left them: stop at a failure. */
    void (*const parts[])(void) = {test_registration, test_edges,  test_recursion,   test_check_token,
                                   test_model,        test_misuse, test_exhaustion};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && failures == 0; i++)
        parts[i]();

#if CAPHEAP_TASK_TRACKING
    CHECK(task_calls > 0, "task tracking asks our current-task hook");
    CHECK(name_calls > 0, "task tracking asks our task-name hook");
    heap_single_task_stat_t ts;
    memset(&ts, 0, sizeof ts);
    CHECK_EQ(heap_caps_get_single_task_stat(&ts, &fake_task), ESP_OK, "our task is tracked");
    char want[configMAX_TASK_NAME_LEN];
    snprintf(want, sizeof want, "task-%" PRIxPTR, (uintptr_t)&fake_task);
    CHECK(strcmp(ts.stat.name, want) == 0, "a task the port cannot name is named after its handle");
#elif !CAPHEAP_TRACING
    CHECK_EQ(task_calls, 0, "without task tracking or tracing the current-task hook is never called");
#endif
    CHECK(failed_calls > 0 && failed_ext_calls == failed_calls,
          "every failure calls the extended callback too, with its user pointer");
    printf("target_caps: lock hooks: %lu acquisitions, deepest nesting %u\n", lock_acq, lock_max_depth);
    if (failures != 0) {
        printf("target_caps: %lu of %lu checks failed (seed=%" PRIu32 ")\n", failures, checks, seed);
        return 1;
    }
    printf("target_caps: %lu checks passed\n", checks);
    return 0;
}
