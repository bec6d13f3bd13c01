/*
 * capheap/check.h - integrity checks that do not stall: multi_heap_check()
 * and heap_caps_check_integrity_all() cut into bounded steps.
 *
 * A check pass is cut into steps; each step checks at most max_blocks blocks
 * (and free-list entries) of one heap, holding that heap's lock for the step
 * only, and the cursor remembers where to go on. A pass made of steps over a
 * heap that does not change between them makes exactly the reports of one
 * multi_heap_check() (same text, same invariant numbers, same order). A
 * heap that does change between steps (another thread allocating, or the
 * caller itself) is never reported corrupt because of the change: the step
 * finds its place again, and the totals the pass accumulates (free bytes and
 * free-block counts, invariants I6 and I7) are not compared at the end of
 * such a pass. docs/checks.md has the details, guarantees and costs.
 *
 *     capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
 *     for (;;) {                        // e.g. in an idle task, once per tick
 *         if (!capheap_check_step(&cur, 64, true))
 *             abort();                  // corruption: reported already
 *         vTaskDelay(1);
 *     }
 */
#ifndef CAPHEAP_CHECK_H
#define CAPHEAP_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "multi_heap.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Where a check pass stands. Initialise with CAPHEAP_CHECK_CURSOR_INIT (or
 * zero it, or capheap_check_cursor_init()); pass it to every step of the same
 * pass; do not share one cursor between threads. The fields after priv_ may
 * be read (statistics); none may be written.
 */
typedef struct capheap_check_cursor {
    uint32_t priv_[14];             /**< engine state; all zero = start of a pass */
    uint16_t token_;                /**< private: marks the heap's state at the last step */
    uint16_t flags_;                /**< private */
    multi_heap_handle_t heap;       /**< heap of the pass in progress (NULL before the first step) */
    size_t heap_index;              /**< capheap_check_step(): position in capheap_heap_get() order */
    uint32_t passes;                /**< passes completed (all-heaps form: over every heap) */
    uint32_t clean_passes;          /**< of those, passes during which no checked heap changed */
    uint32_t changes;               /**< steps that found their heap changed since the previous step */
    uint32_t errors;                /**< steps that found corruption */
    uint32_t last_step_blocks;      /**< blocks and list entries the last call checked */
    uint32_t max_step_blocks;       /**< the most any call on this cursor checked */
} capheap_check_cursor_t;

#define CAPHEAP_CHECK_CURSOR_INIT {{0}, 0, 0, NULL, 0, 0, 0, 0, 0, 0, 0}

/** Zero *cursor: the next step starts a new pass. */
void capheap_check_cursor_init(capheap_check_cursor_t *cursor);

/**
 * One step of a check pass over heap (multi_heap_check() in pieces).
 *
 * Checks the next max_blocks blocks or free-list entries (0 counts as 1) of
 * heap, with heap's lock held for this call only, and moves the cursor on. A
 * cursor that was last used on another heap starts a new pass on this one.
 * Returns false iff this step found corruption; with print, each problem is
 * printed as multi_heap_check(heap, true) prints it (one CORRUPT HEAP line,
 * never an abort). *done (may be NULL) is set to true when the pass ended in
 * this call (completed, or stopped at corruption the walk cannot pass); the
 * cursor then starts a new pass at the next call.
 *
 * Time and lock hold: O(max_blocks) block checks (O(bytes) of them with
 * comprehensive poisoning, as multi_heap_check) plus, when the heap changed
 * since the previous step, at most 32 * max_blocks header reads to find the
 * place again; O(size classes) once per pass. Thread-safe for heaps with a
 * lock (multi_heap_set_lock); a heap without a lock must not be used by other
 * threads during the call, as for every multi_heap function. On a heap
 * without a lock, a pass in progress makes that heap's malloc, free and
 * realloc take the locked path (a lock that does nothing) until the pass
 * ends: a pass abandoned half-way (the cursor moved to another heap or
 * reinitialised) leaves it there until a later pass on the heap ends, which
 * costs speed only. Calling multi_heap_set_lock(heap, NULL) during a pass
 * hides later changes from it. Not from an ISR.
 */
bool capheap_heap_check_step(multi_heap_handle_t heap, capheap_check_cursor_t *cursor, size_t max_blocks,
                             bool print, bool *done);

/**
 * One step of a check pass over every heap heap_caps knows
 * (heap_caps_check_integrity_all() in pieces): the heaps in capheap_heap_get()
 * order, each checked as capheap_heap_check_step() does, at most max_blocks
 * blocks or entries in all per call (a call may finish one heap and go on with
 * the next; each heap's lock is held only while that heap is checked).
 * cursor->passes grows by one when the last heap's pass ends. Returns false
 * iff this call found corruption (printed when print_errors). Same time and
 * thread rules as capheap_heap_check_step(); heaps added at run time join the
 * next pass.
 */
bool capheap_check_step(capheap_check_cursor_t *cursor, size_t max_blocks, bool print_errors);

/* ---- sanitizers on the host (docs/checks.md) ------------------------------ */

/**
 * Give the memory of a region no heap uses any more back to the program.
 * Under AddressSanitizer, a registered region stays poisoned where it is free
 * space, canary or padding, and under valgrind it is a memcheck pool whose
 * free space is NOACCESS, even after the program stops using the heap
 * (multi_heap has no unregister). Call this before reusing such memory for
 * anything else (a test's static buffer, a pool memset for the next run):
 * ASan unpoisons it, valgrind forgets the pool and marks it defined. Does
 * nothing in builds without either. Registering the region again needs no call.
 */
void capheap_sanitizer_release(void *start, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_CHECK_H */
