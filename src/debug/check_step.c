/*
 * check_step.c - capheap_check_step(): heap_caps_check_integrity_all() cut
 * into bounded steps (capheap/check.h, docs/checks.md).
 *
 * The cursor walks the heaps in capheap_heap_get() order and, inside each,
 * the blocks as capheap_heap_check_step() does. One call spends at most
 * max_blocks blocks or list entries in all: when a heap's pass ends with
 * budget left, the next heap starts in the same call (each heap's lock is
 * held only for its own step). The heap list can grow between calls (a
 * runtime region is inserted in front: newest first), so the cursor keeps the
 * heap's handle and finds it again by handle; a heap it cannot find is
 * dropped and the pass goes on from the start of the list it has not seen.
 * Heaps added during a pass are checked from the next pass on.
 */
#include <string.h>

#include "capheap/caps.h"
#include "capheap/check.h"
#include "capheap/report.h"
#include "heap/heap_private.h" /* capheap_heap_check_step_first */

#define ALL_FLAG_CHANGED 0x100u /* some heap changed during this all-heaps pass */

/* The registered heap at position i or after it; its position in *i. NULL at the end. */
static multi_heap_handle_t heap_at(size_t *i)
{
    capheap_heap_desc_t d;
    for (; capheap_heap_get(*i, &d); (*i)++) {
        if (d.heap != NULL)
            return d.heap;
    }
    return NULL;
}

/* Position of heap in the list now, or SIZE_MAX. O(heaps). */
static size_t find_heap(multi_heap_handle_t heap)
{
    capheap_heap_desc_t d;
    for (size_t i = 0; capheap_heap_get(i, &d); i++) {
        if (d.heap == heap)
            return i;
    }
    return SIZE_MAX;
}

/* The all-heaps pass is complete: count it, and start the next at the first heap. */
static void end_pass(capheap_check_cursor_t *cursor)
{
    cursor->passes++;
    if (!(cursor->flags_ & ALL_FLAG_CHANGED))
        cursor->clean_passes++;
    cursor->flags_ = 0;
    cursor->heap_index = 0;
    cursor->heap = NULL;
    memset(cursor->priv_, 0, sizeof cursor->priv_);
}

bool capheap_check_step(capheap_check_cursor_t *cursor, size_t max_blocks, bool print_errors)
{
    if (cursor == NULL)
        return false;
    if (max_blocks == 0)
        max_blocks = 1;
    bool ok = true;
    size_t left = max_blocks;
    /* At most one round over the list per call: a pass that ends early
     * starts the next one at the next call. */
    for (size_t rounds = 0; left > 0 && rounds <= capheap_heap_count(); rounds++) {
        size_t i = cursor->heap_index;
        if (cursor->heap != NULL) {
            capheap_heap_desc_t d;
            if (!capheap_heap_get(i, &d) || d.heap != cursor->heap) {
                size_t at = find_heap(cursor->heap);
                if (at == SIZE_MAX) { /* gone: go on with the heap now at its place */
                    cursor->heap = NULL;
                    memset(cursor->priv_, 0, sizeof cursor->priv_);
                } else {
                    i = at;
                }
            }
        }
        multi_heap_handle_t heap = heap_at(&i);
        if (heap == NULL) { /* past the last heap (an empty list): the pass is complete */
            end_pass(cursor);
            break;
        }
        cursor->heap_index = i;
        uint32_t passes = cursor->passes, clean = cursor->clean_passes, changes = cursor->changes;
        uint32_t max_step = cursor->max_step_blocks;
        bool done = false;
        capheap_report_t first;
        if (!capheap_heap_check_step_first(heap, cursor, left, print_errors, &done, &first)) {
            ok = false;
            if (print_errors && first.address != NULL)
                capheap_describe_block(first.address); /* the first finding's, as heap_caps_check_integrity does */
        }
        size_t used = cursor->last_step_blocks;
        /* heap passes are not all-heaps passes */
        cursor->passes = passes;
        cursor->clean_passes = clean;
        cursor->max_step_blocks = max_step;
        if (cursor->changes != changes)
            cursor->flags_ |= ALL_FLAG_CHANGED;
        left = used >= left ? 0 : left - used;
        if (!done)
            break;
        size_t next = i + 1;
        if (heap_at(&next) == NULL) { /* that was the last heap: the pass ends in this call */
            end_pass(cursor);
            break;
        }
        cursor->heap_index = i + 1;
        cursor->heap = NULL; /* the next heap starts its own pass (at the next call if the budget is spent) */
        memset(cursor->priv_, 0, sizeof cursor->priv_);
    }
    cursor->last_step_blocks = (uint32_t)(max_blocks - left);
    if (cursor->last_step_blocks > cursor->max_step_blocks)
        cursor->max_step_blocks = cursor->last_step_blocks;
    return ok;
}
