/*
 * capheap/port.h - every platform primitive capheap uses, with its contract.
 *
 * The engine (src/core) uses none of these; the multi_heap layer uses the lock
 * and the reporter; the reporter uses the printer and abort; task tracking uses
 * the current-task pair. A port is one file in src/port/ (host: pthreads and
 * write(2); baremetal: no lock, output through a weak capheap_port_write() the
 * firmware overrides). The printer and abort handler can be replaced at run
 * time, which is how the tests capture reports and survive aborts.
 */
#ifndef CAPHEAP_PORT_H
#define CAPHEAP_PORT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "capheap/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Acquire / release the lock object given to multi_heap_set_lock(). Must be
 * recursive. Host port: lock is a capheap_lock_t * (recursive pthread mutex).
 * Bare-metal port: both are weak no-ops a firmware may override (for example
 * with an interrupt mask, which also makes the heap ISR-safe).
 */
void capheap_port_lock_acquire(void *lock);
void capheap_port_lock_release(void *lock);

#if CAPHEAP_PORT_HOST
#include <pthread.h>
/** The host port's lock object. */
typedef struct {
    pthread_mutex_t mutex;
} capheap_lock_t;
/** Initialise a recursive lock; returns 0 or an errno value. */
int capheap_lock_init(capheap_lock_t *lock);
/** Destroy a lock no heap uses any more. */
void capheap_lock_destroy(capheap_lock_t *lock);
#endif

/**
 * The task (thread) running now, as an opaque handle, for per-task heap
 * accounting (esp_heap_task_info.h); called on every allocation when task
 * tracking is built in, so it must be cheap, must not allocate from a capheap
 * heap and must not take a heap lock. NULL means "no scheduler yet"
 * ("Pre-scheduler"). Equal handles mean the same task; a handle must not be
 * reused for another task while the first one may still own blocks.
 * Host: a handle per thread, 1, 2, 3, ... in order of first call, never reused
 * (thread-local; at the thread's exit the host port calls
 * capheap_task_deleted()). FreeRTOS: xTaskGetCurrentTaskHandle() (NULL before
 * the scheduler starts). Bare metal: weak, returns NULL.
 */
void *capheap_port_current_task(void);

/**
 * The name of task for statistics, or NULL if the port cannot tell (the
 * caller then shows a name made from the handle). Called when the tracker
 * first sees a task, on that task's own thread, and for NULL. The text must
 * stay readable until the next call from the same thread; it is copied, cut
 * to 15 characters. Must not allocate from a capheap heap.
 * Host: for the calling thread its pthread name if one was set, else "main"
 * for the process's first thread and "thread-N" (N = the handle) for others;
 * NULL for another thread's handle; "Pre-scheduler" for NULL.
 * FreeRTOS: pcTaskGetName(task), "Pre-scheduler" for NULL.
 * Bare metal: weak, returns "Pre-scheduler".
 */
const char *capheap_port_task_name(void *task);

/**
 * Write len bytes of text. Must not allocate from a capheap heap. Host: write(2)
 * to stderr. Bare metal: weak, does nothing; override it with your UART.
 */
void capheap_port_write(const char *text, size_t len);

/** Replaceable text sink; NULL restores capheap_port_write(). Returns the previous sink.
 *  May be called while other threads print: a line another thread is printing meanwhile may
 *  still go to the previous sink, also after this returns. */
typedef void (*capheap_write_fn)(const char *text, size_t len);
capheap_write_fn capheap_set_writer(capheap_write_fn fn);

/**
 * printf-style output through the current sink, without allocating and without
 * stdio. Supports %s %c %d %i %u %x %X %p %% with optional '0', width, and the
 * length modifiers l, ll, z. Output longer than 160 bytes is cut.
 */
void capheap_printf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/** capheap_printf() with a va_list. */
void capheap_vprintf(const char *fmt, va_list ap);

/**
 * Stop the program after a corruption report. Host: abort(). Bare metal: weak,
 * spins forever; override with your reset or fault handler.
 */
void capheap_port_abort(const char *reason);

/** Replaceable abort; NULL restores capheap_port_abort(). Returns the previous one.
 *  A test handler may longjmp out; the handler must not return. May be called while other
 *  threads report, as capheap_set_writer(). */
typedef void (*capheap_abort_fn)(const char *reason);
capheap_abort_fn capheap_set_abort_handler(capheap_abort_fn fn);

/**
 * Return addresses of the calling thread's stack, innermost first: frames[0]
 * is where the caller of capheap_port_backtrace() will return to after the
 * `skip` frames above it have been dropped (skip 0: the caller's own return
 * address). Writes at most depth entries and returns how many it wrote (0 if
 * the port cannot unwind). Never allocates from a capheap heap, never takes a
 * capheap lock, never faults on a stack it cannot read (it stops instead).
 * May be called with a heap or the trace lock held.
 *
 * Host: a frame-pointer walk bounded by the thread's stack when capheap and
 * its callers keep frame pointers (any -O0 build, or -fno-omit-frame-pointer
 * with CAPHEAP_TRACE_FRAME_POINTERS defined), else glibc's backtrace()
 * (DWARF unwinding: exact at any optimisation level, about 1 us per call).
 * Bare metal: weak, returns 0; a firmware with frame pointers overrides it.
 */
size_t capheap_port_backtrace(void **frames, size_t depth, size_t skip);

/**
 * A free-running 32-bit cycle or time counter, for the ccount field of trace
 * records (ESP-IDF stores the CPU cycle count). Only differences matter; it
 * wraps. Host: the x86 time-stamp counter, elsewhere CLOCK_MONOTONIC in
 * nanoseconds. Bare metal: weak, returns 0 (override with DWT->CYCCNT,
 * mcycle, a timer...). ISR-safe, lock-free, allocation-free.
 */
uint32_t capheap_port_cycle_count(void);

/**
 * A short critical section, for targets whose CPU has no atomic
 * read-modify-write instruction (RV32 without the A extension, e.g. RV32IMC
 * as on the ESP32-C3; Armv6-M, e.g. Cortex-M0+): there the library updates its
 * one shared counter (the check passes' tokens, capheap/check.h) inside
 * enter() / exit() instead of with an atomic add, which such a CPU cannot do
 * without a C library routine that bare-metal toolchains do not provide. On
 * every other target the library does not call these. enter() returns the
 * state exit() restores; sections do not nest.
 * Host: a process-wide mutex. Bare metal: weak; masks interrupts on Cortex-M
 * (PRIMASK) and on RISC-V in machine mode (mstatus.MIE, needs Zicsr), and does
 * nothing elsewhere. A firmware whose heap is used from several cores, or
 * from RISC-V user mode, overrides both (e.g. with its RTOS's critical section).
 */
uint32_t capheap_port_critical_enter(void);
void capheap_port_critical_exit(uint32_t state);

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_PORT_H */
