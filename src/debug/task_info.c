/*
 * task_info.c - per-task heap accounting (esp_heap_task_info.h) in O(1) per
 * allocation and free.
 *
 * Every block names its owner in itself, as ESP-IDF's blocks do
 * (MULTI_HEAP_BLOCK_OWNER, spec 4.3): with task tracking built in, multi_heap
 * gives each block a 32-bit owner word past its usable bytes
 * (heap_private.h, capheap_heap_*_owned) and this file decides what the word
 * says: the owner's task slot, the slot's generation, and a check.
 *
 *   owner word   bits 0-7    task slot + 1 (0: not charged to any task)
 *                bits 8-14   generation of that slot (a slot reused by a new
 *                            task after its old owner was dropped has a new one)
 *                bit 15      the user holds the block by its IRAM alias
 *                bits 16-31  tt_check(bits 0-14): a word that fails it (a
 *                            smashed word) is charged to nobody; multi_heap's
 *                            own blocks carry 0
 *
 *   tt.task[]    per task: its live word (the fast paths' one compare: 0
 *                unless ALIVE), handle, name, state, generation, totals (a
 *                cell for all heaps) and one cell per heap descriptor slot
 *                (current bytes, peak, live blocks).
 *   tt.tmap[]    open addressing from task handle to task slot + 1.
 *
 *   heap_caps fast paths                      slow paths (hooks.c: general)
 *     own = ch_task_owner()  (host: TLS)        p = multi_heap call (owner 0)
 *     {p, usable} = capheap_heap_malloc_owned   ch_task_alloc(p): swap the
 *     ch_task_charge(p, own, usable, heap)      word in, charge
 *     o = capheap_heap_free_owned(p)            ch_task_free(p): read the
 *     ch_task_credit(o.owner, o.usable, heap)   word, credit, then the free
 *
 * charge and credit lock, add to or subtract from two cells, unlock: no
 * search, no table of blocks, no limit on their number. The owner word is
 * written and read by multi_heap under the heap's lock, the cells are
 * changed under this file's lock after the heap's is released: the tracking
 * lock is never taken while a heap lock is held (ch_task_describe only tries
 * it), and queries, which hold it, take heap locks inside it: one order.
 *
 * Queries (the esp_heap_task_info.h functions) read the cells for totals and
 * walk the heaps for block lists (O(blocks), as ESP-IDF's do), under the
 * tracking lock; printing collects under the lock and prints without it (a
 * stream may allocate, and the allocation would come back here).
 *
 * A full task table never corrupts anything: the block of a task that finds
 * no slot carries owner 0 and is counted as untracked; its free then counts
 * as an unknown free. Memory: MAX_TASKS x MAX_HEAPS cells, static, and 4
 * bytes per block in the heaps (ESP-IDF: 4 as well).
 *
 * Lock: host: a test-and-test-and-set spinlock that yields the CPU after a
 * short spin. The critical sections are a dozen instructions with no call in
 * them, where a pthread mutex would double the cost of tracking. Bare metal:
 * the port's lock hooks on a lock object of this file (an interrupt mask
 * makes tracking ISR-safe).
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

#if CAPHEAP_TASK_TRACKING_MAX_TASKS < 1 || CAPHEAP_TASK_TRACKING_MAX_TASKS > 255
#error "CAPHEAP_TASK_TRACKING_MAX_TASKS must be 1..255 (an owner word names its task in one byte)"
#endif

/* Smallest power of two >= x (x >= 1, x < 2^31), at compile time. */
#define TT_S1(x) ((x) | ((x) >> 1))
#define TT_S2(x) (TT_S1(x) | (TT_S1(x) >> 2))
#define TT_S4(x) (TT_S2(x) | (TT_S2(x) >> 4))
#define TT_S8(x) (TT_S4(x) | (TT_S4(x) >> 8))
#define TT_S16(x) (TT_S8(x) | (TT_S8(x) >> 16))
#define TT_POW2(x) (TT_S16((unsigned long)(x) - 1ul) + 1ul)

#define TT_MAX_TASKS CAPHEAP_TASK_TRACKING_MAX_TASKS
#define TT_TASK_SLOTS ((size_t)TT_POW2(2 * CAPHEAP_TASK_TRACKING_MAX_TASKS))
#define TT_NONE UINT32_MAX
#define TT_SORT_CHUNK 32u /* blocks a print collects per walk of the heap */
#define TT_ARRAY_ALIGN 8u /* the stat arrays: >= alignment of size_t and pointers */

#if defined(__GNUC__)
#define TT_LIKELY(x) __builtin_expect(!!(x), 1)
#define TT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TT_NOINLINE __attribute__((noinline))
/* Keep a computed pointer in its register: without this gcc recomputes a
 * task's address (slot x sizeof(tt_task_t), a multiply) for each field the
 * fast paths touch. An empty asm the compiler must assume changes p. */
#define TT_KEEP(p) __asm__("" : "+r"(p))
#else
#define TT_NOINLINE
#define TT_LIKELY(x) (x)
#define TT_UNLIKELY(x) (x)
#define TT_KEEP(p) ((void)0)
#endif

enum { TT_FREE = 0, TT_ALIVE = 1, TT_DELETED = 2 };

/* ---- owner words ------------------------------------------------------------ */

#define TT_OWN_GEN_MASK 0x7Fu
#define TT_OWN_ALIAS 0x8000u

/* The check of bits 0-14 (the alias flag is not covered: a word with and
 * one without it name the same owner). */
static inline uint32_t tt_check(uint32_t low)
{
    return (((low & 0x7FFFu) * 0x9E37u + 0x7A5Bu) & 0xFFFFu) << 16;
}

static inline uint32_t tt_owner(unsigned slot, unsigned gen, bool alias)
{
    uint32_t low = (uint32_t)(slot + 1u) | (uint32_t)(gen & TT_OWN_GEN_MASK) << 8;
    return low | tt_check(low) | (alias ? TT_OWN_ALIAS : 0u);
}

/* A word this file wrote (slot in range, check right)? */
static inline bool tt_valid(uint32_t own)
{
    uint32_t s = own & 0xFFu;
    return s != 0 && s <= TT_MAX_TASKS && (own & 0xFFFF0000u) == tt_check(own);
}

static inline unsigned tt_slot(uint32_t own)
{
    return (own & 0xFFu) - 1u;
}

static inline unsigned tt_gen(uint32_t own)
{
    return (own >> 8) & TT_OWN_GEN_MASK;
}

/* ---- state ------------------------------------------------------------------ */

/** One task in one heap, or (tt_task_t.all) in all of them. */
typedef struct {
    size_t current, peak;
    uint32_t count;       /* live blocks */
    uint32_t fill, end;   /* queries only (under the lock): this cell's range of the output, or TT_NONE */
} tt_cell_t;

typedef struct {
    uint32_t word;  /* the owner word of this slot while its task is ALIVE, else 0 (the fast paths' test) */
    void *handle;
    uint8_t state;  /* TT_FREE, TT_ALIVE, TT_DELETED */
    uint8_t gen;    /* bumped whenever the slot is emptied: owner words naming the old task go stale */
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
    size_t n_tasks;
    size_t untracked_task_blocks, unknown_frees;
    uint8_t tmap[TT_TASK_SLOTS]; /* task slot + 1; 0 empty */
    tt_task_t task[TT_MAX_TASKS];
} tt;

#if CH_TASK_OWNER_TLS
/* The calling thread's owner word once known (debug_hooks.h reads it inline);
 * 0 until then. A stale one (its slot was emptied) fails charge's generation
 * test, which asks again. */
__thread uint32_t ch_task_owner_tls __attribute__((tls_model("initial-exec")));
#endif

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
     * two, so the shift is a constant after inlining. */
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
    uint8_t gen = tt.task[slot].gen;
    memset(&tt.task[slot], 0, sizeof tt.task[slot]);
    tt.task[slot].gen = (uint8_t)((gen + 1u) & TT_OWN_GEN_MASK); /* its blocks' words go stale */
    tt.n_tasks--;
    tt.last_ok = false;
    tt.last_task = NULL; /* the fast path tests only last_task (its task is never NULL) */
}

static void tt_copy_name(char *out, const char *name, void *task)
{
    size_t n = 0;
    if (name != NULL) {
        while (n < configMAX_TASK_NAME_LEN - 1u && name[n] != '\0') {
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
    t->word = tt_owner((unsigned)slot, t->gen, false);
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

/* Charge / credit size bytes in heap slot `heap` to task t (lock held). Both
 * cells' addresses are taken first: the fast paths then keep two pointers
 * instead of recomputing the task's address for every field. */
static inline void tt_charge(tt_task_t *t, unsigned heap, size_t size)
{
    TT_KEEP(t);
    tt_cell_t *a = &t->all, *c = &t->cell[heap];
    tt_charge_cell(a, size);
    tt_charge_cell(c, size);
}

static inline void tt_credit(tt_task_t *t, unsigned heap, size_t size)
{
    TT_KEEP(t);
    tt_cell_t *a = &t->all, *c = &t->cell[heap];
    a->current -= size;
    a->count--;
    c->current -= size;
    c->count--;
}

/* Where a block the user holds lives: its heap's slot and handle, the
 * pointer multi_heap knows it by, and the one the user holds (an EXEC block's
 * IRAM alias: route.c). */
typedef struct {
    unsigned heap;
    multi_heap_handle_t mh;
    void *raw;
    void *user; /* the pointer the user holds (the alias, for an alias block) */
    bool alias;
} tt_where_t;

static bool tt_locate(void *ptr, tt_where_t *w)
{
    void *raw = ptr;
    bool alias = false;
#if CAPHEAP_EXEC_HEAP
    if (TT_UNLIKELY(CH_LOAD(ch_g.alias_any)))
        raw = ch_unalias(ptr, &alias);
#endif
    /* The registry's lookup finds the innermost heap (a region may be
     * registered inside a block of another heap). */
    ch_heap_t *h = ch_find((uintptr_t)raw);
    if (TT_UNLIKELY(h == NULL))
        return false;
    w->mh = CH_ACQUIRE(h->heap);
    w->heap = h->index;
    w->raw = raw;
    w->user = ptr;
    w->alias = alias;
    return w->mh != NULL;
}

/* The user's bytes of a block multi_heap says has usable bytes (what
 * heap_caps_get_allocated_size() says of it). */
static inline size_t tt_user_bytes(const tt_where_t *w, size_t usable)
{
#if CAPHEAP_EXEC_HEAP
    if (w->alias)
        return ch_alias_bytes(&ch_g.heaps[w->heap], w->user, w->raw, usable);
#else
    (void)w;
#endif
    return usable;
}

/* The calling task's owner word: its slot (created at its first
 * allocation), or 0 when the task table is full. */
uint32_t ch_task_owner_slow(void)
{
    void *task = capheap_port_current_task();
    tt_lock();
    int slot;
    if (tt.last_ok && tt.last_task == task) {
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
            if (slot < 0) {
                slot = tt_task_create(task, copy);
#if CAPHEAP_PORT_HOST
                if (slot >= 0 && capheap_host_thread_exited()) {
                    /* A destructor allocating after the thread's exit (its task
                     * was deleted and, owning nothing, dropped): a deleted
                     * task's block, dropped again with it, not a new live task. */
                    tt.task[slot].state = TT_DELETED;
                    tt.task[slot].word = 0;
                }
#endif
            }
            if (slot < 0) {
                tt_unlock();
                return 0; /* counted when the block is charged */
            }
        }
        tt.last_task = task;
        tt.last_slot = (uint8_t)slot;
        tt.last_ok = true;
    }
    uint32_t own = tt_owner((unsigned)slot, tt.task[slot].gen, false);
    tt_unlock();
#if CH_TASK_OWNER_TLS
    ch_task_owner_tls = own;
#endif
    return own;
}

/* Charge a block whose word says own (lock not held); false if the word is
 * stale (its slot was emptied, or taken by another task, since it was
 * issued): nothing charged then. */
static bool tt_charge_waited(uint32_t own, unsigned heap, size_t n)
{
    tt_lock();
    if (own == 0) {
        tt.untracked_task_blocks++; /* the task table was full */
        tt_unlock();
        return true;
    }
    tt_task_t *t = &tt.task[tt_slot(own)];
    bool fresh = t->gen == tt_gen(own) && t->state != TT_FREE;
    if (fresh)
        tt_charge(t, heap, n);
    tt_unlock();
    return fresh;
}

/* own with the alias flag when the user holds the block by its alias. */
static inline uint32_t tt_aliased(uint32_t own, bool alias)
{
    return own != 0 && alias ? tt_owner(tt_slot(own), tt_gen(own), true) : own;
}

/* Charge the block w->raw whose word is own. A stale word (this thread's
 * cached one, after its slot was emptied: a reset, its task dropped) is
 * replaced by a fresh one from the tracker's lookup, once. */
static void tt_charge_block(const tt_where_t *w, uint32_t own, size_t n)
{
    if (tt_charge_waited(own, w->heap, n))
        return;
    own = tt_aliased(ch_task_owner_slow(), w->alias);
    (void)capheap_heap_swap_owner(w->mh, w->raw, own);
    if (!tt_charge_waited(own, w->heap, n)) {
        tt_lock();
        tt.untracked_task_blocks++; /* emptied again at once: give up on this block */
        tt_unlock();
    }
}

/* What ch_task_charge's fast path leaves: a busy lock, a stale word, owner
 * 0, a heap slot the caller could not say. p is multi_heap's pointer (the
 * fast paths never make alias blocks). The arguments and the value are
 * ch_task_charge's, so that it passes them on in the same registers. */
static TT_NOINLINE void *tt_charge_general(void *p, uint32_t own, size_t n, unsigned heap)
{
    tt_where_t w = {heap, NULL, p, p, false};
    if (heap >= CAPHEAP_MAX_HEAPS ? !tt_locate(p, &w) : (w.mh = CH_ACQUIRE(ch_g.heaps[heap].heap)) == NULL)
        return p;
    tt_charge_block(&w, own, n);
    return p;
}

void *ch_task_charge(void *p, uint32_t own, size_t n, unsigned heap)
{
    /* Fast path (leaf code; the rest is a tail call): the heap known, the
     * word that of a live task, the lock free. */
    unsigned s = (own & 0xFFu) - 1u; /* owner 0: UINT_MAX */
    if (TT_LIKELY(s < TT_MAX_TASKS && heap < CAPHEAP_MAX_HEAPS) && TT_LIKELY(tt_trylock())) {
        tt_task_t *t = &tt.task[s];
        if (TT_LIKELY(t->word == own)) {
            tt_charge(t, heap, n);
            tt_unlock();
            return p;
        }
        tt_unlock();
    }
    return tt_charge_general(p, own, n, heap);
}

/* The credit under a waited-for lock: an unknown word counts as an unknown
 * free; a deleted task that owns nothing now is dropped (unless kept). */
static TT_NOINLINE void tt_credit_general(uint32_t own, size_t n, unsigned heap)
{
    tt_lock();
    tt_task_t *t = tt_valid(own) ? &tt.task[tt_slot(own)] : NULL;
    if (t == NULL || heap >= CAPHEAP_MAX_HEAPS || t->gen != tt_gen(own) || t->state == TT_FREE) {
        tt.unknown_frees++; /* owner 0 (untracked, or multi_heap's own), a stale or a smashed word */
        tt_unlock();
        return;
    }
    tt_credit(t, heap, n);
#if !CAPHEAP_TRACK_DELETED_TASKS
    if (t->state == TT_DELETED && t->all.count == 0)
        tt_task_drop(tt_slot(own));
#endif
    tt_unlock();
}

void ch_task_credit(uint32_t own, size_t n, unsigned heap)
{
    /* Fast path: the word of a live task (the alias flag aside: a word that
     * passes this compare has a valid check), the lock free. */
    unsigned s = (own & 0xFFu) - 1u;
    if (TT_LIKELY(s < TT_MAX_TASKS && heap < CAPHEAP_MAX_HEAPS) && TT_LIKELY(tt_trylock())) {
        tt_task_t *t = &tt.task[s];
        if (TT_LIKELY(t->word == (own & ~TT_OWN_ALIAS))) {
            tt_credit(t, heap, n);
            tt_unlock();
            return;
        }
        tt_unlock();
    }
    tt_credit_general(own, n, heap);
}

void ch_task_realloc(void *p, uint32_t old_own, size_t old_n, uint32_t own, size_t n, unsigned heap)
{
    ch_task_credit(old_own, old_n, heap);
    (void)ch_task_charge(p, own, n, heap);
}

/* The slow paths' allocation: the block came from a multi_heap call that
 * wrote owner 0 (or from an EXEC alias); put the caller's word in and charge. */
void ch_task_alloc(void *ptr)
{
    tt_where_t w;
    if (ptr == NULL || !tt_locate(ptr, &w))
        return;
    uint32_t own = tt_aliased(ch_task_owner(), w.alias);
    capheap_owned_t old = capheap_heap_swap_owner(w.mh, w.raw, own);
    if (old.usable == 0)
        return; /* not a live block: cannot happen for a block just made */
    tt_charge_block(&w, own, tt_user_bytes(&w, old.usable));
}

/* The slow paths' free, before multi_heap's: credit what the word says. A
 * pointer multi_heap rejects is left to that free to report. */
void ch_task_free(void *ptr)
{
    tt_where_t w;
    if (ptr == NULL || !tt_locate(ptr, &w))
        return;
    capheap_owned_t o = capheap_heap_get_owner(w.mh, w.raw);
    if (o.usable == 0)
        return;
    ch_task_credit(o.owner, tt_user_bytes(&w, o.usable), w.heap);
}

/* capheap_describe_block(): print ', task "name"' for the owner a block's
 * word names. Called on a corruption report, possibly with a heap lock
 * held: the tracker's lock is only tried, never waited for. */
void ch_task_describe(uint32_t own)
{
    if (!tt_valid(own))
        return;
#if CAPHEAP_PORT_HOST
    if (__atomic_exchange_n(&tt.lock, 1, __ATOMIC_ACQUIRE) != 0)
        return;
#else
    tt_lock();
#endif
    char name[configMAX_TASK_NAME_LEN] = "";
    const tt_task_t *t = &tt.task[tt_slot(own)];
    bool found = t->state != TT_FREE && t->gen == tt_gen(own);
    if (found) {
        memcpy(name, t->name, sizeof name);
        name[sizeof name - 1u] = '\0';
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
        tt.task[slot].word = 0; /* the fast paths leave its blocks to the general ones */
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
    out->blocks = 0;
    for (unsigned i = 0; i < TT_MAX_TASKS; i++)
        out->blocks += tt.task[i].all.count;
    out->max_blocks = SIZE_MAX; /* no table: every block carries its owner */
    out->untracked_blocks = 0;
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
    tt.n_tasks = 0;
    tt.untracked_task_blocks = tt.unknown_frees = 0;
    memset(tt.tmap, 0, sizeof tt.tmap);
    for (unsigned i = 0; i < TT_MAX_TASKS; i++) {
        /* every owner word issued so far goes stale: blocks from before the
         * reset are charged to nobody, their frees are unknown frees */
        uint8_t gen = tt.task[i].gen;
        memset(&tt.task[i], 0, sizeof tt.task[i]);
        tt.task[i].gen = (uint8_t)((gen + 1u) & TT_OWN_GEN_MASK);
    }
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
            tt.task[i].cell[h].fill = tt.task[i].cell[h].end = TT_NONE;
}

/* Emit one task (lock held): its heaps into heaps[*hi..], each heap's blocks
 * reserved in blocks[*ai..] (filled by tt_fill_blocks, pointed at by
 * tt_point_blocks). */
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
            t->cell[h].end = (uint32_t)*ai;
        }
    }
}

/* Every block of a live task, heap by heap (lock held; takes each heap's
 * lock in turn): fn(ctx, task slot, heap slot, the user's pointer, its size).
 * Only heap `only` (CAPHEAP_MAX_HEAPS: all). */
typedef void (*tt_visit_t)(void *ctx, unsigned slot, unsigned heap, void *addr, size_t size);

typedef struct {
    tt_visit_t fn;
    void *ctx;
    unsigned heap;
} tt_walk_t;

static bool tt_walk_cb(void *p, size_t usable, uint32_t own, void *arg)
{
    const tt_walk_t *w = arg;
    if (!tt_valid(own))
        return true; /* charged to nobody */
    unsigned s = tt_slot(own);
    const tt_task_t *t = &tt.task[s];
    if (t->state == TT_FREE || t->gen != tt_gen(own))
        return true; /* a word from before its task was dropped */
    void *addr = p;
    size_t size = usable;
#if CAPHEAP_EXEC_HEAP
    if (own & TT_OWN_ALIAS) {
        const ch_heap_t *h = &ch_g.heaps[w->heap];
        addr = ch_alias_user(h, p, usable);
        size = ch_alias_bytes(h, addr, p, usable);
    }
#endif
    w->fn(w->ctx, s, w->heap, addr, size);
    return true;
}

static void tt_walk(unsigned only, tt_visit_t fn, void *ctx)
{
    for (unsigned k = 0; k < CAPHEAP_MAX_HEAPS; k++) {
        if (only < CAPHEAP_MAX_HEAPS && k != only)
            continue;
        multi_heap_handle_t mh = CH_ACQUIRE(ch_g.heaps[k].heap);
        if (mh == NULL)
            continue;
        tt_walk_t w = {fn, ctx, k};
        capheap_heap_walk_owners(mh, tt_walk_cb, &w);
    }
}

static inline uint32_t tt_size32(size_t n)
{
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n; /* heap_task_block_t's size is 32 bits */
}

/* Put each block into its cell's reserved range, if it has one and it is
 * not full: a block made or freed while the query runs (its word written,
 * its cells not yet changed, or the reverse) may find its range full, or
 * leave room; tt_point_blocks closes the gaps. */
static void tt_fill_one(void *ctx, unsigned slot, unsigned heap, void *addr, size_t size)
{
    heap_task_block_t *blocks = ctx;
    tt_cell_t *c = &tt.task[slot].cell[heap];
    if (c->fill == TT_NONE || c->fill >= c->end)
        return;
    heap_task_block_t *o = &blocks[c->fill++];
    o->task = (TaskHandle_t)tt.task[slot].handle;
    o->address = addr;
    o->size = tt_size32(size);
}

static void tt_fill_blocks(heap_task_block_t *blocks)
{
    tt_walk(CAPHEAP_MAX_HEAPS, tt_fill_one, blocks);
}

/* Point the n heap stats emitted for the given task slots (in tt_emit's
 * order) at their blocks, packed from blocks[0] on with no gaps; returns
 * the number of blocks (lock held). */
static size_t tt_point_blocks(heap_stat_t *hs, size_t n, const uint8_t *slots, size_t n_slots,
                              heap_task_block_t *blocks)
{
    size_t k = 0, out = 0;
    for (size_t i = 0; i < n_slots && k < n; i++) {
        const tt_task_t *t = &tt.task[slots[i]];
        for (size_t h = 0; h < CAPHEAP_MAX_HEAPS && k < n; h++) {
            if (!tt_used(t, h))
                continue;
            const tt_cell_t *c = &t->cell[h];
            heap_stat_t *s = &hs[k++];
            if (c->end == TT_NONE || blocks == NULL)
                continue; /* no room reserved: alloc_stat stays NULL */
            size_t start = c->end - t->cell[h].count, got = c->fill - start;
            memmove(&blocks[out], &blocks[start], got * sizeof *blocks);
            s->alloc_stat = &blocks[out];
            s->alloc_count = got;
            out += got;
        }
    }
    return out;
}

static int tt_by_address(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t)((const heap_task_block_t *)x)->address;
    uintptr_t b = (uintptr_t)((const heap_task_block_t *)y)->address;
    return (a > b) - (a < b);
}

static void tt_sort_blocks(heap_stat_t *hs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (hs[i].alloc_stat != NULL && hs[i].alloc_count > 1)
            qsort(hs[i].alloc_stat, hs[i].alloc_count, sizeof(heap_task_block_t), tt_by_address);
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
    uint8_t with_heaps[TT_MAX_TASKS] = {0}; /* the emitted tasks whose heaps fit (the others took none) */
    size_t nw = 0;
    for (size_t k = 0; k < n && ti < s->task_count; k++, ti++) {
        tt_emit(&s->stat_arr[ti], order[k], s->heap_stat_start, s->heap_count, &hi, s->alloc_count, &ai);
        if (s->stat_arr[ti].heap_stat != NULL)
            with_heaps[nw++] = order[k];
    }
    if (s->alloc_stat_start != NULL)
        tt_fill_blocks(s->alloc_stat_start);
    ai = tt_point_blocks(s->heap_stat_start, hi, with_heaps, nw, s->alloc_stat_start);
    tt_unlock();
    tt_sort_blocks(s->heap_stat_start, hi);
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
    uint8_t one = (uint8_t)slot;
    if (s->alloc_stat_start != NULL)
        tt_fill_blocks(s->alloc_stat_start);
    ai = tt_point_blocks(s->heap_stat_start, hi, &one, 1, s->alloc_stat_start);
    tt_unlock();
    tt_sort_blocks(s->heap_stat_start, hi);
    s->heap_count = hi;
    s->alloc_count = ai;
    return ESP_OK;
}

/* heap_caps_get_per_task_info's pass over the blocks. */
typedef struct {
    heap_task_info_params_t *p;
    size_t n_totals, written;
} tt_info_t;

static void tt_info_one(void *ctx, unsigned slot, unsigned heap, void *addr, size_t size)
{
    tt_info_t *x = ctx;
    heap_task_info_params_t *p = x->p;
    tt_task_t *t = &tt.task[slot];
    /* The heap's class: the first whose (caps & mask) == caps. A heap of no
     * class is not scanned (spec 1.5): its blocks are neither counted nor
     * listed, and give their task no totals entry (an audit found them listed). */
    uint32_t heap_caps = ch_g.heaps[heap].all;
    size_t c = 0;
    while (c < NUM_HEAP_TASK_CAPS && (heap_caps & (uint32_t)p->mask[c]) != (uint32_t)p->caps[c])
        c++;
    if (c == NUM_HEAP_TASK_CAPS)
        return;
    if (p->totals != NULL && p->num_totals != NULL) {
        if (t->scratch == TT_NONE) {
            for (size_t i = 0; i < x->n_totals && t->scratch == TT_NONE; i++)
                if ((void *)p->totals[i].task == t->handle)
                    t->scratch = (uint32_t)i;
            if (t->scratch == TT_NONE && x->n_totals < p->max_totals) {
                heap_task_totals_t *nt = &p->totals[x->n_totals];
                memset(nt, 0, sizeof *nt); /* ESP-IDF zeroes one class only */
                nt->task = (TaskHandle_t)t->handle;
                t->scratch = (uint32_t)x->n_totals++;
            }
        }
        if (t->scratch != TT_NONE) {
            p->totals[t->scratch].size[c] += size;
            p->totals[t->scratch].count[c]++;
        }
    }
    if (p->blocks != NULL && x->written < p->max_blocks) {
        bool wanted = p->tasks == NULL;
        for (size_t i = 0; !wanted && i < p->num_tasks; i++)
            wanted = (void *)p->tasks[i] == t->handle;
        if (wanted) {
            heap_task_block_t *o = &p->blocks[x->written++];
            o->task = (TaskHandle_t)t->handle;
            o->address = addr;
            o->size = tt_size32(size);
        }
    }
}

size_t heap_caps_get_per_task_info(heap_task_info_params_t *p)
{
    if (p == NULL)
        return 0;
    tt_info_t x = {p, 0, 0};
    if (p->totals != NULL && p->num_totals != NULL) {
        x.n_totals = *p->num_totals;
        if (x.n_totals > p->max_totals)
            x.n_totals = p->max_totals;
        for (size_t i = 0; i < x.n_totals; i++) {
            memset(p->totals[i].size, 0, sizeof p->totals[i].size);
            memset(p->totals[i].count, 0, sizeof p->totals[i].count);
        }
    }
    tt_lock();
    for (unsigned i = 0; i < TT_MAX_TASKS; i++)
        tt.task[i].scratch = TT_NONE;
    tt_walk(CAPHEAP_MAX_HEAPS, tt_info_one, &x);
    tt_unlock();
    if (p->totals != NULL && p->num_totals != NULL)
        *p->num_totals = x.n_totals;
    if (x.written > 1)
        qsort(p->blocks, x.written, sizeof *p->blocks, tt_by_address);
    return x.written;
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

/* Back to its heap straight through multi_heap too: through heap_caps_free
 * the user's free hook and the trace saw frees of blocks they never saw
 * allocated (an audit found it), and tracking counted unknown frees. A
 * pointer in no heap goes to heap_caps_free, which reports it. */
static void tt_array_free(void *p)
{
    if (p == NULL)
        return;
    const ch_heap_t *h = ch_find((uintptr_t)p); /* a descriptor: no index a registration could shift */
    if (h != NULL)
        multi_heap_free(h->heap, p);
    else
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
 * walk of the heap: each walk holds the lock for one pass and collects the
 * lowest addresses above the last one printed, so a print sees every block
 * that lived throughout it once, and never holds the lock while printing. */
typedef struct {
    unsigned slot;
    uintptr_t after;
    size_t n;
    uintptr_t addr[TT_SORT_CHUNK];
    uint32_t size[TT_SORT_CHUNK];
} tt_chunk_t;

static void tt_chunk_one(void *ctx, unsigned slot, unsigned heap, void *addr, size_t size)
{
    tt_chunk_t *c = ctx;
    uintptr_t a = (uintptr_t)addr;
    (void)heap;
    if (slot != c->slot || a <= c->after || (c->n == TT_SORT_CHUNK && a >= c->addr[c->n - 1]))
        return;
    size_t j = c->n < TT_SORT_CHUNK ? c->n++ : c->n - 1;
    for (; j > 0 && c->addr[j - 1] > a; j--) {
        c->addr[j] = c->addr[j - 1];
        c->size[j] = c->size[j - 1];
    }
    c->addr[j] = a;
    c->size[j] = tt_size32(size);
}

static void tt_print_blocks(FILE *f, const tt_snap_t *s, size_t heap)
{
    tt_chunk_t c;
    c.slot = s->slot;
    c.after = 0;
    for (;;) {
        c.n = 0;
        tt_lock();
        if (tt.task[s->slot].handle == s->t.handle && tt.task[s->slot].state != TT_FREE)
            tt_walk((unsigned)heap, tt_chunk_one, &c);
        tt_unlock();
        for (size_t i = 0; i < c.n; i++)
            fprintf(f, "\u2502    \u2502    \u251c ALLOC %p, SIZE %lu\n", (void *)c.addr[i], (unsigned long)c.size[i]);
        if (c.n < TT_SORT_CHUNK)
            return;
        c.after = c.addr[c.n - 1];
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
    if (st.untracked_task_blocks != 0)
        fprintf(f, "UNTRACKED ALLOCATIONS: %lu (task table full, %lu tasks)\n",
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
