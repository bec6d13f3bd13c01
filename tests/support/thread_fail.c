/*
 * thread_fail.c - the first failure of a test's threads, kept for the main
 * thread to assert (cmocka's assertions are not thread-safe).
 */
#include "support.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static atomic_int failed;
static char failure[256];
static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;

void ct_fail_in_thread(const char *fmt, ...)
{
    pthread_mutex_lock(&failure_lock);
    if (atomic_load(&failed) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(failure, sizeof failure, fmt, ap);
        va_end(ap);
        atomic_store(&failed, 1);
    }
    pthread_mutex_unlock(&failure_lock);
}

bool ct_thread_failed(void)
{
    return atomic_load(&failed) != 0;
}

const char *ct_thread_failure(void)
{
    pthread_mutex_lock(&failure_lock);
    const char *text = atomic_load(&failed) ? failure : "";
    pthread_mutex_unlock(&failure_lock);
    return text;
}

void ct_thread_failure_reset(void)
{
    pthread_mutex_lock(&failure_lock);
    atomic_store(&failed, 0);
    failure[0] = '\0';
    pthread_mutex_unlock(&failure_lock);
}
