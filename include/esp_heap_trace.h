/*
 * esp_heap_trace.h - ESP-IDF's heap tracing API (standalone mode): ESP-IDF's
 * names, types and fields (heap_trace_record_t carries 16 bytes of links for
 * capheap's hash map at its end, docs/tracing.md: size buffers in records,
 * not bytes).
 *
 * Tracing records every allocation and free that goes through heap_caps
 * (plain malloc included when the libc policy routes it there) into a buffer
 * of records the application provides, with the caller's stack. Two modes:
 *
 *   HEAP_TRACE_LEAKS  a free deletes the block's record: what is left after a
 *                     piece of code ran is what it leaked;
 *   HEAP_TRACE_ALL    every allocation keeps its record; a free marks it
 *                     freed and notes who freed it.
 *
 * Typical use:
 *
 *     static heap_trace_record_t records[100];
 *     ESP_ERROR_CHECK(heap_trace_init_standalone(records, 100));
 *     ESP_ERROR_CHECK(heap_trace_start(HEAP_TRACE_LEAKS));
 *     code_under_suspicion();
 *     ESP_ERROR_CHECK(heap_trace_stop());
 *     heap_trace_dump();
 *
 * States and transitions (every call not listed returns ESP_ERR_INVALID_STATE):
 *
 *     (no buffer) --init(buf,n)--> STOPPED --start(mode)--> STARTED
 *     (no buffer) --init(NULL, 0)--> (no buffer)   STOPPED --init(buf,n)--> STOPPED
 *     STOPPED, STARTED, PAUSED --start--> STARTED (records and counters cleared)
 *     STARTED --stop--> STOPPED        PAUSED --stop--> STOPPED
 *     STARTED --alloc_pause--> PAUSED  STOPPED --alloc_pause--> PAUSED
 *     STOPPED, PAUSED --resume--> STARTED (nothing cleared)
 *     STOPPED --init(NULL, 0)--> (no buffer)
 *
 * alloc_pause and resume need a start since the last init (ESP-IDF crashes on
 * an early resume). STARTED records allocations and frees, PAUSED only frees,
 * STOPPED nothing.
 *
 * Built without tracing (CAPHEAP_TRACING off, the default), every function
 * still exists: those returning esp_err_t return ESP_ERR_NOT_SUPPORTED,
 * heap_trace_get_count() returns 0 and the dumps print nothing. This is what
 * ESP-IDF's header promises (its implementation has no definitions then).
 *
 * Threads: every function may be called from any thread. The recording path
 * (inside heap_caps_malloc/free) takes one trace lock for a few dozen
 * instructions; the stack is captured before the lock. Not for ISRs on the
 * host port; on bare metal, when the port lock masks interrupts.
 * See docs/tracing.md for the costs.
 */
#ifndef ESP_HEAP_TRACE_H
#define ESP_HEAP_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capheap/config.h"
#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef CONFIG_HEAP_TRACING_STACK_DEPTH
#define CONFIG_HEAP_TRACING_STACK_DEPTH 0
#endif

#if CONFIG_HEAP_TRACING_STACK_DEPTH < 0 || CONFIG_HEAP_TRACING_STACK_DEPTH > 32
#error "CONFIG_HEAP_TRACING_STACK_DEPTH must be 0..32"
#endif

/* Lookup on free is a hash map in every tracing build (its size follows the record count). */
#if CAPHEAP_TRACING && !defined(CONFIG_HEAP_TRACE_HASH_MAP)
#define CONFIG_HEAP_TRACE_HASH_MAP 1
#endif

/** What a free does to the trace. */
typedef enum {
    HEAP_TRACE_ALL,   /**< keep every record; a free marks it freed (and records freed_by) */
    HEAP_TRACE_LEAKS, /**< a free deletes the block's record */
} heap_trace_mode_t;

/** capheap's bookkeeping inside a record (private: lists and the hash map). */
typedef struct {
    uint32_t prev, next;  /**< age-ordered list of records in use, or the list of unused ones */
    uint32_t hash_next;   /**< next record in the same hash bucket */
    uint32_t bucket;      /**< head of hash bucket i, for record i of the buffer (not of this record) */
} capheap_trace_links_t;

/* A zero-length array is a GNU extension; __extension__ keeps -Wpedantic quiet
 * in C. g++ -Wpedantic also warns that such a member is not the struct's last,
 * which __extension__ does not silence: the pragma does, around the record. */
#if defined(__GNUC__)
#define CAPHEAP_TRACE_EXT __extension__
#else
#define CAPHEAP_TRACE_EXT
#endif
#if defined(__cplusplus) && defined(__GNUC__) && CONFIG_HEAP_TRACING_STACK_DEPTH == 0
#define CAPHEAP_TRACE_PEDANTIC_OFF 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif

/** One allocation in the trace. */
typedef struct heap_trace_record_t {
    uint32_t ccount; /**< capheap_port_cycle_count() at the call, low 2 bits cleared (bit 0: CPU, always 0) */
    void *address;   /**< the block the caller received; NULL: an empty slot */
    size_t size;     /**< the requested size after heap_caps' adjustment (rounding, alignment) */
    bool freed;      /**< HEAP_TRACE_ALL: the block was freed */
#if CONFIG_HEAP_TRACING_STACK_DEPTH > 0
    void *alloced_by[CONFIG_HEAP_TRACING_STACK_DEPTH]; /**< return addresses, [0] = the call site of the allocation */
    void *freed_by[CONFIG_HEAP_TRACING_STACK_DEPTH];   /**< same for the free (HEAP_TRACE_ALL) */
#else
    CAPHEAP_TRACE_EXT void *alloced_by[0];
    CAPHEAP_TRACE_EXT void *freed_by[0];
#endif
    capheap_trace_links_t links; /**< private */
} heap_trace_record_t;
#if defined(CAPHEAP_TRACE_PEDANTIC_OFF)
#pragma GCC diagnostic pop
#undef CAPHEAP_TRACE_PEDANTIC_OFF
#endif

/** Counters of the trace (heap_trace_summary()). */
typedef struct {
    heap_trace_mode_t mode;   /**< mode of the last heap_trace_start() */
    size_t total_allocations; /**< allocations recorded since start */
    size_t total_frees;       /**< frees seen since start (started or paused), found or not */
    size_t count;             /**< records in the buffer now */
    size_t capacity;          /**< records the buffer holds */
    size_t high_water_mark;   /**< highest count since init (start does not reset it) */
    size_t has_overflowed;    /**< 1 if a record was evicted to make room since start */
    uint32_t total_hashmap_hits; /**< frees that found their record */
    uint32_t total_hashmap_miss; /**< frees that did not (block allocated before start, or evicted) */
} heap_trace_summary_t;

/**
 * Give tracing its record buffer: num_records records at record_buffer, owned
 * by the trace until the next init. The hash map lives inside the records, so
 * nothing is allocated. Clears the records and the high-water mark; the state
 * becomes STOPPED. init(NULL, 0) takes the buffer back (no buffer: start fails).
 * ESP_ERR_INVALID_STATE  tracing is started or paused;
 * ESP_ERR_INVALID_ARG    exactly one of record_buffer / num_records is NULL / 0,
 *                        or num_records >= 2^32 - 1.
 * O(num_records).
 */
esp_err_t heap_trace_init_standalone(heap_trace_record_t *record_buffer, size_t num_records);

/** Host-based (JTAG) tracing: not available in capheap. Always ESP_ERR_NOT_SUPPORTED. */
esp_err_t heap_trace_init_tohost(void);

/**
 * Clear the records and the counters (not the high-water mark) and start
 * recording in mode. Allowed in every state with a buffer, started included
 * (a restart). ESP_ERR_INVALID_STATE without a buffer; ESP_ERR_INVALID_ARG
 * for an unknown mode. O(capacity).
 */
esp_err_t heap_trace_start(heap_trace_mode_t mode);

/** Stop recording (records are kept). ESP_ERR_INVALID_STATE if already stopped or never initialised. O(1). */
esp_err_t heap_trace_stop(void);

/** Keep recording frees, stop recording allocations. ESP_ERR_INVALID_STATE if already paused, or
 *  without a start since init. O(1). */
esp_err_t heap_trace_alloc_pause(void);

/** Record allocations and frees again, without clearing. ESP_ERR_INVALID_STATE if started, or
 *  without a start since init. O(1). */
esp_err_t heap_trace_resume(void);

/** Records in the buffer now (live blocks in LEAKS mode; all kept records in ALL mode). O(1). */
size_t heap_trace_get_count(void);

/**
 * Copy record index (0 = the oldest) into *record. ESP_ERR_INVALID_ARG if
 * record is NULL or index >= heap_trace_get_count(). O(1) for consecutive
 * indexes (a cursor is kept), else O(min(index, count - index)).
 */
esp_err_t heap_trace_get(size_t index, heap_trace_record_t *record);

/**
 * Print the records and a summary (format: docs/tracing.md, as ESP-IDF's)
 * through capheap_printf, without allocating. The trace lock is held only
 * while one record is copied, never while printing: recording goes on, and a
 * change during the dump is noted at its end. heap_trace_dump() prints every
 * record; heap_trace_dump_caps() only those whose block lies in a heap with
 * MALLOC_CAP_INTERNAL and/or MALLOC_CAP_SPIRAM as caps asks.
 */
void heap_trace_dump(void);
void heap_trace_dump_caps(const uint32_t caps);

/** Snapshot the counters. ESP_ERR_INVALID_ARG if summary is NULL. O(1). */
esp_err_t heap_trace_summary(heap_trace_summary_t *summary);

#ifdef __cplusplus
}
#endif

#endif /* ESP_HEAP_TRACE_H */
