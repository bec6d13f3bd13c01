/*
 * port_baremetal.c - the bare-metal port: no OS, no stdio.
 *
 * Every primitive is a weak definition a firmware overrides with its own:
 * the lock (for example an interrupt mask, which also makes the heap safe to
 * use from ISRs), the text sink (a UART), abort (a reset or fault handler),
 * the current task (an RTOS's task handle and name), the unwinder heap
 * tracing uses to record callers, and the cycle counter of its records. The
 * defaults: no locking, output dropped, abort spins forever, one task,
 * "Pre-scheduler", no stack (tracing records depth 0), a counter that stays 0.
 */
#include "capheap/port.h"

#if defined(__GNUC__)
#define CAPHEAP_WEAK __attribute__((weak))
#else
#define CAPHEAP_WEAK
#endif

CAPHEAP_WEAK void capheap_port_lock_acquire(void *lock)
{
    (void)lock;
}

CAPHEAP_WEAK void capheap_port_lock_release(void *lock)
{
    (void)lock;
}

CAPHEAP_WEAK void capheap_port_write(const char *text, size_t len)
{
    (void)text;
    (void)len;
}

CAPHEAP_WEAK void capheap_port_abort(const char *reason)
{
    (void)reason;
    for (;;) {
    }
}

CAPHEAP_WEAK void *capheap_port_current_task(void)
{
    return NULL;
}

CAPHEAP_WEAK const char *capheap_port_task_name(void *task)
{
    (void)task;
    return "Pre-scheduler";
}

CAPHEAP_WEAK size_t capheap_port_backtrace(void **frames, size_t depth, size_t skip)
{
    (void)frames;
    (void)depth;
    (void)skip;
    return 0;
}

CAPHEAP_WEAK uint32_t capheap_port_cycle_count(void)
{
    return 0;
}
