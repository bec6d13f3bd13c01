/*
 * test_golden.c - the layout proof: a fixed seeded sequence of 5000
 * operations (malloc, aligned_alloc, aligned_alloc_offs, realloc, free) on a
 * 64 KiB heap registered with multi_heap_register() over a 4096-aligned
 * static buffer. Every allocation's offset from the region start, and the
 * whole block layout from multi_heap_walk() (raw offset, raw size, used)
 * every 500 operations, plus the counters, are written as text and compared
 * with tests/golden/multi_heap_ops_<poisoning>.txt.
 *
 * The same file must match in the 64-bit and the -m32 build: that proves the
 * metadata (control structure, block headers, links) has the same size on both,
 * i.e. a simulated 32-bit chip behaves on a 64-bit host exactly as on the chip.
 * Poisoning changes the layout, so there is one file per mode; so does task
 * tracking (every block carries a 4-byte owner word), so its builds compare
 * with multi_heap_ops_<poisoning>_tracking.txt, generated the same way.
 *
 * Usage: test_golden <golden-dir>
 *   CAPHEAP_GOLDEN_WRITE=1 test_golden <golden-dir>   (re)writes the file.
 * On a mismatch the first differing line is printed and the actual output is
 * written to golden_actual_<poisoning>.txt in the working directory.
 *
 * The operation sequence uses only fixed-width integers and a PRNG defined in
 * model_util.h, so it does not depend on the build; which block is freed or
 * reallocated is chosen by index into a list whose order depends only on the
 * sequence itself (and on which allocations failed, which is part of the
 * golden output too).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getpid, dirent, pthreads */

#include <inttypes.h>
#include <stdarg.h>

#include "model_util.h"

#define GOLDEN_REGION 65536u
#define GOLDEN_OPS 5000u
#define GOLDEN_SEED 0xCA9E0001u
#define GOLDEN_WALK_EVERY 500u
#define GOLDEN_MAX_LIVE 2048u

/* The golden file's name after the poisoning mode: task tracking's owner
 * words move blocks, so those builds have files of their own. */
#if CAPHEAP_TASK_TRACKING
#define GOLDEN_VARIANT "_tracking"
#else
#define GOLDEN_VARIANT ""
#endif

static _Alignas(4096) uint8_t g_region[GOLDEN_REGION];

/* ------------------------------------------------------------------ output text */

static char *g_out;
static size_t g_len, g_cap;

static void out(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static void out(const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(g_out + g_len, g_cap - g_len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            fprintf(stderr, "vsnprintf failed\n");
            exit(2);
        }
        if ((size_t)n < g_cap - g_len) {
            g_len += (size_t)n;
            return;
        }
        size_t nc = g_cap * 2 + (size_t)n + 1024;
        char *nb = (char *)realloc(g_out, nc);
        if (nb == NULL) {
            fprintf(stderr, "out of host memory\n");
            exit(2);
        }
        g_out = nb;
        g_cap = nc;
    }
}

/* ------------------------------------------------------------------ the sequence */

typedef struct {
    uint8_t *p;
    uint32_t size;
    uint32_t token;
} gblk_t;

static gblk_t g_live[GOLDEN_MAX_LIVE];
static uint32_t g_n;
static multi_heap_handle_t g_h;
static unsigned g_op;

static void die(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2), noreturn))
#endif
    ;

static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL test_golden (poisoning=%s) at op %u: ", MU_POISON_NAME, g_op);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

static uint32_t off_of(const void *p)
{
    return (uint32_t)((const uint8_t *)p - g_region);
}

/* Offset text of an allocation result ("-" for NULL). */
static const char *res(const void *p, char buf[16])
{
    if (p == NULL) {
        return "-";
    }
    snprintf(buf, 16, "%" PRIu32, off_of(p));
    return buf;
}

static uint32_t pick_size(mu_rng_t *r)
{
    uint32_t k = mu_rng_below(r, 100);
    if (k < 50) {
        return mu_rng_range(r, 1, 64);
    }
    if (k < 80) {
        return mu_rng_range(r, 1, 512);
    }
    if (k < 95) {
        return mu_rng_range(r, 1, 4096);
    }
    return mu_rng_range(r, 1, 16384);
}

static void add(void *p, uint32_t size)
{
    if (g_n == GOLDEN_MAX_LIVE) {
        die("too many live blocks");
    }
    gblk_t *b = &g_live[g_n++];
    b->p = (uint8_t *)p;
    b->size = size;
    b->token = mu_token(p);
    mu_stamp(p, size, b->token);
}

static void check_stamp(const gblk_t *b, size_t n)
{
    size_t bad = mu_stamp_check(b->p, n, b->token);
    if (bad != n) {
        die("block at offset %" PRIu32 " lost its stamp at byte %zu", off_of(b->p), bad);
    }
}

static void remove_at(uint32_t i)
{
    g_live[i] = g_live[--g_n];
}

static bool walk_line(void *block_ptr, size_t block_size, int used, void *user)
{
    (void)user;
    out("%c %" PRIu32 " %zu\n", used ? 'U' : 'F', off_of(block_ptr), block_size);
    return true;
}

static void snapshot(const char *when)
{
    multi_heap_info_t info;
    multi_heap_get_info(g_h, &info);
    out("walk %s\n", when);
    multi_heap_walk(g_h, walk_line, NULL);
    out("info free=%zu min=%zu largest=%zu allocated=%zu alloc_blocks=%zu free_blocks=%zu "
        "total_blocks=%zu\n",
        info.total_free_bytes, info.minimum_free_bytes, info.largest_free_block,
        info.total_allocated_bytes, info.allocated_blocks, info.free_blocks, info.total_blocks);
}

static void run_sequence(void)
{
    mu_rng_t rng = {GOLDEN_SEED};
    char b1[16];

    g_h = multi_heap_register(g_region, sizeof g_region);
    if (g_h == NULL) {
        die("multi_heap_register(64 KiB) failed");
    }
    out("# capheap golden layout (tests/golden/README.md). Regenerate: CAPHEAP_GOLDEN_WRITE=1\n");
    out("# multi_heap_register(4096-aligned buffer, %u), %u seeded operations, poisoning=%s%s\n",
        GOLDEN_REGION, GOLDEN_OPS, MU_POISON_NAME, CAPHEAP_TASK_TRACKING ? ", task tracking" : "");
    out("# op lines: <n> m <size> -> <offset>; a <size> <align>; o <size> <align> <offset>;\n");
    out("#           r <old-offset> <size>; f <offset>. '-' is NULL. walk lines: U|F <offset> <raw size>\n");
    out("region %u overhead %zu free %zu poison %zu\n", GOLDEN_REGION, capheap_heap_overhead(g_h),
        multi_heap_free_size(g_h), capheap_poison_overhead());
    snapshot("fresh");

    for (g_op = 0; g_op < GOLDEN_OPS; g_op++) {
        uint32_t r = mu_rng_below(&rng, 100);
        if (g_n == 0 || r < 38) {
            uint32_t size = pick_size(&rng);
            void *p = multi_heap_malloc(g_h, size);
            out("%u m %" PRIu32 " -> %s\n", g_op, size, res(p, b1));
            if (p) {
                add(p, size);
            }
        } else if (r < 48) {
            uint32_t size = pick_size(&rng);
            uint32_t align = 1u << mu_rng_range(&rng, 2, 10);
            void *p = multi_heap_aligned_alloc(g_h, size, align);
            out("%u a %" PRIu32 " %" PRIu32 " -> %s\n", g_op, size, align, res(p, b1));
            if (p) {
                if (((uintptr_t)p & (align - 1)) != 0) {
                    die("aligned_alloc(%" PRIu32 ", %" PRIu32 ") misaligned", size, align);
                }
                add(p, size);
            }
        } else if (r < 52) {
            uint32_t size = pick_size(&rng);
            uint32_t align = 1u << mu_rng_range(&rng, 3, 8);
            uint32_t offs = 4u * mu_rng_below(&rng, 9);
            void *p = multi_heap_aligned_alloc_offs(g_h, size, align, offs);
            out("%u o %" PRIu32 " %" PRIu32 " %" PRIu32 " -> %s\n", g_op, size, align, offs, res(p, b1));
            if (p) {
                if ((((uintptr_t)p + offs) & (align - 1)) != 0) {
                    die("aligned_alloc_offs misaligned");
                }
                add(p, size);
            }
        } else if (r < 66) {
            uint32_t i = mu_rng_below(&rng, g_n);
            gblk_t old = g_live[i];
            uint32_t k = mu_rng_below(&rng, 100);
            uint32_t size = k < 5 ? 0 : k < 55 ? old.size + mu_rng_range(&rng, 1, 1024)
                                               : mu_rng_range(&rng, 1, old.size);
            check_stamp(&old, old.size);
            void *p = multi_heap_realloc(g_h, old.p, size);
            out("%u r %" PRIu32 " %" PRIu32 " -> %s\n", g_op, off_of(old.p), size, res(p, b1));
            if (size == 0) {
                if (p != NULL) {
                    die("realloc(p, 0) returned non-NULL");
                }
                remove_at(i);
            } else if (p != NULL) {
                gblk_t moved = old;
                moved.p = (uint8_t *)p;
                check_stamp(&moved, old.size < size ? old.size : size);
                remove_at(i);
                add(p, size);
            } else {
                check_stamp(&old, old.size);
            }
        } else {
            uint32_t i = mu_rng_below(&rng, g_n);
            check_stamp(&g_live[i], g_live[i].size);
            out("%u f %" PRIu32 "\n", g_op, off_of(g_live[i].p));
            multi_heap_free(g_h, g_live[i].p);
            remove_at(i);
        }
        if (!multi_heap_check(g_h, true)) {
            die("multi_heap_check failed");
        }
        if ((g_op + 1) % GOLDEN_WALK_EVERY == 0) {
            char when[32];
            snprintf(when, sizeof when, "after %u", g_op + 1);
            snapshot(when);
        }
    }
    while (g_n > 0) {
        check_stamp(&g_live[g_n - 1], g_live[g_n - 1].size);
        multi_heap_free(g_h, g_live[g_n - 1].p);
        g_n--;
    }
    if (!multi_heap_check(g_h, true)) {
        die("multi_heap_check failed after freeing everything");
    }
    snapshot("after freeing everything");
}

/* ------------------------------------------------------------------ compare / write */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = (char *)malloc(cap + 1);
    for (;;) {
        if (buf == NULL) {
            fclose(f);
            return NULL;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) {
            break;
        }
        cap *= 2;
        buf = (char *)realloc(buf, cap + 1);
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static bool write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        return false;
    }
    bool ok = fwrite(text, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* Print the first line where a and b differ. */
static void report_difference(const char *a, const char *b)
{
    unsigned line = 1;
    const char *la = a, *lb = b;
    while (*a && *a == *b) {
        if (*a == '\n') {
            line++;
            la = a + 1;
            lb = b + 1;
        }
        a++;
        b++;
    }
    const char *ea = strchr(la, '\n'), *eb = strchr(lb, '\n');
    int na = ea ? (int)(ea - la) : (int)strlen(la);
    int nb = eb ? (int)(eb - lb) : (int)strlen(lb);
    fprintf(stderr, "first difference at line %u:\n  golden: %.*s\n  actual: %.*s\n", line, na, la, nb,
            lb);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <golden-dir>\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/multi_heap_ops_%s%s.txt", argv[1], MU_POISON_NAME, GOLDEN_VARIANT);
    printf("test_golden: %s (%d-bit build)\n", path, (int)(sizeof(void *) * 8));
    capheap_set_abort_handler(mu_abort_handler); /* a report aborts with its reason printed */

    g_cap = 1 << 18;
    g_out = (char *)malloc(g_cap);
    if (g_out == NULL) {
        return 2;
    }
    g_out[0] = '\0';
    run_sequence();

    if (mu_env_ull("CAPHEAP_GOLDEN_WRITE", 0) != 0) {
        if (!write_file(path, g_out, g_len)) {
            fprintf(stderr, "cannot write %s\n", path);
            return 1;
        }
        printf("wrote %s (%zu bytes)\ntest_golden: 1 passed, 0 failed\n", path, g_len);
        return 0;
    }
    size_t glen = 0;
    char *golden = read_file(path, &glen);
    if (golden == NULL) {
        fprintf(stderr, "FAIL: cannot read %s (generate it with CAPHEAP_GOLDEN_WRITE=1)\n", path);
        printf("test_golden: 0 passed, 1 failed\n");
        return 1;
    }
    if (glen == g_len && memcmp(golden, g_out, g_len) == 0) {
        printf("layout identical to the golden file (%zu bytes)\ntest_golden: 1 passed, 0 failed\n",
               g_len);
        free(golden);
        free(g_out);
        return 0;
    }
    report_difference(golden, g_out);
    char actual[256];
    snprintf(actual, sizeof actual, "golden_actual_%s%s.txt", MU_POISON_NAME, GOLDEN_VARIANT);
    if (write_file(actual, g_out, g_len)) {
        fprintf(stderr, "actual output written to %s; diff it against %s\n", actual, path);
    }
    printf("test_golden: 0 passed, 1 failed\n");
    free(golden);
    free(g_out);
    return 1;
}
