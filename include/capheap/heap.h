/*
 * capheap/heap.h - capheap's additions to the multi_heap API.
 *
 * multi_heap_register() always makes 4-byte-aligned heaps (ESP-IDF's rule and
 * every ESP chip's). capheap_heap_register() lets the caller choose the
 * minimum alignment of every block: 4, 8 or 16 bytes. Host programs that store
 * doubles, 64-bit integers or SIMD types in blocks want 8 or 16
 * (alignof(max_align_t)); a chip's heaps use the chip's natural alignment.
 */
#ifndef CAPHEAP_HEAP_H
#define CAPHEAP_HEAP_H

#include "multi_heap.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Options for capheap_heap_register(). Zero-initialise, then set what you need. */
typedef struct {
    /** Minimum alignment of every block: 0 (= 4), 4, 8 or 16. */
    size_t alignment;
} capheap_heap_options_t;

/**
 * multi_heap_register() with options (options may be NULL: the defaults).
 * Returns NULL iff start is NULL or not aligned to 4, the alignment is not
 * one of 0, 4, 8, 16, size is above UINT32_MAX (regions of 4 GiB and more
 * are not supported: register several), or the region cannot hold the
 * control structure plus one block that serves multi_heap_malloc(h, 1) (its
 * size includes the poison overhead and the owner word of this build: see
 * capheap_heap_min_region_size).
 */
multi_heap_handle_t capheap_heap_register(void *start, size_t size,
                                          const capheap_heap_options_t *options);

/** The heap's minimum block alignment (4, 8 or 16); 0 for NULL. O(1). */
size_t capheap_heap_alignment(multi_heap_handle_t heap);

/**
 * Bytes of the region the heap keeps for itself (handle, control structure,
 * end marker, alignment padding): a fresh heap's free blocks hold exactly
 * region size - overhead bytes. (multi_heap_free_size() reports one poison
 * overhead less when poisoning is on: see capheap_heap_poison_overhead.)
 * 0 for NULL. O(1).
 */
size_t capheap_heap_overhead(multi_heap_handle_t heap);

/**
 * The region size capheap_heap_register() accepts at every 4-aligned start
 * for this alignment (0 = 4); 0 for an alignment it refuses. It counts the
 * worst padding a start can need (alignment - 4 bytes), so at a favourable
 * start of an 8- or 16-aligned heap a slightly smaller region may register;
 * for alignment 4 every start refuses one byte less. The figure includes one
 * block that serves malloc(1), so it depends on the build: for alignment 4,
 * 140 bytes without poisoning, 144 with poisoning (light or comprehensive),
 * 148 with poisoning and task tracking (task tracking alone: 140).
 */
size_t capheap_heap_min_region_size(size_t alignment);

/**
 * Per-block overhead this build adds beyond the engine's 4-byte block header,
 * for heaps of alignment 4 or 8: poisoning's 12 bytes (8-byte head, 4-byte
 * tail canary) plus, with task tracking (CAPHEAP_TASK_TRACKING), the 4-byte
 * owner word the tracker keeps in every block. So 0, 4, 12 or 16. A block's
 * full size (multi_heap_get_full_block_size) is its usable size plus this,
 * and the free sizes and largest_free_block report it once less.
 */
size_t capheap_poison_overhead(void);

/**
 * The same for one heap: heaps of alignment 16 pad the poison head to 16
 * bytes, so their overhead is 20 (24 with task tracking). 0 for NULL, and
 * for every heap when poisoning and task tracking are off.
 */
size_t capheap_heap_poison_overhead(multi_heap_handle_t heap);

/**
 * The largest size s for which multi_heap_aligned_alloc(heap, s, alignment)
 * (alignment up to the heap's own: multi_heap_malloc) succeeds now, exactly;
 * 0 if none, heap is NULL, or alignment is not a power of two. O(1), takes the
 * heap's lock.
 */
size_t capheap_heap_largest_request(multi_heap_handle_t heap, size_t alignment);

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_HEAP_H */
