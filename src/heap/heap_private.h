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

#endif /* CAPHEAP_HEAP_PRIVATE_H */
