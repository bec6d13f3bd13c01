/*
 * debug_hooks.h - where heap_caps tells the debugging layer about blocks.
 *
 * The caps layer (src/caps) calls these after every successful allocation,
 * after every free, and after a realloc that kept its block in its heap, with
 * the pointer the user sees and the size and caps after the request's
 * adjustment (ESP-IDF's hook semantics, spec 1.1). A realloc that moves is an
 * allocation of the new block and a free of the old one; a failed realloc
 * reports nothing. src/debug/hooks.c fans the events out to heap tracing,
 * task tracking and the user's esp_heap_trace_*_hook functions.
 *
 * Most paths know more: the block's heap (its registry slot, or
 * CH_HEAP_UNKNOWN when they hold only its handle) and its usable size, which
 * multi_heap reports under the lock it takes anyway when task tracking is on
 * (the CH_MH_* calls below). They report with the _IN forms, so the tracker
 * neither searches the registry nor locks the heap again. A usable size of 0
 * means "not known": the tracker asks for it.
 *
 * With every debugging option off (the default) the macros are empty: the
 * allocation paths carry no call and no test.
 */
#ifndef CAPHEAP_DEBUG_HOOKS_H
#define CAPHEAP_DEBUG_HOOKS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "capheap/config.h"
#include "heap/heap_private.h"
#include "multi_heap.h"

#define CH_DEBUG (CAPHEAP_TRACING || CAPHEAP_USE_HOOKS || CAPHEAP_TASK_TRACKING)

#if CH_DEBUG
void capheap_debug_alloc(void *ptr, size_t size, uint32_t caps);
void capheap_debug_free(void *ptr);
void capheap_debug_realloc(void *old_ptr, void *new_ptr, size_t size, uint32_t caps);
void capheap_debug_alloc_in(void *ptr, size_t size, uint32_t caps, unsigned heap, size_t usable);
void capheap_debug_realloc_in(void *old_ptr, void *new_ptr, size_t size, uint32_t caps, unsigned heap,
                              size_t usable);
/* Consumers (each defined only when its option is on). */
void ch_trace_alloc(void *ptr, size_t size, uint32_t caps); /* src/debug/trace.c */
void ch_trace_free(void *ptr);
void ch_trace_describe(const void *ptr); /* capheap_describe_block */
void ch_trace_fork_prepare(void); /* fork: see capheap_caps_lock_all */
void ch_trace_fork_parent(void);
void ch_trace_fork_child(void);
void ch_task_alloc_in(void *ptr, unsigned heap, size_t usable); /* src/debug/task_info.c; heap: registry slot */
void ch_task_free(void *ptr);
void ch_task_free_then(void *ptr, multi_heap_handle_t mh); /* ch_task_free, then capheap_heap_free_locked */
void ch_task_describe(const void *ptr); /* capheap_describe_block */
void ch_task_fork_prepare(void); /* fork: see capheap_caps_lock_all */
void ch_task_fork_parent(void);
void ch_task_fork_child(void);
#define CH_DEBUG_ALLOC(p, size, caps) capheap_debug_alloc((p), (size), (caps))
#if CAPHEAP_TASK_TRACKING && !CAPHEAP_TRACING && !CAPHEAP_USE_HOOKS
/* task tracking alone: straight to it (no dispatcher on the hot paths) */
#define CH_DEBUG_FREE(p) ch_task_free(p)
#define CH_DEBUG_ALLOC_IN(p, size, caps, heap, usable) ch_task_alloc_in((p), (heap), (usable))
#else
#define CH_DEBUG_FREE(p) capheap_debug_free(p)
#define CH_DEBUG_ALLOC_IN(p, size, caps, heap, usable) capheap_debug_alloc_in((p), (size), (caps), (heap), (usable))
#endif
#define CH_DEBUG_REALLOC(old, p, size, caps) capheap_debug_realloc((old), (p), (size), (caps))
#define CH_DEBUG_REALLOC_IN(old, p, size, caps, heap, usable)                                                 \
    capheap_debug_realloc_in((old), (p), (size), (caps), (heap), (usable))
#else
#define CH_DEBUG_ALLOC(p, size, caps) ((void)0)
#define CH_DEBUG_FREE(p) ((void)(p))
#define CH_DEBUG_REALLOC(old, p, size, caps) ((void)(old))
#define CH_DEBUG_ALLOC_IN(p, size, caps, heap, usable) ((void)(usable))
#define CH_DEBUG_REALLOC_IN(old, p, size, caps, heap, usable) ((void)(old), (void)(usable))
#endif

/* multi_heap's malloc and realloc on heap_caps' paths: the public malloc
 * (CH_MH_MALLOC) and, on the fast paths of speed builds, the locked halves
 * (CH_MH_*_LOCKED: a registered heap, p not NULL, size not 0). `usable` is a
 * size_t the _IN events then report; with task tracking multi_heap fills it
 * in under the lock it takes anyway. */
#if CAPHEAP_TASK_TRACKING
#define CH_MH_MALLOC(mh, size, usable) capheap_heap_malloc_sized((mh), (size), &(usable))
#define CH_MH_MALLOC_LOCKED(mh, size, usable) capheap_heap_malloc_sized((mh), (size), &(usable))
#define CH_MH_REALLOC_LOCKED(mh, p, size, usable) capheap_heap_realloc_sized((mh), (p), (size), &(usable))
#else
#define CH_MH_MALLOC(mh, size, usable) multi_heap_malloc((mh), (size))
#define CH_MH_MALLOC_LOCKED(mh, size, usable) capheap_heap_malloc_locked((mh), (size))
#define CH_MH_REALLOC_LOCKED(mh, p, size, usable) capheap_heap_realloc_locked((mh), (p), (size))
#endif

/* heap_caps_free's fast path: report the free, then multi_heap's locked
 * half frees. Task tracking alone: one call; the tracker frees last. */
#if CAPHEAP_TASK_TRACKING && !CAPHEAP_TRACING && !CAPHEAP_USE_HOOKS
#define CH_FREE_LOCKED_REPORTED(mh, p) ch_task_free_then((p), (mh))
#else
#define CH_FREE_LOCKED_REPORTED(mh, p) (CH_DEBUG_FREE(p), capheap_heap_free_locked((mh), (p)))
#endif

/* The heap argument of the _IN events when the caller has the block's
 * multi_heap handle but not its registry slot (the tracker finds it). */
#define CH_HEAP_UNKNOWN UINT_MAX

#endif /* CAPHEAP_DEBUG_HOOKS_H */
