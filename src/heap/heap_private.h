/*
 * heap_private.h - what multi_heap offers the library's other layers beyond
 * its public API (not installed).
 */
#ifndef CAPHEAP_HEAP_PRIVATE_H
#define CAPHEAP_HEAP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tlsf.h"
#include "heap/poison.h"
#include "multi_heap.h"

/* multi_heap_get_allocated_size() for the library's own bookkeeping (task
 * tracking): the same value, but the bytes past the request stay poisoned
 * under ASan, so a one-byte overflow in the program is still caught. */
size_t capheap_heap_usable_size_quiet(multi_heap_handle_t heap, void *p);

/* multi_heap_malloc() and multi_heap_realloc() that also store the new
 * block's usable size (as multi_heap_get_allocated_size() would say it) in
 * *usable, read under the lock the call holds anyway: task tracking charges
 * that size, and asking for it afterwards would take the lock a second time.
 * *usable is 0 when the call returns NULL, and for the realloc cases that
 * are not a resize (heap, p NULL or size 0). */
void *capheap_heap_malloc_sized(multi_heap_handle_t heap, size_t size, size_t *usable);
void *capheap_heap_realloc_sized(multi_heap_handle_t heap, void *p, size_t size, size_t *usable);

#if !defined(__OPTIMIZE_SIZE__)
/* multi_heap_malloc, _free and _realloc's locked halves, for heap_caps' fast
 * paths (speed builds): the heap has a lock (heap_caps attaches one before
 * it publishes a heap), p is not NULL and size not 0, so the public
 * functions' checks for those cases are skipped. */
void *capheap_heap_malloc_locked(multi_heap_handle_t heap, size_t size);
void capheap_heap_free_locked(multi_heap_handle_t heap, void *p);
void *capheap_heap_realloc_locked(multi_heap_handle_t heap, void *p, size_t size);

/* heap_caps_realloc's move out of a heap (speed builds): copy min(usable
 * size of p, n) bytes to dst, then free p, under one lock; a p the heap
 * rejects is reported like multi_heap_free's, nothing copied. */
void capheap_heap_move_out(multi_heap_handle_t heap, void *p, void *dst, size_t n);
#endif

#if POISON_ENABLED
/* Poisoning's head in front of the user bytes (heap/poison.h). */
static inline size_t head_bytes(const ce_heap_t *h)
{
    return h->align_mask + 1u > POISON_HEAD_MIN ? h->align_mask + 1u : POISON_HEAD_MIN;
}

/* Poisoning's bytes per block: head and tail canary. */
static inline size_t overhead(const ce_heap_t *h)
{
    return head_bytes(h) + POISON_TAIL;
}
#endif

/* Bytes the engine must provide for a user request; 0 if it would overflow. */
static inline size_t engine_size(const ce_heap_t *h, size_t size)
{
#if POISON_ENABLED
    size_t ov = overhead(h);
    return (size == 0 || size > SIZE_MAX - ov) ? 0 : size + ov;
#else
    (void)h;
    return size;
#endif
}

/*
 * Could multi_heap_malloc(heap, size) succeed now? False only if it would
 * fail (ce_may_fit in core/tlsf.h): heap_caps skips such a heap without
 * locking it (speed builds only). heap is a registered heap; no lock is
 * taken, so under concurrency the answer is a hint about a heap another
 * thread may be changing at this moment.
 */
#if !defined(__OPTIMIZE_SIZE__)
static inline bool capheap_heap_may_serve(multi_heap_handle_t heap, size_t size)
{
    const ce_heap_t *h = (const ce_heap_t *)(const void *)heap;
    return ce_may_fit(h, engine_size(h, size)); /* engine_size 0 (overflow): false */
}
#endif

#endif /* CAPHEAP_HEAP_PRIVATE_H */
