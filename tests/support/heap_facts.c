/*
 * heap_facts.c - expected sizes for this build and whole-heap observations
 * made only through the public API (walk, get_info, malloc).
 */
#include <string.h>

#include "support.h"

const char *ct_poisoning_name(void)
{
#if CAPHEAP_POISONING_COMPREHENSIVE
    return "comprehensive";
#elif CAPHEAP_POISONING_LIGHT
    return "light";
#else
    return "none";
#endif
}

size_t ct_poison_head(size_t alignment)
{
#if CT_POISONING
    /* [u32 0xABBA1234][u32 size], padded to the heap alignment when that is 16. */
    return alignment > 8u ? alignment : 8u;
#else
    (void)alignment;
    return 0;
#endif
}

size_t ct_poison_overhead(size_t alignment)
{
#if CT_POISONING
    return ct_poison_head(alignment) + 4u; /* + tail canary */
#else
    (void)alignment;
    return 0;
#endif
}

size_t ct_heap_poison_overhead(multi_heap_handle_t h)
{
    return ct_poison_overhead(capheap_heap_alignment(h));
}

size_t ct_expected_full_size(size_t n)
{
    size_t full = ct_round_up(n + ct_poison_overhead(4), 4);
    return full < CT_MIN_CAPACITY ? CT_MIN_CAPACITY : full;
}

size_t ct_expected_usable_size(size_t n)
{
    return ct_expected_full_size(n) - ct_poison_overhead(4);
}

struct walk_state {
    ct_walk_summary_t *s;
    const unsigned char *prev_end;
    int prev_used;
};

static bool summary_cb(void *block_ptr, size_t block_size, int block_used, void *user_data)
{
    struct walk_state *w = user_data;
    ct_walk_summary_t *s = w->s;
    const unsigned char *b = block_ptr;
    if (s->blocks == 0) {
        s->first = b;
    } else {
        if (!(b > w->prev_end)) {
            s->ordered = false;
        }
        if (b != w->prev_end + CT_BLOCK_HEADER) {
            s->contiguous = false;
        }
        if (!block_used && !w->prev_used) {
            s->adjacent_free = true;
        }
    }
    s->blocks++;
    if (block_used) {
        s->used_blocks++;
        s->used_raw += block_size + CT_BLOCK_HEADER;
    } else {
        s->free_blocks++;
        s->free_raw += block_size + CT_BLOCK_HEADER;
        if (block_size > s->largest_free) {
            s->largest_free = block_size;
        }
    }
    w->prev_end = b + block_size;
    w->prev_used = block_used;
    s->end = w->prev_end;
    return true;
}

void ct_walk_summary(multi_heap_handle_t h, ct_walk_summary_t *out)
{
    *out = (ct_walk_summary_t){.ordered = true, .contiguous = true};
    struct walk_state w = {.s = out, .prev_end = NULL, .prev_used = 1};
    multi_heap_walk(h, summary_cb, &w);
}

bool ct_largest_is_honest(multi_heap_handle_t h, size_t *largest_out)
{
    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    size_t largest = info.largest_free_block;
    if (largest_out) {
        *largest_out = largest;
    }
    size_t mark = multi_heap_minimum_free_size(h);
    bool honest = true;
    if (largest > 0) {
        void *p = multi_heap_malloc(h, largest);
        if (!p) {
            honest = false;
        } else {
            multi_heap_free(h, p);
        }
    }
    void *q = multi_heap_malloc(h, largest + 1u);
    if (q) {
        honest = false;
        multi_heap_free(h, q);
    }
    /* Undo the dip of the minimum-free mark the probe caused. */
    (void)multi_heap_reset_minimum_free_bytes(h);
    multi_heap_restore_minimum_free_bytes(h, mark);
    return honest;
}

unsigned char *ct_header_of(void *p)
{
    return (unsigned char *)p - ct_poison_head(4) - CT_BLOCK_HEADER;
}

uint32_t ct_get32(const void *at)
{
    uint32_t v;
    memcpy(&v, at, 4);
    return v;
}

void ct_put32(void *at, uint32_t v)
{
    memcpy(at, &v, 4);
}
