/*
 * test_idf_bad_reservation.c - an ESP-IDF-style memory layout whose
 * SOC_RESERVE_MEMORY_REGION record ends before it starts: the start-up and
 * the region query refuse it, each with its own message.
 *
 * test_idf_tables.c has the sound layout; the reservations come from one
 * linker section per program, so the bad record needs a program of its own.
 * heap_caps_init() reports "invalid memory map or reservations" with
 * ESP_ERR_INVALID_ARG and builds no heap; soc_get_available_memory_regions()
 * says which fault it found ("a reservation ends before it starts", not
 * "overlapping reservations", its message for ESP_FAIL: a mutation that
 * swapped the two passed every other test).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "capheap/caps.h"
#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"
#include "heap_memory_layout.h"
#include "support.h"

#define RAM_BYTES (32u * 1024u)
static _Alignas(16) unsigned char ram[RAM_BYTES];
#define AT(offset) ((intptr_t)(ram + (offset)))

const soc_memory_type_desc_t soc_memory_types[] = {
    {"DRAM", {MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT, MALLOC_CAP_INTERNAL | MALLOC_CAP_32BIT, 0}},
};
const size_t soc_memory_type_count = sizeof soc_memory_types / sizeof soc_memory_types[0];

/* start, size, type, iram_address, startup_stack */
const soc_memory_region_t soc_memory_regions[] = {
    {AT(0x0000), 0x8000, 0, 0, false},
};
const size_t soc_memory_region_count = sizeof soc_memory_regions / sizeof soc_memory_regions[0];

SOC_RESERVE_MEMORY_REGION(AT(0x2000), AT(0x1000), backwards); /* ends before it starts */

/* The call aborts through the port, and what it printed is want. */
static void assert_aborts_saying(void (*call)(void), const char *want)
{
    bool aborted;
    capheap_clear_last_report();
    ct_capture_begin();
    CT_CATCH_ABORT(aborted, call());
    ct_capture_end();
    assert_true(aborted);
    assert_string_equal(ct_capture_text(), want);
}

static void query_regions(void)
{
    soc_memory_region_t out[4];
    (void)soc_get_available_memory_regions(out);
}

static void test_region_query_names_the_fault(void **state)
{
    (void)state;
    assert_int_equal(soc_get_available_memory_region_max_count(), 2);
    assert_aborts_saying(query_regions, "soc_get_available_memory_regions: a reservation ends before it starts "
                                        "(esp_err_t 0x102)\n");
}

static void test_init_refuses(void **state)
{
    (void)state;
    assert_aborts_saying(heap_caps_init, "heap_caps_init: invalid memory map or reservations (esp_err_t 0x102)\n");
    assert_int_equal(capheap_heap_count(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_region_query_names_the_fault),
        cmocka_unit_test(test_init_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
