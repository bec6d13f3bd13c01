/*
 * hooks.c - fans heap_caps' block events out to the debugging features the
 * build enables: task tracking, heap tracing, and the user's
 * esp_heap_trace_alloc_hook / esp_heap_trace_free_hook (weak: called only if
 * the program defines them). Compiled to nothing when all are off.
 *
 * The _in forms carry the block's heap slot and usable size when heap_caps'
 * fast path knows them (usable 0: not known, the tracker finds them).
 *
 * Order: task tracking first (it only counts), then tracing (it may capture
 * a stack), then the user's hook (it may do anything a hook may do).
 */
#include "debug/debug_hooks.h"

#if CH_DEBUG

#include "esp_heap_caps.h"

#if CAPHEAP_USE_HOOKS && defined(__GNUC__)
/* Weak references: a program without the hooks links, and the test is one load. */
extern void esp_heap_trace_alloc_hook(void *ptr, size_t size, uint32_t caps) __attribute__((weak));
extern void esp_heap_trace_free_hook(void *ptr) __attribute__((weak));
#endif

void capheap_debug_alloc(void *ptr, size_t size, uint32_t caps)
{
    capheap_debug_alloc_in(ptr, size, caps, 0, 0);
}

void capheap_debug_realloc(void *old_ptr, void *new_ptr, size_t size, uint32_t caps)
{
    capheap_debug_realloc_in(old_ptr, new_ptr, size, caps, 0, 0);
}

/* usable 0: the block's heap and size are not known (the tracker finds them). */
void capheap_debug_alloc_in(void *ptr, size_t size, uint32_t caps, unsigned heap, size_t usable)
{
    (void)size; /* each consumer takes what it needs */
    (void)caps;
#if CAPHEAP_TASK_TRACKING
    ch_task_alloc_in(ptr, heap, usable);
#else
    (void)heap;
    (void)usable;
#endif
#if CAPHEAP_TRACING
    ch_trace_alloc(ptr, size, caps);
#endif
#if CAPHEAP_USE_HOOKS
    if (esp_heap_trace_alloc_hook != NULL)
        esp_heap_trace_alloc_hook(ptr, size, caps);
#endif
}

void capheap_debug_free(void *ptr)
{
#if CAPHEAP_TASK_TRACKING
    ch_task_free(ptr);
#endif
#if CAPHEAP_TRACING
    ch_trace_free(ptr);
#endif
#if CAPHEAP_USE_HOOKS
    if (esp_heap_trace_free_hook != NULL)
        esp_heap_trace_free_hook(ptr);
#endif
}

void capheap_debug_realloc_in(void *old_ptr, void *new_ptr, size_t size, uint32_t caps, unsigned heap,
                              size_t usable)
{
    (void)size;
    (void)caps;
    /* Tracing and task tracking see the old block go and the new one come
     * (same address when in place); the user's hook sees one allocation with
     * the new size, as ESP-IDF calls it for an in-place realloc. */
#if CAPHEAP_TASK_TRACKING
    ch_task_free(old_ptr);
    ch_task_alloc_in(new_ptr, heap, usable);
#else
    (void)heap;
    (void)usable;
#endif
#if CAPHEAP_TRACING
    ch_trace_free(old_ptr);
    ch_trace_alloc(new_ptr, size, caps);
#endif
#if CAPHEAP_USE_HOOKS
    (void)old_ptr;
    if (esp_heap_trace_alloc_hook != NULL)
        esp_heap_trace_alloc_hook(new_ptr, size, caps);
#endif
}

#else
typedef int capheap_debug_hooks_disabled; /* ISO C: a translation unit is never empty */
#endif
