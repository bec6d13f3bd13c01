/*
 * port_host.c - the host port (Linux and other POSIX systems): recursive
 * pthread mutexes as heap locks, write(2) to stderr as the text sink, abort()
 * after a fatal report, and threads as the "tasks" of task tracking.
 *
 * Tasks: a thread gets its handle on its first capheap_port_current_task()
 * call, from a process-wide counter (1, 2, 3, ...; never reused, so a block of
 * a dead thread is never charged to a newer one). The handle sits in a
 * thread-local word (initial-exec TLS: one load, also in the shared library),
 * and in a pthread key whose destructor tells task tracking the thread ended.
 */
#if defined(__linux__)
#define _GNU_SOURCE /* pthread_getname_np, syscall(SYS_gettid), program_invocation_short_name */
#endif
#define _XOPEN_SOURCE 700 /* PTHREAD_MUTEX_RECURSIVE under -std=c11 */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "capheap/port.h"
#include "capheap/task_info.h"

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

static CH_TLS void *ch_self_task;
static CH_TLS char ch_self_name[CH_NAME_LEN];
static uintptr_t ch_task_counter;
static pthread_key_t ch_task_key;
static pthread_once_t ch_task_once = PTHREAD_ONCE_INIT;
static int ch_task_key_ok;

static void ch_thread_exit(void *task)
{
    capheap_task_deleted(task);
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
