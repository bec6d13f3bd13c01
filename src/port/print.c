/*
 * print.c - the allocation-free printer and the replaceable sinks every port
 * shares (capheap/port.h).
 *
 * Heap dumps and corruption reports must not call malloc (the heap being
 * reported may be the one malloc uses) and must work on bare metal without
 * stdio. So this is a small printf of its own: it formats into a stack buffer
 * and hands the text to the current writer. It knows the conversions the
 * library uses (%s %c %d %i %u %x %X %p %%, flags '0' and '-', width, and
 * the l, ll, z length modifiers); anything else is printed literally.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "capheap/port.h"
#include "port/port_private.h"

#define LINE_MAX_BYTES 160

/* The sinks may be replaced while other threads print or abort (a program
 * capturing a dump while a worker reports): CH_HOOK_GET/SET (port_private.h). */
static capheap_write_fn writer;
static capheap_abort_fn abort_handler;

capheap_write_fn capheap_set_writer(capheap_write_fn fn)
{
    capheap_write_fn old = CH_HOOK_GET(writer);
    CH_HOOK_SET(writer, fn);
    return old ? old : capheap_port_write;
}

capheap_abort_fn capheap_set_abort_handler(capheap_abort_fn fn)
{
    capheap_abort_fn old = CH_HOOK_GET(abort_handler);
    CH_HOOK_SET(abort_handler, fn);
    return old ? old : capheap_port_abort;
}

void capheap_write(const char *text, size_t len)
{
    /* Two tail calls, as capheap_port_abort_now's: no address of
     * capheap_port_write to load (-8 B on Cortex-M4, -6 B on RV32IMC). */
    capheap_write_fn w = CH_HOOK_GET(writer);
    if (w != NULL)
        w(text, len);
    else
        capheap_port_write(text, len);
}

void capheap_port_abort_now(const char *reason)
{
    capheap_abort_fn a = CH_HOOK_GET(abort_handler);
    if (a != NULL)
        a(reason);
    else
        capheap_port_abort(reason);
}

typedef struct {
    char buf[LINE_MAX_BYTES];
    size_t len;
} out_t;

static void put(out_t *o, char c)
{
    if (o->len < sizeof o->buf)
        o->buf[o->len++] = c;
}

static void put_number(out_t *o, uintmax_t v, unsigned base, bool upper, bool negative, unsigned width,
                       char pad, bool left)
{
    char digits[3 * sizeof(uintmax_t) + 2];
    const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    size_t n = 0;
    do {
        digits[n++] = set[v % base];
        v /= base;
    } while (v != 0);
    size_t len = n + (negative ? 1u : 0u);
    if (negative && pad == '0')
        put(o, '-');
    if (!left)
        for (size_t i = len; i < width; i++)
            put(o, pad);
    if (negative && pad != '0')
        put(o, '-');
    while (n > 0)
        put(o, digits[--n]);
    if (left)
        for (size_t i = len; i < width; i++)
            put(o, ' ');
}

void capheap_vprintf(const char *fmt, va_list ap)
{
    out_t o;
    o.len = 0;
    for (const char *f = fmt; *f != '\0'; f++) {
        if (*f != '%') {
            put(&o, *f);
            continue;
        }
        const char *start = f++;
        bool left = false;
        char pad = ' ';
        for (;; f++) {
            if (*f == '-')
                left = true;
            else if (*f == '0')
                pad = '0';
            else
                break;
        }
        unsigned width = 0;
        while (*f >= '0' && *f <= '9')
            width = width * 10u + (unsigned)(*f++ - '0');
        int lng = 0; /* 1: l, 2: ll, 3: z */
        if (*f == 'l') {
            lng = 1;
            if (*++f == 'l') {
                lng = 2;
                f++;
            }
        } else if (*f == 'z') {
            lng = 3;
            f++;
        }
        if (left)
            pad = ' ';
        switch (*f) {
        case 'd':
        case 'i': {
            intmax_t v = lng == 2 ? va_arg(ap, long long)
                         : lng == 1 ? va_arg(ap, long)
                         : lng == 3 ? (intmax_t)va_arg(ap, size_t)
                                    : va_arg(ap, int);
            uintmax_t mag = v < 0 ? (uintmax_t)0 - (uintmax_t)v : (uintmax_t)v;
            put_number(&o, mag, 10, false, v < 0, width, pad, left);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uintmax_t v = lng == 2 ? va_arg(ap, unsigned long long)
                          : lng == 1 ? va_arg(ap, unsigned long)
                          : lng == 3 ? va_arg(ap, size_t)
                                     : va_arg(ap, unsigned);
            put_number(&o, v, *f == 'u' ? 10u : 16u, *f == 'X', false, width, pad, left);
            break;
        }
        case 'p':
            put(&o, '0');
            put(&o, 'x');
            put_number(&o, (uintptr_t)va_arg(ap, void *), 16, false, false, width, pad, left);
            break;
        case 'c': {
            char c = (char)va_arg(ap, int);
            if (!left)
                for (unsigned i = 1; i < width; i++)
                    put(&o, ' ');
            put(&o, c);
            if (left)
                for (unsigned i = 1; i < width; i++)
                    put(&o, ' ');
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (s == NULL)
                s = "(null)";
            size_t n = strlen(s);
            if (!left)
                for (size_t i = n; i < width; i++)
                    put(&o, ' ');
            while (*s != '\0')
                put(&o, *s++);
            if (left)
                for (size_t i = n; i < width; i++)
                    put(&o, ' ');
            break;
        }
        case '%':
            put(&o, '%');
            break;
        default: /* unknown: print the conversion as written */
            for (const char *c = start; c <= f && *c != '\0'; c++)
                put(&o, *c);
            if (*f == '\0')
                f--;
            break;
        }
    }
    capheap_write(o.buf, o.len);
}

void capheap_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    capheap_vprintf(fmt, ap);
    va_end(ap);
}
