/* sim_cxx_userlib.h - the test's user library (sim_cxx_userlib.cpp). */
#ifndef SIM_CXX_USERLIB_H
#define SIM_CXX_USERLIB_H

/* new int[6], from the library's own code. */
int *sim_userlib_new(void);

/* An address inside sim_userlib_new after its new, set by each call. */
extern void *volatile sim_userlib_after;

#endif
