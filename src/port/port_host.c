/*
 * port_host.c - the host port (Linux and other POSIX systems): recursive
 * pthread mutexes as heap locks, write(2) to stderr as the text sink, abort()
 * after a fatal report.
 */
#define _XOPEN_SOURCE 700 /* PTHREAD_MUTEX_RECURSIVE under -std=c11 */

#include <stdlib.h>
#include <unistd.h>

#include "capheap/port.h"

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
