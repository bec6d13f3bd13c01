/*
 * fuzz_catch.h - catching the reports a fuzz target expects. A target that
 * hands capheap bad input installs fz_on_abort as the port's abort handler
 * and fz_count_text as its writer, and runs the call that may be reported
 * in FZ_CATCH: the report's abort jumps back there, and g_printed counts
 * what the report printed. An abort outside FZ_CATCH is a real one: it
 * prints the reason and aborts, a crash for libFuzzer. Header-only, shared
 * by the targets (each is one translation unit).
 */
#ifndef CAPHEAP_FUZZ_CATCH_H
#define CAPHEAP_FUZZ_CATCH_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "capheap/report.h"

static jmp_buf g_jump;
static bool g_armed;
static size_t g_printed;

/* The port's abort after a report: back to the call that expected it. */
static void fz_on_abort(const char *reason)
{
    if (!g_armed) {
        fprintf(stderr, "fuzz: unexpected abort: %s\n", reason ? reason : "(null)");
        abort();
    }
    g_armed = false;
    longjmp(g_jump, 1);
}

/* The port's writer while reports are expected: counts, prints nothing. */
static void fz_count_text(const char *text, size_t len)
{
    (void)text;
    g_printed += len;
}

/* Run stmt with the last report cleared and g_printed zeroed; reported
 * becomes true if stmt ended in a report's abort (stmt is cut short there),
 * false if it returned. A variable stmt assigns must be volatile if it is
 * read after a report. */
#define FZ_CATCH(reported, stmt)                                    \
    do {                                                            \
        capheap_clear_last_report();                                \
        g_printed = 0;                                              \
        g_armed = true;                                             \
        if (setjmp(g_jump) == 0) {                                  \
            stmt;                                                   \
            g_armed = false;                                        \
            (reported) = false;                                     \
        } else {                                                    \
            (reported) = true;                                      \
        }                                                           \
    } while (0)

#endif /* CAPHEAP_FUZZ_CATCH_H */
