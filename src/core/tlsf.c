/*
 * tlsf.c - capheap's engine: one contiguous region, O(1) good-fit allocation.
 *
 * Algorithm
 * ---------
 * Two-level segregated fit (Masmano et al., "TLSF", 2004), rewritten for
 * 32-bit metadata. Free blocks sit in size-class lists; a first-level class is
 * a power of two, split into 16 second-level classes, so a class spans at most
 * 1/16 of its sizes. Two bitmap levels find the first non-empty class at or
 * above a size with two find-first-set instructions. Sizes below 128 bytes
 * are one class per 4 bytes (exact).
 *
 * Differences from textbook TLSF, each for a measured reason (docs/design.md):
 *  - Every link is a 32-bit offset from the control structure, on every
 *    build: a heap behaves byte for byte the same on a 32-bit chip and a 64-bit
 *    host, and a block costs 4 bytes of header, not 8 or 16.
 *  - A block keeps the size asked for (rounded to the heap's alignment), never
 *    rounded up to its class: no internal fragmentation from classes.
 *  - Before rounding a request up to the next class (where every block fits),
 *    the head of the request's own class is tried: a tighter fit, and it
 *    makes the largest satisfiable request computable exactly
 *    (ce_largest_request): the statistics never promise a block malloc
 *    cannot deliver.
 *  - Insertion keeps the larger of the new block and the old head at the head
 *    of its list, so that head is the class's largest block unless the head
 *    was taken since.
 *  - The control structure has room for the first-level classes the region
 *    can need (68 bytes each), so small regions pay little. Two first-level
 *    classes share a pair [bitmap | 32 list heads]; a class is numbered
 *    c = 16 * fl + sl, its head is word c + c / 32 + 1 of the pairs and its
 *    bit is c & 31 of bitmap c / 32 (tlsf_ops.h).
 *
 * Block layout (offsets grow to the right; every field is a 32-bit word)
 * ------------
 *
 *   used block:  | size|PF|0 | data ........................................ |
 *   free block:  | size|PF|1 | next free | prev free | (0xFE fill) ... | self|3 |
 *                ^ header    ^ data pointer (aligned)                  ^ footer
 *
 *   size  = bytes from this header to the next header; a multiple of the
 *           heap alignment A (4, 8 or 16), at least 16.
 *   bit 0 = this block is free; bit 1 (PF) = the previous block is free.
 *   footer = the block's own offset with both flag bits set, in its last
 *           word, read by the next block to find a free predecessor in O(1)
 *           when merging. No header has both bits set, so a footer is never
 *           mistaken for one.
 *   next/prev = offsets of the neighbours in the block's free list (0 = none;
 *           offset 0 is the control structure, never a block).
 *
 *   region: | control: ce_heap_t + rows | pad | block | block | ... | end |
 *           end = a header reading "used, 16 bytes" that stops every walk and merge.
 *
 * Bounds: malloc, memalign, free and realloc run a fixed number of steps;
 * realloc may copy the block. check and walk
 * are O(blocks) and never leave the region, whatever the headers say.
 */
#define CE_OPS_IMPL /* the external definitions of -Os builds (tlsf_ops.h) */
#include "core/tlsf_ops.h"

/* The O(blocks) walks read headers wherever a corrupt size sends them, which
 * under ASan may be a poisoned payload or padding (debug/sanitize.h): they
 * are not instrumented, nor is ce_largest_request() (a corrupt list head may
 * name any word of the pool). They never leave the region (each header's size is
 * checked against the end before it is followed), which fuzz_misuse checks
 * with guard pages on both sides of the region. */
#if CE_ASAN
#define CE_WALKER __attribute__((no_sanitize_address))
#else
#define CE_WALKER
#endif

/*
 * The slow path behind every rejected pointer: say exactly what is wrong.
 * The fast checks (tlsf_ops.h) only answer yes or no; here there is time
 * for an O(blocks) walk from the first block, which finds the block that
 * contains p whatever the bytes in front of p say: an aligned pointer into a
 * free block is a double free (or a use after free); any other pointer that
 * is not a block's data pointer (into the middle of a block, or off the
 * heap's alignment) is an interior pointer, which names the block. On the
 * way every block gets the checks the fast path makes on a neighbour, in one
 * place: its size stays in the pool (I1), its flags agree with the block
 * before it (I2, I3), a free block's footer names it (I4, read on arrival at
 * the block after it), and the end marker reads "used, 16 bytes" (I10). The
 * walk goes on past p's block to the block after its successor, so a
 * neighbour that does not round-trip (what rejects a pointer to a used
 * block) is found by the same checks. The first problem met is reported; it
 * may lie before p, which is corruption all the same.
 */

/* The fault is gathered in locals and stored once, at the end. */
CE_WALKER ce_fault_kind_t ce_diagnose(const ce_heap_t *h, const void *p, capheap_report_t *out)
{
    uint32_t a = h->align_mask;
    uintptr_t off = (uintptr_t)p - (uintptr_t)h;
    ce_fault_kind_t kind = CE_OK;
    const void *at = p;
    uint32_t expected = 0, found = 0;
    unsigned inv = 0;
    /* The end the fast path trusts (first + data_span + 16), not the end
     * word, which only walks read: a walk bounded by a corrupt end word would
     * read past the region (the check reports such a word, I12). */
    uint32_t end = h->first + h->data_span + CE_MIN_BLOCK;
    if (off < h->first + CE_HDR || off >= end) {
        kind = CE_FAULT_OUTSIDE; /* expected: the first data offset; found: p's offset */
        expected = h->first + CE_HDR;
        found = (uint32_t)off;
        inv = CE_INV_POINTER;
    } else {
        uint32_t target = (uint32_t)off - CE_HDR;
        /* limit: the end, or once p's block is found, its successor (the walk
         * stops at the block after that one) */
        uint32_t limit = end;
        /* the footer the block before b must have if it is free (FOOT_MARK,
         * never 0), else 0: whether it is free and where, in one value */
        uint32_t prev_foot = 0;
        for (uint32_t b = h->first, s;; b += s) {
            uint32_t hdr = HDR(h, b);
            if (prev_foot != 0) {
                uint32_t fw = *word(h, b - 4u);
                if (fw != prev_foot) {
                    kind = CE_FAULT_BAD_NEIGHBOUR; /* the free block before b: its footer */
                    at = word(h, b - 4u);
                    expected = prev_foot;
                    found = fw;
                    inv = 4;
                    break;
                }
            }
            if (b == end) {
                /* the end marker reads "used, 16 bytes", PF as the block before (I10) */
                uint32_t end_hdr = CE_MIN_BLOCK | (prev_foot != 0 ? F_PREV_FREE : 0u);
                if (hdr != end_hdr) {
                    kind = CE_FAULT_BAD_HEADER;
                    at = word(h, b);
                    expected = end_hdr;
                    found = hdr;
                    inv = 10;
                }
                break;
            }
            if (b > limit)
                break; /* nothing wrong after all: kind CE_OK */
            s = SIZE_OF(hdr);
            if (s < CE_MIN_BLOCK || (s & a) || s > end - b) {
                kind = CE_FAULT_BAD_HEADER; /* the walk cannot pass this header */
                at = word(h, b);
                expected = (end - b) & ~a;
                found = hdr;
                inv = 1;
                break;
            }
            /* after a free block: used, PF set; after a used one: PF clear */
            uint32_t want = prev_foot != 0 ? s | F_PREV_FREE : hdr & ~F_PREV_FREE;
            if (want != hdr) {
                kind = CE_FAULT_BAD_NEIGHBOUR;
                at = word(h, b);
                expected = want;
                found = hdr;
                inv = 2u + ((want ^ hdr) & F_FREE); /* a free block after a free one: I3 */
                break;
            }
            if (target - b < s) { /* p lies in this block (blocks after it have b > target) */
                if ((hdr & F_FREE) && !((uintptr_t)p & a)) {
                    kind = CE_FAULT_DOUBLE_FREE; /* p lies in a free block, aligned like data */
                    inv = CE_INV_POINTER;
                } else if (target != b) { /* a misaligned p is never a block's data pointer */
                    kind = CE_FAULT_INTERIOR; /* p points into a block */
                    inv = CE_INV_POINTER;
                }
                if (kind != CE_OK) { /* both name p (at), the block's data offset and p's */
                    expected = b + CE_HDR;
                    found = (uint32_t)off;
                    break;
                }
                limit = b + s; /* p is a used block's data pointer: check its neighbours */
            }
            prev_foot = FOOT_MARK(b) & (0u - (hdr & F_FREE)); /* a mask, not a branch (-12 B on Cortex-M4) */
        }
    }
    out->address = at;
    out->expected = expected;
    out->found = found;
    out->invariant = inv;
    return kind;
}

/* ---- creation ---------------------------------------------------------- */

static uint32_t control_bytes(uint32_t fl_count)
{
    /* 68 bytes per first-level class and one word: the pairs of classes
     * (CE_PAIR_WORDS each, the last one possibly half) and the zero word after
     * them take no more (33 * 2 <= 17 * 2 * 2 words). */
    return CONTROL_FIXED + fl_count * CE_ROW_WORDS * 4u + 4u;
}

size_t ce_min_region(size_t align, size_t min_block)
{
    /* One row (fl 0), the worst padding for a 4-aligned start, one block of
     * min_block bytes (one row files it: min_block <= 48), the end marker. */
    return control_bytes(1) + (align - 4u) + min_block + CE_HDR;
}

/* The first block's offset after a control structure of fl_count rows: its
 * header sits so that its data (header + 4) is aligned. */
static uint32_t first_block(uintptr_t base, uint32_t a, uint32_t fl_count)
{
    uint32_t ctrl = control_bytes(fl_count);
    return (uint32_t)(((base + ctrl + CE_HDR + a) & ~(uintptr_t)a) - CE_HDR - base);
}

size_t ce_region_needed(const void *mem, size_t align, size_t min_block)
{
    /* One row leaves the largest room (each row more moves the first block
     * up), and files any block up to 48 bytes. */
    return first_block((uintptr_t)mem, (uint32_t)align - 1u, 1) + min_block + CE_HDR;
}

ce_heap_t *ce_create(void *mem, size_t bytes, size_t align)
{
    if (mem == NULL || ((uintptr_t)mem & 3u) != 0)
        return NULL;
    if (align - 4u > 12u || (align & (align - 1u)) != 0)
        return NULL; /* 4, 8 or 16: the powers of two from 4 to 16 */
    if (bytes > UINT32_MAX)
        return NULL; /* one region is at most 4 GiB - 1; register several */
    uint32_t a = (uint32_t)align - 1u;
    uint32_t total = (uint32_t)bytes;
    /* Choose the number of rows (first-level classes) that leaves the largest
     * pool: each row costs 68 bytes and files blocks below 2^(row + 6). If
     * the pool would need one row more than fits, it is capped at what the
     * rows can file (the rest of the region stays unused). Registration
     * only: at most 27 rounds. */
    uint32_t fl_count = 0, first = 0, s = 0; /* the best so far: rows, first block, pool bytes */
    for (uint32_t rows = 1;; rows++) {
        uint32_t f = first_block((uintptr_t)mem, a, rows);
        if (f + CE_MIN_BLOCK + CE_HDR > total) /* one block and the end marker (f < 2 KiB: no wrap) */
            break; /* more rows leave even less room */
        /* the pool up to the end marker, a multiple of every alignment: at
         * least CE_MIN_BLOCK, as the test above left at least that much */
        uint32_t room = (total - f - CE_HDR) & ~a;
        /* largest size the rows file: 2^(rows + 5) - 1, all sizes at 27 rows
         * (where the loop ends: the whole pool is filed) */
        uint32_t cap = UINT32_MAX >> (32u - (CE_SL_LOG2 + 1u) - rows);
        uint32_t pool = (room < cap ? room : cap) & ~a; /* capped: at least 48 */
        if (pool > s) { /* more than the best so far (0 before the first) */
            fl_count = rows;
            first = f;
            s = pool;
        }
        if (room <= cap)
            break; /* the whole pool is filed: more rows only cost room */
    }
    if (fl_count == 0)
        return NULL;

    ce_heap_t *h = (ce_heap_t *)mem;
    memset(h, 0, control_bytes(fl_count));
    h->magic = CE_MAGIC | a << 24; /* with a copy of the alignment (I12) */
    uint32_t end = first + s;
    h->first = first;
    h->end = end;
    h->align_mask = (uint8_t)a;
    h->fl_count = (uint8_t)fl_count;
    h->max_request = s - CE_HDR;
    h->data_span = s - CE_MIN_BLOCK;
    h->region_bytes = total;
#if CE_FREE_FILL
    memset((char *)h + control_bytes(fl_count), (int)CE_FILL_FREE_BYTE, total - control_bytes(fl_count));
#endif
    HDR(h, end) = CE_MIN_BLOCK; /* the end marker: reads as a used block (see I10) */
    make_free(h, first, s);
    h->free_bytes = s;
    h->min_free = s;
    return h;
}

void *ce_memalign(ce_heap_t *h, size_t size, size_t align, size_t offset)
{
    uint32_t a = h->align_mask;
    /* align a power of two: only then is align ^ (align - 1) above align - 1
     * (2 * align - 1); 0 and other numbers share their top bit with align - 1 */
    if (size - 1u >= h->max_request || (align ^ (align - 1u)) <= align - 1u)
        return NULL;
    uint32_t n = block_for(h, size);
    uint32_t al = (uint32_t)align;
    uint32_t extra = 0;
    /* Data is always aligned to the heap (a + 1), and to nothing more: data +
     * offset can be aligned only if offset is a multiple of the smaller of
     * the two alignments (align - 1 and a share their low bits). */
    if (offset & (align - 1u) & a)
        return NULL;
    if (align <= a + 1u) {
#if !defined(__OPTIMIZE_SIZE__)
        return ce_malloc(h, size);
#else
        /* ce_malloc() is this call (tlsf_ops.h): data + offset is aligned, so
         * the steps below take exactly its block_for, take_fit and use_block. */
#endif
    } else {
        if (offset > h->max_request)
            return NULL;
        /* A gap in front of the data is either 0 or a free block of >= 16 bytes:
         * a block of n + align + 16 - (a + 1) always has room for one. Counted
         * in size_t (a power of two: no wrap), so an alignment above
         * max_request, whose extra exceeds any room, is refused here too. */
        size_t room = h->max_request + CE_HDR - n; /* n <= max_request + CE_HDR: size fits */
        size_t ex = align + CE_MIN_BLOCK - (a + 1u);
        if (ex > room)
            return NULL;
        extra = (uint32_t)ex;
    }
    uint32_t b = take_fit(h, n + extra);
    if (b == 0)
        return NULL;
    uintptr_t data = (uintptr_t)data_of(h, b) + offset;
    uint32_t gap = (uint32_t)(0u - data) & (al - 1u); /* up to the next multiple of al */
    if (gap != 0) {
        /* A gap is a block: the smallest one of at least CE_MIN_BLOCK bytes
         * that is gap modulo al, 16 + (gap - 16) mod al, without a loop. */
        gap = CE_MIN_BLOCK + ((gap - CE_MIN_BLOCK) & (al - 1u));
        /* Split the gap off as a free block; b + gap becomes the candidate
         * (make_free() sets its PF bit, use_block() drops it). */
        CE_SAN_UNPOISON(word(h, b + gap - 4u), 4u * sizeof(uint32_t)); /* footer, header, links */
        HDR(h, b + gap) = HDR(h, b) - gap; /* (s - gap) | F_FREE: b, a listed block, reads s | F_FREE (I3) */
        make_free(h, b, gap);
        b += gap;
    }
#if defined(__OPTIMIZE_SIZE__)
    return use_block(h, b, n); /* trims the tail, as for malloc; keeps the PF bit make_free() set */
#else
    void *p = use_block(h, b, n); /* trims the tail, as for malloc */
    if (gap != 0)
        HDR(h, b) |= F_PREV_FREE; /* use_block writes a header for a block after a used one */
    return p;
#endif
}

static const uint32_t *control_fault(const ce_heap_t *h, uint32_t *expected);

CE_WALKER size_t ce_largest_request(const ce_heap_t *h)
{
    uint32_t ignored;
    if (h->pair_bitmap == 0 || control_fault(h, &ignored) != NULL)
        return 0;
    /* Exactly what take_fit can reach: the head of the top class. Any
     * request up to it succeeds; one byte more maps to this class or above
     * and finds nothing. A reader of corrupt rows (bitmaps naming a class
     * past the rows, a wild head, a smashed header) answers 0 and stays in
     * the control structure and the pool: the check reports them. */
    uint32_t classes = (uint32_t)h->fl_count * CE_SL_COUNT;
    uint32_t k = fls32(h->pair_bitmap);
    if (k >= (classes + 31u) >> 5 || PAIR_BITMAP(h, k) == 0)
        return 0;
    uint32_t c = (k << 5) + fls32(PAIR_BITMAP(h, k));
    uint32_t b = c < classes ? HEAD(h, c) : 1u;
    if ((b & 3u) != 0 || b - h->first > h->data_span)
        return 0;
    uint32_t s = SIZE_OF(HDR(h, b));
    return s < CE_MIN_BLOCK || s - CE_HDR > h->max_request ? 0 : s - CE_HDR;
}

/* ---- walk and check ---------------------------------------------------- */

/* I12: the control structure's fixed words agree, as ce_create wrote them:
 * the magic; the first block right after the rows (fl_count, align_mask);
 * the end marker where the fast path's span ends (first + data_span + 16)
 * and inside the region; the largest request the span holds; the magic's
 * copy of align_mask, and the mask itself (3, 7 or 15). Every walk asks
 * first: bounded by a corrupt end word or row count, a walk would read past
 * the region. Returns the word that is wrong, with what it should read (NULL:
 * none). */
static const uint32_t *control_fault(const ce_heap_t *h, uint32_t *expected)
{
    uint32_t end = h->first + h->data_span + CE_MIN_BLOCK;
    uint32_t magic = CE_MAGIC | (uint32_t)h->align_mask << 24;
    if ((h->magic & CE_MAGIC_MASK) != CE_MAGIC) {
        *expected = magic;
        return &h->magic;
    }
    if ((*expected = first_block((uintptr_t)h, h->align_mask, h->fl_count)) != h->first)
        return &h->first;
    if ((*expected = end) != h->end)
        return &h->end;
    if (h->region_bytes < CE_HDR || end > h->region_bytes - CE_HDR) {
        *expected = end + CE_HDR; /* at least */
        return &h->region_bytes;
    }
    if ((*expected = h->data_span + CE_MIN_BLOCK - CE_HDR) != h->max_request)
        return &h->max_request;
    /* The alignment mask: a change the first block's place does not show
     * (15 -> 7 where the first data pointer is 16-aligned) disagrees with
     * the magic's copy. */
    if ((*expected = magic) != h->magic)
        return &h->magic;
    /* Both copies changed alike (fuzz_misuse: one bit flipped in each) to a
     * mask that is no mask (15 -> 14 keeps the first block where it was,
     * and malloc would round sizes to odd values): the magic should name
     * the nearest mask above, capped at 15. */
    uint32_t a = h->align_mask;
    if (a != 3u && a != 7u && a != 15u) {
        uint32_t want = a | a >> 1 | a >> 2 | 3u;
        *expected = CE_MAGIC | (want > 15u ? 15u : want) << 24;
        return &h->magic;
    }
    return NULL;
}

CE_WALKER void ce_walk(const ce_heap_t *h, ce_walk_cb cb, void *user)
{
    uint32_t ignored;
    if (control_fault(h, &ignored) != NULL)
        return; /* walks nothing: the check says why */
    uint32_t b = h->first;
    while (b < h->end) {
        uint32_t hdr = HDR(h, b);
        uint32_t s = SIZE_OF(hdr);
        if (s < CE_MIN_BLOCK || s > h->end - b)
            return;
        if (!cb(data_of(h, b), s - CE_HDR, (hdr & F_FREE) == 0, user))
            return;
        b += s;
    }
}

typedef struct {
    ce_report_cb report;
    void *user;
    bool ok;
} checker_t;

static void fail(checker_t *c, unsigned inv, const void *addr, uint32_t expected, uint32_t found,
                 ce_fault_kind_t kind)
{
    c->ok = false;
    if (c->report != NULL) {
        ce_fault_t f = {kind, addr, expected, found, inv};
        c->report(&f, c->user);
    }
}

/*
 * The validator, resumable. ce_check() is one step with an unlimited budget,
 * so a pass of bounded steps over an unchanged heap runs exactly the checks
 * of ce_check(), in its order, with the same reports. Four stretches:
 *   walk   every block in address order: I1 (tiling; the pass stops where
 *          the walk cannot pass), I8, I2, I3, I4, I9, the used-block callback
 *          (I13 above), then I10 and the I7 totals at the end marker;
 *   pairs  the pair bitmaps against pair_bitmap (I6);
 *   lists  each class: its bitmap bit against its head (I6), then its
 *          entries (I5: free, in this class, prev link), bounded by the
 *          number of free blocks walked (I6: no cycle, no stray entry);
 *   end    listed entries = free blocks (I6), the bits after the last class (I11).
 * Resynchronising after a change (changed): the walk restarts from the
 * first block and hops over the blocks that end at or before the old cursor
 * (header reads only, I1 still checked, up to CE_CHECK_HOPS_PER_UNIT per
 * unit of budget), so it resumes at a real block boundary: the old cursor
 * itself, or the block that now covers it. A class list restarts from its
 * head (twice at most per class and pass; then the pass moves on to the next
 * class). A pass that saw a change compares no totals: free_sum, free_count
 * and listed mix two states of the heap.
 */
/* A block offset's share of a set's fingerprint (a sum of these, in any
 * order): the free blocks the walk finds against the entries the lists
 * hold. Equal counts with unequal sums mean different sets. */
static inline uint32_t print_of(uint32_t b)
{
    uint32_t x = b * 0x9E3779B1u;
    return x ^ (x >> 15);
}

CE_WALKER bool ce_check_step(const ce_heap_t *h, ce_check_cursor_t *cur, uint32_t budget, bool changed,
                   ce_report_cb report, ce_used_cb used_cb, void *user, bool *done, uint32_t *units_out)
{
    checker_t c = {report, user, true};
    uint32_t a = h->align_mask;
    uint32_t units = 0, hops = 0;
    if (budget == 0)
        budget = 1;
    uint32_t hop_budget = budget > UINT32_MAX / CE_CHECK_HOPS_PER_UNIT ? UINT32_MAX
                                                                        : budget * CE_CHECK_HOPS_PER_UNIT;
    *done = false;
    uint32_t control_want;
    const uint32_t *bad = control_fault(h, &control_want);
    if (bad != NULL) {
        fail(&c, 12, bad, control_want, *bad, CE_FAULT_BAD_HEADER);
        goto finish; /* nothing else can be read safely */
    }
    if (cur->phase == 0) {
        memset(cur, 0, sizeof *cur);
        cur->phase = 1;
        cur->pos = h->first;
    } else if (changed) {
        cur->changed = 1;
        if (cur->phase == 1) {
            if (cur->pos > cur->skip_to)
                cur->skip_to = cur->pos;
            cur->pos = h->first;
            cur->prev_free = 0;
        } else if (cur->phase == 3) {
            cur->class_started = 0;
            cur->class_listed = 0;
            if (++cur->class_restarts > 2u) {
                cur->pos++;
                cur->class_restarts = 0;
            }
        }
    }

    if (cur->phase == 1) {
        /* Physical walk: I1 (tiling), I2 (flags agree), I3 (no adjacent free),
         * I4 (footers), I8 (alignment), I9 (fill), I7 (counters). */
        uint32_t b = cur->pos, free_sum = cur->free_sum, free_count = cur->free_count;
        bool prev_free = cur->prev_free != 0;
        while (b < h->end) {
            if (units >= budget || hops >= hop_budget)
                break;
            uint32_t hdr = HDR(h, b);
            uint32_t s = SIZE_OF(hdr);
            if (s < CE_MIN_BLOCK || (s & a) || s > h->end - b) {
                fail(&c, 1, word(h, b), (h->end - b) & ~a, hdr, CE_FAULT_BAD_HEADER);
                goto finish; /* cannot go on: the next header is unknown */
            }
            bool is_free = (hdr & F_FREE) != 0;
            if (b + s <= cur->skip_to) { /* resynchronising: already checked in this pass */
                hops++;
                prev_free = is_free;
                b += s;
                continue;
            }
            units++;
            if ((((uintptr_t)data_of(h, b)) & a) != 0)
                fail(&c, 8, word(h, b), 0, (uint32_t)((uintptr_t)data_of(h, b) & a), CE_FAULT_MISALIGNED);
            if (((hdr & F_PREV_FREE) != 0) != prev_free)
                fail(&c, 2, word(h, b), prev_free ? hdr | F_PREV_FREE : hdr & ~F_PREV_FREE, hdr,
                     CE_FAULT_BAD_NEIGHBOUR);
            if (is_free) {
                if (prev_free)
                    fail(&c, 3, word(h, b), hdr & ~F_FREE, hdr, CE_FAULT_BAD_NEIGHBOUR);
                if (*word(h, b + s - 4u) != FOOT_MARK(b))
                    fail(&c, 4, word(h, b + s - 4u), FOOT_MARK(b), *word(h, b + s - 4u), CE_FAULT_BAD_NEIGHBOUR);
#if CE_FREE_FILL
                const uint8_t *fillp = (const uint8_t *)word(h, b + 12u);
                for (uint32_t i = 0; i + 16u < s; i++) {
                    if (san_byte(fillp, i) != CE_FILL_FREE_BYTE) { /* poisoned under ASan */
                        uint32_t at = (b + 12u + i) & ~3u;
                        uint32_t w = san_load32(word(h, at));
                        fail(&c, 9, word(h, at), 0xFEFEFEFEu, w, CE_FAULT_BAD_HEADER);
                        break;
                    }
                }
#endif
                free_sum += s;
                free_count++;
                cur->free_print += print_of(b);
            } else if (used_cb != NULL && !used_cb(data_of(h, b), s - CE_HDR, user)) {
                c.ok = false; /* the callback reported it */
            }
            prev_free = is_free;
            b += s;
        }
        cur->pos = b;
        cur->prev_free = prev_free ? 1u : 0u;
        cur->free_sum = free_sum;
        cur->free_count = free_count;
        if (b < h->end)
            goto out; /* budget spent */
        if ((HDR(h, h->end) & ~F_PREV_FREE) != CE_MIN_BLOCK || ((HDR(h, h->end) & F_PREV_FREE) != 0) != prev_free)
            fail(&c, 10, word(h, h->end), CE_MIN_BLOCK | (prev_free ? F_PREV_FREE : 0), HDR(h, h->end),
                 CE_FAULT_BAD_HEADER);
        if (!cur->changed && free_sum != h->free_bytes)
            fail(&c, 7, &h->free_bytes, free_sum, h->free_bytes, CE_FAULT_BAD_HEADER);
        else if (h->min_free > h->free_bytes) /* (a wrong free_bytes would make it look wrong) */
            fail(&c, 7, &h->min_free, h->free_bytes, h->min_free, CE_FAULT_BAD_HEADER);
        cur->phase = 2;
    }

    uint32_t classes = (uint32_t)h->fl_count * CE_SL_COUNT;
    if (cur->phase == 2) {
        if (units >= budget)
            goto out;
        units++;
        /* the summary word as the pairs' bitmaps say it must read: one report
         * with the whole word expected, however many bits are wrong */
        uint32_t pairs = (classes + 31u) >> 5, want = 0;
        for (uint32_t k = 0; k < pairs; k++)
            want |= (uint32_t)(PAIR_BITMAP(h, k) != 0) << k;
        if (h->pair_bitmap != want)
            fail(&c, 6, &h->pair_bitmap, want, h->pair_bitmap, CE_FAULT_BAD_HEADER);
        cur->phase = 3;
        cur->pos = 0;
        cur->class_started = 0;
    }

    if (cur->phase == 3) {
        /* Lists: I5 (each listed block is free, in its class, links agree) and
         * I6 (bitmaps agree with heads; every free block listed exactly once:
         * counts match, and the walk is bounded by the physical count, or
         * after a change by the most blocks the pool can hold). */
        uint32_t bound = cur->changed ? (h->end - h->first) / CE_MIN_BLOCK : cur->free_count;
        for (; cur->pos < classes; cur->pos++, cur->class_started = 0, cur->class_restarts = 0) {
            uint32_t cl = cur->pos;
            if (!cur->class_started) {
                const uint32_t *bmp = &PAIR_BITMAP(h, cl >> 5);
                uint32_t head = HEAD(h, cl);
                if (((*bmp >> (cl & 31u)) & 1u) != (head != 0))
                    fail(&c, 6, bmp, *bmp ^ (1u << (cl & 31u)), *bmp, CE_FAULT_BAD_HEADER);
                cur->class_started = 1;
                cur->class_listed = 0;
                cur->entry = head;
                cur->prev = 0;
            }
            for (uint32_t e = cur->entry, prev = cur->prev; e != 0; prev = e, e = NEXT(h, e)) {
                if (units >= budget) {
                    cur->entry = e;
                    cur->prev = prev;
                    goto out;
                }
                units++;
                cur->listed++;
                cur->class_listed++;
                if (cur->changed ? cur->class_listed > bound : cur->listed > bound) {
                    fail(&c, 6, &HEAD(h, cl), bound, cur->changed ? cur->class_listed : cur->listed,
                         CE_FAULT_BAD_HEADER);
                    goto finish; /* a cycle or a stray block: stop */
                }
                /* where a block fits (its links, read next, stay in the pool):
                 * the last words before the end marker may have the free bit
                 * too (a footer: offset | 3), and its "prev" lies past the region */
                if (e < h->first || e > h->end - CE_MIN_BLOCK || (e & 3u) || !(HDR(h, e) & F_FREE)) {
                    fail(&c, 5, prev ? word(h, prev + 4u) : &HEAD(h, cl), 0, e, CE_FAULT_BAD_HEADER);
                    goto finish;
                }
                uint32_t es = SIZE_OF(HDR(h, e));
                uint32_t ec = (uint32_t)class_of(es);
                if (ec != cl)
                    fail(&c, 5, word(h, e), ((cl >> 4) << 8) | (cl & 15u), ((ec >> 4) << 8) | (ec & 15u),
                         CE_FAULT_BAD_HEADER);
                if (PREV(h, e) != prev)
                    fail(&c, 5, word(h, e + 8u), prev, PREV(h, e), CE_FAULT_BAD_HEADER);
                /* A real free block, not words that look like one (inside a used
                 * block's data, say): it ends inside the pool, its footer names
                 * it (I4) and the block after it has PF set (I2). An entry forged
                 * in place of a real block kept the count of I6, and malloc then
                 * handed out memory of a live block (an audit found it). */
                if (es < CE_MIN_BLOCK || es > h->end - e) {
                    fail(&c, 1, word(h, e), (h->end - e) & ~(uint32_t)h->align_mask, HDR(h, e),
                         CE_FAULT_BAD_HEADER);
                    goto finish; /* its footer lies outside the pool */
                }
                cur->list_print += print_of(e);
                if (*word(h, e + es - 4u) != FOOT_MARK(e))
                    fail(&c, 4, word(h, e + es - 4u), FOOT_MARK(e), *word(h, e + es - 4u),
                         CE_FAULT_BAD_NEIGHBOUR);
                else if (!(HDR(h, e + es) & F_PREV_FREE))
                    fail(&c, 2, word(h, e + es), HDR(h, e + es) | F_PREV_FREE, HDR(h, e + es),
                         CE_FAULT_BAD_NEIGHBOUR);
            }
        }
        if (!cur->changed && cur->listed != cur->free_count)
            fail(&c, 6, &h->pair_bitmap, cur->free_count, cur->listed, CE_FAULT_BAD_HEADER);
        else if (!cur->changed && cur->list_print != cur->free_print)
            /* as many entries as free blocks, but not the same ones: words
             * inside a used block forged into a free block (footer and
             * successor included) and listed in place of a real one (I5) */
            fail(&c, 5, &h->pair_bitmap, cur->free_print, cur->list_print, CE_FAULT_BAD_HEADER);
        /* I11: the bits of the classes after the last one (the zero word after
         * the last pair, or the upper half of the last pair's bitmap) are zero. */
        {
            const uint32_t *bmp = &PAIR_BITMAP(h, classes >> 5);
            uint32_t extra = *bmp >> (classes & 31u);
            if (extra != 0)
                fail(&c, 11, bmp, *bmp & ~(~0u << (classes & 31u)), *bmp, CE_FAULT_BAD_HEADER);
        }
    }
finish:
    memset(cur, 0, sizeof *cur);
    *done = true;
out:
    if (units_out != NULL)
        *units_out = units;
    return c.ok;
}

bool ce_check(const ce_heap_t *h, ce_report_cb report, ce_used_cb used_cb, void *user)
{
    ce_check_cursor_t cur;
    bool done;
    memset(&cur, 0, sizeof cur);
    return ce_check_step(h, &cur, UINT32_MAX, false, report, used_cb, user, &done, NULL);
}
