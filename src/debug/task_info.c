/*
 * task_info.c - per-task heap accounting (esp_heap_task_info.h) in O(1) per
 * allocation and free.
 *
 * heap_caps calls ch_task_alloc_in() after every successful allocation and
 * ch_task_free() after every free (src/debug/hooks.c; an in-place realloc is
 * a free and an allocation of the same address). This file charges each block
 * to the task that allocated it and keeps, per task and per heap, the bytes in
 * use, their peak and the live block count. ESP-IDF does the same with linked
 * lists per task, heap and block, walked on every call under a mutex, and an
 * owner word in every block (spec 4.3, 7.2 item 14). Here every structure is
 * static, found by hashing, and touched a bounded number of times per call:
 *
 *   tt.block[]  open-addressing hash table, linear probing, keyed by the
 *               block's address: owner task slot, heap slot, size. Deletion
 *               shifts the following entries back (no tombstones, so the
 *               probe length stays that of the live load, <= 3/4).
 *               TT_BLOCK_SLOTS = the power of two >= 4/3 x MAX_BLOCKS.
 *   tt.tmap[]   the same for tasks, keyed by handle -> task slot + 1;
 *               tt.last_* caches the last task seen (one compare per call).
 *   tt.task[]   per task: name, state, totals (a cell for all heaps), and
 *               one cell per heap descriptor slot (current, peak, count).
 *
 *      ch_task_alloc_in(p, heap, size)        ch_task_free(p)
 *        (heap_caps' fast paths pass the        lock
 *         heap slot and the usable size         find p in block[]  --> task, heap, size
 *         multi_heap read under its lock;       cells -= size, count--
 *         the other paths pass size 0:          delete p (backward shift)
 *         registry lookup, size query)          unlock
 *        task = current task (host: TLS)
 *        lock
 *        slot of task (last one / tmap)
 *        insert p in block[]
 *        cells += size, peaks, count++
 *        unlock
 *
 * The fast paths of both are leaf code: anything unusual (a contended lock,
 * another task than the last, a listed address, a full table, a deleted
 * owner) is a tail call to an out-of-line general path.
 *
 * Heaps are identified by their descriptor slot in the registry (ch_g.heaps[]),
 * which never moves (only capheap_caps_reset() clears it; it must then call
 * capheap_task_tracking_reset()). The size query of the general path is made
 * before the lock (it takes the heap's own lock), so the tracking lock is
 * never held while another is taken: no lock order to get wrong.
 *
 * Full tables never corrupt anything: a block that finds no room is counted
 * as untracked (its later free is an "unknown free", also counted); a new
 * task that finds no slot likewise. Memory: MAX_TASKS x MAX_HEAPS cells and
 * TT_BLOCK_SLOTS entries, all static (nothing comes from the heaps tracked).
 *
 * Lock: host: a test-and-test-and-set spinlock that yields the CPU after a
 * short spin. The critical section is a few dozen instructions with no call
 * in it, where a pthread mutex would double the cost of tracking (about 80
 * instructions per lock/unlock pair). Bare metal: the port's lock hooks on
 * a lock object of this file (an interrupt mask makes tracking ISR-safe).
 *
 * Queries (the esp_heap_task_info.h functions) are O(tasks x heaps + table
 * size) under the lock; printing snapshots under the lock and prints without
 * it (a stream may allocate, and the allocation would come back here).
 */
#define _POSIX_C_SOURCE 200809L /* sched_yield */

#include "esp_heap_task_info.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capheap/config.h"
#include "capheap/port.h"
#include "capheap/task_info.h"

#if CAPHEAP_TASK_TRACKING

#include "caps/caps_private.h"
#include "heap/heap_private.h"
#include "debug/debug_hooks.h"
#include "esp_heap_caps.h"
#include "multi_heap.h"
#include "port/port_private.h"

#if CAPHEAP_PORT_HOST
#include <sched.h>
#endif

#ifndef CAPHEAP_TASK_TRACKING_MAX_BLOCKS
#if CAPHEAP_PORT_HOST
#define CAPHEAP_TASK_TRACKING_MAX_BLOCKS 4096
#else
#define CAPHEAP_TASK_TRACKING_MAX_BLOCKS 512
#endif
#endif
#ifndef CAPHEAP_TASK_TRACKING_MAX_TASKS
#if CAPHEAP_PORT_HOST
#define CAPHEAP_TASK_TRACKING_MAX_TASKS 64
#else
#define CAPHEAP_TASK_TRACKING_MAX_TASKS 16
#endif
#endif
#ifndef CAPHEAP_TRACK_DELETED_TASKS
#define CAPHEAP_TRACK_DELETED_TASKS 0
#endif

#if CAPHEAP_TASK_TRACKING_MAX_BLOCKS < 1 || CAPHEAP_TASK_TRACKING_MAX_BLOCKS > (1L << 24)
#error "CAPHEAP_TASK_TRACKING_MAX_BLOCKS must be 1..16777216"
#endif
#if CAPHEAP_TASK_TRACKING_MAX_TASKS < 1 || CAPHEAP_TASK_TRACKING_MAX_TASKS > 255
#error "CAPHEAP_TASK_TRACKING_MAX_TASKS must be 1..255 (a block names its task in one byte)"
#endif
#if CAPHEAP_MAX_HEAPS > 255
#error "a block names its heap in one byte"
#endif

/* Smallest power of two >= x (x >= 1, x < 2^31), at compile time. */
#define TT_S1(x) ((x) | ((x) >> 1))
#define TT_S2(x) (TT_S1(x) | (TT_S1(x) >> 2))
#define TT_S4(x) (TT_S2(x) | (TT_S2(x) >> 4))
#define TT_S8(x) (TT_S4(x) | (TT_S4(x) >> 8))
#define TT_S16(x) (TT_S8(x) | (TT_S8(x) >> 16))
#define TT_POW2(x) (TT_S16((unsigned long)(x) - 1ul) + 1ul)

#define TT_MAX_BLOCKS ((size_t)CAPHEAP_TASK_TRACKING_MAX_BLOCKS)
#define TT_MAX_TASKS CAPHEAP_TASK_TRACKING_MAX_TASKS
/* Load factor <= 3/4 at MAX_BLOCKS: a miss probes about 8 entries at worst
 * on average, a hit 2.5; the usual load is far lower. */
#define TT_BLOCK_SLOTS ((size_t)TT_POW2(CAPHEAP_TASK_TRACKING_MAX_BLOCKS + CAPHEAP_TASK_TRACKING_MAX_BLOCKS / 3 + 1))
#define TT_TASK_SLOTS ((size_t)TT_POW2(2 * CAPHEAP_TASK_TRACKING_MAX_TASKS))
#define TT_NONE UINT32_MAX
#define TT_SORT_CHUNK 32u /* blocks a print collects per scan of the table */
#define TT_ARRAY_ALIGN 8u /* the stat arrays: >= alignment of size_t and pointers */

#if defined(__GNUC__)
#define TT_LIKELY(x) __builtin_expect(!!(x), 1)
#define TT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TT_NOINLINE __attribute__((noinline))
#else
#define TT_NOINLINE
#define TT_LIKELY(x) (x)
#define TT_UNLIKELY(x) (x)
#endif

enum { TT_FREE = 0, TT_ALIVE = 1, TT_DELETED = 2 };

/** One tracked block. addr 0: empty entry (no block lives at address 0). */
typedef struct {
    uintptr_t addr; /* the pointer the user got */
    uint32_t size;  /* heap_caps_get_allocated_size() at allocation */
    uint8_t task;   /* slot in tt.task[] */
    uint8_t heap;   /* descriptor slot in ch_g.heaps[] */
} tt_block_t;

/** One task in one heap, or (tt_task_t.all) in all of them. */
typedef struct {
    size_t current, peak;
    uint32_t count; /* live blocks */
    uint32_t fill;  /* queries only (under the lock): next output index, or TT_NONE */
} tt_cell_t;

typedef struct {
    void *handle;
    uint8_t state;  /* TT_FREE, TT_ALIVE, TT_DELETED */
    char name[configMAX_TASK_NAME_LEN];
    uint32_t scratch; /* queries only: index in the caller's totals array */
    tt_cell_t all;    /* the task's totals: bytes, peak, live blocks */
    tt_cell_t cell[CAPHEAP_MAX_HEAPS];
} tt_task_t;

static struct {
#if CAPHEAP_PORT_HOST
    unsigned char lock; /* spinlock: 0 free, 1 held */
#else
    unsigned char lock_object; /* the port lock's identity (its address) */
#endif
    bool last_ok;
    uint8_t last_slot;
    void *last_task;
    size_t n_blocks, n_tasks;
    size_t untracked_blocks, untracked_task_blocks, unknown_frees;
    uint8_t tmap[TT_TASK_SLOTS]; /* task slot + 1; 0 empty */
    tt_task_t task[TT_MAX_TASKS];
    tt_block_t block[TT_BLOCK_SLOTS];
} tt;

/* ---- the lock -------------------------------------------------------------- */

#if CAPHEAP_PORT_HOST
/* Contended: spin on a plain read (no cache-line ping-pong), then give the
 * CPU to the holder, which may have been preempted. Out of line: the
 * uncontended lock is one exchange in a function that saves no registers. */
static TT_NOINLINE void tt_lock_wait(void)
{
    do {
        for (unsigned spin = 0; __atomic_load_n(&tt.lock, __ATOMIC_RELAXED) != 0; spin++)
            if (spin >= 64u)
                (void)sched_yield();
    } while (__atomic_exchange_n(&tt.lock, 1, __ATOMIC_ACQUIRE) != 0);
}
#endif

/* The fast paths' lock: true if taken at once. Bare metal: the port's lock
 * (an interrupt mask does not fail). */
static inline bool tt_trylock(void)
{
#if CAPHEAP_PORT_HOST
    return __atomic_exchange_n(&tt.lock, 1, __ATOMIC_ACQUIRE) == 0;
#else
    capheap_port_lock_acquire(&tt.lock_object);
    return true;
#endif
}

static inline void tt_lock(void)
{
#if CAPHEAP_PORT_HOST
    if (TT_UNLIKELY(__atomic_exchange_n(&tt.lock, 1, __ATOMIC_ACQUIRE) != 0))
        tt_lock_wait();
#else
    capheap_port_lock_acquire(&tt.lock_object);
#endif
}

static inline void tt_unlock(void)
{
#if CAPHEAP_PORT_HOST
    __atomic_store_n(&tt.lock, 0, __ATOMIC_RELEASE);
#else
    capheap_port_lock_release(&tt.lock_object);
#endif
}

/* ---- hashing --------------------------------------------------------------- */

/* log2 of a power of two; folded to a constant for the table sizes. */
static inline unsigned tt_log2(size_t pow2)
{
    unsigned n = 0;
    while ((pow2 >>= 1) != 0)
        n++;
    return n;
}

static inline size_t tt_hash(uintptr_t key, size_t slots)
{
    /* Fibonacci hashing: the top bits of key x 2^64/phi; slots is a power of
     * two, so the shift is a constant after inlining. Blocks are at least
     * 4-aligned and 8 bytes apart; the multiply spreads the low bits. */
    uint64_t x = (uint64_t)key * 0x9E3779B97F4A7C15u;
    return (size_t)(x >> (64u - tt_log2(slots)));
}

/* i < k <= j in cyclic order: an entry whose home is k and that sits at j
 * may not move back to the hole at i. */
static inline bool tt_between(size_t i, size_t k, size_t j)
{
    return i <= j ? (i < k && k <= j) : (i < k || k <= j);
}

/* ---- tasks ----------------------------------------------------------------- */

static int tt_task_find(void *task)
{
    size_t mask = TT_TASK_SLOTS - 1u;
    for (size_t i = tt_hash((uintptr_t)task, TT_TASK_SLOTS);; i = (i + 1u) & mask) {
        unsigned s = tt.tmap[i];
        if (s == 0)
            return -1;
        if (tt.task[s - 1u].handle == task)
            return (int)(s - 1u);
    }
}

static void tt_tmap_remove(void *task)
{
    size_t mask = TT_TASK_SLOTS - 1u;
    size_t i = tt_hash((uintptr_t)task, TT_TASK_SLOTS);
    while (tt.tmap[i] != 0 && tt.task[tt.tmap[i] - 1u].handle != task)
        i = (i + 1u) & mask;
    if (tt.tmap[i] == 0)
        return;
    for (size_t j = i;;) {
        j = (j + 1u) & mask;
        if (tt.tmap[j] == 0)
            break;
        size_t k = tt_hash((uintptr_t)tt.task[tt.tmap[j] - 1u].handle, TT_TASK_SLOTS);
        if (!tt_between(i, k, j)) {
            tt.tmap[i] = tt.tmap[j];
            i = j;
        }
    }
    tt.tmap[i] = 0;
}

static TT_NOINLINE void tt_task_drop(unsigned slot)
{
    tt_tmap_remove(tt.task[slot].handle);
    memset(&tt.task[slot], 0, sizeof tt.task[slot]);
    tt.n_tasks--;
    tt.last_ok = false;
    tt.last_task = NULL; /* the fast path tests only last_task (its task is never NULL) */
}

static void tt_copy_name(char *out, const char *name, void *task)
{
    size_t n = 0;
    if (name != NULL) {
        while (name[n] != '\0' && n < configMAX_TASK_NAME_LEN - 1u) {
            out[n] = name[n];
            n++;
        }
        out[n] = '\0';
        return;
    }
    /* The port cannot name it: "task-" and the handle in hex. */
    static const char prefix[] = "task-";
    uintptr_t v = (uintptr_t)task;
    memcpy(out, prefix, sizeof prefix - 1u);
    n = sizeof prefix - 1u;
    char hex[2 * sizeof v];
    size_t d = 0;
    do {
        hex[d++] = "0123456789abcdef"[v & 0xFu];
        v >>= 4;
    } while (v != 0 && d < sizeof hex);
    while (d > 0 && n < configMAX_TASK_NAME_LEN - 1u)
        out[n++] = hex[--d];
    out[n] = '\0';
}

/* A slot for a task seen for the first time (lock held), or -1 if the table
 * is full. O(MAX_TASKS), once per task. */
static int tt_task_create(void *task, const char *name)
{
    int slot = -1;
    for (unsigned i = 0; i < TT_MAX_TASKS && slot < 0; i++)
        if (tt.task[i].state == TT_FREE)
            slot = (int)i;
#if CAPHEAP_TRACK_DELETED_TASKS
    /* Kept deleted tasks give way to live ones once they own nothing. */
    for (unsigned i = 0; i < TT_MAX_TASKS && slot < 0; i++)
        if (tt.task[i].state == TT_DELETED && tt.task[i].all.count == 0) {
            tt_task_drop(i);
            slot = (int)i;
        }
#endif
    if (slot < 0)
        return -1;
    tt_task_t *t = &tt.task[slot];
    t->handle = task;
    t->state = TT_ALIVE;
    tt_copy_name(t->name, name, task);
    size_t mask = TT_TASK_SLOTS - 1u;
    size_t i = tt_hash((uintptr_t)task, TT_TASK_SLOTS);
    while (tt.tmap[i] != 0)
        i = (i + 1u) & mask;
    tt.tmap[i] = (uint8_t)(slot + 1);
    tt.n_tasks++;
    return slot;
}

/* ---- accounting ------------------------------------------------------------ */

static inline void tt_charge_cell(tt_cell_t *c, size_t size)
{
    size_t now = c->current + size;
    c->current = now;
    if (now > c->peak)
        c->peak = now;
    c->count++;
}

static inline void tt_charge(unsigned slot, unsigned heap, size_t size)
{
    tt_task_t *t = &tt.task[slot];
    tt_charge_cell(&t->all, size);
    tt_charge_cell(&t->cell[heap], size);
}

/* Credit a block back to its owner (lock held); a deleted task that owns
 * nothing any more is dropped unless deleted tasks are kept. */
static inline void tt_credit(const tt_block_t *b, bool may_drop)
{
    tt_task_t *t = &tt.task[b->task];
    tt_cell_t *c = &t->cell[b->heap];
    t->all.current -= b->size;
    t->all.count--;
    c->current -= b->size;
    c->count--;
#if !CAPHEAP_TRACK_DELETED_TASKS
    if (TT_UNLIKELY(t->state == TT_DELETED && t->all.count == 0) && may_drop)
        tt_task_drop(b->task);
#else
    (void)may_drop;
#endif
}

/* Remove block[i] (lock held): backward-shift deletion. */
static inline void tt_block_remove(size_t i)
{
    size_t mask = TT_BLOCK_SLOTS - 1u;
    for (size_t j = i;;) {
        j = (j + 1u) & mask;
        uintptr_t a = tt.block[j].addr;
        if (a == 0)
            break;
        if (!tt_between(i, tt_hash(a, TT_BLOCK_SLOTS), j)) {
            tt.block[i] = tt.block[j];
            i = j;
        }
    }
    tt.block[i].addr = 0;
    tt.n_blocks--;
}

/* Enter a block at the free entry i and charge it (lock held). */
static inline void tt_insert(size_t i, uintptr_t a, uint32_t size, unsigned slot, unsigned heap)
{
    tt.block[i].addr = a;
    tt.block[i].size = size;
    tt.block[i].task = (uint8_t)slot;
    tt.block[i].heap = (uint8_t)heap;
    tt.n_blocks++;
    tt_charge(slot, heap, size);
}

/* The registry slot and allocated size of a user pointer (no lock of ours
 * held), for the callers that could not say them (heap_caps' slow paths). */
static bool tt_locate(void *ptr, unsigned *heap, size_t *size)
{
    void *raw = ptr;
    bool alias = false;
#if CAPHEAP_EXEC_HEAP
    if (TT_UNLIKELY(CH_LOAD(ch_g.alias_any)))
        raw = ch_unalias(ptr, &alias);
#endif
    /* The registry's own lookup (innermost heap: a region may be registered
     * inside a block of another heap). A cache of our own here went stale
     * when a heap became host of a nested one after it was cached. */
    ch_heap_t *h = ch_find((uintptr_t)raw);
    if (TT_UNLIKELY(h == NULL))
        return false;
    *heap = (unsigned)(h - ch_g.heaps);
    size_t hidden = alias ? ch_hidden(h) : 0u; /* the IRAM alias word (route.c) */
    size_t n = capheap_heap_usable_size_quiet(CH_ACQUIRE(h->heap), raw);
    *size = n > hidden ? n - hidden : 0;
    return *size != 0;
}

/* Everything the fast path below leaves out: a caller that could not say the
 * block's heap and size, a task other than the last one seen, a block still
 * listed, a full table. Out of line, so that the fast path needs no saved
 * registers. */
static TT_NOINLINE void tt_alloc_general(void *ptr, unsigned heap, size_t n, void *task)
{
    if (TT_UNLIKELY(ptr == NULL))
        return;
    if (task == NULL)
        task = capheap_port_current_task();
    if ((n == 0 || heap == CH_HEAP_UNKNOWN) && !tt_locate(ptr, &heap, &n))
        return; /* not told by the caller, and in no heap */
    if (TT_UNLIKELY(n > UINT32_MAX))
        n = UINT32_MAX; /* heap_task_block_t's size is 32 bits; no region is that big */

    tt_lock();
    int slot;
    if (TT_LIKELY(tt.last_ok && tt.last_task == task)) {
        slot = tt.last_slot;
    } else {
        slot = tt_task_find(task);
        if (TT_UNLIKELY(slot < 0)) {
            /* First allocation of this task: its name, asked without our lock. */
            tt_unlock();
            const char *name = capheap_port_task_name(task);
            char copy[configMAX_TASK_NAME_LEN];
            tt_copy_name(copy, name, task);
            tt_lock();
            slot = tt_task_find(task);
            if (slot < 0)
                slot = tt_task_create(task, copy);
            if (slot < 0) {
                tt.untracked_task_blocks++;
                tt_unlock();
                return;
            }
        }
        tt.last_task = task;
        tt.last_slot = (uint8_t)slot;
        tt.last_ok = true;
    }

    uintptr_t a = (uintptr_t)ptr;
    size_t mask = TT_BLOCK_SLOTS - 1u;
    size_t i = tt_hash(a, TT_BLOCK_SLOTS);
    for (;; i = (i + 1u) & mask) {
        uintptr_t e = tt.block[i].addr;
        if (e == 0)
            break;
        if (TT_UNLIKELY(e == a)) {
            /* Still listed: its free has not reached us yet (another thread
             * freed it and this one got it back before that thread's hook
             * ran). The old owner gets the block back now; the late free
             * will take the new entry, and the new owner's own free will be
             * an unknown free: the books balance again then. */
            tt_credit(&tt.block[i], tt.block[i].task != slot); /* keep `slot` valid */
            tt_block_remove(i);
            i = tt_hash(a, TT_BLOCK_SLOTS);
            while (tt.block[i].addr != 0)
                i = (i + 1u) & mask;
            break;
        }
    }
    if (TT_UNLIKELY(tt.n_blocks >= TT_MAX_BLOCKS)) {
        tt.untracked_blocks++;
        tt_unlock();
        return;
    }
    tt_insert(i, a, (uint32_t)n, (unsigned)slot, heap);
    tt_unlock();
}

/* ptr is never NULL (heap_caps reports blocks it returns). n < 2^32: the
 * engine's offsets are 32-bit, no block is larger. */
void ch_task_alloc_in(void *ptr, unsigned heap, size_t n)
{
#if !CH_COMPACT
    if (heap == CH_HEAP_UNKNOWN && n != 0) {
        /* The caller had the heap's handle, not its slot: free()'s page
         * cache knows the block's page, as a rule (else the general path). */
        const ch_heap_t *h = ch_cached((uintptr_t)ptr);
        if (TT_UNLIKELY(h == NULL)) {
            tt_alloc_general(ptr, heap, 0, NULL);
            return;
        }
        heap = (unsigned)(h - ch_g.heaps);
    }
#endif
    void *task = capheap_current_task_known();
    /* Fast path (no call: the rest is a tail call): heap and size known, the
     * task known without asking the port and the same as last time, the
     * address not listed, room in the table. */
    if (TT_LIKELY(task != NULL && n != 0)) {
        uintptr_t a = (uintptr_t)ptr;
        size_t mask = TT_BLOCK_SLOTS - 1u;
        size_t i = tt_hash(a, TT_BLOCK_SLOTS);
        if (TT_UNLIKELY(!tt_trylock())) {
            tt_alloc_general(ptr, heap, n, task); /* contended: wait there */
            return;
        }
        if (TT_LIKELY(tt.last_task == task && tt.n_blocks < TT_MAX_BLOCKS)) {
            uintptr_t e;
            while ((e = tt.block[i].addr) != 0 && e != a)
                i = (i + 1u) & mask;
            if (TT_LIKELY(e == 0)) {
                tt_insert(i, a, (uint32_t)n, tt.last_slot, heap);
                tt_unlock();
                return;
            }
        }
        tt_unlock();
    }
    tt_alloc_general(ptr, heap, n, task);
}

/* A deleted task whose last block went: its slot is free again (unless a
 * concurrent allocation by its handle revived it between the locks). */
static TT_NOINLINE void tt_drop_if_done(unsigned slot)
{
    tt_lock();
    if (tt.task[slot].state == TT_DELETED && tt.task[slot].all.count == 0)
        tt_task_drop(slot);
    tt_unlock();
}

/* What taking a block out of the books left to do: nothing (TT_FREED), the
 * whole of it because the lock was busy (TT_BUSY), or the drop of a deleted
 * owner that owns nothing now (its slot, for tt_drop_if_done). */
#define TT_FREED 256
#define TT_BUSY (-1)

/* Take the block at a out of the books (lock held); an address not listed
 * is counted as an unknown free. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int tt_unlist(uintptr_t a)
{
    size_t mask = TT_BLOCK_SLOTS - 1u;
    size_t i = tt_hash(a, TT_BLOCK_SLOTS);
    uintptr_t e;
    while ((e = tt.block[i].addr) != a && e != 0)
        i = (i + 1u) & mask;
    if (TT_UNLIKELY(e != a)) {
        tt.unknown_frees++;
        return TT_FREED;
    }
    tt_block_t b = tt.block[i];
    tt_block_remove(i);
    tt_credit(&b, false); /* dropped after the lock, by tt_drop_if_done */
    const tt_task_t *t = &tt.task[b.task];
    bool drop = !CAPHEAP_TRACK_DELETED_TASKS && t->state == TT_DELETED && t->all.count == 0;
    return TT_UNLIKELY(drop) ? (int)b.task : TT_FREED;
}

/* ch_task_free's fast path: no call, no wait (a busy lock is TT_BUSY). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int tt_free_fast(void *ptr)
{
    if (TT_UNLIKELY(!tt_trylock()))
        return TT_BUSY;
    int r = tt_unlist((uintptr_t)ptr);
    tt_unlock();
    return r;
}

/* What tt_free_fast left: the whole free under a waited-for lock, and the
 * drop of a deleted owner. */
static TT_NOINLINE void tt_free_rest(void *ptr, int r)
{
    if (r == TT_BUSY) {
        tt_lock();
        r = tt_unlist((uintptr_t)ptr);
        tt_unlock();
    }
    if (r != TT_FREED)
        tt_drop_if_done((unsigned)r);
}

void ch_task_free(void *ptr)
{
    if (TT_UNLIKELY(ptr == NULL))
        return;
    int r = tt_free_fast(ptr);
    if (TT_UNLIKELY(r != TT_FREED))
        tt_free_rest(ptr, r);
}

#if !CH_COMPACT
static TT_NOINLINE void tt_free_rest_then(void *ptr, multi_heap_handle_t mh, int r)
{
    tt_free_rest(ptr, r);
    capheap_heap_free_locked(mh, ptr);
}

/* heap_caps_free's fast path with task tracking alone: the block leaves the
 * books, then multi_heap's locked free, a tail call (heap_caps_free keeps
 * nothing alive across the tracker, and neither does this). ptr is not NULL. */
void ch_task_free_then(void *ptr, multi_heap_handle_t mh)
{
    int r = tt_free_fast(ptr);
    if (TT_UNLIKELY(r != TT_FREED)) {
        tt_free_rest_then(ptr, mh, r);
        return;
    }
    capheap_heap_free_locked(mh, ptr);
}
#endif

/* capheap_describe_block(): print ', task "name"' for the owner of p, if
 * tracked. Called on a corruption report, possibly with a heap lock held:
 * the tracker's lock is only tried, never waited for. */
void ch_task_describe(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    size_t mask = TT_BLOCK_SLOTS - 1u;
    size_t i = tt_hash(a, TT_BLOCK_SLOTS);
#if CAPHEAP_PORT_HOST
    if (__atomic_exchange_n(&tt.lock, 1, __ATOMIC_ACQUIRE) != 0)
        return;
#else
    tt_lock();
#endif
    char name[configMAX_TASK_NAME_LEN] = "";
    bool found = false;
    for (size_t n = 0; n < TT_BLOCK_SLOTS; n++, i = (i + 1u) & mask) {
        uintptr_t e = tt.block[i].addr;
        if (e == 0)
            break;
        if (e == a) {
            memcpy(name, tt.task[tt.block[i].task].name, sizeof name);
            name[sizeof name - 1u] = '\0';
            found = true;
            break;
        }
    }
    tt_unlock();
    if (found)
        capheap_printf(", task \"%s\"", name);
}

/* fork (capheap_caps_lock_all and friends): no thread may be inside the
 * tracker while the process forks; the child starts with the lock free. */
void ch_task_fork_prepare(void)
{
    tt_lock();
}

void ch_task_fork_parent(void)
{
    tt_unlock();
}

void ch_task_fork_child(void)
{
#if CAPHEAP_PORT_HOST
    __atomic_store_n(&tt.lock, 0, __ATOMIC_RELAXED);
#else
    tt_unlock();
#endif
}

void capheap_task_deleted(void *task)
{
    tt_lock();
    int slot = tt_task_find(task);
    if (slot >= 0) {
        tt.task[slot].state = TT_DELETED;
#if !CAPHEAP_TRACK_DELETED_TASKS
        if (tt.task[slot].all.count == 0)
            tt_task_drop((unsigned)slot);
#endif
    }
    tt_unlock();
}

esp_err_t capheap_task_tracking_get_stats(capheap_task_tracking_stats_t *out)
{
    if (out == NULL)
        return ESP_ERR_INVALID_ARG;
    tt_lock();
    out->tasks = tt.n_tasks;
    out->max_tasks = TT_MAX_TASKS;
    out->blocks = tt.n_blocks;
    out->max_blocks = TT_MAX_BLOCKS;
    out->untracked_blocks = tt.untracked_blocks;
    out->untracked_task_blocks = tt.untracked_task_blocks;
    out->unknown_frees = tt.unknown_frees;
    tt_unlock();
    return ESP_OK;
}

void capheap_task_tracking_reset(void)
{
    tt_lock();
    tt.last_ok = false;
    tt.last_task = NULL;
    tt.n_blocks = tt.n_tasks = 0;
    tt.untracked_blocks = tt.untracked_task_blocks = tt.unknown_frees = 0;
    memset(tt.tmap, 0, sizeof tt.tmap);
    memset(tt.task, 0, sizeof tt.task);
    memset(tt.block, 0, sizeof tt.block);
    tt_unlock();
}

/* ---- queries --------------------------------------------------------------- */

/* Live task slots by descending handle ("Pre-scheduler", NULL, last), as
 * ESP-IDF lists them (lock held). Returns their number. */
static size_t tt_order(uint8_t *out)
{
    size_t n = 0;
    for (unsigned i = 0; i < TT_MAX_TASKS; i++) {
        if (tt.task[i].state == TT_FREE)
            continue;
        size_t j = n++;
        uintptr_t h = (uintptr_t)tt.task[i].handle;
        for (; j > 0 && (uintptr_t)tt.task[out[j - 1]].handle < h; j--)
            out[j] = out[j - 1];
        out[j] = (uint8_t)i;
    }
    return n;
}

/* A heap slot the task has used (its peak is not 0). */
static inline bool tt_used(const tt_task_t *t, size_t h)
{
    return t->cell[h].peak != 0;
}

static size_t tt_heaps_used(const tt_task_t *t)
{
    size_t n = 0;
    for (size_t h = 0; h < CAPHEAP_MAX_HEAPS; h++)
        n += tt_used(t, h);
    return n;
}

static void tt_fill_task(task_stat_t *out, const tt_task_t *t)
{
    memcpy(out->name, t->name, sizeof out->name);
    out->handle = (TaskHandle_t)t->handle;
    out->is_alive = t->state == TT_ALIVE;
    out->overall_peak_usage = t->all.peak;
    out->overall_current_usage = t->all.current;
    out->heap_count = tt_heaps_used(t);
    out->heap_stat = NULL;
}

static void tt_fill_heap(heap_stat_t *out, const tt_task_t *t, size_t h)
{
    const ch_heap_t *d = &ch_g.heaps[h];
    out->name = (char *)(d->name != NULL ? d->name : "?");
    out->caps = d->all;
    out->size = (size_t)(d->end - d->start);
    out->current_usage = t->cell[h].current;
    out->peak_usage = t->cell[h].peak;
    out->alloc_count = t->cell[h].count;
    out->alloc_stat = NULL;
}

static void tt_reset_fill(void)
{
    for (unsigned i = 0; i < TT_MAX_TASKS; i++)
        for (size_t h = 0; h < CAPHEAP_MAX_HEAPS; h++)
            tt.task[i].cell[h].fill = TT_NONE;
}

/* Emit one task (lock held): its heaps into heaps[*hi..], each heap's blocks
 * reserved in blocks[*ai..] (filled later by tt_fill_blocks). */
static void tt_emit(task_stat_t *out, unsigned slot, heap_stat_t *heaps, size_t heap_cap, size_t *hi,
                    size_t block_cap, size_t *ai)
{
    tt_task_t *t = &tt.task[slot];
    tt_fill_task(out, t);
    if (out->heap_count == 0 || heaps == NULL || out->heap_count > heap_cap - *hi)
        return;
    out->heap_stat = &heaps[*hi];
    for (size_t h = 0; h < CAPHEAP_MAX_HEAPS; h++) {
        if (!tt_used(t, h))
            continue;
        heap_stat_t *hs = &heaps[(*hi)++];
        tt_fill_heap(hs, t, h);
        size_t count = t->cell[h].count;
        if (count != 0 && count <= block_cap - *ai) {
            t->cell[h].fill = (uint32_t)*ai;
            *ai += count;
        }
    }
}

/* Put every block whose cell reserved room into blocks[] (lock held). */
static void tt_fill_blocks(heap_task_block_t *blocks)
{
    for (size_t i = 0; i < TT_BLOCK_SLOTS; i++) {
        const tt_block_t *b = &tt.block[i];
        if (b->addr == 0)
            continue;
        tt_cell_t *c = &tt.task[b->task].cell[b->heap];
        if (c->fill == TT_NONE)
            continue;
        heap_task_block_t *o = &blocks[c->fill++];
        o->task = (TaskHandle_t)tt.task[b->task].handle;
        o->address = (void *)b->addr;
        o->size = b->size;
    }
}

static int tt_by_address(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t)((const heap_task_block_t *)x)->address;
    uintptr_t b = (uintptr_t)((const heap_task_block_t *)y)->address;
    return (a > b) - (a < b);
}

esp_err_t heap_caps_get_all_task_stat(heap_all_tasks_stat_t *s)
{
    if (s == NULL || (s->stat_arr == NULL && s->task_count != 0) ||
        (s->heap_stat_start == NULL && s->heap_count != 0) || (s->alloc_stat_start == NULL && s->alloc_count != 0))
        return ESP_ERR_INVALID_ARG;
    uint8_t order[TT_MAX_TASKS];
    size_t ti = 0, hi = 0, ai = 0;
    tt_lock();
    tt_reset_fill();
    size_t n = tt_order(order);
    uint8_t emitted[TT_MAX_TASKS];
    for (size_t k = 0; k < n && ti < s->task_count; k++) {
        tt_emit(&s->stat_arr[ti], order[k], s->heap_stat_start, s->heap_count, &hi, s->alloc_count, &ai);
        emitted[ti++] = order[k];
    }
    /* Point each emitted heap at its reserved blocks before the fill pass
     * moves the cursors (same task and heap order as tt_emit). */
    size_t k = 0;
    for (size_t i = 0; i < ti; i++) {
        if (s->stat_arr[i].heap_stat == NULL)
            continue;
        const tt_task_t *t = &tt.task[emitted[i]];
        for (size_t h = 0; h < CAPHEAP_MAX_HEAPS; h++)
            if (tt_used(t, h)) {
                uint32_t f = t->cell[h].fill;
                s->heap_stat_start[k++].alloc_stat = f == TT_NONE ? NULL : s->alloc_stat_start + f;
            }
    }
    if (s->alloc_stat_start != NULL)
        tt_fill_blocks(s->alloc_stat_start);
    tt_unlock();
    for (size_t i = 0; i < hi; i++)
        if (s->heap_stat_start[i].alloc_stat != NULL)
            qsort(s->heap_stat_start[i].alloc_stat, s->heap_stat_start[i].alloc_count, sizeof(heap_task_block_t),
                  tt_by_address);
    s->task_count = ti;
    s->heap_count = hi;
    s->alloc_count = ai;
    return ESP_OK;
}

esp_err_t heap_caps_get_single_task_stat(heap_single_task_stat_t *s, TaskHandle_t task_handle)
{
    if (s == NULL || (s->heap_stat_start == NULL && s->heap_count != 0) ||
        (s->alloc_stat_start == NULL && s->alloc_count != 0))
        return ESP_ERR_INVALID_ARG;
    void *task = task_handle != NULL ? (void *)task_handle : capheap_port_current_task();
    size_t hi = 0, ai = 0;
    tt_lock();
    int slot = tt_task_find(task);
    if (slot < 0) {
        tt_unlock();
        return ESP_FAIL;
    }
    tt_reset_fill();
    tt_emit(&s->stat, (unsigned)slot, s->heap_stat_start, s->heap_count, &hi, s->alloc_count, &ai);
    for (size_t i = 0; i < hi; i++) {
        /* The same heaps in the same order as tt_emit walked them. */
        size_t seen = 0;
        for (size_t h = 0; h < CAPHEAP_MAX_HEAPS; h++)
            if (tt_used(&tt.task[slot], h) && seen++ == i) {
                uint32_t f = tt.task[slot].cell[h].fill;
                s->heap_stat_start[i].alloc_stat = f == TT_NONE ? NULL : s->alloc_stat_start + f;
                break;
            }
    }
    if (s->alloc_stat_start != NULL)
        tt_fill_blocks(s->alloc_stat_start);
    tt_unlock();
    for (size_t i = 0; i < hi; i++)
        if (s->heap_stat_start[i].alloc_stat != NULL)
            qsort(s->heap_stat_start[i].alloc_stat, s->heap_stat_start[i].alloc_count, sizeof(heap_task_block_t),
                  tt_by_address);
    s->heap_count = hi;
    s->alloc_count = ai;
    return ESP_OK;
}

size_t heap_caps_get_per_task_info(heap_task_info_params_t *p)
{
    if (p == NULL)
        return 0;
    size_t n_totals = 0;
    if (p->totals != NULL && p->num_totals != NULL) {
        n_totals = *p->num_totals;
        if (n_totals > p->max_totals)
            n_totals = p->max_totals;
        for (size_t i = 0; i < n_totals; i++) {
            memset(p->totals[i].size, 0, sizeof p->totals[i].size);
            memset(p->totals[i].count, 0, sizeof p->totals[i].count);
        }
    }
    size_t written = 0;
    tt_lock();
    for (unsigned i = 0; i < TT_MAX_TASKS; i++)
        tt.task[i].scratch = TT_NONE;
    for (size_t e = 0; e < TT_BLOCK_SLOTS; e++) {
        const tt_block_t *b = &tt.block[e];
        if (b->addr == 0)
            continue;
        tt_task_t *t = &tt.task[b->task];
        if (p->totals != NULL && p->num_totals != NULL) {
            if (t->scratch == TT_NONE) {
                for (size_t i = 0; i < n_totals && t->scratch == TT_NONE; i++)
                    if ((void *)p->totals[i].task == t->handle)
                        t->scratch = (uint32_t)i;
                if (t->scratch == TT_NONE && n_totals < p->max_totals) {
                    heap_task_totals_t *nt = &p->totals[n_totals];
                    memset(nt, 0, sizeof *nt); /* ESP-IDF zeroes one class only */
                    nt->task = (TaskHandle_t)t->handle;
                    t->scratch = (uint32_t)n_totals++;
                }
            }
            if (t->scratch != TT_NONE) {
                uint32_t heap_caps = ch_g.heaps[b->heap].all;
                for (size_t c = 0; c < NUM_HEAP_TASK_CAPS; c++)
                    if ((heap_caps & (uint32_t)p->mask[c]) == (uint32_t)p->caps[c]) {
                        p->totals[t->scratch].size[c] += b->size;
                        p->totals[t->scratch].count[c]++;
                        break;
                    }
            }
        }
        if (p->blocks != NULL && written < p->max_blocks) {
            bool wanted = p->tasks == NULL;
            for (size_t i = 0; !wanted && i < p->num_tasks; i++)
                wanted = (void *)p->tasks[i] == t->handle;
            if (wanted) {
                heap_task_block_t *o = &p->blocks[written++];
                o->task = (TaskHandle_t)t->handle;
                o->address = (void *)b->addr;
                o->size = b->size;
            }
        }
    }
    tt_unlock();
    if (p->totals != NULL && p->num_totals != NULL)
        *p->num_totals = n_totals;
    if (written > 1)
        qsort(p->blocks, written, sizeof *p->blocks, tt_by_address);
    return written;
}

/* ---- the stat arrays -------------------------------------------------------- */

/* Memory for the arrays: the data heap with the most free bytes, straight
 * through multi_heap (no hooks: the arrays are not tracked). */
static void *tt_array_alloc(size_t n, size_t each)
{
    if (n == 0)
        return NULL;
    if (n > SIZE_MAX / each)
        return NULL;
    multi_heap_handle_t best = NULL;
    size_t best_free = 0;
    capheap_heap_desc_t d;
    for (size_t i = 0; capheap_heap_get(i, &d); i++) {
        uint32_t all = d.caps[0] | d.caps[1] | d.caps[2];
        if (d.heap == NULL || (all & MALLOC_CAP_8BIT) == 0)
            continue;
        size_t f = multi_heap_free_size(d.heap);
        if (f > best_free) {
            best_free = f;
            best = d.heap;
        }
    }
    /* Chip heaps align blocks to 4; the structs hold size_t and pointers. */
    return best != NULL ? multi_heap_aligned_alloc(best, n * each, TT_ARRAY_ALIGN) : NULL;
}

/* Back through heap_caps_free (it finds the heap); our free hook finds no
 * entry and counts an unknown free, which is harmless. */
static void tt_array_free(void *p)
{
    if (p != NULL)
        heap_caps_free(p);
}

/* Counts of what a task holds (lock held). */
static void tt_sizes(const tt_task_t *t, size_t *heaps, size_t *blocks)
{
    *heaps += tt_heaps_used(t);
    *blocks += t->all.count;
}

/* Attach an array of n elements to a stat struct (nothing for n == 0): false
 * when it cannot be allocated (what was attached stays, for the free call). */
static bool tt_attach(void **array, size_t *count, size_t n, size_t elem)
{
    if (n == 0)
        return true;
    if ((*array = tt_array_alloc(n, elem)) == NULL)
        return false;
    *count = n;
    return true;
}

esp_err_t heap_caps_alloc_single_task_stat_arrays(heap_single_task_stat_t *s, TaskHandle_t task_handle)
{
    if (s == NULL)
        return ESP_ERR_INVALID_ARG;
    void *task = task_handle != NULL ? (void *)task_handle : capheap_port_current_task();
    size_t heaps = 0, blocks = 0;
    tt_lock();
    int slot = tt_task_find(task);
    if (slot >= 0)
        tt_sizes(&tt.task[slot], &heaps, &blocks);
    tt_unlock();
    s->heap_count = 0;
    s->heap_stat_start = NULL;
    s->alloc_count = 0;
    s->alloc_stat_start = NULL;
    if (slot < 0)
        return ESP_FAIL;
    if (!tt_attach((void **)&s->heap_stat_start, &s->heap_count, heaps, sizeof(heap_stat_t)) ||
        !tt_attach((void **)&s->alloc_stat_start, &s->alloc_count, blocks, sizeof(heap_task_block_t)))
        return ESP_FAIL;
    return ESP_OK;
}

void heap_caps_free_single_task_stat_arrays(heap_single_task_stat_t *s)
{
    if (s == NULL)
        return;
    tt_array_free(s->heap_stat_start);
    tt_array_free(s->alloc_stat_start);
    s->heap_stat_start = NULL;
    s->alloc_stat_start = NULL;
    s->heap_count = 0;
    s->alloc_count = 0;
}

esp_err_t heap_caps_alloc_all_task_stat_arrays(heap_all_tasks_stat_t *s)
{
    if (s == NULL)
        return ESP_ERR_INVALID_ARG;
    size_t tasks, heaps = 0, blocks = 0;
    tt_lock();
    tasks = tt.n_tasks;
    for (unsigned i = 0; i < TT_MAX_TASKS; i++)
        if (tt.task[i].state != TT_FREE)
            tt_sizes(&tt.task[i], &heaps, &blocks);
    tt_unlock();
    memset(s, 0, sizeof *s);
    if (!tt_attach((void **)&s->stat_arr, &s->task_count, tasks, sizeof(task_stat_t)))
        return ESP_FAIL;
    if (!tt_attach((void **)&s->heap_stat_start, &s->heap_count, heaps, sizeof(heap_stat_t)) ||
        !tt_attach((void **)&s->alloc_stat_start, &s->alloc_count, blocks, sizeof(heap_task_block_t)))
        return ESP_FAIL;
    return ESP_OK;
}

void heap_caps_free_all_task_stat_arrays(heap_all_tasks_stat_t *s)
{
    if (s == NULL)
        return;
    tt_array_free(s->stat_arr);
    tt_array_free(s->heap_stat_start);
    tt_array_free(s->alloc_stat_start);
    memset(s, 0, sizeof *s);
}

/* ---- printing --------------------------------------------------------------- */

/* Copy of one task taken under the lock; printed without it. */
typedef struct {
    tt_task_t t;
    uint8_t slot;
} tt_snap_t;

static bool tt_snapshot(void *task, tt_snap_t *out)
{
    tt_lock();
    int slot = tt_task_find(task);
    if (slot >= 0) {
        out->t = tt.task[slot];
        out->slot = (uint8_t)slot;
    }
    tt_unlock();
    return slot >= 0;
}

static FILE *tt_stream(FILE *f)
{
    return f != NULL ? f : stdout;
}

static unsigned long tt_percent(size_t part, size_t whole)
{
    return whole == 0 ? 0ul : (unsigned long)((uint64_t)part * 100u / (uint64_t)whole);
}

/* The blocks of (task slot, heap) by ascending address, TT_SORT_CHUNK per
 * scan of the table: each scan holds the lock for one pass and collects the
 * lowest addresses above the last one printed, so a print sees every block
 * that lived throughout it once, and never holds the lock while printing. */
static void tt_print_blocks(FILE *f, const tt_snap_t *s, size_t heap)
{
    uintptr_t after = 0;
    for (;;) {
        uintptr_t addr[TT_SORT_CHUNK];
        uint32_t size[TT_SORT_CHUNK];
        size_t n = 0;
        tt_lock();
        bool same = tt.task[s->slot].handle == s->t.handle && tt.task[s->slot].state != TT_FREE;
        for (size_t i = 0; same && i < TT_BLOCK_SLOTS; i++) {
            const tt_block_t *b = &tt.block[i];
            if (b->addr <= after || b->task != s->slot || b->heap != heap)
                continue;
            if (n == TT_SORT_CHUNK && b->addr >= addr[n - 1])
                continue;
            size_t j = n < TT_SORT_CHUNK ? n++ : n - 1;
            for (; j > 0 && addr[j - 1] > b->addr; j--) {
                addr[j] = addr[j - 1];
                size[j] = size[j - 1];
            }
            addr[j] = b->addr;
            size[j] = b->size;
        }
        tt_unlock();
        for (size_t i = 0; i < n; i++)
            fprintf(f, "\u2502    \u2502    \u251c ALLOC %p, SIZE %lu\n", (void *)addr[i], (unsigned long)size[i]);
        if (n < TT_SORT_CHUNK)
            return;
        after = addr[n - 1];
    }
}

static void tt_print_task(FILE *f, void *task)
{
    tt_snap_t s;
    if (!tt_snapshot(task, &s))
        return;
    const tt_task_t *t = &s.t;
    fprintf(f, "\u251c %s: %s, CURRENT MEMORY USAGE %lu, PEAK MEMORY USAGE %lu, TOTAL HEAP USED %lu:\n",
            t->state == TT_ALIVE ? "ALIVE" : "DELETED", t->name, (unsigned long)t->all.current, (unsigned long)t->all.peak,
            (unsigned long)tt_heaps_used(t));
    for (size_t h = 0; h < CAPHEAP_MAX_HEAPS; h++) {
        if (!tt_used(t, h))
            continue;
        heap_stat_t hs;
        tt_fill_heap(&hs, t, h);
        fprintf(f,
                "\u2502    \u251c HEAP: %s, CAPS: 0x%08lx, SIZE: %lu, USAGE: CURRENT %lu (%lu%%), PEAK %lu (%lu%%), "
                "ALLOC COUNT: %lu\n",
                hs.name, (unsigned long)hs.caps, (unsigned long)hs.size, (unsigned long)hs.current_usage,
                tt_percent(hs.current_usage, hs.size), (unsigned long)hs.peak_usage,
                tt_percent(hs.peak_usage, hs.size), (unsigned long)hs.alloc_count);
        tt_print_blocks(f, &s, h);
    }
}

/* Handles of every task, in output order (lock taken here). */
static size_t tt_handles(void **out)
{
    uint8_t order[TT_MAX_TASKS];
    tt_lock();
    size_t n = tt_order(order);
    for (size_t i = 0; i < n; i++)
        out[i] = tt.task[order[i]].handle;
    tt_unlock();
    return n;
}

void heap_caps_print_all_task_stat(FILE *stream)
{
    FILE *f = tt_stream(stream);
    void *handles[TT_MAX_TASKS];
    size_t n = tt_handles(handles);
    for (size_t i = 0; i < n; i++)
        tt_print_task(f, handles[i]);
}

void heap_caps_print_single_task_stat(FILE *stream, TaskHandle_t task_handle)
{
    tt_print_task(tt_stream(stream), task_handle != NULL ? (void *)task_handle : capheap_port_current_task());
}

#define TT_BAR_TASK "\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500"
#define TT_BAR_STATUS "\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500"
#define TT_BAR_CURRENT TT_BAR_TASK "\u2500\u2500"
#define TT_BAR_PEAK "\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500"
#define TT_BAR_HEAPS "\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500"
#define TT_RULE(l, m, r)                                                                                   \
    l TT_BAR_TASK m TT_BAR_STATUS m TT_BAR_CURRENT m TT_BAR_PEAK m TT_BAR_HEAPS r "\n"

static void tt_overview_head(FILE *f)
{
    fputs(TT_RULE("\u250c", "\u252c", "\u2510"), f);
    fputs("\u2502               TASK \u2502  STATUS \u2502 CURRENT MEMORY USAGE \u2502 PEAK MEMORY USAGE \u2502 TOTAL HEAP USED "
          "\u2502\n",
          f);
    fputs(TT_RULE("\u251c", "\u253c", "\u2524"), f);
}

static void tt_overview_row(FILE *f, void *task)
{
    tt_snap_t s;
    if (!tt_snapshot(task, &s))
        return;
    fprintf(f, "\u2502 %18s \u2502 %7s \u2502 %20lu \u2502 %17lu \u2502 %15lu \u2502\n", s.t.name,
            s.t.state == TT_ALIVE ? "ALIVE" : "DELETED", (unsigned long)s.t.all.current, (unsigned long)s.t.all.peak,
            (unsigned long)tt_heaps_used(&s.t));
}

static void tt_overview_foot(FILE *f)
{
    fputs(TT_RULE("\u2514", "\u2534", "\u2518"), f);
}

void heap_caps_print_all_task_stat_overview(FILE *stream)
{
    FILE *f = tt_stream(stream);
    void *handles[TT_MAX_TASKS];
    size_t n = tt_handles(handles);
    tt_overview_head(f);
    for (size_t i = 0; i < n; i++)
        tt_overview_row(f, handles[i]);
    tt_overview_foot(f);
    capheap_task_tracking_stats_t st;
    (void)capheap_task_tracking_get_stats(&st);
    if (st.untracked_blocks != 0 || st.untracked_task_blocks != 0)
        fprintf(f, "UNTRACKED ALLOCATIONS: %lu (block table full, %lu blocks), %lu (task table full, %lu tasks)\n",
                (unsigned long)st.untracked_blocks, (unsigned long)st.max_blocks,
                (unsigned long)st.untracked_task_blocks, (unsigned long)st.max_tasks);
}

void heap_caps_print_single_task_stat_overview(FILE *stream, TaskHandle_t task_handle)
{
    FILE *f = tt_stream(stream);
    tt_overview_head(f);
    tt_overview_row(f, task_handle != NULL ? (void *)task_handle : capheap_port_current_task());
    tt_overview_foot(f);
}

#else /* !CAPHEAP_TASK_TRACKING: the API exists and says it is off. */

static void tt_off(FILE *stream)
{
    fputs("heap task tracking is not built in (CAPHEAP_TASK_TRACKING=OFF)\n", stream != NULL ? stream : stdout);
}

size_t heap_caps_get_per_task_info(heap_task_info_params_t *params)
{
    (void)params;
    return 0;
}

esp_err_t heap_caps_get_all_task_stat(heap_all_tasks_stat_t *tasks_stat)
{
    (void)tasks_stat;
    return ESP_ERR_NOT_SUPPORTED;
}

esp_err_t heap_caps_get_single_task_stat(heap_single_task_stat_t *task_stat, TaskHandle_t task_handle)
{
    (void)task_stat;
    (void)task_handle;
    return ESP_ERR_NOT_SUPPORTED;
}

void heap_caps_print_all_task_stat(FILE *stream)
{
    tt_off(stream);
}

void heap_caps_print_single_task_stat(FILE *stream, TaskHandle_t task_handle)
{
    (void)task_handle;
    tt_off(stream);
}

void heap_caps_print_all_task_stat_overview(FILE *stream)
{
    tt_off(stream);
}

void heap_caps_print_single_task_stat_overview(FILE *stream, TaskHandle_t task_handle)
{
    (void)task_handle;
    tt_off(stream);
}

esp_err_t heap_caps_alloc_single_task_stat_arrays(heap_single_task_stat_t *task_stat, TaskHandle_t task_handle)
{
    (void)task_stat;
    (void)task_handle;
    return ESP_ERR_NOT_SUPPORTED;
}

void heap_caps_free_single_task_stat_arrays(heap_single_task_stat_t *task_stat)
{
    if (task_stat != NULL) {
        task_stat->heap_count = task_stat->alloc_count = 0;
        task_stat->heap_stat_start = NULL;
        task_stat->alloc_stat_start = NULL;
    }
}

esp_err_t heap_caps_alloc_all_task_stat_arrays(heap_all_tasks_stat_t *tasks_stat)
{
    (void)tasks_stat;
    return ESP_ERR_NOT_SUPPORTED;
}

void heap_caps_free_all_task_stat_arrays(heap_all_tasks_stat_t *tasks_stat)
{
    if (tasks_stat != NULL)
        memset(tasks_stat, 0, sizeof *tasks_stat);
}

void capheap_task_deleted(void *task)
{
    (void)task;
}

esp_err_t capheap_task_tracking_get_stats(capheap_task_tracking_stats_t *out)
{
    if (out != NULL)
        memset(out, 0, sizeof *out);
    return out == NULL ? ESP_ERR_INVALID_ARG : ESP_ERR_NOT_SUPPORTED;
}

void capheap_task_tracking_reset(void)
{
}

#endif /* CAPHEAP_TASK_TRACKING */
