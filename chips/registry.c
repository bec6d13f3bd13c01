/*
 * registry.c - the built-in chips (placeholder registry until the chip
 * tables land: no chips yet, lookup always fails).
 */
#include <stddef.h>

#include "capheap/chip.h"

const capheap_chip_t *const capheap_chips[] = {NULL};
const size_t capheap_chip_count = 0;

const capheap_chip_t *capheap_chip_find(const char *name)
{
    (void)name;
    return NULL;
}
