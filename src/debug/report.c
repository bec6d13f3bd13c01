/*
 * report.c - the one place where corruption and misuse end (capheap/report.h).
 *
 * Every layer that finds a problem fills a capheap_report_t and calls
 * capheap_report_corruption(). It prints one "CORRUPT HEAP" line through the
 * allocation-free printer, remembers the report for tests, and for fatal
 * problems calls the abort handler. Nothing here allocates.
 */
#include "capheap/report.h"

#include <stddef.h>

#include "capheap/port.h"
#include "port/port_private.h"

static capheap_report_t last_report;

void capheap_report_corruption(const capheap_report_t *report, bool print, bool fatal)
{
    last_report = *report;
    if (print) {
        capheap_printf("CORRUPT HEAP: %s at %p. Expected 0x%08x got 0x%08x", report->what,
                       report->address, (unsigned)report->expected, (unsigned)report->found);
        if (report->invariant != 0)
            capheap_printf(" (invariant I%u, docs/design.md)", report->invariant);
        capheap_printf("\n");
    }
    if (fatal)
        capheap_port_abort_now(report->what);
}

capheap_report_t capheap_last_report(void)
{
    return last_report;
}

void capheap_clear_last_report(void)
{
    capheap_report_t none = {NULL, NULL, 0, 0, 0};
    last_report = none;
}
