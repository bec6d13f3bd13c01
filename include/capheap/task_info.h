/*
 * capheap/task_info.h - capheap's additions to per-task heap accounting
 * (esp_heap_task_info.h holds ESP-IDF's API).
 *
 * - capheap_task_deleted(): what a port calls when a task ends. ESP-IDF guesses
 *   a task's death when a freed block's address equals its handle (its TCB);
 *   capheap is told.
 * - The tracker's own figures: blocks it could not charge because its task
 *   table was full, frees of blocks it did not know.
 * - capheap_task_tracking_reset(): forget everything (heaps were reset).
 *
 * Every function exists whether tracking is built in or not; without it they
 * do nothing and report zeros.
 */
#ifndef CAPHEAP_TASK_INFO_H
#define CAPHEAP_TASK_INFO_H

#include <stddef.h>

#include "capheap/config.h"
#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Task `task` (a value capheap_port_current_task() returned) has ended. Its
 * statistics stay, marked DELETED (is_alive false), while it still owns blocks:
 * a dead task's leak stays visible, and a later free of one of its blocks is
 * still credited to it. Once it owns none its record is dropped, unless the
 * build keeps deleted tasks (CAPHEAP_TRACK_DELETED_TASKS, ESP-IDF's
 * CONFIG_HEAP_TRACK_DELETED_TASKS), which drops a deleted task only when the
 * task table is full and a new task needs the slot. If the same handle
 * allocates again it is the same task, still DELETED.
 *
 * Who calls it: a FreeRTOS port from its task-delete hook (for example
 * traceTASK_DELETE, or vTaskDelete wrappers); the host port when a thread that
 * allocated exits. O(1). Any thread; not from an ISR on a port whose tracking
 * lock is not ISR-safe. Unknown tasks and a build without tracking: no effect.
 */
void capheap_task_deleted(void *task);

/** The tracker's own figures (all zero without tracking). */
typedef struct {
    size_t tasks;              /**< task records in use (alive and deleted) */
    size_t max_tasks;          /**< capacity: CAPHEAP_TASK_TRACKING_MAX_TASKS */
    size_t blocks;             /**< blocks charged to a task now */
    size_t max_blocks;         /**< SIZE_MAX: no limit (each block carries its owner; the field stays for
                                    programs written against the earlier table) */
    size_t untracked_blocks;   /**< always 0 (there is no block table to fill up) */
    size_t untracked_task_blocks; /**< allocations not tracked since start: the task table was full */
    size_t unknown_frees;      /**< frees of blocks charged to no task (untracked, made before a reset,
                                    made by multi_heap calls outside heap_caps, or a smashed owner word) */
} capheap_task_tracking_stats_t;

/** Fill *out. ESP_ERR_INVALID_ARG if out is NULL; ESP_ERR_NOT_SUPPORTED without tracking. O(1). */
esp_err_t capheap_task_tracking_get_stats(capheap_task_tracking_stats_t *out);

/**
 * Forget every task and block, and zero the counters. For a process that
 * resets its heaps (capheap_caps_reset(), the simulator's shutdown); no thread
 * may be allocating meanwhile. No effect without tracking.
 */
void capheap_task_tracking_reset(void);

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_TASK_INFO_H */
