/*
 * capheap/report.h - the single place where corruption and misuse end.
 *
 * Every detected problem (bad canary, double free, foreign or interior
 * pointer, broken invariant) is printed as one line
 *     CORRUPT HEAP: <what> at <address>. Expected 0x<expected> got 0x<found>
 * through the port's allocation-free printer; fatal ones then call the
 * current abort handler (capheap/port.h). The last report is kept so that a
 * test that intercepted the abort can assert on what was found.
 */
#ifndef CAPHEAP_REPORT_H
#define CAPHEAP_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What a report says. what is a static string such as "Bad head" or "Double free". */
typedef struct {
    const char *what;
    const void *address;
    uint32_t expected;
    uint32_t found;
    unsigned invariant; /**< number in docs/design.md, 0 if none applies */
} capheap_report_t;

/**
 * Print the report (when print is true), remember it as the last report, and
 * when fatal is true call the abort handler (which does not return).
 */
void capheap_report_corruption(const capheap_report_t *report, bool print, bool fatal);

/** The last report made in this process (what == NULL if none). Not thread-safe: for tests. */
capheap_report_t capheap_last_report(void);

/** Forget the last report. */
void capheap_clear_last_report(void);

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_REPORT_H */
