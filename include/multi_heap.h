/*
 * multi_heap.h - one heap per contiguous region (ESP-IDF's multi_heap API).
 *
 * Names, types and meanings are ESP-IDF's, so code written against ESP-IDF's
 * multi_heap.h compiles and behaves the same. Where ESP-IDF's behaviour is a
 * defect, capheap does the correct thing; docs/compat.md lists every case.
 *
 * Common contract of every function below:
 *  - Time: malloc, aligned_alloc, free and realloc are O(1): no loop whose trip
 *    count grows with the heap size or the number of blocks (realloc's copy
 *    aside). check, dump, walk, get_info and find_containing_block are O(B),
 *    B = blocks in the heap. Everything else is O(1).
 *  - Threads: a heap is safe to use from several threads once a lock has been
 *    attached with multi_heap_set_lock(); every function that reads or writes
 *    blocks takes it. Without a lock (the state after registration) the caller
 *    serialises. The port's lock decides whether ISRs may call in (see
 *    capheap/port.h); the bare-metal port has no lock.
 *  - A NULL heap handle is never dereferenced: allocators return NULL, free is
 *    a no-op, queries return 0 / false / zeroed info.
 *  - Misuse (double free, a pointer not from this heap, a pointer into the
 *    middle of a block, a smashed canary) is reported through
 *    capheap_report_corruption() (capheap/report.h): a "CORRUPT HEAP" line
 *    naming the address, the expected and the found value, then the port's
 *    abort; a rejected pointer changes nothing. One limit: without poisoning,
 *    a pointer into the middle of a block whose preceding bytes happen to
 *    form a consistent header and neighbour (bytes the program wrote, or a
 *    stale free-list link) passes the O(1) checks; with poisoning the canary
 *    head cannot be forged that way (docs/design.md, "Cheap checks"). The
 *    same holds for a block of another heap registered inside one of this
 *    heap's blocks (a pool carved from a malloc): a genuine block, so
 *    without poisoning it passes; with poisoning its size word carries the
 *    other heap's tag and it is reported as an interior pointer.
 *  - Poisoning (none / light / comprehensive) is chosen when capheap is built
 *    (CMake option CAPHEAP_POISONING; capheap/config.h tells which).
 */
#ifndef MULTI_HEAP_H
#define MULTI_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Opaque handle of one heap. It lives at the start of the region it manages. */
typedef struct multi_heap_info *multi_heap_handle_t;

/**
 * Turn the region [start, start + size) into a heap (default options).
 *
 * The minimum alignment of every block is 4 bytes, as on ESP-IDF and on every
 * ESP chip, on 32- and 64-bit builds alike (so a heap behaves identically on
 * both). For 8- or 16-byte alignment use capheap_heap_register()
 * (capheap/heap.h). The control structure is sized from the region: small
 * regions pay little (see docs/design.md, "The control structure is sized from the region").
 *
 * Returns the handle, or NULL iff start is NULL, start is not 4-byte aligned,
 * size is above UINT32_MAX (offsets are 32-bit: register a larger region as
 * several heaps), or the region cannot hold the control structure plus one
 * block that serves multi_heap_malloc(h, 1). That block is 16 bytes without
 * poisoning, 20 with it (the canaries), 24 with poisoning and task tracking,
 * so every start accepts capheap_heap_min_region_size(4) bytes: 140 / 144 /
 * 148 (capheap/heap.h). Never a half-made heap: a heap that registers serves
 * malloc(1). Not thread-safe with respect to the region.
 */
multi_heap_handle_t multi_heap_register(void *start, size_t size);

/**
 * Attach the lock object every later call on this heap takes (NULL: no
 * locking, the state after registration). The object is handed to the port's
 * capheap_port_lock_acquire()/_release(); it must be recursive. O(1).
 */
void multi_heap_set_lock(multi_heap_handle_t heap, void *lock);

/**
 * malloc(): size bytes aligned to the heap's alignment.
 * Returns NULL iff heap is NULL, size is 0, or the O(1) search finds no free
 * block that can hold size bytes (sizes near SIZE_MAX included: size
 * arithmetic never wraps). The search sees every free block in the size
 * classes above the request's own class and the first block of its own
 * class (a class spans 1/16 of its sizes; its list keeps the larger of a new
 * block and the old head in front); a larger block deeper in that one list
 * is not found. multi_heap_get_info()'s largest_free_block is exactly
 * the largest size this search satisfies, so a request up to it never fails.
 * The block's capacity is round_up(size + 4, A) - 4 for a heap of
 * alignment A (A = 4: size rounded up to 4), at least 12 bytes, and never
 * rounded to a size class; with poisoning or task tracking, whose P bytes
 * per block (capheap_heap_poison_overhead()) lie around the user's, it is
 * round_up(size + P + 4, A) - 4 - P, the whole block at least 16 bytes. It
 * can be up to 12 bytes more when the free block found is less than 16
 * bytes larger than needed. O(1).
 */
void *multi_heap_malloc(multi_heap_handle_t heap, size_t size);

/**
 * aligned_alloc(): size bytes at an address that is a multiple of alignment.
 * Returns NULL iff heap is NULL, size is 0, alignment is 0 or not a power of
 * two, or the O(1) search finds no block for the request with room to align
 * it: above the heap's own alignment it asks for size + alignment + 12 bytes,
 * so a free block that happens to be aligned already may not be found for a
 * request near its size. capheap_heap_largest_request() gives the exact
 * largest size that succeeds. O(1).
 */
void *multi_heap_aligned_alloc(multi_heap_handle_t heap, size_t size, size_t alignment);

/**
 * Like multi_heap_aligned_alloc(), but (pointer + offset) is aligned, not the
 * pointer itself. offset is rounded up to a multiple of 4 first, as on
 * ESP-IDF. Returns NULL in the same cases, and when the rounded offset is not
 * a multiple of min(alignment, the heap's alignment): the pointer is always
 * aligned to the heap and to nothing more, so pointer + offset could not be
 * aligned. (4-aligned heaps: never; a 16-aligned heap with offset 4: NULL for
 * alignment 8 and up, served for alignment 4.) An alignment above the heap's
 * with an offset larger than the heap's largest possible request is refused
 * too (NULL), rather than reduced modulo the alignment. O(1).
 */
void *multi_heap_aligned_alloc_offs(multi_heap_handle_t heap, size_t size, size_t alignment,
                                    size_t offset);

/**
 * free(): return p to the heap. p == NULL or heap == NULL: no-op.
 * A pointer that is outside this heap, inside a block, or already free is
 * reported (address, expected, found) and aborts through the port. O(1).
 */
void multi_heap_free(multi_heap_handle_t heap, void *p);

/** Deprecated alias of multi_heap_free(), kept for ESP-IDF compatibility. */
void multi_heap_aligned_free(multi_heap_handle_t heap, void *p);

/**
 * realloc(): resize p to size bytes, in place when the block or its free
 * neighbour allows, else by allocate, copy min(old, new), free.
 *  - p == NULL: as multi_heap_malloc(heap, size).
 *  - size == 0 and p != NULL: frees p (free bytes are credited) and returns NULL.
 *  - Returns NULL iff heap is NULL, size is 0, or no room; on failure p is
 *    untouched and still owned by the caller.
 * O(1) apart from the copy.
 */
void *multi_heap_realloc(multi_heap_handle_t heap, void *p, size_t size);

/**
 * Usable bytes of the block p: its capacity without the poison overhead and
 * the owner word (ESP-IDF's figure). 0 for NULL p or heap. Without poisoning
 * all of them may be written (malloc_usable_size()); with poisoning (light or
 * comprehensive) only the size requested may: the tail canary sits right after
 * it, inside this figure, and writing past the request is reported as "Bad
 * tail" by the next check or free. With poisoning the canaries are checked
 * first (a bad one is reported). O(1).
 */
size_t multi_heap_get_allocated_size(multi_heap_handle_t heap, void *p);

/**
 * Capacity of the block p including the poison overhead (head and tail
 * canaries), as on ESP-IDF; equal to multi_heap_get_allocated_size() when
 * poisoning is off. The block also has a 4-byte header, which is not counted.
 * 0 for NULL. O(1).
 */
size_t multi_heap_get_full_block_size(multi_heap_handle_t heap, void *p);

/**
 * Print every block to the port's printer: "Showing data for heap: <handle>"
 * then "Block <ptr> data, size: <n> bytes, Free: Yes|No" per block. Takes the
 * lock. Allocation-free. O(B).
 */
void multi_heap_dump(multi_heap_handle_t heap);

/**
 * Check every invariant of docs/design.md and, with poisoning, every canary
 * and fill pattern. With print_errors, each problem is printed as
 * "CORRUPT HEAP: ..." with address, expected and found values and the number
 * of the broken invariant. Returns true iff the heap is intact (false for a
 * NULL heap). Takes the lock; thread-safe: it shares nothing with checks of
 * other heaps (each report is made from the checker's own copy; the copy
 * capheap_last_report() keeps is per thread on the host). Never leaves the
 * region, even when sizes are corrupt. O(B) (O(bytes) when comprehensive).
 */
bool multi_heap_check(multi_heap_handle_t heap, bool print_errors);

/**
 * Free bytes now: the sum of all free blocks, their 4-byte headers included
 * (so a fresh heap reports region size - capheap_heap_overhead()). With
 * poisoning, one poison overhead is subtracted (clamped at 0), as on ESP-IDF.
 * 0 for NULL. O(1).
 */
size_t multi_heap_free_size(multi_heap_handle_t heap);

/** Lowest multi_heap_free_size() seen since registration or the last reset. 0 for NULL. O(1). */
size_t multi_heap_minimum_free_size(multi_heap_handle_t heap);

/** Statistics filled by multi_heap_get_info(). */
typedef struct {
    size_t total_free_bytes;      /**< = multi_heap_free_size() */
    size_t total_allocated_bytes; /**< usable bytes of all used blocks */
    size_t largest_free_block;    /**< malloc() of this size succeeds now; of any larger size fails (see multi_heap_malloc) */
    size_t minimum_free_bytes;    /**< = multi_heap_minimum_free_size() */
    size_t allocated_blocks;      /**< used blocks */
    size_t free_blocks;           /**< free blocks */
    size_t total_blocks;          /**< allocated_blocks + free_blocks */
} multi_heap_info_t;

/** Fill *info (all zeros for a NULL heap; nothing if info is NULL). Takes the lock. O(B). */
void multi_heap_get_info(multi_heap_handle_t heap, multi_heap_info_t *info);

/**
 * Set the minimum-free mark to the current free bytes; return the old mark.
 * 0 for a NULL heap. O(1).
 */
size_t multi_heap_reset_minimum_free_bytes(multi_heap_handle_t heap);

/**
 * minimum = min(minimum, new_minimum_free_bytes_value), to undo a reset.
 * No-op for a NULL heap. O(1).
 */
void multi_heap_restore_minimum_free_bytes(multi_heap_handle_t heap,
                                           const size_t new_minimum_free_bytes_value);

/**
 * Called for each block by multi_heap_walk(): the block's raw data pointer
 * (4 bytes after its header), its raw capacity (block size - 4), whether it is
 * used, and the user's pointer. As on ESP-IDF these are raw values: with
 * poisoning, the pointer is the head canary's address and the size includes
 * the poison overhead. Return false to stop the walk. The callback must not
 * allocate from or free into the walked heap.
 */
typedef bool (*multi_heap_walker_cb_t)(void *block_ptr, size_t block_size, int block_used,
                                       void *user_data);

/**
 * Call walker_func for every block in address order, under the lock. No-op
 * for a NULL heap or callback. O(B).
 */
void multi_heap_walk(multi_heap_handle_t heap, multi_heap_walker_cb_t walker_func,
                     void *user_data);

/**
 * The pointer multi_heap_malloc() returned for the used block that contains
 * ptr, or NULL iff ptr is in no used block of this heap (or heap is NULL).
 * Takes the lock. O(B).
 */
void *multi_heap_find_containing_block(multi_heap_handle_t heap, void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* MULTI_HEAP_H */
