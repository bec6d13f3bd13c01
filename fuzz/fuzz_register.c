/*
 * fuzz_register.c - libFuzzer target: heap registration with region start,
 * size and alignment taken from the input.
 *
 * Input layout:
 *   byte 0      start offset from a 4096-aligned buffer (0..63: also unaligned)
 *   byte 1      bits 0-3 alignment option (0, 4, 8, 16 valid; 1, 2, 3, 12, 32,
 *               64, 5, 24 invalid), bit 7: use multi_heap_register() instead
 *   bytes 2-4   region size (little endian, modulo the room in the buffer)
 *   byte 5      fill byte written over the buffer before registering (the
 *               previous contents must not matter)
 *   rest        allocation sizes for the "can allocate" part (one byte each)
 *
 * Properties (a violation aborts):
 *   - register returns NULL when the start is not 4-aligned or the alignment
 *     is invalid, and a heap whenever the start is 4-aligned, the alignment
 *     valid and the size at least capheap_heap_min_region_size(alignment);
 *   - a heap lies inside its region, reports its alignment, passes
 *     multi_heap_check, has free size = size - capheap_heap_overhead and one free
 *     block; malloc(largest_free_block) succeeds and malloc(largest + 1) fails;
 *     allocating input-given sizes until failure and freeing them restores the
 *     fresh free size; each of those blocks keeps its own fill (a pattern from
 *     its index) until it is freed, also while the others are freed, so two
 *     blocks that overlap, or a free that writes into a neighbour, show;
 *   - no byte outside [start, start + size) is ever written.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_stamp.h"
#include "capheap/check.h"
#include "capheap/config.h"
#include "capheap/heap.h"
#include "multi_heap.h"

#define FR_BUF 70000u
#define FR_GUARD 0xA5u
#define FR_MAX_BLOCKS (FR_BUF / 8u) /* more than fit: every block takes a header and 4 bytes at least */

static _Alignas(4096) uint8_t g_buf[FR_BUF];

#define FR_REQUIRE(cond, ...)                                       \
    do {                                                            \
        if (!(cond)) {                                              \
            fprintf(stderr, "fuzz_register: property violated: ");  \
            fprintf(stderr, __VA_ARGS__);                           \
            fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);      \
            abort();                                                \
        }                                                           \
    } while (0)

/* Block number k's pattern: from its index, not its address, so that a block handed out twice
 * at one address shows too. */
static uint32_t fr_token(size_t k)
{
    return (uint32_t)(k + 1u) * 0x9E3779B1u | 1u;
}

static void fr_fill(uint8_t *p, size_t n, size_t k)
{
    for (size_t i = 0; i < n; i++)
        p[i] = fz_byte(fr_token(k), i);
}

static void fr_verify(const uint8_t *p, size_t n, size_t k, const char *when)
{
    for (size_t i = 0; i < n; i++)
        FR_REQUIRE(p[i] == fz_byte(fr_token(k), i), "%s: block %zu (%p, %zu B) byte %zu overwritten", when, k,
                   (const void *)p, n, i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t align_opts[16] = {0, 4, 8, 16, 1, 2, 3, 12, 32, 64, 5, 24, 4, 8, 16, 0};
    if (size < 6) {
        return 0;
    }
    size_t offset = data[0] % 64u;
    size_t align = align_opts[data[1] & 15u];
    bool plain = (data[1] & 0x80u) != 0;
    size_t room = FR_BUF - offset;
    size_t region = ((size_t)data[2] | ((size_t)data[3] << 8) | ((size_t)data[4] << 16)) % (room + 1);
    uint8_t fill = data[5];
    const uint8_t *sizes = data + 6;
    size_t nsizes = size - 6;

    uint8_t *start = g_buf + offset;
    capheap_sanitizer_release(g_buf, FR_BUF); /* the previous input's heap poisoned it under ASan */
    memset(g_buf, FR_GUARD, FR_BUF);
    memset(start, fill, region);

    bool start_ok = offset % 4u == 0;
    bool align_ok = plain || align == 0 || align == 4 || align == 8 || align == 16;
    size_t eff_align = plain || align == 0 ? 4 : align;
    multi_heap_handle_t h;
    if (plain) {
        h = multi_heap_register(start, region);
    } else {
        capheap_heap_options_t opts;
        memset(&opts, 0, sizeof opts);
        opts.alignment = align;
        h = capheap_heap_register(start, region, &opts);
    }
    if (!start_ok || !align_ok) {
        FR_REQUIRE(h == NULL, "register(start+%zu, %zu, align %zu) must fail", offset, region, align);
    } else if (region >= capheap_heap_min_region_size(eff_align)) {
        FR_REQUIRE(h != NULL, "register(start+%zu, %zu, align %zu) failed; minimum region is %zu",
                   offset, region, eff_align, capheap_heap_min_region_size(eff_align));
    }
    if (h != NULL) {
        FR_REQUIRE((uint8_t *)h >= start && (uint8_t *)h < start + region, "handle outside the region");
        FR_REQUIRE(capheap_heap_alignment(h) == eff_align, "alignment %zu != %zu",
                   capheap_heap_alignment(h), eff_align);
        FR_REQUIRE(multi_heap_check(h, true), "fresh heap fails check");
        size_t f0 = multi_heap_free_size(h);
        /* region - overhead, or that less one poison overhead (see fuzz_ops.c) */
        size_t raw0 = region - capheap_heap_overhead(h);
        size_t ph = capheap_heap_poison_overhead(h);
        FR_REQUIRE(f0 == raw0 || f0 == (raw0 > ph ? raw0 - ph : 0), "free %zu vs region %zu - overhead %zu",
                   f0, region, capheap_heap_overhead(h));
        FR_REQUIRE(multi_heap_minimum_free_size(h) == f0, "fresh minimum != free");
        multi_heap_info_t info;
        multi_heap_get_info(h, &info);
        FR_REQUIRE(info.allocated_blocks == 0 && info.free_blocks == 1 && info.total_blocks == 1,
                   "fresh heap: %zu used %zu free %zu total blocks", info.allocated_blocks,
                   info.free_blocks, info.total_blocks);
        size_t L = info.largest_free_block;
        FR_REQUIRE(multi_heap_malloc(h, L + 1) == NULL, "malloc(largest + 1 = %zu) succeeded", L + 1);
        if (L > 0) {
            void *p = multi_heap_malloc(h, L);
            FR_REQUIRE(p != NULL, "malloc(largest = %zu) failed", L);
            memset(p, 0x5A, L);
            FR_REQUIRE(multi_heap_check(h, true), "check with one block");
            multi_heap_free(h, p);
        }
#if !CAPHEAP_POISONING_LIGHT && !CAPHEAP_POISONING_COMPREHENSIVE
        /* a minimum block's 12 bytes, less task tracking's owner word (the per-block overhead) */
        FR_REQUIRE(L + ph >= 12, "a registered heap cannot hold a minimum block (largest %zu)", L);
#endif
        static uint8_t *blocks[FR_MAX_BLOCKS];
        static size_t lens[FR_MAX_BLOCKS];
        size_t nb = 0;
        for (size_t i = 0;; i++) {
            size_t n = nsizes ? (size_t)sizes[i % nsizes] + 1u : 16u;
            uint8_t *p = multi_heap_malloc(h, n);
            if (p == NULL) {
                break;
            }
            FR_REQUIRE(nb < FR_MAX_BLOCKS, "more than %zu blocks in a region of %zu B", (size_t)FR_MAX_BLOCKS,
                       region);
            FR_REQUIRE(p >= start && p + n <= start + region, "block outside");
            FR_REQUIRE((uintptr_t)p % eff_align == 0, "block %p not %zu-aligned", (void *)p, eff_align);
            fr_fill(p, n, nb);
            blocks[nb] = p;
            lens[nb++] = n;
        }
        FR_REQUIRE(multi_heap_check(h, true), "check with %zu blocks", nb);
        for (size_t i = 0; i < nb; i++) {
            fr_verify(blocks[i], lens[i], i, "full heap");
        }
        for (size_t i = 1; i < nb; i += 2) { /* odd ones first: the even ones then merge both ways */
            multi_heap_free(h, blocks[i]);
        }
        for (size_t i = 0; i < nb; i += 2) {
            fr_verify(blocks[i], lens[i], i, "after freeing its neighbours");
            multi_heap_free(h, blocks[i]);
        }
        FR_REQUIRE(multi_heap_check(h, true), "check after freeing");
        FR_REQUIRE(multi_heap_free_size(h) == f0, "free %zu after freeing all, fresh %zu",
                   multi_heap_free_size(h), f0);
    }
    for (size_t i = 0; i < FR_BUF; i++) {
        if (g_buf + i < start || g_buf + i >= start + region) {
            FR_REQUIRE(g_buf[i] == FR_GUARD, "byte at region %+ld was written",
                       (long)((g_buf + i) - start));
        }
    }
    return 0;
}
