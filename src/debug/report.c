/*
 * report.c - the one place where corruption and misuse end (capheap/report.h).
 *
 * Every layer that finds a problem fills a capheap_report_t and calls
 * capheap_report_corruption(). It writes one "CORRUPT HEAP" line through the
 * port's text sink, remembers the report for tests, and for fatal problems
 * calls the abort handler. Nothing here allocates.
 *
 * The line is assembled here with a few fixed-format helpers rather than
 * capheap_printf(): every firmware that frees memory links this file (free
 * can report), and a general printf would triple capheap's code size there.
 */
#include "capheap/report.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "capheap/port.h"
#include "port/port_private.h"

static capheap_report_t last_report;

/* Room for the fixed words, a 16-digit address, two 8-digit values, the invariant. */
#define LINE_BYTES 200

typedef struct {
    char text[LINE_BYTES];
    size_t len;
} line_t;

static void add_text(line_t *l, const char *s)
{
    while (*s != '\0' && l->len < sizeof l->text)
        l->text[l->len++] = *s++;
}

/* digits hexadecimal digits of v (0: as many as needed, at least one). */
static void add_hex(line_t *l, uintptr_t v, unsigned digits)
{
    char buf[2 * sizeof(uintptr_t)];
    unsigned n = 0;
    do {
        buf[n++] = "0123456789abcdef"[v & 0xFu];
        v >>= 4;
    } while ((v != 0 || n < digits) && n < sizeof buf);
    while (n > 0 && l->len < sizeof l->text)
        l->text[l->len++] = buf[--n];
}

static void add_dec(line_t *l, unsigned v)
{
    char buf[10];
    unsigned n = 0;
    do {
        buf[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    while (n > 0 && l->len < sizeof l->text)
        l->text[l->len++] = buf[--n];
}

void capheap_report_corruption(const capheap_report_t *report, bool print, bool fatal)
{
    last_report = *report;
    if (print) {
        /* CORRUPT HEAP: <what> at 0x<addr>. Expected 0x%08x got 0x%08x[ (invariant In, docs/design.md)] */
        line_t l;
        l.len = 0;
        add_text(&l, "CORRUPT HEAP: ");
        add_text(&l, report->what != NULL ? report->what : "Corrupt heap");
        add_text(&l, " at 0x");
        add_hex(&l, (uintptr_t)report->address, 0);
        add_text(&l, ". Expected 0x");
        add_hex(&l, report->expected, 8);
        add_text(&l, " got 0x");
        add_hex(&l, report->found, 8);
        if (report->invariant != 0) {
            add_text(&l, " (invariant I");
            add_dec(&l, report->invariant);
            add_text(&l, ", docs/design.md)");
        }
        add_text(&l, "\n");
        capheap_write(l.text, l.len);
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
