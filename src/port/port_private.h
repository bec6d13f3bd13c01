/*
 * port_private.h - what the library's own layers need from the port beyond
 * the public capheap/port.h.
 */
#ifndef CAPHEAP_PORT_PRIVATE_H
#define CAPHEAP_PORT_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include "capheap/config.h"
#include "capheap/port.h"

/* A replaceable function (a sink, the abort handler, the report's epilogue):
 * set from one thread while others may call it, so read once, atomically,
 * and published with release so the function sees what its setter prepared
 * (a concurrency audit: a test for NULL and a second read for the call could
 * call through NULL). Plain loads and stores on every chip, no
 * read-modify-write (Armv6-M and RV32 without A have none). On bare metal
 * the read is relaxed: an acquire there is a barrier instruction in every
 * report and line printed (+12 B of the heap_caps image on Cortex-M4, over
 * its budget), and the call through the pointer it loads cannot be made
 * before the load; the host, where ThreadSanitizer checks the pairing,
 * reads with acquire. */
#if defined(__GNUC__)
#if CAPHEAP_PORT_HOST
#define CH_HOOK_GET(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#else
#define CH_HOOK_GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#endif
#define CH_HOOK_SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#else
#define CH_HOOK_GET(x) (x)
#define CH_HOOK_SET(x, v) ((x) = (v))
#endif

/* Call the current abort handler (the test's, or the port's). Does not return. */
void capheap_port_abort_now(const char *reason);

/* Hand text to the current sink (the test's, or capheap_port_write). */
void capheap_write(const char *text, size_t len);

/* The texts of the engine's fault kinds (ce_fault_kind_t, core/tlsf.h), one
 * string in kind order, each after the previous one's NUL: "Corrupt heap"
 * (CE_OK), "Pointer outside heap", "Double free", "Interior pointer",
 * "Smashed header", "Bad neighbour". In report.c, whose reports without a
 * what say the first: one copy of it (-13 B). */
extern const char capheap_fault_texts[];

#if CAPHEAP_PORT_HOST
/* True once the calling thread's capheap destructor ran (thread exit): what it
 * allocates from later destructors belongs to a deleted task (task_info.c). */
bool capheap_host_thread_exited(void);
#endif

/* capheap_port_current_task() on the library's hot paths (task tracking asks
 * on every allocation). On the host the handle is a thread-local word, read
 * inline once the thread's first call has assigned it. Elsewhere the port's
 * function (FreeRTOS: the task handle) is the only way. */
/* capheap_current_task_known(): the handle, or NULL when the caller must ask
 * capheap_port_current_task() on its slow path. On the host it is a load
 * (the hot path stays free of calls, and so of saved registers). */
#if CAPHEAP_PORT_HOST && defined(__GNUC__)
extern __thread void *capheap_host_self_task __attribute__((tls_model("initial-exec")));
static inline void *capheap_current_task_known(void)
{
    return capheap_host_self_task;
}
#else
static inline void *capheap_current_task_known(void)
{
    return capheap_port_current_task(); /* NULL before the scheduler: the caller's slow path */
}
#endif

/* The library's code, for heap tracing's stacks: return addresses in
 * [lo, lo + span) of either span are its frames (capheap's archive, and the
 * simulator's libc and C++ wrappers, which may lie elsewhere in a link). */
typedef struct {
    uintptr_t lo, span;
} capheap_code_span_t;

static inline bool capheap_in_code(const capheap_code_span_t own[2], uintptr_t ret)
{
    return ret - own[0].lo < own[0].span || ret - own[1].lo < own[1].span;
}

/* Stack walking by frame pointers on the host (port_host.c): built with
 * frame pointers kept (unoptimised, or CAPHEAP_TRACE_FRAME_POINTERS, which
 * tracing builds define), on the architectures whose frame records it knows,
 * with glibc's __libc_stack_end; otherwise backtrace(). */
#if CAPHEAP_PORT_HOST && defined(__GNUC__) &&                                                           \
    (defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)) &&                                \
    (!defined(__OPTIMIZE__) || defined(CAPHEAP_TRACE_FRAME_POINTERS)) && defined(__GLIBC__)
#define CAPHEAP_HOST_FP_WALK 1
#include <stdint.h>
/* capheap_port_backtrace() from the frame record at frame (the caller's
 * __builtin_frame_address(0)) that passes over the library's own leading
 * frames (return addresses in own's spans, at most max_own) in the same
 * walk. */
size_t capheap_host_backtrace_beyond(const void *frame, void **frames, size_t depth,
                                     const capheap_code_span_t own[2], size_t max_own);
#else
#define CAPHEAP_HOST_FP_WALK 0
#endif

#endif
