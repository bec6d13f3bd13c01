/*
 * fuzz_input.h - reading a fuzz input as a stream of little-endian integers,
 * shared by the fuzz targets. Every read past the end gives 0, so any byte
 * string is an input. Header-only: each target is one translation unit.
 */
#ifndef CAPHEAP_FUZZ_INPUT_H
#define CAPHEAP_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *d;
    size_t n, i;
} fz_in_t;

static inline uint8_t in_u8(fz_in_t *in)
{
    return in->i < in->n ? in->d[in->i++] : 0;
}

static inline uint16_t in_u16(fz_in_t *in)
{
    uint16_t lo = in_u8(in);
    return (uint16_t)(lo | (uint16_t)(in_u8(in) << 8));
}

static inline uint32_t in_u32(fz_in_t *in)
{
    uint32_t lo = in_u16(in);
    return lo | ((uint32_t)in_u16(in) << 16);
}

#endif /* CAPHEAP_FUZZ_INPUT_H */
