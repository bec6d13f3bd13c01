/*
 * report.c - the one place where corruption and misuse end (capheap/report.h).
 *
 * Every layer that finds a problem fills a capheap_report_t and calls
 * capheap_report_corruption(). It writes one "CORRUPT HEAP" line through the
 * port's text sink, remembers the report for tests (per thread on the
 * host), and for fatal problems calls the abort handler. Nothing here
 * allocates.
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

/* The copy capheap_last_report() returns (tests, a firmware's abort
 * handler). Only that copy is shared: a report is printed from the caller's
 * own struct, and no layer reads its report back from here. One plain global
 * written by every report would be a data race between two threads
 * reporting on (or checking) two heaps.
 *
 * On the host it is per thread: a thread reads back the report it made
 * itself, exactly, with no lock. A bare-metal toolchain may have no
 * thread-local storage, and the port's lock hooks accept only the lock
 * objects given to multi_heap_set_lock(), so there it is one copy written and
 * read a word at a time with relaxed atomic accesses (plain loads and stores
 * on a single core): no data race, but a copy read while two tasks report at
 * once may mix their words. */
#if CAPHEAP_PORT_HOST
#if defined(__GNUC__)
static __thread capheap_report_t last_report __attribute__((tls_model("initial-exec")));
#else
static _Thread_local capheap_report_t last_report;
#endif
static void set_last(const capheap_report_t *r)
{
    last_report = *r;
}
static capheap_report_t get_last(void)
{
    return last_report;
}
#else
static capheap_report_t last_report;
#if defined(__GNUC__)
#define LAST_INLINE static inline __attribute__((always_inline)) /* size builds keep one caller */
#define LAST_LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define LAST_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#else
#define LAST_INLINE static inline
#define LAST_LOAD(x) (x) /* single-core bare metal: a plain word access is atomic */
#define LAST_STORE(x, v) ((x) = (v))
#endif
LAST_INLINE void set_last(const capheap_report_t *r)
{
    capheap_report_t *d = &last_report;
#if defined(__GNUC__)
    /* One register for the five stores: gcc would otherwise rebuild the
     * address before each atomic store (a lui each on RISC-V: 16 bytes). */
    __asm__("" : "+r"(d));
#endif
    LAST_STORE(d->what, r->what);
    LAST_STORE(d->address, r->address);
    LAST_STORE(d->expected, r->expected);
    LAST_STORE(d->found, r->found);
    LAST_STORE(d->invariant, r->invariant);
}
static capheap_report_t get_last(void)
{
    capheap_report_t r = {LAST_LOAD(last_report.what), LAST_LOAD(last_report.address),
                          LAST_LOAD(last_report.expected), LAST_LOAD(last_report.found),
                          LAST_LOAD(last_report.invariant)};
    return r;
}
#endif

/* Called after a printed fatal report, before the abort: the caps layer
 * installs capheap_describe_block (src/debug/describe.c) when it registers a
 * heap, so a firmware using multi_heap alone does not link the description.
 * A registration may come while another thread reports: CH_HOOK_GET/SET (a
 * concurrency audit's ThreadSanitizer run found the plain pair racing). */
static void (*report_epilogue)(const void *address);

void capheap_report_set_epilogue(void (*fn)(const void *address))
{
    CH_HOOK_SET(report_epilogue, fn);
}

/* The kinds' texts (port_private.h); the first is also the text of a report
 * that names no what. */
const char capheap_fault_texts[] = "Corrupt heap\0Pointer outside heap\0Double free\0Interior pointer\0"
                                   "Smashed header\0Bad neighbour";

/* Room for the fixed words, a 16-digit address, two 8-digit values, the invariant. */
#define LINE_BYTES 200

/* v as the field code of the template below says: base 10 if bit 0 is set,
 * else 16; at least code & 8 digits (8 if bit 3 is set, else 1). One
 * formatter for the hexadecimal fields and the decimal invariant number; the
 * digits end at end (a NUL there), and the first one is returned. */
static const char *format_number(char *end, uintptr_t v, unsigned code)
{
    unsigned base = (code & 1u) ? 10u : 16u;
    const char *pad = end - (code & 8u); /* the digits reach at least here */
    *end = '\0';
    do {
        unsigned d = (unsigned)(v % base) + '0';
        if (d > '9')
            d += 'a' - '9' - 1; /* no digit table: less code and rodata */
        *--end = (char)d;
        v /= base;
    } while (v != 0 || end > pad);
    return end;
}

void capheap_report_corruption(const capheap_report_t *report, bool print, bool fatal)
{
    set_last(report);
    if (print) {
        /* One template for the whole line; a control character stands for a field:
         * \1 what; \4 leaves out the rest up to the invariant suffix's ')' when the
         * invariant is 0: a report that breaks no invariant carries no values (a
         * pointer in no heap: an audit found "Expected 0x00000000 got 0x00000000"
         * printed for it); the others are numbers for format_number(), in this
         * order: the address (\2: hexadecimal), expected and found (\10: 8 hex
         * digits), the invariant (\3: decimal). A field is a string s that is
         * copied before the template goes on. */
        static const char line[] =
            "CORRUPT HEAP: \1 at 0x\2.\4 Expected 0x\10 got 0x\10 (invariant I\3, docs/design.md)\n";
        /* A report that names no memory is a usage error, not corruption
         * (heap_caps_init called twice, say): what, and found as an esp_err_t. */
        static const char usage[] = "\1 (esp_err_t 0x\2)\n";
        uintptr_t values[4] = {(uintptr_t)report->address, report->expected, report->found,
                               report->invariant};
        const uintptr_t *v = values;
        const char *t = line;
        if (report->address == NULL) {
            t = usage;
            v = &values[2];
        }
        char digits[3 * sizeof(uintptr_t) + 1]; /* 2 per byte in hex, and the 10 of a decimal unsigned */
        /* No field yet: the NUL ending usage[], not a "" literal (a string of
         * its own that the linker merges into another: make size counted it
         * as that one, 18 B on Cortex-M4). */
        const char *s = &usage[sizeof usage - 1u];
        char text[LINE_BYTES];
        size_t len = 0;
        for (;;) {
            char c = *s;
            if (c != '\0') {
                s++;
            } else {
                c = *t++;
                if (c == '\0')
                    break;
                if (c < '\n') { /* a field: \1 to \10 */
                    if (c == '\1') {
                        s = report->what != NULL ? report->what : capheap_fault_texts;
                    } else if (c == '\4') {
                        if (report->invariant == 0)
                            while (*t++ != ')') {
                            }
                    } else {
                        s = format_number(digits + sizeof digits - 1u, *v++, (unsigned)c);
                    }
                    continue;
                }
            }
            if (len < sizeof text) /* a long line is cut, never overrun */
                text[len++] = c;
        }
        capheap_write(text, len);
        void (*epilogue)(const void *) = CH_HOOK_GET(report_epilogue);
        if (fatal && epilogue != NULL && report->address != NULL)
            epilogue(report->address);
    }
    if (fatal)
        capheap_port_abort_now(report->what);
}

capheap_report_t capheap_last_report(void)
{
    return get_last();
}

void capheap_clear_last_report(void)
{
    capheap_report_t none = {NULL, NULL, 0, 0, 0};
    set_last(&none);
}
