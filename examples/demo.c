/*
 * demo.c - what `make demo` runs: a camera + Wi-Fi firmware's allocations on
 * a simulated ESP32-S3 with 8 MiB of PSRAM.
 *
 * capheap_sim_boot() maps the S3's memory at its real addresses (or at one
 * offset) and runs ESP-IDF's start-up heap sequence. The "firmware" then asks
 * for memory the way such an application does: DMA-capable internal RAM for
 * camera descriptors, line buffers and Wi-Fi buffers, PSRAM for frame
 * buffers, plain malloc for many small objects, and a few frames of churn.
 * Every block is checked against the capabilities of the heap it landed in.
 * Exit status 0 iff every allocation succeeded where it should and the
 * integrity check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capheap/caps.h"
#include "capheap/chip.h"
#include "capheap/port.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"

#define KIB 1024u
#define SMALL_OBJECTS 240
#define FRAMES 5

static int failures;

static void to_stdout(const char *text, size_t len)
{
    fwrite(text, 1, len, stdout);
}

/* Combined caps of the heap that holds p (0: in no heap). */
static uint32_t heap_caps_of(const void *p)
{
    capheap_heap_desc_t d;
    if (!capheap_heap_find_desc(p, &d))
        return 0;
    return d.caps[0] | d.caps[1] | d.caps[2];
}

/* Check that p was allocated and that its heap has every bit of `must`. */
static void *expect_in(void *p, uint32_t must, const char *what)
{
    if (p == NULL) {
        printf("  FAILED: %s: out of memory\n", what);
        failures++;
    } else if ((heap_caps_of(p) & must) != must) {
        printf("  FAILED: %s landed at %p, in a heap without caps 0x%x\n", what, p, (unsigned)must);
        failures++;
    }
    return p;
}

static void print_table(const char *title)
{
    static const struct {
        uint32_t caps;
        const char *name;
    } rows[] = {
        {MALLOC_CAP_INTERNAL, "INTERNAL"},
        {MALLOC_CAP_DMA, "DMA"},
        {MALLOC_CAP_SPIRAM, "SPIRAM"},
        {MALLOC_CAP_DEFAULT, "DEFAULT"},
    };
    printf("\n%s\n  %-10s %12s %14s %14s\n", title, "caps", "free", "largest block", "minimum free");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        printf("  %-10s %12zu %14zu %14zu\n", rows[i].name, heap_caps_get_free_size(rows[i].caps),
               heap_caps_get_largest_free_block(rows[i].caps), heap_caps_get_minimum_free_size(rows[i].caps));
}

/* Deterministic sizes: the same run every time. */
static unsigned rng_state = 12345u;
static size_t small_size(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return 16u + (rng_state >> 16) % 185u; /* 16..200 bytes: sockets, timers, queue items */
}

int main(void)
{
    capheap_set_writer(to_stdout);
    printf("capheap demo: a camera + Wi-Fi firmware on a simulated ESP32-S3 with 8 MiB PSRAM\n\n");
    printf("== 1. Boot: map the chip, carve the image, register the heaps (ESP-IDF's start-up order)\n");
    const capheap_chip_t *chip = capheap_chip_find("esp32s3");
    if (chip == NULL) {
        printf("FAILED: no built-in esp32s3 chip table\n");
        return 1;
    }
    capheap_sim_options_t options = CAPHEAP_SIM_OPTIONS_DEFAULT;
    options.psram_bytes = 8u * 1024u * KIB;
    esp_err_t err = capheap_sim_boot(chip, &options);
    if (err != ESP_OK) {
        printf("FAILED: capheap_sim_boot: 0x%x\n", (unsigned)err);
        return 1;
    }
    print_table("== 2. Before the application runs");
    printf("  (minimum free already trails free by 32 KiB: the internal DMA pool the boot keeps back\n"
           "   when it adds PSRAM is a heap added after start-up, which counts 0 in the minimum, as on ESP-IDF)\n");

    printf("\n== 3. The application allocates by capability\n");
    printf("  (heap_caps picks the heap: caps priority first, then the smallest heap that has them;\n"
           "   plain malloc prefers internal RAM up to 16 KiB and PSRAM above)\n");
    /* Camera: DMA descriptors and line buffers must be in internal, DMA-capable RAM. */
    void *desc[2], *line[2], *frame[3], *rx[16], *tx[8], *small[SMALL_OBJECTS];
    for (int i = 0; i < 2; i++) {
        desc[i] = expect_in(heap_caps_calloc(32, 12, MALLOC_CAP_DMA), MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL,
                            "camera DMA descriptors");
        line[i] = expect_in(heap_caps_malloc(640 * 2 * 16, MALLOC_CAP_DMA), MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL,
                            "camera line buffer");
    }
    printf("  camera: 2 descriptor lists + 2 line buffers of 20 KiB   MALLOC_CAP_DMA -> internal RAM\n");
    /* Frame buffers are too big for internal RAM: PSRAM. */
    for (int i = 0; i < 3; i++) {
        frame[i] = expect_in(heap_caps_malloc(640 * 480 * 2, MALLOC_CAP_SPIRAM), MALLOC_CAP_SPIRAM, "frame buffer");
        if (frame[i])
            memset(frame[i], 0x80, 640 * 480 * 2);
    }
    printf("  camera: 3 frame buffers 640x480x2 (600 KiB each)        MALLOC_CAP_SPIRAM -> PSRAM\n");
    /* Wi-Fi: the MAC's DMA reads and writes these buffers. */
    const uint32_t wifi_caps = MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL;
    for (int i = 0; i < 16; i++)
        rx[i] = expect_in(heap_caps_malloc(1600, wifi_caps), wifi_caps, "Wi-Fi RX buffer");
    for (int i = 0; i < 8; i++)
        tx[i] = expect_in(heap_caps_malloc(1600, wifi_caps), wifi_caps, "Wi-Fi TX buffer");
    printf("  wifi:   16 RX + 8 TX buffers of 1600 B                  DMA|INTERNAL -> internal RAM\n");
    /* Small objects through malloc: ESP-IDF's policy keeps requests <= 16 KiB internal. */
    for (int i = 0; i < SMALL_OBJECTS; i++)
        small[i] = expect_in(heap_caps_malloc_default(small_size()), MALLOC_CAP_INTERNAL, "small object");
    printf("  app:    %d small objects of 16..200 B                  malloc -> internal RAM (<= 16 KiB)\n",
           SMALL_OBJECTS);

    /* A few frames: a third of the small objects die and are replaced; each frame a
     * 64 KiB JPEG buffer comes from malloc, which sends requests above 16 KiB to PSRAM. */
    for (int f = 1; f <= FRAMES; f++) {
        for (int i = f % 3; i < SMALL_OBJECTS; i += 3) {
            heap_caps_free(small[i]);
            small[i] = expect_in(heap_caps_malloc_default(small_size()), MALLOC_CAP_INTERNAL, "small object");
        }
        void *jpeg = expect_in(heap_caps_malloc_default(64 * KIB), MALLOC_CAP_SPIRAM, "JPEG buffer");
        heap_caps_free(rx[f]);
        rx[f] = expect_in(heap_caps_malloc(1600, wifi_caps), wifi_caps, "Wi-Fi RX buffer");
        heap_caps_free(jpeg);
    }
    printf("  frames: %d x (replace %d small objects, 64 KiB JPEG via malloc -> PSRAM, recycle an RX buffer)\n",
           FRAMES, SMALL_OBJECTS / 3);

    print_table("== 4. While the application runs (minimum free = low-water mark)");
    printf("\n== 5. Every heap in detail (heap_caps_print_heap_info(MALLOC_CAP_8BIT))\n");
    heap_caps_print_heap_info(MALLOC_CAP_8BIT);
    bool intact = heap_caps_check_integrity_all(true);
    printf("\nheap_caps_check_integrity_all(true): %s\n", intact ? "all heaps intact" : "CORRUPTED");

    for (int i = 0; i < 2; i++) {
        heap_caps_free(desc[i]);
        heap_caps_free(line[i]);
    }
    for (int i = 0; i < 3; i++)
        heap_caps_free(frame[i]);
    for (int i = 0; i < 16; i++)
        heap_caps_free(rx[i]);
    for (int i = 0; i < 8; i++)
        heap_caps_free(tx[i]);
    for (int i = 0; i < SMALL_OBJECTS; i++)
        heap_caps_free(small[i]);
    if (heap_caps_get_free_size(MALLOC_CAP_INTERNAL) == 0 || !heap_caps_check_integrity_all(true))
        intact = false;
    capheap_sim_shutdown();
    printf("%s\n", failures == 0 && intact ? "demo: OK" : "demo: FAILED");
    return failures == 0 && intact ? 0 : 1;
}
