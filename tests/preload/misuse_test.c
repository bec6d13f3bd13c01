/*
 * misuse_test.c - misuse under LD_PRELOAD is reported and aborts, as
 * docs/preload.md says (run with LD_PRELOAD, tests/preload).
 *
 * The preload's free, realloc and malloc_usable_size are heap_caps_free,
 * heap_caps_realloc_default and heap_caps_get_allocated_size: a pointer no
 * heap owns, a double free and an interior pointer end in one "CORRUPT
 * HEAP" line on stderr naming the pointer, then abort() (glibc: "free():
 * invalid pointer" and abort, the same outcome). Each case runs in a child
 * whose stderr goes to a pipe; the parent checks the signal and the line.
 * A case that returns instead of aborting is a silent acceptance, the
 * failure this test exists for. Without poisoning, a double free is
 * detected only while the block is still free, so the child frees and
 * frees again at once.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

static char static_bytes[64];

/* Each case: what the child does, and what its report must say. */
typedef enum { FREE_STACK, FREE_STATIC, DOUBLE_FREE, FREE_INTERIOR, REALLOC_FOREIGN, USABLE_FOREIGN } kind_t;

static const struct {
    kind_t kind;
    const char *name;
    const char *what; /* part of the report line */
} cases[] = {
    {FREE_STACK, "free of a stack address", "target pointer is outside heap areas"},
    {FREE_STATIC, "free of a static object", "target pointer is outside heap areas"},
    {DOUBLE_FREE, "double free", "Double free"},
    {FREE_INTERIOR, "free of an interior, misaligned pointer", "Interior pointer"},
    {REALLOC_FOREIGN, "realloc of a stack address", "target pointer is outside heap areas"},
    {USABLE_FOREIGN, "malloc_usable_size of a stack address", "target pointer is outside heap areas"},
};

/* The child: the misuse, whose pointer goes to the parent first (the
 * report must name it). Returns only if nothing stopped it. */
static void misuse(kind_t kind, int to_parent)
{
    char local[32];
    void *volatile p = NULL;
    switch (kind) {
    case FREE_STACK:
    case REALLOC_FOREIGN:
    case USABLE_FOREIGN:
        p = local + 16;
        break;
    case FREE_STATIC:
        p = static_bytes + 8;
        break;
    case DOUBLE_FREE:
        p = malloc(opaque(48));
        free(p);
        break;
    case FREE_INTERIOR:
        p = (char *)malloc(opaque(64)) + 1;
        break;
    }
    uintptr_t v = (uintptr_t)p;
    if (write(to_parent, &v, sizeof v) != (ssize_t)sizeof v)
        _exit(5);
    switch (kind) {
    case REALLOC_FOREIGN:
        p = realloc(p, opaque(100));
        break;
    case USABLE_FOREIGN:
        v = malloc_usable_size(p);
        break;
    default:
        free(p);
        break;
    }
}

static void run(size_t i)
{
    int err[2], addr[2];
    if (pipe(err) != 0 || pipe(addr) != 0) {
        check(false, cases[i].name, "pipe failed");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        check(false, cases[i].name, "fork failed");
        return;
    }
    if (pid == 0) {
        alarm(10);
        dup2(err[1], 2);
        close(err[0]);
        close(addr[0]);
        misuse(cases[i].kind, addr[1]);
        _exit(0); /* not stopped: the misuse was accepted */
    }
    close(err[1]);
    close(addr[1]);
    uintptr_t p = 0;
    ssize_t got = read(addr[0], &p, sizeof p);
    close(addr[0]);
    char text[4096];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof text - 1 && (n = read(err[0], text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)n;
    text[len] = '\0';
    close(err[0]);
    int status = 0;
    waitpid(pid, &status, 0);

    char what[128], detail[4500];
    snprintf(detail, sizeof detail, "status 0x%x, stderr: %s", (unsigned)status, len ? text : "(empty)");
    snprintf(what, sizeof what, "%s: aborted", cases[i].name);
    check(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, what, detail);
    char line[160];
    snprintf(line, sizeof line, "CORRUPT HEAP: %s at 0x%lx", cases[i].what, (unsigned long)p);
    snprintf(what, sizeof what, "%s: reported as \"%s\"", cases[i].name, line);
    check(got == (ssize_t)sizeof p && strstr(text, line) != NULL, what, detail);
}

int main(void)
{
    (void)check_preloaded("free");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run(i);
    printf("1..%d\n", checks);
    return failures > 100 ? 100 : failures;
}
