/*
 * esp_heap_caps.h - ESP-IDF's capabilities-based heap API.
 *
 * Many heaps, one per contiguous region, each with capability bits at three
 * priorities. heap_caps_malloc(size, caps) tries, priority by priority, every
 * heap whose caps at that priority intersect the request and whose combined
 * caps include all of it (spec 2.6); the first that has room serves it.
 * capheap precomputes that candidate order per caps mask, so a request costs
 * O(1) beyond the heaps it really tries, and heap_caps_free() finds the owning
 * heap by binary search, O(log H).
 *
 * Threading: every allocation, free and query may be called from any thread;
 * each heap has its own lock (host: a recursive mutex; bare metal: the port's
 * lock hooks). Registration (heap_caps_add_region*) may run concurrently with
 * allocations. The failure callback runs in the failing caller's context.
 *
 * Deviations from ESP-IDF are listed in docs/compat.md; the notable ones are
 * marked "capheap:" below.
 */
#ifndef ESP_HEAP_CAPS_H
#define ESP_HEAP_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capheap/config.h"
#include "esp_err.h"
#include "multi_heap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- capability bits (ESP-IDF's values) -------------------------------- */
#define MALLOC_CAP_EXEC (1u << 0)        /**< executable (capheap: always defined; no heap of a chip with memory protection has it) */
#define MALLOC_CAP_32BIT (1u << 1)       /**< aligned 32-bit access; size is rounded up to 4 */
#define MALLOC_CAP_8BIT (1u << 2)        /**< byte addressable */
#define MALLOC_CAP_DMA (1u << 3)         /**< reachable by DMA */
#define MALLOC_CAP_PID2 (1u << 4)        /**< unused by every layout */
#define MALLOC_CAP_PID3 (1u << 5)
#define MALLOC_CAP_PID4 (1u << 6)
#define MALLOC_CAP_PID5 (1u << 7)
#define MALLOC_CAP_PID6 (1u << 8)
#define MALLOC_CAP_PID7 (1u << 9)
#define MALLOC_CAP_SPIRAM (1u << 10)     /**< external RAM */
#define MALLOC_CAP_INTERNAL (1u << 11)   /**< internal RAM (valid with the cache off) */
#define MALLOC_CAP_DEFAULT (1u << 12)    /**< eligible for plain malloc */
#define MALLOC_CAP_IRAM_8BIT (1u << 13)  /**< IRAM with emulated byte access (ESP32 option) */
#define MALLOC_CAP_RETENTION (1u << 14)  /**< reachable by the retention DMA */
#define MALLOC_CAP_RTCRAM (1u << 15)     /**< RTC fast memory */
#define MALLOC_CAP_SPM (1u << 16)        /**< scratch-pad / tightly coupled memory */
#define MALLOC_CAP_TCM MALLOC_CAP_SPM    /**< deprecated alias of MALLOC_CAP_SPM */
#define MALLOC_CAP_DMA_DESC_AHB (1u << 17) /**< AHB DMA descriptors: becomes DMA */
#define MALLOC_CAP_DMA_DESC_AXI (1u << 18) /**< AXI DMA descriptors: DMA, aligned to >= the chip's AXI rule */
#define MALLOC_CAP_CACHE_ALIGNED (1u << 19) /**< align to the cache line in front of the memory */
#define MALLOC_CAP_SIMD (1u << 20)       /**< usable by SIMD instructions: chip SIMD alignment */
#define MALLOC_CAP_SPIRAM_NO_ENC (1u << 21) /**< PSRAM window exempt from flash encryption */
#define MALLOC_CAP_INVALID (1u << 31)    /**< no heap has it; selects every heap in check/dump/walk */

/** Place a function in IRAM on ESP chips; nothing elsewhere. */
#ifndef HEAP_IRAM_ATTR
#define HEAP_IRAM_ATTR
#endif

/* ---- types -------------------------------------------------------------- */

/** Failure callback: requested size, caps as the failing entry point saw them, its name. */
typedef void (*esp_alloc_failed_hook_t)(size_t size, uint32_t caps, const char *function_name);

/** Bounds of the heap being walked (region bounds, metadata included). The typo is ESP-IDF's. */
typedef struct walker_heap_info {
    intptr_t start;
    intptr_t end;
} walker_heap_into_t;

/** One block as heap_caps_walk() reports it. */
typedef struct walker_block_info {
    void *ptr;    /**< block data (poison head included when poisoning is on) */
    size_t size;  /**< block capacity */
    bool used;
} walker_block_info_t;

/**
 * Walk callback; return false to stop walking the current heap (the next heap is still walked).
 * It runs with the walked heap's lock held (multi_heap_walk()) and must not allocate from or free
 * into that heap. Anything that takes another heap's lock as well (an allocation elsewhere, a size
 * query over several heaps) can deadlock with a thread that holds that lock and waits for this
 * heap's: a second walk doing the same, or a fork through capheap_caps_lock_all(). Another
 * thread's minimum-free monitor does not deadlock with it; the callback must not open or close a
 * monitor window itself. Best kept to the block it is given, as on ESP-IDF.
 */
typedef bool (*heap_caps_walker_cb_t)(walker_heap_into_t heap_info, walker_block_info_t block_info,
                                      void *user_data);

#ifdef CONFIG_HEAP_USE_HOOKS
/**
 * Hooks (build option CAPHEAP_USE_HOOKS): define them in your program and
 * heap_caps calls them. alloc: after every successful allocation, with the
 * user pointer and the size and caps after adjustment (an in-place realloc
 * calls it once with the new size; calloc before zeroing). free: just
 * before the block goes back (ESP-IDF: just after; docs/compat.md 36), not
 * for NULL. They run inside the allocation path (any thread, possibly an ISR
 * on a target) with no heap lock held, so they may query the heap (the
 * block's size, say); keep them short, and never allocate (the hooks would
 * recurse).
 */
void esp_heap_trace_alloc_hook(void *ptr, size_t size, uint32_t caps);
void esp_heap_trace_free_hook(void *ptr);
#endif

/* ---- failure callback ---------------------------------------------------- */

/**
 * Install the callback called when an allocation fails (spec 2.8). A second
 * call replaces the first. capheap: NULL removes it (ESP-IDF rejects NULL with
 * ESP_ERR_INVALID_ARG, so its callback can never be removed). Returns ESP_OK.
 * The callback runs in the failing call's thread with no heap or registry
 * lock held, so it may use the heap: print its state, check it, allocate.
 */
esp_err_t heap_caps_register_failed_alloc_callback(esp_alloc_failed_hook_t callback);

/* ---- allocation ---------------------------------------------------------- */

/**
 * malloc from a heap with all of caps (after the request's adjustment: spec
 * 2.6, chips.md 0.3). Returns NULL for size 0 (no callback); and, calling the
 * failure callback, when caps is 0 or has MALLOC_CAP_INVALID, EXEC comes with
 * 8BIT or DMA, size is above the chip's HEAP_SIZE_MAX, no heap has every bit
 * of caps, or none has room. capheap_would_fit() says which. Blocks are
 * aligned to the heap's alignment (4 on chips), more for DMA / SIMD /
 * CACHE_ALIGNED by the chip's rules. O(H) candidates tried, each O(1).
 */
void *heap_caps_malloc(size_t size, uint32_t caps);

/** free() a block of any heap; NULL is a no-op. A pointer in no heap, a double
 *  free or an interior pointer is reported and aborts through the port. O(log H). */
void heap_caps_free(void *ptr);

/**
 * realloc with caps: in place when the block's heap has caps, else a new block
 * (any heap with caps) and a copy. ptr NULL: heap_caps_malloc. size 0: free,
 * NULL. On failure NULL, the old block is untouched, the callback fires.
 */
void *heap_caps_realloc(void *ptr, size_t size, uint32_t caps);

/** calloc with caps. n*size overflowing, or 0: NULL (capheap: no callback for 0). A request with
 *  MALLOC_CAP_32BIT or MALLOC_CAP_EXEC (its size rounded up to 4) is zeroed with 32-bit stores over
 *  the rounded size, as word-only memory (the ESP32's IRAM) needs; the same for the aligned and
 *  prefer forms (capheap; docs/compat.md 45). */
void *heap_caps_calloc(size_t n, size_t size, uint32_t caps);

/**
 * Aligned allocation with caps. alignment must be a power of two (else NULL,
 * no callback); the result is aligned to max(alignment, what caps imply).
 */
void *heap_caps_aligned_alloc(size_t alignment, size_t size, uint32_t caps);

/** Deprecated: the same as heap_caps_free(). */
void heap_caps_aligned_free(void *ptr);

/** heap_caps_aligned_alloc() of n*size zeroed bytes; overflow: NULL, no callback. */
void *heap_caps_aligned_calloc(size_t alignment, size_t n, size_t size, uint32_t caps);

/** Try each of num caps masks (uint32_t varargs) in order; the callback gets the last one (num 0:
 *  MALLOC_CAP_DEFAULT). realloc_prefer with size 0 frees ptr when num > 0; with num 0 it does
 *  nothing and returns NULL (ESP-IDF's loop runs no round). */
void *heap_caps_malloc_prefer(size_t size, size_t num, ...);
void *heap_caps_realloc_prefer(void *ptr, size_t size, size_t num, ...);
void *heap_caps_calloc_prefer(size_t n, size_t size, size_t num, ...);

/**
 * Let malloc() use external RAM for requests above limit (smaller ones prefer
 * internal RAM). capheap: SIZE_MAX means "internal first for every size" (it
 * disables nothing); capheap_malloc_extmem_disable() turns the policy off.
 */
void heap_caps_malloc_extmem_enable(size_t limit);

/* The libc policy (what malloc, realloc, memalign call on a target). */
void *heap_caps_malloc_default(size_t size);
void *heap_caps_realloc_default(void *ptr, size_t size);
void *heap_caps_aligned_alloc_default(size_t alignment, size_t size);

/* ---- statistics ------------------------------------------------------------ */
/* "Matching" heaps: registered, with combined caps including all of caps; caps 0
 * matches every registered heap. All are O(H) except where noted. */

/** Sum of region sizes (metadata included) of matching heaps. */
size_t heap_caps_get_total_size(uint32_t caps);
/** Sum of free bytes of matching heaps. */
size_t heap_caps_get_free_size(uint32_t caps);
/** Sum of the per-heap low-water marks (a heap added after start-up starts at 0, as in ESP-IDF, so it does not inflate the sum). */
size_t heap_caps_get_minimum_free_size(uint32_t caps);
/** Largest size heap_caps_malloc(size, caps) satisfies now (capheap: exact, not rounded down). O(H). */
size_t heap_caps_get_largest_free_block(uint32_t caps);
/** Aggregate multi_heap_get_info() over matching heaps (largest_free_block: the maximum). O(sum B). */
void heap_caps_get_info(multi_heap_info_t *info, uint32_t caps);
/** Print each matching heap and the totals (allocation-free printer). */
void heap_caps_print_heap_info(uint32_t caps);

/** Start a local low-water window: save each heap's minimum, reset it to the current free size.
 *  ESP_FAIL if a window is already open (capheap; ESP-IDF returns ESP_OK). */
esp_err_t heap_caps_monitor_local_minimum_free_size_start(void);
/** End the window: each minimum becomes min(current minimum, saved). ESP_FAIL if none is open. */
esp_err_t heap_caps_monitor_local_minimum_free_size_stop(void);

/* ---- integrity, dump, walk ------------------------------------------------- */

/** multi_heap_check() on every heap; true if all are intact. */
bool heap_caps_check_integrity_all(bool print_errors);
/** The same on matching heaps; MALLOC_CAP_INVALID in caps (or caps 0) selects all. */
bool heap_caps_check_integrity(uint32_t caps, bool print_errors);
/** Check the heap containing addr; false if no heap contains it. */
bool heap_caps_check_integrity_addr(intptr_t addr, bool print_errors);
/** multi_heap_dump() of matching heaps (INVALID or 0: all), and of every heap. */
void heap_caps_dump(uint32_t caps);
void heap_caps_dump_all(void);

/** Usable bytes of the block ptr (an exact allocation result) points to; 0 for NULL. */
size_t heap_caps_get_allocated_size(void *ptr);
/** The same for any pointer inside a live block; 0 if it is in no live block. O(log H + B). */
size_t heap_caps_get_containing_block_size(void *ptr);

/** Call cb for every block of every matching heap (INVALID or 0: all); cb NULL: nothing. */
void heap_caps_walk(uint32_t caps, heap_caps_walker_cb_t walker_func, void *user_data);
void heap_caps_walk_all(heap_caps_walker_cb_t walker_func, void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* ESP_HEAP_CAPS_H */
