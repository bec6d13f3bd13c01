/*
 * route.c - choosing the heap: heap_caps_malloc and its family, free,
 * realloc, the libc policy, failure callbacks, and the dry run.
 *
 * A request goes through ESP-IDF's steps (spec 2.6): the hardware alignment
 * adjustment from the chip's parameters, the size checks, the EXEC and 32BIT
 * rules, then the heaps in three-priority order. That order depends only on
 * the caps mask and the heap list, so it is computed once per mask and kept in
 * a small cache (ch_route: 8 entries, refilled under the registry lock on a
 * miss and emptied when a heap is added). A heap that failed at one priority
 * would fail again at the next, so each heap appears once: the heap that
 * serves a request is the one ESP-IDF's loop would pick.
 *
 * The common case, heap_caps_malloc(size, caps) with caps that need no
 * adjustment, walks the list (MALLOC_CAP_DEFAULT's own, ch_g.dflt, or the
 * cached one) and asks each heap, without its lock, whether its free lists
 * could hold the block (capheap_heap_fit: the engine's first half, block
 * size, class and bitmaps); the first that may is locked and allocates from
 * there (capheap_heap_malloc_fit). A heap that certainly cannot serve the request is
 * what ESP-IDF's loop would lock, fail on and leave: ESP32-S3's order puts a
 * 21 KiB heap first, so this matters on many calls. Readers take no
 * registry lock (caps_private.h): a block from a list torn by a concurrent
 * refill is checked against the heap's caps before it is returned.
 *
 * D/IRAM alias (chips.md 0.2): an EXEC request served by a heap in the DRAM
 * window of an alias gets the IRAM address of its block, with 4 hidden bytes
 * in front holding the block's DRAM offset; free, realloc and
 * get_allocated_size translate it back. Unlike ESP-IDF, a requested alignment
 * is honoured here too, and realloc copies only the user's bytes.
 */
#include <stdarg.h>
#include <string.h>

#include "caps/caps_private.h"
#include "capheap/heap.h"
#include "capheap/report.h"
#include "debug/debug_hooks.h"
#include "heap/heap_private.h"
#include "port/port_private.h"

static bool extmem_on;
static size_t extmem_limit;

void ch_reset_policy(void)
{
    ch_failed_hooks.cb = NULL;
    ch_failed_hooks.ext = NULL;
    extmem_on = false;
    extmem_limit = 0;
}

/* ---- candidate lists ------------------------------------------------------ */

#if !CH_COMPACT
static inline ch_route_t *slot(uint32_t caps)
{
    return &ch_g.route[(caps * 0x9E3779B1u) >> (32u - 3u)];
}
#endif

/* Is heap h at priority p of caps's try order (spec 2.6 step 6; caps != 0)?
 * ESP-IDF's loop asks a heap at every priority where it has one of the caps,
 * and a heap that failed once fails again, so a heap's place is at the first
 * such priority: each heap once. */
CH_INLINE bool candidate_at(const ch_heap_t *h, uint32_t caps, size_t p)
{
    /* The caps first, then the handle: a listed heap's caps were set before it
     * was counted (order[] is read under the lock, or copied under it), and
     * the fence of the handle's acquire load comes after the cheap test (-4 B
     * on Cortex-M4). */
    if ((h->all & caps) != caps || CH_ACQUIRE(h->heap) == NULL)
        return false;
    size_t first = 0; /* some priority has one of caps: all & caps = caps != 0 */
    while ((h->caps[first] & caps) == 0)
        first++;
    return first == p;
}

/* ESP-IDF's try order for caps, from a list order that cannot change
 * meanwhile: order[] under the registry lock, or a copy (ch_order()). */
static size_t compute(const uint8_t *order, size_t heaps, uint32_t caps, uint8_t *list)
{
    size_t n = 0;
    for (size_t p = 0; p < CH_PRIOS && caps != 0; p++)
        for (size_t i = 0; i < heaps; i++) {
            uint8_t k = order[i] % CAPHEAP_MAX_HEAPS;
            if (candidate_at(&ch_g.heaps[k], caps, p))
                list[n++] = k;
        }
    return n;
}

#if CH_COMPACT
size_t ch_candidates(uint32_t caps, uint8_t *list)
{
    uint8_t order[CAPHEAP_MAX_HEAPS];
    return compute(order, ch_order(order), caps, list);
}
#else
/* The candidates under the registry lock: no cache. */
static size_t ch_lock_compute(uint32_t caps, uint8_t *list)
{
    ch_lock();
    size_t n = compute(ch_g.order, ch_g.n, caps, list);
    ch_unlock();
    return n;
}

void ch_route_default(void)
{
    uint8_t list[CAPHEAP_MAX_HEAPS];
    size_t n = compute(ch_g.order, ch_g.n, MALLOC_CAP_DEFAULT, list); /* under the lock (ch_reindex) */
    for (size_t i = 0; i < n; i++)
        CH_RELEASE(ch_g.dflt[i], ch_g.heaps[list[i]].heap);
    CH_STORE(ch_g.dflt[n], NULL); /* lists only grow: no entry past n was ever set */
}

static const ch_route_t *route(uint32_t caps)
{
    ch_route_t *r = slot(caps);
    if (CH_ACQUIRE(r->caps) == caps)
        return r;
    uint8_t list[CAPHEAP_MAX_HEAPS];
    ch_lock();
    size_t n = compute(ch_g.order, ch_g.n, caps, list);
    /* The entry may hold another mask's list that a reader is copying: its
     * count goes odd and its key empty first (ch_candidates re-reads both
     * after the copy), then the list, then the count even again and the new
     * key, with release: a reader that sees the key sees the list. */
    uint32_t seq = r->seq;
    CH_STORE(r->seq, seq + 1u);
    CH_STORE(r->caps, CH_ROUTE_EMPTY);
    CH_FENCE_RELEASE();
    for (size_t i = 0; i < n; i++)
        CH_STORE(r->idx[i], list[i]);
    CH_STORE(r->n, (uint8_t)n);
    CH_RELEASE(r->seq, seq + 2u);
    CH_RELEASE(r->caps, caps);
    ch_unlock();
    return r;
}

size_t ch_candidates(uint32_t caps, uint8_t *list)
{
    const ch_route_t *r = route(caps);
    uint32_t seq = CH_ACQUIRE(r->seq);
    size_t n = CH_LOAD(r->n);
    n = n < CAPHEAP_MAX_HEAPS ? n : CAPHEAP_MAX_HEAPS;
    for (size_t i = 0; i < n; i++)
        list[i] = CH_LOAD(r->idx[i]) % CAPHEAP_MAX_HEAPS;
    /* A refill of the entry for another mask (route()) may have run during
     * the copy: the key is still caps only if it did not. Else the list
     * under the lock, without the cache. The fence keeps the copy before
     * the key's second read; the read is an acquire too: a copy torn by a
     * refill for the same mask (after a registration emptied the entry)
     * may hold the new heap's index, and the refill's release of the key
     * is then what orders the new descriptor's fields before this
     * thread's reads of them. (The fence alone does so in C11, but
     * ThreadSanitizer does not model fences: CI's threads test saw the
     * read of h->all as a race.) On x86 it is a plain load. */
    CH_FENCE_ACQUIRE();
    if (CH_UNLIKELY(CH_ACQUIRE(r->caps) != caps || (seq & 1u) != 0 || CH_LOAD(r->seq) != seq))
        n = ch_lock_compute(caps, list);
    return n;
}
#endif

/* ---- request preparation ---------------------------------------------------- */

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Compile-time checks (C99 has no _Static_assert). */
#define CH_CHECK(name, cond) typedef char ch_check_##name[(cond) ? 1 : -1]

/* The chip's data-cache line in front of the memory caps target: the
 * external one with SPIRAM (bit 10), else the internal one, the byte after
 * it. An index instead of a branch between two loads. */
CH_CHECK(spiram_bit, MALLOC_CAP_SPIRAM == 1u << 10);
CH_CHECK(lines_adjacent, offsetof(capheap_chip_t, cache_line_external) ==
                             offsetof(capheap_chip_t, cache_line_internal) + 1u);
CH_INLINE size_t cache_line(const capheap_chip_t *chip, uint32_t caps)
{
    const unsigned char *lines = (const unsigned char *)chip + offsetof(capheap_chip_t, cache_line_internal);
    return lines[(caps >> 10) & 1u];
}

/* SPIRAM drops DMA (bit 10 shifted onto bit 3, without a branch). */
CH_CHECK(spiram_dma, MALLOC_CAP_SPIRAM >> 7 == MALLOC_CAP_DMA);

/* Descriptor caps add DMA (bits 17 and 18 shifted onto bit 3, without a
 * branch: 6 bytes less on RV32IMC). */
CH_CHECK(ahb_dma, MALLOC_CAP_DMA_DESC_AHB >> 14 == MALLOC_CAP_DMA);
CH_CHECK(axi_dma, MALLOC_CAP_DMA_DESC_AXI >> 15 == MALLOC_CAP_DMA);

/* DESC_AXI and SIMD tested as the top bit of the caps shifted left: RV32IMC
 * then builds no mask (lui + and, 4 bytes each); Cortex-M4 tests so anyway. */
CH_CHECK(axi_bit, MALLOC_CAP_DMA_DESC_AXI << 13 == 1u << 31);
CH_CHECK(simd_bit, MALLOC_CAP_SIMD << 11 == 1u << 31);

/* Spec 2.6 steps 1-4, with the hardware step of chips.md 0.3, into *q (its
 * fields are stored as they become final, so each refusal only returns). */
static void prepare(request_t *q, size_t size, size_t align, uint32_t caps)
{
    const capheap_chip_t *chip = ch_g.chip;
    q->size = size;
    q->align = align;
    q->round = 0;
    q->caps = caps;
    q->bad = CAPHEAP_FIT_ZERO_SIZE;
    if (size == 0)
        return;
    q->bad = CAPHEAP_FIT_BAD_ALIGNMENT;
    if (align & (align - 1u))
        return;
    q->bad = CAPHEAP_FIT_TOO_LARGE;
    uint32_t hw = caps & CH_HW_CAPS;
    /* The caps changes apply with a chip or without: descriptors become DMA,
     * SPIRAM drops DMA (after that: SPIRAM with a descriptor cap drops it too). */
    caps |= (caps >> 14 | caps >> 15) & MALLOC_CAP_DMA; /* ahb_dma, axi_dma */
    caps &= ~(MALLOC_CAP_DMA_DESC_AHB | MALLOC_CAP_DMA_DESC_AXI | MALLOC_CAP_CACHE_ALIGNED);
    caps &= ~((caps >> 7) & MALLOC_CAP_DMA); /* spiram_dma */
    if (hw != 0 && chip != NULL) {
        /* chips.md 0.3: any of these caps aligns to the cache line in front of
         * the memory the request targets (external with SPIRAM, else internal). */
        size_t a = max_sz(align, cache_line(chip, caps));
        if (hw << 13 >= 1u << 31) /* DESC_AXI (axi_bit) */
            a = max_sz(a, chip->dma_desc_axi_alignment);
        if (hw << 11 >= 1u << 31) /* SIMD (simd_bit) */
            a = max_sz(a, chip->simd_alignment);
        if (a > 1 && (a & (a - 1u)) == 0) {
            if (size > SIZE_MAX - a)
                return;
            size = (size + a - 1u) & ~(a - 1u);
            align = a;
            q->round = a;
        }
    }
    q->caps = caps;
    q->align = align;
    q->size = size;
    if (size > ch_size_max)
        return;
    q->bad = CAPHEAP_FIT_CONFLICTING_CAPS;
    if (caps & MALLOC_CAP_EXEC) {
        if (!CAPHEAP_EXEC_HEAP || (caps & (MALLOC_CAP_8BIT | MALLOC_CAP_DMA)))
            return;
        caps |= MALLOC_CAP_32BIT;
    }
    if (caps & MALLOC_CAP_32BIT)
        size = (size + 3u) & ~(size_t)3u; /* size <= size_max <= SIZE_MAX / 2 */
    q->caps = caps;
    q->size = size;
    if (caps != 0 && (caps & MALLOC_CAP_INVALID) == 0)
        q->bad = CAPHEAP_FIT_OK;
}

/* The dry run's form (fit.c). The allocation paths call prepare() on their
 * own request: returned by value, the request lives in registers and every
 * refusal needs its own exit (24 bytes more at -Os on Cortex-M4). */
request_t ch_prepare(size_t size, size_t align, uint32_t caps)
{
    request_t q;
    prepare(&q, size, align, caps);
    return q;
}

/* ---- one heap --------------------------------------------------------------- */

#if CAPHEAP_EXEC_HEAP
static inline const ch_alias_t *alias_window(const ch_heap_t *h)
{
    return &ch_g.alias[h->alias - 1u];
}

/* What the window adds to a DRAM address (linear: IRAM - DRAM) or subtracts
 * it from (inverted: their sum). An alignment above the heap's unit survives
 * the alias only if it divides this: alias_alloc() refuses the others, and
 * ch_largest() answers 0 for them. */
static inline uintptr_t alias_base(const ch_alias_t *a)
{
    return a->kind == CAPHEAP_ALIAS_INVERTED ? a->iram_low + a->dram_high : a->iram_low - a->dram_low;
}

/* The EXEC block of spec 2.6's D/IRAM case; NULL if it does not fit or the
 * alignment cannot be met through this alias. */
static void *alias_alloc(const ch_heap_t *h, multi_heap_handle_t mh, size_t size, size_t align)
{
    const ch_alias_t *a = alias_window(h);
    size_t hidden = ch_hidden(h);                 /* the DRAM offset word, padded to the heap alignment */
    size_t unit = h->align;
    size_t need = size + hidden;                   /* size <= SIZE_MAX / 2 */
    size_t cap = (need + unit - 1u) & ~(unit - 1u); /* the block's capacity: need rounded to the heap */
    bool inverted = a->kind == CAPHEAP_ALIAS_INVERTED;
    /* Inverted, the image is a whole number of units (so that lo + hidden
     * keeps the heap's alignment) inside the block: cap bytes. A block's
     * usable size is a multiple of 4 but, above 4-byte alignment, 4 short of
     * a multiple of the unit (its 4-byte header sits in front of aligned
     * data), so ask for unit - 4 bytes more: the whole units in the block
     * then hold cap. (Asked for need alone, a block could be smaller than
     * cap, and the user's bytes reached below the block's start, over its
     * header: fuzz_caps found it with an 8-aligned heap on ESP32's window.) */
    if (inverted)
        need = cap + unit - 4u;
    uintptr_t base = alias_base(a);
    if (align > unit && (base & (align - 1u)) != 0)
        return NULL; /* the alias moves addresses by a non-multiple of the alignment */
    /* The block's image in IRAM starts at lo: linear, the alias of its first
     * word; inverted (words in reverse order), the alias of its last word,
     * base - (d + cap). The user gets lo + hidden; the word before it holds
     * the block's DRAM offset. Aligning lo + hidden is aligning d + hidden
     * (linear) or d + cap - hidden (inverted). */
    uint8_t *d = align > unit ? multi_heap_aligned_alloc_offs(mh, need, align, inverted ? cap - hidden : hidden)
                              : multi_heap_malloc(mh, need);
    if (d == NULL)
        return NULL;
    if (inverted && align <= unit) {
        /* The image covers the whole block, also a tail the engine did not
         * split off: the user may use all of heap_caps_get_allocated_size(),
         * and the block's size alone says where the image starts (alias_user). */
        cap = capheap_heap_allocated_size_in(mh, d) & ~(unit - 1u);
    }
    uintptr_t dv = (uintptr_t)d;
    uintptr_t lo = inverted ? base - (dv + cap) : a->iram_low + (dv - a->dram_low);
    uint32_t off = (uint32_t)(dv - a->dram_low);
    memcpy((void *)(lo + hidden - 4u), &off, sizeof off);
    if (inverted) {
        /* An aligned block's tail past the image: ch_alias_user() tries the
         * larger images' words first, and one may still hold off, written
         * there by an earlier block at d (an audit saw the containing-block
         * size name a pointer the program never got). Those words lie in
         * the block's tail, in front of the image: none may match now. */
        uint32_t no = ~off;
        for (size_t c = capheap_heap_allocated_size_in(mh, d) & ~(unit - 1u); c > cap; c -= unit)
            memcpy((void *)(base - (dv + c) + hidden - 4u), &no, sizeof no);
    }
    return (void *)(lo + hidden);
}

/* The bytes the user owns from the alias pointer user of the EXEC block d
 * (n: multi_heap's usable size): the block less the hidden word, and on an
 * inverted window no more than the image alias_alloc mapped, which ends
 * (cap - hidden) bytes past user: an aligned block may have a tail the engine
 * did not split off beyond it. */
size_t ch_alias_bytes(const ch_heap_t *h, const void *user, const void *d, size_t n)
{
    size_t hidden = ch_hidden(h);
    size_t r = n > hidden ? n - hidden : 0u;
    const ch_alias_t *a = alias_window(h);
    if (a->kind == CAPHEAP_ALIAS_INVERTED) {
        size_t image = (size_t)(a->iram_low + a->dram_high - (uintptr_t)d - (uintptr_t)user); /* cap - hidden */
        r = image < r ? image : r;
    }
    return r;
}

/* The pointer the user holds for the EXEC alias block multi_heap knows as d
 * (usable bytes): alias_alloc's lo + hidden. Linear: by the window's offset.
 * Inverted: the image starts at base - (d + cap) with cap the block's usable
 * size (alias_alloc); an aligned block may have a tail outside the image, so
 * smaller capacities are tried until the hidden word there names d. */
void *ch_alias_user(const ch_heap_t *h, void *d, size_t usable)
{
    const ch_alias_t *a = alias_window(h);
    size_t hidden = ch_hidden(h), unit = h->align;
    uintptr_t dv = (uintptr_t)d;
    if (a->kind != CAPHEAP_ALIAS_INVERTED)
        return (void *)(a->iram_low + (dv - a->dram_low) + hidden);
    uintptr_t base = a->iram_low + a->dram_high;
    for (size_t cap = usable & ~(unit - 1u); cap >= hidden && cap != 0; cap -= unit) {
        void *u = (void *)(base - (dv + cap) + hidden);
        bool alias;
        if (ch_unalias(u, &alias) == d)
            return u;
    }
    return d;
}
#endif

static void *try_heap(ch_heap_t *h, const request_t *q)
{
    void *p;
#if CH_COMPACT
    multi_heap_handle_t mh = CH_LOAD(h->heap); /* candidate_at() saw it published */
#else
    multi_heap_handle_t mh = CH_ACQUIRE(h->heap);
    if (mh == NULL)
        return NULL;
#endif
#if CAPHEAP_EXEC_HEAP
    if (CH_UNLIKELY(h->alias != 0) && (q->caps & MALLOC_CAP_EXEC))
        p = alias_alloc(h, mh, q->size, q->align);
    else
#endif
#if CH_COMPACT
        /* One call: multi_heap_malloc() is the aligned allocation at
         * alignment 1 (in these builds both are the engine's ce_memalign),
         * and ce_memalign takes any alignment up to the heap's (h->align) as
         * 1: only 0 (the heap's own) needs replacing, not a compare with it.
         * Through multi_heap's entry for heaps that exist: no NULL test. */
        p = capheap_heap_aligned_alloc_in(mh, q->size, q->align != 0 ? q->align : 1u);
#else
        if (q->align <= h->align)
        p = multi_heap_malloc(mh, q->size);
    else
        p = multi_heap_aligned_alloc(mh, q->size, q->align);
#endif
    return p;
}

size_t ch_largest(const ch_heap_t *h, size_t alignment, uint32_t caps, size_t round)
{
    multi_heap_handle_t mh = CH_ACQUIRE(h->heap);
    if (mh == NULL)
        return 0;
    size_t a = alignment > h->align ? alignment : h->align;
    size_t r = capheap_heap_largest_request(mh, a);
#if CAPHEAP_EXEC_HEAP
    if (h->alias != 0 && (caps & MALLOC_CAP_EXEC)) {
        /* alias_alloc's request: the hidden word, and on an inverted window
         * whole units of image, unit - 4 bytes short of the block */
        size_t unit = h->align;
        if (a > unit && (alias_base(alias_window(h)) & (a - 1u)) != 0)
            return 0; /* alias_alloc() refuses this alignment */
        if (alias_window(h)->kind == CAPHEAP_ALIAS_INVERTED)
            r = r + 4u >= unit ? (r + 4u - unit) & ~(unit - 1u) : 0;
        r = r > ch_hidden(h) ? r - ch_hidden(h) : 0;
    }
#else
    (void)caps; /* no EXEC heaps, no hidden word */
#endif
    if (round > 1u)
        r &= ~(round - 1u); /* the hardware step rounds sizes up to its alignment */
    return r;
}

/* ---- allocation ---------------------------------------------------------- */

static void *alloc_request(const request_t *q)
{
    if (q->bad != CAPHEAP_FIT_OK)
        return NULL; /* a request that may go on has caps != 0 */
#if CH_COMPACT
    /* compute()'s loops over a copy of the order, each candidate tried as it is found */
    uint8_t order[CAPHEAP_MAX_HEAPS];
    size_t heaps = ch_order(order);
    for (size_t p = 0; p < CH_PRIOS; p++)
        /* a pointer over the copy, not an index (-4/-6 B); no % CAPHEAP_MAX_HEAPS:
         * the copy was taken under the lock, every entry is < ch_g.n (-4/-2 B) */
        for (const uint8_t *k = order; k != order + heaps; k++) {
            ch_heap_t *h = &ch_g.heaps[*k];
            if (candidate_at(h, q->caps, p)) {
                void *r = try_heap(h, q);
                if (r != NULL) {
                    CH_DEBUG_ALLOC(r, q->size, q->caps);
                    return r;
                }
            }
        }
    return NULL;
#else
    uint8_t list[CAPHEAP_MAX_HEAPS];
    size_t n = ch_candidates(q->caps, list);
    for (bool again = true;; again = false) {
        for (size_t i = 0; i < n; i++) {
            ch_heap_t *h = &ch_g.heaps[list[i]];
            if ((h->all & q->caps) != q->caps)
                continue; /* a cached list torn by a concurrent refill */
            void *p = try_heap(h, q);
            if (p != NULL) {
                CH_DEBUG_ALLOC(p, q->size, q->caps);
                return p;
            }
        }
        if (!again)
            return NULL;
        /* A cached list read while a registration emptied and refilled it
         * may miss a heap, so a failure asks again with the list computed
         * under the lock. */
        n = ch_lock_compute(q->caps, list);
    }
#endif
}

ch_failed_hooks_t ch_failed_hooks;

/* A failed allocation (spec 2.8): ESP-IDF's callback, then the extended one.
 * The arguments come in the ESP-IDF hook's order (its call moves none); the
 * result is NULL, so that a caller may end in a tail call. */
static void *failed(size_t size, uint32_t caps, const char *fn, size_t align)
{
    ch_failed_hooks_t *hooks = &ch_failed_hooks;
#if defined(__GNUC__)
    __asm__("" : "+r"(hooks)); /* one address for both loads, kept across the call */
#endif
    esp_alloc_failed_hook_t cb = CH_LOAD(hooks->cb); /* atomic: registered from any thread */
    if (cb != NULL)
        cb(size, caps, fn);
    void (*ext)(size_t, uint32_t, size_t, const char *) = CH_LOAD(hooks->ext);
    if (ext != NULL)
        ext(size, caps, align, fn);
#if CAPHEAP_ABORT_WHEN_ALLOCATION_FAILS
    /* ESP-IDF's 47-character message, built without printf (ISR-safe). */
    char msg[] = "Mem alloc fail. size 0x00000000 caps 0x00000000";
    for (unsigned i = 0; i < 8; i++) {
        msg[30 - i] = "0123456789abcdef"[((uint32_t)size >> (4u * i)) & 0xFu];
        msg[46 - i] = "0123456789abcdef"[(caps >> (4u * i)) & 0xFu];
    }
    capheap_printf("%s\n", msg);
    capheap_port_abort_now(msg);
#endif
    return NULL;
}

/* An allocation that reports its failure as fn (not for size 0 or an
 * alignment that is not a power of two, as ESP-IDF; fn NULL: the caller
 * reports). fn comes first: size, align and caps are then where prepare()
 * takes them. */
static void *alloc_named(const char *fn, size_t size, size_t align, uint32_t caps)
{
    request_t q;
    prepare(&q, size, align, caps);
    void *p = alloc_request(&q);
    if (p != NULL || fn == NULL || q.bad == CAPHEAP_FIT_ZERO_SIZE || q.bad == CAPHEAP_FIT_BAD_ALIGNMENT)
        return p;
    return failed(size, caps, fn, align);
}

static void *alloc_base(size_t size, size_t align, uint32_t caps)
{
    return alloc_named(NULL, size, align, caps);
}

/* Out of line (speed builds): inlined, this one-line tail call reshaped
 * heap_caps_malloc's fast paths (bench_caps_s3: 237.5 -> 240.8 instructions
 * per operation). */
static CH_NOINLINE void *malloc_slow(size_t size, uint32_t caps)
{
    return alloc_named("heap_caps_malloc", size, 0, caps);
}

#if !CH_COMPACT
/* Caps the fast paths take: none of the bits the hardware step, the EXEC
 * and 32BIT rules or the invalid-caps check act on. */
static inline bool plain_caps(uint32_t caps)
{
    return (caps & (CH_HW_CAPS | MALLOC_CAP_EXEC | MALLOC_CAP_32BIT | MALLOC_CAP_INVALID)) == 0 && caps != 0;
}

/* The first heap from l on (a NULL-terminated list) that may serve size
 * (capheap_heap_fit: its lists, read unlocked, hold a block of the size
 * class or above), with that answer in *fit; or the list's end. The heaps
 * passed over certainly cannot serve it now, which is all ESP-IDF's loop
 * would find out by locking them. */
static inline multi_heap_handle_t first_fit(multi_heap_handle_t const **lp, size_t size, uint32_t *fit)
{
    multi_heap_handle_t const *l = *lp;
    multi_heap_handle_t h;
    while ((h = CH_ACQUIRE(*l)) != NULL && (*fit = capheap_heap_fit(h, size)) == 0)
        l++;
    *lp = l;
    return h;
}

/* Each heap from l on (MALLOC_CAP_DEFAULT's list) that may serve size, in
 * order, until one does; NULL if none did. */
static void *alloc_default_from(multi_heap_handle_t const *l, size_t size)
{
    uint32_t fit;
    for (multi_heap_handle_t h; (h = first_fit(&l, size, &fit)) != NULL; l++) {
        CH_MADE(b);
        void *p = CH_MH_MALLOC_FIT(h, size, fit, b);
        if (p != NULL) {
            CH_EVENT_ALLOC(p, size, MALLOC_CAP_DEFAULT);
            return CH_TASK_CHARGE(p, ch_heap_of(h)->index, b);
        }
    }
    return NULL;
}

/* Plain caps (plain_caps(), size > 0): the first candidate that serves size,
 * the heaps that cannot passed over unlocked; NULL if none did (the caller
 * then takes the slow path, which skips nothing, before it gives up). */
static void *alloc_plain(size_t size, uint32_t caps)
{
    if (caps == MALLOC_CAP_DEFAULT)
        return alloc_default_from(ch_g.dflt, size);
    /* A copy of the cached list, whole (ch_candidates checks it against
     * refills): read in place, a refill for another mask sharing the entry
     * could reorder it under the walk, and a request go to a heap of a later
     * priority (a concurrency audit saw 0.01-0.1% of such requests there). */
    uint8_t list[CAPHEAP_MAX_HEAPS];
    size_t n = ch_candidates(caps, list);
    for (size_t i = 0; i < n; i++) {
        unsigned k = list[i];
        ch_heap_t *h = &ch_g.heaps[k];
        multi_heap_handle_t mh = CH_ACQUIRE(h->heap);
        if (CH_UNLIKELY((h->all & caps) != caps) || mh == NULL)
            continue; /* not for these caps (defensive: the copy is whole) */
        uint32_t fit = capheap_heap_fit(mh, size);
        if (fit == 0)
            continue; /* it cannot serve size now */
        CH_MADE(b);
        void *p = CH_MH_MALLOC_FIT(mh, size, fit, b);
        if (CH_LIKELY(p != NULL)) {
            CH_EVENT_ALLOC(p, size, caps);
            return CH_TASK_CHARGE(p, k, b);
        }
    }
    return NULL;
}

/* heap_caps_malloc(size, MALLOC_CAP_DEFAULT) after its first choice failed
 * (its size class held only smaller blocks; 0.2% of W1-lite's mallocs on
 * S3): the whole list again, which asks that heap a second time (in vain,
 * unless another thread freed there meanwhile), then the slow path. */
static CH_NOINLINE void *malloc_default_again(size_t size)
{
    void *p = alloc_default_from(ch_g.dflt, size);
    return p != NULL ? p : malloc_slow(size, MALLOC_CAP_DEFAULT);
}

/* heap_caps_malloc(size, MALLOC_CAP_DEFAULT), the commonest call: the first
 * heap that may serve size is asked, and only size lives across that call
 * (one saved register); the rest is malloc_default_again's. */
static inline void *malloc_default(size_t size)
{
    multi_heap_handle_t const *l = ch_g.dflt;
    uint32_t fit;
    multi_heap_handle_t h = first_fit(&l, size, &fit);
    if (CH_UNLIKELY(h == NULL))
        return malloc_slow(size, MALLOC_CAP_DEFAULT);
    CH_MADE(b);
    void *p = CH_MH_MALLOC_FIT(h, size, fit, b);
    if (CH_UNLIKELY(p == NULL))
        return malloc_default_again(size);
    CH_EVENT_ALLOC(p, size, MALLOC_CAP_DEFAULT);
    return CH_TASK_CHARGE(p, ch_heap_of(h)->index, b);
}

/* Other plain caps: the cached candidate list, then the slow path. */
static CH_NOINLINE void *malloc_routed(size_t size, uint32_t caps)
{
    void *p = alloc_plain(size, caps);
    return p != NULL ? p : malloc_slow(size, caps);
}
#endif

void *heap_caps_malloc(size_t size, uint32_t caps)
{
#if !CH_COMPACT
    /* Fast paths: caps that need no adjustment, heaps that cannot serve the
     * request skipped without their lock. A request that every candidate
     * refuses goes the slow way (no skipping) before it fails: a heap
     * skipped while another thread was changing it is asked again. */
    if (CH_LIKELY(size - 1u < ch_size_max)) { /* HEAP_SIZE_MAX bounds heaps added at run time too */
        if (CH_LIKELY(caps == MALLOC_CAP_DEFAULT))
            return malloc_default(size);
        if (plain_caps(caps))
            return malloc_routed(size, caps);
    }
#endif
    return malloc_slow(size, caps);
}

void *heap_caps_aligned_alloc(size_t alignment, size_t size, uint32_t caps)
{
    if (alignment == 0)
        return NULL; /* the rest of ESP-IDF's silent refusals: alloc_named */
    return alloc_named("heap_caps_aligned_alloc", size, alignment, caps);
}

void heap_caps_aligned_free(void *ptr)
{
    heap_caps_free(ptr);
}

static bool mul_overflows(size_t n, size_t size, size_t *product)
{
    *product = n * size;
    return size != 0 && n > SIZE_MAX / size;
}

/* The calloc family's zeroing of the n bytes at p, served for caps (p may
 * be NULL). A request with MALLOC_CAP_32BIT (EXEC implies it) may be served
 * by memory that faults on byte stores (the ESP32's IRAM: LoadStoreError),
 * and memset may store a tail, or all of it, a byte at a time: prepare()
 * rounded its size up to 4, so such a block is zeroed a whole word at a
 * time (docs/compat.md 45). */
static void *zeroed(void *p, size_t n, uint32_t caps)
{
    if (p == NULL)
        return NULL;
    if (caps & (MALLOC_CAP_32BIT | MALLOC_CAP_EXEC)) {
        volatile uint32_t *w = p; /* volatile: word stores, no memset call */
        for (size_t i = 0; i < n; i += 4u)
            *w++ = 0;
    } else {
        memset(p, 0, n);
    }
    return p;
}

void *heap_caps_calloc(size_t n, size_t size, uint32_t caps)
{
    size_t total;
    if (mul_overflows(n, size, &total)) {
        failed(SIZE_MAX, caps, "heap_caps_calloc", 0);
        return NULL;
    }
    return zeroed(alloc_named("heap_caps_calloc", total, 0, caps), total, caps);
}

void *heap_caps_aligned_calloc(size_t alignment, size_t n, size_t size, uint32_t caps)
{
    size_t total;
    if (mul_overflows(n, size, &total))
        return NULL;
    return zeroed(heap_caps_aligned_alloc(alignment, total, caps), total, caps);
}

/* ---- free, realloc, sizes ---------------------------------------------------- */

/* multi_heap's realloc of the block p of heap h, and multi_heap's locked
 * halves of realloc and free (h has a lock, p is not NULL),
 * with task tracking told: the old block's owner word and size come back
 * from under the heap's lock (debug_hooks.h). */
#if CAPHEAP_TASK_TRACKING
static inline void *realloc_in(const ch_heap_t *h, void *p, size_t size)
{
    uint32_t own = ch_task_owner();
    size_t usable;
    capheap_owned_t old;
    void *q = capheap_heap_realloc_owned(h->heap, p, size, own, &usable, &old);
    if (q != NULL)
        ch_task_realloc(q, old.owner, old.usable, own, usable, h->index);
    return q;
}
#define realloc_in_locked realloc_in

#if !CH_COMPACT /* the free fast path's, which compact builds do not have */
static inline void free_in_locked(const ch_heap_t *h, void *p)
{
    capheap_owned_t o = capheap_heap_free_owned(h->heap, p);
    ch_task_credit(o.owner, o.usable, h->index);
}
#endif
#else
#define realloc_in(h, p, size) capheap_heap_realloc_locked((h)->heap, (p), (size))
#define realloc_in_locked realloc_in
#define free_in_locked(h, p) capheap_heap_free_locked((h)->heap, (p))
#endif
/* multi_heap_free() less its tests for NULL (the slow path: task tracking
 * hears of the free through CH_DEBUG_FREE). */
#define free_in(h, p) capheap_heap_free_locked((h)->heap, (p))

#if CAPHEAP_EXEC_HEAP
void *ch_alias_direct(void *p, bool *was_alias)
{
    *was_alias = false;
    uintptr_t v = (uintptr_t)p;
    for (size_t k = 0; k < 2; k++) {
        const ch_alias_t *a = &ch_g.alias[k];
        if (a->kind != CAPHEAP_ALIAS_NONE && v >= a->iram_low && v < a->iram_high) {
            *was_alias = true;
            if (a->kind == CAPHEAP_ALIAS_LINEAR)
                return (void *)(a->dram_low + (v - a->iram_low));
            uintptr_t w = v & ~(uintptr_t)3u; /* inverted: words in reverse order, bytes in order */
            return (void *)(a->dram_low + (a->iram_high - w) - 4u + (v & 3u));
        }
    }
    return p;
}

void *ch_unalias(void *p, bool *was_alias)
{
    *was_alias = false;
    uintptr_t v = (uintptr_t)p;
    for (size_t k = 0; k < 2; k++) {
        const ch_alias_t *a = &ch_g.alias[k];
        if (a->kind != CAPHEAP_ALIAS_NONE && v >= a->iram_low + 4u && v < a->iram_high) {
            uint32_t off;
            memcpy(&off, (const void *)(v - 4u), sizeof off);
            *was_alias = true;
            return (void *)(a->dram_low + off);
        }
    }
    return p;
}
#endif

void ch_report_fatal(const char *what, const void *p, uint32_t found)
{
    capheap_report_t r = {what, p, 0, found, 0};
    capheap_report_corruption(&r, true, true);
}

/* ESP-IDF's words for free(); one text for every entry point keeps it small. */
#define CH_FOREIGN "target pointer is outside heap areas"

/* The heap of the (DRAM) pointer p, or report. */
static ch_heap_t *owner_of(void *p)
{
    ch_heap_t *h = ch_find((uintptr_t)p);
    if (CH_UNLIKELY(h == NULL))
        ch_report_fatal(CH_FOREIGN, p, 0);
    return h;
}

/* The heap of a pointer the user got from us (alias translated), or report. */
CH_INLINE ch_heap_t *owner(void **ptr, bool *alias)
{
    *alias = false;
#if CAPHEAP_EXEC_HEAP
    if (CH_UNLIKELY(CH_LOAD(ch_g.alias_any)))
        *ptr = ch_unalias(*ptr, alias);
#endif
    return owner_of(*ptr);
}

/* heap_caps_free in full: behind the fast path in speed builds,
 * heap_caps_free itself in compact ones. */
#if CH_COMPACT
#define free_slow heap_caps_free
void free_slow(void *ptr)
#else
static CH_NOINLINE void free_slow(void *ptr)
#endif
{
    if (ptr == NULL)
        return;
    bool alias;
    void *user = ptr;
    ch_heap_t *h = owner(&ptr, &alias);
    if (h != NULL) {
        CH_DEBUG_FREE(user); /* before the block can be reused (spec 4.1: ESP-IDF records first) */
        free_in(h, ptr);
        CH_FREE_DONE();
    }
}

#if !CH_COMPACT
void heap_caps_free(void *ptr)
{
    /* Fast path: the pointer's page is in free()'s cache (NULL and IRAM alias
     * pointers never are: their pages are in no heap, or in a heap at address
     * 0, which is never cached). */
    ch_heap_t *h = ch_cached((uintptr_t)ptr);
    if (CH_LIKELY(h != NULL)) {
        CH_EVENT_FREE(ptr); /* reported before the block can be reused */
        free_in_locked(h, ptr);
        CH_FREE_DONE();
        return;
    }
    free_slow(ptr);
}
#endif

size_t heap_caps_get_allocated_size(void *ptr)
{
    if (ptr == NULL)
        return 0;
    const void *user = ptr;
    bool alias;
    ch_heap_t *h = owner(&ptr, &alias);
    if (h == NULL)
        return 0;
    size_t n = capheap_heap_allocated_size_in(h->heap, ptr);
#if CAPHEAP_EXEC_HEAP
    if (alias)
        return ch_alias_bytes(h, user, ptr, n);
#else
    (void)user;
#endif
    return n;
}

#if CAPHEAP_EXEC_HEAP
/* Copy n bytes out of the EXEC block at the IRAM alias src with 32-bit
 * loads only: instruction RAM faults on byte loads (ESP32: LoadStoreError),
 * and memcpy may read a tail, or all of it, a byte at a time. src is
 * word-aligned and the block's bytes are a multiple of 4 (EXEC implies
 * 32BIT), so the last word read lies inside it; dst gets exactly n bytes
 * (it may be a smaller request, with a poisoning canary right after). */
static void copy_from_iram(void *dst, const void *src, size_t n)
{
    const volatile uint32_t *s = src; /* volatile: no byte loads, no memcpy call */
    unsigned char *d = dst;
    for (; n >= 4u; n -= 4u, d += 4) {
        uint32_t w = *s++;
        memcpy(d, &w, 4u);
    }
    if (n != 0) {
        uint32_t w = *s;
        memcpy(d, &w, n);
    }
}
#endif

/* realloc with caps: in place (or moved inside ptr's heap) when that heap
 * has the caps, else a new block from the caps' heaps, copied, and the old freed. */
static void *realloc_base(void *ptr, size_t size, uint32_t caps)
{
    /* ptr is checked before any answer and before a new block exists: a
     * pointer in no heap (owner) or not a block's (multi_heap_realloc in
     * place, else the size query) is reported, also when the request cannot
     * be served (caps no heap has, too large: ESP-IDF returns NULL for those
     * without looking at ptr's block), and a rejected pointer leaves no new
     * block behind when the abort handler returns by longjmp. */
    void *user = ptr;
    bool alias;
    ch_heap_t *h = owner(&ptr, &alias);
    if (h == NULL)
        return NULL;
    request_t q;
    prepare(&q, size, 0, caps);
    bool stay = !alias; /* an alias block moves (spec 2.7) */
#if CAPHEAP_EXEC_HEAP
    /* An EXEC request from a D/IRAM heap is served through the IRAM alias,
     * as malloc serves it: a block given out on the DRAM side moves too
     * (ESP-IDF resized it in place and returned a DRAM address, which does
     * not execute; an audit found it, docs/compat.md 26). */
    if (h->alias != 0 && (q.caps & MALLOC_CAP_EXEC))
        stay = false;
#endif
    if (q.bad == CAPHEAP_FIT_OK && stay && q.align <= h->align && (h->all & q.caps) == q.caps) {
        CH_REALLOC_BEGIN(tok, user);
        void *p = realloc_in(h, ptr, q.size);
        if (p != NULL) {
            CH_EVENT_REALLOC(user, tok, p, q.size, q.caps);
            return p;
        }
        CH_EVENT_REALLOC_CANCEL(tok);
    }
    size_t old = capheap_heap_allocated_size_in(h->heap, ptr); /* before a new block exists */
    CH_MOVE_BEGIN(mtok, user); /* a full LEAKS trace then frees user's record first */
    void *p = alloc_request(&q); /* NULL for a request that may not go on */
    if (p == NULL) {
        CH_MOVE_END(mtok, user);
        return NULL;
    }
    size_t n = old < size ? old : size;
#if CAPHEAP_EXEC_HEAP
    if (alias) {
        n = ch_alias_bytes(h, user, ptr, old);
        copy_from_iram(p, user, n < size ? n : size);
    } else
#endif
        memcpy(p, user, n);
    heap_caps_free(user);
    CH_MOVE_END(mtok, user);
    return p;
}

#if !CH_COMPACT
static void *realloc_slow(void *ptr, size_t size, uint32_t caps);

/* The fast path's move: ptr's heap (plain pointer, no alias: its page was
 * cached) could neither resize nor move the block inside itself. What
 * realloc_base does after its in-place step, without the request
 * preparation (plain caps need none), heaps that cannot serve skipped
 * unlocked. The heap is looked up again (ch_find: the page cache, as a
 * rule), so that only three values live across the fast path's call. */
static CH_NOINLINE void *realloc_out(void *ptr, size_t size, uint32_t caps)
{
    ch_heap_t *h = ch_find((uintptr_t)ptr);
    if (CH_UNLIKELY(h == NULL))
        return realloc_slow(ptr, size, caps); /* not reached: heaps are never removed */
    CH_MOVE_BEGIN(mtok, ptr); /* a full LEAKS trace then frees ptr's record first */
    void *p = alloc_plain(size, caps);
    if (p == NULL && (p = alloc_named("heap_caps_realloc", size, 0, caps)) == NULL) {
        CH_MOVE_END(mtok, ptr);
        return NULL;
    }
    CH_EVENT_FREE(ptr); /* heap_caps_free's order: before the block can be reused */
#if CAPHEAP_TASK_TRACKING
    capheap_owned_t o = capheap_heap_move_out(h->heap, ptr, p, size);
    ch_task_credit(o.owner, o.usable, h->index);
#else
    capheap_heap_move_out(h->heap, ptr, p, size);
#endif
    CH_FREE_DONE();
    CH_MOVE_END(mtok, ptr);
    return p;
}
#endif

/* heap_caps_realloc in full (spec 2.6): behind the fast path in speed
 * builds, heap_caps_realloc itself in compact ones. */
#if CH_COMPACT
#define realloc_slow heap_caps_realloc
void *realloc_slow(void *ptr, size_t size, uint32_t caps)
#else
static CH_NOINLINE void *realloc_slow(void *ptr, size_t size, uint32_t caps)
#endif
{
    if (ptr == NULL)
        return alloc_named("heap_caps_realloc", size, 0, caps);
    if (size == 0) {
        heap_caps_free(ptr);
        return NULL;
    }
    void *p = realloc_base(ptr, size, caps);
    return p != NULL ? p : failed(size, caps, "heap_caps_realloc", 0);
}

#if !CH_COMPACT
void *heap_caps_realloc(void *ptr, size_t size, uint32_t caps)
{
    /* Fast path: plain caps, the block's page in free()'s cache, its heap has
     * the caps: multi_heap's realloc (in place, or moved within the heap). */
    if (CH_LIKELY(plain_caps(caps) && size - 1u < ch_size_max)) {
        ch_heap_t *h = ch_cached((uintptr_t)ptr);
        if (CH_LIKELY(h != NULL && (h->all & caps) == caps)) {
            CH_REALLOC_BEGIN(tok, ptr);
            void *p = realloc_in_locked(h, ptr, size);
            if (CH_UNLIKELY(p == NULL)) {
                CH_EVENT_REALLOC_CANCEL(tok);
                return realloc_out(ptr, size, caps);
            }
            CH_EVENT_REALLOC(ptr, tok, p, size, caps);
            return p;
        }
    }
    return realloc_slow(ptr, size, caps);
}
#endif

/* ---- prefer variants -------------------------------------------------------- */

void *heap_caps_malloc_prefer(size_t size, size_t num, ...)
{
    va_list ap;
    va_start(ap, num);
    uint32_t caps = MALLOC_CAP_DEFAULT;
    void *p = NULL;
    size_t align = num == 0 ? CH_NO_CAPS_GIVEN : 0;
    while (num-- > 0 && p == NULL && size != 0) {
        caps = va_arg(ap, uint32_t);
        p = alloc_base(size, 0, caps);
    }
    va_end(ap);
    if (p == NULL && size != 0)
        failed(size, caps, "heap_caps_malloc_prefer", align);
    return p;
}

void *heap_caps_realloc_prefer(void *ptr, size_t size, size_t num, ...)
{
    /* Size 0 frees in the first round, as ESP-IDF's loop does; with num 0
     * there is no round: NULL, ptr still the caller's, no callback. */
    if (ptr != NULL && size == 0 && num != 0) {
        heap_caps_free(ptr);
        return NULL;
    }
    va_list ap;
    va_start(ap, num);
    uint32_t caps = MALLOC_CAP_DEFAULT;
    void *p = NULL;
    size_t align = num == 0 ? CH_NO_CAPS_GIVEN : 0;
    while (num-- > 0 && p == NULL) {
        caps = va_arg(ap, uint32_t);
        p = ptr == NULL ? alloc_base(size, 0, caps) : realloc_base(ptr, size, caps);
    }
    va_end(ap);
    if (p == NULL && size != 0)
        failed(size, caps, "heap_caps_realloc_prefer", align);
    return p;
}

void *heap_caps_calloc_prefer(size_t n, size_t size, size_t num, ...)
{
    size_t total;
    bool overflows = mul_overflows(n, size, &total);
    if (total == 0 && !overflows)
        return NULL;
    va_list ap;
    va_start(ap, num);
    uint32_t caps = MALLOC_CAP_DEFAULT;
    void *p = NULL;
    size_t align = num == 0 ? CH_NO_CAPS_GIVEN : 0;
    /* An overflowing product tries nothing, but the report names the last
     * caps, as ESP-IDF's loop (each of its tries fails) does. */
    while (num-- > 0 && p == NULL) {
        caps = va_arg(ap, uint32_t);
        if (!overflows)
            p = alloc_base(total, 0, caps);
    }
    va_end(ap);
    if (p == NULL)
        failed(overflows ? SIZE_MAX : total, caps, "heap_caps_calloc_prefer", align);
    return zeroed(p, total, caps); /* caps: the ones that served */
}

/* ---- the libc policy ------------------------------------------------------------- */

#define CH_INTERNAL (MALLOC_CAP_DEFAULT | MALLOC_CAP_INTERNAL)
#define CH_EXTERNAL (MALLOC_CAP_DEFAULT | MALLOC_CAP_SPIRAM)

/* The policy is set from one thread while others allocate: the limit is
 * stored before the switch (release), and read after it (acquire). */
void heap_caps_malloc_extmem_enable(size_t limit)
{
    CH_STORE(extmem_limit, limit);
    CH_RELEASE(extmem_on, true);
}

void capheap_malloc_extmem_disable(void)
{
    CH_STORE(extmem_on, false);
}

void *heap_caps_malloc_default(size_t size)
{
    if (!CH_ACQUIRE(extmem_on))
        return heap_caps_malloc(size, CH_INTERNAL);
    void *p = alloc_base(size, 0, size <= CH_LOAD(extmem_limit) ? CH_INTERNAL : CH_EXTERNAL);
    if (p == NULL)
        p = alloc_base(size, 0, MALLOC_CAP_DEFAULT);
    if (p == NULL && size != 0)
        failed(size, MALLOC_CAP_DEFAULT, "heap_caps_malloc_default", 0);
    return p;
}

void *heap_caps_realloc_default(void *ptr, size_t size)
{
    if (!CH_ACQUIRE(extmem_on))
        return heap_caps_realloc(ptr, size, CH_INTERNAL);
    if (size == 0) {
        heap_caps_free(ptr);
        return NULL;
    }
    /* ESP-IDF's two tries (realloc_base, which allocates for ptr NULL), and
     * its failure report under this function's name either way */
    uint32_t caps = size <= CH_LOAD(extmem_limit) ? CH_INTERNAL : CH_EXTERNAL;
    void *p = NULL;
    for (int i = 0; i < 2 && p == NULL; i++, caps = MALLOC_CAP_DEFAULT)
        p = ptr == NULL ? alloc_base(size, 0, caps) : realloc_base(ptr, size, caps);
    if (p == NULL)
        failed(size, MALLOC_CAP_DEFAULT, "heap_caps_realloc_default", 0);
    return p;
}

void *heap_caps_aligned_alloc_default(size_t alignment, size_t size)
{
    if (!CH_ACQUIRE(extmem_on))
        return heap_caps_aligned_alloc(alignment, size, CH_INTERNAL);
    if (alignment == 0 || (alignment & (alignment - 1u)) != 0 || size == 0)
        return NULL;
    void *p = alloc_base(size, alignment, size <= CH_LOAD(extmem_limit) ? CH_INTERNAL : CH_EXTERNAL);
    if (p == NULL)
        p = alloc_base(size, alignment, MALLOC_CAP_DEFAULT);
    if (p == NULL)
        failed(size, MALLOC_CAP_DEFAULT, "heap_caps_aligned_alloc_default", alignment);
    return p;
}

/* ---- callbacks -------------------------------------------------------------- */

esp_err_t heap_caps_register_failed_alloc_callback(esp_alloc_failed_hook_t callback)
{
    CH_STORE(ch_failed_hooks.cb, callback);
    return ESP_OK;
}
