/*
 * target_port.h - what every tests/target program shares: a CHECK macro that
 * counts and reports, and the firmware's side of the bare-metal port. The
 * port's weak text sink and abort (src/port/port_baremetal.c) are overridden
 * with strong definitions, as a firmware does: text goes to semihosting's
 * stdout (so reports show in the test log), and abort longjmps back to a
 * test that expects it (TP_EXPECT_ABORT) or ends the program with status 3.
 * Include it in one source file of a program (it defines functions).
 */
#ifndef CAPHEAP_TARGET_PORT_H
#define CAPHEAP_TARGET_PORT_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capheap/port.h"

static const char *tp_program = "target";
static unsigned tp_checks, tp_failures;

#define CHECK(cond, ...)                                                                            \
    do {                                                                                            \
        tp_checks++;                                                                                \
        if (!(cond)) {                                                                              \
            tp_failures++;                                                                          \
            printf("FAIL %s: %s:%d: ", tp_program, __FILE__, __LINE__);                             \
            printf(__VA_ARGS__);                                                                    \
            printf("\n");                                                                           \
        }                                                                                           \
    } while (0)

static jmp_buf *volatile tp_abort_jump; /* volatile: gcc keeps no store to it across free(), which it knows reads no memory of ours */
static char tp_last_abort[160];
static char tp_last_write[160]; /* the last text written (a report is one write), cut to fit */

void capheap_port_write(const char *text, size_t len)
{
    fwrite(text, 1, len, stdout);
    size_t n = len < sizeof tp_last_write - 1 ? len : sizeof tp_last_write - 1;
    memcpy(tp_last_write, text, n);
    tp_last_write[n] = '\0';
}

void capheap_port_abort(const char *reason)
{
    snprintf(tp_last_abort, sizeof tp_last_abort, "%s", reason != NULL ? reason : "(null)");
    if (tp_abort_jump != NULL)
        longjmp(*tp_abort_jump, 1);
    printf("%s: unexpected abort: %s\n", tp_program, tp_last_abort);
    fflush(stdout);
    exit(3);
}

/* Run stmt with the abort hook armed; aborted = whether it reached capheap_port_abort. */
#define TP_EXPECT_ABORT(aborted, stmt)                                                              \
    do {                                                                                            \
        jmp_buf tp_jb_;                                                                             \
        tp_last_abort[0] = '\0';                                                                    \
        if (setjmp(tp_jb_) == 0) {                                                                  \
            tp_abort_jump = &tp_jb_;                                                                \
            stmt;                                                                                   \
            tp_abort_jump = NULL;                                                                   \
            (aborted) = false;                                                                      \
        } else {                                                                                    \
            tp_abort_jump = NULL;                                                                   \
            (aborted) = true;                                                                       \
        }                                                                                           \
    } while (0)

/* The program's last line and exit status. */
static int tp_finish(void)
{
    if (tp_failures != 0) {
        printf("%s: %u of %u checks FAILED\n", tp_program, tp_failures, tp_checks);
        return 1;
    }
    printf("%s: %u checks passed\n", tp_program, tp_checks);
    return 0;
}

#endif
