/*
 * stats.c - questions about many heaps: sizes, info, the local minimum
 * monitor, integrity checks, dumps and walks.
 *
 * Each is a loop over the heaps in list order that match the caps ("all of
 * caps"; 0 matches every registered heap; for check, dump and walk
 * MALLOC_CAP_INVALID selects all too), calling the multi_heap function under
 * that heap's own lock. Start-up-stack regions not yet registered are
 * invisible here, as in ESP-IDF. The monitor keeps its saved minima by
 * descriptor, not by list position, so heaps added during a window do not
 * shift them (ESP-IDF's 7.2 item 11).
 */
#include <string.h>

#include "caps/caps_private.h"
#include "capheap/report.h"
#include "port/port_private.h"

/* The list order, copied under the registry lock: a registration running
 * meanwhile rebuilds order[] in place (speed builds) or shifts it (compact
 * builds), and a walk over it without the lock could miss a heap or count
 * one twice. Descriptors never move, so the copy stays valid. */
typedef struct {
    size_t n, i;
    uint8_t k[CAPHEAP_MAX_HEAPS];
} list_t;

static void list_heaps(list_t *l)
{
    l->n = ch_order(l->k);
    l->i = 0;
}

/* The next heap of the copy (list order) that matches caps, or NULL. */
static ch_heap_t *next(list_t *l, uint32_t caps)
{
    while (l->i < l->n) {
        ch_heap_t *h = &ch_g.heaps[l->k[l->i++] % CAPHEAP_MAX_HEAPS];
        if (ch_matches(h, caps))
            return h;
    }
    return NULL;
}


size_t heap_caps_get_total_size(uint32_t caps)
{
    size_t sum = 0;
    list_t i;
    list_heaps(&i);
    for (ch_heap_t *h; (h = next(&i, caps)) != NULL;)
        sum += (size_t)(h->end - h->start);
    return sum;
}

size_t heap_caps_get_free_size(uint32_t caps)
{
    size_t sum = 0;
    list_t i;
    list_heaps(&i);
    for (ch_heap_t *h; (h = next(&i, caps)) != NULL;)
        sum += multi_heap_free_size(h->heap);
    return sum;
}

size_t heap_caps_get_minimum_free_size(uint32_t caps)
{
    size_t sum = 0;
    list_t i;
    list_heaps(&i);
    for (ch_heap_t *h; (h = next(&i, caps)) != NULL;)
        sum += multi_heap_minimum_free_size(h->heap);
    return sum;
}

void heap_caps_get_info(multi_heap_info_t *info, uint32_t caps)
{
    if (info == NULL)
        return;
    memset(info, 0, sizeof *info);
    list_t i;
    list_heaps(&i);
    for (ch_heap_t *h; (h = next(&i, caps)) != NULL;)
    {
        multi_heap_info_t one;
        multi_heap_get_info(h->heap, &one);
        info->total_free_bytes += one.total_free_bytes;
        info->total_allocated_bytes += one.total_allocated_bytes;
        info->minimum_free_bytes += one.minimum_free_bytes;
        info->allocated_blocks += one.allocated_blocks;
        info->free_blocks += one.free_blocks;
        info->total_blocks += one.total_blocks;
        if (one.largest_free_block > info->largest_free_block)
            info->largest_free_block = one.largest_free_block;
    }
}

void heap_caps_print_heap_info(uint32_t caps)
{
    multi_heap_info_t t;
    capheap_printf("Heap summary for capabilities 0x%08x:\n", (unsigned)caps);
    list_t i;
    list_heaps(&i);
    for (ch_heap_t *h; (h = next(&i, caps)) != NULL;)
    {
        multi_heap_get_info(h->heap, &t);
        capheap_printf("  At 0x%08lx len %zu free %zu allocated %zu min_free %zu\n", (unsigned long)h->start,
                       (size_t)(h->end - h->start), t.total_free_bytes, t.total_allocated_bytes,
                       t.minimum_free_bytes);
        capheap_printf("    largest_free_block %zu alloc_blocks %zu free_blocks %zu total_blocks %zu (%s)\n",
                       t.largest_free_block, t.allocated_blocks, t.free_blocks, t.total_blocks, h->name);
    }
    heap_caps_get_info(&t, caps);
    capheap_printf("  Totals:\n");
    capheap_printf("    free %zu allocated %zu min_free %zu largest_free_block %zu\n", t.total_free_bytes,
                   t.total_allocated_bytes, t.minimum_free_bytes, t.largest_free_block);
}

/* ---- local minimum monitor -------------------------------------------------- */

/* The window's state, under a lock of its own: the heaps' locks are taken
 * with it held, never with the registry lock held. A walk callback runs
 * under its heap's lock and may ask for statistics, which take the registry
 * lock: a monitor that reset the heaps' minima under the registry lock
 * deadlocked with it (an audit's probe hung within a second). */
static bool monitor_on;
static size_t monitor_saved[CAPHEAP_MAX_HEAPS];
#if CAPHEAP_PORT_HOST
static capheap_lock_t monitor_lock = {PTHREAD_MUTEX_INITIALIZER};
#else
static int monitor_lock; /* the firmware's lock hooks receive its address */
#endif

/* The registered heaps by slot (NULL: none), read under the registry lock;
 * their number. Descriptors never move and heaps are never removed (only by
 * capheap_caps_reset()), so the handles stay valid after the lock. */
static size_t heap_slots(multi_heap_handle_t *slots)
{
    ch_lock();
    size_t n = ch_g.n;
    for (size_t i = 0; i < n; i++)
        slots[i] = CH_ACQUIRE(ch_g.heaps[i].heap);
    ch_unlock();
    return n;
}

esp_err_t heap_caps_monitor_local_minimum_free_size_start(void)
{
    esp_err_t err = ESP_FAIL;
    ch_monitor_lock();
    if (!monitor_on) {
        multi_heap_handle_t slots[CAPHEAP_MAX_HEAPS];
        size_t n = heap_slots(slots);
        /* Every slot: a heap registered during the window (a runtime region,
         * a start-up-stack heap) finds SIZE_MAX at stop and keeps its own minimum. */
        for (size_t i = 0; i < CAPHEAP_MAX_HEAPS; i++) {
            multi_heap_handle_t mh = i < n ? slots[i] : NULL;
            monitor_saved[i] = mh != NULL ? multi_heap_reset_minimum_free_bytes(mh) : SIZE_MAX;
        }
        monitor_on = true;
        err = ESP_OK;
    }
    ch_monitor_unlock();
    return err;
}

esp_err_t heap_caps_monitor_local_minimum_free_size_stop(void)
{
    esp_err_t err = ESP_FAIL;
    ch_monitor_lock();
    if (monitor_on) {
        multi_heap_handle_t slots[CAPHEAP_MAX_HEAPS];
        size_t n = heap_slots(slots);
        for (size_t i = 0; i < n; i++)
            if (slots[i] != NULL && monitor_saved[i] != SIZE_MAX)
                multi_heap_restore_minimum_free_bytes(slots[i], monitor_saved[i]);
        monitor_on = false;
        err = ESP_OK;
    }
    ch_monitor_unlock();
    return err;
}

/* fork (capheap_caps_lock_all and friends): the monitor's lock comes first,
 * as the monitor takes it before the registry's and the heaps'. */
void ch_monitor_lock(void)
{
    capheap_port_lock_acquire(&monitor_lock);
}

void ch_monitor_unlock(void)
{
    capheap_port_lock_release(&monitor_lock);
}

#if CAPHEAP_PORT_HOST
void ch_monitor_fork_child(void)
{
    capheap_lock_t fresh = {PTHREAD_MUTEX_INITIALIZER};
    monitor_lock = fresh;
}
#endif

void ch_reset_monitor(void)
{
    monitor_on = false;
}

/* ---- integrity, dump, walk -------------------------------------------------- */

/* multi_heap_check() of one heap; a failure it printed is followed by whose
 * block its first finding names (after the check's lock), for every
 * heap_caps_check_integrity*. The first, not the last: later findings are
 * often consequences (a smashed footer, then the free-byte counter it
 * throws off, which names the heap's control, no block; an audit noted the
 * description following the last). */
static bool check_heap(const ch_heap_t *h, bool print_errors)
{
    capheap_report_t first;
    if (capheap_heap_check_first(h->heap, print_errors, &first))
        return true;
    if (print_errors && first.address != NULL)
        capheap_describe_block(first.address);
    return false;
}

bool heap_caps_check_integrity(uint32_t caps, bool print_errors)
{
    bool ok = true;
    uint32_t sel = ch_selector(caps);
    list_t i;
    list_heaps(&i);
    for (ch_heap_t *h; (h = next(&i, sel)) != NULL;)
        if (!check_heap(h, print_errors))
            ok = false;
    return ok;
}

bool heap_caps_check_integrity_all(bool print_errors)
{
    return heap_caps_check_integrity(MALLOC_CAP_INVALID, print_errors);
}

bool heap_caps_check_integrity_addr(intptr_t addr, bool print_errors)
{
    void *p = (void *)addr;
#if CAPHEAP_EXEC_HEAP
    bool alias;
    if (CH_LOAD(ch_g.alias_any))
        p = ch_alias_direct(p, &alias);
#endif
    ch_heap_t *h = ch_find((uintptr_t)p);
    return h != NULL && check_heap(h, print_errors);
}

void heap_caps_dump(uint32_t caps)
{
    uint32_t sel = ch_selector(caps);
    list_t i;
    list_heaps(&i);
    for (ch_heap_t *h; (h = next(&i, sel)) != NULL;)
    {
        capheap_printf("Heap %s at 0x%08lx len %zu:\n", h->name, (unsigned long)h->start,
                       (size_t)(h->end - h->start));
        multi_heap_dump(h->heap);
    }
}

void heap_caps_dump_all(void)
{
    heap_caps_dump(MALLOC_CAP_INVALID);
}

typedef struct {
    heap_caps_walker_cb_t cb;
    void *user;
    walker_heap_into_t bounds;
} walk_ctx_t;

static bool walk_one(void *block, size_t size, int used, void *user)
{
    walk_ctx_t *w = user;
    walker_block_info_t b = {block, size, used != 0};
    return w->cb(w->bounds, b, w->user);
}

void heap_caps_walk(uint32_t caps, heap_caps_walker_cb_t walker_func, void *user_data)
{
    if (walker_func == NULL)
        return;
    uint32_t sel = ch_selector(caps);
    list_t i;
    list_heaps(&i);
    for (ch_heap_t *h; (h = next(&i, sel)) != NULL;)
    {
        walk_ctx_t w = {walker_func, user_data, {(intptr_t)h->start, (intptr_t)h->end}};
        multi_heap_walk(h->heap, walk_one, &w);
    }
}

void heap_caps_walk_all(heap_caps_walker_cb_t walker_func, void *user_data)
{
    heap_caps_walk(MALLOC_CAP_INVALID, walker_func, user_data);
}

size_t heap_caps_get_containing_block_size(void *ptr)
{
    void *p = ptr;
    bool alias = false;
#if CAPHEAP_EXEC_HEAP
    if (CH_LOAD(ch_g.alias_any))
        p = ch_alias_direct(p, &alias);
#endif
    ch_heap_t *h = ch_find((uintptr_t)p);
    if (h == NULL)
        return 0;
    void *block = multi_heap_find_containing_block(h->heap, p);
    size_t n = block != NULL ? multi_heap_get_allocated_size(h->heap, block) : 0;
#if CAPHEAP_EXEC_HEAP
    if (alias && n != 0) /* an EXEC block: what heap_caps_get_allocated_size() says of its pointer */
        return ch_alias_bytes(h, ch_alias_user(h, block, n), block, n);
#else
    (void)alias;
#endif
    return n;
}

/* ---- error names and checks ----------------------------------------------------- */

#if defined(__GNUC__)
#define CH_CALLER() __builtin_return_address(0)
#else
#define CH_CALLER() ((void *)0)
#endif

esp_err_t capheap_esp_error_check(esp_err_t rc, const char *file, int line, const char *function,
                                  const char *expression, int abort_on_error)
{
    if (rc == ESP_OK)
        return rc;
    /* ESP-IDF's text (esp_err.c), through the allocation-free printer (a
     * line at a time: it cuts a call at 160 bytes) */
    capheap_printf("ESP_ERROR_CHECK%s failed: esp_err_t 0x%x (%s) at %p\n", abort_on_error ? "" : "_WITHOUT_ABORT",
                   (unsigned)rc, esp_err_to_name(rc), CH_CALLER());
    capheap_printf("file: \"%s\" line %d\n", file, line);
    capheap_printf("func: %s\n", function);
    capheap_printf("expression: %s\n", expression);
    if (abort_on_error)
        capheap_port_abort_now("ESP_ERROR_CHECK failed");
    return rc;
}

const char *esp_err_to_name(esp_err_t code)
{
    if (code == ESP_OK)
        return "ESP_OK";
    if (code == ESP_FAIL)
        return "ESP_FAIL";
    if (code < ESP_ERR_NO_MEM || code > ESP_ERR_NOT_ALLOWED)
        return "UNKNOWN ERROR";
    static const char *const names[] = {
        "ESP_ERR_NO_MEM",          "ESP_ERR_INVALID_ARG",      "ESP_ERR_INVALID_STATE",
        "ESP_ERR_INVALID_SIZE",    "ESP_ERR_NOT_FOUND",        "ESP_ERR_NOT_SUPPORTED",
        "ESP_ERR_TIMEOUT",         "ESP_ERR_INVALID_RESPONSE", "ESP_ERR_INVALID_CRC",
        "ESP_ERR_INVALID_VERSION", "ESP_ERR_INVALID_MAC",      "ESP_ERR_NOT_FINISHED",
        "ESP_ERR_NOT_ALLOWED"};
    return names[code - ESP_ERR_NO_MEM];
}

/* v in base (10 or 16) appended at at; returns the end. */
static char *put_unsigned(char *at, unsigned v, unsigned base)
{
    char digits[3 * sizeof v + 1];
    char *d = digits + sizeof digits;
    do {
        unsigned k = v % base;
        *--d = (char)(k < 10u ? '0' + k : 'a' + (k - 10u));
        v /= base;
    } while (v != 0);
    size_t n = (size_t)(digits + sizeof digits - d);
    memcpy(at, d, n);
    return at + n;
}

const char *esp_err_to_name_r(esp_err_t code, char *buf, size_t buflen)
{
    if (buf == NULL || buflen == 0)
        return buf;
    const char *name = esp_err_to_name(code);
    char text[48]; /* "UNKNOWN ERROR 0x", 8 hex digits, "(-", 10 digits, ")" */
    if (code != ESP_OK && code != ESP_FAIL && (code < ESP_ERR_NO_MEM || code > ESP_ERR_NOT_ALLOWED)) {
        char *p = text;
        memcpy(p, "UNKNOWN ERROR 0x", 16);
        p = put_unsigned(p + 16, (unsigned)code, 16u); /* as printf's %x of an int */
        *p++ = '(';
        if (code < 0)
            *p++ = '-';
        p = put_unsigned(p, code < 0 ? 0u - (unsigned)code : (unsigned)code, 10u);
        *p++ = ')';
        *p = '\0';
        name = text;
    }
    size_t len = strlen(name);
    if (len >= buflen)
        len = buflen - 1u;
    memcpy(buf, name, len);
    buf[len] = '\0';
    return buf;
}
