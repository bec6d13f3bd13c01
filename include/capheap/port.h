/*
 * capheap/port.h - every platform primitive capheap uses, with its contract.
 *
 * The engine (src/core) uses none of these; the multi_heap layer uses the lock
 * and the reporter; the reporter uses the printer and abort. A port is one
 * file in src/port/ (host: pthreads and write(2); baremetal: no lock, output
 * through a weak capheap_port_write() the firmware overrides). The printer and
 * abort handler can be replaced at run time, which is how the tests capture
 * reports and survive aborts.
 */
#ifndef CAPHEAP_PORT_H
#define CAPHEAP_PORT_H

#include <stdarg.h>
#include <stddef.h>

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
 * Write len bytes of text. Must not allocate from a capheap heap. Host: write(2)
 * to stderr. Bare metal: weak, does nothing; override it with your UART.
 */
void capheap_port_write(const char *text, size_t len);

/** Replaceable text sink; NULL restores capheap_port_write(). Returns the previous sink. */
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
void capheap_vprintf(const char *fmt, va_list ap);

/**
 * Stop the program after a corruption report. Host: abort(). Bare metal: weak,
 * spins forever; override with your reset or fault handler.
 */
void capheap_port_abort(const char *reason);

/** Replaceable abort; NULL restores capheap_port_abort(). Returns the previous one.
 *  A test handler may longjmp out; the handler must not return. */
typedef void (*capheap_abort_fn)(const char *reason);
capheap_abort_fn capheap_set_abort_handler(capheap_abort_fn fn);

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_PORT_H */
