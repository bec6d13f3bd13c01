/*
 * fit.c - honest numbers and the dry run.
 *
 * ESP-IDF's largest_free_block is the largest free block rounded down to its
 * size class: safe, but it under-reports, and it ignores what a request
 * really needs (the hardware alignment, the EXEC alias word). Here every
 * figure comes from capheap_heap_largest_request(), which is exactly what the
 * engine's bounded search can serve, taken over the request's own candidate
 * heaps after the request's own adjustment: so heap_caps_malloc(largest, caps)
 * succeeds, and the dry run names the heap that would serve a request by
 * walking the same list the allocator walks. O(H), no block walk.
 */
#include "caps/caps_private.h"

bool capheap_would_fit(size_t size, uint32_t caps, size_t alignment, capheap_fit_t *answer)
{
    request_t q = ch_prepare(size, alignment, caps);
    capheap_fit_t a = {q.bad, q.size, q.align, q.caps, 0, -1, 0};
    if (q.bad == CAPHEAP_FIT_OK) {
        uint8_t list[CAPHEAP_MAX_HEAPS];
        size_t n = ch_candidates(q.caps, list), plain = 0;
        a.candidates = n;
        for (size_t i = 0; i < n && a.heap_index < 0; i++) {
            const ch_heap_t *h = &ch_g.heaps[list[i]];
            size_t l = ch_largest(h, q.align, q.caps, q.round), l0 = ch_largest(h, 0, q.caps, q.round);
            a.largest_block = l > a.largest_block ? l : a.largest_block;
            plain = l0 > plain ? l0 : plain;
            if (q.size <= l)
                a.heap_index = ch_position(h);
        }
        if (n == 0)
            a.reason = CAPHEAP_FIT_NO_HEAP_WITH_CAPS;
        else if (a.heap_index < 0)
            a.reason = plain >= q.size ? CAPHEAP_FIT_ALIGNMENT_IMPOSSIBLE : CAPHEAP_FIT_NO_ROOM;
    }
    if (answer != NULL)
        *answer = a;
    return a.reason == CAPHEAP_FIT_OK;
}

size_t capheap_get_largest_free_block_aligned(uint32_t caps, size_t alignment)
{
    request_t q = ch_prepare(1, alignment, caps);
    if (q.bad != CAPHEAP_FIT_OK)
        return 0;
    uint8_t list[CAPHEAP_MAX_HEAPS];
    size_t n = ch_candidates(q.caps, list), best = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = ch_largest(&ch_g.heaps[list[i]], q.align, q.caps, q.round);
        best = l > best ? l : best;
    }
    return best < ch_size_max ? best : ch_size_max;
}

size_t heap_caps_get_largest_free_block(uint32_t caps)
{
    return capheap_get_largest_free_block_aligned(caps, 0);
}

const char *capheap_fit_reason_text(capheap_fit_reason_t reason)
{
    switch (reason) {
    case CAPHEAP_FIT_OK:
        return "fits";
    case CAPHEAP_FIT_ZERO_SIZE:
        return "size 0";
    case CAPHEAP_FIT_BAD_ALIGNMENT:
        return "alignment is 0 or not a power of two";
    case CAPHEAP_FIT_TOO_LARGE:
        return "size above the chip's largest heap request";
    case CAPHEAP_FIT_CONFLICTING_CAPS:
        return "caps no heap can ever have (0, INVALID, or EXEC with 8BIT or DMA)";
    case CAPHEAP_FIT_NO_HEAP_WITH_CAPS:
        return "no heap has these caps";
    case CAPHEAP_FIT_NO_ROOM:
        return "every candidate's largest block is too small";
    case CAPHEAP_FIT_ALIGNMENT_IMPOSSIBLE:
        return "room, but not at this alignment";
    case CAPHEAP_FIT_NO_CAPS_GIVEN:
        return "no caps to try (a _prefer call with num 0)";
    }
    return "unknown";
}

/* ---- the extended failure callback --------------------------------------------- */

/* The callback and its user pointer, a pair: written and read under the
 * registry lock, so a failure never calls one registration's callback with
 * another's pointer (a concurrency audit saw that with plain stores). */
static capheap_alloc_failed_fn failed_xcb;
static void *failed_xuser;

/* Installed in ch_failed_hooks.ext only while an extended callback is registered, so a
 * firmware that never registers one does not link the dry run. */
static void failed_ext(size_t size, uint32_t caps, size_t align, const char *fn)
{
    ch_lock();
    capheap_alloc_failed_fn cb = failed_xcb;
    void *user = failed_xuser;
    ch_unlock(); /* the callback runs with no lock held (compat.md 36) */
    if (cb != NULL) {
        capheap_fit_t why;
        if (align == CH_NO_CAPS_GIVEN) {
            capheap_fit_t none = {CAPHEAP_FIT_NO_CAPS_GIVEN, size, 0, caps, 0, -1, 0};
            why = none;
        } else {
            (void)capheap_would_fit(size, caps, align, &why);
        }
        cb(size, caps, fn, &why, user);
    }
}

esp_err_t capheap_register_failed_alloc_callback(capheap_alloc_failed_fn callback, void *user)
{
    ch_lock();
    failed_xuser = user;
    failed_xcb = callback;
    /* under the lock too: two registrations racing (one NULL) could leave
     * a callback set and the pointer to its caller cleared (an audit) */
    CH_STORE(ch_failed_hooks.ext, callback != NULL ? failed_ext : NULL);
    ch_unlock();
    return ESP_OK;
}
