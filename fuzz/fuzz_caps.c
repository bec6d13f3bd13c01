/*
 * fuzz_caps.c - libFuzzer target for the heap_caps layer: a heap
 * configuration (a simulated built-in chip, or a custom chip over a static
 * buffer, plus runtime regions) and then an operation stream over the whole
 * heap_caps API.
 *
 * Input layout (every read past the end gives 0, so any input is valid):
 *
 *   byte 0, bit 7 clear: a built-in chip, capheap_chips[(byte 0 & 0x7F) % count],
 *            booted with capheap_sim_boot() (quiet), then
 *     byte   PSRAM: 0 none, n: n * 16 KiB (chips with external RAM; at most
 *            4 MiB and the chip's window)
 *     byte   bit 0 defer heap_caps_enable_nonos_stack_heaps(); bit 1 no internal
 *            DMA pool; bit 2 extmem_always_internal 0 (else 16 KiB)
 *   byte 0, bit 7 set: a custom chip whose regions lie in a static 256 KiB buffer:
 *     byte   bits 0-2 regions (2 + v % 5), bits 3-4 heap alignment (4, 8, 16, 4),
 *            bits 5-7 reservations (v % 5)
 *     byte   bits 0-1 internal cache line (0, 16, 32, 64), bits 2-3 external
 *            cache line, bit 4 SIMD alignment 16, bit 5 AXI descriptor alignment
 *            64 (else 0), bits 6-7 HEAP_SIZE_MAX (none, 16 KiB, 64 KiB, 1 MiB)
 *     byte   bits 0-1 types (1 + v % 3), bit 2 table order reversed, bit 3 runtime
 *            regions added before capheap_caps_init()
 *     types  3 x u16 each: caps at priorities 0..2, bits drawn from
 *            DEFAULT INTERNAL 8BIT 32BIT DMA SPIRAM EXEC RTCRAM RETENTION SIMD SPM
 *     regions  4 bytes each: gap (x 16 bytes), size u16 (x 4 bytes),
 *            flags: bits 0-1 type (0xF_ in the top nibble: an invalid index),
 *            bit 2 start-up stack, bit 3 start 2 bytes off 4-alignment
 *     reservations  4 bytes each: start u16 (x 4 in the buffer), length byte,
 *            flags: bits 0-1 start offset 0..3, bit 2 end offset +1, bit 3 start > end,
 *            bit 4 in the chip table (else the firmware's list), bits 5-7 length shift
 *   then     runtime regions: count byte (v % 3), each 11 bytes: start u16,
 *            length u16 (in a static 64 KiB buffer), flags (bits 0-2 alignment
 *            option 0/4/8/16/2/32, bits 3-4 start offset 0..3, bit 5
 *            heap_caps_add_region_with_caps instead of capheap_caps_add_region),
 *            caps 3 x u16 as above
 *   then     operations [op byte][slot byte][operands...], at most FZ_MAX_OPS,
 *            op % 25: 0-3 malloc, 4 calloc, 5 aligned_alloc, 6 aligned_calloc,
 *            7-8 realloc, 9-10 free, 11 malloc_prefer, 12 realloc_prefer,
 *            13 calloc_prefer, 14 malloc_default, 15 realloc_default,
 *            16 aligned_alloc_default, 17 extmem enable/disable, 18 largest-block
 *            probe, 19 info + stats + walk, 20 monitor start/stop, 21 sizes of a
 *            block and integrity by address, 22 add a region (a live block as a
 *            pool, heap_caps_add_region, or raw memory), 23 enable non-OS stack
 *            heaps, 24 integrity check by caps.
 *            Sizes: a byte whose top two bits pick 0..63, 0..4095, u16 x 1..64, or
 *            a special (0, SIZE_MAX, SIZE_MAX - 3, HEAP_SIZE_MAX +- 1, largest
 *            block +- 1, 2^k, ...). Caps: a byte whose top two bits pick a
 *            table entry, an OR of realistic bits, a table entry plus a virtual
 *            bit (DMA_DESC_*, CACHE_ALIGNED), or any 32-bit mask.
 *
 * Properties (a violation aborts, which libFuzzer reports as a crash):
 *   - set-up: capheap_caps_init returns exactly the documented code for the
 *     custom table (INVALID_ARG for a bad type index or start > end, FAIL for
 *     overlapping reservations, else OK); start-up heaps lie inside the regions
 *     and outside every reservation; runtime regions get the documented codes
 *     (INVALID_ARG, FAIL by the overlap rule, INVALID_SIZE when too small);
 *   - every block lies inside a heap (capheap_heap_find, or an IRAM alias
 *     window for EXEC blocks) whose combined caps contain the requested caps
 *     after route.c's adjustment (DMA_DESC_* -> DMA, SPIRAM drops DMA,
 *     CACHE_ALIGNED dropped, EXEC adds 32BIT); it is aligned to the request,
 *     the chip's hardware rule (cache line, AXI, SIMD) and the heap's alignment;
 *     usable size >= the request; blocks never overlap; a block outside a pool
 *     heap never overlaps the pool;
 *   - stamps survive until free; realloc keeps min(old, new) bytes; a failed
 *     realloc keeps the block; calloc zeroes;
 *   - capheap_would_fit(size, caps, align), called just before, is true exactly
 *     when heap_caps_malloc / aligned_alloc / calloc succeeds, and names the heap
 *     that serves it; the routed entry points (prefer, _default with the extmem
 *     policy) succeed exactly when one of their caps masks fits and serve from the
 *     first that fits; realloc succeeds whenever would_fit says a new block fits;
 *   - the failure callbacks fire once per failed request (not for size 0, bad
 *     alignments), with the request's size, caps and function name, and the
 *     extended callback's reason equals the dry run's;
 *   - heap_caps_get_largest_free_block(caps) (and the aligned variant) is exact:
 *     one more byte fails, then that size succeeds (in this order: allocating
 *     and freeing the probe may reorder a class list, so the figure must be
 *     read again after it);
 *   - info/walk/stats agree with each other and count the live blocks exactly;
 *     the monitor's start/stop codes; allocated size == containing block size;
 *   - heap_caps_check_integrity_all() every FZ_CHECK_EVERY operations and at the
 *     end; after freeing everything the free size is back to the start (when no
 *     pool was carved out of a block); shutdown/reset leaves no heap.
 * A corruption report from capheap aborts through the port: also a crash.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "fuzz_stamp.h"
#include "capheap/caps.h"
#include "capheap/chip.h"
#include "capheap/config.h"
#include "capheap/heap.h"
#include "capheap/port.h"
#include "capheap/report.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"

#define FZ_MAX_OPS 500u
#define FZ_SLOTS 32u
#define FZ_MAX_POOLS 4u
#define FZ_CHECK_EVERY 16u
#define FZ_STAMP_EDGE 64u /* bytes stamped at each end of a block: big blocks stay cheap */
#define FZ_CHIP_BYTES (256u * 1024u)
#define FZ_RUNTIME_BYTES (64u * 1024u)
#define FZ_MAX_REGIONS 6u
#define FZ_MAX_RESERVED 4u
#define FZ_MAX_PSRAM (4u * 1024u * 1024u)
#define FZ_MAX_RAW_ADDS 3u

#define FZ_REQUIRE(cond, ...)                                       \
    do {                                                            \
        if (!(cond)) {                                              \
            fprintf(stderr, "fuzz_caps: property violated: ");      \
            fprintf(stderr, __VA_ARGS__);                           \
            fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);      \
            abort();                                                \
        }                                                           \
    } while (0)

/* FUZZ_CAPS_TRACE=1 in the environment prints the set-up and every operation (for reading a crash). */
static int g_trace = -1;

#define FZ_TRACE(...)                                               \
    do {                                                            \
        if (g_trace > 0)                                            \
            fprintf(stderr, __VA_ARGS__);                           \
    } while (0)

/*
 * capheap_would_fit() and the largest-block figures must agree with the
 * allocator both ways ("true iff the request would succeed"). Building with
 * -DFZ_TOLERATE_KNOWN=1 relaxes this where capheap disagreed when this
 * target was written, to fuzz past such bugs while they are being fixed.
 * All five are fixed (K4 for 8- and 16-aligned heaps on inverted windows
 * only on 2026-11-26: corpus file esp32-exec-inverted-align8-runtime); CI
 * fuzzes with the flag off:
 *   K1  heaps aligned to more than 4: largest/would_fit under-report by up to
 *       the alignment (only "fits => succeeds" is checked, not "largest + 1 fails");
 *   K2  EXEC requests aligned to more than 4 through an IRAM alias: would_fit
 *       says yes, the allocation fails (the agreement is not checked);
 *   K3  EXEC blocks through an inverted alias (ESP32) are 4 bytes off the
 *       requested alignment (only 4-byte alignment is checked for alias blocks);
 *   K4  heap_caps_get_containing_block_size() of an IRAM alias block counts the
 *       hidden word: 4 more than heap_caps_get_allocated_size() (not compared);
 *   K5  the engine: capheap_heap_largest_request(h, a) with a above the heap's
 *       alignment answers 4 or 8 where nothing fits at a (aligned largest <= 8
 *       is not probed).
 */
#ifndef FZ_TOLERATE_KNOWN
#define FZ_TOLERATE_KNOWN 0
#endif

/* Built with -DFZ_CAPS_MISUSE=1 this file is fuzz_caps_misuse: one more
 * operation, 25, hands a bad pointer to heap_caps_free, aligned_free,
 * realloc or get_allocated_size (op_bad_pointer). Without it the operations
 * and the meaning of every corpus file stay as they are. */
#ifndef FZ_CAPS_MISUSE
#define FZ_CAPS_MISUSE 0
#endif

static bool g_known_k2; /* the current operation made a K2 request */

static bool fit_agrees(bool succeeded, bool would_fit)
{
    if (FZ_TOLERATE_KNOWN)
        return g_known_k2 || !would_fit || succeeded;
    return succeeded == would_fit;
}

/* ---- memory behind the custom chip and the runtime regions -------------------- */

static _Alignas(16) uint8_t g_chip_mem[FZ_CHIP_BYTES];
static _Alignas(16) uint8_t g_runtime_mem[FZ_RUNTIME_BYTES];
static int g_not_heap; /* an address that is in no heap */

/* ---- caps vocabulary ------------------------------------------------------------ */

/* The bits a memory type may have (the brief's realistic set, plus SPM). */
static const uint32_t k_type_bits[11] = {
    MALLOC_CAP_DEFAULT, MALLOC_CAP_INTERNAL, MALLOC_CAP_8BIT,      MALLOC_CAP_32BIT,
    MALLOC_CAP_DMA,     MALLOC_CAP_SPIRAM,   MALLOC_CAP_EXEC,      MALLOC_CAP_RTCRAM,
    MALLOC_CAP_RETENTION, MALLOC_CAP_SIMD,   MALLOC_CAP_SPM,
};

#define FZ_HW_VIRTUAL (MALLOC_CAP_DMA_DESC_AHB | MALLOC_CAP_DMA_DESC_AXI | MALLOC_CAP_CACHE_ALIGNED)

/* Requests programs make. */
static const uint32_t k_request_caps[32] = {
    MALLOC_CAP_DEFAULT,
    MALLOC_CAP_8BIT,
    MALLOC_CAP_32BIT,
    MALLOC_CAP_INTERNAL,
    MALLOC_CAP_DMA,
    MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL,
    MALLOC_CAP_SPIRAM,
    MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT,
    MALLOC_CAP_DEFAULT | MALLOC_CAP_INTERNAL,
    MALLOC_CAP_DEFAULT | MALLOC_CAP_SPIRAM,
    MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT,
    MALLOC_CAP_EXEC,
    MALLOC_CAP_EXEC | MALLOC_CAP_INTERNAL,
    MALLOC_CAP_EXEC | MALLOC_CAP_8BIT, /* conflicting */
    MALLOC_CAP_RTCRAM,
    MALLOC_CAP_RETENTION,
    MALLOC_CAP_SIMD,
    MALLOC_CAP_SIMD | MALLOC_CAP_SPIRAM,
    MALLOC_CAP_DMA_DESC_AHB,
    MALLOC_CAP_DMA_DESC_AXI,
    MALLOC_CAP_CACHE_ALIGNED | MALLOC_CAP_DMA,
    MALLOC_CAP_CACHE_ALIGNED | MALLOC_CAP_SPIRAM,
    MALLOC_CAP_SPIRAM | MALLOC_CAP_DMA,
    MALLOC_CAP_SPM,
    MALLOC_CAP_DMA | MALLOC_CAP_8BIT | MALLOC_CAP_INTERNAL,
    MALLOC_CAP_IRAM_8BIT,
    MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL,
    0,
    MALLOC_CAP_INVALID,
    MALLOC_CAP_INVALID | MALLOC_CAP_DEFAULT,
    MALLOC_CAP_SPIRAM_NO_ENC,
    MALLOC_CAP_PID2,
};

static uint32_t bits_from(uint16_t m)
{
    uint32_t caps = 0;
    for (unsigned b = 0; b < 11; b++)
        if (m & (1u << b))
            caps |= k_type_bits[b];
    return caps;
}

static uint32_t in_caps(fz_in_t *in)
{
    uint8_t b = in_u8(in);
    switch (b >> 6) {
    case 0:
        return k_request_caps[b & 31u];
    case 1:
        return bits_from(in_u16(in));
    case 2: {
        static const uint32_t virt[4] = {MALLOC_CAP_DMA_DESC_AHB, MALLOC_CAP_DMA_DESC_AXI,
                                         MALLOC_CAP_CACHE_ALIGNED, MALLOC_CAP_SIMD};
        return k_request_caps[b & 31u] | virt[(b >> 5) & 1u ? 2u + (in_u8(in) & 1u) : in_u8(in) & 1u];
    }
    default:
        return in_u32(in);
    }
}

/* ---- the state of one input ------------------------------------------------------ */

typedef struct {
    uint8_t *p;
    size_t size;
    uint32_t token;
    bool alias; /* an EXEC block handed out through an IRAM alias */
} fz_blk_t;

typedef struct {
    uint8_t *start, *end;
} fz_pool_t;

static struct {
    fz_blk_t slot[FZ_SLOTS];
    size_t live;
    fz_pool_t pool[FZ_MAX_POOLS];
    size_t n_pools;
    size_t base_blocks;  /* used blocks that are not in slot[]: the sim's DMA pool, pool hosts */
    size_t base_free;    /* heap_caps_get_free_size(0) with no live block */
    bool free_exact;     /* base_free is still exact (no block became a pool) */
    bool extmem;
    size_t extmem_limit;
    bool monitor;
    unsigned raw_adds;
    bool sim;
    uint8_t *freed[8];   /* the last pointers freed (FZ_CAPS_MISUSE: double frees) */
    unsigned n_freed;
} st;

/* The failure callbacks: what the last request reported. */
static struct {
    unsigned count, ext_count;
    size_t size;
    uint32_t caps;
    const char *fn;
    capheap_fit_reason_t reason;
} cb;

static void on_failed(size_t size, uint32_t caps, const char *fn)
{
    cb.count++;
    cb.size = size;
    cb.caps = caps;
    cb.fn = fn;
}

static void on_failed_ext(size_t size, uint32_t caps, const char *fn, const capheap_fit_t *why, void *user)
{
    (void)size;
    (void)caps;
    (void)fn;
    FZ_REQUIRE(user == &cb, "extended callback: user pointer %p", user);
    FZ_REQUIRE(why != NULL, "extended callback without an answer");
    /* A prefer call with num 0 fails and reports MALLOC_CAP_DEFAULT, as ESP-IDF does, with
     * CAPHEAP_FIT_NO_CAPS_GIVEN (no_caps_reason() checks it). */
    cb.ext_count++;
    cb.reason = why->reason;
}

static void cb_clear(void)
{
    memset(&cb, 0, sizeof cb);
}

/* After a request: the callbacks fired (once, as the function named) iff expected. */
static void cb_expect(bool fired, size_t size, uint32_t caps, const char *fn)
{
    if (!fired) {
        FZ_REQUIRE(cb.count == 0 && cb.ext_count == 0, "%s: failure callback on success or a no-callback case", fn);
        return;
    }
    FZ_REQUIRE(cb.count == 1 && cb.ext_count == 1, "%s: failure callback fired %u/%u times", fn, cb.count,
               cb.ext_count);
    FZ_REQUIRE(cb.size == size && cb.caps == caps, "%s: callback got (%zu, 0x%x), request (%zu, 0x%x)", fn, cb.size,
               (unsigned)cb.caps, size, (unsigned)caps);
    FZ_REQUIRE(cb.fn != NULL && strcmp(cb.fn, fn) == 0, "callback names %s, expected %s", cb.fn ? cb.fn : "NULL", fn);
}

/* ---- stamps ------------------------------------------------------------------------- */

/* The stamped indices: [0, head) and [tail, size). */
static void stamp_range(size_t size, size_t *head, size_t *tail)
{
    *head = size < FZ_STAMP_EDGE ? size : FZ_STAMP_EDGE;
    *tail = size - *head < *head ? *head : size - FZ_STAMP_EDGE;
    if (*tail < *head)
        *tail = *head;
}

static void stamp(const fz_blk_t *b)
{
    size_t head, tail;
    stamp_range(b->size, &head, &tail);
    for (size_t i = 0; i < head; i++)
        b->p[i] = fz_byte(b->token, i);
    for (size_t i = tail; i < b->size; i++)
        b->p[i] = fz_byte(b->token, i);
}

/* The stamps of b, read at address at, for indices below limit. */
static void verify_at(const fz_blk_t *b, const uint8_t *at, size_t limit, const char *when)
{
    size_t head, tail;
    stamp_range(b->size, &head, &tail);
    for (size_t i = 0; i < head && i < limit; i++)
        FZ_REQUIRE(at[i] == fz_byte(b->token, i), "%s: block %p byte %zu lost its stamp", when, (void *)b->p, i);
    for (size_t i = tail; i < b->size && i < limit; i++)
        FZ_REQUIRE(at[i] == fz_byte(b->token, i), "%s: block %p byte %zu lost its stamp", when, (void *)b->p, i);
}

static void verify(const fz_blk_t *b, const char *when)
{
    verify_at(b, b->p, b->size, when);
}

static void require_zero(const uint8_t *p, size_t n, const char *fn)
{
    size_t head, tail;
    stamp_range(n, &head, &tail);
    for (size_t i = 0; i < head; i++)
        FZ_REQUIRE(p[i] == 0, "%s: byte %zu of %p not zero", fn, i, (const void *)p);
    for (size_t i = tail; i < n; i++)
        FZ_REQUIRE(p[i] == 0, "%s: byte %zu of %p not zero", fn, i, (const void *)p);
}

/* ---- the request rules of route.c (ch_prepare), written out independently ----------- */

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Caps a serving heap must have for a request with caps. */
static uint32_t adjusted_caps(uint32_t caps)
{
    const capheap_chip_t *chip = capheap_caps_chip();
    uint32_t hw = MALLOC_CAP_DMA | MALLOC_CAP_SIMD | FZ_HW_VIRTUAL;
    if (chip != NULL && (caps & hw)) {
        if (caps & (MALLOC_CAP_DMA_DESC_AHB | MALLOC_CAP_DMA_DESC_AXI))
            caps = (caps & ~(uint32_t)(MALLOC_CAP_DMA_DESC_AHB | MALLOC_CAP_DMA_DESC_AXI)) | MALLOC_CAP_DMA;
        if (caps & MALLOC_CAP_SPIRAM)
            caps &= ~(uint32_t)MALLOC_CAP_DMA;
        caps &= ~(uint32_t)MALLOC_CAP_CACHE_ALIGNED;
    } else {
        /* Without a chip the caps change all the same (route.c's prepare): only the
         * alignment needs the chip. */
        if (caps & (MALLOC_CAP_DMA_DESC_AHB | MALLOC_CAP_DMA_DESC_AXI))
            caps |= MALLOC_CAP_DMA;
        caps &= ~(uint32_t)FZ_HW_VIRTUAL;
        if (caps & MALLOC_CAP_SPIRAM)
            caps &= ~(uint32_t)MALLOC_CAP_DMA;
    }
    if (caps & MALLOC_CAP_EXEC)
        caps |= MALLOC_CAP_32BIT;
    return caps;
}

/* Alignment the chip's hardware rule adds for caps (chips.md 0.3), 0 if none. */
static size_t hw_alignment(uint32_t caps)
{
    const capheap_chip_t *chip = capheap_caps_chip();
    size_t a = 0;
    if (chip == NULL)
        return 0;
    if (caps & (MALLOC_CAP_DMA | FZ_HW_VIRTUAL))
        a = (caps & MALLOC_CAP_SPIRAM) ? chip->cache_line_external : chip->cache_line_internal;
    if (caps & MALLOC_CAP_DMA_DESC_AXI)
        a = max_sz(a, chip->dma_desc_axi_alignment);
    if (caps & MALLOC_CAP_SIMD)
        a = max_sz(a, chip->simd_alignment);
    return a;
}

/* Is p inside the IRAM side of an alias window, where free() translates it? */
static bool in_alias_window(const void *p)
{
    const capheap_chip_t *chip = capheap_caps_chip();
    uintptr_t v = (uintptr_t)p;
    if (chip == NULL)
        return false;
    const capheap_alias_t *w[2] = {&chip->diram, &chip->rtc};
    for (int k = 0; k < 2; k++)
        if (w[k]->kind != CAPHEAP_ALIAS_NONE && v >= (uintptr_t)w[k]->iram_low + 4u && v < (uintptr_t)w[k]->iram_high)
            return true;
    return false;
}

/* ---- the shadow table ---------------------------------------------------------------- */

/* Do [a0, a1) and [b0, b1) share a byte? (An empty range shares none.) */
static bool overlaps(uintptr_t a0, uintptr_t a1, uintptr_t b0, uintptr_t b1)
{
    return a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1;
}

/* Is a request with this effective alignment clear of K1 (see FZ_TOLERATE_KNOWN)? */
static bool k1_free(size_t align)
{
    if (!FZ_TOLERATE_KNOWN)
        return true;
    if (align > 4)
        return false;
    size_t n = capheap_heap_count();
    for (size_t i = 0; i < n; i++) {
        capheap_heap_desc_t d;
        if (capheap_heap_get(i, &d) && d.heap != NULL && capheap_heap_alignment(d.heap) > 4)
            return false;
    }
    return true;
}

/*
 * A block heap_caps returned for caps (as the caller passed them), at least
 * size bytes, asked alignment align (0: none), from an entry point that could
 * have served it from heap fit_heap (-1: unknown). Checks placement, caps,
 * alignment, usable size and disjointness; records and stamps it in *s.
 */
static void take(fz_blk_t *s, void *ptr, size_t size, uint32_t caps, size_t align, int fit_heap, const char *fn)
{
    uint8_t *p = ptr;
    uint32_t need = adjusted_caps(caps);
    size_t want = max_sz(align, hw_alignment(caps));
    bool alias = (need & MALLOC_CAP_EXEC) && in_alias_window(p);
    int idx = alias ? -1 : capheap_heap_find(p);
    capheap_heap_desc_t d;
    memset(&d, 0, sizeof d);
    if (alias) {
        FZ_REQUIRE(heap_caps_check_integrity_addr((intptr_t)p, false), "%s: alias block %p in no heap", fn, ptr);
        want = FZ_TOLERATE_KNOWN ? 4 : max_sz(want, 4);
    } else {
        FZ_REQUIRE(idx >= 0, "%s(%zu, 0x%x): block %p in no heap", fn, size, (unsigned)caps, ptr);
        FZ_REQUIRE(capheap_heap_get((size_t)idx, &d) && d.heap != NULL, "%s: heap %d of %p not registered", fn, idx,
                   ptr);
        uint32_t all = d.caps[0] | d.caps[1] | d.caps[2];
        FZ_REQUIRE((all & need) == need, "%s(%zu, 0x%x): block %p in heap %d with caps 0x%x, needs 0x%x", fn, size,
                   (unsigned)caps, ptr, idx, (unsigned)all, (unsigned)need);
        want = max_sz(want, capheap_heap_alignment(d.heap));
        FZ_REQUIRE((uintptr_t)p >= (uintptr_t)d.start && (uintptr_t)p + size <= (uintptr_t)d.end,
                   "%s: block %p+%zu outside its heap [%#lx, %#lx)", fn, ptr, size, (unsigned long)d.start,
                   (unsigned long)d.end);
        if (fit_heap >= 0 && k1_free(want))
            FZ_REQUIRE(idx == fit_heap, "%s(%zu, 0x%x): served by heap %d, would_fit named %d", fn, size,
                       (unsigned)caps, idx, fit_heap);
    }
    FZ_REQUIRE(want == 0 || (uintptr_t)p % want == 0, "%s(%zu, 0x%x, align %zu): block %p not %zu-aligned", fn, size,
               (unsigned)caps, align, ptr, want);
    size_t usable = heap_caps_get_allocated_size(p);
    FZ_REQUIRE(usable >= size, "%s: usable size %zu of %p below %zu", fn, usable, ptr, size);
    for (unsigned i = 0; i < FZ_SLOTS; i++) {
        const fz_blk_t *o = &st.slot[i];
        if (o != s && o->p != NULL)
            FZ_REQUIRE(!overlaps((uintptr_t)p, (uintptr_t)p + size, (uintptr_t)o->p, (uintptr_t)o->p + o->size),
                       "%s: block %p+%zu overlaps live block %p+%zu", fn, ptr, size, (void *)o->p, o->size);
    }
    for (size_t i = 0; i < st.n_pools; i++) {
        const fz_pool_t *q = &st.pool[i];
        if (overlaps((uintptr_t)p, (uintptr_t)p + size, (uintptr_t)q->start, (uintptr_t)q->end))
            FZ_REQUIRE(!alias && p >= q->start && p + size <= q->end && (uintptr_t)d.start >= (uintptr_t)q->start &&
                           (uintptr_t)d.end <= (uintptr_t)q->end,
                       "%s: block %p+%zu straddles pool [%p, %p) or comes from another heap", fn, ptr, size,
                       (void *)q->start, (void *)q->end);
    }
    FZ_TRACE("  %s -> %p size %zu caps 0x%x heap %d%s\n", fn, ptr, size, (unsigned)caps, idx, alias ? " (alias)" : "");
    s->p = p;
    s->size = size;
    s->token = fz_token(p);
    s->alias = alias;
    stamp(s);
}

/* Put a fresh block in slot s, freeing what was there. */
static void remember_freed(uint8_t *p)
{
    st.freed[st.n_freed++ % 8u] = p;
}

static void release(fz_blk_t *s)
{
    if (s->p == NULL)
        return;
    verify(s, "before free");
    heap_caps_free(s->p);
    remember_freed(s->p);
    s->p = NULL;
    st.live--;
}

static void adopt(fz_blk_t *s, void *p, size_t size, uint32_t caps, size_t align, int fit_heap, const char *fn)
{
    take(s, p, size, caps, align, fit_heap, fn);
    st.live++;
}

/* ---- sizes and alignments ----------------------------------------------------------- */

static size_t size_max(void)
{
    const capheap_chip_t *chip = capheap_caps_chip();
    return chip != NULL && chip->heap_size_max != 0 ? chip->heap_size_max : SIZE_MAX / 2;
}

static size_t in_size(fz_in_t *in, uint32_t caps)
{
    uint8_t b = in_u8(in);
    switch (b >> 6) {
    case 0:
        return b & 63u;
    case 1:
        return in_u16(in) % 4096u;
    case 2:
        return (size_t)in_u16(in) * (1u + (b & 63u));
    default:
        switch (b & 15u) {
        case 0: return 0;
        case 1: return SIZE_MAX;
        case 2: return SIZE_MAX - 3;
        case 3: return SIZE_MAX / 2 + 1;
        case 4: return (size_t)UINT32_MAX;
        case 5: return size_max();
        case 6: return size_max() + 1;
        case 7: return size_max() - 3;
        case 8: return heap_caps_get_largest_free_block(caps);
        case 9: return heap_caps_get_largest_free_block(caps) + 1;
        case 10: { size_t l = heap_caps_get_largest_free_block(caps); return l > 4 ? l - 4 : 1; }
        default: return (size_t)1 << ((b & 15u) + ((b >> 4) & 3u) * 4u); /* 2^11 .. 2^26 */
        }
    }
}

/* A power of two up to 2^31, sometimes junk (0, 3, 24, ...). */
static size_t in_align(fz_in_t *in)
{
    uint8_t a = in_u8(in);
    if (a & 0x80u)
        return (a & 0x40u) ? (size_t)(a & 0x3Fu) : (size_t)1 << (a & 31u);
    return (size_t)1 << (a % 13u); /* 1 .. 4096 */
}

static bool valid_align(size_t a)
{
    return a != 0 && (a & (a - 1u)) == 0;
}

/* A request K2 (see FZ_TOLERATE_KNOWN) applies to. */
static bool k2_request(uint32_t caps, size_t align)
{
    const capheap_chip_t *chip = capheap_caps_chip();
    return FZ_TOLERATE_KNOWN && (adjusted_caps(caps) & MALLOC_CAP_EXEC) && max_sz(align, hw_alignment(caps)) > 4 &&
           chip != NULL && (chip->diram.kind != CAPHEAP_ALIAS_NONE || chip->rtc.kind != CAPHEAP_ALIAS_NONE);
}

static bool fits(size_t size, uint32_t caps, size_t align, capheap_fit_t *why)
{
    capheap_fit_t local;
    capheap_fit_t *w = why != NULL ? why : &local;
    if (k2_request(caps, align))
        g_known_k2 = true;
    bool ok = capheap_would_fit(size, caps, align, w);
    FZ_REQUIRE(ok == (w->reason == CAPHEAP_FIT_OK), "would_fit returned %d with reason %d", ok, (int)w->reason);
    FZ_REQUIRE(!ok || w->heap_index >= 0, "would_fit: fits but names no heap");
    FZ_REQUIRE(ok || w->heap_index < 0, "would_fit: does not fit but names heap %d", w->heap_index);
    FZ_REQUIRE(size != 0 || w->reason == CAPHEAP_FIT_ZERO_SIZE, "would_fit(0): reason %d", (int)w->reason);
    return ok;
}

/* ---- set-up --------------------------------------------------------------------------- */

/* Expected result of capheap_caps_add_region / heap_caps_add_region_with_caps for
 * [s, e) with alignment option align; *skip when the call would be legal but hand
 * over memory this input does not own (a range nested inside a heap). */
static esp_err_t expect_add(uintptr_t s, uintptr_t e, size_t align, bool *skip, bool *either)
{
    *skip = false;
    *either = false;
    if (e <= s)
        return ESP_ERR_INVALID_ARG;
    if (align == 0) {
        const capheap_chip_t *chip = capheap_caps_chip();
        align = chip != NULL && chip->heap_alignment != 0 ? chip->heap_alignment : 4u;
    }
    if (align != 4 && align != 8 && align != 16)
        return ESP_ERR_INVALID_ARG;
    bool nested = false;
    size_t n = capheap_heap_count();
    for (size_t i = 0; i < n; i++) {
        capheap_heap_desc_t d;
        FZ_REQUIRE(capheap_heap_get(i, &d), "heap_get(%zu) of %zu", i, n);
        if (!heap_caps_check_add_region_allowed(d.start, d.end, (intptr_t)s, (intptr_t)e))
            return ESP_FAIL;
        if (s >= (uintptr_t)d.start && e <= (uintptr_t)d.end)
            nested = true;
    }
    *skip = nested;
    uintptr_t s4 = (s + 3u) & ~(uintptr_t)3u;
    size_t min = capheap_heap_min_region_size(align);
    if (s4 >= e || e - s4 < min - (align - 4u))
        return ESP_ERR_INVALID_SIZE;
    if (e - s4 < min)
        *either = true; /* the worst-case padding decides */
    return ESP_OK;
}

/* Add a runtime region; checks the code against the header's rules. Returns ESP_OK if added,
 * ESP_ERR_NOT_SUPPORTED if not tried (nested in a heap and not owned: a block of ours). */
static esp_err_t add_region(const uint32_t caps[3], uintptr_t s, uintptr_t e, size_t align, int how, bool owned)
{
    bool skip, either;
    if (how != 0)
        align = 0; /* heap_caps_add_region_with_caps has no options: the chip's alignment */
    esp_err_t want = expect_add(s, e, align, &skip, &either);
    if (skip && !owned && want != ESP_ERR_INVALID_ARG)
        return ESP_ERR_NOT_SUPPORTED;
    size_t before = capheap_heap_count();
    esp_err_t got;
    if (how == 0) {
        capheap_region_options_t o = {align, NULL};
        got = capheap_caps_add_region(caps, (intptr_t)s, (intptr_t)e, &o);
    } else {
        got = heap_caps_add_region_with_caps(caps, (intptr_t)s, (intptr_t)e);
    }
    if (either && want == ESP_OK) {
        FZ_REQUIRE(got == ESP_OK || got == ESP_ERR_INVALID_SIZE, "add_region(%#lx, %#lx, align %zu): %d",
                   (unsigned long)s, (unsigned long)e, align, (int)got);
    } else if ((s & 3u) != 0 && got != want) {
        /* The header says ESP_ERR_INVALID_ARG for a start that is not 4-aligned;
         * the code rounds the start up instead (see the report): accept both. */
        FZ_REQUIRE(got == ESP_ERR_INVALID_ARG, "add_region(%#lx, %#lx, align %zu): %d, expected %d",
                   (unsigned long)s, (unsigned long)e, align, (int)got, (int)want);
    } else {
        FZ_REQUIRE(got == want, "add_region(%#lx, %#lx, align %zu, %s): %d, expected %d", (unsigned long)s,
                   (unsigned long)e, align, how ? "with_caps" : "capheap", (int)got, (int)want);
    }
    FZ_TRACE("  add_region [%#lx, %#lx) align %zu %s: %d (expected %d)\n", (unsigned long)s, (unsigned long)e, align,
             how ? "with_caps" : "capheap", (int)got, (int)want);
    FZ_REQUIRE(capheap_heap_count() == before + (got == ESP_OK), "add_region: heap count %zu -> %zu",
               before, capheap_heap_count());
    if (got == ESP_OK) {
        capheap_heap_desc_t d;
        FZ_REQUIRE(capheap_heap_get(0, &d) && d.runtime && (uintptr_t)d.start == s && (uintptr_t)d.end == e &&
                       d.heap != NULL,
                   "add_region: the new heap is not first in the list");
        FZ_REQUIRE(memcmp(d.caps, caps, sizeof d.caps) == 0, "add_region: caps not kept");
    }
    return got;
}

static void in_type_caps(fz_in_t *in, uint32_t caps[3])
{
    for (int p = 0; p < 3; p++)
        caps[p] = bits_from(in_u16(in));
}

/* A runtime region in g_runtime_mem, decoded before it is added (it may be added before init). */
typedef struct {
    uint32_t caps[3];
    uintptr_t s, e;
    size_t align;
    int how;
} fz_raw_t;

static void in_raw(fz_in_t *in, fz_raw_t *r)
{
    static const size_t aligns[8] = {0, 4, 8, 16, 2, 32, 0, 4};
    uint16_t so = in_u16(in), len = in_u16(in);
    uint8_t f = in_u8(in);
    in_type_caps(in, r->caps);
    uintptr_t base = (uintptr_t)g_runtime_mem;
    r->s = base + ((uintptr_t)so % FZ_RUNTIME_BYTES & ~(uintptr_t)3u) + ((f >> 3) & 3u);
    r->e = r->s + len;
    if (r->e > base + FZ_RUNTIME_BYTES)
        r->e = base + FZ_RUNTIME_BYTES;
    if (len == 0xFFFFu)
        r->e = r->s - 4u; /* end before start */
    r->align = aligns[f & 7u];
    r->how = (f >> 5) & 1u;
}

static void raw_region(fz_in_t *in)
{
    fz_raw_t r;
    in_raw(in, &r);
    (void)add_region(r.caps, r.s, r.e, r.align, r.how, false);
}

/* The custom chip (static: the registry references it while the heaps exist). */
static soc_memory_type_desc_t c_types[3];
static soc_memory_region_t c_regions[FZ_MAX_REGIONS];
static soc_reserved_region_t c_fixed[FZ_MAX_RESERVED], c_extra[FZ_MAX_RESERVED];
static capheap_chip_t c_chip;

static bool res_round(const soc_reserved_region_t *r, uintptr_t *s, uintptr_t *e)
{
    *s = (uintptr_t)r->start & ~(uintptr_t)3u;
    *e = ((uintptr_t)r->end + 3u) & ~(uintptr_t)3u;
    return (uintptr_t)r->start <= (uintptr_t)r->end;
}

/* What the custom table should make capheap_caps_init() return. */
typedef struct {
    bool bad_type, invalid, overlap, runtime_first;
    size_t n_res, n_extra;
    soc_reserved_region_t all[FZ_MAX_RESERVED];
} fz_custom_t;

/* Decode the custom chip into the static tables. */
static void in_custom(fz_in_t *in, fz_custom_t *c)
{
    static const uint8_t lines[4] = {0, 16, 32, 64};
    static const size_t aligns[4] = {4, 8, 16, 4};
    static const size_t maxes[4] = {0, 16u * 1024u, 64u * 1024u, 1024u * 1024u};
    uint8_t a = in_u8(in), b = in_u8(in), m = in_u8(in);
    size_t n_regions = 2u + (a & 7u) % 5u, n_types = 1u + (m & 3u) % 3u;
    memset(c, 0, sizeof *c);
    c->n_res = ((a >> 5) & 7u) % 5u;
    c->runtime_first = (m & 8u) != 0;
    memset(&c_chip, 0, sizeof c_chip);
    c_chip.name = "fuzz";
    c_chip.title = "fuzz_caps custom chip";
    c_chip.heap_alignment = (uint8_t)aligns[(a >> 3) & 3u];
    c_chip.cache_line_internal = lines[b & 3u];
    c_chip.cache_line_external = lines[(b >> 2) & 3u];
    c_chip.simd_alignment = (b & 0x10u) ? 16 : 0;
    c_chip.dma_desc_axi_alignment = (b & 0x20u) ? 64 : 0;
    c_chip.heap_size_max = maxes[b >> 6];
    for (size_t t = 0; t < n_types; t++) {
        c_types[t].name = t == 0 ? "T0" : t == 1 ? "T1" : "T2";
        in_type_caps(in, c_types[t].caps);
    }
    uintptr_t base = (uintptr_t)g_chip_mem, top = base + FZ_CHIP_BYTES, at = base;
    size_t nr = 0;
    for (size_t i = 0; i < n_regions; i++) {
        uint8_t gap = in_u8(in);
        uint16_t sz = in_u16(in);
        uint8_t f = in_u8(in);
        uintptr_t s = at + (uintptr_t)gap * 16u + ((f & 8u) ? 2u : 0u);
        size_t size = (size_t)sz * 4u;
        if (s >= top)
            break;
        if (size > top - s)
            size = (size_t)(top - s);
        soc_memory_region_t *r = &c_regions[nr++];
        r->start = (intptr_t)s;
        r->size = size;
        r->type = (f & 0xF0u) == 0xF0u ? n_types : (f & 3u) % n_types;
        r->iram_address = 0;
        r->startup_stack = (f & 4u) != 0;
        c->bad_type = c->bad_type || r->type >= n_types;
        at = s + size;
    }
    if (m & 4u) /* ESP-IDF's tables are not always in address order */
        for (size_t i = 0; i < nr / 2; i++) {
            soc_memory_region_t t = c_regions[i];
            c_regions[i] = c_regions[nr - 1 - i];
            c_regions[nr - 1 - i] = t;
        }
    size_t n_fixed = 0;
    for (size_t i = 0; i < c->n_res; i++) {
        uint16_t so = in_u16(in);
        uint8_t len = in_u8(in), f = in_u8(in);
        uintptr_t s = base + ((uintptr_t)so * 4u) % FZ_CHIP_BYTES + (f & 3u);
        uintptr_t e = s + ((uintptr_t)len << ((f >> 5) & 7u)) + ((f & 4u) ? 1u : 0u);
        if (f & 8u) {
            uintptr_t t = s;
            s = e + 1u;
            e = t;
        }
        soc_reserved_region_t r = {(intptr_t)s, (intptr_t)e};
        c->all[i] = r;
        if (f & 0x10u)
            c_fixed[n_fixed++] = r;
        else
            c_extra[c->n_extra++] = r;
    }
    c_chip.types = c_types;
    c_chip.type_count = n_types;
    c_chip.regions = c_regions;
    c_chip.region_count = nr;
    c_chip.reserved = n_fixed ? c_fixed : NULL;
    c_chip.reserved_count = n_fixed;

    /* Reservations are rounded outwards to 4 bytes; empty ones overlap nothing. */
    for (size_t i = 0; i < c->n_res; i++) {
        uintptr_t s, e;
        if (!res_round(&c->all[i], &s, &e)) {
            c->invalid = true;
            continue;
        }
        for (size_t j = i + 1; j < c->n_res; j++) {
            uintptr_t s2, e2;
            if (res_round(&c->all[j], &s2, &e2) && s < e && s2 < e2 && overlaps(s, e, s2, e2))
                c->overlap = true;
        }
    }
}

/* capheap_caps_init() of the custom chip: the documented code, and heaps that respect the table. */
static bool init_custom(const fz_custom_t *c)
{
    size_t before = capheap_heap_count();
    esp_err_t err = capheap_caps_init(&c_chip, c->n_extra ? c_extra : NULL, c->n_extra);
    FZ_TRACE("custom chip: %zu types, %zu regions, %zu reservations, alignment %u: caps_init %d\n",
             c_chip.type_count, c_chip.region_count, c->n_res, (unsigned)c_chip.heap_alignment, (int)err);
    if (c->bad_type)
        FZ_REQUIRE(err == ESP_ERR_INVALID_ARG, "caps_init with a bad type index: %d", (int)err);
    else if (c->invalid || c->overlap)
        FZ_REQUIRE((c->invalid && err == ESP_ERR_INVALID_ARG) || (c->overlap && err == ESP_FAIL),
                   "caps_init (start > end %d, overlap %d): %d", c->invalid, c->overlap, (int)err);
    else
        FZ_REQUIRE(err == ESP_OK, "caps_init of a valid table: %d", (int)err);
    if (err != ESP_OK) {
        FZ_REQUIRE(capheap_caps_chip() == NULL && capheap_heap_count() == before,
                   "failed caps_init left a chip or %zu heaps (had %zu)", capheap_heap_count(), before);
        return false;
    }
    FZ_REQUIRE(capheap_caps_chip() == &c_chip, "caps_chip after init");
    FZ_REQUIRE(capheap_caps_init(&c_chip, NULL, 0) == ESP_ERR_INVALID_STATE, "second caps_init");

    /* Start-up heaps: more than 16 bytes, inside the regions, outside every reservation. */
    uintptr_t base = (uintptr_t)g_chip_mem, top = base + FZ_CHIP_BYTES;
    size_t n = capheap_heap_count();
    for (size_t i = 0; i < n; i++) {
        capheap_heap_desc_t d;
        FZ_REQUIRE(capheap_heap_get(i, &d), "heap_get(%zu)", i);
        if (d.runtime)
            continue;
        uintptr_t s = (uintptr_t)d.start, e = (uintptr_t)d.end;
        FZ_REQUIRE(e > s + 16u, "start-up heap [%#lx, %#lx) of 16 bytes or less", (unsigned long)s, (unsigned long)e);
        FZ_REQUIRE(s >= base && e <= top, "start-up heap [%#lx, %#lx) outside the chip", (unsigned long)s,
                   (unsigned long)e);
        uintptr_t at = s; /* coalesced pieces span neighbouring rows: every byte in some row */
        while (at < e) {
            uintptr_t next = at;
            for (size_t r = 0; r < c_chip.region_count; r++) {
                uintptr_t r0 = (uintptr_t)c_regions[r].start, r1 = r0 + c_regions[r].size;
                if (at >= r0 && at < r1)
                    next = r1;
            }
            FZ_REQUIRE(next > at, "start-up heap [%#lx, %#lx): byte %#lx in no region", (unsigned long)s,
                       (unsigned long)e, (unsigned long)at);
            at = next;
        }
        for (size_t r = 0; r < c->n_res; r++) {
            uintptr_t rs, re;
            (void)res_round(&c->all[r], &rs, &re);
            FZ_REQUIRE(!overlaps(s, e, rs, re), "start-up heap [%#lx, %#lx) overlaps reservation [%#lx, %#lx)",
                       (unsigned long)s, (unsigned long)e, (unsigned long)rs, (unsigned long)re);
        }
    }
    return true;
}

static bool setup_sim(fz_in_t *in, uint8_t b0)
{
    const capheap_chip_t *chip = capheap_chips[(b0 & 0x7Fu) % capheap_chip_count];
    uint8_t ps = in_u8(in), f = in_u8(in);
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    const capheap_extram_t *x = &chip->extram;
    if (x->window_size != 0 && ps != 0) {
        size_t room = (size_t)((uintptr_t)x->window_start + x->window_size - (uintptr_t)x->heap_start);
        size_t lim = FZ_MAX_PSRAM;
        lim = lim < x->max_size ? lim : x->max_size;
        lim = lim < room ? lim : room;
        o.psram_bytes = (size_t)ps * 16384u;
        o.psram_bytes = o.psram_bytes < lim ? o.psram_bytes : lim;
    }
    o.defer_nonos_stack_heaps = (f & 1u) != 0;
    if (f & 2u)
        o.reserve_internal = 0;
    if (f & 4u)
        o.extmem_always_internal = 0;
    esp_err_t err = capheap_sim_boot(chip, &o);
    FZ_TRACE("sim %s: psram %zu, defer %d, pool %zu: boot %d, %zu heaps\n", chip->name, o.psram_bytes,
             o.defer_nonos_stack_heaps, o.reserve_internal, (int)err, capheap_heap_count());
    /* The internal DMA pool needs DMA|INTERNAL memory: chips without it refuse PSRAM with a pool. */
    if (err == ESP_ERR_NO_MEM && o.psram_bytes > 0 && o.reserve_internal > 0 && !o.defer_nonos_stack_heaps &&
        heap_caps_get_total_size(MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL) < o.reserve_internal)
        return false;
    /* A 32-bit host may have no span for a chip whose regions lie gigabytes apart
     * (i.MX RT: ITCM at 0, SDRAM at 0x80000000; docs/simulator.md, limits): the
     * corpora replay in -m32 builds too. */
    if (err == ESP_ERR_NO_MEM && sizeof(void *) == 4)
        return false;
    FZ_REQUIRE(err == ESP_OK, "sim_boot(%s, psram %zu, flags 0x%x): %d", chip->name, o.psram_bytes, f, (int)err);
    st.sim = true;
    st.extmem = o.psram_bytes > 0;
    st.extmem_limit = o.extmem_always_internal;
    return true;
}

/* ---- operations ----------------------------------------------------------------------- */

#define CH_INTERNAL (MALLOC_CAP_DEFAULT | MALLOC_CAP_INTERNAL)
#define CH_EXTERNAL (MALLOC_CAP_DEFAULT | MALLOC_CAP_SPIRAM)

static void op_malloc(fz_in_t *in, fz_blk_t *s)
{
    uint32_t caps = in_caps(in);
    size_t n = in_size(in, caps);
    release(s);
    capheap_fit_t why;
    bool wf = fits(n, caps, 0, &why);
    cb_clear();
    void *p = heap_caps_malloc(n, caps);
    FZ_REQUIRE(fit_agrees(p != NULL, wf), "malloc(%zu, 0x%x) = %p, would_fit %d (reason %d)", n, (unsigned)caps, p, wf,
               (int)why.reason);
    cb_expect(p == NULL && n != 0, n, caps, "heap_caps_malloc");
    if (p == NULL) {
        if (n != 0)
            FZ_REQUIRE(cb.reason == why.reason, "extended callback reason %d, dry run %d", (int)cb.reason,
                       (int)why.reason);
        return;
    }
    adopt(s, p, n, caps, 0, wf ? why.heap_index : -1, "heap_caps_malloc");
}

static void op_calloc(fz_in_t *in, fz_blk_t *s)
{
    uint32_t caps = in_caps(in);
    uint8_t nb = in_u8(in);
    size_t nmemb = (nb & 0x80u) ? (nb & 0x40u ? SIZE_MAX / (nb & 0x3Fu ? (nb & 0x3Fu) : 1u) : (size_t)1 << (nb & 63u) % 64u)
                                : nb;
    size_t size = in_size(in, caps);
    release(s);
    bool overflow = size != 0 && nmemb > SIZE_MAX / size;
    size_t total = nmemb * size;
    capheap_fit_t why;
    bool wf = !overflow && fits(total, caps, 0, &why);
    cb_clear();
    void *p = heap_caps_calloc(nmemb, size, caps);
    FZ_REQUIRE(fit_agrees(p != NULL, wf), "calloc(%zu, %zu, 0x%x) = %p, would_fit %d", nmemb, size, (unsigned)caps, p, wf);
    if (overflow)
        cb_expect(true, SIZE_MAX, caps, "heap_caps_calloc");
    else
        cb_expect(p == NULL && total != 0, total, caps, "heap_caps_calloc");
    if (!overflow && p == NULL && total != 0)
        FZ_REQUIRE(cb.reason == why.reason, "calloc: callback reason %d, dry run %d", (int)cb.reason, (int)why.reason);
    if (p != NULL) {
        require_zero(p, total, "heap_caps_calloc");
        adopt(s, p, total, caps, 0, wf ? why.heap_index : -1, "heap_caps_calloc");
    }
}

static void op_aligned(fz_in_t *in, fz_blk_t *s, bool zeroed)
{
    uint32_t caps = in_caps(in);
    size_t align = in_align(in);
    size_t n = in_size(in, caps), nmemb = 1;
    if (zeroed)
        nmemb = 1u + (in_u8(in) & 7u);
    release(s);
    bool overflow = n != 0 && nmemb > SIZE_MAX / n;
    size_t total = nmemb * n;
    bool checked = !overflow && valid_align(align) && total != 0; /* else NULL without a callback */
    capheap_fit_t why;
    bool wf = checked && fits(total, caps, align, &why);
    cb_clear();
    void *p = zeroed ? heap_caps_aligned_calloc(align, nmemb, n, caps) : heap_caps_aligned_alloc(align, total, caps);
    const char *fn = zeroed ? "heap_caps_aligned_calloc" : "heap_caps_aligned_alloc";
    FZ_REQUIRE(fit_agrees(p != NULL, wf), "%s(%zu, %zu, 0x%x) = %p, would_fit %d", fn, align, total, (unsigned)caps, p, wf);
    cb_expect(checked && p == NULL, total, caps, "heap_caps_aligned_alloc");
    if (checked && p == NULL)
        FZ_REQUIRE(cb.reason == why.reason, "%s: callback reason %d, dry run %d", fn, (int)cb.reason, (int)why.reason);
    if (p != NULL) {
        if (zeroed)
            require_zero(p, total, fn);
        adopt(s, p, total, caps, align, wf ? why.heap_index : -1, fn);
    }
}

/* After a realloc-like call on slot s (old contents in old) returned q for n bytes. */
static void realloc_result(fz_blk_t *s, const fz_blk_t *old, void *q, size_t n, uint32_t caps, const char *fn)
{
    if (q == NULL) {
        verify(old, "after failed realloc");
        return;
    }
    verify_at(old, q, n < old->size ? n : old->size, "after realloc");
    if (q != old->p)
        remember_freed(old->p);
    take(s, q, n, caps, 0, -1, fn);
}

static void op_realloc(fz_in_t *in, fz_blk_t *s)
{
    uint32_t caps = in_caps(in);
    size_t n = in_size(in, caps);
    bool wf = fits(n, caps, 0, NULL);
    cb_clear();
    if (s->p == NULL) {
        void *q = heap_caps_realloc(NULL, n, caps);
        FZ_REQUIRE(fit_agrees(q != NULL, wf), "realloc(NULL, %zu, 0x%x) = %p, would_fit %d", n, (unsigned)caps, q, wf);
        cb_expect(q == NULL && n != 0, n, caps, "heap_caps_realloc");
        if (q != NULL)
            adopt(s, q, n, caps, 0, -1, "heap_caps_realloc");
        return;
    }
    verify(s, "before realloc");
    fz_blk_t old = *s;
    void *q = heap_caps_realloc(s->p, n, caps);
    if (n == 0) {
        FZ_REQUIRE(q == NULL, "realloc(p, 0) = %p", q);
        cb_expect(false, 0, caps, "heap_caps_realloc");
        s->p = NULL;
        st.live--;
        return;
    }
    FZ_REQUIRE(q != NULL || !wf, "realloc(%p, %zu, 0x%x) failed though a new block fits", (void *)old.p, n,
               (unsigned)caps);
    cb_expect(q == NULL, n, caps, "heap_caps_realloc");
    realloc_result(s, &old, q, n, caps, "heap_caps_realloc");
}

static void op_free(fz_blk_t *s, uint8_t how)
{
    if (s->p == NULL) {
        heap_caps_free(NULL);
        return;
    }
    verify(s, "before free");
    if (how & 1u)
        heap_caps_aligned_free(s->p);
    else
        heap_caps_free(s->p);
    remember_freed(s->p);
    s->p = NULL;
    st.live--;
}

/* Up to three caps masks for the prefer functions; *num how many are consulted. */
static void in_prefer(fz_in_t *in, uint32_t c[3], size_t *num)
{
    *num = in_u8(in) % 4u;
    for (int i = 0; i < 3; i++)
        c[i] = in_caps(in);
}

/* The first of c[0..num) that fits, or -1. */
static int first_fit(size_t size, const uint32_t *c, size_t num, size_t align, capheap_fit_t *why)
{
    for (size_t i = 0; i < num; i++)
        if (fits(size, c[i], align, why))
            return (int)i;
    return -1;
}

/* Does block q (not yet in the table) satisfy caps and align: the heap's caps and the alignment? */
static bool block_matches(const void *q, uint32_t caps, size_t align)
{
    uint32_t need = adjusted_caps(caps);
    size_t a = max_sz(4, max_sz(align, hw_alignment(caps)));
    if ((uintptr_t)q % a != 0)
        return false;
    if ((need & MALLOC_CAP_EXEC) && in_alias_window(q))
        return true;
    int idx = capheap_heap_find(q);
    capheap_heap_desc_t d;
    return idx >= 0 && capheap_heap_get((size_t)idx, &d) && ((d.caps[0] | d.caps[1] | d.caps[2]) & need) == need;
}

/* A request routed over the masks c[0..num) returned p; would_fit's first fitting mask is k
 * (-1: none), with answer why. The block must come from mask k, in the heap why names. */
static void routed_result(fz_blk_t *s, void *p, size_t n, const uint32_t *c, size_t num, int k, size_t align,
                          const capheap_fit_t *why, const char *fn)
{
    FZ_REQUIRE(fit_agrees(p != NULL, k >= 0), "%s(%zu, align %zu, %zu masks) = %p, first fitting mask %d", fn, n,
               align, num, p, k);
    if (p == NULL)
        return;
    if (k >= 0 && block_matches(p, c[k], align)) {
        adopt(s, p, n, c[k], align, why->heap_index, fn);
        return;
    }
    int served = -1;
    for (size_t i = 0; i < num && served < 0 && FZ_TOLERATE_KNOWN; i++)
        if (block_matches(p, c[i], align))
            served = (int)i;
    FZ_REQUIRE(served >= 0, "%s(%zu): block %p does not satisfy mask %d (0x%x)", fn, n, p, k,
               k >= 0 ? (unsigned)c[k] : 0u);
    adopt(s, p, n, c[served], align, -1, fn);
}

/* A prefer call with num 0 that failed: the extended callback says nothing was tried. */
static void no_caps_reason(size_t num, bool failed, const char *fn)
{
    if (num == 0 && failed)
        FZ_REQUIRE(cb.reason == CAPHEAP_FIT_NO_CAPS_GIVEN, "%s with num 0: callback reason %d", fn, (int)cb.reason);
}

static void op_malloc_prefer(fz_in_t *in, fz_blk_t *s)
{
    uint32_t c[3];
    size_t num;
    in_prefer(in, c, &num);
    size_t n = in_size(in, c[0]);
    release(s);
    capheap_fit_t why;
    int k = n != 0 ? first_fit(n, c, num, 0, &why) : -1;
    cb_clear();
    void *p = heap_caps_malloc_prefer(n, num, c[0], c[1], c[2]);
    cb_expect(p == NULL && n != 0, n, num ? c[num - 1] : MALLOC_CAP_DEFAULT, "heap_caps_malloc_prefer");
    no_caps_reason(num, p == NULL && n != 0, "heap_caps_malloc_prefer");
    routed_result(s, p, n, c, num, k, 0, &why, "heap_caps_malloc_prefer");
}

static void op_calloc_prefer(fz_in_t *in, fz_blk_t *s)
{
    uint32_t c[3];
    size_t num;
    in_prefer(in, c, &num);
    size_t nmemb = 1u + (in_u8(in) & 15u);
    size_t n = in_size(in, c[0]);
    release(s);
    bool overflow = n != 0 && nmemb > SIZE_MAX / n;
    size_t total = nmemb * n;
    capheap_fit_t why;
    int k = !overflow && total != 0 ? first_fit(total, c, num, 0, &why) : -1;
    cb_clear();
    void *p = heap_caps_calloc_prefer(nmemb, n, num, c[0], c[1], c[2]);
    if (overflow)
        cb_expect(true, SIZE_MAX, num ? c[num - 1] : MALLOC_CAP_DEFAULT, "heap_caps_calloc_prefer"); /* the last caps, as ESP-IDF */
    else
        cb_expect(p == NULL && total != 0, total, num ? c[num - 1] : MALLOC_CAP_DEFAULT, "heap_caps_calloc_prefer");
    no_caps_reason(num, p == NULL && (total != 0 || overflow), "heap_caps_calloc_prefer");
    if (p != NULL)
        require_zero(p, total, "heap_caps_calloc_prefer");
    routed_result(s, p, total, c, num, k, 0, &why, "heap_caps_calloc_prefer");
}

static void op_realloc_prefer(fz_in_t *in, fz_blk_t *s)
{
    uint32_t c[3];
    size_t num;
    in_prefer(in, c, &num);
    size_t n = in_size(in, c[0]);
    capheap_fit_t why;
    int k = n != 0 ? first_fit(n, c, num, 0, &why) : -1;
    cb_clear();
    if (s->p == NULL) {
        void *p = heap_caps_realloc_prefer(NULL, n, num, c[0], c[1], c[2]);
        cb_expect(p == NULL && n != 0, n, num ? c[num - 1] : MALLOC_CAP_DEFAULT, "heap_caps_realloc_prefer");
        no_caps_reason(num, p == NULL && n != 0, "heap_caps_realloc_prefer");
        routed_result(s, p, n, c, num, k, 0, &why, "heap_caps_realloc_prefer");
        return;
    }
    verify(s, "before realloc_prefer");
    fz_blk_t old = *s;
    void *q = heap_caps_realloc_prefer(s->p, n, num, c[0], c[1], c[2]);
    if (n == 0) {
        FZ_REQUIRE(q == NULL, "realloc_prefer(p, 0) = %p", q);
        cb_expect(false, 0, 0, "heap_caps_realloc_prefer");
        if (num == 0) { /* no round of ESP-IDF's loop: nothing freed, the block stays the caller's */
            verify(&old, "after realloc_prefer(p, 0) with no caps");
            return;
        }
        s->p = NULL;
        st.live--;
        return;
    }
    FZ_REQUIRE(q != NULL || k < 0, "realloc_prefer(%p, %zu) failed though caps %d fit", (void *)old.p, n, k);
    cb_expect(q == NULL, n, num ? c[num - 1] : MALLOC_CAP_DEFAULT, "heap_caps_realloc_prefer");
    if (q == NULL) {
        verify(&old, "after failed realloc_prefer");
        return;
    }
    verify_at(&old, q, n < old.size ? n : old.size, "after realloc_prefer");
    /* Served under one of the masks; which one depends on where the block could grow in place. */
    int served = -1;
    for (size_t i = 0; i < num && served < 0; i++)
        if (block_matches(q, c[i], 0))
            served = (int)i;
    FZ_REQUIRE(served >= 0, "realloc_prefer: block %p matches none of the %zu masks", q, num);
    take(s, q, n, c[served], 0, -1, "heap_caps_realloc_prefer");
}

static void op_malloc_default(fz_in_t *in, fz_blk_t *s, bool aligned)
{
    size_t align = aligned ? in_align(in) : 0;
    size_t n = in_size(in, CH_INTERNAL);
    release(s);
    const char *fn = aligned ? "heap_caps_aligned_alloc_default" : "heap_caps_malloc_default";
    capheap_fit_t why;
    bool checked = !aligned || (valid_align(align) && n != 0);
    uint32_t c[2] = {CH_INTERNAL, MALLOC_CAP_DEFAULT};
    size_t num = 1;
    if (st.extmem) {
        c[0] = n <= st.extmem_limit ? CH_INTERNAL : CH_EXTERNAL;
        num = 2;
    }
    int k = checked && n != 0 ? first_fit(n, c, num, align, &why) : -1;
    cb_clear();
    void *p = aligned ? heap_caps_aligned_alloc_default(align, n) : heap_caps_malloc_default(n);
    if (st.extmem)
        cb_expect(checked && p == NULL && n != 0, n, MALLOC_CAP_DEFAULT, fn);
    else
        cb_expect(checked && p == NULL && n != 0, n, CH_INTERNAL,
                  aligned ? "heap_caps_aligned_alloc" : "heap_caps_malloc");
    routed_result(s, p, n, c, num, k, align, &why, fn);
}

static void op_realloc_default(fz_in_t *in, fz_blk_t *s)
{
    size_t n = in_size(in, CH_INTERNAL);
    uint32_t c[2] = {CH_INTERNAL, MALLOC_CAP_DEFAULT};
    size_t num = 1;
    if (st.extmem) {
        c[0] = n <= st.extmem_limit ? CH_INTERNAL : CH_EXTERNAL;
        num = 2;
    }
    capheap_fit_t why;
    int k = n != 0 ? first_fit(n, c, num, 0, &why) : -1;
    cb_clear();
    if (s->p == NULL) {
        void *p = heap_caps_realloc_default(NULL, n);
        routed_result(s, p, n, c, num, k, 0, &why, "heap_caps_realloc_default");
        return;
    }
    verify(s, "before realloc_default");
    fz_blk_t old = *s;
    void *q = heap_caps_realloc_default(s->p, n);
    if (n == 0) {
        FZ_REQUIRE(q == NULL, "realloc_default(p, 0) = %p", q);
        s->p = NULL;
        st.live--;
        return;
    }
    FZ_REQUIRE(q != NULL || k < 0, "realloc_default(%p, %zu) failed though mask %d fits", (void *)old.p, n, k);
    if (st.extmem)
        cb_expect(q == NULL, n, MALLOC_CAP_DEFAULT, "heap_caps_realloc_default");
    else
        cb_expect(q == NULL, n, CH_INTERNAL, "heap_caps_realloc");
    /* Every mask of the policy contains DEFAULT; without extmem it is DEFAULT|INTERNAL. */
    realloc_result(s, &old, q, n, st.extmem ? MALLOC_CAP_DEFAULT : CH_INTERNAL, "heap_caps_realloc_default");
}

static void op_extmem(fz_in_t *in)
{
    uint8_t b = in_u8(in);
    if (b & 1u) {
        capheap_malloc_extmem_disable();
        st.extmem = false;
        return;
    }
    static const size_t limits[4] = {0, 16384, 4096, SIZE_MAX};
    size_t limit = limits[(b >> 1) & 3u];
    if (b & 8u)
        limit = in_u16(in);
    heap_caps_malloc_extmem_enable(limit);
    st.extmem = true;
    st.extmem_limit = limit;
}

static void op_largest(fz_in_t *in)
{
    uint32_t caps = in_caps(in);
    size_t align = in_align(in);
    fz_blk_t probe;
    memset(&probe, 0, sizeof probe);
    size_t L = heap_caps_get_largest_free_block(caps);
    FZ_REQUIRE(L <= size_max(), "largest %zu above HEAP_SIZE_MAX %zu", L, size_max());
    /* One byte more first: L describes this state, and the probe below
     * changes it (its malloc takes a class's head and its free files the
     * block behind a larger one, so a larger block may lead the list after;
     * a failed malloc changes nothing). */
    if (!FZ_TOLERATE_KNOWN && L < size_max()) {
        void *p = heap_caps_malloc(L + 1, caps);
        FZ_REQUIRE(p == NULL, "largest(0x%x) = %zu but malloc(%zu) succeeded", (unsigned)caps, L, L + 1);
    }
    if (L > 0) {
        capheap_fit_t why;
        FZ_REQUIRE(fits(L, caps, 0, &why), "largest(0x%x) = %zu but would_fit says no (%d)", (unsigned)caps, L,
                   (int)why.reason);
        void *p = heap_caps_malloc(L, caps);
        FZ_REQUIRE(p != NULL, "largest(0x%x) = %zu but malloc of it failed", (unsigned)caps, L);
        take(&probe, p, L, caps, 0, why.heap_index, "largest probe");
        FZ_REQUIRE(heap_caps_check_integrity_all(false), "integrity with the largest block allocated");
        verify(&probe, "largest probe");
        heap_caps_free(p);
    }
    if (!valid_align(align) || k2_request(caps, align))
        return;
    size_t La = capheap_get_largest_free_block_aligned(caps, align);
    if (!FZ_TOLERATE_KNOWN && La < size_max()) { /* before the probe, as above */
        void *p = heap_caps_aligned_alloc(align, La + 1, caps);
        FZ_REQUIRE(p == NULL, "largest(0x%x, align %zu) = %zu but aligned_alloc(%zu) succeeded", (unsigned)caps,
                   align, La, La + 1);
    }
    if (La > (FZ_TOLERATE_KNOWN ? 8u : 0u)) {
        void *p = heap_caps_aligned_alloc(align, La, caps);
        FZ_REQUIRE(p != NULL, "largest(0x%x, align %zu) = %zu but aligned_alloc of it failed", (unsigned)caps, align,
                   La);
        probe.p = NULL;
        take(&probe, p, La, caps, align, -1, "largest aligned probe");
        heap_caps_free(p);
    }
}

typedef struct {
    size_t used, free;
    bool stop_early;
    size_t calls;
} walk_count_t;

static bool walker(walker_heap_into_t heap, walker_block_info_t block, void *user)
{
    walk_count_t *w = user;
    uintptr_t p = (uintptr_t)block.ptr;
    FZ_REQUIRE(p >= (uintptr_t)heap.start && p + block.size <= (uintptr_t)heap.end,
               "walk: block %p+%zu outside its heap [%#lx, %#lx)", block.ptr, block.size, (unsigned long)heap.start,
               (unsigned long)heap.end);
    if (block.used)
        w->used++;
    else
        w->free++;
    w->calls++;
    return !w->stop_early;
}

static void op_info(fz_in_t *in)
{
    uint8_t b = in_u8(in);
    uint32_t caps = (b & 1u) ? in_caps(in) : 0;
    multi_heap_info_t info;
    heap_caps_get_info(&info, caps);
    FZ_REQUIRE(info.total_blocks == info.allocated_blocks + info.free_blocks, "info: block counts");
    size_t fr = heap_caps_get_free_size(caps), mn = heap_caps_get_minimum_free_size(caps);
    FZ_REQUIRE(info.total_free_bytes == fr, "info: free %zu vs get_free_size %zu", info.total_free_bytes, fr);
    FZ_REQUIRE(info.minimum_free_bytes == mn, "info: minimum %zu vs get_minimum %zu", info.minimum_free_bytes, mn);
    FZ_REQUIRE(mn <= fr, "minimum free %zu above free %zu (caps 0x%x)", mn, fr, (unsigned)caps);
    FZ_REQUIRE(info.largest_free_block <= fr, "info: largest above free");
    FZ_REQUIRE(fr <= heap_caps_get_total_size(caps), "free above total (caps 0x%x)", (unsigned)caps);
    if (caps == 0) {
        FZ_REQUIRE(info.allocated_blocks == st.base_blocks + st.live, "info: %zu used blocks, expected %zu + %zu",
                   info.allocated_blocks, st.base_blocks, st.live);
        walk_count_t w = {0, 0, false, 0};
        if (b & 2u)
            heap_caps_walk_all(walker, &w);
        else
            heap_caps_walk((b & 4u) ? 0u : MALLOC_CAP_INVALID, walker, &w);
        FZ_REQUIRE(w.used == info.allocated_blocks && w.free == info.free_blocks,
                   "walk: %zu used / %zu free, info %zu / %zu", w.used, w.free, info.allocated_blocks,
                   info.free_blocks);
        walk_count_t one = {0, 0, true, 0};
        heap_caps_walk_all(walker, &one); /* false stops each heap after its first block */
        size_t heaps = 0, n = capheap_heap_count();
        for (size_t i = 0; i < n; i++) {
            capheap_heap_desc_t d;
            heaps += capheap_heap_get(i, &d) && d.heap != NULL;
        }
        FZ_REQUIRE(one.calls == heaps, "walk stopping early: %zu calls for %zu heaps", one.calls, heaps);
        heap_caps_walk(0, NULL, NULL);
    }
}

static void op_monitor(fz_in_t *in)
{
    uint8_t b = in_u8(in);
    if (b & 1u) {
        esp_err_t e = heap_caps_monitor_local_minimum_free_size_start();
        FZ_REQUIRE(e == (st.monitor ? ESP_FAIL : ESP_OK), "monitor start: %d (open %d)", (int)e, st.monitor);
        if (!st.monitor)
            FZ_REQUIRE(heap_caps_get_minimum_free_size(0) == heap_caps_get_free_size(0), "monitor start: minimum != free");
        st.monitor = true;
    } else {
        esp_err_t e = heap_caps_monitor_local_minimum_free_size_stop();
        FZ_REQUIRE(e == (st.monitor ? ESP_OK : ESP_FAIL), "monitor stop: %d (open %d)", (int)e, st.monitor);
        st.monitor = false;
        FZ_REQUIRE(heap_caps_get_minimum_free_size(0) <= heap_caps_get_free_size(0), "monitor stop: minimum above free");
    }
}

static void op_sizes(fz_in_t *in, const fz_blk_t *s)
{
    uint16_t off = in_u16(in);
    FZ_REQUIRE(heap_caps_get_allocated_size(NULL) == 0, "allocated_size(NULL)");
    FZ_REQUIRE(heap_caps_get_containing_block_size(&g_not_heap) == 0, "containing_block_size outside the heaps");
    FZ_REQUIRE(!heap_caps_check_integrity_addr((intptr_t)&g_not_heap, false), "integrity_addr outside the heaps");
    if (s->p == NULL)
        return;
    size_t a = heap_caps_get_allocated_size(s->p);
    FZ_REQUIRE(a >= s->size, "allocated_size %zu < %zu", a, s->size);
    size_t c = heap_caps_get_containing_block_size(s->p);
    FZ_REQUIRE(c == a || (FZ_TOLERATE_KNOWN && s->alias), "containing_block_size(%p) = %zu, allocated_size %zu%s",
               (void *)s->p, c, a, s->alias ? " (IRAM alias)" : "");
    if (!s->alias) { /* an interior alias pointer does not lead back to its hidden word */
        size_t o = off % s->size;
        size_t ci = heap_caps_get_containing_block_size(s->p + o);
        FZ_REQUIRE(ci == a, "containing_block_size(%p + %zu) = %zu, allocated_size %zu", (void *)s->p, o, ci, a);
        FZ_REQUIRE(heap_caps_check_integrity_addr((intptr_t)(s->p + o), false), "integrity_addr(%p)", (void *)(s->p + o));
    }
    FZ_REQUIRE(heap_caps_check_integrity_addr((intptr_t)s->p, false), "integrity_addr(%p)", (void *)s->p);
}

/* Op 22: a live block becomes a heap (the DMA-pool pattern), or raw memory is added. */
static void op_add(fz_in_t *in, fz_blk_t *s)
{
    uint8_t b = in_u8(in);
    if ((b & 3u) == 2u) {
        if (st.raw_adds < FZ_MAX_RAW_ADDS) {
            st.raw_adds++;
            size_t before = heap_caps_get_free_size(0);
            size_t n0 = capheap_heap_count();
            raw_region(in);
            if (capheap_heap_count() != n0)
                st.base_free += heap_caps_get_free_size(0) - before;
        }
        return;
    }
    if (s->p == NULL || s->alias || st.n_pools >= FZ_MAX_POOLS)
        return;
    verify(s, "before becoming a pool");
    uintptr_t start = (uintptr_t)s->p, end = start + s->size;
    esp_err_t e;
    if ((b & 3u) == 3u) {
        /* The chip's type of the region containing the block, or NOT_FOUND. */
        const capheap_chip_t *chip = capheap_caps_chip();
        const uint32_t *caps = NULL;
        for (size_t i = 0; chip != NULL && i < chip->region_count && caps == NULL; i++) {
            const soc_memory_region_t *r = &chip->regions[i];
            if (start >= (uintptr_t)r->start && start - (uintptr_t)r->start < r->size && r->type < chip->type_count)
                caps = chip->types[r->type].caps;
        }
        bool skip = false, either = false;
        esp_err_t want = caps == NULL ? ESP_ERR_NOT_FOUND : expect_add(start, end, 0, &skip, &either);
        size_t n0 = capheap_heap_count();
        e = heap_caps_add_region((intptr_t)start, (intptr_t)end);
        if (either && want == ESP_OK)
            FZ_REQUIRE(e == ESP_OK || e == ESP_ERR_INVALID_SIZE, "add_region(block %p+%zu): %d", (void *)s->p,
                       s->size, (int)e);
        else
            FZ_REQUIRE(e == want, "add_region(block %p+%zu): %d, expected %d", (void *)s->p, s->size, (int)e,
                       (int)want);
        FZ_REQUIRE(capheap_heap_count() == n0 + (e == ESP_OK), "add_region: heap count");
    } else {
        static const size_t aligns[4] = {0, 4, 8, 16};
        uint32_t caps[3];
        in_type_caps(in, caps);
        e = add_region(caps, start, end, aligns[(b >> 2) & 3u], (b >> 4) & 1u, true);
    }
    if (e != ESP_OK)
        return;
    /* The block's memory now belongs to the new heap; its header stays allocated in the outer one. */
    st.pool[st.n_pools++] = (fz_pool_t){s->p, s->p + s->size};
    s->p = NULL;
    st.live--;
    st.base_blocks++;
    st.free_exact = false;
}

static void op_nonos(void)
{
    size_t before = heap_caps_get_free_size(0), n = capheap_heap_count();
    heap_caps_enable_nonos_stack_heaps();
    FZ_REQUIRE(capheap_heap_count() == n, "enable_nonos_stack_heaps changed the heap count");
    size_t after = heap_caps_get_free_size(0);
    FZ_REQUIRE(after >= before, "enable_nonos_stack_heaps lost free memory");
    st.base_free += after - before;
}

static void op_check(fz_in_t *in)
{
    uint32_t caps = in_caps(in);
    FZ_REQUIRE(heap_caps_check_integrity(caps, false), "check_integrity(0x%x)", (unsigned)caps);
}

/* ---- bad pointers (fuzz_caps_misuse) --------------------------------------------------- */

#if FZ_CAPS_MISUSE
#include "fuzz_catch.h"

/* The DRAM block behind an EXEC block handed out through an IRAM alias: the
 * window's DRAM start plus the offset in the hidden word in front of the
 * alias pointer (route.c, ch_unalias). A valid block pointer too, though
 * the user never got it. */
static const void *alias_backing(const fz_blk_t *b)
{
    const capheap_chip_t *chip = capheap_caps_chip();
    uintptr_t v = (uintptr_t)b->p;
    const capheap_alias_t *w[2] = {&chip->diram, &chip->rtc};
    for (int k = 0; k < 2; k++)
        if (w[k]->kind != CAPHEAP_ALIAS_NONE && v >= (uintptr_t)w[k]->iram_low + 4u && v < (uintptr_t)w[k]->iram_high) {
            uint32_t off;
            memcpy(&off, b->p - 4, sizeof off);
            return (const void *)((uintptr_t)w[k]->dram_low + off);
        }
    return NULL;
}

static bool is_live(const void *p)
{
    for (unsigned i = 0; i < FZ_SLOTS; i++)
        if (st.slot[i].p != NULL && (st.slot[i].p == p || (st.slot[i].alias && alias_backing(&st.slot[i]) == p)))
            return true;
    return false;
}

/* The pointer a bad-pointer operation names (NULL: none this time). */
static uint8_t *in_bad_pointer(fz_in_t *in)
{
    uint8_t kind = in_u8(in);
    const fz_blk_t *b = &st.slot[in_u8(in) % FZ_SLOTS];
    capheap_heap_desc_t d;
    size_t n = capheap_heap_count();
    bool heap = n != 0 && capheap_heap_get(in_u8(in) % n, &d) && d.heap != NULL;
    switch (kind % 6u) {
    case 0: /* around a heap's start or end */
        if (!heap)
            return NULL;
        return (uint8_t *)((kind & 0x80u) ? d.end : d.start) + (int8_t)in_u8(in);
    case 1: /* anywhere in a heap */
        if (!heap)
            return NULL;
        return (uint8_t *)d.start + in_u32(in) % (uint32_t)(d.end - d.start);
    case 2: /* into a live block or just in front of it, any alignment */
        return b->p == NULL ? NULL : b->p + (int8_t)in_u8(in);
    case 3: /* into a live block at a multiple of 4 */
        return b->p == NULL ? NULL : b->p + 4u * (in_u8(in) % 64u + 1u);
    case 4: /* freed before: a double free, or a use after a merge */
        return st.freed[in_u8(in) % 8u];
    default: /* in no heap: the fuzzer's own data */
        return (kind & 0x80u) ? (uint8_t *)&g_not_heap : (uint8_t *)&cb + (kind & 15u);
    }
}

/* Call number call of a bad-pointer operation; realloc's result. */
static void *bad_call(unsigned call, void *p, size_t n)
{
    switch (call) {
    case 0: heap_caps_free(p); return NULL;
    case 1: heap_caps_aligned_free(p); return NULL;
    case 2: return heap_caps_realloc(p, n, MALLOC_CAP_8BIT);
    default: return (void *)(uintptr_t)heap_caps_get_allocated_size(p);
    }
}

/*
 * A pointer that is not a live block's, handed to heap_caps_free,
 * heap_caps_aligned_free, heap_caps_realloc or heap_caps_get_allocated_size:
 * a report that names it, and nothing changes: every heap
 * passes its check, the free size, block count and every live block's stamps
 * are as before. Certain outside every heap, off 4-byte alignment, and with
 * poisoning anywhere; without poisoning an aligned pointer into a heap whose
 * bytes in front pass for a used block (docs/design.md) is taken, so such a
 * pointer is first asked its size and not freed if it passes. So are IRAM
 * alias pointers, whose hidden word is trusted as ESP-IDF trusts it.
 */
static void op_bad_pointer(fz_in_t *in)
{
    uint8_t *p = in_bad_pointer(in);
    uint8_t call = (uint8_t)(in_u8(in) % 4u);
    size_t n = (size_t)in_u8(in) * 16u + 1u;
    if (p == NULL || is_live(p))
        return;
    bool alias = in_alias_window(p);
    bool in_heap = capheap_heap_find(p) >= 0;
    bool certain = !alias && (!in_heap || ((uintptr_t)p & 3u) != 0 || !CAPHEAP_POISONING_NONE);
    FZ_TRACE("bad pointer %p (call %u, %s heap%s)\n", (void *)p, call, in_heap ? "in a" : "in no",
             alias ? ", IRAM alias" : "");
    size_t free0 = heap_caps_get_free_size(0);
    multi_heap_info_t i0;
    heap_caps_get_info(&i0, 0);
    capheap_write_fn old_writer = capheap_set_writer(fz_count_text);
    bool reported;
    if (!certain && call != 3) {
        FZ_CATCH(reported, (void)heap_caps_get_allocated_size(p));
        if (!reported) {
            FZ_TRACE("  passes for a block: not freed\n");
            capheap_set_writer(old_writer);
            return;
        }
        certain = !alias;
    }
    void *volatile result = NULL;
    FZ_CATCH(reported, result = bad_call(call, p, n));
    capheap_set_writer(old_writer);
    capheap_report_t r = capheap_last_report();
    if (certain) {
        FZ_REQUIRE(reported, "call %u with bad pointer %p (size %zu) was not reported (returned %p)", call, (void *)p,
                   n, result);
        FZ_REQUIRE(r.what != NULL && g_printed > 0, "call %u with %p: an abort without a printed report", call,
                   (void *)p);
        FZ_REQUIRE(r.address == p, "call %u with %p: \"%s\" names %p", call, (void *)p, r.what, r.address);
    }
    FZ_REQUIRE(heap_caps_check_integrity_all(false), "a heap is damaged after call %u with bad pointer %p", call,
               (void *)p);
    multi_heap_info_t i1;
    heap_caps_get_info(&i1, 0);
    FZ_REQUIRE(heap_caps_get_free_size(0) == free0 && i1.allocated_blocks == i0.allocated_blocks,
               "call %u with bad pointer %p changed the heaps: free %zu -> %zu, blocks %zu -> %zu", call, (void *)p,
               free0, heap_caps_get_free_size(0), i0.allocated_blocks, i1.allocated_blocks);
    for (unsigned i = 0; i < FZ_SLOTS; i++)
        if (st.slot[i].p != NULL)
            verify(&st.slot[i], "after a bad pointer");
}
#endif

/* ---- the target ------------------------------------------------------------------------ */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size, 0};
    if (g_trace < 0) {
        const char *t = getenv("FUZZ_CAPS_TRACE");
        g_trace = t != NULL && t[0] == '1';
    }
    memset(&st, 0, sizeof st);
    FZ_REQUIRE(capheap_heap_count() == 0 && capheap_caps_chip() == NULL && capheap_sim_chip() == NULL,
               "heap_caps not empty at the start of an input");
    st.free_exact = true;

    uint8_t b0 = in_u8(&in);
    if (b0 & 0x80u) {
        fz_custom_t c;
        fz_raw_t raw[2];
        in_custom(&in, &c);
        unsigned count = in_u8(&in) % 3u;
        for (unsigned r = 0; r < count; r++)
            in_raw(&in, &raw[r]);
        for (unsigned r = 0; c.runtime_first && r < count; r++)
            (void)add_region(raw[r].caps, raw[r].s, raw[r].e, raw[r].align, raw[r].how, false);
        bool ok = init_custom(&c);
        for (unsigned r = 0; ok && !c.runtime_first && r < count; r++)
            (void)add_region(raw[r].caps, raw[r].s, raw[r].e, raw[r].align, raw[r].how, false);
        if (capheap_heap_count() == 0) { /* nothing to allocate from */
            capheap_caps_reset();
            return 0;
        }
    } else {
        if (!setup_sim(&in, b0)) {
            FZ_REQUIRE(capheap_heap_count() == 0 && capheap_sim_chip() == NULL, "a failed boot left heaps");
            return 0;
        }
        unsigned count = in_u8(&in) % 3u;
        for (unsigned r = 0; r < count; r++)
            raw_region(&in);
    }
#if FZ_CAPS_MISUSE
    capheap_set_abort_handler(fz_on_abort);
#endif
    FZ_REQUIRE(heap_caps_register_failed_alloc_callback(on_failed) == ESP_OK, "register callback");
    FZ_REQUIRE(capheap_register_failed_alloc_callback(on_failed_ext, &cb) == ESP_OK, "register extended callback");

    multi_heap_info_t info;
    heap_caps_get_info(&info, 0);
    st.base_blocks = info.allocated_blocks;
    st.base_free = heap_caps_get_free_size(0);

    for (unsigned ops = 0; ops < FZ_MAX_OPS && in.i < in.n; ops++) {
        uint8_t op = (uint8_t)(in_u8(&in) % (25u + FZ_CAPS_MISUSE));
        fz_blk_t *s = &st.slot[in_u8(&in) % FZ_SLOTS];
        g_known_k2 = false;
        FZ_TRACE("op %u: %u, slot %u\n", ops, op, (unsigned)(s - st.slot));
        switch (op) {
        case 0: case 1: case 2: case 3: op_malloc(&in, s); break;
        case 4: op_calloc(&in, s); break;
        case 5: op_aligned(&in, s, false); break;
        case 6: op_aligned(&in, s, true); break;
        case 7: case 8: op_realloc(&in, s); break;
        case 9: case 10: op_free(s, op); break;
        case 11: op_malloc_prefer(&in, s); break;
        case 12: op_realloc_prefer(&in, s); break;
        case 13: op_calloc_prefer(&in, s); break;
        case 14: op_malloc_default(&in, s, false); break;
        case 15: op_realloc_default(&in, s); break;
        case 16: op_malloc_default(&in, s, true); break;
        case 17: op_extmem(&in); break;
        case 18: op_largest(&in); break;
        case 19: op_info(&in); break;
        case 20: op_monitor(&in); break;
        case 21: op_sizes(&in, s); break;
        case 22: op_add(&in, s); break;
        case 23: op_nonos(); break;
        case 24: op_check(&in); break;
#if FZ_CAPS_MISUSE
        default: op_bad_pointer(&in); break;
#endif
        }
        if (ops % FZ_CHECK_EVERY == FZ_CHECK_EVERY - 1u)
            FZ_REQUIRE(heap_caps_check_integrity_all(false), "check_integrity_all after op %u (%u)", ops, op);
    }

    for (unsigned i = 0; i < FZ_SLOTS; i++)
        release(&st.slot[i]);
    FZ_REQUIRE(heap_caps_check_integrity_all(false), "check_integrity_all after freeing everything");
    heap_caps_get_info(&info, 0);
    FZ_REQUIRE(info.allocated_blocks == st.base_blocks, "%zu used blocks after freeing everything, expected %zu",
               info.allocated_blocks, st.base_blocks);
    if (st.free_exact)
        FZ_REQUIRE(heap_caps_get_free_size(0) == st.base_free, "free %zu after freeing everything, at start %zu",
                   heap_caps_get_free_size(0), st.base_free);
    if (st.sim)
        FZ_REQUIRE(capheap_sim_shutdown() == ESP_OK, "sim shutdown");
    else
        capheap_caps_reset();
    FZ_REQUIRE(capheap_heap_count() == 0 && capheap_caps_chip() == NULL, "heaps left after reset");
    return 0;
}
