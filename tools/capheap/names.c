/*
 * names.c - sizes and capability masks as the capheap tool reads and prints
 * them (names.h). The capability names are esp_heap_caps.h's, in bit order,
 * so a mask prints the way ESP-IDF code spells it.
 */
#define _POSIX_C_SOURCE 200809L /* strcasecmp, strncasecmp */
#include "names.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "esp_heap_caps.h"

static const struct {
    const char *name;
    uint32_t bit;
} cap_names[] = {
    {"EXEC", MALLOC_CAP_EXEC},
    {"32BIT", MALLOC_CAP_32BIT},
    {"8BIT", MALLOC_CAP_8BIT},
    {"DMA", MALLOC_CAP_DMA},
    {"PID2", MALLOC_CAP_PID2},
    {"PID3", MALLOC_CAP_PID3},
    {"PID4", MALLOC_CAP_PID4},
    {"PID5", MALLOC_CAP_PID5},
    {"PID6", MALLOC_CAP_PID6},
    {"PID7", MALLOC_CAP_PID7},
    {"SPIRAM", MALLOC_CAP_SPIRAM},
    {"INTERNAL", MALLOC_CAP_INTERNAL},
    {"DEFAULT", MALLOC_CAP_DEFAULT},
    {"IRAM_8BIT", MALLOC_CAP_IRAM_8BIT},
    {"RETENTION", MALLOC_CAP_RETENTION},
    {"RTCRAM", MALLOC_CAP_RTCRAM},
    {"SPM", MALLOC_CAP_SPM},
    {"DMA_DESC_AHB", MALLOC_CAP_DMA_DESC_AHB},
    {"DMA_DESC_AXI", MALLOC_CAP_DMA_DESC_AXI},
    {"CACHE_ALIGNED", MALLOC_CAP_CACHE_ALIGNED},
    {"SIMD", MALLOC_CAP_SIMD},
    {"SPIRAM_NO_ENC", MALLOC_CAP_SPIRAM_NO_ENC},
    {"INVALID", MALLOC_CAP_INVALID},
    {"TCM", MALLOC_CAP_TCM}, /* the deprecated alias: read, never printed (SPM comes first) */
};
#define CAP_NAME_COUNT (sizeof cap_names / sizeof cap_names[0])

/* An unsigned number filling [s, end): decimal, or hexadecimal after 0x. */
static bool parse_number(const char *s, const char *end, unsigned long long *out)
{
    if (s == end || !isdigit((unsigned char)*s))
        return false; /* strtoull would take "-1", " 1" or "+1" */
    char digits[32];
    size_t n = (size_t)(end - s);
    if (n >= sizeof digits)
        return false;
    memcpy(digits, s, n);
    digits[n] = '\0';
    bool hex = n > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
    const char *d = hex ? digits + 2 : digits;
    /* digits only: strtoull would also take blanks, a sign, and after 0x a second 0x ("0x0x10") */
    if (strspn(d, hex ? "0123456789abcdefABCDEF" : "0123456789") != strlen(d))
        return false;
    char *stop;
    errno = 0;
    unsigned long long v = strtoull(d, &stop, hex ? 16 : 10);
    if (errno != 0 || *stop != '\0')
        return false;
    *out = v;
    return true;
}

bool tool_parse_size(const char *word, size_t *out)
{
    if (word == NULL)
        return false;
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {{"KiB", 10}, {"K", 10}, {"MiB", 20}, {"M", 20}};
    const char *end = word + strlen(word);
    unsigned shift = 0;
    bool hex = word[0] == '0' && (word[1] == 'x' || word[1] == 'X');
    for (size_t i = 0; i < sizeof units / sizeof units[0] && !hex; i++) {
        size_t n = strlen(units[i].suffix);
        if ((size_t)(end - word) > n && strcasecmp(end - n, units[i].suffix) == 0) {
            end -= n;
            shift = units[i].shift;
            break;
        }
    }
    unsigned long long v;
    if (!parse_number(word, end, &v) || v > (unsigned long long)(SIZE_MAX >> shift))
        return false;
    *out = (size_t)v << shift;
    return true;
}

bool tool_parse_caps(const char *word, uint32_t *out, const char **bad)
{
    if (bad != NULL)
        *bad = word;
    if (word == NULL || *word == '\0')
        return false;
    uint32_t caps = 0;
    const char *s = word;
    for (;;) {
        const char *e = s + strcspn(s, "|,");
        unsigned long long v;
        const char *name = s;
        if (e - name > 11 && strncasecmp(name, "MALLOC_CAP_", 11) == 0)
            name += 11;
        bool known = false;
        if (parse_number(s, e, &v) && v <= UINT32_MAX) {
            caps |= (uint32_t)v;
            known = true;
        } else {
            for (size_t i = 0; i < CAP_NAME_COUNT && !known; i++)
                if (strlen(cap_names[i].name) == (size_t)(e - name) &&
                    strncasecmp(cap_names[i].name, name, (size_t)(e - name)) == 0) {
                    caps |= cap_names[i].bit;
                    known = true;
                }
        }
        if (!known) {
            if (bad != NULL)
                *bad = s;
            return false;
        }
        if (*e == '\0')
            break;
        s = e + 1;
    }
    *out = caps;
    return true;
}

char *tool_caps_text(uint32_t caps, char *buf, size_t len)
{
    if (caps == 0) {
        snprintf(buf, len, "0");
        return buf;
    }
    size_t at = 0;
    buf[0] = '\0';
    uint32_t rest = caps;
    for (size_t i = 0; i < CAP_NAME_COUNT; i++) {
        if ((rest & cap_names[i].bit) == 0)
            continue;
        rest &= ~cap_names[i].bit;
        int n = snprintf(buf + at, len - at, "%s%s", at == 0 ? "" : "|", cap_names[i].name);
        if (n < 0 || (size_t)n >= len - at)
            return buf; /* cut: len below TOOL_CAPS_TEXT_MAX */
        at += (size_t)n;
    }
    if (rest != 0)
        snprintf(buf + at, len - at, "%s0x%x", at == 0 ? "" : "|", (unsigned)rest);
    return buf;
}

char *tool_size_text(size_t bytes, char *buf, size_t len)
{
    const size_t kib = 1024u, mib = (size_t)1024u * 1024u;
    if (bytes != 0 && bytes % mib == 0)
        snprintf(buf, len, "%zu MiB", bytes / mib);
    else if (bytes >= mib && bytes % (mib / 2u) == 0)
        snprintf(buf, len, "%.1f MiB", (double)bytes / (double)mib); /* exact: 10.5 MiB */
    else if (bytes >= kib && bytes % kib == 0)
        snprintf(buf, len, "%zu KiB", bytes / kib); /* exact: 1028 KiB, not 1.0 MiB */
    else if (bytes >= mib)
        snprintf(buf, len, "%.1f MiB", (double)bytes / (double)mib); /* rounded */
    else if (bytes >= kib)
        snprintf(buf, len, "%.1f KiB", (double)bytes / (double)kib);
    else
        snprintf(buf, len, "%zu B", bytes);
    return buf;
}
