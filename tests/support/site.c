/*
 * site.c - where a call returns to (support.h, group 6).
 *
 * A heap-tracing test checks that a record's alloced_by[0] lies in the
 * function that made the allocation. It takes the function's address as the
 * lower bound and, as the upper one, the address where a call of
 * ct_call_site() placed after the allocation returns to. The function lives
 * here, in a library of its own, so no compiler can inline it into the test.
 */
#include "support.h"

CT_NOINLINE void *ct_call_site(void)
{
    return __builtin_return_address(0);
}

/* Bytes of the function past the call that marked after: the rest of the
 * function after its last ct_call_site(), a few instructions. */
#define CT_SITE_SLACK 64u

bool ct_site_within(uintptr_t site, uintptr_t fn, uintptr_t after)
{
    return site >= fn && site < after + CT_SITE_SLACK;
}
