/*
 * target_libc.c - capheap as the C library's malloc on a target
 * (CAPHEAP_LIBC_MALLOC=ON, src/caps/libc.c), as ESP-IDF's libc glue makes it.
 *
 * The program boots heap_caps from board_map.h before anything allocates,
 * then uses the C allocation API directly and through the C library's own
 * allocating functions (strdup, asprintf, fopen): every block must come from
 * a capheap heap (capheap_heap_find), which also shows that picolibc's own
 * allocator is not linked beside the glue. It checks the glue's contracts
 * (calloc's overflow and zeroing, realloc keeping the contents, the
 * alignments, posix_memalign's error codes without errno, usable sizes), the
 * malloc policy (small requests internal, large ones external after
 * heap_caps_malloc_extmem_enable) and that a double free() is reported
 * through the firmware's abort hook (target_port.h).
 *
 * Built only in a CAPHEAP_LIBC_MALLOC configuration (scripts/target-test.sh:
 * m4-os-libc, rv-os-libc): there every program's malloc is capheap's.
 */
#define _POSIX_C_SOURCE 200809L /* strdup, posix_memalign */
#define _DEFAULT_SOURCE         /* asprintf (picolibc) */

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capheap/caps.h"
#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"

#include "board_map.h"
#include "target_port.h"

int asprintf(char **strp, const char *fmt, ...); /* not declared by every C library in C11 mode */
size_t malloc_usable_size(void *ptr);            /* the glue's; picolibc declares it in <malloc.h> */
void *memalign(size_t alignment, size_t size);

/* The name of the heap holding p, or NULL if p is in none. */
static const char *heap_name(const void *p)
{
    static capheap_heap_desc_t d;
    int k = capheap_heap_find(p);
    if (k < 0 || !capheap_heap_get((size_t)k, &d))
        return NULL;
    return d.name;
}

static bool in_heap(const void *p, const char *name)
{
    const char *n = heap_name(p);
    return n != NULL && strcmp(n, name) == 0;
}

static void check_api(void)
{
    char *a = malloc(100);
    CHECK(a != NULL && in_heap(a, "DRAM"), "malloc(100) not from DRAM");
    CHECK(malloc_usable_size(a) >= 100, "usable size %zu", malloc_usable_size(a));
    memset(a, 0x3C, 100);
    char *b = realloc(a, 3000);
    CHECK(b != NULL && in_heap(b, "DRAM"), "realloc to 3000 failed");
    bool kept = b != NULL;
    for (size_t i = 0; kept && i < 100; i++)
        kept = (unsigned char)b[i] == 0x3C;
    CHECK(kept, "realloc lost the contents");
    free(b);
    CHECK(malloc(0) == NULL, "malloc(0) is not NULL"); /* ESP-IDF's heap_caps_malloc(0) */

    unsigned char *z = calloc(40, 25);
    bool zero = z != NULL;
    for (size_t i = 0; zero && i < 1000; i++)
        zero = z[i] == 0;
    CHECK(zero && in_heap(z, "DRAM"), "calloc(40, 25) not zeroed DRAM");
    free(z);
    errno = 0;
    volatile size_t half = SIZE_MAX / 2; /* volatile: gcc rejects a constant product that overflows */
    CHECK(calloc(half, 3) == NULL && errno == ENOMEM, "calloc overflow: not NULL with ENOMEM");

    void *al = aligned_alloc(256, 1000);
    CHECK(al != NULL && ((uintptr_t)al & 255u) == 0 && heap_name(al) != NULL, "aligned_alloc(256) %p", al);
    free(al);
    void *m = memalign(64, 10);
    CHECK(m != NULL && ((uintptr_t)m & 63u) == 0 && heap_name(m) != NULL, "memalign(64) %p", m);
    free(m);
    void *pm = NULL;
    errno = 0;
    CHECK(posix_memalign(&pm, 128, 500) == 0 && ((uintptr_t)pm & 127u) == 0 && heap_name(pm) != NULL,
          "posix_memalign(128) %p", pm);
    free(pm);
    CHECK(posix_memalign(&pm, 3, 10) == EINVAL && posix_memalign(&pm, sizeof(void *) / 2u, 10) == EINVAL,
          "posix_memalign accepted a bad alignment");
    CHECK(errno == 0, "posix_memalign set errno (%d)", errno);
    free(NULL);
}

/* The C library's own allocating functions allocate through the glue. */
static void check_libc_users(const char *path)
{
    char *s = strdup("capheap on the target");
    CHECK(s != NULL && strcmp(s, "capheap on the target") == 0 && in_heap(s, "DRAM"), "strdup not from DRAM");
    free(s);
    char *t = NULL;
    int n = asprintf(&t, "%s %d", "block", 42);
    CHECK(n == 8 && t != NULL && strcmp(t, "block 42") == 0 && heap_name(t) != NULL,
          "asprintf not served by capheap (%d)", n);
    free(t);
    if (path != NULL) {
        size_t before = heap_caps_get_free_size(MALLOC_CAP_8BIT);
        FILE *f = fopen(path, "r");
        char line[64] = "";
        CHECK(f != NULL && fgets(line, sizeof line, f) != NULL, "fopen/fgets of %s failed", path);
        if (f != NULL)
            fclose(f);
        CHECK(heap_caps_get_free_size(MALLOC_CAP_8BIT) == before, "fopen+fclose leaked %zu bytes",
              before - heap_caps_get_free_size(MALLOC_CAP_8BIT));
    }
    CHECK(heap_caps_check_integrity_all(true), "integrity check failed");
}

/* ESP-IDF's malloc policy: internal memory first; with extmem enabled, requests of at least
 * the limit from external memory first. */
static void check_policy(void)
{
    void *small = malloc(64);
    void *big = malloc(64 * KIB);
    CHECK(in_heap(small, "DRAM") && in_heap(big, "DRAM"), "before extmem_enable: not internal");
    free(small);
    free(big);
    heap_caps_malloc_extmem_enable(4096);
    small = malloc(64);
    big = malloc(64 * KIB);
    CHECK(in_heap(small, "DRAM"), "small malloc not internal after extmem_enable");
    CHECK(in_heap(big, "SPIRAM"), "64 KiB malloc not external after extmem_enable(4096)");
    free(small);
    free(big);
    capheap_malloc_extmem_disable();
}

static void check_double_free(void)
{
    char *volatile p = malloc(48); /* volatile: gcc may delete a malloc that only free() sees */
    free(p);
    bool aborted;
    TP_EXPECT_ABORT(aborted, free(p));
    CHECK(aborted, "a double free() did not reach the abort hook");
    CHECK(heap_caps_check_integrity_all(true), "integrity check failed after the double free");
}

/* The heaps exist before anything allocates, as a firmware's start-up code makes them. */
__attribute__((constructor)) static void boot_heaps(void)
{
    heap_caps_init();
}

int main(int argc, char **argv)
{
    tp_program = "target_libc";
    size_t free0 = heap_caps_get_free_size(MALLOC_CAP_8BIT);
    check_api();
    check_libc_users(argc > 1 ? argv[1] : NULL);
    check_policy();
    check_double_free();
    CHECK(heap_caps_get_free_size(MALLOC_CAP_8BIT) == free0, "%zu bytes free at the end, %zu at the start",
          heap_caps_get_free_size(MALLOC_CAP_8BIT), free0);
    return tp_finish();
}
