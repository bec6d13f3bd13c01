/*
 * registry.c - the list of heaps: registration at start-up (from a chip's
 * memory map) and at run time, the search orders, and lookup by address.
 *
 * Start-up (spec 2.2-2.3) in one streaming pass, without the stack arrays
 * ESP-IDF sizes by the worst case: each chip region, in table order, is cut by
 * the reservations that overlap it (lowest first: trim, hole punch, or drop);
 * each surviving piece either extends the pending heap (same type, same
 * start-up-stack flag, contiguous: ESP-IDF's coalescing of consecutive
 * entries) or flushes it into a descriptor. Reservations are rounded outwards
 * to 4 bytes and must not overlap; pieces of 16 bytes or less are dropped.
 * The cost is O(regions x reservations^2), once, at boot.
 *
 * Run time (spec 1.2, 2.5): ESP-IDF's overlap rule, a static descriptor, and
 * the new heap goes to the head of the search order. After start-up its
 * low-water mark starts at 0, so it does not inflate the minimum-free sum.
 *
 * A descriptor is counted by publish(); compact (-Os) builds insert it into
 * the search order there, before the count. Speed builds end every change
 * with ch_reindex(): the search order, the address index and an empty route
 * cache. All are published with atomic stores (caps_private.h says why
 * readers need no lock).
 */
#include <string.h>

#include "caps/caps_private.h"
#include "capheap/task_info.h"
#include "capheap/check.h"
#include "capheap/report.h"
#include "capheap/heap.h"
#include "debug/debug_hooks.h"

/* Zero-initialised (.bss: no initial image in a firmware's flash); the one field
 * that starts non-zero lives apart. */
ch_state_t ch_g;
size_t ch_size_max = SIZE_MAX / 2;

#if CAPHEAP_PORT_HOST
capheap_lock_t ch_registry_lock = {PTHREAD_MUTEX_INITIALIZER};
#else
int ch_registry_lock;
#endif

#if CH_LOCK_CALLS /* (caps_private.h) */
void ch_lock(void)
{
    capheap_port_lock_acquire(&ch_registry_lock);
}

void ch_unlock(void)
{
    capheap_port_lock_release(&ch_registry_lock);
}
#endif

/* ---- indexes ------------------------------------------------------------- */

static size_t span(const ch_heap_t *h)
{
#if CH_COMPACT
    return h->span; /* set with the bounds (new_descriptor) */
#else
    return (size_t)(h->end - h->start); /* h->span is 0 until the heap is registered */
#endif
}

/* Does heap a come before heap b in ESP-IDF's list? Only asked for a newer
 * heap a (a > b: the sorts insert heaps in creation order), so "later first"
 * settles every tie: runtime heaps sit at the head, newest first; start-up
 * heaps follow by ascending size, equal sizes later first. */
static bool before(uint8_t a, uint8_t b)
{
    const ch_heap_t *x = &ch_g.heaps[a], *y = &ch_g.heaps[b];
    return x->runtime || (!y->runtime && span(x) <= span(y));
}

#if CH_COMPACT
/* Count the newest descriptor, ch_g.n, in. Compact builds keep no index but
 * order[], and insert each heap there once, as it is counted: one step of
 * an insertion sort in creation order, so order[] is what the speed builds'
 * full sort gives (a heap's runtime flag and bounds are set before, and never
 * change). A start-up heap never goes ahead of a runtime one, so a failed
 * start-up, which uncounts its heaps, leaves the runtime heaps' places as
 * they were. The place is written before the count is published. */
static void publish(void)
{
    uint8_t n = ch_g.n, *o = &ch_g.order[n];
    while (o != ch_g.order && before(n, o[-1])) {
        CH_STORE(*o, o[-1]);
        o--;
    }
    CH_STORE(*o, n);
    CH_RELEASE(ch_g.n, (uint8_t)(n + 1u)); /* the descriptor is complete */
}

/* Nothing to rebuild after a change: order[] is kept by publish(). */
static void ch_reindex(void)
{
}

/* Compact builds: no address index, one pass over the descriptors, O(H) and
 * no lock (a descriptor is complete before ch_g.n counts it, and its span
 * before its handle is published). Heaps are nested or apart, never partly
 * overlapping, and a heap is only ever added inside an older one, never
 * around it (heap_caps_check_add_region_allowed refuses a region that
 * contains a heap; the start-up heaps are carved around the heaps added
 * before them; no heap goes into a start-up stack region not yet
 * registered): of the heaps holding p, the newest is the innermost one (the
 * smallest), the heap the speed builds' index finds. So the search keeps
 * the last one it meets, with no span to compare (-8 B on Cortex-M4). */
ch_heap_t *ch_find_slow(uintptr_t p)
{
    ch_heap_t *best = NULL;
    ch_heap_t *c = ch_g.heaps;
    for (size_t n = CH_ACQUIRE(ch_g.n); n-- > 0; c++) { /* counted down: no index besides c */
        if (CH_ACQUIRE(c->heap) != NULL && p - c->start < c->span)
            best = c;
    }
    return best;
}
#else
static bool addr_before(uint8_t a, uint8_t b)
{
    const ch_heap_t *x = &ch_g.heaps[a], *y = &ch_g.heaps[b];
    /* By start; a nested heap starting where its host starts comes after it,
     * so the last start <= p is the innermost candidate. */
    return x->start != y->start ? x->start < y->start : x->end > y->end;
}

static void insert_sorted(uint8_t *arr, size_t n, uint8_t v, bool (*less)(uint8_t, uint8_t))
{
    size_t i = n;
    while (i > 0 && less(v, arr[i - 1])) {
        CH_STORE(arr[i], arr[i - 1]);
        i--;
    }
    CH_STORE(arr[i], v);
}

static void publish(void)
{
    CH_RELEASE(ch_g.n, (uint8_t)(ch_g.n + 1u)); /* the descriptor is complete; ch_reindex sorts */
}

/* Rebuild order/by_addr (and dflt), empty the route and page caches (under ch_lock). */
static void ch_reindex(void)
{
    /* Readers search addr[] and by_addr[] without the lock: mark the rebuild
     * (odd), so that one reading the two half-rebuilt takes the locked scan.
     * Read half-rebuilt, by_addr[] could name a host heap for a pointer of
     * the heap nested in it, which passes the bounds check: a valid free
     * was reported as an interior pointer while a heap was being added (a
     * concurrency audit reproduced it). */
    uint32_t gen = ch_g.index_gen;
    CH_STORE(ch_g.index_gen, gen + 1u);
    CH_FENCE_RELEASE(); /* the odd count before any store of the rebuild */
    size_t n_addr = 0;
    for (uint8_t i = 0; i < ch_g.n; i++) {
        insert_sorted(ch_g.order, i, i, before);
        if (ch_g.heaps[i].heap != NULL)
            insert_sorted(ch_g.by_addr, n_addr++, i, addr_before);
    }
    size_t padded = 1;
    while (padded < n_addr)
        padded *= 2;
    for (size_t i = 0; i < 2 * CAPHEAP_MAX_HEAPS; i++)
        CH_STORE(ch_g.addr[i], i < n_addr ? ch_g.heaps[ch_g.by_addr[i]].start : UINTPTR_MAX);
    CH_STORE(ch_g.n_addr, (uint8_t)n_addr);
    CH_STORE(ch_g.step, (uint8_t)(padded / 2));
    CH_RELEASE(ch_g.index_gen, gen + 2u); /* the index is whole again */
    for (size_t i = 0; i < ch_g.n; i++) {
        ch_heap_t *h = &ch_g.heaps[i];
        /* A heap at address 0 (instruction TCM) is never cached either: its
         * first page holds NULL, which free and realloc must see as NULL,
         * and the fast paths do not test for it. Its pointers take the
         * binary search, which does. */
        uintptr_t fspan = h->start != 0 ? h->span : 0;
        for (size_t j = 0; j < ch_g.n; j++)
            if (j != i && ch_g.heaps[j].start >= h->start && ch_g.heaps[j].end <= h->end)
                fspan = 0; /* hosts a nested heap */
        CH_STORE(h->fspan, fspan); /* once: never transiently wrong (ch_cached reads it unlocked) */
    }
    for (size_t i = 0; i < CH_FCACHE; i++)
        CH_STORE(ch_g.fcache[i], NULL);
    for (size_t r = 0; r < CH_ROUTES; r++)
        CH_RELEASE(ch_g.route[r].caps, CH_ROUTE_EMPTY);
    ch_route_default();
}

/* Binary search (branch-free over addr[], padded with UINTPTR_MAX to a
 * power of two) for the last start <= p, checked against its descriptor. */
static ch_heap_t *search(uintptr_t p)
{
    /* A sequence lock: the index read while ch_reindex rebuilds it (the count
     * odd, or changed by the end) is not trusted; NULL sends the caller to
     * the locked scan. */
    uint32_t gen = CH_ACQUIRE(ch_g.index_gen);
    if (gen & 1u)
        return NULL;
    size_t lo = 0;
    if (p < CH_LOAD(ch_g.addr[0]))
        return NULL;
    for (size_t step = CH_LOAD(ch_g.step); step != 0; step >>= 1)
        lo += CH_LOAD(ch_g.addr[lo + step]) <= p ? step : 0;
    ch_heap_t *h = &ch_g.heaps[CH_LOAD(ch_g.by_addr[lo]) % CAPHEAP_MAX_HEAPS];
    CH_FENCE_ACQUIRE(); /* the index reads before the second read of the count */
    if (CH_LOAD(ch_g.index_gen) != gen)
        return NULL;
    /* A heap listed in a whole index may still be the one being registered:
     * its handle, released last, orders the descriptor's fields before the
     * reads of start and span (C11; and ThreadSanitizer checks it). */
    return CH_ACQUIRE(h->heap) != NULL && p - h->start < h->span ? h : NULL;
}

ch_heap_t *ch_find_slow(uintptr_t p)
{
    ch_heap_t *h = search(p);
    if (h == NULL) {
        /* Nested heaps (p past an inner heap, inside its host), a pointer in
         * no heap, or a reader that raced with a registration: the innermost
         * registered heap holding p, under the registry lock. */
        ch_lock();
        for (size_t i = ch_g.n_addr; i-- > 0;) {
            ch_heap_t *c = &ch_g.heaps[ch_g.by_addr[i]];
            if (p - c->start < c->span) {
                h = c;
                break;
            }
        }
        ch_unlock();
    }
    /* No lock here (big heaps have far more pages than entries, so this runs
     * often): an entry a racing nested registration makes stale names a heap
     * whose fspan is 0 now, and ch_cached() refuses it. A page may reach
     * past the heap (its first and last pages, shared with a neighbour or
     * with memory in no heap): ch_cached() checks the bounds. */
    if (h != NULL && CH_LOAD(h->fspan) != 0)
        CH_RELEASE(ch_g.fcache[(p >> CH_FCACHE_SHIFT) % CH_FCACHE], h);
    return h;
}
#endif /* CH_COMPACT */

/* ---- registration ------------------------------------------------------- */

static void attach_lock(ch_heap_t *h, multi_heap_handle_t heap)
{
#if CAPHEAP_PORT_HOST
    capheap_lock_init(&h->lock);
    capheap_heap_attach_lock(heap, &h->lock);
#else
    capheap_heap_attach_lock(heap, h); /* the port's hooks get the descriptor */
#endif
}

/* Make the descriptor's region a heap (4-aligned start; not address 0,
 * which would make a block at address 0 indistinguishable from failure),
 * not yet published and with no lock attached; NULL if the region cannot. */
CH_INLINE multi_heap_handle_t make_heap(ch_heap_t *h, size_t alignment)
{
    uintptr_t s = (h->start + 3u) & ~(uintptr_t)3u;
    if (s == 0)
        s = alignment;
    /* s >= end, counted from the start: a start in the last 3 bytes of the
     * address space, whose rounding wrapped to 0, is refused too (it once
     * became a heap over [alignment, end)) */
    if (s - h->start >= h->end - h->start)
        return NULL;
    /* Set before the call, so that alignment need not live across it: only a
     * registered heap's alignment is ever read (a failure leaves a heap that
     * is never used, or registered again with its alignment then). */
    h->align = (uint8_t)alignment;
    multi_heap_handle_t heap = capheap_heap_register_aligned((void *)s, (size_t)(h->end - s), alignment);
#if !CH_COMPACT
    if (heap != NULL)
        h->span = h->end - h->start; /* non-zero only once registered: the page cache needs no handle check */
#endif
    return heap;
}

/* Attach the heap's lock and publish its handle. */
static void open_heap(ch_heap_t *h, multi_heap_handle_t heap)
{
    attach_lock(h, heap);
    CH_RELEASE(h->heap, heap); /* last: a reader that sees the handle sees its lock (a start-up-stack
                                * region is listed before it is registered) */
}

static bool register_heap(ch_heap_t *h, size_t alignment)
{
    multi_heap_handle_t heap = make_heap(h, alignment);
    if (heap == NULL)
        return false;
    open_heap(h, heap);
    return true;
}

#if CAPHEAP_EXEC_HEAP
/* Builds without EXEC heaps refuse every EXEC request (ch_prepare), so they
 * never read a heap's alias window: no windows, no alias indices there. */
static uint8_t alias_of(uintptr_t start)
{
    for (uint8_t k = 0; k < 2; k++) {
        const ch_alias_t *a = &ch_g.alias[k];
        if (a->kind != CAPHEAP_ALIAS_NONE && start >= a->dram_low && start < a->dram_high)
            return (uint8_t)(k + 1u);
    }
    return 0;
}
#endif

static ch_heap_t *new_descriptor(const uint32_t caps[CH_PRIOS], uintptr_t start, uintptr_t end,
                                 const char *name)
{
    uint8_t n = ch_g.n;
    if (n >= CAPHEAP_MAX_HEAPS)
        return NULL;
    /* The fields one by one (a reused slot may hold a dropped descriptor): a
     * memset call would keep the arguments in saved registers across it.
     * Left as they are: the host lock (attach_lock() initialises it); align,
     * read only once the heap is registered (register_heap() sets it); runtime, false in every slot not counted
     * (only a counted heap is made runtime, and a dropped descriptor is a
     * start-up heap or one that failed to register); alias, alias_of()'s
     * below, and never set without EXEC heaps (0 since start-up). */
    ch_heap_t *h = &ch_g.heaps[n];
#if defined(__GNUC__)
    /* One register for the stores and the result, as report.c's set_last:
     * gcc would compute the address twice (-4 B on Cortex-M4). */
    __asm__("" : "+r"(h));
#endif
    h->start = start;
#if CH_COMPACT
    /* Set with the bounds: the search order (before) reads it, and lookups
     * only once the heap is registered (ch_find_slow). Stored here, not
     * computed in register_heap() and before(): -16 B on Cortex-M4 and RV32IMC. */
    h->span = end - start;
#else
    h->fspan = 0; /* compact builds have no page cache: nothing writes or reads it there */
    h->span = 0;  /* the address index and the page cache read it without the handle */
#endif
    h->heap = NULL;
    h->end = end;
    h->name = name;
    h->index = n;
    uint32_t all = 0;
    for (size_t k = 0; k < CH_PRIOS; k++) {
        h->caps[k] = caps[k];
        all |= caps[k];
    }
    h->all = all;
#if CAPHEAP_EXEC_HEAP
    h->alias = alias_of(start);
    if (h->alias != 0 && (h->all & MALLOC_CAP_EXEC))
        CH_STORE(ch_g.alias_any, true);
#endif
#if !CH_COMPACT || CH_DEBUG
    /* Fatal reports name the damaged block, its neighbours and their owners.
     * (-Os builds without debugging features leave it out: call
     * capheap_describe_block() yourself.) */
    capheap_report_set_epilogue(capheap_describe_block);
#endif
    return h;
}

bool heap_caps_check_add_region_allowed(intptr_t heap_start, intptr_t heap_end, intptr_t start,
                                        intptr_t end)
{
    uintptr_t hs = (uintptr_t)heap_start, he = (uintptr_t)heap_end;
    uintptr_t s = (uintptr_t)start, e = (uintptr_t)end;
    bool straddles_start = s < hs && e > hs;
    bool straddles_end = s < he && e > he;
    bool duplicate = s == hs && e == he;
    return !(straddles_start || straddles_end || duplicate);
}

static size_t chip_alignment(void)
{
    return ch_g.chip != NULL && ch_g.chip->heap_alignment != 0 ? ch_g.chip->heap_alignment : 4u;
}

/* The chip type whose combined caps equal all, for a runtime heap's name. */
static const char *type_name(uint32_t all)
{
    const capheap_chip_t *c = ch_g.chip;
    for (size_t t = 0; c != NULL && t < c->type_count; t++) {
        const uint32_t *k = c->types[t].caps;
        if ((k[0] | k[1] | k[2]) == all)
            return c->types[t].name;
    }
    return "Custom";
}

esp_err_t capheap_caps_add_region(const uint32_t caps[CH_PRIOS], intptr_t start, intptr_t end,
                                  const capheap_region_options_t *options)
{
    uintptr_t s = (uintptr_t)start, e = (uintptr_t)end;
    if (caps == NULL || e <= s)
        return ESP_ERR_INVALID_ARG;
    size_t align = options != NULL && options->alignment != 0 ? options->alignment : chip_alignment();
    if (align != 4 && align != 8 && align != 16)
        return ESP_ERR_INVALID_ARG;
    esp_err_t err = ESP_OK;
    ch_lock();
    for (size_t i = 0; i < ch_g.n && err == ESP_OK; i++) {
        const ch_heap_t *o = &ch_g.heaps[i];
        /* ESP-IDF's rule allows a region nested in a heap (a block allocated
         * from it). A start-up stack region not yet enabled has had no
         * allocations: a region inside it is memory the stack still uses,
         * and enabling would lay that heap over the nested one. */
        bool in_deferred = o->heap == NULL && s >= o->start && e <= o->end;
        if (in_deferred || !heap_caps_check_add_region_allowed((intptr_t)o->start, (intptr_t)o->end, start, end))
            err = ESP_FAIL;
    }
    ch_heap_t *h = NULL;
    if (err == ESP_OK) {
        uint32_t all = caps[0] | caps[1] | caps[2];
        const char *name = options != NULL && options->name != NULL ? options->name : type_name(all);
        h = new_descriptor(caps, s, e, name);
        if (h == NULL)
            err = ESP_ERR_NO_MEM;
    }
    multi_heap_handle_t heap = err == ESP_OK ? make_heap(h, align) : NULL;
    if (err == ESP_OK && heap == NULL)
        err = ESP_ERR_INVALID_SIZE;
    if (err == ESP_OK) {
        /* A heap added after start-up starts its low-water mark at 0, set
         * before its lock is attached: no heap's lock is ever taken under the
         * registry's, which capheap_caps_lock_all takes after the heaps'. */
        if (ch_g.started)
            multi_heap_restore_minimum_free_bytes(heap, 0);
        open_heap(h, heap);
        h->runtime = true;
        publish();
        ch_reindex();
    }
    ch_unlock();
    return err;
}

esp_err_t heap_caps_add_region_with_caps(const uint32_t caps[], intptr_t start, intptr_t end)
{
    return capheap_caps_add_region(caps, start, end, NULL);
}

esp_err_t heap_caps_add_region(intptr_t start, intptr_t end)
{
    const capheap_chip_t *c = ch_g.chip;
    uintptr_t s = (uintptr_t)start;
    for (size_t i = 0; c != NULL && i < c->region_count; i++) {
        const soc_memory_region_t *r = &c->regions[i];
        if (s >= (uintptr_t)r->start && s - (uintptr_t)r->start < r->size && r->type < c->type_count)
            return heap_caps_add_region_with_caps(c->types[r->type].caps, start, end);
    }
    return ESP_ERR_NOT_FOUND;
}

void heap_caps_enable_nonos_stack_heaps(void)
{
    ch_lock();
    for (size_t i = 0; i < ch_g.n; i++) {
        ch_heap_t *h = &ch_g.heaps[i];
        if (h->heap == NULL)
            (void)register_heap(h, chip_alignment());
    }
    ch_g.started = true;
    ch_reindex();
    ch_unlock();
}

/* ---- start-up: carve, coalesce, register ----------------------------------- */

typedef struct carve carve_t;

/* What becomes of a piece [s, e) of row r: a start-up heap (coalesce), or
 * an entry of soc_get_available_memory_regions' array (store). By pointer:
 * a firmware that never asks for the array does not link store(). */
typedef void piece_fn(carve_t *c, uintptr_t s, uintptr_t e, const soc_memory_region_t *r);

struct carve {
    const capheap_chip_t *chip;
    /* the chip's reservations, the firmware's, and (start-up only) the
     * heaps registered before it, which no start-up heap may overlap: list
     * l has n_res[l] entries from res[l], stride[l] bytes apart, each
     * starting with two words, start and end (a soc_reserved_region_t, or
     * a descriptor: ch_heap_t begins with its bounds). The heaps are read
     * in place, not copied into an array of reservations (-22 B on Cortex-M4). */
    const char *res[3];
    size_t stride[3];
    size_t n_res[3];
    piece_fn *piece;
    /* coalesce: the pending piece, its bounds and key(): 0 when none is pending */
    uintptr_t start, end;
    size_t key;
    esp_err_t err;
    soc_memory_region_t *out; /* store: the array and its count */
    size_t n_out;
};

/* Entry i of list l: its start and end (as unsigned words: the signed
 * intptr_t of a reservation may be read so, C11 6.5p7). */
static const uintptr_t *entry(const carve_t *c, size_t l, size_t i)
{
    return (const uintptr_t *)(const void *)(c->res[l] + i * c->stride[l]);
}

/* A reservation's bounds x[0], x[1] rounded outwards to 4 bytes in b[0],
 * b[1]; false if it is invalid (start > end). An invalid or empty one ends
 * at 0 (b[1] = 0): it overlaps nothing. */
static bool bounds(const uintptr_t *x, uintptr_t b[2])
{
    uintptr_t s = x[0], e = x[1];
    b[0] = s & ~(uintptr_t)3u;
    b[1] = (e + 3u) & ~(uintptr_t)3u;
    if (s > e || b[0] >= b[1])
        b[1] = 0;
    return s <= e;
}

/* The number of reservations overlapping [s, e), and the bounds of the
 * lowest of them in low ([e, e) if none). In any order (backwards: shorter
 * loops): the count does not depend on it, and the carving asks only once
 * the reservations passed check_reservations, so no two of those
 * overlapping [s, e) start at the same address: the lowest is unique. */
static size_t overlapping(const carve_t *c, uintptr_t s, uintptr_t e, uintptr_t low[2])
{
    size_t count = 0;
    low[0] = low[1] = e;
    for (size_t l = 3; l-- > 0;)
        for (size_t i = c->n_res[l]; i-- > 0;) { /* indexes: a list may be NULL, 0 long */
            uintptr_t b[2];
            (void)bounds(entry(c, l, i), b);
            if (b[0] < e && b[1] > s) {
                count++;
                if (b[0] < low[0]) {
                    low[0] = b[0];
                    low[1] = b[1];
                }
            }
        }
    return count;
}

/* A row's type and start-up-stack flag in one word, never 0: pieces with the
 * same key and touching coalesce (spec 2.3 step 3). */
static size_t key(const soc_memory_region_t *r)
{
    return ((r->type << 1) | (r->startup_stack ? 1u : 0u)) + 1u;
}

/* The pending piece becomes a heap, and [s, e) with key k the pending one
 * (coalesce; carve_all ends with none: k 0). Replaced first: coalesce()
 * tail-calls this and keeps nothing across it. Once out of descriptors,
 * every later flush fails the same way: c->err stays ESP_ERR_NO_MEM. */
static void flush(carve_t *c, uintptr_t s, uintptr_t e, size_t k)
{
    uintptr_t ps = c->start, pe = c->end;
    size_t pk = c->key;
    c->start = s;
    c->end = e;
    c->key = k;
    if (pk-- == 0) /* none pending */
        return;
    const soc_memory_type_desc_t *t = &c->chip->types[pk >> 1];
    ch_heap_t *h = new_descriptor(t->caps, ps, pe, t->name);
    if (h == NULL) {
        c->err = ESP_ERR_NO_MEM;
        return;
    }
    size_t align = c->chip->heap_alignment; /* chip_alignment(): this chip is ch_g.chip */
    if (!(pk & 1u))
        (void)register_heap(h, align != 0 ? align : 4u); /* too small: listed, like ESP-IDF */
    publish();
}

static void store(carve_t *c, uintptr_t s, uintptr_t e, const soc_memory_region_t *r)
{
    soc_memory_region_t *o = &c->out[c->n_out++];
    o->start = (intptr_t)s;
    o->size = (size_t)(e - s);
    o->type = r->type;
    o->iram_address = r->iram_address; /* the row's, as ESP-IDF copies it (a hole punch does not adjust it) */
    o->startup_stack = r->startup_stack;
}

static void coalesce(carve_t *c, uintptr_t s, uintptr_t e, const soc_memory_region_t *r)
{
    size_t k = key(r);
    if (c->key == k && c->end == s) {
        c->end = e; /* spec 2.3 step 3 */
        return;
    }
    flush(c, s, e, k);
}

static void carve(carve_t *c, const soc_memory_region_t *r)
{
    uintptr_t s = (uintptr_t)r->start, e = s + r->size;
    while (s < e) {
        /* The lowest reservation overlapping [s, e) ends the piece and the
         * next one starts at its end; with none, the piece runs to e. */
        uintptr_t low[2];
        (void)overlapping(c, s, e, low);
        if (low[0] > s && low[0] - s > 16u) /* spec 2.2 step 6 */
            c->piece(c, s, low[0], r);
        s = low[1];
    }
}

/* ESP_ERR_INVALID_ARG at the first reservation with start > end, ESP_FAIL
 * at the first one another overlaps (after rounding), in list order; a heap
 * registered before start-up counts as one (heaps may nest: they are not
 * checked against each other). */
static esp_err_t check_reservations(const carve_t *c)
{
    for (size_t l = 0; l < 2; l++)
        for (size_t i = 0; i < c->n_res[l]; i++) {
            uintptr_t x[2], low[2];
            if (!bounds(entry(c, l, i), x))
                return ESP_ERR_INVALID_ARG;
            if (overlapping(c, x[0], x[1], low) > 1) /* one is x itself */
                return ESP_FAIL;
        }
    return ESP_OK;
}

/* Check the reservations, then cut every region of c->chip by them into
 * pieces for c->piece, and flush the last heap; c->err receives ESP_OK or
 * the error. */
static void carve_all(carve_t *c)
{
    c->err = check_reservations(c);
    if (c->err == ESP_OK) { /* (out of descriptors, carving on changes nothing: flush) */
        /* A row pointer, counted down: no index times the row size (-8/-10 B
         * at -Os), and no arithmetic on a table of 0 rows that may be NULL. */
        const soc_memory_region_t *r = c->chip->regions;
        for (size_t n = c->chip->region_count; n-- > 0; r++)
            carve(c, r);
    }
    flush(c, 0, 0, 0);
}

size_t ch_carve(const capheap_chip_t *chip, const soc_reserved_region_t *extra, size_t n_extra,
                soc_memory_region_t *out, esp_err_t *err)
{
    carve_t c = {.chip = chip,
                 .res = {(const char *)chip->reserved, (const char *)extra, NULL},
                 .stride = {sizeof(soc_reserved_region_t), sizeof(soc_reserved_region_t), 0},
                 .n_res = {chip->reserved_count, n_extra, 0},
                 .piece = out != NULL ? store : coalesce, /* out NULL: the start-up heaps */
                 .out = out};
    carve_all(&c);
    *err = c.err;
    return c.n_out;
}

#if CAPHEAP_EXEC_HEAP
/* capheap_caps_init copies capheap_chip_t's two windows as ch_g.alias[2]
 * (a negative array size stops the build if the layouts ever differ). */
typedef char ch_alias_pair_t[sizeof(ch_alias_t) == sizeof(capheap_alias_t) &&
                                     offsetof(capheap_chip_t, rtc) ==
                                         offsetof(capheap_chip_t, diram) + sizeof(capheap_alias_t)
                                 ? 1
                                 : -1];
#endif

/* Does one of the n reservations at r hold all of [s, e)? */
static bool reserved_whole(const soc_reserved_region_t *r, size_t n, uintptr_t s, uintptr_t e)
{
    for (size_t i = 0; i < n; i++)
        if ((uintptr_t)r[i].start <= s && e <= (uintptr_t)r[i].end)
            return true;
    return false;
}

/* No two rows share memory that would become heap memory: where two rows
 * overlap, one reservation (the chip's or the firmware's) holds all of the
 * overlap (ESP-IDF's S3 table has its D-cache row inside the reserved
 * external-RAM window). Else both rows would become heaps handing out the same
 * bytes. O(rows^2 x reservations), once, at start-up; heap_caps_init() with a
 * table compiled in skips it (the tests check every built-in table). */
static bool rows_apart(const capheap_chip_t *chip, const soc_reserved_region_t *reserved, size_t count)
{
    for (size_t i = 0; i < chip->region_count; i++)
        for (size_t j = 0; j < i; j++) {
            const soc_memory_region_t *a = &chip->regions[i], *b = &chip->regions[j];
            /* as addresses: a start in the upper half is a negative intptr_t
             * (a row at 0x80000000 on a 32-bit target overlapped every row
             * below it; a test of a row in the last page found it) */
            uintptr_t sa = (uintptr_t)a->start, sb = (uintptr_t)b->start;
            uintptr_t s = sa > sb ? sa : sb;
            uintptr_t ea = sa + a->size, eb = sb + b->size;
            uintptr_t e = ea < eb ? ea : eb;
            if (s < e && !reserved_whole(chip->reserved, chip->reserved_count, s, e) &&
                !reserved_whole(reserved, count, s, e))
                return false;
        }
    return true;
}

/* Can the start-up use this table? Its arrays exist where it counts rows,
 * every row names one of its types, and its heap alignment is one
 * capheap_heap_register() takes (0: 4). A table that fails gives
 * ESP_ERR_INVALID_ARG, not heaps that all fail to register. */
static bool table_ok(const capheap_chip_t *chip)
{
    if ((chip->regions == NULL && chip->region_count > 0) || (chip->types == NULL && chip->type_count > 0) ||
        (chip->reserved == NULL && chip->reserved_count > 0))
        return false;
    size_t a = chip->heap_alignment;
    if (a != 0 && a != 4 && a != 8 && a != 16)
        return false;
    for (size_t i = 0; i < chip->region_count; i++) {
        const soc_memory_region_t *r = &chip->regions[i];
        /* a row that ends at the top of the address space, or wraps past it,
         * has no end the carving can compare (it vanished, with ESP_OK: an
         * audit found it; the simulator refuses such a row too) */
        if (r->type >= chip->type_count || (r->size != 0 && (uintptr_t)r->start + r->size <= (uintptr_t)r->start))
            return false;
    }
    return true;
}

/* A registered heap's memory back to its owner without the sanitizers'
 * marks, from the heap's handle (its memory starts there: a heap at address
 * 0 starts at its alignment, and capheap_sanitizer_release() takes no NULL;
 * an audit found such a heap's marks left on after a reset). */
static void release_marks(const ch_heap_t *h)
{
    capheap_sanitizer_release((void *)h->heap, (size_t)(h->end - (uintptr_t)h->heap));
}

esp_err_t capheap_caps_init(const capheap_chip_t *chip, const soc_reserved_region_t *reserved,
                            size_t count)
{
    if (chip == NULL || !table_ok(chip) || (reserved == NULL && count > 0) || !rows_apart(chip, reserved, count))
        return ESP_ERR_INVALID_ARG;
    return ch_caps_init(chip, reserved, count);
}

/* capheap_caps_init() after the checks of its arguments: heap_caps_init() on
 * a target comes here directly with the table compiled in, which
 * tests/caps/test_chips.c checks (every built-in table) at build time rather
 * than every firmware at every boot, and with the firmware's reservations
 * from the linker, an array or NULL with a count of 0 (init.c). Their bounds
 * are checked here, by the carving. */
esp_err_t ch_caps_init(const capheap_chip_t *chip, const soc_reserved_region_t *reserved, size_t count)
{
    esp_err_t err = ESP_ERR_INVALID_STATE;
    ch_lock();
    if (ch_g.chip == NULL) {
        uint8_t n0 = ch_g.n; /* runtime heaps added before init stay */
        /* The carving reads the chip (alignment) and its alias windows (new
         * descriptors): both windows in one copy (ch_alias_t has
         * capheap_alias_t's layout; rtc follows diram: ch_alias_pair_t). */
        ch_g.chip = chip;
#if CAPHEAP_EXEC_HEAP
        memcpy(ch_g.alias, &chip->diram, sizeof ch_g.alias);
#endif
        carve_t c; /* only what coalesce() and flush() read: no array */
        c.chip = chip;
        c.res[0] = (const char *)chip->reserved;
        c.res[1] = (const char *)reserved;
        /* Heaps added before init own their memory: the start-up heaps are
         * carved around them, as around a reservation. */
        c.res[2] = (const char *)ch_g.heaps;
        c.stride[0] = c.stride[1] = sizeof(soc_reserved_region_t);
        c.stride[2] = sizeof(ch_heap_t);
        c.n_res[0] = chip->reserved_count;
        c.n_res[1] = count;
        c.n_res[2] = n0;
        c.piece = coalesce;
        c.start = c.end = c.key = 0;
        carve_all(&c); /* ch_carve without store(): soc_get_available_memory_regions links that */
        err = c.err;
        if (err == ESP_OK) {
            ch_g.reserved = reserved;
            ch_g.n_reserved = count;
            if (chip->heap_size_max != 0) /* else it stays SIZE_MAX / 2: set once, by a successful init */
                ch_size_max = chip->heap_size_max;
            ch_reindex();
        } else {
#if CAPHEAP_PORT_HOST
            for (size_t i = n0; i < ch_g.n; i++)
                if (ch_g.heaps[i].heap != NULL) {
                    capheap_lock_destroy(&ch_g.heaps[i].lock);
                    /* ESP_ERR_NO_MEM part-way: the heaps made so far are
                     * dropped, and their memory goes back without the
                     * sanitizers' marks (an audit found them left on: a
                     * reset cannot reach slots past n) */
                    release_marks(&ch_g.heaps[i]);
                }
#endif
            ch_g.n = n0;
            ch_g.chip = NULL;
#if CAPHEAP_EXEC_HEAP
            memset(ch_g.alias, 0, sizeof ch_g.alias);
#endif
        }
    }
    ch_unlock();
    return err;
}

void capheap_caps_reset(void)
{
    ch_lock();
    for (size_t i = 0; i < ch_g.n; i++) {
        ch_heap_t *h = &ch_g.heaps[i];
        if (h->heap == NULL)
            continue;
#if CAPHEAP_PORT_HOST
        capheap_lock_destroy(&h->lock);
#endif
        /* The memory goes back to its owner (the simulator unmaps it, a test
         * reuses its buffer): no sanitizer marks may stay on it. */
        release_marks(h);
    }
    memset(&ch_g, 0, sizeof ch_g);
    ch_size_max = SIZE_MAX / 2;
#if !CH_COMPACT
    for (size_t r = 0; r < CH_ROUTES; r++)
        ch_g.route[r].caps = CH_ROUTE_EMPTY;
#endif
    ch_unlock();
    ch_reset_policy();
    ch_reset_monitor();
    capheap_task_tracking_reset(); /* its blocks went with the heaps */
}

const capheap_chip_t *capheap_caps_chip(void)
{
    return ch_g.chip;
}

/* ---- introspection --------------------------------------------------------- */

size_t capheap_heap_count(void)
{
    return CH_ACQUIRE(ch_g.n);
}

static void fill_desc(const ch_heap_t *h, capheap_heap_desc_t *out)
{
    out->name = h->name;
    out->start = (intptr_t)h->start;
    out->end = (intptr_t)h->end;
    memcpy(out->caps, h->caps, sizeof out->caps);
    out->heap = h->heap;
    out->runtime = h->runtime;
}

bool capheap_heap_get(size_t i, capheap_heap_desc_t *out)
{
    if (out == NULL)
        return false;
    ch_lock();
    bool ok = i < ch_g.n;
    if (ok)
        fill_desc(&ch_g.heaps[ch_g.order[i]], out);
    ch_unlock();
    return ok;
}

bool capheap_heap_find_desc(const void *ptr, capheap_heap_desc_t *out)
{
    if (out == NULL)
        return false;
    const ch_heap_t *h = ch_find((uintptr_t)ptr); /* a descriptor never moves */
    if (h == NULL)
        return false;
    ch_lock(); /* its fields are complete: it was found registered */
    fill_desc(h, out);
    ch_unlock();
    return true;
}


int ch_position(const ch_heap_t *h)
{
    int found = -1;
    ch_lock(); /* order[] changes in place while a heap is registered */
    for (int i = 0; i < (int)ch_g.n && found < 0; i++)
        if (&ch_g.heaps[ch_g.order[i]] == h)
            found = i;
    ch_unlock();
    return found;
}

int capheap_heap_find(const void *ptr)
{
    const ch_heap_t *h = ch_find((uintptr_t)ptr);
    return h != NULL ? ch_position(h) : -1; /* consistent with capheap_heap_get() */
}

/* The object a heap's lock hooks receive (attach_lock()'s). */
static void *heap_lock(size_t i)
{
#if CAPHEAP_PORT_HOST
    return &ch_g.heaps[i].lock;
#else
    return &ch_g.heaps[i];
#endif
}

/*
 * Every lock, in an order no other path contradicts: the monitor's, the debug
 * layers' (the tracker walks heaps under its own), every heap's, and the
 * registry's last. A walk callback holds its heap's lock and may ask for
 * statistics, which take the registry's (esp_heap_caps.h): with the registry's
 * taken before the heaps', a fork's prepare handler and such a walk deadlocked
 * (a concurrency audit; test_walk_callback_against_lock_all). The heaps are
 * locked without the registry's lock, as published (handle, then count, both
 * with release); a heap registered meanwhile is found under the registry's
 * lock, which is then let go for another round. The monitor's lock keeps out
 * a second lock_all, so the static record of what is held needs no other.
 */
static uint32_t held[(CAPHEAP_MAX_HEAPS + 31) / 32];

static bool is_held(size_t i)
{
    return (held[i / 32] >> (i % 32) & 1u) != 0;
}

void capheap_caps_lock_all(void)
{
    ch_monitor_lock();
#if CAPHEAP_TASK_TRACKING
    ch_task_fork_prepare();
#endif
#if CAPHEAP_TRACING
    ch_trace_fork_prepare();
#endif
    for (bool missing = true; missing;) {
        for (size_t i = 0, n = CH_ACQUIRE(ch_g.n); i < n; i++)
            if (!is_held(i) && CH_ACQUIRE(ch_g.heaps[i].heap) != NULL) {
                capheap_port_lock_acquire(heap_lock(i));
                held[i / 32] |= 1u << (i % 32);
            }
        ch_lock();
        missing = false;
        for (size_t i = 0; i < ch_g.n; i++)
            missing |= ch_g.heaps[i].heap != NULL && !is_held(i);
        if (missing)
            ch_unlock(); /* a heap came while the others were locked: lock it too */
    }
}

void capheap_caps_unlock_all(void)
{
    ch_unlock();
    for (size_t i = CAPHEAP_MAX_HEAPS; i-- > 0;)
        if (is_held(i))
            capheap_port_lock_release(heap_lock(i));
    memset(held, 0, sizeof held);
#if CAPHEAP_TRACING
    ch_trace_fork_parent();
#endif
#if CAPHEAP_TASK_TRACKING
    ch_task_fork_parent();
#endif
    ch_monitor_unlock();
}

void capheap_caps_unlock_all_child(void)
{
#if CAPHEAP_PORT_HOST
    for (size_t i = 0; i < ch_g.n; i++)
        if (ch_g.heaps[i].heap != NULL)
            (void)capheap_lock_init(&ch_g.heaps[i].lock);
#if CAPHEAP_TASK_TRACKING
    ch_task_fork_child();
#endif
#if CAPHEAP_TRACING
    ch_trace_fork_child();
#endif
    capheap_lock_t fresh = {PTHREAD_MUTEX_INITIALIZER};
    ch_registry_lock = fresh;
    memset(held, 0, sizeof held);
    ch_monitor_fork_child();
#else
    capheap_caps_unlock_all();
#endif
}
