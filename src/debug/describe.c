/*
 * describe.c - corruption reports that name owners (capheap_describe_block).
 *
 * A report line says where the damage is; this says whose it is. The block
 * containing the address and its two physical neighbours are found by one
 * walk of the heap (multi_heap_walk, under the heap's lock, O(blocks); the
 * walk is bounded by the region, so a smashed header ends it early rather
 * than sending it astray), then printed after the lock is released, each with
 * what the debugging features know of it: heap tracing's time stamp and
 * callers, task tracking's owner. Those are asked without waiting for their
 * locks (a report may come from inside a locked heap operation).
 *
 * heap_caps installs this as the epilogue of fatal reports when it registers
 * a heap, and calls it after a failing integrity check it printed.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capheap/caps.h"
#include "capheap/heap.h"
#include "capheap/port.h"
#include "capheap/report.h"
#include "debug/debug_hooks.h"
#include "heap/heap_private.h" /* capheap_heap_user_offset */

typedef struct {
    uintptr_t target;
    int state;               /* 0: before the target block, 1: found it, 2: have its successor */
    void *blk[3];            /* before, hit, after: block data pointers (poison head included) */
    size_t cap[3];
    bool used[3];
} look_t;

static bool look(void *block, size_t size, int used, void *user)
{
    look_t *l = user;
    uintptr_t b = (uintptr_t)block;
    int k = l->state == 0 ? ((l->target >= b - 4u && l->target < b + size) ? 1 : 0) : 2;
    l->blk[k] = block;
    l->cap[k] = size;
    l->used[k] = used != 0;
    if (k != 0)
        l->state = k;
    return k != 2;
}

static void print_one(const char *label, const look_t *l, int k, size_t head)
{
    if (l->blk[k] == NULL)
        return;
    capheap_printf("  %s %p: %s, %zu bytes", label, l->blk[k], l->used[k] ? "used" : "free", l->cap[k]);
    if (l->used[k]) {
        const void *user = (const uint8_t *)l->blk[k] + head; /* what the trackers know it by */
#if CAPHEAP_TRACING
        ch_trace_describe(user);
#endif
#if CAPHEAP_TASK_TRACKING
        ch_task_describe(capheap_block_owner(l->blk[k], l->cap[k])); /* the block's owner word */
#endif
        (void)user;
    }
    capheap_printf("\n");
}

void capheap_describe_block(const void *address)
{
    capheap_heap_desc_t d; /* in one step: a heap added meanwhile shifts the positions */
    if (!capheap_heap_find_desc(address, &d) || d.heap == NULL)
        return;
    look_t l = {(uintptr_t)address, 0, {NULL, NULL, NULL}, {0, 0, 0}, {false, false, false}};
    multi_heap_walk(d.heap, look, &l);
    size_t head = capheap_heap_user_offset(d.heap); /* the poison head in front of the user's bytes */
    if (l.state == 0) {
        capheap_printf("  no block of heap %s contains %p\n", d.name, address);
        /* The walk stopped at a header it cannot pass (or ran out of blocks)
         * before the address: a header smashed by the block in front of it,
         * most often. That block, the last one walked, and its owner are what
         * the reader needs (an audit found this case described by nothing). */
        if (l.blk[0] != NULL && l.target >= (uintptr_t)l.blk[0] + l.cap[0])
            print_one("before", &l, 0, head);
        return;
    }
    print_one("block", &l, 1, head);
    print_one("before", &l, 0, head);
    print_one("after", &l, 2, head);
}
