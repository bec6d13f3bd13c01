/*
 * sanitize.h - AddressSanitizer and valgrind annotations of capheap heaps
 * (docs/checks.md, "Sanitizers on the host"). Private to src/.
 *
 * AddressSanitizer (built with -fsanitize=address; CE_ASAN is 1): the bytes
 * a program must not touch are poisoned, so that user code touching them
 * stops with ASan's report:
 *
 *   free block:  | hdr | next | prev | ######## payload ######## | footer |
 *   used block:  | hdr | [head canary, size] | user bytes | ## tail canary, padding to capacity ## |
 *
 * Headers, links and footers stay addressable (the engine reads them on
 * every operation, and its walks are instrumented too, which is how ASan
 * still proves they never leave the region). The engine writes into poisoned
 * bytes in four places only (a split's new header and links, an aligned
 * allocation's gap, a realloc's copy target), each unpoisoned first (CE_SAN_*
 * below); multi_heap.c sets the final state after each operation under the
 * lock. Reads of canaries and free fill go through san_load32 / san_byte,
 * which ASan does not instrument.
 *
 * valgrind (CAPHEAP_VALGRIND, a CMake option): every heap is a memcheck
 * memory pool (VALGRIND_CREATE_MEMPOOL at registration), every block a chunk
 * of it (MEMPOOL_ALLOC / _FREE / _CHANGE), and the region is NOACCESS
 * outside chunks; memcheck then reports invalid accesses, uses of
 * uninitialised bytes and leaks (--leak-check=full) in capheap heaps as in
 * malloc'd memory. A chunk spans the block's usable size (the capacity less
 * the poison overhead): valgrind cannot learn the requested size after the
 * fact, and ASan covers the rounding bytes. The engine itself works with
 * memcheck's error reporting off (between lock and unlock, which every
 * operation then takes).
 *
 * Without either, every macro here is empty and every helper a plain access.
 */
#ifndef CAPHEAP_DEBUG_SANITIZE_H
#define CAPHEAP_DEBUG_SANITIZE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "capheap/config.h"

#if defined(__SANITIZE_ADDRESS__)
#define CE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CE_ASAN 1
#endif
#endif
#ifndef CE_ASAN
#define CE_ASAN 0
#endif

#if !defined(CAPHEAP_VALGRIND)
#define CAPHEAP_VALGRIND 0
#endif
#if CAPHEAP_VALGRIND && CE_ASAN
#undef CAPHEAP_VALGRIND
#define CAPHEAP_VALGRIND 0 /* valgrind cannot run ASan programs */
#endif

#if CE_ASAN
#include <sanitizer/asan_interface.h>
#define CE_NO_ASAN __attribute__((no_sanitize_address, noinline, unused))
#define CE_SAN_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define CE_SAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define CE_NO_ASAN static inline
#define CE_SAN_POISON(p, n) ((void)(p), (void)(n))
#define CE_SAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#if CAPHEAP_VALGRIND
#include <valgrind/memcheck.h>
#endif

/* 1 when some annotation is compiled in. */
#define CE_SAN (CE_ASAN || CAPHEAP_VALGRIND)

#if CE_ASAN
/* Reads of bytes that may be poisoned (canaries, free fill), bytewise so no
 * libc interceptor sees them. */
static CE_NO_ASAN uint32_t san_load32(const void *p)
{
    const volatile uint8_t *b = (const volatile uint8_t *)p;
    uint32_t v = 0;
    for (unsigned i = 0; i < 4u; i++)
        v |= (uint32_t)b[i] << (8u * i);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static CE_NO_ASAN uint8_t san_byte(const void *p, size_t i)
{
    return ((const volatile uint8_t *)p)[i];
}

/* Bytes of [p, p + n) before the first poisoned one (n if none). */
static inline size_t san_unpoisoned_prefix(const void *p, size_t n)
{
    void *bad = __asan_region_is_poisoned((void *)(uintptr_t)p, n);
    return bad == NULL ? n : (size_t)((const char *)bad - (const char *)p);
}
#else
static inline uint32_t san_load32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint8_t san_byte(const void *p, size_t i)
{
    return ((const uint8_t *)p)[i];
}
#endif

#endif /* CAPHEAP_DEBUG_SANITIZE_H */
