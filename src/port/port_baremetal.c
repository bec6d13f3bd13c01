/*
 * port_baremetal.c - the bare-metal port: no OS, no stdio.
 *
 * Every primitive is a weak definition a firmware overrides with its own:
 * the lock (for example an interrupt mask, which also makes the heap safe to
 * use from ISRs), the text sink (a UART), abort (a reset or fault handler),
 * the current task (an RTOS's task handle and name), the unwinder heap
 * tracing uses to record callers, the cycle counter of its records, and the
 * critical section that stands in for an atomic add on CPUs without one. The
 * defaults: no locking, output dropped, abort spins forever, one task,
 * "Pre-scheduler", no stack (tracing records depth 0), a counter that stays 0,
 * interrupts masked on Cortex-M and RISC-V machine mode.
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

/* Interrupts masked: PRIMASK on Cortex-M, mstatus.MIE (bit 3) on RISC-V in
 * machine mode; the state returned is the mask as it was. */
CAPHEAP_WEAK uint32_t capheap_port_critical_enter(void)
{
    uint32_t state = 0;
#if defined(__GNUC__) && defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(state) : : "memory");
#elif defined(__GNUC__) && defined(__riscv) && defined(__riscv_zicsr)
    __asm__ volatile("csrrci %0, mstatus, 8" : "=r"(state) : : "memory");
#endif
    return state;
}

CAPHEAP_WEAK void capheap_port_critical_exit(uint32_t state)
{
#if defined(__GNUC__) && defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'
    __asm__ volatile("msr primask, %0" : : "r"(state) : "memory");
#elif defined(__GNUC__) && defined(__riscv) && defined(__riscv_zicsr)
    __asm__ volatile("csrs mstatus, %0" : : "r"(state & 8u) : "memory");
#else
    (void)state;
#endif
}
