/*
 * trace.c - standalone heap tracing (esp_heap_trace.h): every allocation and
 * free heap_caps reports (src/debug/hooks.c) becomes a record in a buffer the
 * application gave to heap_trace_init_standalone().
 *
 * Records. The buffer is an array of heap_trace_record_t; each record carries
 * 32-bit links (capheap_trace_links_t) that thread it on one of two lists:
 *
 *   used:   head (oldest) <-> ... <-> tail (newest)   doubly linked, age order
 *   unused: a stack through links.next
 *
 * An allocation takes an unused record (or, when none is left, evicts the
 * oldest used one and sets has_overflowed, as ESP-IDF does) and appends it.
 * In LEAKS mode a free moves the block's record back to the unused stack; in
 * ALL mode it marks the record freed, notes freed_by and leaves it in place.
 *
 * Lookup on free is O(1) whatever the buffer size: a chained hash map over
 * the records whose block is live. It costs no memory beyond the buffer:
 *
 *   bucket b's head is stored in record b (links.bucket), b < B, where
 *   B = the largest power of two <= capacity, so chains average <= 2 records
 *   even when the buffer is full; chains continue through links.hash_next.
 *
 *   buf[0]         buf[1]         buf[2]  ...
 *   .bucket -> 7   .bucket -> NIL  .bucket -> 2
 *   .hash_next     .hash_next      .hash_next -> 5 ...
 *
 * The hash is a multiplicative (Fibonacci) hash of the address' bits above
 * the heap alignment. Nothing is allocated, ever: no recursion into the heap,
 * and init(NULL, 0) really gives the buffer back.
 *
 * An allocation whose address still has a live record means the block was
 * freed while tracing was stopped; that record is retired first (LEAKS:
 * deleted; ALL: marked freed without a stack), so the trace never shows two
 * live records for one address and a stop/resume does not invent leaks.
 *
 * Stacks. The caller's stack is captured before the lock, through
 * capheap_port_backtrace(), and the library's own frames are dropped: a frame
 * belongs to capheap when its return address lies in the range spanned by
 * the entry points of heap_caps, the debug hooks, this file and the port
 * (computed once; the library's objects are contiguous in a link, static or
 * shared), or in the section that holds the simulator's malloc and operator
 * new wrappers (sim/libc/wrap.h), which may lie elsewhere in the link, with a
 * user's static libraries in between. So alloced_by[0] is the user's call site
 * whatever path (fast path, slow path, calloc, realloc that moves, prefer
 * variants) led to the hook.
 * On the host with frame pointers the walk itself passes over those frames
 * (one pass); elsewhere how many to skip is learned (own_hint), so a walk
 * asks for only a few frames beyond what it returns.
 *
 * Locking. One lock (a spinlock of its own on the host, the firmware's lock
 * hooks on bare metal) guards everything; the recording path holds it for a
 * few dozen instructions. The state is read once without the lock to keep
 * the untraced case cheap, and checked again under it. The dump copies one
 * record under the lock and prints it with the lock released (see
 * heap_trace_dump_caps below).
 *
 * Built without CAPHEAP_TRACING, the API still exists and answers
 * ESP_ERR_NOT_SUPPORTED (bottom of the file).
 */
#include "esp_heap_trace.h"

#include <string.h>
#if CAPHEAP_TRACING && CAPHEAP_LIBC_MALLOC
#include <stdlib.h> /* own_range_init() takes the addresses of malloc, free, realloc, calloc */
#endif

#include "capheap/caps.h"
#include "capheap/port.h"
#include "caps/caps_private.h"
#include "debug/debug_hooks.h"
#include "port/port_private.h"
#include "esp_heap_caps.h"

#if CAPHEAP_TRACING

#define DEPTH CONFIG_HEAP_TRACING_STACK_DEPTH
#define NIL UINT32_MAX

/* Frames of the library's own that can sit between a user call and the port's
 * unwinder (-O0: hook, dispatcher, up to five routing levels, the libc
 * policy), with room to spare. */
#define OWN_FRAMES_MAX 12u

/* Bytes past the highest known entry point still counted as the library's
 * (static helpers after it in the same object). */
#define OWN_TAIL_BYTES 4096u

enum { ST_STOPPED, ST_STARTED, ST_PAUSED };

#if defined(__GNUC__)
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define ACQUIRE(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define RELEASE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#else
#define LOAD(x) (x) /* single-core bare metal: a plain access is atomic */
#define STORE(x, v) ((x) = (v))
#define ACQUIRE(x) (x)
#define RELEASE(x, v) ((x) = (v))
#endif

#if CAPHEAP_PORT_HOST
/* A spinlock, not the port's mutex: it is held for a few dozen instructions
 * on every traced allocation and free, where an uncontended pthread mutex
 * costs about 70 more. Contended, it spins on a plain read, then yields. */
#include <sched.h>
static int trace_lock;
static inline void trace_lock_take(void)
{
    while (__atomic_exchange_n(&trace_lock, 1, __ATOMIC_ACQUIRE) != 0)
        for (unsigned spin = 0; __atomic_load_n(&trace_lock, __ATOMIC_RELAXED) != 0; spin++)
            if (spin >= 64u)
                (void)sched_yield();
}
#define TRACE_LOCK() trace_lock_take()
#define TRACE_UNLOCK() __atomic_store_n(&trace_lock, 0, __ATOMIC_RELEASE)
/* Recursion guard: glibc's backtrace() may call malloc (once), and malloc may
 * be capheap (the preload library). A nested event is not recorded. */
#if defined(__GNUC__)
static __thread int in_trace;
#else
static _Thread_local int in_trace;
#endif
#define GUARD_ENTER() (in_trace++ == 0)
#define GUARD_LEAVE() ((void)in_trace--)
#else
static int trace_lock_token; /* the firmware's lock hooks receive its address */
#define TRACE_LOCK() capheap_port_lock_acquire(&trace_lock_token)
#define TRACE_UNLOCK() capheap_port_lock_release(&trace_lock_token)
#define GUARD_ENTER() 1
#define GUARD_LEAVE() ((void)0)
#endif

static struct {
    heap_trace_record_t *buf;
    uint32_t capacity;
    uint32_t bucket_shift; /* 32 - log2(B); B buckets in buf[0..B-1].links.bucket */
    uint32_t head, tail;   /* used list, oldest first */
    uint32_t unused;       /* unused stack */
    uint32_t count, high_water;
    int state;             /* ST_*: written under the lock, read anywhere */
    bool started_once;     /* a start since the last init: lists valid, mode set */
    uint32_t epoch;        /* bumped by every start and resume (a realloc's late free checks it) */
    bool overflowed;
    heap_trace_mode_t mode;
    size_t total_allocations, total_frees;
    uint32_t hits, misses;
    uint32_t changes;      /* bumped by every change of the records (dump, cursor) */
    uint32_t cursor_index, cursor_record, cursor_changes; /* heap_trace_get's cursor */
    bool cursor_valid;
} T = {NULL, 0, 0, NIL, NIL, NIL, 0, 0, ST_STOPPED, false, 0, false, HEAP_TRACE_ALL, 0, 0, 0, 0, 0, 0, 0, 0, false};

/* ---- which return addresses are the library's ------------------------------- */

/* [0]: capheap's archive; [1]: the simulator's wrappers (sim/libc, sim/libcxx),
 * wherever they lie in the link (empty without them). */
static capheap_code_span_t own[2];
#if CAPHEAP_PORT_HOST && defined(__GNUC__)
/* The linker's bounds of the section that holds every function of
 * capheap_sim_libc and capheap_sim_cxx (CAPHEAP_SIM_TEXT, sim/libc/wrap.h):
 * weak, 0 in a program that links neither. */
extern const char __start_capheap_sim_text[] __attribute__((weak));
extern const char __stop_capheap_sim_text[] __attribute__((weak));
#endif
#if DEPTH > 0 && !CAPHEAP_HOST_FP_WALK
static unsigned own_hint = 2; /* own frames (after capture's) on the deepest path so far, <= OWN_FRAMES_MAX */
#endif

static size_t capture(void **out);

static void own_range_init(void)
{
    if (own[0].span != 0)
        return;
    /* Every object that can be on the stack when the port's unwinder runs, by
     * functions that include its first one (route.c begins with
     * ch_reset_policy, port_host.c with the lock functions) so that static
     * helpers ahead of the public functions are inside the range. */
    const uintptr_t entry[] = {
        (uintptr_t)&ch_reset_policy,           (uintptr_t)&heap_caps_register_failed_alloc_callback,
        (uintptr_t)&capheap_port_lock_acquire, (uintptr_t)&capheap_port_cycle_count,
        (uintptr_t)&heap_caps_malloc,          (uintptr_t)&heap_caps_free,
        (uintptr_t)&heap_caps_realloc,         (uintptr_t)&heap_caps_calloc,
        (uintptr_t)&heap_caps_aligned_alloc,   (uintptr_t)&heap_caps_aligned_calloc,
        (uintptr_t)&heap_caps_aligned_free,    (uintptr_t)&heap_caps_malloc_prefer,
        (uintptr_t)&heap_caps_realloc_prefer,  (uintptr_t)&heap_caps_calloc_prefer,
        (uintptr_t)&heap_caps_malloc_default,  (uintptr_t)&heap_caps_realloc_default,
        (uintptr_t)&capheap_debug_alloc,       (uintptr_t)&capheap_debug_free,
        (uintptr_t)&capheap_debug_realloc,     (uintptr_t)&ch_trace_alloc,
        (uintptr_t)&capheap_debug_alloc_counted, (uintptr_t)&capheap_debug_free_counted,
        (uintptr_t)&ch_trace_free,             (uintptr_t)&capture,
        (uintptr_t)&capheap_port_backtrace,    (uintptr_t)&heap_trace_init_standalone,
        (uintptr_t)&own_range_init,
#if CAPHEAP_LIBC_MALLOC
        (uintptr_t)&malloc,                    (uintptr_t)&free,
        (uintptr_t)&realloc,                   (uintptr_t)&calloc,
#endif
    };
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (size_t i = 0; i < sizeof entry / sizeof entry[0]; i++) {
        lo = entry[i] < lo ? entry[i] : lo;
        hi = entry[i] > hi ? entry[i] : hi;
    }
#if CAPHEAP_PORT_HOST && defined(__GNUC__)
    uintptr_t sim_lo = (uintptr_t)__start_capheap_sim_text, sim_hi = (uintptr_t)__stop_capheap_sim_text;
    if (sim_lo != 0 && sim_hi > sim_lo) {
        own[1].lo = sim_lo;
        own[1].span = sim_hi - sim_lo;
    }
#endif
    own[0].lo = lo;
    own[0].span = hi + OWN_TAIL_BYTES - lo;
}

/* The caller's stack, the library's frames dropped: DEPTH entries, NULL-padded.
 * Never inlined, so that its own return address (into a hook) is always the
 * first frame and can be skipped without looking at it. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static size_t capture(void **out)
{
#if DEPTH > 0 && CAPHEAP_HOST_FP_WALK
    /* The host's frame walk passes over our frames itself: one pass. */
    size_t k = capheap_host_backtrace_beyond(__builtin_frame_address(0), out, DEPTH, own, OWN_FRAMES_MAX);
    for (size_t i = k; i < DEPTH; i++)
        out[i] = NULL;
    return k;
#elif DEPTH > 0
    void *raw[DEPTH + OWN_FRAMES_MAX];
    unsigned hint = LOAD(own_hint);
    size_t want = DEPTH + hint, n, first;
    for (;;) {
        n = capheap_port_backtrace(raw, want, 1);
        first = 0;
        while (first < n && capheap_in_code(own, (uintptr_t)raw[first]))
            first++;
        if (first > hint)
            STORE(own_hint, (unsigned)(first < OWN_FRAMES_MAX ? first : OWN_FRAMES_MAX));
        /* Done unless our budget, not the stack, cut the walk before DEPTH user frames. */
        if (n < want || n - first >= DEPTH || want == DEPTH + OWN_FRAMES_MAX)
            break;
        want = DEPTH + OWN_FRAMES_MAX;
    }
    size_t k = 0;
    for (size_t i = first; i < n && k < DEPTH; i++)
        out[k++] = raw[i];
    for (size_t i = k; i < DEPTH; i++)
        out[i] = NULL;
    return k;
#else
    (void)out;
    return 0;
#endif
}

/* ---- records and the hash map (call with the lock held) ------------------------ */

#define REC(i) (T.buf[(i)])

static inline uint32_t bucket_of(const void *p)
{
    uintptr_t v = (uintptr_t)p;
#if UINTPTR_MAX > 0xFFFFFFFFu
    v ^= v >> 32;
#endif
    /* Heap blocks are 4-aligned: the two low bits carry nothing. */
    uint32_t h = (uint32_t)(v >> 2) * 0x9E3779B1u;
    return T.bucket_shift >= 32u ? 0u : h >> T.bucket_shift;
}

/* The link that holds the live record of p (a bucket head or a hash_next), or NULL. */
static uint32_t *find_in(uint32_t *link, const void *p)
{
    while (*link != NIL) {
        if (REC(*link).address == p)
            return link;
        link = &REC(*link).links.hash_next;
    }
    return NULL;
}

static inline uint32_t *bucket_head(const void *p)
{
    return &REC(bucket_of(p)).links.bucket;
}

static inline uint32_t *find_link(const void *p)
{
    return find_in(bucket_head(p), p);
}

static void hash_insert(uint32_t *head, uint32_t r)
{
    REC(r).links.hash_next = *head;
    *head = r;
}

/* Remove r (whose block is live) from its chain. */
static void hash_remove(uint32_t r)
{
    uint32_t *link = &REC(bucket_of(REC(r).address)).links.bucket;
    while (*link != r)
        link = &REC(*link).links.hash_next;
    *link = REC(r).links.hash_next;
}

static void list_unlink(uint32_t r)
{
    uint32_t prev = REC(r).links.prev, next = REC(r).links.next;
    if (prev != NIL)
        REC(prev).links.next = next;
    else
        T.head = next;
    if (next != NIL)
        REC(next).links.prev = prev;
    else
        T.tail = prev;
    T.count--;
}

static void list_append(uint32_t r)
{
    REC(r).links.prev = T.tail;
    REC(r).links.next = NIL;
    if (T.tail != NIL)
        REC(T.tail).links.next = r;
    else
        T.head = r;
    T.tail = r;
    T.count++;
    if (T.count > T.high_water)
        T.high_water = T.count;
}

static void release(uint32_t r)
{
    REC(r).address = NULL;
    REC(r).links.next = T.unused;
    T.unused = r;
}

/* Every record unused, every bucket empty, counters zero (not the high-water mark). */
static void clear_records(void)
{
    for (uint32_t i = 0; i < T.capacity; i++) {
        heap_trace_record_t *r = &REC(i);
        memset(r, 0, sizeof *r);
        r->links.bucket = NIL;
        r->links.prev = NIL;
        r->links.hash_next = NIL;
        r->links.next = i + 1u < T.capacity ? i + 1u : NIL;
    }
    T.unused = T.capacity > 0 ? 0u : NIL;
    T.head = T.tail = NIL;
    T.count = 0;
    T.overflowed = false;
    T.total_allocations = T.total_frees = 0;
    T.hits = T.misses = 0;
    T.cursor_valid = false;
    T.changes++;
}

/* A live record for a block freed behind the trace's back: retire it. */
static void retire_stale(uint32_t *link)
{
    uint32_t r = *link;
    *link = REC(r).links.hash_next;
    if (T.mode == HEAP_TRACE_LEAKS) {
        list_unlink(r);
        release(r);
    } else {
        REC(r).freed = true;
    }
}

/*
 * Reallocs in flight. A realloc that moves a block inside its heap releases
 * the old address under the heap's lock, and reports its free afterwards
 * (ch_trace_realloc_free): in between, another thread may be given that
 * address, and its allocation reach the trace first. ch_trace_alloc then
 * marks the in-flight entry (and retires the old block's record as stale,
 * if it has one); the realloc's late free sees the mark and leaves the newer
 * record alone (before, it removed it: a live block missing from the trace).
 * The mark is made for every traced allocation at that address, also when
 * the old block had no record (allocated before the start, while paused, or
 * evicted): an audit found the late free removing the new record then.
 *
 * Two rules keep the late free exact (a TSan soak of the threaded test found
 * both broken, one miss in about four runs):
 * 1. The entry is named by the token ch_trace_realloc_begin returned, not by
 *    the address: two entries can hold one address (a realloc moved a away,
 *    another thread was given a and reallocs it in turn), and the first
 *    match was not always the caller's.
 * 2. Releasing the entry and freeing the old record is one step under the
 *    trace lock: between the two, another thread given the address could
 *    trace its allocation, and the late free then removed that record.
 * An allocation marks only the entries not marked yet: an earlier entry for
 * its address was marked by the allocation that reused it first. The
 * entries are written under the trace lock; `flying` lets the common case
 * (no realloc in flight) skip the table.
 *
 * A realloc that begins while tracing is stopped (no entry: nothing to mark
 * then, and no lock taken) or finds the table full gets an epoch token
 * instead: the count of starts and resumes. If the trace was started or
 * resumed before its late free, the old address may have been given to
 * another thread and traced meanwhile, with nothing to mark: the late free
 * is dropped, and the old block's record, if it had one (a resume keeps the
 * records), stays until an allocation at that address retires it. Else the
 * late free is a plain free (the concurrency audit that found the start
 * case saw the plain free remove the new record).
 */
#define EPOCH_TOKEN 0x80000000u /* a token with this bit is an epoch, not an entry */
#define INFLIGHT 16
static struct {
    void *addr;
    bool superseded; /* an allocation at addr was traced after the release */
    bool retired;    /* ... and retired the old block's record (the late free's hit) */
    bool moving;     /* a move out of the block's heap (ch_trace_move_begin), by task mover */
    bool applied;    /* ... whose free the mover's own allocation applied early */
    void *mover;
} inflight[INFLIGHT];
static uint32_t flying;

/* A free entry of the table for old (moving: a move out of its heap by task
 * mover), under the trace lock: its token, or fallback if the table is full. */
static unsigned inflight_take(void *old, bool moving, void *mover, unsigned fallback)
{
    unsigned token = fallback;
    TRACE_LOCK();
    for (unsigned i = 0; i < INFLIGHT; i++)
        if (inflight[i].addr == NULL) {
            inflight[i].addr = old;
            inflight[i].superseded = false;
            inflight[i].retired = false;
            inflight[i].moving = moving;
            inflight[i].applied = false;
            inflight[i].mover = mover;
            STORE(flying, flying + 1u);
            token = i + 1u;
            break;
        }
    TRACE_UNLOCK();
    return token;
}

unsigned ch_trace_realloc_begin(void *old)
{
    if (old == NULL)
        return 0;
    /* the epoch before the state: a start's new epoch is stored after its
     * state (release), so a begin that sees it sees the trace started */
    unsigned token = EPOCH_TOKEN | (ACQUIRE(T.epoch) & ~EPOCH_TOKEN);
    int state = LOAD(T.state);
    if (state != ST_STARTED && state != ST_PAUSED)
        return token;
    return inflight_take(old, false, NULL, token);
}

/* Under the trace lock: release token's entry; true if it was marked, with
 * *retired. A token from before a fork, an epoch token or 0 holds nothing. */
static bool inflight_release(unsigned token, bool *retired)
{
    *retired = false;
    if (token == 0 || token > INFLIGHT || inflight[token - 1u].addr == NULL)
        return false;
    bool superseded = inflight[token - 1u].superseded;
    *retired = inflight[token - 1u].retired;
    inflight[token - 1u].addr = NULL;
    STORE(flying, flying - 1u);
    return superseded;
}

void ch_trace_realloc_cancel(unsigned token)
{
    if (token == 0 || (token & EPOCH_TOKEN) != 0)
        return;
    bool retired;
    TRACE_LOCK();
    /* The block was never released, so nothing can have been traced at its
     * address meanwhile: the entry goes, and nothing is counted. */
    (void)inflight_release(token, &retired);
    TRACE_UNLOCK();
}

/* Under the trace lock: an allocation at ptr is being traced; retired: it
 * found a stale record there. */
static void supersede(const void *ptr, bool retired)
{
    if (flying == 0)
        return;
    for (size_t i = 0; i < INFLIGHT; i++)
        if (inflight[i].addr == ptr && !inflight[i].superseded) {
            inflight[i].superseded = true;
            inflight[i].retired = retired;
        }
}

/* ---- moves out of a heap ------------------------------------------------------- */

/*
 * A realloc that moves a block out of its heap allocates the new block
 * before it frees the old one (the hooks see them in that order). In LEAKS
 * mode on a full buffer the new block's record would evict the oldest
 * record, a live block's, although no more blocks are live than before
 * (an audit found it; ESP-IDF records the free first). So the move is
 * announced: when the mover's own allocation finds the buffer full, it
 * applies the old block's free first, into the slot it then takes, and the
 * move's later free of the old block is not applied again. Only the
 * mover's allocation (the same task) may apply it: another's could come
 * before a failure that keeps the old block. The entries share the
 * in-flight table; a move that finds it full is traced as before.
 */
static inline void free_locked(void *ptr, void *const *stack, bool all, bool keep);

unsigned ch_trace_move_begin(void *old)
{
    if (old == NULL || LOAD(T.state) != ST_STARTED || LOAD(T.mode) != HEAP_TRACE_LEAKS)
        return 0;
    return inflight_take(old, true, capheap_port_current_task(), 0);
}

/* After the move's free of the old block, or after its allocation failed.
 * (The entry is checked to be this move's: a fork's child empties the
 * table, and another move may have taken the slot since.) */
void ch_trace_move_end(void *old, unsigned token)
{
    if (token == 0 || token > INFLIGHT)
        return;
    TRACE_LOCK();
    if (inflight[token - 1u].addr == old && inflight[token - 1u].moving &&
        inflight[token - 1u].mover == capheap_port_current_task()) {
        inflight[token - 1u].addr = NULL;
        STORE(flying, flying - 1u);
    }
    TRACE_UNLOCK();
}

/* Under the trace lock, LEAKS mode, the buffer full: apply the free of a
 * block the calling task is moving, if it has a record; true if it did. */
static bool apply_move_locked(void)
{
    void *task = capheap_port_current_task();
    for (unsigned i = 0; i < INFLIGHT; i++)
        if (inflight[i].addr != NULL && inflight[i].moving && !inflight[i].applied && inflight[i].mover == task &&
            find_link(inflight[i].addr) != NULL) {
            free_locked(inflight[i].addr, NULL, false, true); /* the mover is this task */
            inflight[i].applied = true;
            return true;
        }
    return false;
}

/* Under the trace lock: is ptr's free already applied by its move? */
static bool move_applied_locked(const void *ptr)
{
    for (unsigned i = 0; i < INFLIGHT; i++)
        if (inflight[i].addr == ptr && inflight[i].moving && inflight[i].applied)
            return true;
    return false;
}

/* ---- the hooks --------------------------------------------------------------- */

void ch_trace_alloc(void *ptr, size_t size, uint32_t caps)
{
    (void)caps;
    if (LOAD(T.state) != ST_STARTED || ptr == NULL)
        return;
    if (!GUARD_ENTER()) {
        GUARD_LEAVE();
        return;
    }
    void *stack[DEPTH > 0 ? DEPTH : 1];
    (void)capture(stack);
    uint32_t ccount = capheap_port_cycle_count() & ~3u;

    TRACE_LOCK();
    if (T.state == ST_STARTED) {
        uint32_t *head = bucket_head(ptr);
        uint32_t *stale = find_in(head, ptr);
        supersede(ptr, stale != NULL);
        if (stale != NULL)
            retire_stale(stale);
        if (T.unused == NIL && flying != 0 && T.mode == HEAP_TRACE_LEAKS)
            (void)apply_move_locked(); /* a slot for it, if this task is moving a block */
        uint32_t r = T.unused;
        if (r != NIL) {
            T.unused = REC(r).links.next;
        } else { /* full: the oldest record goes (ESP-IDF's choice) */
            r = T.head;
            if (!REC(r).freed)
                hash_remove(r);
            list_unlink(r);
            T.overflowed = true;
        }
        heap_trace_record_t *rec = &REC(r);
        rec->ccount = ccount;
        rec->address = ptr;
        rec->size = size;
        rec->freed = false;
#if DEPTH > 0
        memcpy(rec->alloced_by, stack, sizeof rec->alloced_by);
        memset(rec->freed_by, 0, sizeof rec->freed_by);
#endif
        list_append(r);
        hash_insert(head, r);
        T.total_allocations++;
        T.changes++;
    }
    TRACE_UNLOCK();
    GUARD_LEAVE();
}

/*
 * What the record the calling thread's last traced free found said of its
 * block, for ch_trace_describe(): the free is recorded before the heap checks
 * the block (ESP-IDF's order), so a free the heap then rejects (a tail canary
 * overwritten: an overflow found at free) is described after its record went,
 * and the allocation's time stamp and callers would be missing from the one
 * report that most needs them. Host: per thread, so the report's own free is
 * the one kept; bare metal: the last free's. A copy, not the slot's index: a
 * released slot keeps no address to check it by.
 */
typedef struct {
    uint32_t ccount;
#if DEPTH > 0
    void *alloced_by[DEPTH];
#endif
} just_freed_t;
/* The block's address apart (debug_hooks.h: heap_caps clears it inline) */
#if CAPHEAP_PORT_HOST && defined(__GNUC__)
static __thread just_freed_t just_freed __attribute__((tls_model("initial-exec")));
__thread const void *ch_trace_freed_address __attribute__((tls_model("initial-exec")));
#elif CAPHEAP_PORT_HOST
static _Thread_local just_freed_t just_freed;
static _Thread_local const void *ch_trace_freed_address;
#else
static just_freed_t just_freed;
static const void *ch_trace_freed_address;
#endif

/* What describe prints of record r (under the trace lock). */
static inline just_freed_t summary_of(uint32_t r)
{
    just_freed_t s;
    s.ccount = REC(r).ccount;
#if DEPTH > 0
    memcpy(s.alloced_by, REC(r).alloced_by, sizeof s.alloced_by);
#endif
    return s;
}

/* Under the trace lock, tracing started or paused: the free of ptr; with
 * keep, a copy of the record it releases (just_freed: a plain free's, whose
 * heap checks the block after this). */
static inline void free_locked(void *ptr, void *const *stack, bool all, bool keep)
{
    T.total_frees++;
    uint32_t *link = find_link(ptr);
    if (link == NULL) {
        T.misses++;
        return;
    }
    uint32_t r = *link;
    T.hits++;
    if (keep) {
        ch_trace_freed_address = ptr;
        just_freed = summary_of(r);
    }
    *link = REC(r).links.hash_next;
    if (T.mode == HEAP_TRACE_LEAKS) {
        list_unlink(r);
        release(r);
    } else {
        REC(r).freed = true;
#if DEPTH > 0
        if (all)
            memcpy(REC(r).freed_by, stack, sizeof REC(r).freed_by);
#endif
    }
    (void)stack;
    (void)all;
    T.changes++;
}

void ch_trace_free(void *ptr)
{
    int state = LOAD(T.state);
    if ((state != ST_STARTED && state != ST_PAUSED) || ptr == NULL)
        return;
    if (!GUARD_ENTER()) {
        GUARD_LEAVE();
        return;
    }
    void *stack[DEPTH > 0 ? DEPTH : 1];
    bool all = LOAD(T.mode) == HEAP_TRACE_ALL; /* LEAKS mode has no use for freed_by */
    if (all)
        (void)capture(stack);
    TRACE_LOCK();
    if ((T.state == ST_STARTED || T.state == ST_PAUSED) && (flying == 0 || !move_applied_locked(ptr)))
        free_locked(ptr, stack, all, true);
    TRACE_UNLOCK();
    GUARD_LEAVE();
}

#if !(CAPHEAP_PORT_HOST && defined(__GNUC__))
void ch_trace_free_done(void)
{
    ch_trace_freed_address = NULL;
}
#endif

/* A realloc's late free of old; token: ch_trace_realloc_begin's. The entry
 * is released and the free applied in one hold of the lock (the file's
 * "Reallocs in flight" says why). */
void ch_trace_realloc_free(void *old, unsigned token)
{
    int state = LOAD(T.state);
    bool tracing = (state == ST_STARTED || state == ST_PAUSED) && old != NULL;
    if (!tracing && (token == 0 || (token & EPOCH_TOKEN) != 0))
        return; /* no entry to release */
    bool guarded = GUARD_ENTER();
    void *stack[DEPTH > 0 ? DEPTH : 1];
    bool all = LOAD(T.mode) == HEAP_TRACE_ALL;
    if (guarded && tracing && all)
        (void)capture(stack);

    TRACE_LOCK();
    bool retired;
    bool superseded = inflight_release(token, &retired);
    /* an epoch token from before a start or resume: the address may be another block's now */
    bool stale = (token & EPOCH_TOKEN) != 0 && (token & ~EPOCH_TOKEN) != (T.epoch & ~EPOCH_TOKEN);
    if (guarded && tracing && !stale && (T.state == ST_STARTED || T.state == ST_PAUSED)) {
        if (!superseded) {
            free_locked(old, stack, all, false); /* the heap checked old before it moved it */
        } else {
            /* the free happened: it found its record (the one ch_trace_alloc
             * retired), or there was none, as free_locked would have found */
            T.total_frees++;
            if (retired)
                T.hits++;
            else
                T.misses++;
        }
    }
    TRACE_UNLOCK();
    GUARD_LEAVE();
}

/* ---- the API ---------------------------------------------------------------------- */

esp_err_t heap_trace_init_standalone(heap_trace_record_t *record_buffer, size_t num_records)
{
    if ((record_buffer == NULL) != (num_records == 0))
        return ESP_ERR_INVALID_ARG;
    if (num_records >= (size_t)NIL)
        return ESP_ERR_INVALID_ARG;
    own_range_init();
#if DEPTH > 0
    /* The first unwinding may load libraries and allocate (glibc): do it now, untraced. */
    void *warm[DEPTH];
    (void)capture(warm);
#endif
    esp_err_t err = ESP_OK;
    TRACE_LOCK();
    if (T.state != ST_STOPPED) {
        err = ESP_ERR_INVALID_STATE;
    } else {
        T.buf = record_buffer;
        T.capacity = (uint32_t)num_records;
        uint32_t log2b = 0;
        while (log2b < 31u && (2u << log2b) <= T.capacity)
            log2b++;
        T.bucket_shift = 32u - log2b;
        T.high_water = 0;
        T.started_once = false;
        clear_records();
    }
    TRACE_UNLOCK();
    return err;
}

esp_err_t heap_trace_init_tohost(void)
{
    return ESP_ERR_NOT_SUPPORTED;
}

esp_err_t heap_trace_start(heap_trace_mode_t mode)
{
    if (mode != HEAP_TRACE_ALL && mode != HEAP_TRACE_LEAKS)
        return ESP_ERR_INVALID_ARG;
    esp_err_t err = ESP_OK;
    TRACE_LOCK();
    if (T.buf == NULL) {
        err = ESP_ERR_INVALID_STATE;
    } else {
        clear_records();
        STORE(T.mode, mode);
        T.started_once = true;
        STORE(T.state, ST_STARTED);
        RELEASE(T.epoch, T.epoch + 1u); /* after the state: ch_trace_realloc_begin */
    }
    TRACE_UNLOCK();
    return err;
}

/* A transition allowed only from the states in the mask (bit per ST_*). */
static esp_err_t transition(unsigned from_mask, int to)
{
    esp_err_t err = ESP_OK;
    TRACE_LOCK();
    if (!T.started_once || (from_mask & (1u << T.state)) == 0) {
        err = ESP_ERR_INVALID_STATE;
    } else {
        STORE(T.state, to);
        if (to == ST_STARTED)
            RELEASE(T.epoch, T.epoch + 1u); /* resumed: allocations are traced again */
    }
    TRACE_UNLOCK();
    return err;
}

esp_err_t heap_trace_stop(void)
{
    return transition((1u << ST_STARTED) | (1u << ST_PAUSED), ST_STOPPED);
}

esp_err_t heap_trace_alloc_pause(void)
{
    return transition((1u << ST_STARTED) | (1u << ST_STOPPED), ST_PAUSED);
}

esp_err_t heap_trace_resume(void)
{
    return transition((1u << ST_STOPPED) | (1u << ST_PAUSED), ST_STARTED);
}

size_t heap_trace_get_count(void)
{
    TRACE_LOCK();
    size_t n = T.count;
    TRACE_UNLOCK();
    return n;
}

/* Record index i of the used list (i < count), through the cursor. Lock held. */
static uint32_t record_at(uint32_t i)
{
    uint32_t from_head = i, from_tail = T.count - 1u - i;
    uint32_t r, at;
    if (T.cursor_valid && T.cursor_changes == T.changes &&
        (T.cursor_index > i ? T.cursor_index - i : i - T.cursor_index) < (from_head < from_tail ? from_head : from_tail)) {
        r = T.cursor_record;
        at = T.cursor_index;
    } else if (from_head <= from_tail) {
        r = T.head;
        at = 0;
    } else {
        r = T.tail;
        at = T.count - 1u;
    }
    for (; at < i; at++)
        r = REC(r).links.next;
    for (; at > i; at--)
        r = REC(r).links.prev;
    T.cursor_valid = true;
    T.cursor_index = i;
    T.cursor_record = r;
    T.cursor_changes = T.changes;
    return r;
}

esp_err_t heap_trace_get(size_t index, heap_trace_record_t *record)
{
    if (record == NULL)
        return ESP_ERR_INVALID_ARG;
    esp_err_t err = ESP_OK;
    TRACE_LOCK();
    if (index >= T.count)
        err = ESP_ERR_INVALID_ARG;
    else
        *record = REC(record_at((uint32_t)index));
    TRACE_UNLOCK();
    return err;
}

esp_err_t heap_trace_summary(heap_trace_summary_t *summary)
{
    if (summary == NULL)
        return ESP_ERR_INVALID_ARG;
    TRACE_LOCK();
    summary->mode = T.mode;
    summary->total_allocations = T.total_allocations;
    summary->total_frees = T.total_frees;
    summary->count = T.count;
    summary->capacity = T.capacity;
    summary->high_water_mark = T.high_water;
    summary->has_overflowed = T.overflowed ? 1u : 0u;
    summary->total_hashmap_hits = T.hits;
    summary->total_hashmap_miss = T.misses;
    TRACE_UNLOCK();
    return ESP_OK;
}

/* ---- dump --------------------------------------------------------------------- */

/* MALLOC_CAP_INTERNAL / MALLOC_CAP_SPIRAM of the heap holding p (0 if none). */
static uint32_t memory_kind(const void *p)
{
    capheap_heap_desc_t d; /* in one step: a heap added meanwhile shifts the positions */
    if (!capheap_heap_find_desc(p, &d))
        return 0;
    uint32_t all = 0;
    for (size_t k = 0; k < SOC_MEMORY_TYPE_NO_PRIOS; k++)
        all |= d.caps[k];
    return all & (MALLOC_CAP_INTERNAL | MALLOC_CAP_SPIRAM);
}

#if DEPTH > 0
static void print_stack(void *const *frames)
{
    for (size_t j = 0; j < (size_t)DEPTH && frames[j] != NULL; j++)
        capheap_printf("%s%p", j > 0 ? ":" : "", frames[j]);
}
#endif

/*
 * The dump holds the trace lock only to copy one record (O(1) with the
 * cursor while nothing changes), never while printing: a dump on a slow
 * console can take seconds, and ESP-IDF's, which holds its critical section
 * throughout, stalls every allocation (and on a chip, interrupts) meanwhile.
 * A snapshot of the whole buffer would need a second buffer, i.e. memory we
 * may not allocate here. The price: records added or removed during the dump
 * may be missed or printed twice; the dump says so at the end, as ESP-IDF's
 * does for the same reason.
 */
void heap_trace_dump_caps(const uint32_t caps)
{
    bool want_internal = (caps & MALLOC_CAP_INTERNAL) != 0, want_psram = (caps & MALLOC_CAP_SPIRAM) != 0;
    TRACE_LOCK();
    uint32_t count = T.count, capacity = T.capacity, changes = T.changes;
    size_t buckets = capacity == 0 ? 0u : (size_t)1 << (32u - T.bucket_shift);
    heap_trace_mode_t mode = T.mode;
    TRACE_UNLOCK();

    capheap_printf("====== Heap Trace: %u records (%u capacity) ======\n", (unsigned)count, (unsigned)capacity);
    size_t live_bytes = 0, live_allocs = 0;
    for (uint32_t i = 0; i < count; i++) {
        heap_trace_record_t rec = {0};
        bool have = false;
        TRACE_LOCK();
        if (i < T.count) {
            rec = REC(record_at(i));
            have = true;
        }
        TRACE_UNLOCK();
        if (!have)
            break;
        if (rec.address == NULL)
            continue;
        uint32_t kind = memory_kind(rec.address);
        bool internal = (kind & MALLOC_CAP_INTERNAL) != 0, psram = (kind & MALLOC_CAP_SPIRAM) != 0;
        if (!((want_internal && want_psram) || (want_internal && internal) || (want_psram && psram)))
            continue;
        const char *label = psram ? ",    PSRAM" : internal ? ", Internal" : "";
        capheap_printf("%6zu bytes (@ %p%s) allocated CPU %u ccount 0x%08x", rec.size, rec.address, label,
                       (unsigned)(rec.ccount & 1u), (unsigned)(rec.ccount & ~3u));
#if DEPTH > 0
        if (rec.alloced_by[0] != NULL) {
            capheap_printf(" caller ");
            print_stack(rec.alloced_by);
        }
#endif
        if (!rec.freed) {
            live_bytes += rec.size;
            live_allocs++;
            capheap_printf("\n");
        } else {
#if DEPTH > 0
            if (rec.freed_by[0] != NULL) {
                capheap_printf("\nfreed by ");
                print_stack(rec.freed_by);
                capheap_printf("\n");
                continue;
            }
#endif
            capheap_printf(" freed\n");
        }
    }

    heap_trace_summary_t s;
    (void)heap_trace_summary(&s);
    TRACE_LOCK();
    bool changed = T.changes != changes;
    TRACE_UNLOCK();
    capheap_printf("====== Heap Trace Summary ======\n");
    if (mode == HEAP_TRACE_ALL) {
        capheap_printf("Mode: Heap Trace All\n");
        capheap_printf("%zu bytes alive in trace (%zu/%zu allocations)\n", live_bytes, live_allocs, s.count);
    } else {
        capheap_printf("Mode: Heap Trace Leaks\n");
        capheap_printf("%zu bytes 'leaked' in trace (%zu allocations)\n", live_bytes, live_allocs);
    }
    capheap_printf("records: %zu (%zu capacity, %zu high water mark)\n", s.count, s.capacity, s.high_water_mark);
    capheap_printf("hashmap: %zu capacity (%u hits, %u misses)\n",
                   buckets, (unsigned)s.total_hashmap_hits,
                   (unsigned)s.total_hashmap_miss);
    capheap_printf("total allocations: %zu\n", s.total_allocations);
    capheap_printf("total frees: %zu\n", s.total_frees);
    if (changed)
        capheap_printf("(NB: New entries were traced while dumping, so trace dump may have duplicate entries.)\n");
    if (s.has_overflowed)
        capheap_printf("(NB: Internal Buffer has overflowed, so trace data is incomplete.)\n");
    capheap_printf("================================\n");
}

void heap_trace_dump(void)
{
    heap_trace_dump_caps(MALLOC_CAP_INTERNAL | MALLOC_CAP_SPIRAM);
}

/* capheap_describe_block(): print ", ccount 0x..., caller a:b" for the live
 * record of p, if any. Called on a corruption report, possibly with a heap
 * lock held: the trace lock is only tried, never waited for. On the host the
 * buffer is tested under it: heap_trace_init_standalone() sets the buffer
 * under the lock while other threads may describe (a concurrency audit's
 * ThreadSanitizer run; bare metal keeps its plain test before the lock). */
#if DEPTH > 0
static void print_stack(void *const *frames);
#endif

void ch_trace_describe(const void *p)
{
#if CAPHEAP_PORT_HOST
    if (__atomic_exchange_n(&trace_lock, 1, __ATOMIC_ACQUIRE) != 0)
        return;
    if (T.buf == NULL) {
        TRACE_UNLOCK();
        return;
    }
#else
    if (T.buf == NULL)
        return;
    TRACE_LOCK();
#endif
    uint32_t *link = T.bucket_shift < 32u || T.capacity != 0 ? find_link(p) : NULL;
    just_freed_t rec;
    bool found = link != NULL;
    if (found) {
        rec = summary_of(*link);
    } else if (ch_trace_freed_address == p && p != NULL) {
        found = true; /* the block whose free this thread recorded last: a rejected free's */
        rec = just_freed;
    }
    TRACE_UNLOCK();
    if (!found)
        return;
    capheap_printf(", ccount 0x%08x", (unsigned)(rec.ccount & ~3u));
#if DEPTH > 0
    if (rec.alloced_by[0] != NULL) {
        capheap_printf(", caller ");
        print_stack(rec.alloced_by);
    }
#endif
}

/* fork (capheap_caps_lock_all and friends): no thread may be inside the
 * tracer while the process forks; the child starts with the lock free. */
void ch_trace_fork_prepare(void)
{
    TRACE_LOCK();
}

void ch_trace_fork_parent(void)
{
    TRACE_UNLOCK();
}

void ch_trace_fork_child(void)
{
    /* The reallocs in flight were other threads', which the child does not have. */
    memset(inflight, 0, sizeof inflight);
    flying = 0;
#if CAPHEAP_PORT_HOST
    __atomic_store_n(&trace_lock, 0, __ATOMIC_RELAXED);
#else
    TRACE_UNLOCK();
#endif
}

#else /* !CAPHEAP_TRACING: ESP-IDF's header promise, kept */

esp_err_t heap_trace_init_standalone(heap_trace_record_t *record_buffer, size_t num_records)
{
    (void)record_buffer;
    (void)num_records;
    return ESP_ERR_NOT_SUPPORTED;
}

esp_err_t heap_trace_init_tohost(void)
{
    return ESP_ERR_NOT_SUPPORTED;
}

esp_err_t heap_trace_start(heap_trace_mode_t mode)
{
    (void)mode;
    return ESP_ERR_NOT_SUPPORTED;
}

esp_err_t heap_trace_stop(void)
{
    return ESP_ERR_NOT_SUPPORTED;
}

esp_err_t heap_trace_alloc_pause(void)
{
    return ESP_ERR_NOT_SUPPORTED;
}

esp_err_t heap_trace_resume(void)
{
    return ESP_ERR_NOT_SUPPORTED;
}

size_t heap_trace_get_count(void)
{
    return 0;
}

esp_err_t heap_trace_get(size_t index, heap_trace_record_t *record)
{
    (void)index;
    (void)record;
    return ESP_ERR_NOT_SUPPORTED;
}

void heap_trace_dump(void)
{
}

void heap_trace_dump_caps(const uint32_t caps)
{
    (void)caps;
}

esp_err_t heap_trace_summary(heap_trace_summary_t *summary)
{
    (void)summary;
    return ESP_ERR_NOT_SUPPORTED;
}

#endif /* CAPHEAP_TRACING */
