/*
 * test_idf_tables.c - an ESP-IDF-style memory layout compiles unchanged and
 * heap_caps_init() builds the heaps from it.
 *
 * The tables below are written the way port/<chip>/memory_layout.c writes
 * them (soc_memory_types[], soc_memory_regions[], their counts, and
 * SOC_RESERVE_MEMORY_REGION records), except that the regions lie in a host
 * array instead of a chip's RAM. The library is built without CAPHEAP_CHIP, so
 * heap_caps_init() picks these tables up (weak references in src/caps/init.c)
 * and the reservations from the linker section.
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

#define RAM_BYTES (96u * 1024u)
static _Alignas(16) unsigned char ram[RAM_BYTES];
#define AT(offset) ((intptr_t)(ram + (offset)))

enum { TYPE_DRAM, TYPE_DIRAM, TYPE_IRAM };

const soc_memory_type_desc_t soc_memory_types[] = {
    [TYPE_DRAM] = {"DRAM", {MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT, MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA | MALLOC_CAP_32BIT, 0}},
    [TYPE_DIRAM] = {"D/IRAM", {0, MALLOC_CAP_DMA | MALLOC_CAP_8BIT | MALLOC_CAP_INTERNAL | MALLOC_CAP_DEFAULT, MALLOC_CAP_32BIT}},
    [TYPE_IRAM] = {"IRAM", {MALLOC_CAP_INTERNAL | MALLOC_CAP_32BIT, 0, 0}},
};
const size_t soc_memory_type_count = sizeof soc_memory_types / sizeof soc_memory_types[0];

/* start, size, type, iram_address, startup_stack */
const soc_memory_region_t soc_memory_regions[] = {
    {AT(0x00000), 0x4000, TYPE_DRAM, 0, false},
    {AT(0x04000), 0x4000, TYPE_DRAM, 0, false},   /* coalesces with the previous row */
    {AT(0x08000), 0x8000, TYPE_DIRAM, 0, true},   /* start-up stack: deferred */
    {AT(0x10000), 0x6000, TYPE_IRAM, 0, false},
};
const size_t soc_memory_region_count = sizeof soc_memory_regions / sizeof soc_memory_regions[0];

SOC_RESERVE_MEMORY_REGION(AT(0x0000), AT(0x0400), static_data);   /* trims the first row */
SOC_RESERVE_MEMORY_REGION(AT(0x12000), AT(0x13000), iram_code);   /* punches a hole in IRAM */

static void test_init_from_idf_tables(void **state)
{
    (void)state;
    heap_caps_init();
    /* DRAM 0x400..0x8000 (two rows coalesced, trimmed), D/IRAM deferred,
     * IRAM 0x10000..0x12000 and 0x13000..0x16000. */
    assert_int_equal(capheap_heap_count(), 4);
    capheap_heap_desc_t d;
    size_t seen = 0;
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        assert_true(capheap_heap_get(i, &d));
        intptr_t off = d.start - AT(0);
        if (off == 0x400) {
            assert_int_equal(d.end - d.start, 0x8000 - 0x400);
            assert_string_equal(d.name, "DRAM");
            assert_non_null(d.heap);
            seen |= 1;
        } else if (off == 0x8000) {
            assert_null(d.heap); /* start-up stack */
            seen |= 2;
        } else if (off == 0x10000 || off == 0x13000) {
            assert_string_equal(d.name, "IRAM");
            seen |= off == 0x10000 ? 4u : 8u;
        }
    }
    assert_int_equal(seen, 15);
    void *p = heap_caps_malloc(100, MALLOC_CAP_DEFAULT);
    assert_non_null(p);
    assert_true((intptr_t)p >= AT(0x400) && (intptr_t)p < AT(0x8000));
    heap_caps_free(p);
    void *q = heap_caps_malloc(100, MALLOC_CAP_32BIT); /* IRAM's priority 0 */
    assert_true((intptr_t)q >= AT(0x10000) && (intptr_t)q < AT(0x16000));
    heap_caps_free(q);
    size_t before = heap_caps_get_free_size(MALLOC_CAP_8BIT);
    heap_caps_enable_nonos_stack_heaps();
    assert_true(heap_caps_get_free_size(MALLOC_CAP_8BIT) > before + 0x7000);
    /* heap_caps_add_region() finds the table row containing start */
    assert_int_equal(heap_caps_add_region(AT(0x17000), AT(0x18000)), ESP_ERR_NOT_FOUND);

    /* A second heap_caps_init() is refused through the port's abort. */
    bool aborted;
    ct_capture_begin();
    CT_CATCH_ABORT(aborted, heap_caps_init());
    ct_capture_end();
    assert_true(aborted);
    assert_true(ct_capture_contains("heap_caps_init"));
    assert_true(heap_caps_check_integrity_all(true));
    capheap_caps_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_from_idf_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
