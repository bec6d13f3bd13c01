/*
 * tests/support/support.h - helpers shared by every capheap test program.
 *
 * Built as the static library `capheap_test_support` (tests/CMakeLists.txt);
 * link it and `#include "support.h"`. It depends on capheap only (not on
 * cmocka), so unit tests, the model test and fuzz drivers can all use it.
 * Nothing here allocates from a capheap heap, and nothing is thread-safe
 * except group 7: call it from the test's main thread.
 *
 * Seven groups, each prefixed ct_ ("capheap test"):
 *
 *  1. Abort catching. capheap ends every misuse report in the abort handler
 *     (capheap/port.h). CT_CATCH_ABORT runs a statement with a handler
 *     installed that longjmps back, so a test can assert that the abort was
 *     reached and then look at capheap_last_report():
 *
 *         bool aborted;
 *         CT_CATCH_ABORT(aborted, multi_heap_free(heap, p));   // double free
 *         assert_true(aborted);
 *         assert_string_equal(capheap_last_report().what, "Double free");
 *
 *     An abort outside CT_CATCH_ABORT prints the reason and calls the C
 *     library's abort(), so an unexpected report still fails the test.
 *     Locals written inside the statement and read after an abort must be
 *     volatile (C11 7.13.2.1). Do not nest CT_CATCH_ABORT. A lock held by the
 *     heap when it aborted stays held (it is recursive, so the same thread
 *     can go on; do not combine misuse tests with locks on other threads).
 *
 *  2. Output capture. ct_capture_begin() replaces capheap's writer
 *     (capheap_set_writer) with one that appends to a static buffer;
 *     ct_capture_end() puts the previous writer back. The text stays readable
 *     until the next ct_capture_begin()/ct_capture_clear().
 *
 *  3. Stamping. ct_stamp(p, n) fills n bytes with a pattern derived from the
 *     address p (a token), ct_stamp_ok(p, n) tells whether they are intact.
 *     A block that moves (realloc) keeps the old token: remember it with
 *     ct_token(old) and use ct_stamp_ok_token(new, n, token).
 *
 *  4. Replayable randomness. ct_seed(name) returns the seed from the
 *     environment variable CAPHEAP_SEED (decimal or 0x-hex; "random" picks
 *     one from the clock), else CT_DEFAULT_SEED, and prints
 *     "<name>: CAPHEAP_SEED=<seed>" to stdout so every run can be replayed.
 *     ct_rng_t is a small splitmix64 generator.
 *
 *  5. Heap facts. Expected block capacities for the build's poisoning mode,
 *     a walk summary (counts, sums, tiling, address order), and the
 *     "largest_free_block is honest" probe.
 *
 *  6. Call sites. ct_call_site() returns the address its caller resumes at
 *     (a position inside the caller, just after the call), and CT_NOINLINE
 *     keeps a function a real frame of its own: heap-tracing tests bound the
 *     call site they expect with them (ct_site_within).
 *
 *  7. Failures in threads. cmocka's assertions are not thread-safe: a test's
 *     threads record their first failure with ct_fail_in_thread(fmt, ...)
 *     and stop; the main thread joins them and fails with
 *     ct_thread_failure() if ct_thread_failed().
 */
#ifndef CAPHEAP_TEST_SUPPORT_H
#define CAPHEAP_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capheap/config.h"
#include "capheap/heap.h"
#include "capheap/port.h"
#include "capheap/report.h"
#include "multi_heap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Build facts                                                               */
/* ------------------------------------------------------------------------ */

/** 1 when this build of capheap poisons blocks (light or comprehensive). */
#if CAPHEAP_POISONING_LIGHT || CAPHEAP_POISONING_COMPREHENSIVE
#define CT_POISONING 1
#else
#define CT_POISONING 0
#endif

/** Name of the poisoning mode ("none", "light", "comprehensive"). */
const char *ct_poisoning_name(void);

/** Canaries and fill bytes of capheap's (and ESP-IDF's) poisoning. */
#define CT_HEAD_CANARY 0xABBA1234u
#define CT_TAIL_CANARY 0xBAAD5678u
#define CT_FREE_FILL 0xFEu
#define CT_MALLOC_FILL 0xCEu

/** Bytes of the owner word task tracking builds end every block with
 *  (src/heap/heap_private.h); 0 without task tracking. */
#if CAPHEAP_TASK_TRACKING
#define CT_OWNER_BYTES 4u
#else
#define CT_OWNER_BYTES 0u
#endif

/** Bytes of the block header in front of every block's raw data. */
#define CT_BLOCK_HEADER 4u
/** Smallest raw block capacity (block size 16 minus the header). */
#define CT_MIN_CAPACITY 12u

/** Poison head size for a heap alignment: 8 (alignment 4/8) or 16; 0 without poisoning. */
size_t ct_poison_head(size_t alignment);

/* The 4-byte block header in front of the raw data of user pointer p (4-aligned heaps). */
unsigned char *ct_header_of(void *p);
/* A 32-bit word at any address, read or written without alignment assumptions. */
uint32_t ct_get32(const void *at);
void ct_put32(void *at, uint32_t v);
/* One byte, for tests that corrupt canaries or padding on purpose: not
 * instrumented, so capheap's ASan poisoning does not stop them first. */
uint8_t ct_peek8(const void *at);
void ct_poke8(void *at, uint8_t v);
/**
 * Per-block overhead beyond the 4-byte header for a heap alignment, what
 * capheap_heap_poison_overhead() reports: poisoning's head + tail (padded)
 * and the owner word of task tracking builds; 0 with neither.
 */
size_t ct_poison_overhead(size_t alignment);
/**
 * That overhead for the heap h (by its alignment): what free_size and
 * largest_free_block subtract once and get_allocated_size subtracts per block.
 */
size_t ct_heap_poison_overhead(multi_heap_handle_t h);

/** x rounded up to a multiple of the power of two a (no overflow check). */
static inline size_t ct_round_up(size_t x, size_t a)
{
    return (x + a - 1u) & ~(a - 1u);
}

/**
 * Raw block capacity (what multi_heap_get_full_block_size() reports) that
 * malloc(n) gets from a large free block of a 4-aligned heap in this build:
 * max(12, round_up(n + per-block overhead, 4)).
 */
size_t ct_expected_full_size(size_t n);
/** Usable bytes malloc(n) gets in a 4-aligned heap: full size minus the per-block overhead. */
size_t ct_expected_usable_size(size_t n);

/* ------------------------------------------------------------------------ */
/* 1. Abort catching                                                          */
/* ------------------------------------------------------------------------ */

/** Jump target of the armed abort handler. Use CT_CATCH_ABORT, not this. */
extern jmp_buf ct_abort_env;

/** Install the handler (idempotent) and arm it. */
void ct_abort_arm(void);
/** Disarm: a later abort prints its reason and calls abort(). */
void ct_abort_disarm(void);
/** Aborts caught since the program started. */
unsigned ct_abort_count(void);
/** Reason string of the last abort caught ("" if none). */
const char *ct_abort_reason(void);

/**
 * Run stmt; set the bool lvalue `aborted` to true iff the abort handler was
 * reached (control comes back here by longjmp), false if stmt completed.
 */
#define CT_CATCH_ABORT(aborted, stmt)                                                    \
    do {                                                                                 \
        ct_abort_arm();                                                                  \
        if (setjmp(ct_abort_env) == 0) {                                                 \
            stmt;                                                                        \
            ct_abort_disarm();                                                           \
            (aborted) = false;                                                           \
        } else {                                                                         \
            ct_abort_disarm();                                                           \
            (aborted) = true;                                                            \
        }                                                                                \
    } while (0)

/* ------------------------------------------------------------------------ */
/* 2. Output capture                                                          */
/* ------------------------------------------------------------------------ */

/** Size of the capture buffer; text beyond it is dropped (ct_capture_overflowed()). */
#define CT_CAPTURE_BYTES (256u * 1024u)

/** Clear the buffer and route capheap's output into it. */
void ct_capture_begin(void);
/** Restore the writer that was active before ct_capture_begin(). */
void ct_capture_end(void);
/** Empty the buffer (capture stays active). */
void ct_capture_clear(void);
/** NUL-terminated captured text. */
const char *ct_capture_text(void);
/** Bytes captured. */
size_t ct_capture_len(void);
/** Number of times the writer was called since the last clear. */
size_t ct_capture_calls(void);
/** True if text was dropped because the buffer was full. */
bool ct_capture_overflowed(void);
/** True iff needle occurs in the captured text. */
bool ct_capture_contains(const char *needle);
/** Non-overlapping occurrences of needle in the captured text. */
size_t ct_capture_count(const char *needle);
/**
 * Copy line number `index` (0-based, without its '\n') into out (cut to
 * out_size - 1). Returns false if there is no such line.
 */
bool ct_capture_line(size_t index, char *out, size_t out_size);
/** Number of lines (a last line without '\n' counts). */
size_t ct_capture_lines(void);

/* ------------------------------------------------------------------------ */
/* 3. Stamping                                                                */
/* ------------------------------------------------------------------------ */

/** Token derived from an address (a mixed hash of its value). */
uint32_t ct_token(const void *p);
/** Fill n bytes at p with the pattern of ct_token(p). */
void ct_stamp(void *p, size_t n);
/** Fill n bytes at p with the pattern of the given token. */
void ct_stamp_token(void *p, size_t n, uint32_t token);
/** True iff the n bytes at p still hold the pattern of ct_token(p). */
bool ct_stamp_ok(const void *p, size_t n);
/** True iff the n bytes at p hold the pattern of token. */
bool ct_stamp_ok_token(const void *p, size_t n, uint32_t token);
/** Byte i of the pattern of token. */
uint8_t ct_stamp_byte(uint32_t token, size_t i);

/* ------------------------------------------------------------------------ */
/* 4. Replayable randomness                                                   */
/* ------------------------------------------------------------------------ */

/** Seed used when CAPHEAP_SEED is not set. */
#define CT_DEFAULT_SEED 0x5EEDCA9u

/** Seed from CAPHEAP_SEED (see above), printed as "<name>: CAPHEAP_SEED=<seed>". */
uint64_t ct_seed(const char *name);

typedef struct {
    uint64_t state;
} ct_rng_t;

void ct_rng_init(ct_rng_t *rng, uint64_t seed);
uint64_t ct_rng_next(ct_rng_t *rng);
/** Uniform in [0, n) (n > 0). */
uint64_t ct_rng_below(ct_rng_t *rng, uint64_t n);
/** Uniform in [lo, hi] (lo <= hi). */
uint64_t ct_rng_range(ct_rng_t *rng, uint64_t lo, uint64_t hi);

/* ------------------------------------------------------------------------ */
/* 5. Heap facts                                                              */
/* ------------------------------------------------------------------------ */

/** What one multi_heap_walk() over a heap saw. */
typedef struct {
    size_t blocks;           /**< blocks visited */
    size_t used_blocks;      /**< blocks with block_used != 0 */
    size_t free_blocks;      /**< blocks with block_used == 0 */
    size_t used_raw;         /**< sum of (block_size + 4) over used blocks */
    size_t free_raw;         /**< sum of (block_size + 4) over free blocks */
    size_t largest_free;     /**< largest block_size of a free block */
    const void *first;       /**< block_ptr of the first block (NULL if none) */
    const void *end;         /**< block_ptr + block_size of the last block */
    bool ordered;            /**< block pointers strictly increasing */
    bool contiguous;         /**< each block starts 4 bytes after the previous one ends */
    bool adjacent_free;      /**< two free blocks were neighbours (should never be) */
} ct_walk_summary_t;

/** Walk h and summarise it. */
void ct_walk_summary(multi_heap_handle_t h, ct_walk_summary_t *out);

/**
 * The "largest_free_block is honest" probe: with L from multi_heap_get_info,
 * malloc(L) must succeed (when L > 0) and malloc(L + 1) must fail. Leaves the
 * heap as it found it (the minimum-free mark included). Returns true iff
 * honest; *largest_out (may be NULL) receives L.
 */
bool ct_largest_is_honest(multi_heap_handle_t h, size_t *largest_out);

/* ------------------------------------------------------------------------ */
/* 6. Call sites                                                             */
/* ------------------------------------------------------------------------ */

/** Never inlined, nor cloned into a copy elsewhere (clang clones nothing it
 *  would not also inline), so the function is a frame of its own. */
#if defined(__clang__)
#define CT_NOINLINE __attribute__((noinline))
#elif defined(__GNUC__)
#define CT_NOINLINE __attribute__((noinline, noclone))
#else
#define CT_NOINLINE
#endif

/** The address the caller resumes at after this call: a position inside the
 *  caller (its return address, read in a function that is never inlined). */
void *ct_call_site(void);

/** Is site (a trace record's alloced_by[0]) in the function that starts at fn?
 *  after is what a ct_call_site() made in that function after its allocation
 *  returned; the bound allows for a few instructions past it. */
bool ct_site_within(uintptr_t site, uintptr_t fn, uintptr_t after);

/* ------------------------------------------------------------------------ */
/* 7. Failures in threads (thread-safe)                                       */
/* ------------------------------------------------------------------------ */

/** Record a failure (printf-style) unless one is recorded already: the first one is kept. */
void ct_fail_in_thread(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/** True once a failure is recorded (since the last reset). */
bool ct_thread_failed(void);
/** The recorded failure's text ("" if none); read it after the threads have ended. */
const char *ct_thread_failure(void);
/** Forget the recorded failure: before a test starts its threads. */
void ct_thread_failure_reset(void);

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_TEST_SUPPORT_H */
