/*
 * libc_glue_main.c - a firmware whose C library allocates on its own behalf:
 * strdup, asprintf and stdio's buffers call newlib's _malloc_r / _free_r, not
 * malloc / free. scripts/check_libc_glue.sh links it against a Cortex-M4
 * libcapheap.a built with CAPHEAP_LIBC_MALLOC=ON and checks that those calls
 * reach capheap's glue (src/caps/libc.c), not newlib's own allocator.
 */
#define _GNU_SOURCE /* asprintf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *s = strdup("capheap");
    free(s);
    char *t = NULL;
    if (asprintf(&t, "%d", 42) > 0)
        free(t);
    void *p = realloc(NULL, 64);
    free(p);
    printf("%s\n", "done");
    return 0;
}
