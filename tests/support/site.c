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
