/*
 * abort_catch.c - turn capheap's abort into a longjmp back into the test.
 *
 * capheap reports misuse and then calls the abort handler, which must not
 * return (capheap/port.h). While armed, our handler records the reason and
 * longjmps to ct_abort_env (set by CT_CATCH_ABORT). While disarmed it prints
 * the reason to stderr and calls the C library's abort(), so an unexpected
 * corruption report still kills the test program.
 */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

jmp_buf ct_abort_env;

static bool armed;
static unsigned caught;
static char last_reason[256];

static void ct_abort_handler(const char *reason)
{
    if (!armed) {
        fprintf(stderr, "capheap test: unexpected capheap abort: %s\n", reason ? reason : "(null)");
        fflush(stderr);
        abort();
    }
    armed = false;
    caught++;
    if (reason) {
        strncpy(last_reason, reason, sizeof last_reason - 1u);
        last_reason[sizeof last_reason - 1u] = '\0';
    } else {
        last_reason[0] = '\0';
    }
    longjmp(ct_abort_env, 1);
}

void ct_abort_arm(void)
{
    /* Installed on every arm: a test may have replaced the handler meanwhile. */
    (void)capheap_set_abort_handler(ct_abort_handler);
    armed = true;
}

void ct_abort_disarm(void)
{
    armed = false;
}

unsigned ct_abort_count(void)
{
    return caught;
}

const char *ct_abort_reason(void)
{
    return last_reason;
}
