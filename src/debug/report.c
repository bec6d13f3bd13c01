/*
 * report.c - the one place where corruption and misuse end (capheap/report.h).
 *
 * Every layer that finds a problem fills a capheap_report_t and calls
 * capheap_report_corruption(). It writes one "CORRUPT HEAP" line through the
 * port's text sink, remembers the report for tests, and for fatal problems
 * calls the abort handler. Nothing here allocates.
 *
 * The line is assembled here from one template and one number formatter rather than
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

/* Characters past the end of the line are dropped: a long line is cut, never overrun. */
static void put(line_t *l, char c)
{
    if (l->len < sizeof l->text)
        l->text[l->len++] = c;
}

/* v as the field code of the template below says: base 10 if bit 0 is set,
 * else 16; at least code / 2 digits. One formatter for the hexadecimal fields
 * and the decimal invariant number. */
static void add_number(line_t *l, uintptr_t v, unsigned code)
{
    unsigned base = (code & 1u) ? 10u : 16u;
    char buf[3 * sizeof(uintptr_t)]; /* 2 per byte in hex, and the 10 of a decimal unsigned */
    unsigned n = 0;
    do {
        buf[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0 || n < code / 2u);
    while (n > 0)
        put(l, buf[--n]);
}

void capheap_report_corruption(const capheap_report_t *report, bool print, bool fatal)
{
    last_report = *report;
    if (print) {
        /* One template for the whole line; a control character stands for a field:
         * \1 what; \4 leaves out the invariant suffix, up to its ')', when the
         * invariant is 0; the others are numbers for add_number(), in this order:
         * the address (\2: hexadecimal), expected and found (\20: 8 hex digits), the
         * invariant (\3: decimal). */
        static const char line[] =
            "CORRUPT HEAP: \1 at 0x\2. Expected 0x\20 got 0x\20\4 (invariant I\3, docs/design.md)\n";
        uintptr_t values[4] = {(uintptr_t)report->address, report->expected, report->found,
                               report->invariant};
        const uintptr_t *v = values;
        line_t l;
        l.len = 0;
        for (const char *t = line; *t != '\0'; t++) {
            char c = *t;
            if (c == '\1') {
                for (const char *s = report->what != NULL ? report->what : "Corrupt heap"; *s != '\0'; s++)
                    put(&l, *s);
            } else if (c == '\4') {
                while (report->invariant == 0 && *t != ')')
                    t++;
            } else if (c < ' ' && c != '\n') {
                add_number(&l, *v++, (unsigned)c);
            } else {
                put(&l, c);
            }
        }
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
