/*
 * port_host.c - the host port (Linux and other POSIX systems): recursive
 * pthread mutexes as heap locks, write(2) to stderr as the text sink, abort()
 * after a fatal report, threads as the "tasks" of task tracking, and for heap
 * tracing a stack unwinder and a cycle counter; a mutex for the critical
 * section that only CPUs without atomic read-modify-write need (port.h).
 *
 * Tasks: a thread gets its handle on its first capheap_port_current_task()
 * call, from a process-wide counter (1, 2, 3, ...; never reused, so a block of
 * a dead thread is never charged to a newer one). The handle sits in a
 * thread-local word (initial-exec TLS: one load, also in the shared library),
 * and in a pthread key whose destructor tells task tracking the thread ended.
 *
 * The unwinder has two ways. When every frame between a traced call and the
 * user keeps a frame pointer (gcc and clang at -O0, or a build with
 * -fno-omit-frame-pointer that defines CAPHEAP_TRACE_FRAME_POINTERS), it
 * follows the chain of frame records, about ten instructions a frame:
 *
 *      higher addresses (outer frames)
 *      | ...             |
 *      | return address  |  fp[1]   x86-64, i386, AArch64 all lay out
 *      | saved fp  ------+--> fp[0]  a frame record this way
 *      | locals          |
 *      lower addresses (inner frames)
 *
 * Each step checks that the next record lies above the current one, inside
 * the thread's stack and aligned, so a frame without a frame pointer ends the
 * walk (or yields a wrong address) but never a fault. Otherwise it calls
 * glibc's backtrace(), which unwinds from DWARF call-frame information:
 * exact at any optimisation level but two orders of magnitude slower.
 */
#define _GNU_SOURCE /* PTHREAD_MUTEX_RECURSIVE, pthread_getattr_np, pthread_getname_np, syscall */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "capheap/port.h"
#include "capheap/task_info.h"
#include "port/port_private.h"

void capheap_port_lock_acquire(void *lock)
{
    (void)pthread_mutex_lock(&((capheap_lock_t *)lock)->mutex);
}

void capheap_port_lock_release(void *lock)
{
    (void)pthread_mutex_unlock(&((capheap_lock_t *)lock)->mutex);
}

int capheap_lock_init(capheap_lock_t *lock)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    if (rc == 0)
        rc = pthread_mutex_init(&lock->mutex, &attr);
    (void)pthread_mutexattr_destroy(&attr);
    return rc;
}

void capheap_lock_destroy(capheap_lock_t *lock)
{
    (void)pthread_mutex_destroy(&lock->mutex);
}

void capheap_port_write(const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, text, len);
        if (n <= 0)
            return;
        text += n;
        len -= (size_t)n;
    }
}

void capheap_port_abort(const char *reason)
{
    (void)reason; /* already printed by the reporter */
    abort();
}

/* ---- tasks ----------------------------------------------------------------- */

#if defined(__GNUC__)
#define CH_TLS __thread __attribute__((tls_model("initial-exec")))
#else
#define CH_TLS _Thread_local
#endif

#define CH_NAME_LEN 16 /* FreeRTOS's configMAX_TASK_NAME_LEN, NUL included */

#if defined(__GNUC__)
/* port_private.h reads it inline (capheap_current_task_fast). */
CH_TLS void *capheap_host_self_task;
#define ch_self_task capheap_host_self_task
#else
static CH_TLS void *ch_self_task;
#endif
static CH_TLS char ch_self_name[CH_NAME_LEN];
static uintptr_t ch_task_counter;
static pthread_key_t ch_task_key;
static pthread_once_t ch_task_once = PTHREAD_ONCE_INIT;
static int ch_task_key_ok;

static CH_TLS bool ch_exited;

/* A destructor that runs after this one (another key's, a C++ thread_local's)
 * may still allocate: the tracker asks capheap_host_thread_exited() and files
 * such a block under a deleted task, not a new live one. (Setting the key
 * again to be called once more would also do, but ThreadSanitizer's runtime
 * has already let go of the thread in those later rounds and crashes.) */
static void ch_thread_exit(void *task)
{
    ch_exited = true;
    capheap_task_deleted(task);
}

bool capheap_host_thread_exited(void)
{
    return ch_exited;
}

static void ch_make_task_key(void)
{
    ch_task_key_ok = pthread_key_create(&ch_task_key, ch_thread_exit) == 0;
}

static void *ch_first_task_call(void)
{
    uintptr_t id = __atomic_add_fetch(&ch_task_counter, 1u, __ATOMIC_RELAXED);
    /* Set before anything that may allocate (pthread_setspecific can): an
     * allocation from in there finds the handle and does not come back. */
    ch_self_task = (void *)id;
    (void)pthread_once(&ch_task_once, ch_make_task_key);
    if (ch_task_key_ok)
        (void)pthread_setspecific(ch_task_key, ch_self_task);
    return ch_self_task;
}

void *capheap_port_current_task(void)
{
    void *t = ch_self_task;
    return t != NULL ? t : ch_first_task_call();
}

static void ch_decimal(char *out, size_t room, const char *prefix, uintptr_t v)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0 && n < sizeof digits);
    size_t k = 0;
    while (*prefix != '\0' && k + 1 < room)
        out[k++] = *prefix++;
    while (n > 0 && k + 1 < room)
        out[k++] = digits[--n];
    out[k] = '\0';
}

const char *capheap_port_task_name(void *task)
{
    if (task == NULL)
        return "Pre-scheduler";
    if (task != ch_self_task)
        return NULL;
#if defined(__linux__)
    /* A thread's name is its creator's until it sets one: a name equal to the
     * program's means "not set". */
    char name[CH_NAME_LEN];
    if (pthread_getname_np(pthread_self(), name, sizeof name) == 0 && name[0] != '\0' &&
        strncmp(name, program_invocation_short_name, CH_NAME_LEN - 1) != 0) {
        memcpy(ch_self_name, name, sizeof name);
        return ch_self_name;
    }
    if ((long)getpid() == syscall(SYS_gettid)) {
        memcpy(ch_self_name, "main", sizeof "main");
        return ch_self_name;
    }
#endif
    ch_decimal(ch_self_name, sizeof ch_self_name, "thread-", (uintptr_t)task);
    return ch_self_name;
}

/* ---- stack unwinding ------------------------------------------------------- */

#define CH_FP_WALK CAPHEAP_HOST_FP_WALK /* port_private.h */

/* The most frames one call asks for: CAPHEAP_TRACE_STACK_DEPTH (<= 32) plus
 * the library's own frames the tracer drops afterwards. */
#define CH_BT_MAX 64u

#if CH_FP_WALK
extern void *__libc_stack_end; /* glibc: the top of the main thread's stack */

static __thread uintptr_t stack_lo, stack_hi;

/* The calling thread's stack [lo, hi), found once per thread. The main
 * thread's from __libc_stack_end (its size from the rlimit is not needed: a
 * walk only goes up); other threads' from pthread_getattr_np(), which may use
 * the C library's malloc once. Out of line: the walk that calls it on every
 * traced allocation then saves no registers. */
static __attribute__((noinline, cold)) int stack_bounds_first(void)
{
    {
        if ((long)getpid() == (long)syscall(SYS_gettid)) {
            stack_lo = 1;
            stack_hi = (uintptr_t)__libc_stack_end;
        } else {
            pthread_attr_t attr;
            void *base;
            size_t size;
            if (pthread_getattr_np(pthread_self(), &attr) != 0)
                return 0;
            if (pthread_attr_getstack(&attr, &base, &size) == 0) {
                stack_lo = (uintptr_t)base;
                stack_hi = (uintptr_t)base + size;
            }
            (void)pthread_attr_destroy(&attr);
            if (stack_hi == 0)
                return 0;
        }
    }
    return 1;
}

static inline int stack_bounds(uintptr_t *lo, uintptr_t *hi)
{
    if (__builtin_expect(stack_hi == 0, 0) && !stack_bounds_first())
        return 0;
    *lo = stack_lo;
    *hi = stack_hi;
    return 1;
}

/* The walk from the frame record at fp: skip records, then the leading ones
 * whose return address lies in own's spans (if own; at most max_own: more
 * is a walk gone astray), then up to depth return addresses into
 * frames. Records only go up the stack: each next one must lie above the
 * current one, below the top, aligned, so the walk ends (it cannot fault) at
 * the first frame without a frame pointer or at the thread's first frame. */
static inline __attribute__((always_inline, no_sanitize_address)) size_t
fp_walk(uintptr_t fp, void **frames, size_t depth, size_t skip, const capheap_code_span_t *own, size_t max_own)
{
    uintptr_t lo, hi;
    if (depth == 0 || !stack_bounds(&lo, &hi))
        return 0;
    const uintptr_t top = hi - 2u * sizeof(void *);
    if (fp < lo || fp >= top)
        return 0;
#define CH_NEXT_OK(next, fp) ((next) - (fp) - 1u < top - (fp) - 1u && ((next) & (sizeof(void *) - 1u)) == 0)
    const uintptr_t *record = (const uintptr_t *)fp;
    for (size_t passed = 0; skip > 0 || (own != NULL && capheap_in_code(own, record[1]));) {
        if (skip > 0)
            skip--;
        else if (passed++ == max_own)
            return 0;
        uintptr_t next = record[0];
        if (!CH_NEXT_OK(next, fp))
            return 0;
        fp = next;
        record = (const uintptr_t *)fp;
    }
    size_t n = 0;
    for (;;) {
        uintptr_t next = record[0], ret = record[1];
        if (ret == 0)
            break;
        frames[n++] = (void *)ret;
        if (n == depth || !CH_NEXT_OK(next, fp))
            break;
        fp = next;
        record = (const uintptr_t *)fp;
    }
#undef CH_NEXT_OK
    return n;
}

__attribute__((noinline, no_sanitize_address)) size_t capheap_port_backtrace(void **frames, size_t depth,
                                                                              size_t skip)
{
    /* Our own record first: its return address is the caller's position,
     * which is not part of the answer (frames[0] is the caller's return
     * address). */
    return fp_walk((uintptr_t)__builtin_frame_address(0), frames, depth, skip + 1u, NULL, 0);
}

/* For the tracer (port_private.h): from the record at frame (the caller's
 * own), the library's leading frames passed over in the same walk. */
__attribute__((noinline, no_sanitize_address)) size_t capheap_host_backtrace_beyond(const void *frame, void **frames,
                                                                                    size_t depth,
                                                                                    const capheap_code_span_t own[2],
                                                                                    size_t max_own)
{
    return fp_walk((uintptr_t)frame, frames, depth, 0, own, max_own);
}

#else /* DWARF unwinding through the C library */

#include <execinfo.h>

/* Entries backtrace() may list before our caller's position, which is one of them. */
#define CH_BT_LEAD 3u

__attribute__((noinline)) size_t capheap_port_backtrace(void **frames, size_t depth, size_t skip)
{
    /* The answer starts after our caller's position (where we return to),
     * at the caller's own return address, as the frame-pointer walk's does.
     * glibc's backtrace() lists our own position first and then the
     * caller's; ASan's interceptor of it puts its own frame in front: so
     * the caller's is looked for among the first entries, not counted. */
    void *buf[CH_BT_MAX];
    if (depth == 0 || skip >= CH_BT_MAX - CH_BT_LEAD)
        return 0;
    size_t want = depth + skip + CH_BT_LEAD;
    if (want > CH_BT_MAX)
        want = CH_BT_MAX;
    int got = backtrace(buf, (int)want);
    size_t have = got > 0 ? (size_t)got : 0;
    void *back = __builtin_return_address(0);
    size_t first = 2; /* not found (cannot happen with either): glibc's layout */
    for (size_t i = 0; i < CH_BT_LEAD && i < have; i++)
        if (buf[i] == back) {
            first = i + 1u;
            break;
        }
    size_t n = 0;
    for (size_t i = first + skip; i < have && n < depth; i++)
        frames[n++] = buf[i];
    return n;
}
#endif

/* ---- cycle counter ------------------------------------------------------- */

uint32_t capheap_port_cycle_count(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    return (uint32_t)__builtin_ia32_rdtsc();
#else
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
#endif
}

/* ---- critical section (port.h: used only without atomic read-modify-write) */

static pthread_mutex_t critical_mutex = PTHREAD_MUTEX_INITIALIZER;

uint32_t capheap_port_critical_enter(void)
{
    (void)pthread_mutex_lock(&critical_mutex);
    return 0;
}

void capheap_port_critical_exit(uint32_t state)
{
    (void)state;
    (void)pthread_mutex_unlock(&critical_mutex);
}
