/*
 * caps_private.h - the heap registry shared by the files of src/caps.
 *
 * Storage: CAPHEAP_MAX_HEAPS static descriptors (no heap is needed to describe
 * a heap, so a region can be added before any heap exists). A descriptor is
 * written once, then published; it never moves and is never removed (only
 * capheap_caps_reset() clears everything). Three small index arrays give the
 * orders the API needs, all rebuilt under the registry lock:
 *
 *   order[]     ESP-IDF's list order: runtime heaps newest first, then start-up
 *               heaps by ascending size (ties: later first). Routing and every
 *               "matching heaps" loop use it.
 *   by_addr[]   registered heaps sorted by start (ties: larger first), with
 *               their starts copied into addr[] for heap_caps_free's binary
 *               search, O(log H) (speed builds).
 *   route[]     a small cache of candidate lists per caps mask (route.c; speed builds).
 *   dflt[]      MALLOC_CAP_DEFAULT's candidate list, always filled (speed builds).
 *
 * Size-optimised builds (CH_COMPACT) keep only order[], where each heap is
 * inserted as it is counted (registry.c), not rebuilt: heap_caps_free
 * searches the descriptors, O(H), and a request's candidates are found as it
 * walks order[].
 *
 * The fast readers (malloc and free in speed builds) do not take the registry
 * lock: they read by_addr/addr, the route cache and dflt[] with relaxed atomic
 * loads, then validate what they found against the immutable descriptor
 * (heap contains the pointer; heap has the caps), whose fields they read
 * only after an acquire load that saw it published (its handle, or a route
 * entry's key). A reader that races with a
 * registration can therefore only be slowed down (a failed lookup or
 * allocation asks again under the lock), never misled. order[] is read only
 * under the lock (or copied under it: stats.c), because a registration
 * rebuilds it in place (speed builds) or shifts it (compact builds): an
 * unlocked walk could miss a heap or see one twice.
 */
#ifndef CAPHEAP_CAPS_PRIVATE_H
#define CAPHEAP_CAPS_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "capheap/caps.h"
#include "capheap/config.h"
#include "capheap/port.h"
#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"
#include "heap/heap_private.h"

#if defined(__GNUC__)
#define CH_LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define CH_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define CH_ACQUIRE(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define CH_RELEASE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#define CH_FENCE_RELEASE() __atomic_thread_fence(__ATOMIC_RELEASE)
#define CH_FENCE_ACQUIRE() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define CH_LIKELY(x) __builtin_expect(!!(x), 1)
#define CH_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define CH_LOAD(x) (x)
#define CH_STORE(x, v) ((x) = (v))
#define CH_ACQUIRE(x) (x)
#define CH_RELEASE(x, v) ((x) = (v))
#define CH_FENCE_RELEASE() ((void)0)
#define CH_FENCE_ACQUIRE() ((void)0)
#define CH_LIKELY(x) (x)
#define CH_UNLIKELY(x) (x)
#endif

/* Size-optimised builds (-Os) keep the same behaviour with less code: no
 * candidate cache and no unlocked skipping of full heaps (candidates are
 * computed per request, O(3H)), no separate fast path. */
#if defined(__OPTIMIZE_SIZE__)
#define CH_COMPACT 1
#else
#define CH_COMPACT 0
#endif

/* Out of line in speed builds: the fast paths in front of such a function
 * then keep fewer registers live across their own calls. */
#if defined(__GNUC__) && !CH_COMPACT
#define CH_NOINLINE __attribute__((noinline))
#else
#define CH_NOINLINE
#endif

/* Inlined in every build: a helper whose one inlined copy is smaller than a
 * call (gcc -Os keeps a static function with two callers out of line). */
#if defined(__GNUC__)
#define CH_INLINE static inline __attribute__((always_inline))
#else
#define CH_INLINE static inline
#endif

#define CH_PRIOS SOC_MEMORY_TYPE_NO_PRIOS
#define CH_FCACHE 256u      /* free()'s page cache entries (speed builds) */
#define CH_FCACHE_SHIFT 12u /* its granule: 4 KiB */
#define CH_ROUTES 8u /* candidate-list cache entries (a power of two) */
/* The alignment a _prefer call with num 0 passes to its failure report: no
 * request was made (a real one with this alignment never reports). */
#define CH_NO_CAPS_GIVEN SIZE_MAX

/* Caps the hardware-alignment step looks at (chips.md 0.3). */
#define CH_HW_CAPS                                                                                 \
    (MALLOC_CAP_DMA | MALLOC_CAP_DMA_DESC_AHB | MALLOC_CAP_DMA_DESC_AXI | MALLOC_CAP_CACHE_ALIGNED | \
     MALLOC_CAP_SIMD)

/** One heap. Immutable once published, except `heap` (set once by enable_nonos).
 *  The fields the fast paths read come first. new_descriptor() (registry.c)
 *  sets the fields one by one and says why it leaves the others: a new field
 *  is set there too, or joins that list with its reason. */
typedef struct {
    /* Region bounds [start, end), first and in this order: the start-up
     * carving reads a descriptor's two words as it reads a reservation's
     * (registry.c: the heaps added before start-up, in place). */
    uintptr_t start;
    uintptr_t end;
    /* span for free()'s page cache (ch_cached): 0 while another heap is
     * nested inside this one, and for a heap at address 0 (set by
     * ch_reindex, read unlocked). */
    uintptr_t fspan;
    multi_heap_handle_t heap;  /* NULL until registered (start-up stack regions) */
    uint32_t all;              /* caps[0] | caps[1] | caps[2] */
    uintptr_t span;            /* end - start; speed builds: 0 until registered */
    /* The bytes before the arrays: Thumb-2's short byte loads and stores
     * reach 31 bytes from the descriptor (-4 B on Cortex-M4). */
    uint8_t alias;             /* EXEC requests get an IRAM alias pointer (ch_alias_t index + 1) */
    uint8_t align;             /* the heap's block alignment */
    bool runtime;
    uint8_t index;             /* its slot in ch_g.heaps (task tracking's cells are per slot) */
    uint32_t caps[CH_PRIOS];
    const char *name;
#if CAPHEAP_PORT_HOST
    capheap_lock_t lock;
#endif
} ch_heap_t;

/** A candidate list: the heaps a caps mask tries, in order, duplicates removed. */
/* The key of an empty route entry: no fast-path request has this bit. */
#define CH_ROUTE_EMPTY MALLOC_CAP_INVALID

typedef struct {
    uint32_t caps;                 /* key (CH_ROUTE_EMPTY: none); written last, with release */
    /* Odd while a refill rewrites the list: a reader's copy is whole only if
     * it saw the same even count before and after (a sequence lock; the key
     * alone misses a refill for another mask and back, which leaves the key
     * as it was and the copy torn). */
    uint32_t seq;
    uint8_t n;
    uint8_t idx[CAPHEAP_MAX_HEAPS];
} ch_route_t;

/** An alias window in integer form: capheap_alias_t's layout, so that
 *  capheap_caps_init copies the chip's windows as they are. */
typedef struct {
    capheap_alias_kind_t kind;
    uintptr_t dram_low, dram_high, iram_low, iram_high;
} ch_alias_t;

/* Where the descriptors go in ch_g: first in compact builds for RISC-V, which
 * reaches any field of a global from one lui and a 12-bit offset, so the
 * scalars lose nothing, while &ch_g.heaps[k] becomes ch_g + 44 k (no offset
 * to add; -32 B at -Os). Last elsewhere: Thumb-2's short loads reach 124
 * bytes from a base, and the scalars are read with the heaps (+28 B first). */
#if CH_COMPACT && defined(__riscv)
#define CH_HEAPS_FIRST 1
#else
#define CH_HEAPS_FIRST 0
#endif

typedef struct {
#if CH_HEAPS_FIRST
    ch_heap_t heaps[CAPHEAP_MAX_HEAPS];
#endif
#if !CH_COMPACT
    /* free()'s page cache: slot page % CH_FCACHE names the heap (hosting no
     * nested heap: fspan != 0) a pointer in such a page last resolved to,
     * NULL when empty. Filled by ch_find_slow, emptied by ch_reindex. A
     * lookup checks the pointer against the heap's bounds, so any entry is
     * safe to use: pages sharing a slot, or a page that straddles two heaps,
     * only miss. First in the state: its address is ch_g's (one add less). */
    ch_heap_t *fcache[CH_FCACHE];
#endif
    const capheap_chip_t *chip;
    const soc_reserved_region_t *reserved; /* the firmware's reservations given to init */
    size_t n_reserved;
    uint8_t n;                 /* descriptors in use */
#if !CH_COMPACT
    /* The address index and the route cache: compact builds search the
     * descriptors (ch_find_slow) and compute candidates per request. */
    uint8_t n_addr;            /* entries of by_addr / addr */
    uint8_t step;              /* half of the padded size of addr[] (a power of two; 0: one entry) */
    /* Odd while ch_reindex rebuilds addr[] and by_addr[] in place; a lookup
     * that saw it odd or changed takes the locked scan (a sequence lock). */
    uint32_t index_gen;
#endif
    bool started;              /* enable_nonos_stack_heaps() ran (runtime heaps start with minimum 0) */
    bool alias_any;            /* some heap hands out IRAM aliases: free must translate */
    uint8_t order[CAPHEAP_MAX_HEAPS];
#if !CH_COMPACT
    uint8_t by_addr[CAPHEAP_MAX_HEAPS];
    uintptr_t addr[2 * CAPHEAP_MAX_HEAPS]; /* padded to a power of two with UINTPTR_MAX */
    ch_route_t route[CH_ROUTES];
    /* MALLOC_CAP_DEFAULT's candidates (their multi_heap handles, in order,
     * NULL-terminated), rebuilt by ch_reindex: heap_caps_malloc's commonest
     * caps skip the route cache. Only heaps with the caps are ever stored (a
     * reader racing a rebuild sees a mix of two lists, never a heap without
     * them); the last slot stays NULL. Stored with release, read with
     * acquire: a reader that sees a handle sees its heap. */
    multi_heap_handle_t dflt[CAPHEAP_MAX_HEAPS + 1];
#endif
    ch_alias_t alias[2];       /* D/IRAM, RTC */
#if !CH_HEAPS_FIRST
    ch_heap_t heaps[CAPHEAP_MAX_HEAPS];
#endif
} ch_state_t;

extern ch_state_t ch_g;
/* The largest request (HEAP_SIZE_MAX): SIZE_MAX / 2 until a chip gives one. Not in
 * ch_g, so that ch_g is all zeros at start-up (.bss, no image in flash). */
extern size_t ch_size_max;

/* Registry lock (writers only: registration, route fills, monitor). The
 * port's calls themselves, inline (-8 B on Cortex-M4: a function's calls
 * share one literal for the lock's address), except in compact RISC-V
 * builds, which build the address with two instructions at every call
 * (+12 B inline). */
#if CAPHEAP_PORT_HOST
extern capheap_lock_t ch_registry_lock;
#else
extern int ch_registry_lock;
#endif

#if CH_COMPACT && defined(__riscv)
#define CH_LOCK_CALLS 1
void ch_lock(void);
void ch_unlock(void);
#else
#define CH_LOCK_CALLS 0
CH_INLINE void ch_lock(void)
{
    capheap_port_lock_acquire(&ch_registry_lock);
}

CH_INLINE void ch_unlock(void)
{
    capheap_port_lock_release(&ch_registry_lock);
}
#endif

/* capheap_caps_init() without the checks of its arguments (registry.c): for
 * a table compiled in, which the tests check, and reservations that are an
 * array or NULL with a count of 0. */
esp_err_t ch_caps_init(const capheap_chip_t *chip, const soc_reserved_region_t *reserved, size_t count);

/* The registered heap containing p (innermost for nested heaps), or NULL. O(log H). */
ch_heap_t *ch_find_slow(uintptr_t p);

#if !CH_COMPACT
/* The heap of p from free()'s page cache, or NULL (not cached: NULL and IRAM
 * alias pointers never are: their pages are in no heap, or in a heap at
 * address 0, which is never cached, ch_reindex). */
static inline ch_heap_t *ch_cached(uintptr_t p)
{
    /* the descriptor was published before the entry */
    ch_heap_t *h = CH_ACQUIRE(ch_g.fcache[(p >> CH_FCACHE_SHIFT) % CH_FCACHE]);
    /* A heap that hosts a nested one is never cached; an entry filled while
     * a nested heap was being added is refused here: its fspan is 0 now
     * (ch_find_slow). */
    if (CH_LIKELY(h != NULL && p - h->start < CH_LOAD(h->fspan)))
        return h;
    return NULL;
}
#endif

static inline ch_heap_t *ch_find(uintptr_t p)
{
#if !CH_COMPACT
    ch_heap_t *h = ch_cached(p); /* most frees land in a page a previous one resolved */
    if (CH_LIKELY(h != NULL))
        return h;
#endif
    return ch_find_slow(p);
}

/* A registered heap matching caps ("all of caps"; caps 0 matches everything). */
static inline bool ch_matches(const ch_heap_t *h, uint32_t caps)
{
    return CH_ACQUIRE(h->heap) != NULL && (h->all & caps) == caps;
}

/* For the check/dump/walk selector: INVALID or 0 selects every heap. */
static inline uint32_t ch_selector(uint32_t caps)
{
    return (caps & MALLOC_CAP_INVALID) ? 0u : caps;
}

/* A request after spec 2.6 steps 1-4 (hardware alignment, size checks, EXEC, 32BIT). */
typedef struct {
    size_t size, align;       /* align 0: the heap's own */
    size_t round;             /* the hardware step rounded size to this (0: not rounded) */
    uint32_t caps;
    capheap_fit_reason_t bad; /* CAPHEAP_FIT_OK if the request may go to the heaps */
} request_t;

request_t ch_prepare(size_t size, size_t align, uint32_t caps);

/* The candidate heaps of caps, in order, into list[CAPHEAP_MAX_HEAPS]; returns
 * their number. From the route cache (filled under the registry lock on a
 * miss; a copy that raced with a refill of its entry is computed again under
 * the lock), or computed under the lock in compact builds. */
size_t ch_candidates(uint32_t caps, uint8_t *list);
/* A copy of order[] (ch_g.n entries, returned) into list[CAPHEAP_MAX_HEAPS],
 * taken under the registry lock: the lock-free readers' view of the order.
 * Inline: a few instructions around the copy, which compact builds make on
 * every allocation (-20 B there: no function of its own). */
CH_INLINE size_t ch_order(uint8_t *list)
{
    ch_lock();
    size_t n = ch_g.n;
    memcpy(list, ch_g.order, n);
    ch_unlock();
    return n;
}
/* h's position in the list order (capheap_heap_get()), under the registry lock; -1 if unlisted. */
int ch_position(const ch_heap_t *h);

#if !CH_COMPACT
/* Rebuild ch_g.dflt (under the registry lock; ch_reindex). */
void ch_route_default(void);
#endif

/* What a failed allocation calls (route.c): ESP-IDF's callback
 * (heap_caps_register_failed_alloc_callback), and the extended one's caller
 * when an extended callback is installed (fit.c). Side by side: failed()
 * reads both from one address (-12 B on Cortex-M4). */
typedef struct {
    esp_alloc_failed_hook_t cb;
    void (*ext)(size_t size, uint32_t caps, size_t align, const char *fn);
} ch_failed_hooks_t;
extern ch_failed_hooks_t ch_failed_hooks;

/* Largest request heap h serves at alignment (0: the heap's own), for caps,
 * rounded down to round when the request's size is rounded (0: not). */
size_t ch_largest(const ch_heap_t *h, size_t alignment, uint32_t caps, size_t round);

/* The descriptor of a published heap, from its multi_heap handle, in O(1):
 * heap_caps attaches every heap's lock before it publishes the heap, and
 * that lock lives in the descriptor (host: its lock member; other ports: the
 * descriptor itself is the lock object: registry.c). */
static inline const ch_heap_t *ch_heap_of(multi_heap_handle_t mh)
{
    const char *l = (const char *)capheap_heap_lock_object(mh);
#if CAPHEAP_PORT_HOST
    return (const ch_heap_t *)(const void *)(l - offsetof(ch_heap_t, lock));
#else
    return (const ch_heap_t *)(const void *)l;
#endif
}

/* Undo an IRAM alias: the DRAM pointer of the block whose user pointer p is
 * (read from the hidden word), or p itself. */
void *ch_unalias(void *p, bool *was_alias);

/* The DRAM address of any IRAM alias address (by the window's formula; for
 * interior pointers), or p itself. */
void *ch_alias_direct(void *p, bool *was_alias);

/* The bytes the user owns from the IRAM pointer user of the EXEC alias block
 * of heap h that multi_heap knows as d with n usable bytes. */
size_t ch_alias_bytes(const ch_heap_t *h, const void *user, const void *d, size_t n);

/* The IRAM pointer the user holds for the EXEC alias block of heap h that
 * multi_heap knows as d (usable bytes): ch_unalias's inverse (task tracking's
 * block lists). */
void *ch_alias_user(const ch_heap_t *h, void *d, size_t usable);

/* Bytes in front of an EXEC alias block's user data: the hidden DRAM offset
 * word, padded so the user pointer keeps the heap's alignment. */
static inline size_t ch_hidden(const ch_heap_t *h)
{
    return h->align > 4u ? h->align : 4u;
}

/* Carve chip's regions by its reservations and extra[] (spec 2.2); with out
 * non-NULL store the pieces there (no coalescing, no heaps) and return their
 * count; else build the start-up heaps. err receives ESP_OK or the error. */
size_t ch_carve(const capheap_chip_t *chip, const soc_reserved_region_t *extra, size_t n_extra,
                soc_memory_region_t *out, esp_err_t *err);

/* Forget callbacks, the extmem policy and the monitor (capheap_caps_reset). */
void ch_reset_policy(void);
void ch_reset_monitor(void);
/* The minimum-free monitor's lock, for capheap_caps_lock_all() and friends
 * (stats.c); the child of a fork gets a fresh one. */
void ch_monitor_lock(void);
void ch_monitor_unlock(void);
#if CAPHEAP_PORT_HOST
void ch_monitor_fork_child(void);
#endif

/* Report what at p (expected 0, found found: a pointer no heap owns, or an
 * error code of start-up), then abort through the port. One helper for both
 * keeps each caller to a call. */
void ch_report_fatal(const char *what, const void *p, uint32_t found);

#endif /* CAPHEAP_CAPS_PRIVATE_H */
