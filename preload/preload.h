/*
 * preload.h - what preload/malloc.c (the C allocation API) needs from
 * preload/region.c (the heaps behind it). Private to libcapheap_malloc.so.
 *
 * The split: malloc.c knows the libc contracts (errno, malloc(0), overflow,
 * alignment rules) and nothing about memory regions; region.c knows how the
 * heaps come to exist (lazily, from mmap, geometrically, under one mutex, and
 * how they survive fork) and nothing about the libc contracts. The two meet in
 * one loop, in malloc.c:
 *
 *     generation = capheap_preload_generation();   (0: no heap yet)
 *     p = <heap_caps call>                          (fast path, no lock of ours)
 *     if p == NULL: capheap_preload_grow(size, alignment, generation)
 *                   true -> try again, false -> ENOMEM
 *
 * Reading the generation *before* the attempt is what lets a thread that lost
 * a race to a growing thread retry instead of mapping a second region.
 */
#ifndef CAPHEAP_PRELOAD_H
#define CAPHEAP_PRELOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_heap_caps.h"

/* The libc policy's capability mask: what heap_caps_malloc_default() asks for
 * while the extmem policy is off (spec 2.7). Every preload heap has these bits. */
#define CAPHEAP_PRELOAD_REQUEST_CAPS (MALLOC_CAP_DEFAULT | MALLOC_CAP_INTERNAL)

/* Minimum alignment of every block: alignof(max_align_t) on the x86-64 and
 * i386 glibc ABIs, what glibc's malloc guarantees. Requests for this much or
 * less take the plain malloc path. */
#define CAPHEAP_PRELOAD_ALIGN 16u

/* Incremented (release) each time a region is registered; 0 until the first
 * one is. An acquire load: one plain load on x86. */
unsigned capheap_preload_generation(void);

/*
 * Called after an allocation of size bytes at alignment (<= CAPHEAP_PRELOAD_ALIGN:
 * plain malloc) failed, with the generation read before that attempt.
 * Returns true when the caller should try again: a region was added (by this
 * call or by another thread since `seen`), or the dry run says the request
 * fits now. Returns false when growing cannot help: the request is larger
 * than any region can be, the heap descriptors are exhausted, or mmap fails.
 * Never allocates through malloc; takes the growth mutex.
 */
bool capheap_preload_grow(size_t size, size_t alignment, unsigned seen);

/* The system page size (valloc, pvalloc); valid after the first region exists. */
size_t capheap_preload_page_size(void);

#endif /* CAPHEAP_PRELOAD_H */
