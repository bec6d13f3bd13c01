/*
 * growth_test.c - how libcapheap_malloc.so grows its heaps, in a fresh process
 * (so that the regions it maps are those of this test alone), under LD_PRELOAD.
 *
 *   LD_PRELOAD=build/preload/libcapheap_malloc.so build/tests/preload/preload_growth_test
 *
 *   1. mmap refusing the geometric size: with RLIMIT_AS leaving room for about
 *      56 MiB more, malloc(40 MiB) still succeeds (the region asked for is
 *      halved down to what the request needs, preload/region.c "GROWTH" 5);
 *      malloc(200 MiB), for which even that fails, is NULL, ENOMEM, promptly;
 *      the success leaves errno as it was (the refused mappings set it);
 *   2. 64-bit only: 64 GiB of 32 MiB blocks, all live at once: the regions
 *      double up to the 2 GiB cap, so that this fits in the 64-region registry
 *      (docs/preload.md: about 118 GiB of regions). Only one byte of each
 *      block is written: address space, not memory;
 *   3. fork: the child and the parent each grow the heaps after a fork (a
 *      request no free block can hold), so the growth mutex the fork handlers
 *      take is usable on both sides (docs/preload.md, "Threads and fork").
 *
 * A hang (a lock held for ever, a loop that never gives up) is turned into
 * SIGALRM, which fails the test. Output is TAP-like, as api_test.c; the exit
 * status is the number of failures.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

#define MIB ((size_t)1 << 20)

/* Where results go that the compiler must not reason about (with opaque(), tap.h). */
static void *volatile sink;

/* 1: growth when mmap refuses the size it would like. The first region (32 MiB
 * on 64-bit, 4 MiB on 32-bit) exists; malloc(40 MiB) needs a new one, and the
 * geometric size for it (128 MiB) and its half are above the limit. */
static void test_address_space_limit(void)
{
    struct rlimit saved;
    if (getrlimit(RLIMIT_AS, &saved) != 0) {
        check(false, "getrlimit(RLIMIT_AS)", strerror(errno));
        return;
    }
    free(malloc(16)); /* the first region */
    size_t now = proc_status_bytes("VmSize");
    if (now == 0) {
        check(false, "VmSize from /proc/self/status", NULL);
        return;
    }
    struct rlimit lim = saved;
    lim.rlim_cur = (rlim_t)(now + 56u * MIB);
    if (saved.rlim_max != RLIM_INFINITY && lim.rlim_cur > saved.rlim_max) {
        printf("# RLIMIT_AS hard limit too low: test 1 skipped\n");
        return;
    }
    if (setrlimit(RLIMIT_AS, &lim) != 0) {
        check(false, "setrlimit(RLIMIT_AS)", strerror(errno));
        return;
    }
    alarm(30);
    errno = 0;
    unsigned char *p = malloc(opaque(40u * MIB));
    int err = errno;
    check(p != NULL, "RLIMIT_AS 56 MiB above VmSize: malloc(40 MiB) succeeds (a smaller region)", strerror(err));
    check(p == NULL || err == 0, "the larger mappings refused before it leave no errno behind", strerror(err));
    if (p != NULL) {
        p[0] = 1;
        p[40u * MIB - 1u] = 2;
    }
    errno = 0;
    sink = malloc(opaque(200u * MIB));
    err = errno;
    check(sink == NULL && err == ENOMEM, "RLIMIT_AS: malloc(200 MiB), no region mappable: NULL, ENOMEM", NULL);
    alarm(0);
    free(p);
    if (setrlimit(RLIMIT_AS, &saved) != 0)
        check(false, "setrlimit(RLIMIT_AS) restored", strerror(errno));
}

/* 2: geometric growth, 64-bit. Not under comprehensive poisoning, where the
 * engine fills every free byte of a new region with 0xFE (64 GiB written). */
static bool geometric_ran;
static void test_geometric(void)
{
    if (sizeof(void *) != 8)
        return;
    const char *poisoning = getenv("CAPHEAP_PRELOAD_POISONING");
    if (poisoning != NULL && strcmp(poisoning, "COMPREHENSIVE") == 0) {
        printf("# poisoning COMPREHENSIVE: it would write 64 GiB, test 2 skipped\n");
        return;
    }
    geometric_ran = true;
    enum { COUNT = 2048 }; /* x 32 MiB = 64 GiB */
    static unsigned char *b[COUNT];
    size_t sz = 32u * MIB;
    int got = 0;
    for (int i = 0; i < COUNT; i++) {
        b[i] = malloc(opaque(sz));
        if (b[i] == NULL)
            break;
        b[i][0] = (unsigned char)i;
        got++;
    }
    bool intact = true;
    for (int i = 0; i < got; i++) {
        if (b[i][0] != (unsigned char)i)
            intact = false;
        free(b[i]);
    }
    char detail[64];
    snprintf(detail, sizeof detail, "%d of %d blocks", got, (int)COUNT);
    check(got == COUNT && intact, "64 GiB of 32 MiB blocks at once: the regions double up to 2 GiB", detail);
}

/* 3: a request larger than any free block, so that it maps a region: 3 GiB
 * after test 2 (its regions are 2 GiB), else 100 MiB (test 1's are below). */
static size_t growing_size(void)
{
    return geometric_ran ? (size_t)3 << 30 : (size_t)100 << 20;
}

static int child_grows(void)
{
    alarm(20);
    unsigned char *p = malloc(opaque(growing_size()));
    if (p == NULL)
        return 3;
    p[0] = 1;
    free(p);
    return 0;
}

static void test_fork_growth(void)
{
    free(malloc(100)); /* a region exists, so the fork handlers are registered */
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        check(false, "fork", strerror(errno));
        return;
    }
    if (pid == 0)
        _exit(child_grows());
    int status = 0;
    char why[96] = "";
    bool ok = waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok)
        snprintf(why, sizeof why, "status 0x%x%s", (unsigned)status,
                 WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (deadlock: SIGALRM)" : "");
    check(ok, "fork: the child maps a new region", why);

    printf("# the parent grows after the fork; a hang here (SIGALRM) is a growth mutex left locked\n");
    fflush(stdout);
    alarm(30);
    unsigned char *p = malloc(opaque(growing_size()));
    alarm(0);
    check(p != NULL, "fork: the parent maps a new region", NULL);
    if (p != NULL)
        p[0] = 1;
    free(p);
}

int main(void)
{
    (void)check_preloaded("malloc");
    if (failures) {
        printf("# not running under libcapheap_malloc.so: stopping\n");
        return 1;
    }
    test_address_space_limit();
    test_geometric(); /* before any request above the 2 GiB cap, which moves the geometric size to the cap */
    test_fork_growth();

    printf("1..%d\n", checks);
    if (failures != 0)
        printf("# %d of %d checks failed\n", failures, checks);
    return failures > 100 ? 100 : failures;
}
