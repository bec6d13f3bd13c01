/*
 * heap_private.h - what multi_heap offers the library's other layers beyond
 * its public API (not installed).
 *
 * Task tracking builds (CAPHEAP_TASK_TRACKING) give every block one more
 * 32-bit word, the owner word, so that the tracker can keep a block's owner
 * in the block instead of in a table keyed by address. multi_heap stores and
 * returns it, never interprets it. It is the last 4 bytes of the engine
 * block's capacity, after the user's bytes and poisoning's tail canary:
 *
 *   | engine hdr | [poison head] | user bytes ... | [tail canary] | pad | owner |
 *                ^ raw                                                 ^ raw + capacity - 4
 *
 * multi_heap asks the engine for CAPHEAP_OWNER_BYTES more per block
 * (engine_size) and reports every size 4 bytes less (overhead), so the
 * user never owns the word: ASan keeps it poisoned like a canary, valgrind
 * leaves it outside the block's chunk. Without task tracking nothing of this
 * exists and the blocks are as before.
 */
#ifndef CAPHEAP_HEAP_PRIVATE_H
#define CAPHEAP_HEAP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capheap/check.h" /* capheap_check_cursor_t */
#include "core/tlsf.h"
#include "heap/poison.h"
#include "multi_heap.h"

#if CAPHEAP_TASK_TRACKING
/*
 * The owner word (task tracking builds; the layout is at the top of this
 * file). The public API writes 0 into every new block (malloc, aligned
 * allocation), multi_heap_realloc() carries the old block's word over to the
 * resulting block (in place or moved), multi_heap_free() ignores it. The
 * functions below are the tracker's: one lock round trip each, the owner
 * word read or written under the lock the operation holds anyway.
 */
#define CAPHEAP_OWNER_BYTES 4u

/* A block's owner word and its usable size (multi_heap_get_allocated_size). */
typedef struct {
    uint32_t owner;
    size_t usable;
} capheap_owned_t;

/* A new block and its usable size (as multi_heap_get_allocated_size says). */
typedef struct {
    void *p;
    size_t usable;
} capheap_made_t;

/* malloc that writes owner into the new block: {the block, its usable size},
 * {NULL, 0} if it fails. heap is a registered heap (with or without a lock);
 * size 0 -> {NULL, 0}. A struct return (two registers on the usual ABIs), so
 * the caller keeps no local whose address escapes and can tail-call the
 * tracker afterwards. The usable size is a number only: under ASan the bytes
 * past the request stay poisoned until multi_heap_get_allocated_size() is
 * asked. The out-parameters of the functions below must not be NULL (never
 * tested, to keep the fast paths lean). */
capheap_made_t capheap_heap_malloc_owned(multi_heap_handle_t heap, size_t size, uint32_t owner);

/* realloc of a live block p (not NULL) to size (not 0; 0 fails like a size
 * too large): the result carries owner; on success *old = p's owner word and
 * usable size as they were before the call, *usable = the new usable size;
 * on failure NULL, p unchanged, *old = {0, 0}, *usable = 0. A p the heap
 * rejects is reported exactly as multi_heap_realloc reports it (then, if the
 * abort hook returns, as a failure). usable and old must not be NULL. */
void *capheap_heap_realloc_owned(multi_heap_handle_t heap, void *p, size_t size, uint32_t owner, size_t *usable,
                                 capheap_owned_t *old);

/* free that returns the freed block's owner word and usable size (read after
 * the block was validated, before it is freed); a rejected p is reported
 * exactly as multi_heap_free reports it (and {0, 0} is returned if the abort
 * hook returns). p NULL -> {0, 0}. */
capheap_owned_t capheap_heap_free_owned(multi_heap_handle_t heap, void *p);

/* Read, or replace, the owner word of p, under the lock; both return the
 * word as it was, and p's usable size. p not a live block of heap (or its
 * canaries bad): {0, 0}, nothing changed, nothing reported (the caller's
 * following multi_heap call reports it). */
capheap_owned_t capheap_heap_get_owner(multi_heap_handle_t heap, void *p);
capheap_owned_t capheap_heap_swap_owner(multi_heap_handle_t heap, void *p, uint32_t owner);

/* Every used block with its owner word, in address order, under the heap's
 * lock: cb(user pointer, usable size, owner, ctx); cb returns false to stop;
 * cb must not call into this heap. */
typedef bool (*capheap_owner_walker_t)(void *p, size_t usable, uint32_t owner, void *ctx);
void capheap_heap_walk_owners(multi_heap_handle_t heap, capheap_owner_walker_t cb, void *ctx);

/* The owner word of the used block multi_heap_walk() reported as (block,
 * size) (block = engine data pointer, size = capacity), for corruption
 * reports: read without the lock, within the bounds the walk gave. */
uint32_t capheap_block_owner(const void *block, size_t size);
#endif

/* The lock object multi_heap_set_lock() attached (NULL: none). O(1), no lock:
 * heap_caps finds a heap's descriptor through it (caps_private.h). */
static inline void *capheap_heap_lock_object(multi_heap_handle_t heap)
{
    return ce_owner((const ce_heap_t *)(const void *)heap);
}

/* multi_heap_set_lock() for a heap that exists (heap_caps attaches a lock
 * right after registering the heap): the store itself, no call (-12 B on
 * Cortex-M4). */
static inline void capheap_heap_attach_lock(multi_heap_handle_t heap, void *lock_object)
{
    ce_set_owner((ce_heap_t *)(void *)heap, lock_object);
}

/* capheap_heap_register() at alignment align (4, 8 or 16; others are
 * refused), for heap_caps, which has it at hand: no options structure in
 * memory for the call (-18 B on Cortex-M4). */
multi_heap_handle_t capheap_heap_register_aligned(void *start, size_t size, size_t align);

/* multi_heap_check() that also gives its first finding in *first (what NULL
 * if none): the one heap_caps describes, the root cause more often than the
 * last (a smashed footer is found before the counters it throws off). */
bool capheap_heap_check_first(multi_heap_handle_t heap, bool print_errors, capheap_report_t *first);
/* capheap_heap_check_step() likewise, the step's first finding in *first. */
bool capheap_heap_check_step_first(multi_heap_handle_t heap, capheap_check_cursor_t *cursor, size_t max_blocks,
                                   bool print, bool *done, capheap_report_t *first);

/* multi_heap_realloc's locked half, for heap_caps (every build): the heap
 * has a lock (heap_caps attaches one before it publishes a heap), p is not
 * NULL and size not 0, so the public function's checks for those cases are
 * skipped. (Speed builds' fast paths also allocate through the two halves
 * further below.) */
void *capheap_heap_realloc_locked(multi_heap_handle_t heap, void *p, size_t size);
/* multi_heap_free's locked half, as above. */
void capheap_heap_free_locked(multi_heap_handle_t heap, void *p);
/* multi_heap_get_allocated_size() of a non-NULL p in a heap that exists. */
size_t capheap_heap_allocated_size_in(multi_heap_handle_t heap, void *p);

#if defined(__OPTIMIZE_SIZE__)
/* multi_heap_aligned_alloc() for a heap that exists (heap as above; any
 * alignment, 1 for malloc): heap_caps' allocations in size-optimised builds. */
void *capheap_heap_aligned_alloc_in(multi_heap_handle_t heap, size_t size, size_t alignment);
#endif

#if !defined(__OPTIMIZE_SIZE__)
/* (heap_caps allocates through the two halves below.) */

/* heap_caps' malloc from a heap it may pass over (speed builds; heap as
 * above, size not 0), in two halves. capheap_heap_fit() (below) reads the
 * heap's free lists without its lock (ce_fit in core/tlsf.h): 0 says the
 * heap certainly holds no block for size now; else
 * capheap_heap_malloc_fit(heap, size, that answer) is multi_heap_malloc
 * under the lock from the block size the first half computed (NULL if it
 * did not serve size after all). Under concurrency the unlocked answer is a
 * hint about a heap another thread may be changing at that moment, so a
 * caller that got no block from any heap asks them all again the plain way
 * before it fails. With task tracking, capheap_heap_malloc_owned_fit is
 * capheap_heap_malloc_owned's second half. */
void *capheap_heap_malloc_fit(multi_heap_handle_t heap, size_t size, uint32_t fit);
#if CAPHEAP_TASK_TRACKING
capheap_made_t capheap_heap_malloc_owned_fit(multi_heap_handle_t heap, size_t size, uint32_t fit, uint32_t owner);
#endif

/* heap_caps_realloc's move out of a heap (speed builds): copy min(usable
 * size of p, n) bytes to dst, then free p, under one lock; a p the heap
 * rejects is reported like multi_heap_free's, nothing copied. With task
 * tracking it returns what capheap_heap_free_owned() returns: p's
 * owner word and usable size, read after p was validated, before it was
 * freed ({0, 0} if p was rejected and the abort hook returned); callers
 * that do not need them ignore the value, so the name is the same in every
 * build. */
#if CAPHEAP_TASK_TRACKING
capheap_owned_t capheap_heap_move_out(multi_heap_handle_t heap, void *p, void *dst, size_t n);
#else
void capheap_heap_move_out(multi_heap_handle_t heap, void *p, void *dst, size_t n);
#endif
#endif

/* Bytes of the owner word; 0 without task tracking. */
#if CAPHEAP_TASK_TRACKING
#define MH_OWNER_BYTES CAPHEAP_OWNER_BYTES
#else
#define MH_OWNER_BYTES 0u
#endif

/* 1 when blocks carry bytes beyond the user's: poisoning, an owner word. */
#define MH_BLOCK_EXTRA (POISON_ENABLED || CAPHEAP_TASK_TRACKING)

#if POISON_ENABLED
/* Poisoning's head in front of the user bytes (heap/poison.h), for a heap of
 * alignment align. */
static inline size_t head_bytes_for(size_t align)
{
    return align > POISON_HEAD_MIN ? align : POISON_HEAD_MIN;
}

static inline size_t head_bytes(const ce_heap_t *h)
{
    return head_bytes_for(h->align_mask + 1u);
}
#endif

#if MH_BLOCK_EXTRA
/* Bytes per block beyond the user's: poisoning's head and tail canary, the
 * owner word (what capheap_heap_poison_overhead() reports), for a heap of
 * alignment align (registration asks before the heap exists). */
static inline size_t overhead_for(size_t align)
{
#if POISON_ENABLED
    return head_bytes_for(align) + POISON_TAIL + MH_OWNER_BYTES;
#else
    (void)align;
    return MH_OWNER_BYTES;
#endif
}

static inline size_t overhead(const ce_heap_t *h)
{
    return overhead_for(h->align_mask + 1u);
}
#endif

/* Bytes between a block's engine data pointer (what multi_heap_walk()
 * reports) and the user's pointer: poisoning's head, else 0. heap may be
 * NULL (0). For reports that name a block by the user's pointer. */
static inline size_t capheap_heap_user_offset(multi_heap_handle_t heap)
{
#if POISON_ENABLED
    return heap == NULL ? 0 : head_bytes((const ce_heap_t *)(const void *)heap);
#else
    (void)heap;
    return 0;
#endif
}

/* Bytes the engine must provide for a user request; 0 if it would overflow. */
static inline size_t engine_size(const ce_heap_t *h, size_t size)
{
#if MH_BLOCK_EXTRA
    size_t ov = overhead(h);
    return (size == 0 || size > SIZE_MAX - ov) ? 0 : size + ov;
#else
    (void)h;
    return size;
#endif
}

/* capheap_heap_malloc_fit's first half (declared above). */
#if !defined(__OPTIMIZE_SIZE__)
static inline uint32_t capheap_heap_fit(multi_heap_handle_t heap, size_t size)
{
    const ce_heap_t *h = (const ce_heap_t *)(const void *)heap;
    return ce_fit(h, engine_size(h, size)); /* engine_size 0 (overflow): no fit */
}
#endif

#endif /* CAPHEAP_HEAP_PRIVATE_H */
