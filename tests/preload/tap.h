/*
 * tap.h - the TAP-like output of the programs tests/preload runs under
 * LD_PRELOAD ("ok N - what" or "not ok N - what (detail)"), shared by
 * api_test.c and calloc_test.c. Each program includes it once; its exit
 * status is tap_failures (capped by the program). No cmocka: these are plain
 * programs, so that the loader binds their malloc to the preload.
 */
#ifndef CAPHEAP_TESTS_PRELOAD_TAP_H
#define CAPHEAP_TESTS_PRELOAD_TAP_H

#include <stdbool.h>
#include <stdio.h>

static int failures;
static int checks;

/* One check: flushed at once, so that a crash after it leaves it on record. */
static void check(bool ok, const char *what, const char *detail)
{
    checks++;
    if (ok) {
        printf("ok %d - %s\n", checks, what);
    } else {
        failures++;
        printf("not ok %d - %s (%s)\n", checks, what, detail ? detail : "");
    }
    fflush(stdout);
}

#endif
