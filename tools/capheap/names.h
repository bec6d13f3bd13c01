/*
 * names.h - the words of the capheap tool's command line and traces: sizes
 * ("4096", "16K", "8MiB", "0x1000") and capability masks ("DMA|INTERNAL",
 * "MALLOC_CAP_SPIRAM", "0x808"), read strictly and printed back.
 *
 * Every parser takes the whole word or nothing: "16Q", "DMA|" and "1e3" are
 * errors, never a prefix taken and the rest ignored, so a typo in a trace
 * cannot turn into a different request.
 */
#ifndef CAPHEAP_TOOL_NAMES_H
#define CAPHEAP_TOOL_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A size: decimal or 0x hexadecimal, optionally followed by K, KiB, M or MiB
 * (powers of 1024; case-insensitive). false (nothing stored) on anything else or
 * on overflow of size_t. */
bool tool_parse_size(const char *word, size_t *out);

/* A capability mask: a number (decimal or 0x...), or names of MALLOC_CAP_ bits
 * joined by '|' or ',' ("DMA|INTERNAL"; with or without the MALLOC_CAP_ prefix;
 * case-insensitive; TCM is SPM). On an unknown name, false and *bad points at it
 * in word (bad may be NULL). */
bool tool_parse_caps(const char *word, uint32_t *out, const char **bad);

/* caps as names joined by '|' ("DMA|INTERNAL|8BIT"; bits without a name as one
 * 0x... remainder; 0 as "0") into buf; returns buf. */
char *tool_caps_text(uint32_t caps, char *buf, size_t len);

/* A size for people: exact where it is short ("8 MiB", "10.5 MiB", "1028 KiB",
 * "21 KiB", "305 B"), else rounded to a tenth ("304.9 KiB", "8.0 MiB"); returns buf. */
char *tool_size_text(size_t bytes, char *buf, size_t len);

/* Buffer length that holds any tool_caps_text() / tool_size_text() result. */
#define TOOL_CAPS_TEXT_MAX 256u
#define TOOL_SIZE_TEXT_MAX 32u

#endif /* CAPHEAP_TOOL_NAMES_H */
