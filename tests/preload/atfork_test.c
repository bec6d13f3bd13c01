/*
 * atfork_test.c - fork handlers of the program that allocate, registered
 * before the program's first malloc (run with LD_PRELOAD, tests/preload).
 *
 * glibc's malloc takes its locks after every prepare handler and releases
 * them before any child handler, so a program's handlers may allocate. The
 * preload library registered its handlers at its first malloc, so handlers
 * registered before that ran in the wrong place around its locks: an
 * allocating prepare blocked on the registry lock, an allocating child
 * handler on a heap lock the parent's thread held (an audit found both
 * hanging fork). The library now registers its handlers from a constructor.
 * Nothing here touches stdio or malloc before pthread_atfork. A deadlock
 * ends in SIGALRM; exit 0 means both forks worked.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile kept;

static void say(const char *s)
{
    ssize_t n = write(2, s, strlen(s));
    (void)n;
}

static void prepare(void)
{
    kept = malloc(100000); /* may grow */
}

static void parent(void)
{
    free(kept);
    kept = NULL;
}

static void child(void)
{
    alarm(10); /* an alarm is not inherited: the child's own deadlock ends too */
    void *p = malloc(100);
    if (p == NULL)
        _exit(3);
    free(p);
}

int main(void)
{
    if (pthread_atfork(prepare, parent, child) != 0)
        return 2;
    alarm(10);
    for (int k = 0; k < 2; k++) {
        pid_t pid = fork();
        if (pid < 0)
            return 4;
        if (pid == 0) {
            void *q = malloc(1000);
            _exit(q == NULL ? 5 : 0);
        }
        int st = 0;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            say("not ok - a child of fork failed\n");
            return 1;
        }
    }
    say("ok - fork with allocating handlers registered before the first malloc\n");
    return 0;
}
