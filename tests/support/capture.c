/*
 * capture.c - collect capheap's printed output in a static buffer.
 *
 * capheap prints through one replaceable sink (capheap_set_writer). The
 * capture writer appends to a fixed buffer, never allocating, so it is safe
 * to use while a heap reports corruption.
 */
#include "support.h"

#include <string.h>

static char buffer[CT_CAPTURE_BYTES + 1u];
static size_t used;
static size_t calls;
static bool overflowed;
static bool active;
static capheap_write_fn previous;

static void capture_write(const char *text, size_t len)
{
    calls++;
    size_t room = CT_CAPTURE_BYTES - used;
    if (len > room) {
        len = room;
        overflowed = true;
    }
    memcpy(buffer + used, text, len);
    used += len;
    buffer[used] = '\0';
}

void ct_capture_clear(void)
{
    used = 0;
    calls = 0;
    overflowed = false;
    buffer[0] = '\0';
}

void ct_capture_begin(void)
{
    ct_capture_clear();
    capheap_write_fn old = capheap_set_writer(capture_write);
    if (!active) {
        previous = old;
    }
    active = true;
}

void ct_capture_end(void)
{
    if (active) {
        (void)capheap_set_writer(previous);
        active = false;
    }
}

const char *ct_capture_text(void)
{
    return buffer;
}

size_t ct_capture_len(void)
{
    return used;
}

size_t ct_capture_calls(void)
{
    return calls;
}

bool ct_capture_overflowed(void)
{
    return overflowed;
}

bool ct_capture_contains(const char *needle)
{
    return strstr(buffer, needle) != NULL;
}

size_t ct_capture_count(const char *needle)
{
    size_t n = 0;
    size_t step = strlen(needle);
    if (step == 0) {
        return 0;
    }
    for (const char *at = strstr(buffer, needle); at; at = strstr(at + step, needle)) {
        n++;
    }
    return n;
}

size_t ct_capture_lines(void)
{
    size_t n = 0;
    for (size_t i = 0; i < used; i++) {
        if (buffer[i] == '\n') {
            n++;
        }
    }
    if (used > 0 && buffer[used - 1u] != '\n') {
        n++;
    }
    return n;
}

bool ct_capture_line(size_t index, char *out, size_t out_size)
{
    size_t start = 0;
    for (size_t line = 0; line < index; line++) {
        const char *nl = memchr(buffer + start, '\n', used - start);
        if (!nl) {
            return false;
        }
        start = (size_t)(nl - buffer) + 1u;
    }
    if (start >= used) {
        return false;
    }
    const char *nl = memchr(buffer + start, '\n', used - start);
    size_t len = nl ? (size_t)(nl - (buffer + start)) : used - start;
    if (out_size > 0) {
        size_t copy = len < out_size - 1u ? len : out_size - 1u;
        memcpy(out, buffer + start, copy);
        out[copy] = '\0';
    }
    return true;
}
