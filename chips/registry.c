/*
 * chips/registry.c - the built-in chip tables, by name.
 *
 * Adding a chip: one data file chips/<name>.c defining capheap_chip_<name>
 * (docs/adding-a-chip.md), its extern in capheap/chip.h, and one line in
 * capheap_chips[] below. tests/caps/test_chips.c then checks it.
 */
#include <stddef.h>

#include "capheap/chip.h"

const capheap_chip_t *const capheap_chips[] = {
    &capheap_chip_esp32,
    &capheap_chip_esp32s2,
    &capheap_chip_esp32s3,
    &capheap_chip_esp32c3,
    &capheap_chip_esp32c6,
    &capheap_chip_esp32h2,
    &capheap_chip_esp32p4,
    &capheap_chip_stm32h743,
    &capheap_chip_imxrt1062,
    &capheap_chip_rp2350,
    &capheap_chip_nrf52840,
    &capheap_chip_mpfs,
};

const size_t capheap_chip_count = sizeof capheap_chips / sizeof capheap_chips[0];

/* ASCII lower case; the C library's tolower() depends on the locale. */
static char lower_ascii(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int names_equal_ignoring_case(const char *a, const char *b)
{
    while (*a != '\0' && lower_ascii(*a) == lower_ascii(*b)) {
        a++;
        b++;
    }
    return lower_ascii(*a) == lower_ascii(*b);
}

const capheap_chip_t *capheap_chip_find(const char *name)
{
    if (name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < capheap_chip_count; i++) {
        if (names_equal_ignoring_case(capheap_chips[i]->name, name)) {
            return capheap_chips[i];
        }
    }
    return NULL;
}
