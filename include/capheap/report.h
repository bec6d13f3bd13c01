/*
 * capheap/report.h - the single place where corruption and misuse end.
 *
 * Every detected problem (bad canary, double free, foreign or interior
 * pointer, broken invariant) is printed as one line
 *     CORRUPT HEAP: <what> at <address>. Expected 0x<expected> got 0x<found> (invariant I<n>, docs/design.md)
 * through the port's allocation-free printer. A report that names no
 * invariant (0: a pointer in no heap, a block freed after the simulator's
 * shutdown) has no values either, and is printed as
 *     CORRUPT HEAP: <what> at <address>.
 * Fatal ones then call the
 * current abort handler (capheap/port.h). A report whose address is NULL
 * names no memory: it is a usage error that cannot be returned as an error
 * code (heap_caps_init() called twice, say), printed as
 *     <what> (esp_err_t 0x<found>)
 * and no block is described before its abort. The last report is kept so
 * that a test that intercepted the abort can assert on what was found.
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
 * when fatal is true call the abort handler (which does not return). Prints
 * from *report itself: two threads reporting at once each print their own.
 */
void capheap_report_corruption(const capheap_report_t *report, bool print, bool fatal);

/**
 * The last report (what == NULL if none), for tests and abort handlers.
 * Host port: the last report the calling thread made (each thread keeps its
 * own copy, so threads reporting on different heaps never see each other's).
 * Bare-metal port (no thread-local storage assumed): the last report made in
 * the program, written and read a word at a time with relaxed atomic
 * accesses, so concurrent reports are no data race, but a copy read while two
 * tasks report at once may mix their fields.
 */
capheap_report_t capheap_last_report(void);

/** Forget the last report (the calling thread's on the host). */
void capheap_clear_last_report(void);

/**
 * Name the block of a heap_caps heap that contains address, and its two
 * physical neighbours, with what is known of each: used or free, capacity,
 * and, when heap tracing records it, the allocation's time stamp and callers,
 * and, with task tracking, the owning task. Up to three lines through the
 * port's printer, e.g.
 *     block 0x3fc9e010: used, 100 bytes, ccount 0x0012f0a4, caller 0x55d0c1:0x55d0e8, task "wifi"
 *     before 0x3fc9df80: used, 136 bytes, task "main"
 *     after 0x3fc9e078: free, 4020 bytes
 * When the walk cannot reach the address (a smashed header stops it: the
 * common overflow into the next block), it says "no block of heap <name>
 * contains <address>" and names the last block it walked as "before": the
 * block that ran over, most often. heap_caps prints this after every fatal corruption report and after each
 * failing heap_caps_check_integrity*(print = true), for the check's first finding in each heap (later
 * ones are often its consequences). O(blocks of that heap);
 * takes the heap's lock for the walk, and the tracers' locks only if free.
 */
void capheap_describe_block(const void *address);

/** Internal: the function a printed fatal report calls before the abort (NULL: none). May be
 *  called while other threads report (heap_caps calls it at every registration). */
void capheap_report_set_epilogue(void (*fn)(const void *address));

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_REPORT_H */
