/*
 * multi_heap.c - ESP-IDF's multi_heap API over the engine (src/core/tlsf.c).
 *
 * This layer adds what the engine deliberately lacks: the handle checks (a
 * NULL heap is never dereferenced), the per-heap lock, poisoning (canaries
 * and fill patterns, chosen at build time), statistics in ESP-IDF's terms,
 * and the conversion of every fault the engine or a canary finds into one
 * report (capheap/report.h) that names address, expected and found value.
 *
 * Lock discipline: every function that reads or writes blocks holds the
 * heap's lock (if one is attached) for exactly its own work, and releases it
 * before reporting a rejected pointer, or damaged free fill found while
 * allocating (comprehensive poisoning), so an abort handler that longjmps
 * (tests) leaves no lock held. The heap's state is never changed before a
 * fault is detected: a rejected free or realloc leaves the heap as it was.
 *
 * Poisoning, when on, wraps each block as poison.h draws it. The engine is
 * asked for size + overhead; free and realloc first let the engine validate
 * the block (double free, foreign and interior pointers are named as such),
 * then check the canaries.
 *
 * Task tracking builds end every block with an owner word for the tracker
 * (heap_private.h draws it): part of the overhead, stored and returned here,
 * never interpreted. It is written while the lock is held for the
 * allocation itself, and read after the engine validated a block and before
 * it changes it, so it costs a load or a store per operation, no lock.
 * Without task tracking every line of it is compiled out.
 */
#include "multi_heap.h"

#include <string.h>

#include "capheap/check.h"
#include "capheap/heap.h"
#include "capheap/port.h"
#include "capheap/report.h"
#include "core/tlsf_ops.h"
#include "heap/heap_private.h"
#include "heap/poison.h"
#include "debug/sanitize.h"
#include "port/port_private.h"

static inline ce_heap_t *E(multi_heap_handle_t heap)
{
    return (ce_heap_t *)(void *)heap;
}

/* MH_BODY: inlined wherever it is called, optimising for size too (one
 * copy per API function: realloc_locked_as() says why). */
#if defined(__GNUC__)
#define MH_NOINLINE __attribute__((noinline))
#define MH_COLD __attribute__((noinline, cold))
#define MH_BODY static inline __attribute__((always_inline))
#else
#define MH_NOINLINE
#define MH_COLD
#define MH_BODY static inline
#endif

/* Optimising for size, one copy of each body is enough: the API functions
 * call the *_locked variant, inlined, for every heap (lock() and unlock() do
 * nothing for a heap without a lock). */
#if defined(__OPTIMIZE_SIZE__)
#define MH_ALWAYS_LOCKED 1
#define MH_LOCKED static inline
#elif CAPHEAP_VALGRIND
/* every operation through lock(), which turns memcheck's reports off for the engine */
#define MH_ALWAYS_LOCKED 1
#define MH_LOCKED MH_NOINLINE
#else
#define MH_ALWAYS_LOCKED 0
#define MH_LOCKED MH_NOINLINE /* external: heap_caps' fast paths call them (heap_private.h) */
#endif

/* The lock a check pass attaches to a heap that has none (capheap/check.h):
 * it does nothing, but it sends malloc, free and realloc through the locked
 * paths, which tell the pass that the heap changed (lock_w). Builds where
 * every heap takes the locked paths (MH_ALWAYS_LOCKED) need none. */
#if !MH_ALWAYS_LOCKED
static char check_sentinel;
#define CHECK_SENTINEL ((void *)&check_sentinel)
#define IS_LOCK(l) ((l) != NULL && (l) != CHECK_SENTINEL)
#else
#define IS_LOCK(l) ((l) != NULL)
#endif

#if CAPHEAP_VALGRIND
/* 1 when memcheck runs the program (found at the first registration:
 * memcheck answers MAKE_MEM_NOACCESS with -1, other tools and no valgrind
 * with 0). Only then is the pool NOACCESS and the engine's own work done with
 * error reporting off; helgrind and DRD keep seeing every access. */
static int vg_memcheck;
#endif

static inline void lock(const ce_heap_t *h)
{
    void *l = ce_owner(h);
    if (IS_LOCK(l))
        capheap_port_lock_acquire(l);
#if CAPHEAP_VALGRIND
    if (vg_memcheck)
        VALGRIND_DISABLE_ERROR_REPORTING; /* the engine reads its NOACCESS metadata (sanitize.h) */
#endif
}

static inline void unlock(const ce_heap_t *h)
{
#if CAPHEAP_VALGRIND
    if (vg_memcheck)
        VALGRIND_ENABLE_ERROR_REPORTING;
#endif
    void *l = ce_owner(h);
    if (IS_LOCK(l))
        capheap_port_lock_release(l);
}

/* lock() for a change of the heap: a check pass in progress sees the token
 * of its last step gone (one store, on the locked paths only: the unlocked
 * paths of W1 stay as they were; docs/checks.md). */
static inline void lock_w(ce_heap_t *h)
{
    lock(h);
    h->check_token = 0;
}

/* ---- reports ----------------------------------------------------------- */

/* The text of ce_diagnose()'s kind (capheap_fault_texts, port_private.h: the
 * text of kind k follows the k-th NUL). Kind CE_OK is "Corrupt heap". */
static const char *fault_text(ce_fault_kind_t kind)
{
    const char *t = capheap_fault_texts;
    for (unsigned k = (unsigned)kind; k != 0; k--)
        while (*t++ != '\0') {
        }
    return t;
}

/* ---- poisoning --------------------------------------------------------- */

#if POISON_ENABLED
/* head_bytes() and overhead() are in heap_private.h. */
static inline uint32_t load32(const void *p)
{
    return san_load32(p); /* a canary may be poisoned (sanitize.h) */
}

static inline void store32(void *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

/*
 * The heap's tag, mixed into every size word it writes (stored = size ^ tag)
 * and taken out when the word is read. A block of another heap is a genuine
 * block, canaries included: a heap registered inside one of this heap's
 * blocks (a pool carved from a malloc) has blocks that pass every O(1) check
 * of this one, and freeing one here would hand out live memory twice. Its
 * size word, mixed with the other heap's tag, reads here as a size far
 * beyond its block (up to a 32-bit coincidence): the block is rejected, and
 * the diagnosis names the pointer an interior pointer of the pool's block.
 * Computed from the handle's address (no metadata): an odd multiplier maps
 * distinct addresses to distinct tags.
 */
static inline uint32_t poison_tag(const ce_heap_t *h)
{
    uint64_t a = (uint64_t)(uintptr_t)h;
    return ((uint32_t)a ^ (uint32_t)(a >> 32)) * 0x9E3779B1u;
}

/* Write head and tail around the user bytes; return the user pointer. */
static void *poison_wrap(const ce_heap_t *h, void *raw, size_t size)
{
    uint8_t *user = (uint8_t *)raw + head_bytes(h);
    store32(raw, POISON_HEAD_CANARY);
    store32((uint8_t *)raw + 4, (uint32_t)size ^ poison_tag(h));
    store32(user + size, POISON_TAIL_CANARY);
    return user;
}

/* The size a used block's head records (its size word, tag taken out). */
static inline uint32_t poison_size(const ce_heap_t *h, const void *raw)
{
    return load32((const uint8_t *)raw + 4) ^ poison_tag(h);
}

/*
 * The first fault of one used block's canaries (raw = engine data pointer,
 * cap = engine capacity), described in *r; false if they are intact.
 * Reports nothing: the check reports it (check_used_cb), the owner word's
 * quiet readers do not.
 */
static bool poison_fault(const ce_heap_t *h, const void *raw, size_t cap, capheap_report_t *r)
{
    const uint8_t *p = (const uint8_t *)raw;
    uint32_t head = load32(p);
    if (head != POISON_HEAD_CANARY) {
        *r = (capheap_report_t){"Bad head", p, POISON_HEAD_CANARY, head, 13};
        return true;
    }
    uint32_t size = poison_size(h, raw);
    /* clamped: with the owner word the overhead exceeds the smallest
     * capacity (a forged header's) */
    size_t ov = overhead(h);
    size_t room = cap > ov ? cap - ov : 0;
    if (size > room) {
        *r = (capheap_report_t){"Size", p + 4, (uint32_t)room, size, 13};
        return true;
    }
    const uint8_t *tail = p + head_bytes(h) + size;
    uint32_t t = load32(tail);
    if (t != POISON_TAIL_CANARY) {
        *r = (capheap_report_t){"Bad tail", tail, POISON_TAIL_CANARY, t, 13};
        return true;
    }
    return false;
}

#if CAPHEAP_POISONING_COMPREHENSIVE
/* A block just taken from the free lists must still hold the free fill
 * (past its old links, before its old footer slot): else someone wrote to
 * free memory. Called under the heap's lock, which is released before the
 * (fatal) report, as for a rejected pointer: an abort handler that longjmps
 * leaves no lock held (an audit found it held). */
static bool fill_intact(const ce_heap_t *h, const void *raw, size_t cap)
{
    const uint8_t *r = (const uint8_t *)raw;
    for (size_t i = 8; i + 4 < cap; i++) {
        if (r[i] != POISON_FREE_FILL) {
            size_t at = i & ~(size_t)3;
            capheap_report_t rep = {"Invalid data", r + at, 0xFEFEFEFEu, load32(r + at), 9};
            unlock(h);
            capheap_report_corruption(&rep, true, true);
            lock(h); /* not reached (the handler does not return); if it did, the caller's unlock stays balanced */
            return false;
        }
    }
    return true;
}
#endif

/* Engine allocation already made (raw, under the lock): verify and wrap. */
static void *poison_new(const ce_heap_t *h, void *raw, size_t size)
{
    if (raw == NULL)
        return NULL;
#if CE_ASAN
    CE_SAN_UNPOISON(raw, ce_block_capacity(raw)); /* san_alloc() sets the final state */
#endif
#if CAPHEAP_POISONING_COMPREHENSIVE
    size_t cap = ce_block_capacity(raw);
    if (!fill_intact(h, raw, cap))
        return NULL; /* not reached: the report aborts */
    memset(raw, POISON_MALLOC_FILL, cap);
#endif
    return poison_wrap(h, raw, size);
}
#endif /* POISON_ENABLED */

/* ---- the owner word (task tracking; heap_private.h) ---------------------- */

#if CAPHEAP_TASK_TRACKING
/* The owner word of the used block raw (engine data pointer) of capacity cap:
 * its last 4 bytes, always 4-aligned (the next header follows). */
static inline void *owner_at(const void *raw, size_t cap)
{
    return (uint8_t *)(uintptr_t)raw + cap - CAPHEAP_OWNER_BYTES;
}

/* The user never owns the word, so under ASan it is poisoned like a canary:
 * read and written past the instrumentation (sanitize.h), without changing
 * what is poisoned. Under valgrind every access is made with memcheck's
 * reporting off (under the lock, or in capheap_block_owner). */
static inline uint32_t owner_load(const void *at)
{
    return san_load32(at);
}

#if CE_ASAN
static CE_NO_ASAN void owner_store(void *at, uint32_t v)
{
    volatile uint8_t *b = (volatile uint8_t *)at;
    uint8_t bytes[4];
    memcpy(bytes, &v, sizeof v); /* native byte order, as san_load32 reads it */
    for (unsigned i = 0; i < 4u; i++)
        b[i] = bytes[i];
}
#else
static inline void owner_store(void *at, uint32_t v)
{
    memcpy(at, &v, sizeof v);
}
#endif
#endif

size_t capheap_poison_overhead(void)
{
#if POISON_ENABLED
    return POISON_HEAD_MIN + POISON_TAIL + MH_OWNER_BYTES;
#elif CAPHEAP_TASK_TRACKING
    return MH_OWNER_BYTES;
#else
    return 0;
#endif
}

size_t capheap_heap_poison_overhead(multi_heap_handle_t heap)
{
#if MH_BLOCK_EXTRA
    return heap == NULL ? 0 : overhead(E(heap));
#else
    (void)heap;
    return 0;
#endif
}

/* engine_size() is in heap_private.h. */

/* Engine data pointer of a user pointer. */
static inline void *raw_of(const ce_heap_t *h, void *p)
{
#if POISON_ENABLED
    return (uint8_t *)p - head_bytes(h);
#else
    (void)h;
    return p;
#endif
}

/* Statistics in the user's terms: one block overhead (poisoning, owner
 * word) less, clamped. */
static inline size_t user_bytes(const ce_heap_t *h, size_t raw)
{
#if MH_BLOCK_EXTRA
    size_t ov = overhead(h);
    return raw > ov ? raw - ov : 0;
#else
    (void)h;
    return raw;
#endif
}

/* ---- sanitizer annotations (debug/sanitize.h) --------------------------- */

#if CE_SAN
/* Bytes of a used block the program owns: its capacity less the poison overhead. */
static inline size_t usable_of(const ce_heap_t *h, size_t cap)
{
    return user_bytes(h, cap);
}

#if CE_ASAN
/* The free block b: its payload (past the links, before the footer) is off limits. */
static inline void san_free_block(const ce_heap_t *h, uint32_t b)
{
    uint32_t s = SIZE_OF(HDR(h, b));
    if (s > CE_MIN_BLOCK)
        CE_SAN_POISON(word(h, b + 3u * CE_HDR), s - CE_MIN_BLOCK);
}
#endif

/* A block's allocation is complete: user bytes [user, user + size) of the
 * engine block raw. ASan: exactly those are addressable (canaries, the head's
 * size word and the padding up to the capacity are not); valgrind: a chunk of
 * the usable size. */
static void san_alloc(const ce_heap_t *h, void *raw, void *user, size_t size)
{
    size_t cap = ce_block_capacity(raw);
    uint8_t *r = (uint8_t *)raw, *u = (uint8_t *)user;
#if CE_ASAN
    CE_SAN_POISON(r, cap);
    CE_SAN_UNPOISON(u, size);
#else
    (void)size;
#endif
#if CAPHEAP_VALGRIND
    VALGRIND_MEMPOOL_ALLOC(h, u, usable_of(h, cap));
#endif
    (void)h; /* valgrind builds only */
    (void)r;
    (void)u;
}

/* State of a used block about to be freed or resized, recorded under the
 * lock before the engine runs: its extent with a free successor (merges end
 * there), and the user range. */
typedef struct {
    uint32_t b, s, end; /* header offset, size, end of the block and of a free successor */
    void *user;
    size_t size; /* ASan: the requested size (what was addressable) */
    size_t usable;
} san_block_t;

static void san_begin(const ce_heap_t *h, void *raw, void *user, san_block_t *sb)
{
    uint32_t b = off_of(h, raw) - CE_HDR;
    uint32_t s = SIZE_OF(HDR(h, b));
    uint32_t nh = HDR(h, b + s);
    sb->b = b;
    sb->s = s;
    sb->end = b + s + ((nh & F_FREE) ? SIZE_OF(nh) : 0u);
    sb->user = user;
    sb->usable = usable_of(h, s - CE_HDR);
#if CE_ASAN
    sb->size = san_unpoisoned_prefix(user, sb->usable);
    /* The engine and the poisoning code work in all of it now. */
    CE_SAN_UNPOISON(word(h, b), sb->end - b);
#else
    sb->size = sb->usable;
#endif
}

/* The block was freed (and merged): the free block that ends at sb->end. */
static void san_freed(const ce_heap_t *h, const san_block_t *sb)
{
#if CE_ASAN
    san_free_block(h, *word(h, sb->end - CE_HDR) & ~F_MASK); /* its footer names it */
#endif
#if CAPHEAP_VALGRIND
    VALGRIND_MEMPOOL_FREE(h, sb->user);
#endif
    (void)h;
    (void)sb;
}

/* After an in-place resize (or none): the free block right after it, if any. */
static void san_after_free_successor(const ce_heap_t *h, void *raw)
{
#if CE_ASAN
    uint32_t b = off_of(h, raw) - CE_HDR;
    uint32_t nb = b + SIZE_OF(HDR(h, b));
    if (HDR(h, nb) & F_FREE)
        san_free_block(h, nb);
#endif
    (void)h;
    (void)raw;
}

/* realloc finished: q (user pointer, NULL if it failed) of size bytes. */
static void san_realloc_end(const ce_heap_t *h, const san_block_t *sb, void *q, size_t size)
{
    void *raw = data_of(h, sb->b);
    if (q == NULL) { /* unchanged */
        size = sb->size;
        q = sb->user;
    }
    size_t cap = ce_block_capacity(raw);
    if (q == sb->user) {
        /* in place */
#if CE_ASAN
        CE_SAN_POISON((uint8_t *)raw, cap);
        CE_SAN_UNPOISON((uint8_t *)q, size);
#endif
#if CAPHEAP_VALGRIND
        size_t nu = usable_of(h, cap);
        VALGRIND_MEMPOOL_CHANGE(h, sb->user, q, nu);
        if (nu > sb->usable)
            VALGRIND_MAKE_MEM_UNDEFINED((uint8_t *)q + sb->usable, nu - sb->usable);
        else if (nu < sb->usable)
            VALGRIND_MAKE_MEM_NOACCESS((uint8_t *)q + nu, sb->usable - nu);
#endif
        san_after_free_successor(h, raw);
        return;
    }
    /* moved: q is a new block, the old one is free */
    void *qraw = raw_of(h, q);
    san_alloc(h, qraw, q, size);
#if CAPHEAP_VALGRIND
    {
        size_t keep = sb->usable < size ? sb->usable : size;
        VALGRIND_MAKE_MEM_DEFINED(q, keep); /* copied (definedness is not carried over) */
    }
#endif
    san_freed(h, sb);
}
#else
#define san_alloc(h, raw, user, size) ((void)0)
#endif

/* ---- registration and lock --------------------------------------------- */

/* The engine block (header included) that malloc(1) takes in a heap of
 * alignment align. Registration refuses a pool that cannot hold it: with
 * poisoning's canaries (and the owner word) the engine's own 16-byte minimum
 * block serves no request at all, and a heap where every malloc fails is a
 * half-made heap. align may be invalid here (ce_create refuses it). */
static size_t smallest_block(size_t align)
{
#if MH_BLOCK_EXTRA
    size_t n = (1u + overhead_for(align) + CE_HDR + align - 1u) & ~(align - 1u);
    return n < CE_MIN_BLOCK ? CE_MIN_BLOCK : n;
#else
    (void)align;
    return CE_MIN_BLOCK; /* capacity 12: malloc(1) to malloc(12) */
#endif
}

/* Registration at alignment align (capheap_heap_register() less the
 * options): the public function and heap_caps' (heap_private.h) inline it. */
CE_INLINE multi_heap_handle_t register_body(void *start, size_t size, size_t align)
{
    /* The sanitizers' view of a region the engine will write (not of a size
     * ce_create refuses: a wrong 64-bit size would mark memory that is not the
     * region's, and cost ASan a shadow of size / 8 bytes). */
    bool annotate = start != NULL && size <= UINT32_MAX;
#if CE_ASAN || CAPHEAP_VALGRIND
    /* Nor of a region too small for any heap, refused below: it need not be
     * memory at all (a region in the last bytes of the address space; ASan
     * has no shadow for it and stops the program). */
    annotate = annotate && size >= ce_region_needed(start, align, CE_MIN_BLOCK);
#endif
    (void)annotate;
#if CE_ASAN
    if (annotate)
        CE_SAN_UNPOISON(start, size); /* a region used before: the engine writes all of it */
#endif
#if CAPHEAP_VALGRIND
    if (annotate && VALGRIND_MEMPOOL_EXISTS(start))
        VALGRIND_DESTROY_MEMPOOL(start); /* registered again: its old blocks are gone */
    if (annotate && vg_memcheck)
        VALGRIND_MAKE_MEM_UNDEFINED(start, size); /* the engine writes all of it */
#endif
#if MH_BLOCK_EXTRA
    /* The engine's own test is a pool of one 16-byte block, which serves no
     * request here: refuse a region whose pool cannot hold malloc(1)'s block,
     * before the engine writes anything. (For a bad start or alignment the
     * figure means nothing, but ce_create refuses those anyway.) */
    if (size < ce_region_needed(start, align, smallest_block(align)))
        return NULL;
#endif
    ce_heap_t *h = ce_create(start, size, align); /* zeroes the owner slot: no lock yet */
    if (h == NULL)
        return NULL;
#if CE_ASAN
    san_free_block(h, h->first);
#endif
#if CAPHEAP_VALGRIND
    /* The pool (not the control structure: the owner slot is read outside
     * the lock) is NOACCESS; blocks become addressable as they are allocated. */
    if ((long)VALGRIND_MAKE_MEM_NOACCESS(word(h, h->first), h->end + CE_HDR - h->first) == -1L)
        vg_memcheck = 1;
    VALGRIND_CREATE_MEMPOOL(h, 0, 0);
#endif
    return (multi_heap_handle_t)(void *)h;
}

multi_heap_handle_t capheap_heap_register(void *start, size_t size,
                                          const capheap_heap_options_t *options)
{
    return register_body(start, size, (options == NULL || options->alignment == 0) ? 4 : options->alignment);
}

multi_heap_handle_t capheap_heap_register_aligned(void *start, size_t size, size_t align)
{
    return register_body(start, size, align);
}

void capheap_sanitizer_release(void *start, size_t size)
{
    if (start == NULL)
        return;
#if CE_ASAN
    CE_SAN_UNPOISON(start, size);
#endif
#if CAPHEAP_VALGRIND
    if (VALGRIND_MEMPOOL_EXISTS(start))
        VALGRIND_DESTROY_MEMPOOL(start);
    VALGRIND_MAKE_MEM_DEFINED(start, size);
#endif
    (void)size;
}

multi_heap_handle_t multi_heap_register(void *start, size_t size)
{
    return capheap_heap_register(start, size, NULL);
}

size_t capheap_heap_alignment(multi_heap_handle_t heap)
{
    return heap == NULL ? 0 : (size_t)E(heap)->align_mask + 1u;
}

size_t capheap_heap_overhead(multi_heap_handle_t heap)
{
    return heap == NULL ? 0 : ce_overhead(E(heap));
}

size_t capheap_heap_min_region_size(size_t alignment)
{
    if (alignment == 0)
        alignment = 4;
    if (alignment != 4 && alignment != 8 && alignment != 16)
        return 0;
    return ce_min_region(alignment, smallest_block(alignment));
}

void multi_heap_set_lock(multi_heap_handle_t heap, void *lock_object)
{
    if (heap != NULL)
        ce_set_owner(E(heap), lock_object);
}

/* ---- allocation -------------------------------------------------------- */

/*
 * malloc, free and realloc each have a body compiled twice: straight into the
 * API function for heaps without a lock (a leaf with no calls, so no saved
 * registers: about 20 instructions less per call) and into a
 * capheap_heap_*_locked function that brackets it with the lock (heap_caps'
 * fast paths call those directly: their heaps always have a lock). Rejected
 * pointers go to a cold function that describes the fault under the lock
 * and reports it after releasing it.
 *
 * Task tracking builds give the bodies the owner word's parameters
 * (WITH_OWNER): the word a new block gets, where its usable size goes,
 * where the old block's word and size go. They compile to nothing in other
 * builds, so those keep their exact code. A caller that does not want a
 * result passes NO_USABLE or NO_OLD, a local whose stores vanish once the
 * body is inlined (no NULL tests on the tracker's paths).
 */
#if CAPHEAP_TASK_TRACKING
#define WITH_OWNER(...) , __VA_ARGS__
#define NO_USABLE (&(size_t){0})
#define NO_OLD (&(capheap_owned_t){0, 0})

/* The new block raw gets owner as its owner word, *usable its usable size.
 * Lock held. */
CE_INLINE void new_owner(const ce_heap_t *h, void *raw, uint32_t owner, size_t *usable)
{
    size_t cap = ce_block_capacity(raw);
    owner_store(owner_at(raw, cap), owner);
    *usable = cap - overhead(h); /* a live block holds at least one byte more */
}

/* The live block raw's owner word and usable size, cap its capacity. Lock held. */
CE_INLINE capheap_owned_t owned_of(const ce_heap_t *h, const void *raw, size_t cap)
{
    capheap_owned_t o = {owner_load(owner_at(raw, cap)), cap - overhead(h)};
    return o;
}
#else
#define WITH_OWNER(...)
#define NO_USABLE NULL
#endif

/* Allocation under the lock: size user bytes, ce_memalign(alignment,
 * offset), offset in engine terms (already word-rounded, poison head
 * included). */
MH_BODY void *aligned_body(ce_heap_t *h, size_t size, size_t alignment,
                             size_t offset WITH_OWNER(uint32_t owner, size_t *usable))
{
    size_t n = engine_size(h, size);
    if (n == 0)
        return NULL;
    lock_w(h);
    void *raw = ce_memalign(h, n, alignment, offset);
#if POISON_ENABLED
    void *p = poison_new(h, raw, size);
#else
    void *p = raw;
#endif
#if CE_SAN
    if (p != NULL)
        san_alloc(h, raw, p, size);
#endif
#if CAPHEAP_TASK_TRACKING
    if (p != NULL)
        new_owner(h, raw, owner, usable);
#endif
    unlock(h);
    return p;
}

#if !CAPHEAP_TASK_TRACKING /* there new_owner() says it */
/* The usable bytes of the live block p, or 0 for NULL (lock held). */
static inline size_t usable_locked(const ce_heap_t *h, void *p)
{
    return p == NULL ? 0 : user_bytes(h, ce_block_capacity(raw_of(h, p)));
}
#endif

#if defined(__OPTIMIZE_SIZE__)
/* Optimising for size, malloc and aligned allocation share one locked body:
 * malloc is ce_memalign() with an alignment every block meets (which is
 * what ce_malloc() is in these builds), at the poison head's offset. */
static MH_NOINLINE void *aligned_locked(ce_heap_t *h, size_t size, size_t alignment,
                                        size_t offset WITH_OWNER(uint32_t owner, size_t *usable))
{
    return aligned_body(h, size, alignment, offset WITH_OWNER(owner, usable));
}

void *multi_heap_malloc(multi_heap_handle_t heap, size_t size)
{
    /* the same call, the NULL check and the poison head's offset included */
    return multi_heap_aligned_alloc_offs(heap, size, 1, 0);
}
#else
#define aligned_locked aligned_body

/* The engine's malloc of n engine bytes or, with fit (heap_caps' unlocked
 * first half: *fit = ce_fit() of those n bytes, not 0), its second half. */
CE_INLINE void *engine_malloc(ce_heap_t *h, size_t n, const uint32_t *fit)
{
    return fit != NULL ? ce_malloc_fit(h, *fit) : ce_malloc(h, n);
}

CE_INLINE void *malloc_body(ce_heap_t *h, size_t size, const uint32_t *fit WITH_OWNER(uint32_t owner, size_t *usable))
{
#if POISON_ENABLED
    size_t n = engine_size(h, size);
    void *p = n == 0 ? NULL : poison_new(h, engine_malloc(h, n, fit), size);
#elif CAPHEAP_TASK_TRACKING
    void *p = engine_malloc(h, engine_size(h, size), fit); /* engine_size 0 (size 0, overflow): NULL */
#else
    void *p = engine_malloc(h, size, fit);
#endif
#if CE_SAN
    if (p != NULL)
        san_alloc(h, raw_of(h, p), p, size);
#endif
#if CAPHEAP_TASK_TRACKING
    if (p != NULL)
        new_owner(h, raw_of(h, p), owner, usable);
    else
        *usable = 0;
#endif
    return p;
}

/* malloc under the lock (with fit: its second half, malloc_body); with
 * usable, the block's usable size read under it too (task tracking:
 * capheap_heap_malloc_owned; usable is never NULL then). */
CE_INLINE void *malloc_locked_as(ce_heap_t *h, size_t size, const uint32_t *fit,
                                 size_t *usable WITH_OWNER(uint32_t owner))
{
    lock_w(h);
#if CAPHEAP_TASK_TRACKING
    void *p = malloc_body(h, size, fit, owner, usable); /* the size with the owner word */
#else
    void *p = malloc_body(h, size, fit);
    if (usable != NULL)
        *usable = usable_locked(h, p);
#endif
    unlock(h);
    return p;
}

/* multi_heap_malloc's locked half, out of line like free's and realloc's. */
static MH_NOINLINE void *malloc_locked(multi_heap_handle_t heap, size_t size)
{
    return malloc_locked_as(E(heap), size, NULL, NO_USABLE WITH_OWNER(0));
}

/* heap_caps' malloc after its unlocked first half (heap_private.h). */
MH_NOINLINE void *capheap_heap_malloc_fit(multi_heap_handle_t heap, size_t size, uint32_t fit)
{
    return malloc_locked_as(E(heap), size, &fit, NO_USABLE WITH_OWNER(0));
}

/* MH_NOINLINE: no partial inlining either (gcc would split off the body,
 * one jump more on every call). */
MH_NOINLINE void *multi_heap_malloc(multi_heap_handle_t heap, size_t size)
{
    if (heap == NULL)
        return NULL;
    ce_heap_t *h = E(heap);
    if (MH_ALWAYS_LOCKED || ce_owner(h) != NULL)
        return malloc_locked(heap, size);
    return malloc_body(h, size, NULL WITH_OWNER(0, NO_USABLE));
}
#endif

void *multi_heap_aligned_alloc_offs(multi_heap_handle_t heap, size_t size, size_t alignment,
                                    size_t offset)
{
    if (heap == NULL || offset > SIZE_MAX - 3u)
        return NULL;
    offset = (offset + 3u) & ~(size_t)3u; /* as ESP-IDF: the offset counts in words */
#if POISON_ENABLED
    if (offset > SIZE_MAX - head_bytes(E(heap)))
        return NULL;
    offset += head_bytes(E(heap)); /* the engine aligns raw + head + offset */
#endif
    return aligned_locked(E(heap), size, alignment, offset WITH_OWNER(0, NO_USABLE));
}

void *multi_heap_aligned_alloc(multi_heap_handle_t heap, size_t size, size_t alignment)
{
    return multi_heap_aligned_alloc_offs(heap, size, alignment, 0);
}

#if defined(__OPTIMIZE_SIZE__)
/* heap_caps' allocation (heap_private.h): multi_heap_aligned_alloc() for a
 * heap that exists, so without its NULL test and offset arithmetic. */
void *capheap_heap_aligned_alloc_in(multi_heap_handle_t heap, size_t size, size_t alignment)
{
#if POISON_ENABLED
    size_t offset = head_bytes(E(heap)); /* multi_heap_aligned_alloc_offs' at offset 0 */
#else
    size_t offset = 0;
#endif
    return aligned_body(E(heap), size, alignment, offset WITH_OWNER(0, NO_USABLE)); /* its own copy */
}
#endif

/* Is p a live block of h, canaries intact? Under the lock; changes nothing. */
CE_INLINE bool accepted(const ce_heap_t *h, void *p)
{
    void *raw = raw_of(h, p);
    if (!ce_valid(h, raw))
        return false;
#if POISON_ENABLED
    /* Quietly: a rejection is reported by reject_locked(), which describes
     * the fault again into its own report. */
    capheap_report_t r;
    if (poison_fault(h, raw, ce_block_capacity(raw), &r))
        return false;
#endif
    return true;
}

/* p was rejected by a path that holds the lock: say why (still under the
 * lock), release it, then report. */
static MH_COLD void reject_locked(ce_heap_t *h, void *p)
{
    void *raw = raw_of(h, p);
    capheap_report_t r;
    ce_fault_kind_t kind = ce_diagnose(h, raw, &r);
#if POISON_ENABLED
    /* ce_diagnose places raw, the engine's pointer, which lies head bytes
     * before p: p itself can lie past raw's block, in the next block's header
     * or poisoning head, or at or past the end marker (one past the region,
     * the common case: it read "Double free" of the last block). Then the
     * block p lies in is named: an interior pointer of it, or outside the
     * heap past the last block (an audit found both). */
    if (kind == CE_FAULT_DOUBLE_FREE || kind == CE_FAULT_INTERIOR) {
        /* raw's block ends where its successor starts: its data offset was expected
         * (ce_block_capacity: the -Os build's multi_heap.c sees no header macros) */
        const void *adata = (const char *)h + r.expected;
        uint32_t next = r.expected + (uint32_t)ce_block_capacity(adata);
        if ((uintptr_t)p - (uintptr_t)h >= next) {
            bool past = next >= h->first + h->data_span + CE_MIN_BLOCK; /* the end marker */
            kind = past ? CE_FAULT_OUTSIDE : CE_FAULT_INTERIOR;
            r.expected = (past ? h->first : next) + CE_HDR;
            r.invariant = CE_INV_POINTER;
        }
    }
#endif
    /* Nothing found: "Corrupt heap" at raw, all numbers 0 (as ce_diagnose leaves them). */
    r.what = fault_text(kind);
#if POISON_ENABLED
    /* The pointer kinds name the pointer and count offsets in the engine's
     * terms, raw's: say them in the user's, p and the blocks' user pointers
     * (poisoning's head between the two). */
    if (kind == CE_FAULT_OUTSIDE || kind == CE_FAULT_DOUBLE_FREE || kind == CE_FAULT_INTERIOR) {
        uint32_t head = (uint32_t)head_bytes(h);
        r.address = p;
        r.expected += head;
        r.found += head;
    }
    /* The canaries' fault, described into this call's own r: not read back
     * from capheap_last_report(), which another thread reporting on another
     * heap may have written in between. */
    if (kind == CE_OK)
        (void)poison_fault(h, raw, ce_block_capacity(raw), &r);
#endif
    unlock(h);
    capheap_report_corruption(&r, true, true);
}

/* p was rejected by a path that released the lock (or never took it). */
static MH_COLD void reject(ce_heap_t *h, void *p)
{
    lock(h);
    reject_locked(h, p);
}

/* Task tracking, speed builds without poisoning: free and realloc check a
 * block once, as the engine's own paths do, and keep what the checks read
 * (ce_free_start, neighbours_ok); the owner word is read between the checks
 * and the change. Other builds check with accepted() first, then read it. */
#if CAPHEAP_TASK_TRACKING && !POISON_ENABLED && !defined(__OPTIMIZE_SIZE__)
#define MH_OWNER_FUSED 1

/* ce_valid(h, p), keeping p's block *b, its header, the next header and the
 * free neighbours (*pb, *ns: 0 if none, as the caller set them). Returns
 * CE_FREE_REJECT, CE_FREE_PLAIN or CE_FREE_MERGE (neighbours checked). */
CE_INLINE unsigned block_checked(const ce_heap_t *h, const void *p, uint32_t *b, uint32_t *hdr,
                                 uint32_t *nh, uint32_t *pb, uint32_t *ns)
{
    unsigned r = ce_free_start(h, p, b, hdr, nh);
    if (r == CE_FREE_MERGE && !neighbours_ok(h, *b, *hdr, *nh, pb, ns))
        return CE_FREE_REJECT;
    return r;
}
#else
#define MH_OWNER_FUSED 0
#endif

/* Returns false (nothing changed) if p is not a live block of h. With task
 * tracking, *was (if asked) gets p's owner word and usable size. */
MH_BODY bool free_body(ce_heap_t *h, void *p WITH_OWNER(capheap_owned_t *was))
{
#if POISON_ENABLED || CE_SAN || (CAPHEAP_TASK_TRACKING && !MH_OWNER_FUSED)
    if (!accepted(h, p))
        return false;
    void *raw = raw_of(h, p);
#if CAPHEAP_TASK_TRACKING
    if (was != NULL)
        *was = owned_of(h, raw, ce_block_capacity(raw));
#endif
#if CE_SAN
    san_block_t sb;
    san_begin(h, raw, p, &sb);
#endif
#if POISON_ENABLED
    store32(raw, ~POISON_HEAD_CANARY); /* a stale pointer no longer looks allocated */
#endif
    (void)ce_free(h, raw);             /* validated above; comprehensive: the engine fills */
#if CE_SAN
    san_freed(h, &sb);
#endif
    return true;
#elif MH_OWNER_FUSED
    if (was == NULL)
        return ce_free(h, p) == CE_OK;
    uint32_t b = 0, hdr = 0, nh = 0, pb = 0, ns = 0;
    unsigned r = block_checked(h, p, &b, &hdr, &nh, &pb, &ns);
    if (r == CE_FREE_REJECT)
        return false;
    *was = owned_of(h, p, SIZE_OF(hdr) - CE_HDR);
    if (r == CE_FREE_PLAIN)
        (void)ce_free_plain(h, b, hdr);
    else
        (void)free_merge_do(h, b, hdr & ~F_PREV_FREE, pb, ns);
    return true;
#else
    return ce_free(h, p) == CE_OK;
#endif
}

#if !(CAPHEAP_TASK_TRACKING && defined(__OPTIMIZE_SIZE__)) /* (there free goes through free_owned) */
/* free under the lock (p not NULL). */
MH_BODY void free_locked_as(ce_heap_t *h, void *p)
{
    lock_w(h);
    if (free_body(h, p WITH_OWNER(NULL)))
        unlock(h);
    else
        reject_locked(h, p);
}
#endif

/* External in every build: heap_caps' free (heap_private.h). Optimising for
 * size multi_heap_free() inlines the body itself, as multi_heap_realloc()
 * does (capheap_heap_realloc_locked). */
#if defined(__OPTIMIZE_SIZE__)
void capheap_heap_free_locked(multi_heap_handle_t heap, void *p)
#else
MH_LOCKED void capheap_heap_free_locked(multi_heap_handle_t heap, void *p)
#endif
{
#if CAPHEAP_TASK_TRACKING && defined(__OPTIMIZE_SIZE__)
    (void)capheap_heap_free_owned(heap, p); /* one free body in size-optimised builds */
#else
    free_locked_as(E(heap), p);
#endif
}

/* The split fast path below pays off in speed, not in size: -Os builds use free_body. */
#if !POISON_ENABLED && !defined(__OPTIMIZE_SIZE__) && !CE_SAN
#define MH_SPLIT_FREE 1
#else
#define MH_SPLIT_FREE 0
#endif

#if MH_SPLIT_FREE
/* The unlocked free when a neighbour is free: out of line, so that the
 * common path needs no saved registers; reject() gets the same pointer
 * back (p is the data pointer of b). */
static MH_NOINLINE void free_merge_unlocked(ce_heap_t *h, uint32_t b, uint32_t hdr, uint32_t nh)
{
    uint32_t pb = 0, ns = 0;
    if (!neighbours_ok(h, b, hdr, nh, &pb, &ns)) {
        reject(h, data_of(h, b));
        return;
    }
    (void)free_merge_do(h, b, hdr & ~F_PREV_FREE, pb, ns); /* a tail call */
}
#endif

MH_NOINLINE void multi_heap_free(multi_heap_handle_t heap, void *p) /* as multi_heap_malloc */
{
    if (heap == NULL || p == NULL)
        return;
    ce_heap_t *h = E(heap);
    if (MH_ALWAYS_LOCKED || ce_owner(h) != NULL) {
#if defined(__OPTIMIZE_SIZE__) && !CAPHEAP_TASK_TRACKING
        free_locked_as(h, p); /* (capheap_heap_free_locked says why) */
#else
        capheap_heap_free_locked(heap, p);
#endif
        return;
    }
#if !MH_SPLIT_FREE
    if (!free_body(h, p WITH_OWNER(NULL)))
        reject(h, p);
#else
    uint32_t b = 0, hdr = 0, nh = 0;
    unsigned r = ce_free_start(h, p, &b, &hdr, &nh);
    if (r == CE_FREE_PLAIN) {
        h->free_bytes += hdr;
        make_free_at(h, (uint32_t *)p - 1, b, hdr); /* inline: free stays a leaf */
    } else if (r == CE_FREE_MERGE)
        free_merge_unlocked(h, b, hdr, nh);
    else
        reject(h, p);
#endif
}

void multi_heap_aligned_free(multi_heap_handle_t heap, void *p)
{
    multi_heap_free(heap, p);
}

#if defined(__OPTIMIZE_SIZE__) && !CAPHEAP_POISONING_COMPREHENSIVE /* (which moves its own way) */
/* Optimising for size the engine has no ce_realloc(): realloc of the block
 * raw, which passed ce_valid(), to n engine bytes is its API functions in
 * sequence, under the lock held here, with no fault code to pass back.
 * ce_resize() and ce_memalign() refuse n = 0 or above max_request; a block
 * that cannot stay is copied (it could not grow: its whole capacity fits)
 * and freed like any valid block (ce_free() merges it as the speed build's
 * ce_realloc() does). */
MH_BODY void *engine_realloc(ce_heap_t *h, void *raw, size_t n)
{
    if (ce_resize(h, raw, n))
        return raw;
    void *q = ce_memalign(h, n, 1u, 0u); /* what ce_malloc() calls in these builds */
    if (q != NULL) {
        CE_SAN_UNPOISON(q, ce_block_capacity(raw)); /* the new block's payload was free (sanitize.h) */
        memcpy(q, raw, ce_block_capacity(raw));
        (void)ce_free(h, raw);
    }
    return q;
}
#elif !defined(__OPTIMIZE_SIZE__)
/* realloc of the block raw, which passed ce_valid(), to n engine bytes: the
 * engine's, whose fault code is then CE_OK (a macro, not a function that
 * some configurations would leave unused). */
#define engine_realloc(h, raw, n) ce_realloc((h), (raw), (n), &(ce_fault_kind_t){CE_OK})
#endif

/* realloc of a non-NULL p to size > 0. *ok is false iff p was rejected.
 * With task tracking, *was gets p's owner word and usable size once p is
 * accepted, before anything changes. */
MH_BODY void *realloc_work(ce_heap_t *h, void *p, size_t size, bool *ok WITH_OWNER(capheap_owned_t *was))
{
    size_t n = engine_size(h, size);
#if POISON_ENABLED
    *ok = accepted(h, p);
    if (!*ok || n == 0)
        return NULL;
    void *raw = raw_of(h, p);
#if CAPHEAP_TASK_TRACKING
    *was = owned_of(h, raw, ce_block_capacity(raw));
#endif
#if CAPHEAP_POISONING_COMPREHENSIVE
    /* In place when the block can shrink or grow into a free successor (the
     * bytes it gains are checked as free fill, then filled as new); else a
     * new block, checked as free fill like any malloc, and a copy. ESP-IDF
     * always moves. */
    size_t old = poison_size(h, raw);
    size_t old_cap = ce_block_capacity(raw);
    if (ce_resize(h, raw, n)) {
        size_t cap = ce_block_capacity(raw);
        if (cap > old_cap) {
            /* The successor's header and links were at old_cap .. old_cap + 12, its fill
             * after them: up to the new end when the successor was split (its rest, a
             * free block, follows), else up to its footer, the last word. */
            size_t end = (load32((uint8_t *)raw + cap) & F_FREE) ? cap : cap - 4u;
            if (end > old_cap + 12u && !fill_intact(h, (uint8_t *)raw + old_cap + 4u, end - old_cap))
                return NULL; /* not reached: the report aborts */
            /* From the old owner word on (task tracking: the block's last
             * word until now, padding or user bytes from here on; its new
             * one is written at the new end) */
            memset((uint8_t *)raw + old_cap - MH_OWNER_BYTES, POISON_MALLOC_FILL, cap - old_cap + MH_OWNER_BYTES);
        }
        if (size > old)
            memset((uint8_t *)p + old, POISON_MALLOC_FILL, size - old); /* the old tail canary */
        return poison_wrap(h, raw, size);
    }
    void *q = poison_new(h, ce_malloc(h, n), size);
    if (q != NULL) {
        memcpy(q, p, old < size ? old : size);
        store32(raw, ~POISON_HEAD_CANARY);
        (void)ce_free(h, raw);
    }
    return q;
#else
    /* If the block moves, the old one is freed inside the engine: its head
     * must not look allocated afterwards (as free_body() leaves it). The
     * block that results, in place or moved, is wrapped anew; a failure
     * leaves p as it was. */
    store32(raw, ~POISON_HEAD_CANARY);
    void *nraw = engine_realloc(h, raw, n);
    if (nraw == NULL) {
        store32(raw, POISON_HEAD_CANARY);
        return NULL;
    }
#if CE_ASAN
    /* the canaries go anywhere in it; san_realloc_end() sets the final state */
    CE_SAN_UNPOISON(nraw, ce_block_capacity(nraw));
#endif
    return poison_wrap(h, nraw, size);
#endif
#elif MH_OWNER_FUSED
    /* ce_realloc() in its two halves, the owner word read between them */
    uint32_t b = 0, hdr = 0, nh = 0, pb = 0, ns = 0;
    *ok = block_checked(h, p, &b, &hdr, &nh, &pb, &ns) != CE_FREE_REJECT;
    if (!*ok)
        return NULL;
    *was = owned_of(h, p, SIZE_OF(hdr) - CE_HDR);
    return ce_realloc_checked(h, p, n, b, hdr, nh);
#elif defined(__OPTIMIZE_SIZE__) /* (speed builds with task tracking are MH_OWNER_FUSED) */
    /* size-optimised: checked once, then the engine's steps (engine_realloc) */
    *ok = ce_valid(h, p);
    if (!*ok)
        return NULL;
#if CAPHEAP_TASK_TRACKING
    *was = owned_of(h, p, ce_block_capacity(p));
#endif
    return engine_realloc(h, p, n);
#else
    ce_fault_kind_t f;
    void *q = ce_realloc(h, p, n, &f);
    *ok = f == CE_OK;
    return q;
#endif
}

MH_BODY void *realloc_body(ce_heap_t *h, void *p, size_t size, bool *ok WITH_OWNER(capheap_owned_t *was))
{
#if CE_SAN
    if (!accepted(h, p)) {
        *ok = false;
        return NULL;
    }
    san_block_t sb;
    san_begin(h, raw_of(h, p), p, &sb);
    void *q = realloc_work(h, p, size, ok WITH_OWNER(was));
    san_realloc_end(h, &sb, q, size);
    return q;
#else
    return realloc_work(h, p, size, ok WITH_OWNER(was));
#endif
}

#if CAPHEAP_TASK_TRACKING
/* realloc_body, then the owner word of the result: with carry (the public
 * API), p's own if the usable size stayed the same, else 0; without, owner.
 * The tracker charged the old usable size to p's owner, and a free credits
 * the block's usable size then: a word carried across a resize the tracker
 * never hears of would credit what was never charged (an audit saw a task's
 * usage wrap below 0). Unowned, the block's charge stays with its task and
 * its free counts as unknown (docs/task-tracking.md). *usable gets the new
 * usable size, *old p's word and size before the call; 0 and {0, 0} when
 * NULL is returned (failed or rejected). */
CE_INLINE void *realloc_owner(ce_heap_t *h, void *p, size_t size, bool *ok, bool carry, uint32_t owner,
                              size_t *usable, capheap_owned_t *old)
{
    capheap_owned_t was = {0, 0};
    void *q = realloc_body(h, p, size, ok, &was);
    if (q != NULL) {
        void *raw = raw_of(h, q);
        if (carry)
            owner = ce_block_capacity(raw) - overhead(h) == was.usable ? was.owner : 0u;
        new_owner(h, raw, owner, usable);
    } else {
        *usable = 0;
        was.usable = was.owner = 0;
    }
    *old = was;
    return q;
}
#endif

/* realloc under the lock (p not NULL, size not 0); with usable, the new
 * block's usable size read under it too (capheap_heap_realloc_owned). With
 * task tracking, the owner word as realloc_owner() says (usable not NULL).
 * Inlined in every build, with the steps it calls: optimising for size,
 * gcc would keep one copy out of line for multi_heap_realloc() and
 * capheap_heap_realloc_locked(), and each image pay a call inside realloc
 * (+12 B on Cortex-M4): a firmware links one of the two, as a rule. */
MH_BODY void *realloc_locked_as(ce_heap_t *h, void *p, size_t size,
                                  size_t *usable WITH_OWNER(bool carry, uint32_t owner, capheap_owned_t *old))
{
    bool ok;
    lock_w(h);
#if CAPHEAP_TASK_TRACKING
    void *q = realloc_owner(h, p, size, &ok, carry, owner, usable, old);
#else
    void *q = realloc_body(h, p, size, &ok);
#endif
    if (!ok) {
        reject_locked(h, p); /* q is NULL */
        return q;
    }
#if !CAPHEAP_TASK_TRACKING
    if (usable != NULL)
        *usable = usable_locked(h, q);
#endif
    unlock(h);
    return q;
}

/* External in every build: heap_caps' realloc (heap_private.h). In
 * size-optimised builds multi_heap_realloc() inlines the body itself rather
 * than call this: a firmware that reallocates through heap_caps links this
 * one, without the public function's tests for NULL and size 0. */
#if defined(__OPTIMIZE_SIZE__)
void *capheap_heap_realloc_locked(multi_heap_handle_t heap, void *p, size_t size)
#else
MH_LOCKED void *capheap_heap_realloc_locked(multi_heap_handle_t heap, void *p, size_t size)
#endif
{
    return realloc_locked_as(E(heap), p, size, NO_USABLE WITH_OWNER(true, 0, NO_OLD));
}

void *multi_heap_realloc(multi_heap_handle_t heap, void *p, size_t size)
{
    if (heap == NULL)
        return NULL;
    if (p == NULL)
        return multi_heap_malloc(heap, size);
    if (size == 0) {
        multi_heap_free(heap, p); /* frees and credits, unlike ESP-IDF (docs/compat.md) */
        return NULL;
    }
    ce_heap_t *h = E(heap);
    if (MH_ALWAYS_LOCKED || ce_owner(h) != NULL)
#if defined(__OPTIMIZE_SIZE__)
        return realloc_locked_as(h, p, size, NO_USABLE WITH_OWNER(true, 0, NO_OLD)); /* (see above) */
#else
        return capheap_heap_realloc_locked(heap, p, size);
#endif
    bool ok;
#if CAPHEAP_TASK_TRACKING
    void *q = realloc_owner(h, p, size, &ok, true, 0, NO_USABLE, NO_OLD);
#else
    void *q = realloc_body(h, p, size, &ok);
#endif
    if (!ok)
        reject(h, p);
    return q;
}

/* ---- the owner word's operations (task tracking; heap_private.h) ------- */

#if CAPHEAP_TASK_TRACKING
capheap_made_t capheap_heap_malloc_owned(multi_heap_handle_t heap, size_t size, uint32_t owner)
{
    capheap_made_t m = {NULL, 0}; /* returned in registers: the caller keeps no address-taken local */
#if defined(__OPTIMIZE_SIZE__)
#if POISON_ENABLED
    m.p = aligned_locked(E(heap), size, 1, head_bytes(E(heap)), owner, &m.usable);
#else
    m.p = aligned_locked(E(heap), size, 1, 0, owner, &m.usable);
#endif
#else
    m.p = malloc_locked_as(E(heap), size, NULL, &m.usable, owner);
#endif
    return m;
}

#if !defined(__OPTIMIZE_SIZE__)
capheap_made_t capheap_heap_malloc_owned_fit(multi_heap_handle_t heap, size_t size, uint32_t fit, uint32_t owner)
{
    capheap_made_t m = {NULL, 0};
    m.p = malloc_locked_as(E(heap), size, &fit, &m.usable, owner);
    return m;
}
#endif

void *capheap_heap_realloc_owned(multi_heap_handle_t heap, void *p, size_t size, uint32_t owner, size_t *usable,
                                 capheap_owned_t *old)
{
    return realloc_locked_as(E(heap), p, size, usable, false, owner, old);
}

capheap_owned_t capheap_heap_free_owned(multi_heap_handle_t heap, void *p)
{
    capheap_owned_t o = {0, 0};
    if (p == NULL)
        return o;
    ce_heap_t *h = E(heap);
    lock_w(h);
    if (free_body(h, p, &o))
        unlock(h);
    else
        reject_locked(h, p); /* o is untouched: {0, 0} if the abort hook returns */
    return o;
}
#endif

/* ---- per-block queries ------------------------------------------------- */

/* The full block size of a non-NULL p (0, reported, if p is no live block). */
MH_BODY size_t full_block_size(ce_heap_t *h, void *p)
{
    lock(h);
    if (!accepted(h, p)) {
        reject_locked(h, p);
        return 0;
    }
    size_t cap = ce_block_capacity(raw_of(h, p));
    /* Without poisoning, asking for the usable size makes all of it the
     * caller's (malloc_usable_size(): it may be written); until then the
     * bytes past the request are poisoned under ASan. With poisoning only the
     * request is writable (the tail canary follows it, within the usable
     * size); the bytes are unpoisoned all the same, and a write over the
     * canary is found by the canary check, not by ASan. */
    CE_SAN_UNPOISON(p, user_bytes(h, cap));
    unlock(h);
    return cap;
}

size_t multi_heap_get_full_block_size(multi_heap_handle_t heap, void *p)
{
    if (heap == NULL || p == NULL)
        return 0;
    return full_block_size(E(heap), p);
}

/* heap_caps' (heap_private.h): multi_heap_get_allocated_size() less its
 * NULL tests, with its own copy of the body (as capheap_heap_realloc_locked). */
size_t capheap_heap_allocated_size_in(multi_heap_handle_t heap, void *p)
{
#if MH_BLOCK_EXTRA
    return user_bytes(E(heap), full_block_size(E(heap), p));
#else
    return full_block_size(E(heap), p);
#endif
}

size_t multi_heap_get_allocated_size(multi_heap_handle_t heap, void *p)
{
#if MH_BLOCK_EXTRA
    if (heap == NULL || p == NULL)
        return 0;
    return user_bytes(E(heap), multi_heap_get_full_block_size(heap, p));
#else
    /* No bytes beyond the user's: the same figure, NULL checks included. */
    return multi_heap_get_full_block_size(heap, p);
#endif
}

#if CAPHEAP_TASK_TRACKING
/* get_owner and swap_owner: p's word and usable size, the word replaced by
 * owner when swap; {0, 0} and nothing else for a p that is not a live block. */
static capheap_owned_t owner_access(multi_heap_handle_t heap, void *p, bool swap, uint32_t owner)
{
    capheap_owned_t o = {0, 0};
    if (heap == NULL || p == NULL)
        return o;
    ce_heap_t *h = E(heap);
    void *raw = raw_of(h, p);
    lock(h); /* not lock_w: the heap's blocks stay as they are */
#if POISON_ENABLED
    /* quiet: the owner word's readers answer {0, 0} for a bad block, and the
     * caller's next multi_heap call reports it */
    capheap_report_t r;
    bool live = ce_valid(h, raw) && !poison_fault(h, raw, ce_block_capacity(raw), &r);
#else
    bool live = ce_valid(h, raw);
#endif
    if (live) {
        size_t cap = ce_block_capacity(raw);
        o = owned_of(h, raw, cap);
        if (swap)
            owner_store(owner_at(raw, cap), owner);
    }
    unlock(h);
    return o;
}

capheap_owned_t capheap_heap_get_owner(multi_heap_handle_t heap, void *p)
{
    return owner_access(heap, p, false, 0);
}

capheap_owned_t capheap_heap_swap_owner(multi_heap_handle_t heap, void *p, uint32_t owner)
{
    return owner_access(heap, p, true, owner);
}

typedef struct {
    const ce_heap_t *h;
    capheap_owner_walker_t cb;
    void *ctx;
} owners_ctx_t;

static bool owners_cb(void *data, size_t capacity, bool used, void *user)
{
    const owners_ctx_t *c = user;
    if (!used)
        return true;
    capheap_owned_t o = owned_of(c->h, data, capacity);
#if POISON_ENABLED
    data = (uint8_t *)data + head_bytes(c->h);
#endif
    return c->cb(data, o.usable, o.owner, c->ctx);
}

void capheap_heap_walk_owners(multi_heap_handle_t heap, capheap_owner_walker_t cb, void *ctx)
{
    if (heap == NULL || cb == NULL)
        return;
    ce_heap_t *h = E(heap);
    owners_ctx_t c = {h, cb, ctx};
    lock(h);
    ce_walk(h, owners_cb, &c);
    unlock(h);
}

uint32_t capheap_block_owner(const void *block, size_t size)
{
    if (block == NULL || size < CAPHEAP_OWNER_BYTES)
        return 0;
#if CAPHEAP_VALGRIND
    if (vg_memcheck)
        VALGRIND_DISABLE_ERROR_REPORTING; /* the word lies outside the block's chunk */
#endif
    uint32_t owner = owner_load(owner_at(block, size));
#if CAPHEAP_VALGRIND
    if (vg_memcheck)
        VALGRIND_ENABLE_ERROR_REPORTING;
#endif
    return owner;
}
#endif

#if !defined(__OPTIMIZE_SIZE__)
/* heap_caps_realloc's move out of a heap (heap_private.h): the size query,
 * the copy and the free under one lock instead of two. The copy holds this
 * heap's lock for O(n), as multi_heap_realloc's own move inside a heap does
 * (ESP-IDF's too); the destination heap is not locked. With task tracking it
 * returns p's owner word and usable size (MOVED: what each return gives). */
#if CAPHEAP_TASK_TRACKING
capheap_owned_t capheap_heap_move_out(multi_heap_handle_t heap, void *p, void *dst, size_t n)
#define MOVED moved
#else
void capheap_heap_move_out(multi_heap_handle_t heap, void *p, void *dst, size_t n)
#define MOVED
#endif
{
    ce_heap_t *h = E(heap);
#if CAPHEAP_TASK_TRACKING
    capheap_owned_t moved = {0, 0};
#endif
    lock_w(h);
    if (!accepted(h, p)) {
        reject_locked(h, p);
        return MOVED;
    }
    size_t full = ce_block_capacity(raw_of(h, p));
    size_t cap = user_bytes(h, full);
#if CAPHEAP_TASK_TRACKING
    moved = owned_of(h, raw_of(h, p), full);
#endif
    CE_SAN_UNPOISON(p, cap); /* the whole usable size is the caller's (as multi_heap_get_full_block_size claims it) */
    memcpy(dst, p, cap < n ? cap : n);
    (void)free_body(h, p WITH_OWNER(NULL)); /* accepted above */
    unlock(h);
    return MOVED;
}
#undef MOVED
#endif

/* ---- counters ---------------------------------------------------------- */

/* The counters are read under the lock too: a plain read racing with a
 * writer is a data race in C11 (and helgrind and TSan say so), even where a
 * 32-bit load cannot tear. */
static size_t read_counter(multi_heap_handle_t heap, bool minimum)
{
    if (heap == NULL)
        return 0;
    ce_heap_t *h = E(heap);
    lock(h);
    size_t v = user_bytes(h, minimum ? h->min_free : h->free_bytes);
    unlock(h);
    return v;
}

size_t multi_heap_free_size(multi_heap_handle_t heap)
{
    return read_counter(heap, false);
}

size_t multi_heap_minimum_free_size(multi_heap_handle_t heap)
{
    return read_counter(heap, true);
}

size_t multi_heap_reset_minimum_free_bytes(multi_heap_handle_t heap)
{
    if (heap == NULL)
        return 0;
    ce_heap_t *h = E(heap);
    lock(h);
    size_t old = user_bytes(h, h->min_free);
    h->min_free = h->free_bytes;
    unlock(h);
    return old;
}

void multi_heap_restore_minimum_free_bytes(multi_heap_handle_t heap,
                                           const size_t new_minimum_free_bytes_value)
{
    if (heap == NULL)
        return;
    ce_heap_t *h = E(heap);
    lock(h);
    /* The caller speaks in user bytes (one block overhead less): convert back.
     * Saturating: a value within the overhead of SIZE_MAX would wrap to a few
     * bytes and lower the mark to 0, where min(mark, value) keeps it. */
#if MH_BLOCK_EXTRA
    size_t ov = overhead(h);
    size_t raw = new_minimum_free_bytes_value > SIZE_MAX - ov ? SIZE_MAX
                                                             : new_minimum_free_bytes_value + ov;
#else
    size_t raw = new_minimum_free_bytes_value;
#endif
    if (raw < h->min_free)
        h->min_free = (uint32_t)raw;
    unlock(h);
}

/* ---- walks: info, walk, dump, containing block ------------------------- */

typedef struct {
    const ce_heap_t *h;
    multi_heap_info_t *info;
} info_ctx_t;

static bool info_cb(void *data, size_t capacity, bool used, void *user)
{
    info_ctx_t *c = user;
    (void)data;
    if (used) {
        c->info->allocated_blocks++;
        c->info->total_allocated_bytes += user_bytes(c->h, capacity);
    } else {
        c->info->free_blocks++;
    }
    c->info->total_blocks++;
    return true;
}

void multi_heap_get_info(multi_heap_handle_t heap, multi_heap_info_t *info)
{
    if (info == NULL)
        return;
    memset(info, 0, sizeof *info);
    if (heap == NULL)
        return;
    ce_heap_t *h = E(heap);
    info_ctx_t c = {h, info};
    lock(h);
    ce_walk(h, info_cb, &c);
    info->total_free_bytes = user_bytes(h, h->free_bytes);
    info->minimum_free_bytes = user_bytes(h, h->min_free);
#if MH_BLOCK_EXTRA
    size_t largest = ce_largest_request(h);
    info->largest_free_block = largest > overhead(h) ? largest - overhead(h) : 0;
#else
    info->largest_free_block = ce_largest_request(h);
#endif
    unlock(h);
}

size_t capheap_heap_largest_request(multi_heap_handle_t heap, size_t alignment)
{
    if (heap == NULL || alignment == 0 || (alignment & (alignment - 1u)) != 0)
        return 0;
    ce_heap_t *h = E(heap);
    lock(h);
    size_t r = ce_largest_request(h);
    unlock(h);
    /* ce_memalign asks take_fit for the block plus al + CE_MIN_BLOCK - unit
     * (always a multiple of the unit) when the alignment exceeds the heap's,
     * and take_fit is monotone: so this is exact. */
    size_t unit = (size_t)h->align_mask + 1u;
    size_t extra = alignment > unit ? alignment + CE_MIN_BLOCK - unit : 0;
    if (extra != 0 && alignment > h->max_request)
        return 0; /* the gap alone is more than any request (not so at the heap's own alignment) */
    /* The smallest block (CE_MIN_BLOCK) plus the gap must fit the block of r. */
    if (extra != 0 && r + CE_HDR < CE_MIN_BLOCK + extra)
        return 0;
#if MH_BLOCK_EXTRA
    extra += overhead(h);
#endif
    return r > extra ? r - extra : 0;
}

typedef struct {
    multi_heap_walker_cb_t fn;
    void *user;
} walk_ctx_t;

static bool walk_cb(void *data, size_t capacity, bool used, void *user)
{
    walk_ctx_t *c = user;
    return c->fn(data, capacity, used ? 1 : 0, c->user);
}

void multi_heap_walk(multi_heap_handle_t heap, multi_heap_walker_cb_t walker_func, void *user_data)
{
    if (heap == NULL || walker_func == NULL)
        return;
    ce_heap_t *h = E(heap);
    walk_ctx_t c = {walker_func, user_data};
    lock(h);
    ce_walk(h, walk_cb, &c);
    unlock(h);
}

static bool dump_cb(void *data, size_t capacity, bool used, void *user)
{
    (void)user;
    capheap_printf("Block %p data, size: %zu bytes, Free: %s\n", data, capacity, used ? "No" : "Yes");
    return true;
}

void multi_heap_dump(multi_heap_handle_t heap)
{
    if (heap == NULL)
        return;
    ce_heap_t *h = E(heap);
    lock(h);
    capheap_printf("Showing data for heap: %p\n", (void *)heap);
    ce_walk(h, dump_cb, NULL);
    unlock(h);
}

typedef struct {
    const ce_heap_t *h;
    uintptr_t target;
    void *found;
} find_ctx_t;

static bool find_cb(void *data, size_t capacity, bool used, void *user)
{
    find_ctx_t *c = user;
    uintptr_t d = (uintptr_t)data;
    if (c->target < d)
        return false; /* blocks are in address order: it was in a header */
    if (c->target - d < capacity) {
        if (used) {
#if POISON_ENABLED
            c->found = (uint8_t *)data + head_bytes(c->h);
#else
            c->found = data;
#endif
        }
        return false;
    }
    return true;
}

void *multi_heap_find_containing_block(multi_heap_handle_t heap, void *ptr)
{
    if (heap == NULL || ptr == NULL)
        return NULL;
    ce_heap_t *h = E(heap);
    find_ctx_t c = {h, (uintptr_t)ptr, NULL};
    lock(h);
    ce_walk(h, find_cb, &c);
    unlock(h);
    return c.found;
}

/* ---- check ------------------------------------------------------------- */

typedef struct {
    const ce_heap_t *h;
    bool print;
    capheap_report_t *first; /* the check's first finding (what NULL until one) */
} check_ctx_t;

/* Each finding of the check: printed (or not), and the first one kept. */
static void check_found(const check_ctx_t *c, const capheap_report_t *r)
{
    if (c->first->what == NULL)
        *c->first = *r;
    capheap_report_corruption(r, c->print, false);
}

static void check_report_cb(const ce_fault_t *f, void *user)
{
    capheap_report_t r = {f->invariant == 9 ? "Invalid data" : "Broken invariant", f->address, f->expected,
                          f->found, f->invariant};
    check_found(user, &r);
}

#if POISON_ENABLED
static bool check_used_cb(void *data, size_t capacity, void *user)
{
    const check_ctx_t *c = user;
    capheap_report_t r;
    if (!poison_fault(c->h, data, capacity, &r))
        return true;
    check_found(c, &r);
    return false;
}
#endif

bool capheap_heap_check_first(multi_heap_handle_t heap, bool print_errors, capheap_report_t *first)
{
    *first = (capheap_report_t){NULL, NULL, 0, 0, 0};
    if (heap == NULL)
        return false;
    ce_heap_t *h = E(heap);
    check_ctx_t c = {h, print_errors, first};
    lock(h);
#if POISON_ENABLED
    bool ok = ce_check(h, check_report_cb, check_used_cb, &c);
#else
    bool ok = ce_check(h, check_report_cb, NULL, &c);
#endif
    unlock(h);
    return ok;
}

bool multi_heap_check(multi_heap_handle_t heap, bool print_errors)
{
    capheap_report_t first;
    return capheap_heap_check_first(heap, print_errors, &first);
}

/* ---- check in steps (capheap/check.h, docs/checks.md) ------------------- */

CE_STATIC_ASSERT(sizeof(ce_check_cursor_t) <= sizeof(((capheap_check_cursor_t *)0)->priv_),
                 "the engine cursor fits the public one");

#define CHECK_FLAG_STARTED 1u /* a step of this pass ran: token_ is set */
#define CHECK_FLAG_CHANGED 2u /* the heap changed during this pass */
#define CHECK_FLAGS_HEAP 0xFFu /* bits above: the all-heaps form's (src/debug/check_step.c) */

/* Tokens mark a heap's state between changes; 0 is "changed". A new token
 * differs from the 65534 before it. The counter is shared by all heaps,
 * whose locks differ, so it needs an atomic add; a CPU without one (RV32IMC,
 * Armv6-M: gcc would call __atomic_fetch_add_4, which no bare-metal C library
 * has) takes the port's critical section (capheap/port.h). */
#if defined(__GNUC__) && defined(__GCC_ATOMIC_INT_LOCK_FREE) && __GCC_ATOMIC_INT_LOCK_FREE == 2
#define MH_ATOMIC_ADD 1
#else
#define MH_ATOMIC_ADD 0
#endif
static uint16_t next_token(void)
{
    static unsigned counter;
    unsigned t;
    do { /* 0 is "changed": drawn again, not mapped to 1 (which gave 1 twice in a row) */
#if MH_ATOMIC_ADD
        t = __atomic_add_fetch(&counter, 1u, __ATOMIC_RELAXED);
#else
        uint32_t state = capheap_port_critical_enter();
        t = ++counter;
        capheap_port_critical_exit(state);
#endif
        t &= 0xFFFFu;
    } while (t == 0);
    return (uint16_t)t;
}

void capheap_check_cursor_init(capheap_check_cursor_t *cursor)
{
    if (cursor != NULL)
        memset(cursor, 0, sizeof *cursor);
}

bool capheap_heap_check_step(multi_heap_handle_t heap, capheap_check_cursor_t *cursor, size_t max_blocks,
                             bool print, bool *done)
{
    capheap_report_t first;
    return capheap_heap_check_step_first(heap, cursor, max_blocks, print, done, &first);
}

bool capheap_heap_check_step_first(multi_heap_handle_t heap, capheap_check_cursor_t *cursor, size_t max_blocks,
                                   bool print, bool *done, capheap_report_t *first)
{
    *first = (capheap_report_t){NULL, NULL, 0, 0, 0};
    if (done != NULL)
        *done = false;
    if (heap == NULL || cursor == NULL)
        return false;
    ce_heap_t *h = E(heap);
    ce_check_cursor_t cc;
    memcpy(&cc, cursor->priv_, sizeof cc);
    if (cursor->heap != heap) { /* a new heap: a new pass */
        memset(&cc, 0, sizeof cc);
        cursor->flags_ &= (uint16_t)~CHECK_FLAGS_HEAP;
        cursor->heap = heap;
    }
    uint32_t budget = max_blocks > UINT32_MAX ? UINT32_MAX : (uint32_t)max_blocks;
    check_ctx_t c = {h, print, first};
    bool pass_done = false;
    uint32_t units = 0;
    lock(h);
    /* A heap without a lock gets the sentinel for the rest of the pass, so
     * that its changes go through lock_w(). Attached by a pass already under
     * way, it was taken away by another pass that ended: changes made since
     * were not recorded, so this is a change, for every pass on the heap. */
    bool attach = false;
#if !MH_ALWAYS_LOCKED
    if (ce_owner(h) == NULL) {
        ce_set_owner(h, CHECK_SENTINEL);
        attach = true;
    }
#endif
    bool changed = false;
    if (cc.phase == 0 || !(cursor->flags_ & CHECK_FLAG_STARTED)) {
        memset(&cc, 0, sizeof cc);
        cursor->flags_ = (uint16_t)((cursor->flags_ & ~CHECK_FLAGS_HEAP) | CHECK_FLAG_STARTED);
    } else {
        /* free_bytes too: a token is 16 bits, and a pass paused while 65535
         * others were drawn could find its own again after a change (a
         * review found it); a change that also leaves free_bytes as it was
         * is needed to hide from both */
        changed = attach || h->check_token != cursor->token_ || h->free_bytes != cc.seen_free;
    }
    /* The token changes only with the heap: a change leaves 0, which the
     * first step to see it replaces with a new token. A step on an unchanged
     * heap leaves it alone, so passes that run side by side see a quiet heap
     * as quiet (when each wrote its own token, each saw the other's step as
     * a change and, resynchronising from the first block, two passes on a
     * big heap never ended: an audit found it). */
    if (attach || h->check_token == 0)
        h->check_token = next_token();
    cursor->token_ = h->check_token;
#if POISON_ENABLED
    bool ok = ce_check_step(h, &cc, budget, changed, check_report_cb, check_used_cb, &c, &pass_done, &units);
#else
    bool ok = ce_check_step(h, &cc, budget, changed, check_report_cb, NULL, &c, &pass_done, &units);
#endif
    cc.seen_free = h->free_bytes; /* (a pass that ended starts afresh: unused) */
#if !MH_ALWAYS_LOCKED
    /* A pass that ends takes the sentinel away; another pass still under way
     * attaches it again at its next step, and counts that as a change. */
    if (pass_done && ce_owner(h) == CHECK_SENTINEL)
        ce_set_owner(h, NULL);
#endif
    unlock(h);
    memcpy(cursor->priv_, &cc, sizeof cc);
    if (changed) {
        cursor->changes++;
        cursor->flags_ |= CHECK_FLAG_CHANGED;
    }
    if (pass_done) {
        cursor->passes++;
        if (!(cursor->flags_ & CHECK_FLAG_CHANGED))
            cursor->clean_passes++;
        cursor->flags_ &= (uint16_t)~CHECK_FLAGS_HEAP;
    }
    if (!ok)
        cursor->errors++;
    cursor->last_step_blocks = units;
    if (units > cursor->max_step_blocks)
        cursor->max_step_blocks = units;
    if (done != NULL)
        *done = pass_done;
    return ok;
}
