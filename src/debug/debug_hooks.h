/*
 * debug_hooks.h - where heap_caps tells the debugging layer about blocks.
 *
 * The caps layer (src/caps) reports every successful allocation, every free,
 * and every realloc that kept its block in its heap, with the pointer the
 * user sees and the size and caps after the request's adjustment (ESP-IDF's
 * hook semantics, spec 1.1). A realloc that moves is an allocation of the new
 * block and a free of the old one; a failed realloc reports nothing.
 * src/debug/hooks.c fans the events out to heap tracing, task tracking and
 * the user's esp_heap_trace_*_hook functions.
 *
 * Task tracking keeps its books in the blocks' owner words (task_info.c), so
 * it is told differently on heap_caps' fast paths: the owner word is chosen
 * before the allocation (ch_task_owner), multi_heap writes it and reads it
 * back on free and realloc (capheap_heap_*_owned, heap_private.h), and the
 * caps layer passes what multi_heap said to ch_task_charge / ch_task_credit
 * (CH_MH_* and CH_TASK_* below). The slow paths use plain multi_heap calls
 * and the general events (CH_DEBUG_ALLOC / CH_DEBUG_FREE), which find the
 * block's word themselves. The CH_EVENT_* forms tell everything but task
 * tracking (the caller accounted for it).
 *
 * With every debugging option off (the default) the macros are empty: the
 * allocation paths carry no call and no test.
 */
#ifndef CAPHEAP_DEBUG_HOOKS_H
#define CAPHEAP_DEBUG_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "capheap/config.h"
#include "heap/heap_private.h"
#include "multi_heap.h"

#define CH_DEBUG (CAPHEAP_TRACING || CAPHEAP_USE_HOOKS || CAPHEAP_TASK_TRACKING)
#define CH_EVENTS (CAPHEAP_TRACING || CAPHEAP_USE_HOOKS) /* consumers other than task tracking */

#if CH_DEBUG
/* Everything (slow paths): task tracking's general events included. */
void capheap_debug_alloc(void *ptr, size_t size, uint32_t caps);
void capheap_debug_free(void *ptr);
/* Everything but task tracking. */
void capheap_debug_alloc_counted(void *ptr, size_t size, uint32_t caps);
void capheap_debug_free_counted(void *ptr);
void capheap_debug_realloc(void *old_ptr, unsigned token, void *new_ptr, size_t size, uint32_t caps);
/* Consumers (each defined only when its option is on). */
void ch_trace_alloc(void *ptr, size_t size, uint32_t caps); /* src/debug/trace.c */
void ch_trace_free(void *ptr);
void ch_trace_describe(const void *ptr); /* capheap_describe_block */
void ch_trace_fork_prepare(void); /* fork: see capheap_caps_lock_all */
void ch_trace_fork_parent(void);
void ch_trace_fork_child(void);
#define CH_DEBUG_ALLOC(p, size, caps) capheap_debug_alloc((p), (size), (caps))
#define CH_DEBUG_FREE(p) capheap_debug_free(p)
#else
#define CH_DEBUG_ALLOC(p, size, caps) ((void)0)
#define CH_DEBUG_FREE(p) ((void)(p))
#endif

/* Around a realloc inside a heap (tracing only, trace.c says why):
 * CH_REALLOC_BEGIN(tok, old) declares tok and opens an in-flight entry for
 * old before the heap may release it; CH_EVENT_REALLOC(old, tok, ...) closes
 * it with the late free, CH_EVENT_REALLOC_CANCEL(tok) when no
 * CH_EVENT_REALLOC follows (the realloc failed, or moves the block out
 * through free's events). */
#if CAPHEAP_TRACING
unsigned ch_trace_realloc_begin(void *old_ptr); /* the entry's token; 0: none */
void ch_trace_realloc_cancel(unsigned token);
void ch_trace_realloc_free(void *old_ptr, unsigned token); /* the late free, the entry released */
#define CH_REALLOC_BEGIN(tok, old) unsigned tok = ch_trace_realloc_begin(old)
/* After a free the heap accepted: the tracer's copy of the record that free
 * released is forgotten (trace.c, just_freed: only a free the heap rejects
 * is described from it; a later block at that address is another's). On the
 * host one thread-local store, inline (every traced free pays it). */
#if CAPHEAP_PORT_HOST && defined(__GNUC__)
extern __thread const void *ch_trace_freed_address __attribute__((tls_model("initial-exec")));
#define CH_FREE_DONE() ((void)(ch_trace_freed_address = NULL))
#else
void ch_trace_free_done(void);
#define CH_FREE_DONE() ch_trace_free_done()
#endif
#define CH_EVENT_REALLOC_CANCEL(tok) ch_trace_realloc_cancel(tok)
unsigned ch_trace_move_begin(void *old_ptr); /* a move out of the heap: trace.c */
void ch_trace_move_end(void *old_ptr, unsigned token);
#define CH_MOVE_BEGIN(tok, old) unsigned tok = ch_trace_move_begin(old)
#define CH_MOVE_END(tok, old) ch_trace_move_end((old), (tok))
#else
#define CH_REALLOC_BEGIN(tok, old) const unsigned tok = 0
#define CH_FREE_DONE() ((void)0)
#define CH_EVENT_REALLOC_CANCEL(tok) ((void)(tok))
#define CH_MOVE_BEGIN(tok, old) const unsigned tok = 0
#define CH_MOVE_END(tok, old) ((void)(tok))
#endif

#if CH_EVENTS
#define CH_EVENT_ALLOC(p, size, caps) capheap_debug_alloc_counted((p), (size), (caps))
#define CH_EVENT_FREE(p) capheap_debug_free_counted(p)
#define CH_EVENT_REALLOC(old, tok, p, size, caps) capheap_debug_realloc((old), (tok), (p), (size), (caps))
#else
#define CH_EVENT_ALLOC(p, size, caps) ((void)0)
#define CH_EVENT_FREE(p) ((void)(p))
#define CH_EVENT_REALLOC(old, tok, p, size, caps) ((void)(old), (void)(tok))
#endif

#if CAPHEAP_TASK_TRACKING
/* src/debug/task_info.c. heap: the block's registry slot (one out of range:
 * the tracker looks it up). ch_task_charge returns p (a tail call for the
 * caller). */
uint32_t ch_task_owner_slow(void);
void *ch_task_charge(void *p, uint32_t owner, size_t usable, unsigned heap);
void ch_task_credit(uint32_t owner, size_t usable, unsigned heap);
void ch_task_realloc(void *p, uint32_t old_owner, size_t old_usable, uint32_t owner, size_t usable, unsigned heap);
void ch_task_alloc(void *ptr); /* general: the block's word is set here */
void ch_task_free(void *ptr);  /* general: before multi_heap's free */
void ch_task_describe(uint32_t owner); /* capheap_describe_block */
void ch_task_fork_prepare(void); /* fork: see capheap_caps_lock_all */
void ch_task_fork_parent(void);
void ch_task_fork_child(void);

/* The calling task's owner word: on the host a thread-local load once the
 * thread's first allocation has named it, elsewhere the tracker's (locked)
 * lookup. */
#if CAPHEAP_PORT_HOST && defined(__GNUC__)
#define CH_TASK_OWNER_TLS 1
extern __thread uint32_t ch_task_owner_tls __attribute__((tls_model("initial-exec")));
static inline uint32_t ch_task_owner(void)
{
    uint32_t own = ch_task_owner_tls;
    return own != 0 ? own : ch_task_owner_slow();
}
#else
#define CH_TASK_OWNER_TLS 0
static inline uint32_t ch_task_owner(void)
{
    return ch_task_owner_slow();
}
#endif

/* The fast paths' multi_heap call (speed builds: a registered heap, with a
 * lock; size not 0; fit: capheap_heap_fit(mh, size), n not 0), which leaves the block and its usable size in b (the
 * owner word written, the size read under the heap's lock): the block, or
 * NULL. Then CH_TASK_CHARGE charges the block p (not NULL) to heap slot
 * `heap`; its value is p (a tail call). With the word in a thread-local
 * (host), the charge reads it again: the heap call does not change it, and
 * nothing is kept across that call. */
#if CH_TASK_OWNER_TLS
#define CH_MADE(b) capheap_made_t b
#define CH_MH_MALLOC_FIT(mh, size, fit, b)                                                                 \
    ((b) = capheap_heap_malloc_owned_fit((mh), (size), (fit), ch_task_owner()), (b).p)
#define CH_TASK_CHARGE(p, heap, b) ch_task_charge((p), ch_task_owner_tls, (b).usable, (heap))
#else
typedef struct {
    capheap_made_t m;
    uint32_t owner;
} ch_made_t;
#define CH_MADE(b) ch_made_t b
#define CH_MH_MALLOC_FIT(mh, size, fit, b)                                                                 \
    ((b).owner = ch_task_owner(), (b).m = capheap_heap_malloc_owned_fit((mh), (size), (fit), (b).owner), (b).m.p)
#define CH_TASK_CHARGE(p, heap, b) ch_task_charge((p), (b).owner, (b).m.usable, (heap))
#endif
#else
#define CH_MADE(b) char b
#define CH_MH_MALLOC_FIT(mh, size, fit, b) ((void)(b), capheap_heap_malloc_fit((mh), (size), (fit)))
#define CH_TASK_CHARGE(p, heap, b) ((void)(b), (p))
#endif

#endif /* CAPHEAP_DEBUG_HOOKS_H */
