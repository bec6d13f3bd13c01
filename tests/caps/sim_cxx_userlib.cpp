/*
 * sim_cxx_userlib.cpp - a user's static library for test_sim_cxx.cpp. The test
 * links it between capheap_sim_cxx and capheap_sim_libc on the link line (as
 * CMake does for target_link_libraries(app capheap::capheap_sim_cxx mylib)),
 * so that heap tracing must tell its code from the simulator's wrappers
 * around it.
 */
#include "sim_cxx_userlib.h"

#include "support.h"

void *volatile sim_userlib_after;

CT_NOINLINE int *sim_userlib_new(void)
{
    int *p = new int[6];
    sim_userlib_after = ct_call_site(); /* an address in this function after the new */
    return p;
}
