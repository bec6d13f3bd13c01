/*
 * fuzz_tool_trace.c - the capheap tool's trace replay (tools/capheap/replay.c)
 * over fuzzed text, on every built-in chip.
 *
 * Input: byte 0 picks the chip (low 4 bits, modulo the chip count), whether it
 * gets PSRAM (bit 4: 1 MiB, or its largest if smaller), and the replay options
 * (bit 5: --ignore-unknown, bit 6: --stop-on-failure); the rest is the trace.
 * The corpus (corpus/tool_trace/) is tests/tools/traces/ behind such a byte.
 *
 * A map the host cannot give an address span (ESP_ERR_NO_MEM: the i.MX RT1062
 * with its SDRAM on a 32-bit host) is skipped.
 *
 * Properties (a violation aborts): the replay returns one of the tool's three
 * exit codes; every heap passes its integrity check afterwards; freeing every
 * block the ID table still holds (replay_options_t.free_live_at_end) brings the
 * heaps' free size back to its value before the trace, so a block the replay
 * lost from the table, or holds under two IDs, is caught (the block counts of
 * the report cannot show it: they move apart from the table); the chip shuts
 * down (nothing of the replay is left mapped). ASan and UBSan watch the parser
 * and the ID table, whose growth this build reaches within a few IDs
 * (REPLAY_TABLE_START, fuzz/CMakeLists.txt). Reports go to /dev/null, trace
 * errors to a scratch stream.
 */
#define _POSIX_C_SOURCE 200809L /* fmemopen */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "capheap/chip.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (sink == NULL && (sink = fopen("/dev/null", "w")) == NULL)
        abort();
    if (size < 2)
        return 0; /* fmemopen wants a non-empty buffer */
    const capheap_chip_t *chip = capheap_chips[(data[0] & 15u) % capheap_chip_count];
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    if ((data[0] & 16u) && chip->extram.max_size != 0)
        o.psram_bytes = chip->extram.max_size < (1u << 20) ? chip->extram.max_size : (1u << 20);
    esp_err_t booted = capheap_sim_boot(chip, &o);
    if (booted == ESP_ERR_NO_MEM)
        return 0; /* the host has no address span for this map (a 32-bit host: docs/simulator.md) */
    if (booted != ESP_OK)
        abort(); /* every built-in chip boots with these options */
    replay_options_t r = {.ignore_unknown = (data[0] & 32u) != 0,
                          .stop_on_failure = (data[0] & 64u) != 0,
                          .list_failures = 10,
                          .out = sink,
                          .errors = sink,
                          .free_live_at_end = true};
    FILE *in = fmemopen((void *)(uintptr_t)(data + 1), size - 1, "r");
    if (in == NULL)
        abort();
    size_t free_before = heap_caps_get_free_size(0); /* every heap */
    int rc = replay_trace(in, "fuzz", &r);
    fclose(in);
    if (rc != TOOL_EXIT_OK && rc != TOOL_EXIT_FAILED && rc != TOOL_EXIT_ERROR)
        abort();
    size_t free_after = heap_caps_get_free_size(0);
    if (free_after != free_before) {
        fprintf(stderr, "fuzz_tool_trace: %zu B free after freeing every live ID, %zu B before the trace\n",
                free_after, free_before);
        abort();
    }
    if (!heap_caps_check_integrity_all(false))
        abort();
    if (capheap_sim_shutdown() != ESP_OK)
        abort();
    return 0;
}
