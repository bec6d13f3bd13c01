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
 * With every debugging option off (the default) the macros are empty: the
 * allocation paths carry no call and no test.
 */
#ifndef CAPHEAP_DEBUG_HOOKS_H
#define CAPHEAP_DEBUG_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "capheap/config.h"

#define CH_DEBUG (CAPHEAP_TRACING || CAPHEAP_USE_HOOKS || CAPHEAP_TASK_TRACKING)

#if CH_DEBUG
void capheap_debug_alloc(void *ptr, size_t size, uint32_t caps);
void capheap_debug_free(void *ptr);
void capheap_debug_realloc(void *old_ptr, void *new_ptr, size_t size, uint32_t caps);
/* Consumers (each defined only when its option is on). */
void ch_trace_alloc(void *ptr, size_t size, uint32_t caps); /* src/debug/trace.c */
void ch_trace_free(void *ptr);
void ch_trace_describe(const void *ptr); /* capheap_describe_block */
void ch_trace_fork_prepare(void); /* fork: see capheap_caps_lock_all */
void ch_trace_fork_parent(void);
void ch_trace_fork_child(void);
void ch_task_alloc(void *ptr, size_t size, uint32_t caps);  /* src/debug/task_info.c */
void ch_task_free(void *ptr);
void ch_task_describe(const void *ptr); /* capheap_describe_block */
void ch_task_fork_prepare(void); /* fork: see capheap_caps_lock_all */
void ch_task_fork_parent(void);
void ch_task_fork_child(void);
#define CH_DEBUG_ALLOC(p, size, caps) capheap_debug_alloc((p), (size), (caps))
#define CH_DEBUG_FREE(p) capheap_debug_free(p)
#define CH_DEBUG_REALLOC(old, p, size, caps) capheap_debug_realloc((old), (p), (size), (caps))
#else
#define CH_DEBUG_ALLOC(p, size, caps) ((void)0)
#define CH_DEBUG_FREE(p) ((void)(p))
#define CH_DEBUG_REALLOC(old, p, size, caps) ((void)(old))
#endif

#endif /* CAPHEAP_DEBUG_HOOKS_H */
