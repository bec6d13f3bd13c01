/*
 * tlsf.h - private interface of capheap's engine: one region, O(1) good-fit
 * allocation (two-level segregated fit), 32-bit metadata on every build.
 *
 * The engine knows nothing above it: it never locks, prints or calls the OS.
 * It validates what it is given and returns a fault code (for a rejected
 * pointer, with the numbers of the report: the report's struct is its output
 * format, nothing more); the layer above (src/heap/multi_heap.c) names the
 * fault and makes the report. Block layout, the invariants I1..I12 and the
 * complexity bounds are in docs/design.md and in the essay at the top of
 * tlsf.c.
 */
#ifndef CAPHEAP_CORE_TLSF_H
#define CAPHEAP_CORE_TLSF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "capheap/config.h"
#include "capheap/report.h" /* capheap_report_t: ce_diagnose() fills its numbers */

/* Comprehensive poisoning keeps the interior of every free block filled. */
#if CAPHEAP_POISONING_COMPREHENSIVE
#define CE_FREE_FILL 1
#else
#define CE_FREE_FILL 0
#endif
#define CE_FILL_FREE_BYTE 0xFEu

/* Layout facts are compile-time checks, in C11 and in C99. */
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define CE_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#else
#define CE_STATIC_ASSERT_CAT2(a, b) a##b
#define CE_STATIC_ASSERT_CAT(a, b) CE_STATIC_ASSERT_CAT2(a, b)
#define CE_STATIC_ASSERT(cond, msg) \
    typedef char CE_STATIC_ASSERT_CAT(ce_static_assert_, __LINE__)[(cond) ? 1 : -1]
#endif

#define CE_HDR 4u        /* bytes of the header word in front of every block's data */
#define CE_MIN_BLOCK 16u /* header + next link + prev link + footer */
#define CE_SL_LOG2 4u    /* 16 second-level lists per first-level class */
#define CE_SL_COUNT (1u << CE_SL_LOG2)
#define CE_ROW_WORDS (1u + CE_SL_COUNT) /* control bytes per first-level class (see tlsf.c) */
#define CE_PAIR_WORDS (1u + 2u * CE_SL_COUNT) /* per pair of first-level classes: bitmap, 32 list heads */

/* The engine's control structure; it sits at the start of the region. */
typedef struct ce_heap {
    /* For the layer above (multi_heap keeps its lock pointer here): 8 bytes on
     * every build, so offsets are identical on 32- and 64-bit, but only
     * 4-aligned like the rest (a region may start at any 4-aligned address).
     * Read and write it with ce_owner() / ce_set_owner(). */
    uint32_t owner[2];
    uint32_t magic;       /* CE_MAGIC | align_mask << 24 while the heap is alive */
    uint32_t first;       /* offset of the first block's header */
    uint32_t end;         /* offset of the end marker: a header that reads "used, 16 bytes" */
    uint32_t free_bytes;  /* sum of the sizes of all free blocks (I7) */
    uint32_t min_free;    /* lowest free_bytes since registration or reset */
    uint32_t max_request; /* capacity of the whole pool as one block: no larger request can succeed */
    uint32_t data_span;   /* end - first - 16: data pointers lie in [first + 4, first + 4 + data_span] */
    uint32_t region_bytes; /* the size registered */
    uint8_t align_mask;   /* minimum block alignment - 1: 3, 7 or 15 */
    uint8_t fl_count;     /* first-level classes in use */
    uint16_t check_token; /* incremental check (docs/checks.md): the token of the last check step,
                           * 0 after any change made under the heap's lock */
    uint32_t pair_bitmap; /* bit k set iff pair k (classes 32k .. 32k + 31) has a non-empty list */
    uint32_t rows[];      /* pairs of CE_PAIR_WORDS, then one zero word (see tlsf.c) */
} ce_heap_t;

/* The magic word: CE_MAGIC in its low 24 bits, align_mask in its top byte (a
 * copy the check compares, I12). */
#define CE_MAGIC 0xCA9EA9u
#define CE_MAGIC_MASK 0xFFFFFFu

/* The owner slot holds a pointer. Where a pointer is one 32-bit word it is
 * owner[0] (a plain load: some -Os targets would call memcpy); else memcpy
 * keeps the access aligned-agnostic (it compiles to one load or store). */
static inline void *ce_owner(const ce_heap_t *h)
{
#if UINTPTR_MAX == UINT32_MAX
    return (void *)(uintptr_t)h->owner[0];
#else
    void *p;
    memcpy(&p, h->owner, sizeof p);
    return p;
#endif
}

static inline void ce_set_owner(ce_heap_t *h, void *p)
{
#if UINTPTR_MAX == UINT32_MAX
    h->owner[0] = (uint32_t)(uintptr_t)p;
#else
    memcpy(h->owner, &p, sizeof p);
#endif
}

/* Region bytes never allocatable (control, end marker, padding). */
static inline uint32_t ce_overhead(const ce_heap_t *h)
{
    return h->region_bytes - (h->end - h->first);
}

#if defined(__GNUC__)
#define CE_LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define CE_LIKELY(x) (x)
#endif

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CE_TSAN_CLANG 1
#endif
#endif
#ifndef CE_TSAN_CLANG
#define CE_TSAN_CLANG 0
#endif

/*
 * The class bitmaps (pair_bitmap and each pair's word) are the one piece of
 * engine state read without the heap's lock: ce_fit() (tlsf_ops.h), which
 * lets heap_caps skip a heap that cannot serve a request without locking it. In
 * speed builds they are written with relaxed atomic stores (plain stores on
 * every target this runs on; the read-modify-write around them stays under
 * the lock), so that read is not a data race in C11 terms, and
 * ThreadSanitizer agrees. Size-optimised builds have no such reader (their
 * heap_caps locks every heap it asks): ce_fit() does not exist there and
 * the writes stay plain.
 */
#if defined(__GNUC__)
#define CE_BM_LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define CE_BM_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#else
#define CE_BM_LOAD(x) (x)
#define CE_BM_STORE(x, v) ((x) = (v))
#endif

/* *w |= v, and *w &= v telling whether *w is now 0. */
#if defined(__OPTIMIZE_SIZE__)
static inline void ce_bm_or(uint32_t *w, uint32_t v)
{
    *w |= v;
}

static inline bool ce_bm_and(uint32_t *w, uint32_t v)
{
    return (*w &= v) == 0;
}
#elif defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(__SANITIZE_THREAD__) && \
    !CE_TSAN_CLANG
/* A plain load and a relaxed atomic store (the lock orders the writers): on
 * x86 one non-locked "or"/"and" to memory is exactly that (its load and its
 * store are each single-copy atomic), in one instruction where GCC, which
 * never fuses atomics, emits three (+2 instructions per operation on W1).
 * ThreadSanitizer builds keep the C form below, which it can see. */
static inline void ce_bm_or(uint32_t *w, uint32_t v)
{
    __asm__("orl %1, %0" : "+m"(*w) : "ri"(v));
}

static inline bool ce_bm_and(uint32_t *w, uint32_t v)
{
    bool zero;
    __asm__("andl %2, %0" : "+m"(*w), "=@ccz"(zero) : "ri"(v));
    return zero;
}
#else
static inline void ce_bm_or(uint32_t *w, uint32_t v)
{
    CE_BM_STORE(*w, *w | v);
}

static inline bool ce_bm_and(uint32_t *w, uint32_t v)
{
    uint32_t m = *w & v;
    CE_BM_STORE(*w, m);
    return m == 0;
}
#endif

/* Index of the highest set bit of x (x != 0). */
static inline uint32_t ce_fls32(uint32_t x)
{
#if defined(__GNUC__)
    return (uint32_t)__builtin_clz(x) ^ 31u; /* one bsr on x86 */
#else
    uint32_t r = 0;
    if (x & 0xFFFF0000u) { x >>= 16; r += 16; }
    if (x & 0xFF00u) { x >>= 8; r += 8; }
    if (x & 0xF0u) { x >>= 4; r += 4; }
    if (x & 0xCu) { x >>= 2; r += 2; }
    if (x & 0x2u) { r += 1; }
    return r;
#endif
}

/* The class a free block of s bytes is filed under (the floor class), as
 * c = 16 * fl + sl: fl = highest bit - 5, sl the next 4 bits; sizes below 64
 * are class s / 4. Branch-free: with f = fls(s | 64) (at least 6) the same
 * formula covers both ranges. */
static inline size_t ce_class_scan(uint32_t s)
{
    size_t f = ce_fls32(s | (CE_SL_COUNT << 2));
    return (f << CE_SL_LOG2) + ((size_t)s >> (f - CE_SL_LOG2)) - ((CE_SL_LOG2 + 2u) << CE_SL_LOG2);
}

/* The class a free block of size s is filed under (ce_class_scan). */
#if !defined(__OPTIMIZE_SIZE__)
/* Sizes below 1024 (95% of them in typical use) look their class up by
 * s / 4: c = s / 4 below 128, then 16 lists per doubling. One load instead of
 * a bit scan and two shifts; not when optimising for size. */
#define CE_LUT_LIMIT 1024u
#define CE_LUT_C(i) ((i) < 32 ? (i) : (i) < 64 ? 16 + (i) / 2 : (i) < 128 ? 32 + (i) / 4 : 48 + (i) / 8)
#define CE_LUT_4(i) CE_LUT_C(i), CE_LUT_C((i) + 1), CE_LUT_C((i) + 2), CE_LUT_C((i) + 3)
#define CE_LUT_16(i) CE_LUT_4(i), CE_LUT_4((i) + 4), CE_LUT_4((i) + 8), CE_LUT_4((i) + 12)
#define CE_LUT_64(i) CE_LUT_16(i), CE_LUT_16((i) + 16), CE_LUT_16((i) + 32), CE_LUT_16((i) + 48)
#endif

#if defined(__GNUC__) && !defined(__OPTIMIZE_SIZE__)
__attribute__((always_inline)) /* like the engine's other O(1) steps (tlsf_ops.h) */
#endif
static inline size_t ce_class_of(uint32_t s)
{
#if defined(CE_LUT_LIMIT)
    static const uint8_t small[CE_LUT_LIMIT / 4u] = {CE_LUT_64(0), CE_LUT_64(64), CE_LUT_64(128),
                                                     CE_LUT_64(192)};
    if (CE_LIKELY(s < CE_LUT_LIMIT))
        return small[s >> 2];
#endif
    return ce_class_scan(s);
}

/* Block bytes for a request of size bytes (size - 1 below max_request):
 * capacity rounded to the alignment, plus the header, at least 16. */
#if defined(__GNUC__) && !defined(__OPTIMIZE_SIZE__)
__attribute__((always_inline))
#endif
static inline uint32_t ce_block_for(const ce_heap_t *h, size_t size)
{
    uint32_t a = h->align_mask;
    uint32_t n = ((uint32_t)size + CE_HDR + a) & ~a;
    return n < CE_MIN_BLOCK ? CE_MIN_BLOCK : n;
}

/*
 * ce_malloc() in two halves, for a caller that asks before it locks:
 * heap_caps passes over a heap that cannot serve a request without taking
 * its lock, and the work of that question is the first half of the
 * allocation. ce_fit() reads only max_request and align_mask (fixed at
 * ce_create) and the class bitmaps (relaxed loads: while another thread
 * changes the heap under its lock the answer describes some state of the
 * lists during that change). It returns the block size ce_malloc() would
 * search for, or 0 if ce_malloc() would certainly fail: size 0 or above
 * max_request, or no list at or above the block's own class is non-empty.
 * ce_malloc_fit() (tlsf_ops.h), under the lock, is ce_malloc() from there;
 * it can still fail (the own class may hold only smaller blocks, or another
 * thread took the block in between). O(1), about fifteen instructions.
 * Size-optimised builds have no unlocked reader (their heap_caps locks every
 * heap it asks).
 */
#if !defined(__OPTIMIZE_SIZE__)
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline uint32_t ce_fit(const ce_heap_t *h, size_t size)
{
    if (size - 1u >= h->max_request)
        return 0; /* also keeps the class inside the heap's bitmaps */
    uint32_t n = ce_block_for(h, size);
    size_t c = ce_class_of(n);
    size_t k = c >> 5;
    if (CE_BM_LOAD(h->pair_bitmap) >> k >> 1 == 0 && CE_BM_LOAD(h->rows[k * CE_PAIR_WORDS]) >> (c & 31u) == 0)
        return 0; /* no block in the own pair's classes from c up, nor in a pair above */
    return n;
}
#endif

/* The invariant a rejected pointer's report cites (docs/design.md, I21): a
 * pointer given back is the data pointer of a used block of the heap. */
#define CE_INV_POINTER 21u

/* What a validation found. ce_diagnose() names kinds up to CE_FAULT_BAD_NEIGHBOUR
 * (multi_heap.c has a text for each, in this order); the rest are the check's only. */
typedef enum {
    CE_OK = 0,
    CE_FAULT_OUTSIDE,       /* pointer not inside the heap's pool */
    CE_FAULT_DOUBLE_FREE,   /* the pointer lies in a free block: double free or use after free */
    CE_FAULT_INTERIOR,      /* the pointer lies inside a block, not at the start of its data */
    CE_FAULT_BAD_HEADER,    /* a header the walk cannot pass: smashed */
    CE_FAULT_BAD_NEIGHBOUR, /* a physical neighbour does not round-trip: smashed header nearby */
    CE_FAULT_MISALIGNED     /* the check: a block's data off the heap's alignment (I8) */
} ce_fault_kind_t;

typedef struct {
    ce_fault_kind_t kind;
    const void *address; /* the word that is wrong */
    uint32_t expected;
    uint32_t found;
    unsigned invariant; /* docs/design.md number */
} ce_fault_t;

/* Region bytes ce_create() needs at every 4-aligned start for a heap of
 * alignment align whose pool must hold a block of min_block bytes (a
 * multiple of align, CE_MIN_BLOCK to 48). */
size_t ce_min_region(size_t align, size_t min_block);

/* The same for the start mem (4-aligned; align valid): ce_create(mem, bytes,
 * align) makes a pool that holds a block of min_block bytes iff bytes is at
 * least this. For a layer whose smallest request needs more than CE_MIN_BLOCK. */
size_t ce_region_needed(const void *mem, size_t align, size_t min_block);

/* Build a heap in [mem, mem + bytes). align is 4, 8 or 16; mem 4-aligned. NULL if it cannot hold one block. */
ce_heap_t *ce_create(void *mem, size_t bytes, size_t align);

/* O(1). (result + offset) % align == 0; align a power of two; offset a multiple of 4. */
void *ce_memalign(ce_heap_t *h, size_t size, size_t align, size_t offset);

/* ce_malloc, ce_free, ce_realloc (not when optimising for size), ce_valid and
 * ce_block_capacity are in core/tlsf_ops.h. */

/* Describe why p failed the fast checks (slow path, O(blocks)): returns the
 * kind (CE_OK if nothing is wrong) and fills the numbers of the report the
 * layer above makes (all but what; CE_OK: address p, numbers 0). The
 * pointer kinds (outside, double free, interior) name p, expect the data
 * offset of p's block (outside: the first block's) and found p's offset;
 * the others name the word that is wrong and its contents. */
ce_fault_kind_t ce_diagnose(const ce_heap_t *h, const void *p, capheap_report_t *out);

/* Largest request ce_malloc() satisfies now (0 if none). O(1). */
size_t ce_largest_request(const ce_heap_t *h);

/* Walk blocks in address order: data pointer, capacity, used. Stops when cb returns false.
 * Stops silently at a corrupt header, and walks nothing when the control
 * structure's fixed words disagree (I12; run ce_check to find out). */
typedef bool (*ce_walk_cb)(void *data, size_t capacity, bool used, void *user);
void ce_walk(const ce_heap_t *h, ce_walk_cb cb, void *user);

/* Full validator: every invariant; calls report for each problem found (may be NULL); returns true iff intact.
 * used_cb is called on each used block (for canary checks above); it returns false if the block is bad. */
typedef void (*ce_report_cb)(const ce_fault_t *fault, void *user);
typedef bool (*ce_used_cb)(void *data, size_t capacity, void *user);
bool ce_check(const ce_heap_t *h, ce_report_cb report, ce_used_cb used_cb, void *user);

/*
 * The validator in bounded steps (docs/checks.md). A pass is the walk of
 * ce_check: the blocks in address order, then the pair bitmaps, then every
 * class list, then the totals. The cursor keeps where the pass stopped and
 * what it accumulated; zero it to start a pass. Each call checks at most
 * budget blocks and list entries (and hops over at most
 * CE_CHECK_HOPS_PER_UNIT * budget headers while resynchronising) and reports
 * exactly what ce_check would report for the same stretch, in the same order:
 * a pass over a heap that does not change between steps makes the same
 * reports as one ce_check call. changed says that the heap may have changed
 * since the previous step of this pass; the step then re-finds its place
 * (the walk hops from the first block to the cursor, a list walk restarts
 * its class) and the pass stops comparing its accumulated totals (I6 counts,
 * I7 sum). *done is set when the pass ended (the cursor is then zero again);
 * *units receives the blocks and entries checked. Returns true iff this step
 * found nothing wrong.
 */
#define CE_CHECK_HOPS_PER_UNIT 32u
typedef struct {
    uint32_t phase;      /* 0 start, 1 block walk, 2 pair bitmaps, 3 class lists */
    uint32_t pos;        /* walk: offset of the next block; lists: the class */
    uint32_t skip_to;    /* walk after a change: blocks ending at or before this are hopped over */
    uint32_t entry;      /* lists: next entry of class pos */
    uint32_t prev;       /* lists: the entry before it (0: entry is the head) */
    uint32_t free_sum;   /* walk: sum and count of the free blocks seen (I7, I6) */
    uint32_t free_count;
    uint32_t free_print; /* walk: sum of ce_print() of the free blocks' offsets */
    uint32_t list_print; /* lists: the same over the entries */
    uint32_t listed;     /* lists: entries seen in this pass */
    uint32_t seen_free;  /* the heap's free_bytes after the last step (multi_heap.c's, not the engine's) */
    uint32_t class_listed; /* entries seen in the current class since it (re)started */
    uint8_t prev_free;   /* walk: the block before pos is free */
    uint8_t changed;     /* the heap changed during this pass: totals are not compared */
    uint8_t class_started; /* lists: class pos has had its bitmap check */
    uint8_t class_restarts; /* lists: restarts of class pos after changes */
} ce_check_cursor_t;

bool ce_check_step(const ce_heap_t *h, ce_check_cursor_t *cur, uint32_t budget, bool changed,
                   ce_report_cb report, ce_used_cb used_cb, void *user, bool *done, uint32_t *units);

#endif /* CAPHEAP_CORE_TLSF_H */
