/*
 * target_main.c - main() of every program in tests/target: the environment a
 * bare-metal program does not have.
 *
 * QEMU's semihosting passes a command line but no environment, and the host
 * test programs read their settings from environment variables (CAPHEAP_SEED
 * to replay a seed, CAPHEAP_MODEL_STEPS, ...). So an argument of the form
 * NAME=VALUE (NAME in capitals, digits and '_') is set with setenv() and
 * dropped from argv; the rest goes to the test's own main, which the build
 * renames to capheap_target_main (tests/target/CMakeLists.txt), with or
 * without (argc, argv) as CAPHEAP_TARGET_MAIN_ARGS says. Code built without
 * unaligned accesses for Cortex-M also makes them fault (trap_unaligned).
 */
#define _POSIX_C_SOURCE 200809L /* setenv */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if CAPHEAP_TARGET_MAIN_ARGS
int capheap_target_main(int argc, char **argv);
#else
int capheap_target_main(void);
#endif

#if defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M' && !defined(__ARM_FEATURE_UNALIGNED)
/* Code built without unaligned accesses (Armv6-M such as the Cortex-M0+, or
 * -mno-unaligned-access, as a firmware that traps them builds): the
 * Cortex-M4 it runs on here is made to fault on an unaligned word or
 * halfword access (SCB->CCR.UNALIGN_TRP), as an Armv6-M core always does,
 * before any constructor or test code runs. Such an access could then only
 * come from a misaligned pointer the C code dereferences. QEMU reports the
 * fault ("ARM fault: hardfault") and exits with status 1. */
__attribute__((constructor(101))) static void trap_unaligned(void)
{
    *(volatile unsigned long *)0xE000ED14u |= 1ul << 3;
}
#endif

/* True if arg is NAME=VALUE with NAME made of A-Z, 0-9 and '_' (not starting with a digit). */
static bool is_setting(const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg || (*arg >= '0' && *arg <= '9'))
        return false;
    for (const char *c = arg; c < eq; c++) {
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_'))
            return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        if (!is_setting(argv[i])) {
            argv[kept++] = argv[i];
            continue;
        }
        char *eq = strchr(argv[i], '=');
        *eq = '\0';
        if (setenv(argv[i], eq + 1, 1) != 0) {
            fprintf(stderr, "target_main: setenv(%s) failed\n", argv[i]);
            return 2;
        }
        *eq = '=';
    }
    argv[kept] = NULL;
    fflush(stdout);
#if CAPHEAP_TARGET_MAIN_ARGS
    return capheap_target_main(kept, argv);
#else
    (void)kept;
    return capheap_target_main();
#endif
}
