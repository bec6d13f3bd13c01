/*
 * capheap/caps.h - capheap's additions to the heap_caps API.
 *
 * - capheap_caps_init(): heap_caps_init() with explicit chip and reservations,
 *   returning an error instead of aborting (the simulator and tests use it).
 * - Honest numbers: the largest block for an alignment, exactly.
 * - A dry run, capheap_would_fit(), that says which heap would serve a request
 *   or why none can; the extended failure callback receives the same answer.
 * - Introspection of the heap list (for tools and tests).
 */
#ifndef CAPHEAP_CAPS_H
#define CAPHEAP_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capheap/chip.h"
#include "esp_err.h"
#include "esp_heap_caps.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Build the start-up heaps of chip from its regions minus its own reservations
 * and the count extra ones (the firmware image's: static data, IRAM text),
 * exactly as spec 2.2-2.3: carve, coalesce equal neighbours, register (start-up
 * stack regions deferred), order by size. The chip table and the reserved array
 * must stay valid while the heaps exist (the table is referenced, not copied).
 * Heaps added before init (heap_caps_add_region*) stay, ahead in the order, and
 * own their memory: the start-up heaps are carved around them as around a
 * reservation.
 * ESP_ERR_INVALID_STATE: already initialised (capheap_caps_reset() first).
 * ESP_ERR_INVALID_ARG: chip NULL; a chip table the start-up cannot use (regions, types or its
 * reserved array NULL with a count above 0, a row whose type index is not below type_count,
 * a row that ends at the top of the address space or wraps past it, heap_alignment other than
 * 0, 4, 8 or 16; two rows that overlap where no one reservation, the
 * chip's or the firmware's, holds the whole overlap: both would become heaps over the same
 * bytes); reserved NULL with count > 0; a reservation with start > end. (heap_caps_init() on a
 * target trusts the table compiled in: the tests boot every built-in table through this
 * function.)
 * ESP_FAIL: two reservations overlap, or one overlaps a heap added before init.
 * ESP_ERR_NO_MEM: more heaps than CAPHEAP_MAX_HEAPS.
 * On any error the registry is as it was (heaps added before init stay). The regions' bytes
 * are untouched too, except after ESP_ERR_NO_MEM, which is found while the heaps are made: the
 * heaps made until then wrote their control structures (and, in ASan or valgrind builds, have
 * their marks removed again).
 */
esp_err_t capheap_caps_init(const capheap_chip_t *chip, const soc_reserved_region_t *reserved, size_t count);

/**
 * Forget every heap, the chip, the callbacks and the policy: back to the state
 * before init. Only for a process that starts over (the simulator's shutdown,
 * tests); no thread may be inside the heap API, and every block becomes invalid.
 */
void capheap_caps_reset(void);

/** The chip heap_caps_init()/capheap_caps_init() used, or NULL. */
const capheap_chip_t *capheap_caps_chip(void);

/** Options of capheap_caps_add_region(). Zero-initialise, set what you need. */
typedef struct {
    size_t alignment;  /**< minimum block alignment: 0 (= the chip's, or 4), 4, 8, 16 */
    const char *name;  /**< name in listings (0: the chip type with these caps, else "Custom") */
} capheap_region_options_t;

/** heap_caps_add_region_with_caps() with options (NULL: defaults). Same error codes. */
esp_err_t capheap_caps_add_region(const uint32_t caps[SOC_MEMORY_TYPE_NO_PRIOS], intptr_t start, intptr_t end,
                                  const capheap_region_options_t *options);

/** Largest size s for which heap_caps_aligned_alloc(alignment, s, caps) succeeds now; alignment 0:
 *  for which heap_caps_malloc(s, caps) does (heap_caps_aligned_alloc refuses alignment 0). 0 if none. */
size_t capheap_get_largest_free_block_aligned(uint32_t caps, size_t alignment);

/** Turn the extmem malloc policy off (malloc uses DEFAULT|INTERNAL only), as before heap_caps_malloc_extmem_enable(). */
void capheap_malloc_extmem_disable(void);

/* ---- dry run ------------------------------------------------------------ */

/** Why a request can or cannot be served. */
typedef enum {
    CAPHEAP_FIT_OK = 0,           /**< heap_index would serve it */
    CAPHEAP_FIT_ZERO_SIZE,        /**< size 0: NULL by definition */
    CAPHEAP_FIT_BAD_ALIGNMENT,    /**< alignment is 0 or not a power of two */
    CAPHEAP_FIT_TOO_LARGE,        /**< size above the chip's HEAP_SIZE_MAX (or overflows with the alignment) */
    CAPHEAP_FIT_CONFLICTING_CAPS, /**< EXEC with 8BIT or DMA, or MALLOC_CAP_INVALID, or caps 0 */
    CAPHEAP_FIT_NO_HEAP_WITH_CAPS,/**< no registered heap has every bit of caps */
    CAPHEAP_FIT_NO_ROOM,          /**< every candidate's largest block is too small (largest_block says how big) */
    CAPHEAP_FIT_ALIGNMENT_IMPOSSIBLE, /**< candidates have room, but not at this alignment */
    CAPHEAP_FIT_NO_CAPS_GIVEN,    /**< a _prefer call with num 0: no caps to try (failure callback only) */
} capheap_fit_reason_t;

/** The answer of capheap_would_fit(), and what the extended failure callback receives. */
typedef struct {
    capheap_fit_reason_t reason;
    size_t size;          /**< the request after the chip's adjustment (rounding, alignment) */
    size_t alignment;     /**< the alignment after adjustment */
    uint32_t caps;        /**< the caps after adjustment */
    size_t candidates;    /**< heaps that have the caps */
    int heap_index;       /**< CAPHEAP_FIT_OK: the heap (capheap_heap_get()), else -1 */
    size_t largest_block; /**< the biggest request a candidate could serve at this alignment: every
                               candidate when it does not fit; when it fits, the candidates asked up to
                               the serving heap (the search stops there) */
} capheap_fit_t;

/** Fill *answer for heap_caps_aligned_alloc(alignment, size, caps) (alignment 0 = plain malloc)
 *  without allocating. Returns true iff the request would succeed now. answer may be NULL. */
bool capheap_would_fit(size_t size, uint32_t caps, size_t alignment, capheap_fit_t *answer);

/** Human text of a reason ("no heap has these caps"). Never NULL. */
const char *capheap_fit_reason_text(capheap_fit_reason_t reason);

/** Extended failure callback: ESP-IDF's three arguments plus the dry-run answer, computed right
 *  after the failure (so a block another thread frees in between can make it CAPHEAP_FIT_OK).
 *  A _prefer call with num 0 reports MALLOC_CAP_DEFAULT, as ESP-IDF, and CAPHEAP_FIT_NO_CAPS_GIVEN. */
typedef void (*capheap_alloc_failed_fn)(size_t size, uint32_t caps, const char *function_name,
                                        const capheap_fit_t *why, void *user);

/** Install (or, with NULL, remove) the extended callback. It runs after the ESP-IDF callback, like
 *  it with no heap or registry lock held (it may use the heap). Returns ESP_OK. */
esp_err_t capheap_register_failed_alloc_callback(capheap_alloc_failed_fn callback, void *user);

#ifdef CONFIG_HEAP_USE_HOOKS
/**
 * The realloc hook (build option CAPHEAP_USE_HOOKS, gcc or clang: a weak
 * reference). Define it beside ESP-IDF's two hooks (esp_heap_caps.h) and a
 * realloc that its block's own heap serves, in place (new_ptr == old_ptr) or
 * moved inside that heap, calls it instead of esp_heap_trace_alloc_hook,
 * which ESP-IDF calls there with the new block alone: a program that records
 * every event then sees the old block go, also when it moved. A realloc
 * served by a new allocation calls the alloc hook for the new block and the
 * free hook for the old one, as before; failures call nothing. size and caps
 * are as the alloc hook gets them. It runs after the call, with no heap lock
 * held. A block moved inside its heap was freed there before the hook runs,
 * so another thread may be given the old address, and its hooks run, first:
 * a lock in the hooks cannot order that, and a recording of several threads
 * may show the old address allocated again before the realloc that freed it
 * (record one thread, or expect the replay to stop there). Never allocate in it.
 */
void capheap_heap_trace_realloc_hook(void *old_ptr, void *new_ptr, size_t size, uint32_t caps);
#endif

/* ---- the heap list -------------------------------------------------------- */

/** One heap as the registry holds it. */
typedef struct {
    const char *name;      /**< type name ("RAM", "SPIRAM") or the name given at registration */
    intptr_t start, end;   /**< region bounds */
    uint32_t caps[SOC_MEMORY_TYPE_NO_PRIOS];
    multi_heap_handle_t heap; /**< NULL while a start-up-stack region waits for registration */
    bool runtime;          /**< added by heap_caps_add_region*() rather than at init */
} capheap_heap_desc_t;

/** Number of listed heaps (registered or deferred). */
size_t capheap_heap_count(void);

/**
 * Copy heap i into *out, in search order: runtime heaps newest first, then the
 * start-up heaps by ascending size (ties: the later one first), exactly the
 * order spec 2.5-2.6 tries them within one priority. false if i is out of range.
 */
bool capheap_heap_get(size_t i, capheap_heap_desc_t *out);

/** Index (as capheap_heap_get) of the registered heap containing ptr, or -1. O(log H).
 * The index of a heap changes when a heap is added: to read the heap of a pointer
 * while other threads may register heaps, use capheap_heap_find_desc. */
int capheap_heap_find(const void *ptr);

/** Copy the registered heap containing ptr into *out in one step (the innermost one
 * where heaps are nested); false if none does (or out is NULL). O(log H). */
bool capheap_heap_find_desc(const void *ptr, capheap_heap_desc_t *out);

/**
 * Take every heap's lock and the registry lock, in a fixed order (and release
 * them): the debug layers' and every heap's before the registry's, so a walk
 * callback that asks for statistics does not deadlock with it. For fork():
 * pthread_atfork(capheap_caps_lock_all, capheap_caps_unlock_all,
 * capheap_caps_unlock_all_child) leaves the child with consistent heaps.
 * Recursive locks: the caller may already hold one.
 */
void capheap_caps_lock_all(void);
void capheap_caps_unlock_all(void);

/**
 * The child's side of capheap_caps_unlock_all(), for pthread_atfork's child
 * handler: the child's only thread is not the thread that took the locks in
 * the parent (it has a new thread id, and a recursive mutex refuses an unlock
 * from a non-owner with EPERM), so every lock is re-initialised instead of
 * released. Host port; on bare metal the same as capheap_caps_unlock_all().
 */
void capheap_caps_unlock_all_child(void);

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_CAPS_H */
