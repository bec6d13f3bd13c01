/*
 * esp_heap_task_info.h - ESP-IDF's per-task heap accounting API.
 *
 * With task tracking built in (CMake CAPHEAP_TASK_TRACKING=ON, which defines
 * CONFIG_HEAP_TASK_TRACKING), every block heap_caps hands out is charged to the
 * task that allocated it, and for every task and heap the library keeps the
 * bytes in use now, the peak, and the number of live blocks. These functions
 * read that record: as totals per capability class (the legacy
 * heap_caps_get_per_task_info), as arrays of task, heap and block statistics,
 * and as printed tables.
 *
 * A "task" is what the port's capheap_port_current_task() returns (capheap/port.h):
 * the FreeRTOS task handle on a FreeRTOS port, the calling thread on the host
 * port, NULL ("Pre-scheduler") on the default bare-metal port.
 *
 * Costs: accounting is O(1) per allocation and free (an owner word in each
 * block, as in ESP-IDF, and two counters under one short lock; no list walk).
 * The functions below are diagnostics: they run in O(tasks x heaps) for
 * totals and O(blocks in the heaps) for block lists (a walk of every heap),
 * and may be called from any thread, never from an ISR. Sizes are
 * heap_caps_get_allocated_size() of each block: without the owner word, which
 * ESP-IDF's sizes include.
 * docs/task-tracking.md describes the output formats and every difference.
 *
 * capheap: the header is always complete. With tracking off the functions exist
 * and return ESP_ERR_NOT_SUPPORTED (0 for heap_caps_get_per_task_info), and the
 * print functions print one line saying so (ESP-IDF hides the whole header).
 */
#ifndef ESP_HEAP_TASK_INFO_H
#define ESP_HEAP_TASK_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "capheap/config.h"
#include "capheap/task_info.h"
#include "esp_err.h"

/* TaskHandle_t and configMAX_TASK_NAME_LEN are FreeRTOS's. Where FreeRTOS is
 * not available (the host, a bare-metal build without it) capheap defines
 * compatible ones: a task handle is a pointer either way. Define
 * CAPHEAP_NO_FREERTOS to force capheap's definitions. */
#if !defined(CAPHEAP_NO_FREERTOS) && !defined(INC_TASK_H) && defined(__has_include)
#if __has_include("freertos/FreeRTOS.h") && __has_include("freertos/task.h")
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#elif __has_include("FreeRTOS.h") && __has_include("task.h")
#include "FreeRTOS.h"
#include "task.h"
#endif
#endif
#if !defined(INC_TASK_H) && !defined(CAPHEAP_TASK_HANDLE_DEFINED)
#define CAPHEAP_TASK_HANDLE_DEFINED 1
/** FreeRTOS's task handle (an opaque pointer); here: capheap_port_current_task()'s value. */
typedef void *TaskHandle_t;
#endif
#ifndef configMAX_TASK_NAME_LEN
#define configMAX_TASK_NAME_LEN 16 /**< FreeRTOS's default; names are cut to 15 characters + NUL */
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Capability classes heap_caps_get_per_task_info() partitions totals into. */
#define NUM_HEAP_TASK_CAPS 4

/** Per-task totals, one size and count per capability class of heap_task_info_params_t. */
typedef struct {
    TaskHandle_t task;                /**< the task these totals belong to */
    size_t size[NUM_HEAP_TASK_CAPS];  /**< bytes in use, per capability class */
    size_t count[NUM_HEAP_TASK_CAPS]; /**< live blocks, per capability class */
} heap_task_totals_t;

/** One live block. */
typedef struct {
    TaskHandle_t task; /**< the task that allocated it */
    void *address;     /**< the pointer the allocator returned */
    uint32_t size;     /**< heap_caps_get_allocated_size() of the block (ESP-IDF: + 4, its owner word) */
} heap_task_block_t;

/** Arguments and results of heap_caps_get_per_task_info(). */
typedef struct {
    int32_t caps[NUM_HEAP_TASK_CAPS]; /**< a heap is in class i if (its caps & mask[i]) == caps[i] (first i wins) */
    int32_t mask[NUM_HEAP_TASK_CAPS]; /**< see caps; a class with mask 0 and caps 0 takes every heap */
    TaskHandle_t *tasks;              /**< tasks whose blocks are listed; NULL: every task */
    size_t num_tasks;                 /**< length of tasks */
    heap_task_totals_t *totals;       /**< totals per task (NULL: none wanted) */
    size_t *num_totals;               /**< in: entries already in totals (kept, zeroed); out: entries now */
    size_t max_totals;                /**< capacity of totals */
    heap_task_block_t *blocks;        /**< blocks of the selected tasks (NULL: none wanted) */
    size_t max_blocks;                /**< capacity of blocks */
} heap_task_info_params_t;

/** What one task holds in one heap. */
typedef struct {
    char *name;                    /**< the heap's name (capheap: points into the heap registry; do not write) */
    uint32_t caps;                 /**< the heap's caps, all three priorities combined */
    size_t size;                   /**< the heap's size in bytes (its region) */
    size_t current_usage;          /**< bytes this task holds in this heap now */
    size_t peak_usage;             /**< the most it ever held in this heap */
    size_t alloc_count;            /**< live blocks of this task in this heap */
    heap_task_block_t *alloc_stat; /**< those blocks by address, or NULL if they did not fit */
} heap_stat_t;

/** One task. */
typedef struct {
    char name[configMAX_TASK_NAME_LEN]; /**< the task's name when it first allocated */
    TaskHandle_t handle;                /**< the task (NULL: "Pre-scheduler") */
    bool is_alive;                      /**< false once capheap_task_deleted() was called for it */
    size_t overall_peak_usage;          /**< the most it ever held, all heaps together */
    size_t overall_current_usage;       /**< what it holds now, all heaps together */
    size_t heap_count;                  /**< heaps it has allocated from (entries of heap_stat) */
    heap_stat_t *heap_stat;             /**< its heaps, or NULL if they did not fit */
} task_stat_t;

/** Arguments and results of heap_caps_get_single_task_stat(). */
typedef struct {
    task_stat_t stat;                    /**< out: the task */
    size_t heap_count;                   /**< in: capacity of heap_stat_start; out: entries written */
    heap_stat_t *heap_stat_start;        /**< caller's array of heap statistics */
    size_t alloc_count;                  /**< in: capacity of alloc_stat_start; out: entries written */
    heap_task_block_t *alloc_stat_start; /**< caller's array of blocks */
} heap_single_task_stat_t;

/** Arguments and results of heap_caps_get_all_task_stat(). */
typedef struct {
    size_t task_count;                   /**< in: capacity of stat_arr; out: entries written */
    task_stat_t *stat_arr;               /**< caller's array of tasks */
    size_t heap_count;                   /**< in: capacity of heap_stat_start; out: entries written */
    heap_stat_t *heap_stat_start;        /**< caller's array of heap statistics */
    size_t alloc_count;                  /**< in: capacity of alloc_stat_start; out: entries written */
    heap_task_block_t *alloc_stat_start; /**< caller's array of blocks */
} heap_all_tasks_stat_t;

/**
 * Legacy interface: totals per task and capability class, and optionally the
 * blocks of some tasks. The heaps scanned are those of some class i, (heap
 * caps & mask[i]) == caps[i]; every tracked block in them counts in the totals
 * of its task, in the first such class (a heap of no class is not scanned: its
 * blocks are not counted or listed, as ESP-IDF). The *num_totals entries
 * already in totals are zeroed (all four classes) and keep their order; new
 * tasks are appended while max_totals allows. If blocks is not NULL, up to
 * max_blocks blocks of the tasks in tasks (every task if tasks is NULL) are
 * written, in ascending address order within what was collected.
 * Returns the number of blocks written; 0 if params is NULL or tracking is off.
 * O(blocks in the heaps); holds the tracking lock throughout (and each heap's
 * lock while its blocks are walked).
 */
size_t heap_caps_get_per_task_info(heap_task_info_params_t *params);

/**
 * Copy every task's statistics into the caller's arrays: tasks by descending
 * handle ("Pre-scheduler" last), each task's heaps in registration order, each
 * heap's blocks by address. A task whose heaps do not all fit gets heap_stat
 * NULL (its heap_count still says how many it has); a heap whose blocks do not
 * all fit gets alloc_stat NULL. The three counts are set to the entries written.
 * ESP_OK; ESP_ERR_INVALID_ARG if tasks_stat is NULL or an array is NULL while
 * its count is not 0; ESP_ERR_NOT_SUPPORTED with tracking off.
 * O(tasks x heaps + blocks in the heaps) under the tracking lock. Blocks made
 * or freed while it runs may be listed and not counted or the reverse; the
 * lists are packed to what was found.
 */
esp_err_t heap_caps_get_all_task_stat(heap_all_tasks_stat_t *tasks_stat);

/**
 * The same for one task (NULL: the calling task). ESP_FAIL if the task never
 * allocated (or its record was dropped after its deletion); other codes as
 * heap_caps_get_all_task_stat().
 */
esp_err_t heap_caps_get_single_task_stat(heap_single_task_stat_t *task_stat, TaskHandle_t task_handle);

/**
 * Print the detail tree of every task (or of one; NULL: the calling task) to
 * stream (NULL: stdout): one line per task, per heap it uses, per live block.
 * Formats in docs/task-tracking.md. The lock is not held while printing (a
 * stream may allocate); each task's figures are one consistent snapshot.
 */
void heap_caps_print_all_task_stat(FILE *stream);
void heap_caps_print_single_task_stat(FILE *stream, TaskHandle_t task_handle);

/**
 * Print the box-drawn overview table (TASK, STATUS, CURRENT MEMORY USAGE, PEAK
 * MEMORY USAGE, TOTAL HEAP USED) of every task or of one, to stream (NULL:
 * stdout). The all-tasks table is followed by one line giving the allocations
 * that could not be charged because the task table was full, if there were any.
 */
void heap_caps_print_all_task_stat_overview(FILE *stream);
void heap_caps_print_single_task_stat_overview(FILE *stream, TaskHandle_t task_handle);

/**
 * Size and allocate the arrays heap_caps_get_single_task_stat() needs for the
 * task now (NULL: the calling task), and set the struct's counts and pointers.
 * The arrays come from the data heap with the most free bytes, straight from
 * multi_heap (charged to no task, no hooks). A count of 0 gives a NULL array.
 * ESP_OK; ESP_ERR_INVALID_ARG if task_stat is NULL; ESP_FAIL if the task is
 * unknown or memory ran out (arrays already allocated stay attached: call the
 * free function anyway); ESP_ERR_NOT_SUPPORTED with tracking off.
 * Blocks allocated between sizing and the get call may not fit.
 */
esp_err_t heap_caps_alloc_single_task_stat_arrays(heap_single_task_stat_t *task_stat, TaskHandle_t task_handle);

/** Free what heap_caps_alloc_single_task_stat_arrays() allocated; zero the counts. NULL: nothing. */
void heap_caps_free_single_task_stat_arrays(heap_single_task_stat_t *task_stat);

/** heap_caps_alloc_single_task_stat_arrays() for every task (heap_caps_get_all_task_stat()). */
esp_err_t heap_caps_alloc_all_task_stat_arrays(heap_all_tasks_stat_t *tasks_stat);

/** Free what heap_caps_alloc_all_task_stat_arrays() allocated; zero the counts. NULL: nothing. */
void heap_caps_free_all_task_stat_arrays(heap_all_tasks_stat_t *tasks_stat);

#ifdef __cplusplus
}
#endif

#endif /* ESP_HEAP_TASK_INFO_H */
