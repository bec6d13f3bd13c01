/*
 * fuzz_stamp.h - the byte pattern the fuzz targets write into every block
 * they hold and check before they let it go: a token from the block's
 * address, and from it one byte per position. A block that another
 * operation overwrote, or that was handed out twice, shows a wrong byte.
 * Header-only, shared by the targets (each is one translation unit).
 */
#ifndef CAPHEAP_FUZZ_STAMP_H
#define CAPHEAP_FUZZ_STAMP_H

#include <stddef.h>
#include <stdint.h>

/* The block's token: never 0. */
static inline uint32_t fz_token(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(x >> 32) | 1u;
}

/* Byte i of the pattern of token t. */
static inline uint8_t fz_byte(uint32_t t, size_t i)
{
    uint32_t x = t ^ (uint32_t)(i * 0x9E3779B1u);
    return (uint8_t)(x ^ (x >> 13) ^ (x >> 24));
}

#endif /* CAPHEAP_FUZZ_STAMP_H */
