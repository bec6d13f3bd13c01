/*
 * fuzz_misuse.c - libFuzzer target: bad pointers and corrupted memory.
 *
 * fuzz_ops drives a heap only the right way. This target checks the two
 * promises capheap makes when the caller or the memory goes wrong
 * (docs/design.md, "Cheap checks on free and realloc" and the invariants):
 *
 *   1. A pointer that is not a live block's (outside the heap, into a block,
 *      freed already, off the alignment, foreign) handed to free, aligned_free,
 *      realloc, get_allocated_size or get_full_block_size is reported, naming
 *      that pointer, and changes nothing: every byte of the region is as
 *      before, and the heap still passes its check. Without poisoning this is
 *      certain only for pointers outside the pool or off the alignment; an
 *      aligned pointer into the pool whose four bytes in front read as a used
 *      header (a stale free-list link, say) may pass for a block, as
 *      docs/design.md says: such a pointer is only asked its size.
 *   2. After arbitrary bytes of the region are overwritten, multi_heap_check,
 *      its incremental form, get_info, walk, dump, find_containing_block and
 *      the statistics never read outside the region and always end; the check
 *      and the incremental check agree; a failed check printed a report that
 *      names an address in the region. A heap that passes the check after the
 *      damage is a heap: freeing every used block its walk shows is accepted
 *      without a report and leaves one free block of the fresh free size.
 *
 * The region sits in an mmap between two PROT_NONE pages, against the lower
 * or the upper one, so a read before or after it is a crash. Live blocks are
 * filled with one byte value each, and the region with 0xA5 before each run,
 * so that an input replays alone and the only bytes that can pass for a
 * header are the heap's own.
 *
 * Input layout:
 *   byte 0      bits 0-2 region size (256 B .. 64 KiB), bits 3-4 heap alignment
 *               (4, 8, 16, 4), bit 5 region against the upper guard page
 *               (else the lower), bit 6 attach a lock (host port)
 *   then ops    [op byte][slot byte][operands...] until the input ends:
 *               op % 8: 0-2 malloc (size, fill byte), 3 free, 4 realloc (size,
 *               fill byte), 5 a bad pointer (kind, operands, call),
 *               6 check + info, 7 damage: overwrite 1-4 words or bytes of the
 *               region, run every reader, and end the input there.
 * A property violation prints what broke and aborts (a crash for libFuzzer);
 * a report from capheap outside the places it is expected also aborts.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_catch.h"
#include "fuzz_input.h"
#include "capheap/check.h"
#include "capheap/config.h"
#include "capheap/heap.h"
#include "capheap/port.h"
#include "capheap/report.h"
#include "multi_heap.h"

#define FZ_MAX_REGION 65536u
#define FZ_SLOTS 32u
#define FZ_FREED 8u

#define FZ_REQUIRE(cond, ...)                                       \
    do {                                                            \
        if (!(cond)) {                                              \
            fprintf(stderr, "fuzz_misuse: property violated: ");    \
            fprintf(stderr, __VA_ARGS__);                           \
            fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);      \
            abort();                                                \
        }                                                           \
    } while (0)

typedef struct {
    uint8_t *p;
    size_t size;
    uint8_t fill;
} fz_blk_t;

/* ---- guarded region ------------------------------------------------------ */

/* The region's free blocks and headers are poisoned for ASan (src/debug/sanitize.h):
 * the harness copies, compares and damages them with these uninstrumented byte loops
 * (volatile, so that they do not become memcpy calls, which ASan intercepts). */
#if defined(__GNUC__)
#define FZ_NO_ASAN __attribute__((no_sanitize_address))
#else
#define FZ_NO_ASAN
#endif

static FZ_NO_ASAN void raw_copy(uint8_t *dst, const uint8_t *src, size_t n)
{
    const volatile uint8_t *s = src;
    for (size_t i = 0; i < n; i++)
        dst[i] = s[i];
}

static FZ_NO_ASAN void raw_set(uint8_t *dst, uint8_t v, size_t n)
{
    volatile uint8_t *d = dst;
    for (size_t i = 0; i < n; i++)
        d[i] = v;
}

/* The offset of the first byte where a and b differ, or n. */
static FZ_NO_ASAN size_t raw_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    const volatile uint8_t *x = a;
    for (size_t i = 0; i < n; i++)
        if (x[i] != b[i])
            return i;
    return n;
}

static FZ_NO_ASAN uint8_t raw_get(const uint8_t *p)
{
    return *(const volatile uint8_t *)p;
}

static FZ_NO_ASAN void raw_put(uint8_t *p, uint8_t v)
{
    *(volatile uint8_t *)p = v;
}

static uint32_t raw_word(const uint8_t *p)
{
    return (uint32_t)raw_get(p) | (uint32_t)raw_get(p + 1) << 8 | (uint32_t)raw_get(p + 2) << 16 |
           (uint32_t)raw_get(p + 3) << 24;
}

static void raw_put_word(uint8_t *p, uint32_t w)
{
    for (unsigned i = 0; i < 4; i++)
        raw_put(p + i, (uint8_t)(w >> (8 * i)));
}

static uint8_t *g_low;  /* first byte after the lower guard page */
static size_t g_span;   /* bytes between the guard pages */
static uint8_t g_before[FZ_MAX_REGION];

static void map_region(void)
{
    if (g_low != NULL)
        return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    g_span = (FZ_MAX_REGION + page - 1) / page * page;
    uint8_t *m = mmap(NULL, g_span + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    FZ_REQUIRE(m != MAP_FAILED, "mmap");
    FZ_REQUIRE(mprotect(m, page, PROT_NONE) == 0 && mprotect(m + page + g_span, page, PROT_NONE) == 0,
               "mprotect");
    g_low = m + page;
}

/* ---- the shadow ---------------------------------------------------------- */

/* FUZZ_MISUSE_TRACE=1 in the environment prints every step (to replay a crash). */
static bool g_trace;
#define TRACE(...) (g_trace ? (void)fprintf(stderr, __VA_ARGS__) : (void)0)

static void fill(fz_blk_t *b)
{
    memset(b->p, b->fill, b->size);
}

static void verify(const fz_blk_t *b, const char *when)
{
    for (size_t i = 0; i < b->size; i++)
        FZ_REQUIRE(b->p[i] == b->fill, "%s: block %p byte %zu is 0x%02x, filled 0x%02x", when, (void *)b->p,
                   i, b->p[i], b->fill);
}

static bool is_live(const fz_blk_t *slots, const void *p)
{
    for (unsigned i = 0; i < FZ_SLOTS; i++)
        if (slots[i].p != NULL && slots[i].p == p)
            return true;
    return false;
}

static size_t in_size(fz_in_t *in, size_t region)
{
    uint8_t b = in_u8(in);
    switch (b >> 6) {
    case 0: return (size_t)(b & 63u) + 1u;
    case 1: return (size_t)in_u16(in) % 1024u + 1u;
    case 2: return (size_t)in_u16(in) % region + 1u;
    default: return (size_t)(b & 15u) * 4u + 1u;
    }
}

/* ---- 1. bad pointers ----------------------------------------------------- */

/* The pointer a bad-pointer op names, or NULL for none this time. */
static uint8_t *bad_pointer(fz_in_t *in, const fz_blk_t *slots, uint8_t *const *freed, uint8_t *start,
                            size_t region)
{
    uint8_t kind = in_u8(in);
    const fz_blk_t *s = &slots[in_u8(in) % FZ_SLOTS];
    switch (kind % 5u) {
    case 0: /* anywhere in or just around the region, any alignment */
        return start + (ptrdiff_t)(in_u16(in) % (region + 64u)) - 32;
    case 1: /* a pointer freed before (double free, or use after a merge) */
        return freed[in_u8(in) % FZ_FREED];
    case 2: /* into a live block, or just in front of it */
        if (s->p == NULL)
            return NULL;
        return s->p + (ptrdiff_t)(int8_t)in_u8(in);
    case 3: /* into a live block at a multiple of 4 (the misaligned ones are easy) */
        if (s->p == NULL)
            return NULL;
        return s->p + 4 * (ptrdiff_t)(in_u8(in) % 64u + 1u);
    default: /* foreign memory: the fuzzer's own buffer */
        return g_before + 4u * (in_u16(in) % (sizeof g_before / 4u));
    }
}

/* Call number call of a bad-pointer operation; its result (a size as a pointer). */
static void *bad_call(multi_heap_handle_t h, unsigned call, void *p, size_t n)
{
    switch (call) {
    case 0: multi_heap_free(h, p); return NULL;
    case 1: multi_heap_aligned_free(h, p); return NULL;
    case 2: return multi_heap_realloc(h, p, n);
    case 3: return (void *)(uintptr_t)multi_heap_get_allocated_size(h, p);
    default: return (void *)(uintptr_t)multi_heap_get_full_block_size(h, p);
    }
}

/* The lowest data pointer of the heap: below it lies the control structure. */
static bool first_block_cb(void *block_ptr, size_t block_size, int block_used, void *user)
{
    (void)block_size;
    (void)block_used;
    *(uint8_t **)user = block_ptr;
    return false;
}

static void bad_pointer_op(fz_in_t *in, multi_heap_handle_t h, const fz_blk_t *slots, uint8_t *const *freed,
                           uint8_t *start, size_t region, size_t heap_align)
{
    uint8_t *p = bad_pointer(in, slots, freed, start, region);
    uint8_t call = (uint8_t)(in_u8(in) % 5u);
    size_t n = in_size(in, region);
    if (p == NULL || is_live(slots, p))
        return;
    TRACE("bad pointer %p (region + %td), call %u, size %zu\n", (void *)p, p - start, call, n);
    if (g_trace && p >= start + 8 && p + 8 <= start + region)
        TRACE("  words around it: %08x %08x [%08x] %08x %08x\n", (unsigned)raw_word(p - 8), (unsigned)raw_word(p - 4),
              (unsigned)raw_word(p), (unsigned)raw_word(p + 4), (unsigned)raw_word(p + 8));
    uint8_t *pool = start;
    multi_heap_walk(h, first_block_cb, &pool);
    /* Certain to be rejected: a pointer outside the pool or off the heap's
     * alignment, and with poisoning any pointer (its head canary). Without
     * poisoning an aligned pointer into the pool is rejected unless the four
     * bytes in front of it and the header they point to pass for a used block
     * (docs/design.md: "very likely, not certain"); a stale free-list link
     * the user never overwrote does, so such a pointer may be let through. */
    bool certain = !CAPHEAP_POISONING_NONE || p < pool || p >= start + region || (uintptr_t)p % heap_align != 0;
    bool reported;
    if (!certain && call < 3) {
        /* Ask the size first (the same checks as free's, changing nothing): if p
         * passes them, free and realloc would take it as a block (and under
         * ASan write into poisoned bytes); if not, they must report it. */
        FZ_CATCH(reported, (void)multi_heap_get_full_block_size(h, p));
        if (!reported) {
            TRACE("  passes for a block (no poisoning): not freed\n");
            return;
        }
        certain = true;
    }
    raw_copy(g_before, start, region);
    void *volatile result = NULL;
    FZ_CATCH(reported, result = bad_call(h, call, p, n));
    capheap_report_t r = capheap_last_report();
    if (!reported) {
        FZ_REQUIRE(!certain, "call %u with bad pointer %p (region %p + %zu, pool from %p) was not reported (returned %p)",
                   call, (void *)p, (void *)start, region, (void *)pool, result);
        TRACE("  passes for a block (no poisoning)\n");
    } else {
        FZ_REQUIRE(r.what != NULL && g_printed > 0, "call %u with %p: aborted without a printed report", call,
                   (void *)p);
        FZ_REQUIRE(r.address == p, "call %u with %p: \"%s\" names %p", call, (void *)p, r.what, r.address);
    }
    size_t at = raw_diff(start, g_before, region);
    FZ_REQUIRE(at == region, "call %u with %p changed the region at +%zu: 0x%02x was 0x%02x", call, (void *)p, at,
               raw_get(start + at), g_before[at]);
}

/* ---- 2. damage ----------------------------------------------------------- */

static void damage(fz_in_t *in, const fz_blk_t *slots, uint8_t *start, size_t region)
{
    unsigned count = in_u8(in) % 4u + 1u;
    for (unsigned k = 0; k < count; k++) {
        uint8_t how = in_u8(in);
        const fz_blk_t *s = &slots[in_u8(in) % FZ_SLOTS];
        size_t at;
        if ((how & 1u) && s->p != NULL) /* around a live block's header */
            at = (size_t)(s->p - start) + (size_t)(4 * (ptrdiff_t)(int8_t)in_u8(in)) - 4u;
        else if (how & 2u) /* the control structure and the first blocks */
            at = in_u8(in) * 4u;
        else
            at = in_u16(in);
        /* Not the first 8 bytes: the lock pointer multi_heap_set_lock() stored
         * there is taken before anything can be checked (docs/design.md, I12). */
        at = 8u + at % (region - 8u);
        TRACE("damage at region + %zu, kind %u\n", at, (how >> 2) % 4u);
        switch ((how >> 2) % 4u) {
        case 0: /* one bit */
            raw_put(start + at, (uint8_t)(raw_get(start + at) ^ (1u << (in_u8(in) % 8u))));
            break;
        case 1: /* one byte */
            raw_put(start + at, in_u8(in));
            break;
        case 2: /* a word moved by a small step (a size or a link off by a little) */
            at &= ~(size_t)3u;
            raw_put_word(start + at, raw_word(start + at) + (uint32_t)(int32_t)(int8_t)in_u8(in) * 4u);
            break;
        default: /* a whole word */
            at &= ~(size_t)3u;
            raw_put_word(start + at, in_u32(in));
            break;
        }
    }
}

typedef struct {
    size_t blocks, used;
    uint8_t *lo, *hi;
} walked_t;

static bool count_block(void *block_ptr, size_t block_size, int block_used, void *user)
{
    walked_t *w = user;
    uint8_t *b = block_ptr;
    FZ_REQUIRE(b >= w->lo && b <= w->hi && block_size <= (size_t)(w->hi - b),
               "walk gave block %p + %zu outside the region", block_ptr, block_size);
    w->blocks++;
    w->used += block_used != 0;
    return true;
}

typedef struct {
    multi_heap_handle_t h;
    uint8_t *users[FZ_MAX_REGION / 16];
    size_t n;
} used_t;

static bool collect_used(void *block_ptr, size_t block_size, int block_used, void *user)
{
    (void)block_size;
    used_t *u = user;
    if (block_used)
        u->users[u->n++] = multi_heap_find_containing_block(u->h, block_ptr);
    return true;
}

/* Every reader over a heap that may be corrupt; then, if it passes its check, use it. */
static void read_damaged(fz_in_t *in, multi_heap_handle_t h, uint8_t *start, size_t region, size_t f0)
{
    uint8_t *end = start + region;

    capheap_clear_last_report();
    g_printed = 0;
    bool ok = multi_heap_check(h, true);
    capheap_report_t r = capheap_last_report();
    if (ok) {
        FZ_REQUIRE(r.what == NULL && g_printed == 0, "check passed but reported \"%s\"",
                   r.what ? r.what : "(text only)");
    } else {
        FZ_REQUIRE(r.what != NULL && g_printed > 0, "check failed without a report");
        FZ_REQUIRE((const uint8_t *)r.address >= start && (const uint8_t *)r.address < end,
                   "check's report \"%s\" names %p, outside the region %p + %zu", r.what, r.address,
                   (void *)start, region);
    }
    FZ_REQUIRE(multi_heap_check(h, false) == ok, "check gave another answer without printing");

    /* the incremental check reaches the same verdict, in bounded steps */
    capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
    size_t step = in_u8(in) % 16u + 1u;
    bool steps_ok = true, done = false;
    for (unsigned i = 0; i < 100000u && !done; i++)
        steps_ok &= capheap_heap_check_step(h, &cur, step, false, &done);
    FZ_REQUIRE(done, "the incremental check did not end a pass in 100000 steps of %zu", step);
    FZ_REQUIRE(steps_ok == ok, "incremental check says %d, multi_heap_check %d", steps_ok, ok);

    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    walked_t w = {0, 0, start, end};
    multi_heap_walk(h, count_block, &w);
    (void)multi_heap_find_containing_block(h, start + in_u16(in) % region);
    (void)multi_heap_free_size(h);
    (void)multi_heap_minimum_free_size(h);
    (void)capheap_heap_largest_request(h, (size_t)1 << (in_u8(in) % 8u));
    multi_heap_dump(h);
    if (!ok)
        return;

    /* It passed: every statistic agrees with the walk, and the heap can be used. */
    FZ_REQUIRE(info.total_blocks == w.blocks && info.allocated_blocks == w.used,
               "info %zu / %zu blocks, walk %zu / %zu", info.total_blocks, info.allocated_blocks, w.blocks, w.used);
    static used_t u;
    u.h = h;
    u.n = 0;
    multi_heap_walk(h, collect_used, &u);
    for (size_t i = 0; i < u.n; i++) {
        FZ_REQUIRE(u.users[i] != NULL, "a used block of the walk has no containing block");
        multi_heap_free(h, u.users[i]); /* outside FZ_CATCH a report aborts */
    }
    FZ_REQUIRE(multi_heap_check(h, true), "check after freeing the blocks of a heap that passed it");
    multi_heap_get_info(h, &info);
    FZ_REQUIRE(info.allocated_blocks == 0 && info.free_blocks == 1, "%zu used, %zu free blocks after freeing all",
               info.allocated_blocks, info.free_blocks);
    FZ_REQUIRE(multi_heap_free_size(h) == f0, "free %zu after freeing all, fresh %zu", multi_heap_free_size(h), f0);
    size_t L = info.largest_free_block;
    void *q = multi_heap_malloc(h, L);
    FZ_REQUIRE(L == 0 || q != NULL, "malloc(largest %zu) failed on the emptied heap", L);
    multi_heap_free(h, q);
}

/* ---- the target ---------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t regions[8] = {256, 512, 1024, 2048, 4096, 8192, 32768, 65536};
    static const size_t aligns[4] = {4, 8, 16, 4};
    fz_in_t in = {data, size, 0};
    uint8_t cfg = in_u8(&in);
    size_t region = regions[cfg & 7u];
    size_t heap_align = aligns[(cfg >> 3) & 3u];

    map_region();
    g_trace = getenv("FUZZ_MISUSE_TRACE") != NULL;
    uint8_t *start = (cfg & 0x20u) ? g_low + g_span - region : g_low;
    TRACE("region %zu at %p, alignment %zu\n", region, (void *)start, heap_align);
    capheap_set_abort_handler(fz_on_abort);
    capheap_set_writer(fz_count_text);

    /* The same bytes under every run, whatever the previous input left there: a run
     * replays alone, and a bad pointer only ever meets stale bytes of this run's own
     * blocks (a previous heap's headers could forge a block: see the top). */
    raw_set(g_low, 0xA5, g_span);

    capheap_heap_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.alignment = heap_align;
    multi_heap_handle_t h = capheap_heap_register(start, region, &opts);
    if (h == NULL)
        return 0;
#if CAPHEAP_PORT_HOST
    static capheap_lock_t lock;
    static bool lock_ready;
    if (!lock_ready) {
        FZ_REQUIRE(capheap_lock_init(&lock) == 0, "lock init");
        lock_ready = true;
    }
    if (cfg & 0x40u)
        multi_heap_set_lock(h, &lock);
#endif
    const size_t f0 = multi_heap_free_size(h);
    fz_blk_t slots[FZ_SLOTS];
    memset(slots, 0, sizeof slots);
    uint8_t *freed[FZ_FREED] = {0};
    unsigned next_freed = 0;

    while (in.i < in.n) {
        uint8_t op = (uint8_t)(in_u8(&in) % 8u);
        fz_blk_t *s = &slots[in_u8(&in) % FZ_SLOTS];
        switch (op) {
        case 0:
        case 1:
        case 2: {
            size_t n = in_size(&in, region);
            uint8_t b = in_u8(&in);
            if (s->p != NULL)
                break;
            s->p = multi_heap_malloc(h, n);
            TRACE("slot %td = malloc(%zu) = %p\n", s - slots, n, (void *)s->p);
            if (s->p != NULL) {
                s->size = n;
                s->fill = b;
                fill(s);
            }
            break;
        }
        case 3:
            if (s->p != NULL) {
                verify(s, "before free");
                TRACE("free slot %td = %p\n", s - slots, (void *)s->p);
                multi_heap_free(h, s->p);
                freed[next_freed++ % FZ_FREED] = s->p;
                s->p = NULL;
            }
            break;
        case 4: {
            size_t n = in_size(&in, region);
            uint8_t b = in_u8(&in);
            if (s->p == NULL)
                break;
            verify(s, "before realloc");
            uint8_t *q = multi_heap_realloc(h, s->p, n);
            TRACE("slot %td = realloc(%p, %zu) = %p\n", s - slots, (void *)s->p, n, (void *)q);
            if (q != NULL) {
                if (q != s->p)
                    freed[next_freed++ % FZ_FREED] = s->p;
                s->p = q;
                s->size = n;
                s->fill = b;
                fill(s);
            }
            break;
        }
        case 5:
            bad_pointer_op(&in, h, slots, freed, start, region, heap_align);
            break;
        case 6: {
            multi_heap_info_t info;
            multi_heap_get_info(h, &info);
            size_t live = 0;
            for (unsigned i = 0; i < FZ_SLOTS; i++)
                live += slots[i].p != NULL;
            FZ_REQUIRE(info.allocated_blocks == live, "info: %zu used blocks, %zu live", info.allocated_blocks, live);
            for (unsigned i = 0; i < FZ_SLOTS; i++)
                if (slots[i].p != NULL)
                    verify(&slots[i], "check op");
            break;
        }
        default:
            TRACE("damage\n");
            damage(&in, slots, start, region);
            read_damaged(&in, h, start, region, f0);
            in.i = in.n; /* the heap may be broken: nothing more on it */
            goto done;
        }
        FZ_REQUIRE(multi_heap_check(h, true), "check failed after op %u", op);
    }
done:
#if CAPHEAP_PORT_HOST
    multi_heap_set_lock(h, NULL);
#endif
    capheap_set_writer(NULL);
    capheap_set_abort_handler(NULL);
    return 0;
}
