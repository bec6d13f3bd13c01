/*
 * fuzz_ops.c - libFuzzer target: the input is an operation stream over one
 * small heap.
 *
 * Input layout:
 *   byte 0      configuration: bits 0-2 region size (256 B .. 64 KiB),
 *               bits 3-4 heap alignment (4, 8, 16, 4), bits 5-6 start offset
 *               (0, 4, 8, 12 bytes), bit 7 attach a lock (host port)
 *   then ops    [op byte][slot byte][operands...] until the input ends:
 *               op % 12: 0-2 malloc, 3 aligned_alloc, 4 aligned_alloc_offs,
 *               5-6 realloc, 7-8 free, 9 check + info consistency,
 *               10 largest_free_block probe, 11 reset / restore minimum.
 *               Sizes: one byte (its top two bits pick the range: 0..63,
 *               0..4095 from two more bytes, 0..65535, or a special value such
 *               as 0, SIZE_MAX, the region size or largest_free_block +- 1).
 *
 * Properties (any violation aborts, which libFuzzer reports as a crash):
 *   - multi_heap_check(h, true) is true after every operation;
 *   - every block carries its stamp (bytes derived from its address) until it
 *     is freed; realloc keeps min(old, new) bytes; a failed realloc keeps all;
 *   - returned pointers are inside the region and aligned as asked;
 *   - malloc(0), invalid alignments and sizes larger than the region give NULL;
 *   - a successful malloc(n) has n <= the largest_free_block announced before,
 *     a failed one n > it; malloc(largest) succeeds and malloc(largest + 1)
 *     fails;
 *   - get_info counts the live blocks exactly; freeing everything at the end
 *     restores the fresh free size and a single free block.
 * A corruption report from capheap aborts (the port's default) and is also a
 * crash: the fuzzer is looking for inputs that make capheap report or corrupt.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "fuzz_stamp.h"
#include "capheap/config.h"
#include "capheap/heap.h"
#include "capheap/port.h"
#include "multi_heap.h"

#define FZ_MAX_REGION 65536u
#define FZ_SLOTS 32u

static _Alignas(4096) uint8_t g_region[FZ_MAX_REGION + 16];

typedef struct {
    uint8_t *p;
    size_t size;
    uint32_t token;
} fz_blk_t;

#define FZ_REQUIRE(cond, ...)                                       \
    do {                                                            \
        if (!(cond)) {                                              \
            fprintf(stderr, "fuzz_ops: property violated: ");       \
            fprintf(stderr, __VA_ARGS__);                           \
            fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);      \
            abort();                                                \
        }                                                           \
    } while (0)

static void fz_stamp(fz_blk_t *b)
{
    for (size_t i = 0; i < b->size; i++) {
        b->p[i] = fz_byte(b->token, i);
    }
}

static void fz_verify(const fz_blk_t *b, size_t n, const char *when)
{
    for (size_t i = 0; i < n; i++) {
        FZ_REQUIRE(b->p[i] == fz_byte(b->token, i), "%s: block %p byte %zu lost its stamp", when,
                   (void *)b->p, i);
    }
}

static size_t largest(multi_heap_handle_t h)
{
    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    return info.largest_free_block;
}

static size_t in_size(fz_in_t *in, multi_heap_handle_t h, size_t region)
{
    uint8_t b = in_u8(in);
    switch (b >> 6) {
    case 0:
        return b & 63u;
    case 1:
        return in_u16(in) % 4096u;
    case 2:
        return in_u16(in);
    default:
        switch (b & 15u) {
        case 0: return 0;
        case 1: return SIZE_MAX;
        case 2: return SIZE_MAX - 3;
        case 3: return SIZE_MAX - 15;
        case 4: return (size_t)UINT32_MAX;
        case 5: return region;
        case 6: return region + 1;
        case 7: return largest(h);
        case 8: return largest(h) + 1;
        case 9: { size_t l = largest(h); return l > 4 ? l - 4 : 1; }
        case 10: return SIZE_MAX / 2;
        default: return 1u << (b & 15u);
        }
    }
}

/* A block the heap at [start, start + region) returned: checked, then stamped. The bounds are
 * the heap's region, not g_region: the rest of that static buffer is no heap, yet neither ASan
 * nor multi_heap_check would see a block placed there, nor its stamp written there. */
static void take(multi_heap_handle_t h, const uint8_t *start, size_t region, fz_blk_t *s, void *p, size_t size,
                 size_t align, size_t offs, size_t heap_align)
{
    FZ_REQUIRE((uint8_t *)p >= start && (uint8_t *)p + size <= start + region,
               "block %p+%zu outside the region %p+%zu", p, size, (const void *)start, region);
    FZ_REQUIRE(multi_heap_get_allocated_size(h, p) >= size, "usable size of %p below %zu", p, size);
    if (align == 0) {
        FZ_REQUIRE((uintptr_t)p % heap_align == 0, "block %p not %zu-aligned", p, heap_align);
    } else {
        FZ_REQUIRE(((uintptr_t)p + offs) % align == 0, "block %p + %zu not %zu-aligned", p, offs, align);
    }
    s->p = (uint8_t *)p;
    s->size = size;
    s->token = fz_token(p);
    fz_stamp(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t regions[8] = {256, 512, 1024, 2048, 4096, 8192, 32768, 65536};
    static const size_t aligns[4] = {4, 8, 16, 4};
    fz_in_t in = {data, size, 0};
    uint8_t cfg = in_u8(&in);
    size_t region = regions[cfg & 7u];
    size_t heap_align = aligns[(cfg >> 3) & 3u];
    uint8_t *start = g_region + 4u * ((cfg >> 5) & 3u);

    capheap_heap_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.alignment = heap_align;
    multi_heap_handle_t h = capheap_heap_register(start, region, &opts);
    if (h == NULL) {
        FZ_REQUIRE(region < capheap_heap_min_region_size(heap_align),
                   "register(%zu, align %zu) failed above the minimum region size %zu", region,
                   heap_align, capheap_heap_min_region_size(heap_align));
        return 0;
    }
#if CAPHEAP_PORT_HOST
    static capheap_lock_t lock;
    static bool lock_ready;
    if (!lock_ready) {
        FZ_REQUIRE(capheap_lock_init(&lock) == 0, "lock init");
        lock_ready = true;
    }
    if (cfg & 0x80u) {
        multi_heap_set_lock(h, &lock);
    }
#endif
    const size_t f0 = multi_heap_free_size(h);
    /* region - overhead (the header's definition), or that less one poison overhead (the
     * statistics' rule under poisoning): test_model pins down which; the fuzzer accepts both */
    const size_t raw0 = region - capheap_heap_overhead(h);
    const size_t ph = capheap_heap_poison_overhead(h);
    FZ_REQUIRE(f0 == raw0 || f0 == (raw0 > ph ? raw0 - ph : 0), "fresh free %zu vs region %zu - overhead %zu",
               f0, region, capheap_heap_overhead(h));
    fz_blk_t slots[FZ_SLOTS];
    memset(slots, 0, sizeof slots);
    size_t live = 0;

    while (in.i < in.n) {
        uint8_t op = (uint8_t)(in_u8(&in) % 12u);
        fz_blk_t *s = &slots[in_u8(&in) % FZ_SLOTS];
        switch (op) {
        case 0:
        case 1:
        case 2:
        case 3:
        case 4: {
            size_t n = in_size(&in, h, region);
            size_t align = 0, offs = 0;
            bool valid = true;
            if (op >= 3) {
                uint8_t a = in_u8(&in);
                align = (a & 0x80u) ? (size_t)(a & 0x7Fu) : (size_t)1 << (a % 12u);
                valid = align != 0 && (align & (align - 1)) == 0;
            }
            if (op == 4) {
                offs = in_u8(&in) % 80u;
            }
            if (s->p != NULL) { /* the slot is reused: free its block first */
                fz_verify(s, s->size, "before free");
                multi_heap_free(h, s->p);
                s->p = NULL;
                live--;
            }
            size_t L = largest(h);
            void *p = op < 3 ? multi_heap_malloc(h, n)
                      : op == 3 ? multi_heap_aligned_alloc(h, n, align)
                                : multi_heap_aligned_alloc_offs(h, n, align, offs);
            if (n == 0 || !valid || n > region) {
                FZ_REQUIRE(p == NULL, "op %u size %zu align %zu returned %p", op, n, align, p);
            }
            if (p == NULL) {
                FZ_REQUIRE(op >= 3 || n == 0 || n > L, "malloc(%zu) failed with largest %zu", n, L);
                break;
            }
            FZ_REQUIRE(n <= L, "allocation of %zu succeeded with largest %zu", n, L);
            take(h, start, region, s, p, n, align, (offs + 3u) & ~(size_t)3u, heap_align);
            live++;
            break;
        }
        case 5:
        case 6: {
            size_t n = in_size(&in, h, region);
            size_t L = largest(h);
            void *q = multi_heap_realloc(h, s->p, n);
            if (s->p == NULL) {
                if (q != NULL) {
                    FZ_REQUIRE(n != 0 && n <= L, "realloc(NULL, %zu) succeeded with largest %zu", n, L);
                    take(h, start, region, s, q, n, 0, 0, heap_align);
                    live++;
                } else {
                    FZ_REQUIRE(n == 0 || n > L, "realloc(NULL, %zu) failed with largest %zu", n, L);
                }
            } else if (n == 0) {
                FZ_REQUIRE(q == NULL, "realloc(p, 0) returned %p", q);
                s->p = NULL;
                live--;
            } else if (q == NULL) {
                FZ_REQUIRE(n > L, "realloc(p, %zu) failed with largest %zu", n, L);
                fz_verify(s, s->size, "after failed realloc");
            } else {
                fz_blk_t moved = *s;
                moved.p = (uint8_t *)q;
                fz_verify(&moved, s->size < n ? s->size : n, "after realloc");
                take(h, start, region, s, q, n, 0, 0, heap_align);
            }
            break;
        }
        case 7:
        case 8:
            if (s->p != NULL) {
                fz_verify(s, s->size, "before free");
                multi_heap_free(h, s->p);
                s->p = NULL;
                live--;
            } else {
                multi_heap_free(h, NULL);
            }
            break;
        case 9: {
            multi_heap_info_t info;
            multi_heap_get_info(h, &info);
            FZ_REQUIRE(info.allocated_blocks == live, "info: %zu used blocks, %zu live",
                       info.allocated_blocks, live);
            FZ_REQUIRE(info.total_blocks == info.allocated_blocks + info.free_blocks, "info: block counts");
            FZ_REQUIRE(info.total_free_bytes == multi_heap_free_size(h), "info: free bytes");
            FZ_REQUIRE(info.minimum_free_bytes <= info.total_free_bytes, "info: minimum above free");
            if (s->p != NULL) {
                size_t off = s->size ? in_u8(&in) % s->size : 0;
                FZ_REQUIRE(multi_heap_find_containing_block(h, s->p + off) == s->p,
                           "find_containing_block(%p + %zu)", (void *)s->p, off);
            }
            break;
        }
        case 10: {
            size_t L = largest(h);
            void *q = multi_heap_malloc(h, L + 1);
            FZ_REQUIRE(q == NULL, "largest %zu but malloc(%zu) succeeded", L, L + 1);
            if (L > 0) {
                q = multi_heap_malloc(h, L);
                FZ_REQUIRE(q != NULL, "largest %zu but malloc(largest) failed", L);
                FZ_REQUIRE(multi_heap_check(h, true), "check with the probe block");
                multi_heap_free(h, q);
            }
            break;
        }
        default: {
            size_t before = multi_heap_minimum_free_size(h);
            size_t old = multi_heap_reset_minimum_free_bytes(h);
            FZ_REQUIRE(old == before, "reset returned %zu, minimum was %zu", old, before);
            FZ_REQUIRE(multi_heap_minimum_free_size(h) == multi_heap_free_size(h), "reset: minimum != free");
            if (in_u8(&in) & 1u) {
                multi_heap_restore_minimum_free_bytes(h, old);
                FZ_REQUIRE(multi_heap_minimum_free_size(h) == old, "restore did not restore");
            }
            break;
        }
        }
        FZ_REQUIRE(multi_heap_check(h, true), "multi_heap_check failed after op %u", op);
        FZ_REQUIRE(multi_heap_minimum_free_size(h) <= multi_heap_free_size(h), "minimum above free");
    }

    for (unsigned i = 0; i < FZ_SLOTS; i++) {
        if (slots[i].p != NULL) {
            fz_verify(&slots[i], slots[i].size, "final free");
            multi_heap_free(h, slots[i].p);
        }
    }
    FZ_REQUIRE(multi_heap_check(h, true), "check after freeing everything");
    FZ_REQUIRE(multi_heap_free_size(h) == f0, "free %zu after freeing everything, fresh %zu",
               multi_heap_free_size(h), f0);
    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    FZ_REQUIRE(info.allocated_blocks == 0 && info.free_blocks == 1, "not one free block at the end");
#if CAPHEAP_PORT_HOST
    multi_heap_set_lock(h, NULL);
#endif
    return 0;
}
