/*
 * heap_private.h - what multi_heap offers the library's other layers beyond
 * its public API (not installed).
 */
#ifndef CAPHEAP_HEAP_PRIVATE_H
#define CAPHEAP_HEAP_PRIVATE_H

#include <stddef.h>

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

#endif /* CAPHEAP_HEAP_PRIVATE_H */
