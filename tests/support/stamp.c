/*
 * stamp.c - fill blocks with an address-derived pattern and verify it.
 *
 * Every test block carries bytes that depend on where the block is, so a
 * block that is handed out twice, overlaps another, or is scribbled on by
 * the heap shows up as a stamp mismatch. The pattern varies byte by byte so
 * that it never looks like a canary, a fill byte or a plausible header.
 */
#include "support.h"

uint32_t ct_token(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (uint32_t)x | 1u;
}

uint8_t ct_stamp_byte(uint32_t token, size_t i)
{
    uint32_t v = token * (uint32_t)(i + 1u) + (token >> 16);
    return (uint8_t)(v ^ (v >> 8) ^ (v >> 24));
}

void ct_stamp_token(void *p, size_t n, uint32_t token)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        b[i] = ct_stamp_byte(token, i);
    }
}

bool ct_stamp_ok_token(const void *p, size_t n, uint32_t token)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != ct_stamp_byte(token, i)) {
            return false;
        }
    }
    return true;
}

void ct_stamp(void *p, size_t n)
{
    ct_stamp_token(p, n, ct_token(p));
}

bool ct_stamp_ok(const void *p, size_t n)
{
    return ct_stamp_ok_token(p, n, ct_token(p));
}
