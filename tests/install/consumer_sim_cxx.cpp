/*
 * consumer_sim_cxx.cpp - a C++ program linked with the installed capheap::capheap_sim_cxx
 * (find_package), as a user's would be: with a simulated chip booted, its objects and
 * containers take their memory from the chip (docs/simulator.md, "new and delete in the
 * simulator"). Prints one line and exits 0 when every step gave what the docs promise,
 * 1 otherwise.
 */
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "capheap/caps.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"

namespace {

int failed;

void expect(bool ok, const char *what)
{
    if (!ok) {
        std::printf("FAILED: %s\n", what);
        failed = 1;
    }
}

} // namespace

int main()
{
    auto host = std::make_unique<std::string>(64, 'h'); /* no chip yet: the host's */
    expect(capheap_heap_find(host.get()) < 0, "new before the boot is the host's");

    capheap_sim_options_t opt = CAPHEAP_SIM_OPTIONS_DEFAULT;
    opt.quiet = true;
    opt.heap_alignment = alignof(std::max_align_t); /* the host's objects, not the chip's 4 bytes */
    expect(capheap_sim_boot(&capheap_chip_esp32s3, &opt) == ESP_OK, "capheap_sim_boot(ESP32-S3)");
    size_t before = heap_caps_get_free_size(MALLOC_CAP_INTERNAL);
    {
        std::vector<int> v(1000, 7);
        expect(capheap_heap_find(v.data()) >= 0, "a vector's storage in a heap of the chip");
        auto s = std::make_unique<std::string>(200, 's');
        expect(capheap_heap_find(s.get()) >= 0 && capheap_heap_find(s->data()) >= 0,
               "a string and its characters in the chip");
        expect(reinterpret_cast<std::uintptr_t>(s.get()) % alignof(std::max_align_t) == 0,
               "the string at the host's alignment");
        expect(heap_caps_get_free_size(MALLOC_CAP_INTERNAL) < before, "the chip's free size went down");
        bool thrown = false;
        try {
            std::vector<char> huge(64u << 20); /* more than the chip has */
        } catch (const std::bad_alloc &) {
            thrown = true;
        }
        expect(thrown, "new of more than the chip holds throws std::bad_alloc");
    }
    expect(heap_caps_get_free_size(MALLOC_CAP_INTERNAL) == before, "every object went back");
    host.reset(); /* still the host's */
    expect(capheap_sim_shutdown() == ESP_OK, "capheap_sim_shutdown");
    std::printf(failed ? "capheap consumer: FAILED\n" : "capheap consumer: ok\n");
    return failed;
}
