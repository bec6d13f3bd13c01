/*
 * tlsf_ops.h - the engine's O(1) operations (malloc, free, realloc and their
 * list and block helpers), as static inline functions.
 *
 * They live in a header so that the API layer (src/heap/multi_heap.c)
 * compiles each operation straight into its entry point: one call layer less
 * saved about 20 instructions per operation on the W1 benchmark
 * (docs/design.md, "Inline O(1) paths"). tlsf.c holds the rest of the engine (creation, aligned
 * allocation, validation reports, walk and check) and the design essay.
 * Private to src/: include only from src/core and src/heap.
 */
#ifndef CAPHEAP_CORE_TLSF_OPS_H
#define CAPHEAP_CORE_TLSF_OPS_H

#include <string.h>

#include "core/tlsf.h"
#include "debug/sanitize.h"

/* A read of a word a rejected pointer may point at: under ASan it may be
 * poisoned (debug/sanitize.h), and the validation must still see it. */
#if CE_ASAN
#define CE_PEEK(p) san_load32(p)
#else
#define CE_PEEK(p) (*(p))
#endif

#define F_FREE 1u
#define F_PREV_FREE 2u
#define F_MASK 3u

/* Size classes are numbered linearly, c = 16 * fl + sl. Two first-level
 * classes share a pair of CE_PAIR_WORDS words: [bitmap | 32 list heads]; bit
 * (c & 31) of the bitmap of pair c >> 5 is set iff list c is non-empty. */
#define PAIR_BITMAP(h, k) ((h)->rows[(size_t)(k) * CE_PAIR_WORDS])
#define HEAD(h, c) ((h)->rows[(size_t)(c) + ((size_t)(c) >> 5) + 1u])
#define CONTROL_FIXED ((uint32_t)sizeof(ce_heap_t))

/* The O(1) paths are inlined into the API entry points, except when
 * optimising for size, where the compiler chooses. */
#if defined(__GNUC__) && !defined(__OPTIMIZE_SIZE__)
#define CE_INLINE static inline __attribute__((always_inline))
#else
#define CE_INLINE static inline
#endif
#if defined(__GNUC__)
#define CE_TAIL static __attribute__((noinline))
#else
#define CE_TAIL static
#endif

/*
 * The entry points (ce_malloc, ce_free, ce_realloc, ce_resize, ce_valid)
 * are CE_API (ce_realloc only when not optimising for size: multi_heap.c's
 * engine_realloc() takes its place there). Optimising for speed, every file
 * that includes this header gets its own inline copy (CE_API = CE_INLINE).
 * Optimising for size (-Os), one copy is enough: tlsf.c, which defines
 * CE_OPS_IMPL, compiles the single external definition of each, and other
 * files see only declarations (about 600 bytes less on Cortex-M4). Sanitizer
 * builds keep the inline copies everywhere: multi_heap.c's annotations read
 * the block layout.
 */
#if defined(__OPTIMIZE_SIZE__) && !CE_SAN /* sanitizer builds: multi_heap.c annotates blocks itself */
#if defined(CE_OPS_IMPL)
#define CE_API
#define CE_OPS_DEFINE 1
#else
#define CE_OPS_DEFINE 0
#endif
#else
#define CE_API CE_INLINE
#define CE_OPS_DEFINE 1
#endif

/* The capacity of the live block whose data starts at p, from its header
 * (the word in front of p). Inline in every build: one load and two
 * operations, less than a call. (CE_PEEK: a pointer the cheap checks let
 * through without poisoning may have its "header" in a block's poisoned
 * tail under ASan.) */
static inline size_t ce_block_capacity(const void *p)
{
    return (CE_PEEK((const uint32_t *)p - 1) & ~F_MASK) - CE_HDR;
}

#if !CE_OPS_DEFINE
void *ce_malloc(ce_heap_t *h, size_t size);
ce_fault_kind_t ce_free(ce_heap_t *h, void *p);
bool ce_resize(ce_heap_t *h, void *p, size_t size);
bool ce_valid(const ce_heap_t *h, const void *p);
#else

/* Exactly the layout facts the offsets and the 32/64-bit equality rely on. */
CE_STATIC_ASSERT(sizeof(ce_heap_t) == 48, "control header must be the same on every build");
CE_STATIC_ASSERT(sizeof(void *) <= sizeof(((ce_heap_t *)0)->owner), "the owner slot holds a pointer");
CE_STATIC_ASSERT(CE_MIN_BLOCK == CE_HDR + 3 * sizeof(uint32_t), "min block: header, two links, footer");
CE_STATIC_ASSERT(CE_SL_COUNT <= 32, "second-level bitmap is one word");

/* ---- word access ------------------------------------------------------- */

CE_INLINE uint32_t *word(const ce_heap_t *h, uint32_t off)
{
    return (uint32_t *)(void *)((char *)(uintptr_t)h + (size_t)off);
}
/* The word at b + s. Offsets add as size_t, so the compiler folds them into
 * one address (32-bit wrap-around never occurs: b + s <= end). */
CE_INLINE uint32_t *word2(const ce_heap_t *h, uint32_t b, uint32_t s)
{
    return (uint32_t *)(void *)((char *)(uintptr_t)h + (size_t)b + (size_t)s);
}
/* The word bytes after the word at w (block pointer arithmetic without offsets). */
CE_INLINE uint32_t *skip(uint32_t *w, uint32_t bytes)
{
    return (uint32_t *)(void *)((char *)w + bytes);
}
#define HDR(h, b) (*word((h), (b)))
#define NEXT(h, b) (word((h), (b))[1])
#define PREV(h, b) (word((h), (b))[2])
#define HDR2(h, b, s) (*word2((h), (b), (s)))         /* header of the block after [b, b + s) */
#define FOOTER(h, b, s) (word2((h), (b), (s))[-1])    /* last word of [b, b + s) */
/* A footer holds its block's offset with both flag bits set, a pattern no
 * header has (a free block's predecessor is never free): a footer read where
 * a header should be is rejected at once (I4). */
#define FOOT_MARK(b) ((b) | F_MASK)
#define SIZE_OF(hdr) ((hdr) & ~F_MASK)

CE_INLINE uint32_t off_of(const ce_heap_t *h, const void *p)
{
    return (uint32_t)((uintptr_t)p - (uintptr_t)h);
}

CE_INLINE void *data_of(const ce_heap_t *h, uint32_t b)
{
    return (char *)(uintptr_t)h + b + CE_HDR;
}

/* ---- bit scans (O(1); builtins where the compiler has them) ------------ */

CE_INLINE uint32_t fls32(uint32_t x) /* index of the highest set bit; x != 0 */
{
    return ce_fls32(x);
}

CE_INLINE uint32_t ffs32(uint32_t x) /* index of the lowest set bit; x != 0 */
{
#if defined(__GNUC__)
    return (uint32_t)__builtin_ctz(x);
#else
    return fls32(x & (~x + 1u));
#endif
}

/* ---- size classes ------------------------------------------------------ */

CE_INLINE size_t class_of(uint32_t s) /* ce_class_of in tlsf.h */
{
    return ce_class_of(s);
}

/* ---- free lists -------------------------------------------------------- */

#if defined(__OPTIMIZE_SIZE__)
/* Optimising for size: list c just became empty, or just stopped being
 * empty, so its bitmap bit flips either way; its pair's bit in pair_bitmap
 * then says whether any list of the pair is left. One helper for the
 * insertion and the unlink. */
CE_INLINE void class_flip(ce_heap_t *h, size_t c)
{
    uint32_t *bm = &PAIR_BITMAP(h, c >> 5);
    uint32_t bit = 1u << (c >> 5);
    *bm ^= 1u << (c & 31u);
    h->pair_bitmap = *bm != 0 ? h->pair_bitmap | bit : h->pair_bitmap & ~bit;
}
#endif

/* Add the free block b of size s to its class list. The larger of b and the
 * current head stays in front: malloc tries the head of its own class. */
#if !defined(__OPTIMIZE_SIZE__)
CE_INLINE void list_insert_at(ce_heap_t *h, uint32_t *blk, uint32_t b, uint32_t s)
{
    size_t c = class_of(s);
    uint32_t *hp = &HEAD(h, c);
    uint32_t head = *hp;
    if (CE_LIKELY(head == 0)) { /* the hint keeps GCC's block layout of W1's best build (ce_bm_or) */
        blk[1] = 0; /* next */
        blk[2] = 0; /* prev */
        *hp = b;
        ce_bm_or(&PAIR_BITMAP(h, c >> 5), 1u << (c & 31u));
        ce_bm_or(&h->pair_bitmap, 1u << (c >> 5));
    } else if (SIZE_OF(HDR(h, head)) > s) {
        uint32_t nx = NEXT(h, head);
        blk[1] = nx;
        blk[2] = head;
        if (nx != 0)
            PREV(h, nx) = b;
        NEXT(h, head) = b;
    } else {
        blk[1] = head;
        blk[2] = 0;
        PREV(h, head) = b;
        *hp = b;
    }
}
#else
/* Optimising for size: the same three cases as one insertion after a link,
 * the list head or the head block's next field; c is class_of(s), which
 * make_free() computes before anything else (see there). */
CE_INLINE void list_insert_class(ce_heap_t *h, uint32_t *blk, uint32_t b, uint32_t s, size_t c)
{
    uint32_t *link = &HEAD(h, c);
    uint32_t head = *link, pv = 0;
    if (head != 0 && SIZE_OF(HDR(h, head)) > s) {
        link = &NEXT(h, head);
        pv = head;
    }
    uint32_t nx = *link;
    blk[1] = nx;
    blk[2] = pv;
    *link = b;
    if (nx != 0)
        PREV(h, nx) = b;
    if (head == 0)
        class_flip(h, c);
}

CE_INLINE void list_insert_at(ce_heap_t *h, uint32_t *blk, uint32_t b, uint32_t s)
{
    list_insert_class(h, blk, b, s, class_of(s));
}
#endif

/* blk is word(h, b) */
CE_INLINE void list_insert(ce_heap_t *h, uint32_t b, uint32_t s)
{
    list_insert_at(h, word(h, b), b, s);
}

/* Unlink b, the head of list 32 * k + bit, whose pair starts at pair. */
CE_INLINE void unlink_at(ce_heap_t *h, uint32_t *pair, uint32_t k, uint32_t bit, uint32_t b)
{
    uint32_t nx = NEXT(h, b);
    pair[1 + bit] = nx;
    if (nx != 0) {
        PREV(h, nx) = 0;
    } else {
        if (ce_bm_and(&pair[0], ~(1u << bit)))
            ce_bm_and(&h->pair_bitmap, ~(1u << k));
    }
}

/* Unlink b, the head of list c (speed builds: -Os builds unlink with list_remove()). */
CE_INLINE void unlink_head(ce_heap_t *h, size_t c, uint32_t b)
{
    uint32_t nx = NEXT(h, b);
    HEAD(h, c) = nx;
    if (nx != 0) {
        PREV(h, nx) = 0;
    } else {
        if (ce_bm_and(&PAIR_BITMAP(h, c >> 5), ~(1u << (c & 31u))))
            ce_bm_and(&h->pair_bitmap, ~(1u << (c >> 5)));
    }
}

/* Unlink the free block b of size s from wherever it is in its list. */
#if defined(__OPTIMIZE_SIZE__)
/* Optimising for size: the successor's prev link first (pv, 0 when b is the
 * head), then whichever link named b; the class (a call) only for a head,
 * whose list may become empty (-10 B on RV32IMC). */
CE_INLINE void list_remove(ce_heap_t *h, uint32_t b, uint32_t s)
{
    uint32_t nx = NEXT(h, b), pv = PREV(h, b);
    if (nx != 0)
        PREV(h, nx) = pv;
    if (pv != 0) {
        NEXT(h, pv) = nx;
        return;
    }
    size_t c = class_of(s);
    HEAD(h, c) = nx;
    if (nx == 0)
        class_flip(h, c);
}
#else
CE_INLINE void list_remove(ce_heap_t *h, uint32_t b, uint32_t s)
{
    uint32_t nx = NEXT(h, b), pv = PREV(h, b);
    if (pv != 0) {
        NEXT(h, pv) = nx;
        if (nx != 0)
            PREV(h, nx) = pv;
        return;
    }
    unlink_head(h, class_of(s), b);
}
#endif

/* ---- block surgery ----------------------------------------------------- */

CE_INLINE void note_used(ce_heap_t *h, uint32_t bytes)
{
    uint32_t f = h->free_bytes - bytes;
    h->free_bytes = f;
    if (f < h->min_free)
        h->min_free = f;
}

/* Make [b, b + s) a free block (blk = word(h, b)), list it, and tell the next
 * block. Free without a free neighbour inlines it; the merging paths reach the
 * out-of-line make_free below by a tail jump, which keeps their own register
 * use low enough to need no saved registers. */
/* The free block's own words: header, footer, the next block's PF bit. */
CE_INLINE void mark_free(uint32_t *blk, uint32_t b, uint32_t s)
{
    uint32_t *nxt = skip(blk, s);
    blk[0] = s | F_FREE; /* a free block's predecessor is always used (I3) */
    nxt[-1] = FOOT_MARK(b); /* footer */
    nxt[0] |= F_PREV_FREE;
}

CE_INLINE void make_free_at(ce_heap_t *h, uint32_t *blk, uint32_t b, uint32_t s)
{
    mark_free(blk, b, s);
    list_insert_at(h, blk, b, s);
}

CE_TAIL void make_free(ce_heap_t *h, uint32_t b, uint32_t s)
{
#if defined(__OPTIMIZE_SIZE__)
    /* Optimising for size: the class first (a call), so that fewer values
     * live across it: blk is computed after it (-12 B on RV32IMC). */
    size_t c = class_of(s);
    uint32_t *blk = word(h, b);
    mark_free(blk, b, s);
    list_insert_class(h, blk, b, s, c);
#else
    make_free_at(h, word(h, b), b, s);
#endif
}

/*
 * The unlinked free block b (size s) becomes a used block of n <= s bytes;
 * a tail of at least CE_MIN_BLOCK goes back to the lists. Returns the data pointer.
 * Optimising for size, b keeps the PF bit its header has: a block from the
 * lists has none (I3), and the callers that hand it a block after a free one
 * (ce_memalign's gap, resize_in_place) need not set it again afterwards.
 */
CE_TAIL void *use_block(ce_heap_t *h, uint32_t b, uint32_t n)
{
    uint32_t *blk = word(h, b);
#if defined(__OPTIMIZE_SIZE__)
    uint32_t pf = blk[0] & F_PREV_FREE;
#else
    const uint32_t pf = 0;
#endif
    uint32_t s = SIZE_OF(blk[0]);
    uint32_t rest = s - n;
    if (rest >= CE_MIN_BLOCK) {
        blk[0] = n | pf;
        uint32_t r = b + n;
        uint32_t *rw = skip(blk, n);
        CE_SAN_UNPOISON(rw, 3u * sizeof(uint32_t)); /* the tail's header and links (sanitize.h) */
#if defined(__OPTIMIZE_SIZE__)
        make_free(h, r, rest); /* sets the next block's PF bit, which is set already */
#else
        rw[0] = rest | F_FREE;
        skip(rw, rest)[-1] = FOOT_MARK(r); /* the next block's PF bit stays set */
        list_insert_at(h, rw, r, rest);
#endif
    } else {
        n = s;
        blk[0] = s | pf;
        skip(blk, s)[0] &= ~F_PREV_FREE;
    }
    note_used(h, n);
    return blk + 1;
}

/*
 * Find and unlink a free block of at least n bytes. With use (malloc), make
 * it a used block of n bytes and return its data pointer (a tail call to
 * use_block); else return its offset (aligned allocation). 0 if none fits.
 * Classes above 128 bytes span several sizes: the head of the request's own
 * class is tried first (list_insert_at keeps the larger of a new block and
 * the old head in front, so it is the class's largest block unless the head
 * was taken since). Then the first non-empty class above, where every block
 * fits, found with two bit scans.
 */
CE_INLINE uintptr_t take_fit_as(ce_heap_t *h, uint32_t n, bool use)
{
    size_t c;
    uint32_t k, m, *pair;
    if (n < (2u * CE_SL_COUNT) << 2) {
        /* fl 0 and 1 (n < 128, class n / 4): exact classes (every block of
         * class c fits), all in pair 0 */
        c = n >> 2;
        k = 0;
        pair = &PAIR_BITMAP(h, 0);
        m = pair[0] & (~0u << c);
    } else {
        /* The class spans several sizes: try its head. */
        c = class_of(n);
        uint32_t b = HEAD(h, c);
        if (b != 0 && SIZE_OF(HDR(h, b)) >= n) {
            unlink_head(h, c, b);
            return use ? (uintptr_t)use_block(h, b, n) : b;
        }
        /* Then the classes above, where every block fits. c + 1 may be the
         * class after the last one: its bits (in the zero word after the last
         * pair, or the upper half of the last bitmap) are zero. */
        c++;
        k = (uint32_t)(c >> 5);
        pair = &PAIR_BITMAP(h, k);
        m = pair[0] & (~0u << (c & 31u));
    }
    if (m == 0) {
        uint32_t top = h->pair_bitmap & (~0u << (k + 1u)); /* k + 1 <= 14 */
        if (top == 0)
            return 0;
        k = ffs32(top);
        pair = &PAIR_BITMAP(h, k);
        m = pair[0];
    }
    uint32_t bit = ffs32(m);
    uint32_t b = pair[1 + bit];
    unlink_at(h, pair, k, bit, b);
    return use ? (uintptr_t)use_block(h, b, n) : b;
}

#if !defined(__OPTIMIZE_SIZE__)
CE_INLINE uint32_t take_fit(ce_heap_t *h, uint32_t n)
{
    return (uint32_t)take_fit_as(h, n, false);
}
#else
/*
 * Optimising for size: the search of take_fit_as() in fewer instructions,
 * returning the offset (0 if none fits). It picks the same block: below 128
 * bytes the request's own class is exact (its head, if any, has exactly n
 * bytes), so scanning it first finds what the bitmap search from that class
 * finds. The block found is unlinked by list_remove(), which finds its list
 * again from its size (a block is filed under class_of(its size), I5): no
 * unlink code of its own.
 */
CE_INLINE uint32_t take_fit(ce_heap_t *h, uint32_t n)
{
    size_t c = class_of(n);
    /* One search from c, or from c + 1 (the classes above, where every block
     * fits: see take_fit_as) when the head of c is too small. An empty list c
     * has its bit clear, so both starts find the same list then, and what
     * its head 0 points at (the owner word) does not matter. */
    if (SIZE_OF(HDR(h, HEAD(h, c))) < n)
        c++;
    uint32_t m = ~0u << (c & 31u);
    uint32_t k = (uint32_t)(c >> 5);
    uint32_t *pair;
    for (;;) {
        pair = &PAIR_BITMAP(h, k);
        m &= pair[0];
        if (m != 0)
            break;
        /* Then the first non-empty pair above, from its first class: one
         * round more, which finds a class (pair_bitmap says the pair has
         * one); k only grows, so even corrupt bitmaps end the loop. One
         * bitmap read and one list head for both starts; the pair's address
         * is kept for its heads. (Stepping up one pair per round instead of
         * the bit scan saves 10 B more, but its trip count grows with the
         * heap's rows: malloc stays two bit scans.) */
        uint32_t top = h->pair_bitmap >> k >> 1; /* the pairs above k, from k + 1 */
        if (top == 0)
            return 0;
        k += 1u + ffs32(top);
        m = ~0u;
    }
    uint32_t b = pair[1 + ffs32(m)];
    list_remove(h, b, SIZE_OF(HDR(h, b)));
    return b;
}
#endif

#if CE_FREE_FILL
/* Metadata words that end up inside a free block are refilled (I9). */
CE_INLINE void fill_free(ce_heap_t *h, uint32_t from, uint32_t bytes)
{
    memset((char *)h + from, (int)CE_FILL_FREE_BYTE, bytes);
}
#endif

/*
 * Merge the now-free block [b, b + s) with free neighbours and list the result.
 * hdr is b's header before the call (its PF bit says whether to look back).
 */
CE_INLINE void release(ce_heap_t *h, uint32_t b, uint32_t s, uint32_t hdr)
{
    uint32_t nx = b + s;
    uint32_t nh = HDR2(h, b, s);
    if (nh & F_FREE) {
        uint32_t ns = SIZE_OF(nh);
        list_remove(h, nx, ns);
#if CE_FREE_FILL
        fill_free(h, nx - 4u, 16u); /* our footer slot, its header and links */
#endif
        s += ns;
    }
    if (hdr & F_PREV_FREE) {
        uint32_t pb = word(h, b)[-1] & ~F_MASK;
        uint32_t ps = b - pb; /* validated: pb's header says exactly this */
        list_remove(h, pb, ps);
#if CE_FREE_FILL
        fill_free(h, b - 4u, 16u); /* its footer, our header and links */
#endif
        b = pb;
        s += ps;
    }
    make_free(h, b, s);
}

/* ---- the O(1) operations ----------------------------------------------- */

/* Block bytes for a request (ce_block_for). */
CE_INLINE uint32_t block_for(const ce_heap_t *h, size_t size)
{
    return ce_block_for(h, size);
}

CE_API void *ce_malloc(ce_heap_t *h, size_t size)
{
#if defined(__OPTIMIZE_SIZE__)
    /* Optimising for size: ce_memalign() (tlsf.c) with an alignment it always
     * meets takes exactly these steps: block_for, take_fit, use_block. */
    return ce_memalign(h, size, 1u, 0u);
#else
    /* size - 1 wraps for 0: one compare rejects 0 and anything too big,
     * before any arithmetic that could overflow. */
    if (size - 1u >= h->max_request)
        return NULL;
    return (void *)take_fit_as(h, block_for(h, size), true); /* no test of b on the way */
#endif
}

#if !defined(__OPTIMIZE_SIZE__)
/* ce_malloc() from its unlocked first half: n = ce_fit() (tlsf.h), not 0. */
CE_INLINE void *ce_malloc_fit(ce_heap_t *h, uint32_t n)
{
    return (void *)take_fit_as(h, n, true);
}
#endif

/*
 * free, first half: the checks on the block itself (inside the pool, aligned,
 * header not free, size inside the pool, the next header not claiming we are
 * free and its size inside the pool). Changes nothing. Returns CE_FREE_REJECT, or
 * CE_FREE_PLAIN (no free neighbour: make_free finishes) or CE_FREE_MERGE (a
 * neighbour is free: ce_free_merge checks it and finishes), with b, the
 * header and the next header.
 */
#define CE_FREE_REJECT 0u
#define CE_FREE_PLAIN 1u
#define CE_FREE_MERGE 2u
CE_INLINE unsigned ce_free_start(const ce_heap_t *h, const void *p, uint32_t *bp, uint32_t *hdrp,
                                 uint32_t *nhp)
{
    /* b - first <= end - first - 16, as one unsigned compare (below first wraps around) */
    uintptr_t b64 = (uintptr_t)p - (uintptr_t)h - CE_HDR;
    uintptr_t rel = b64 - h->first;
    uint32_t span = h->data_span;
    if (rel > (uintptr_t)span || ((uintptr_t)p & h->align_mask))
        return CE_FREE_REJECT;
    uint32_t b = (uint32_t)b64;
    /* The header is the word before p (p is aligned now). */
    const uint32_t *hw = (const uint32_t *)(const void *)((const char *)p - CE_HDR);
    uint32_t hdr = CE_PEEK(hw);
    if (hdr & F_FREE)
        return CE_FREE_REJECT;
    uint32_t s = hdr & ~F_PREV_FREE;
    uint32_t room = span - (uint32_t)rel; /* end - b - 16 */
    if (s - CE_MIN_BLOCK > room)
        return CE_FREE_REJECT;
    uint32_t nh = CE_PEEK((const uint32_t *)(const void *)((const char *)hw + s));
    /* The next header must not claim we are free, and its size must lie in
     * the pool (the end marker reads as 16 bytes at end: it passes). */
    if ((nh & F_PREV_FREE) || (nh & ~F_FREE) - CE_MIN_BLOCK > room - s)
        return CE_FREE_REJECT;
    *bp = b;
    *hdrp = hdr;
    *nhp = nh;
    /* our PF bit or the next block's free bit, tested at once */
    return ((hdr | (nh << 1)) & F_PREV_FREE) == 0 ? CE_FREE_PLAIN : CE_FREE_MERGE;
}

/* free, second half without a free neighbour: b's header is hdr (PF clear). */
CE_INLINE ce_fault_kind_t ce_free_plain(ce_heap_t *h, uint32_t b, uint32_t hdr)
{
    h->free_bytes += hdr;
#if CE_FREE_FILL
    fill_free(h, b + CE_HDR, hdr - CE_HDR);
#endif
    make_free(h, b, hdr);
    return CE_OK;
}

/* The neighbour checks of ce_valid() for a block that passed ce_free_start():
 * a free predecessor (returned in *pbp, else 0) has a header that ends exactly
 * here, a free successor (its size in *nsp, else 0) has a footer naming it. */
CE_INLINE bool neighbours_ok(const ce_heap_t *h, uint32_t b, uint32_t hdr, uint32_t nh, uint32_t *pbp,
                             uint32_t *nsp)
{
    uint32_t s = hdr & ~F_PREV_FREE;
    uint32_t pb = 0;
    if (hdr & F_PREV_FREE) {
        uint32_t fw = CE_PEEK(word(h, b) - 1);
        pb = fw & ~F_MASK;
        if ((fw & F_MASK) != F_MASK || pb < h->first || pb > b - CE_MIN_BLOCK ||
            CE_PEEK(word(h, pb)) != ((b - pb) | F_FREE))
            return false;
    }
    uint32_t ns = 0;
    if (nh & F_FREE) {
        ns = nh & ~F_FREE;
        /* The successor must end by the end marker before its footer is
         * read. ce_free_start's size test says so, except when our block ends
         * in the pool's last 16 bytes (b + s in end - 12 .. end - 4, where no
         * block fits: its room - s wraps), which a forged header can claim:
         * its "footer" lay anywhere (fuzz_caps_misuse, corpus file
         * next-header-in-last-16-bytes). The sum is 32-bit and the footer
         * read at it, so a wrapped ns stays in the region too; ne - 1 also
         * refuses ne = 0. The end marker never reads free (I10); if it does,
         * ne lies past it and is refused. */
        uint32_t ne = b + s + ns;
        if (ne - 1u >= h->end || CE_PEEK(word(h, ne) - 1) != FOOT_MARK(b + s))
            return false;
    }
    *pbp = pb;
    *nsp = ns;
    return true;
}

/*
 * The cheap tier, run on every free and realloc: is p the data pointer of a
 * used block of h? Checks, in order: inside the pool, on the heap's
 * alignment, header not free (double free), size inside the pool, the next
 * block agrees that we are used, and a free neighbour (about to be merged)
 * round-trips: the next one's footer names it, the previous one's header
 * ends exactly here. A pointer into the middle of a block fails one of these
 * unless its bytes happen to forge a consistent header and neighbour.
 * Returns CE_OK or CE_FAULT_BAD_HEADER; ce_diagnose() (tlsf.c) names the
 * exact fault on the slow path.
 */
#if !defined(__OPTIMIZE_SIZE__)
CE_API bool ce_valid(const ce_heap_t *h, const void *p)
{
    uint32_t b = 0, hdr = 0, nh = 0, pb = 0, ns = 0;
    unsigned kind = ce_free_start(h, p, &b, &hdr, &nh);
    return kind == CE_FREE_PLAIN || (kind == CE_FREE_MERGE && neighbours_ok(h, b, hdr, nh, &pb, &ns));
}
#else
/* Optimising for size: the same checks, once, for ce_valid and ce_free
 * (neighbours_ok() passes a block without a free neighbour).
 * Returns p's block b if p passes (never 0: the control structure comes
 * first), with nb[0] = pb and nb[1] = ns of neighbours_ok(); else 0. */
CE_TAIL uint32_t block_ok(const ce_heap_t *h, const void *p, uint32_t nb[2])
{
    uint32_t b = 0, hdr = 0, nh = 0;
    if (ce_free_start(h, p, &b, &hdr, &nh) == CE_FREE_REJECT || !neighbours_ok(h, b, hdr, nh, &nb[0], &nb[1]))
        return 0;
    return b;
}

CE_API bool ce_valid(const ce_heap_t *h, const void *p)
{
    uint32_t nb[2];
    return block_ok(h, p, nb) != 0;
}
#endif

/* The merge itself, for a block whose neighbours passed neighbours_ok().
 * Size-optimised builds keep the merged block's end instead of adding up its
 * size: fewer values live across the unlinks there (-14 / -12 B), while the
 * speed build's sums cost 0.1 instruction/op less. */
CE_INLINE ce_fault_kind_t free_merge_do(ce_heap_t *h, uint32_t b, uint32_t s, uint32_t pb, uint32_t ns)
{
#if defined(__OPTIMIZE_SIZE__)
    uint32_t end = b + s + ns;
#endif
    h->free_bytes += s;
#if CE_FREE_FILL
    fill_free(h, b + CE_HDR, s - CE_HDR);
#endif
    if (ns != 0) {
        list_remove(h, b + s, ns);
#if CE_FREE_FILL
        fill_free(h, b + s - 4u, 16u); /* our footer slot, its header and links */
#endif
        s += ns;
    }
    if (pb != 0) {
        list_remove(h, pb, b - pb);
#if CE_FREE_FILL
        fill_free(h, b - 4u, 16u); /* its footer, our header and links */
#endif
        s += b - pb;
        b = pb;
    }
#if defined(__OPTIMIZE_SIZE__)
    s = end - b;
#endif
    make_free(h, b, s);
    return CE_OK;
}

/*
 * free, second half when a neighbour is free: check the neighbours that are
 * about to be merged (the successor's footer names it, the predecessor's
 * header ends exactly here), then merge and list the result. Every check
 * runs before the first write. Returns CE_OK or CE_FAULT_BAD_HEADER.
 */
CE_INLINE ce_fault_kind_t ce_free_merge(ce_heap_t *h, uint32_t b, uint32_t hdr, uint32_t nh)
{
    uint32_t pb = 0, ns = 0;
    if (!neighbours_ok(h, b, hdr, nh, &pb, &ns))
        return CE_FAULT_BAD_HEADER;
    /* Accepted: from here on the heap changes. */
    return free_merge_do(h, b, hdr & ~F_PREV_FREE, pb, ns);
}

/*
 * free: every check before the first write, so a rejected pointer changes
 * nothing. Returns CE_OK, or CE_FAULT_BAD_HEADER (ce_diagnose() says which).
 */
CE_API ce_fault_kind_t ce_free(ce_heap_t *h, void *p)
{
#if !defined(__OPTIMIZE_SIZE__)
    uint32_t b = 0, hdr = 0, nh = 0;
    unsigned r = ce_free_start(h, p, &b, &hdr, &nh);
    if (r == CE_FREE_PLAIN)
        return ce_free_plain(h, b, hdr);
    if (r == CE_FREE_MERGE)
        return ce_free_merge(h, b, hdr, nh);
    return CE_FAULT_BAD_HEADER;
#else
    /* one path: without a free neighbour (pb = ns = 0) the merge is ce_free_plain() */
    uint32_t nb[2];
    uint32_t b = block_ok(h, p, nb);
    if (b == 0)
        return CE_FAULT_BAD_HEADER;
    return free_merge_do(h, b, SIZE_OF(HDR(h, b)), nb[0], nb[1]);
#endif
}

/*
 * Resize the used block b (header hdr, next header nh) to n bytes in place:
 * shrink (a tail worth a block is released and merged), or grow into a free
 * successor that is large enough. Returns false, changing nothing, when
 * neither is possible. Two variants with the same result: the speed build's
 * (realloc is 5% of W1's calls; the compact one costs it 8 instructions per
 * realloc, measured) and a compact one through use_block() for -Os.
 */
#if !defined(__OPTIMIZE_SIZE__)
CE_INLINE bool resize_in_place(ce_heap_t *h, uint32_t b, uint32_t hdr, uint32_t nh, uint32_t n)
{
    uint32_t s = SIZE_OF(hdr);
    uint32_t pf = hdr & F_PREV_FREE;
    if (n <= s) {
        uint32_t rest = s - n;
        if (rest >= CE_MIN_BLOCK) {
            HDR(h, b) = n | pf;
            h->free_bytes += rest;
#if CE_FREE_FILL
            fill_free(h, b + n, rest);
#endif
            release(h, b + n, rest, 0);
        }
        return true;
    }
    if ((nh & F_FREE) == 0 || s + SIZE_OF(nh) < n)
        return false;
    uint32_t ns = SIZE_OF(nh);
    list_remove(h, b + s, ns);
    uint32_t total = s + ns;
    uint32_t rest = total - n;
    if (rest >= CE_MIN_BLOCK) {
        HDR(h, b) = n | pf;
        uint32_t r = b + n;
        CE_SAN_UNPOISON(word(h, r), 3u * sizeof(uint32_t)); /* inside the successor's payload */
        HDR(h, r) = rest | F_FREE;
        FOOTER(h, r, rest) = FOOT_MARK(r);
        list_insert(h, r, rest); /* the block after keeps its PF bit */
    } else {
        n = total;
        HDR(h, b) = total | pf;
        HDR2(h, b, total) &= ~F_PREV_FREE;
    }
    note_used(h, n - s);
    return true;
}
#else
/*
 * Optimising for size: the same result through use_block(). The block and a
 * free successor become one block of total bytes, counted free, and
 * use_block() takes n bytes of it back, listing a tail of at least
 * CE_MIN_BLOCK. The block after the merged one needs no write here:
 * use_block() sets its PF bit when it lists a tail (make_free) and clears it
 * when there is none.
 */
CE_INLINE bool resize_in_place(ce_heap_t *h, uint32_t b, uint32_t hdr, uint32_t nh, uint32_t n)
{
    uint32_t s = SIZE_OF(hdr);
    /* n <= s with a tail not worth a block: nothing changes (for n > s,
     * s - n wraps around to more than the pool) */
    if (s - n < CE_MIN_BLOCK)
        return true;
    uint32_t ns = (nh & F_FREE) ? SIZE_OF(nh) : 0u;
    uint32_t total = s + ns;
    if (total < n)
        return false;
    /* The writes first: the unlink reads only the successor's links and
     * the class bitmaps, so fewer values live across the call. */
    HDR(h, b) = total | (hdr & F_PREV_FREE); /* use_block() keeps the PF bit */
    h->free_bytes += s;
    if (nh & F_FREE)
        list_remove(h, b + s, ns);
#if CE_FREE_FILL
    if (n < s) /* the freed tail, and the successor's header and links if it merges */
        fill_free(h, b + n, s - n + (total > s ? 12u : 0u));
#endif
    use_block(h, b, n);
    return true;
}
#endif

/* Resize the valid used block p in place to size bytes (see resize_in_place);
 * false (nothing changed) when it cannot stay where it is. */
CE_API bool ce_resize(ce_heap_t *h, void *p, size_t size)
{
    if (size - 1u >= h->max_request)
        return false;
    uint32_t b = off_of(h, p) - CE_HDR;
    uint32_t hdr = HDR(h, b);
    return resize_in_place(h, b, hdr, HDR2(h, b, SIZE_OF(hdr)), block_for(h, size));
}

#if !defined(__OPTIMIZE_SIZE__)
/* ce_realloc() after its checks: p passed them (ce_free_start and, with a
 * free neighbour, neighbours_ok), which read b, its header hdr and the next
 * header nh. Split off so that multi_heap can read the block between the
 * checks and the change (task tracking's owner word). */
CE_INLINE void *ce_realloc_checked(ce_heap_t *h, void *p, size_t size, uint32_t b, uint32_t hdr, uint32_t nh)
{
    if (size - 1u >= h->max_request)
        return NULL;
    if (resize_in_place(h, b, hdr, nh, block_for(h, size)))
        return p;
    uint32_t s = SIZE_OF(hdr);
    void *q = ce_malloc(h, size);
    if (q == NULL)
        return NULL;
    CE_SAN_UNPOISON(q, s - CE_HDR); /* the new block's payload was free (sanitize.h) */
    memcpy(q, p, s - CE_HDR); /* the block could not grow: the whole old capacity fits */
    h->free_bytes += s;
#if CE_FREE_FILL
    fill_free(h, b + CE_HDR, s - CE_HDR);
#endif
    release(h, b, s, HDR(h, b));
    return q;
}

/* realloc of a valid or rejected p: CE_FAULT_BAD_HEADER in *fault (and NULL)
 * if p fails ce_valid()'s checks, else CE_OK. Optimising for size there is
 * none: multi_heap.c checks with ce_valid() and then makes the same steps
 * with ce_resize(), ce_memalign() and ce_free() (engine_realloc), with no
 * fault code to pass back through memory. */
CE_API void *ce_realloc(ce_heap_t *h, void *p, size_t size, ce_fault_kind_t *fault)
{
    uint32_t b = 0, hdr = 0, nh = 0;
    unsigned kind = ce_free_start(h, p, &b, &hdr, &nh);
    uint32_t vpb = 0, vns = 0; /* not needed: the neighbours are read again after any malloc */
    if (kind == CE_FREE_REJECT || (kind == CE_FREE_MERGE && !neighbours_ok(h, b, hdr, nh, &vpb, &vns))) {
        *fault = CE_FAULT_BAD_HEADER; /* the checks of ce_valid(), fused */
        return NULL;
    }
    *fault = CE_OK;
    return ce_realloc_checked(h, p, size, b, hdr, nh);
}
#endif

#endif /* CE_OPS_DEFINE */

#endif /* CAPHEAP_CORE_TLSF_OPS_H */
