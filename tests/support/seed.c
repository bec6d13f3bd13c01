/*
 * seed.c - replayable randomness: the seed comes from CAPHEAP_SEED and is
 * always printed, so any failing random run can be repeated exactly.
 */
#include "support.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t ct_seed(const char *name)
{
    const char *env = getenv("CAPHEAP_SEED");
    uint64_t seed = CT_DEFAULT_SEED;
    if (env && *env) {
        if (strcmp(env, "random") == 0) {
            struct timespec ts;
            timespec_get(&ts, TIME_UTC);
            seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
        } else {
            char *end = NULL;
            unsigned long long v = strtoull(env, &end, 0);
            if (end && *end == '\0') {
                seed = (uint64_t)v;
            } else {
                fprintf(stderr, "%s: ignoring malformed CAPHEAP_SEED=\"%s\"\n", name, env);
            }
        }
    }
    printf("%s: CAPHEAP_SEED=%" PRIu64 "\n", name, seed);
    fflush(stdout);
    return seed;
}

void ct_rng_init(ct_rng_t *rng, uint64_t seed)
{
    rng->state = seed;
}

/* splitmix64 */
uint64_t ct_rng_next(ct_rng_t *rng)
{
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t ct_rng_below(ct_rng_t *rng, uint64_t n)
{
    /* Rejection keeps the result uniform. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do {
        v = ct_rng_next(rng);
    } while (v >= limit);
    return v % n;
}

uint64_t ct_rng_range(ct_rng_t *rng, uint64_t lo, uint64_t hi)
{
    if (hi - lo == UINT64_MAX) {
        return ct_rng_next(rng);
    }
    return lo + ct_rng_below(rng, hi - lo + 1u);
}
