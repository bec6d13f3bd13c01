/*
 * hooks.c - fans heap_caps' block events out to the debugging features the
 * build enables: task tracking, heap tracing, and the user's
 * esp_heap_trace_alloc_hook / esp_heap_trace_free_hook (weak: called only if
 * the program defines them). Compiled to nothing when all are off.
 *
 * The _counted forms leave task tracking out: heap_caps' fast paths charge
 * and credit it themselves with the blocks' owner words (debug_hooks.h).
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
extern void capheap_heap_trace_realloc_hook(void *old_ptr, void *new_ptr, size_t size, uint32_t caps)
    __attribute__((weak));
#endif

/* Tracing, then the user's hook: everything but task tracking. */
void capheap_debug_alloc_counted(void *ptr, size_t size, uint32_t caps)
{
#if CAPHEAP_TRACING
    ch_trace_alloc(ptr, size, caps);
#endif
#if CAPHEAP_USE_HOOKS
    if (esp_heap_trace_alloc_hook != NULL)
        esp_heap_trace_alloc_hook(ptr, size, caps);
#endif
    (void)ptr;
    (void)size;
    (void)caps;
}

void capheap_debug_free_counted(void *ptr)
{
#if CAPHEAP_TRACING
    ch_trace_free(ptr);
#endif
#if CAPHEAP_USE_HOOKS
    if (esp_heap_trace_free_hook != NULL)
        esp_heap_trace_free_hook(ptr);
#endif
    (void)ptr;
}

void capheap_debug_alloc(void *ptr, size_t size, uint32_t caps)
{
#if CAPHEAP_TASK_TRACKING
    ch_task_alloc(ptr);
#endif
    capheap_debug_alloc_counted(ptr, size, caps);
}

void capheap_debug_free(void *ptr)
{
#if CAPHEAP_TASK_TRACKING
    ch_task_free(ptr);
#endif
    capheap_debug_free_counted(ptr);
}

/* Tracing sees the old block go and the new one come (same address when in
 * place); the user's realloc hook, where the program defines one, both
 * addresses (capheap/caps.h), else the alloc hook one allocation with the new
 * size, as ESP-IDF calls it for a realloc its heap serves. Task tracking is
 * not told: reallocs account for it with the owner words (route.c). */
void capheap_debug_realloc(void *old_ptr, unsigned token, void *new_ptr, size_t size, uint32_t caps)
{
#if CAPHEAP_TRACING
    ch_trace_realloc_free(old_ptr, token); /* token: ch_trace_realloc_begin's (debug_hooks.h) */
    ch_trace_alloc(new_ptr, size, caps);
#endif
    (void)token;
#if CAPHEAP_USE_HOOKS && defined(__GNUC__)
    if (capheap_heap_trace_realloc_hook != NULL) {
        capheap_heap_trace_realloc_hook(old_ptr, new_ptr, size, caps);
        return;
    }
#endif
#if CAPHEAP_USE_HOOKS
    if (esp_heap_trace_alloc_hook != NULL)
        esp_heap_trace_alloc_hook(new_ptr, size, caps);
#endif
    (void)old_ptr;
    (void)new_ptr;
    (void)size;
    (void)caps;
}

#else
typedef int capheap_debug_hooks_disabled; /* ISO C: a translation unit is never empty */
#endif
