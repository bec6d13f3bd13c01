/*
 * capheap.c - the capheap command-line tool: a chip's memory on a PC.
 *
 *   capheap chips                          the built-in chips
 *   capheap boot CHIP [boot options]       boot the simulated chip, show its heaps
 *   capheap fit CHIP SIZE CAPS [--align N] [boot options]
 *                                          which heap would serve the request, or why none can
 *   capheap replay CHIP TRACE [options]    an allocation trace replayed on the chip: what
 *                                          failed and why, peak and final use per heap and caps
 *
 * It answers "will this allocation pattern fit this chip, and where does it
 * go?" without the chip: every command boots the simulator (capheap_sim_boot,
 * the chip's real start-up sequence) and asks the public heap_caps API, so the
 * answers are the ones the firmware would get. tools/README.md is the manual;
 * exit status 0 means served (fits), 1 failed (does not fit), 2 a usage, trace
 * or boot error.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capheap/caps.h"
#include "capheap/chip.h"
#include "capheap/port.h"
#include "capheap/sim.h"
#include "esp_err.h"
#include "esp_heap_caps.h"
#include "multi_heap.h"
#include "names.h"
#include "replay.h"

static const char usage_text[] =
    "usage: capheap chips\n"
    "       capheap boot CHIP [BOOT OPTIONS]\n"
    "       capheap fit CHIP SIZE CAPS [--align N] [BOOT OPTIONS]\n"
    "       capheap replay CHIP TRACE|- [--ignore-unknown] [--stop-on-failure] [--list N] [BOOT OPTIONS]\n"
    "\n"
    "boot options (as capheap_sim_boot's; defaults: the chip's reference firmware image):\n"
    "  --psram SIZE          external RAM to add (default none)\n"
    "  --static SIZE         static data + bss of the firmware\n"
    "  --iram-text SIZE      IRAM text of the firmware\n"
    "  --always-internal SIZE  malloc sizes up to this prefer internal RAM (default 16K)\n"
    "  --reserve-internal SIZE internal DMA pool kept back when PSRAM is added (default 32K)\n"
    "  --heap-alignment N    4, 8 or 16 instead of the chip's block alignment\n"
    "  --no-stack-heaps      leave the start-up stack regions out (no\n"
    "                        heap_caps_enable_nonos_stack_heaps())\n"
    "  --boot-log            print the boot log (boot always does)\n"
    "\n"
    "SIZE: bytes, 0x..., or with K, KiB, M, MiB. CAPS: MALLOC_CAP_ names joined by | or ,\n"
    "(DMA|INTERNAL, with or without the prefix), or a number. The trace format is in\n"
    "tools/README.md. Exit status: 0 served / fits, 1 an allocation failed / would fail,\n"
    "2 a usage, trace or boot error.\n";

/* "capheap: message" and the hint on stderr; returns TOOL_EXIT_ERROR. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int usage_error(const char *fmt, ...)
{
    fprintf(stderr, "capheap: ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(capheap --help for the usage)\n");
    return TOOL_EXIT_ERROR;
}

static void to_stdout(const char *text, size_t len)
{
    fwrite(text, 1, len, stdout);
}

/* ---- chips ----------------------------------------------------------------- */

static int cmd_chips(void)
{
    char a[TOOL_SIZE_TEXT_MAX], b[TOOL_SIZE_TEXT_MAX];
    printf("%-10s %-14s %-14s %s\n", "chip", "internal RAM", "external max", "title");
    for (size_t i = 0; i < capheap_chip_count; i++) {
        const capheap_chip_t *c = capheap_chips[i];
        printf("%-10s %-14s %-14s %s\n", c->name, tool_size_text(c->internal_ram_bytes, a, sizeof a),
               c->extram.max_size != 0 ? tool_size_text(c->extram.max_size, b, sizeof b) : "-",
               c->title != NULL ? c->title : c->name);
    }
    return TOOL_EXIT_OK;
}

/* ---- options ---------------------------------------------------------------- */

typedef struct {
    const capheap_chip_t *chip;
    capheap_sim_options_t sim;
    bool boot_log;
    const char *positional[2]; /* fit: SIZE CAPS; replay: TRACE */
    size_t positional_count, positional_max;
    const char *positional_missing; /* what the usage error says when some are missing */
    size_t align;
    bool has_align; /* --align given: the aligned_alloc question, even for --align 0 */
    replay_options_t replay;
} args_t;

/* The value of option argv[*i] (a SIZE), consuming it. */
static bool size_option(int argc, char **argv, int *i, size_t *out)
{
    if (*i + 1 >= argc)
        return usage_error("%s needs a value", argv[*i]), false;
    if (!tool_parse_size(argv[*i + 1], out) || *out == CAPHEAP_SIM_REFERENCE) /* SIZE_MAX means "the image's" */
        return usage_error("bad size '%s'", argv[*i + 1]), false;
    (*i)++;
    return true;
}

/* argv from index 2 (after the command): CHIP, then the command's words and options. */
static bool parse_args(int argc, char **argv, const char *command, args_t *a)
{
    if (argc < 3)
        return usage_error("%s needs a chip (capheap chips lists them)", command), false;
    a->chip = capheap_chip_find(argv[2]);
    if (a->chip == NULL)
        return usage_error("no built-in chip '%s' (capheap chips lists them)", argv[2]), false;
    /* the boot options that take a SIZE, and where it goes */
    const struct {
        const char *name;
        size_t *value;
    } sizes[] = {
        {"--psram", &a->sim.psram_bytes},
        {"--static", &a->sim.static_data_bytes},
        {"--iram-text", &a->sim.iram_text_bytes},
        {"--always-internal", &a->sim.extmem_always_internal},
        {"--reserve-internal", &a->sim.reserve_internal},
    };
    for (int i = 3; i < argc; i++) {
        const char *o = argv[i];
        size_t v, k = 0;
        while (k < sizeof sizes / sizeof sizes[0] && strcmp(o, sizes[k].name) != 0)
            k++;
        if (k < sizeof sizes / sizeof sizes[0]) {
            if (!size_option(argc, argv, &i, sizes[k].value))
                return false;
        } else if (strcmp(o, "--heap-alignment") == 0) {
            if (!size_option(argc, argv, &i, &v))
                return false;
            if (v != 4 && v != 8 && v != 16)
                return usage_error("--heap-alignment takes 4, 8 or 16, not %s", argv[i]), false;
            a->sim.heap_alignment = (unsigned)v;
        } else if (strcmp(o, "--no-stack-heaps") == 0) {
            a->sim.defer_nonos_stack_heaps = true;
        } else if (strcmp(o, "--boot-log") == 0) {
            a->boot_log = true;
        } else if (strcmp(command, "fit") == 0 && strcmp(o, "--align") == 0) {
            if (!size_option(argc, argv, &i, &a->align))
                return false;
            a->has_align = true;
        } else if (strcmp(command, "replay") == 0 && strcmp(o, "--ignore-unknown") == 0) {
            a->replay.ignore_unknown = true;
        } else if (strcmp(command, "replay") == 0 && strcmp(o, "--stop-on-failure") == 0) {
            a->replay.stop_on_failure = true;
        } else if (strcmp(command, "replay") == 0 && strcmp(o, "--list") == 0) {
            if (!size_option(argc, argv, &i, &v))
                return false;
            a->replay.list_failures = v > UINT_MAX ? UINT_MAX : (unsigned)v; /* more than there can be: all */
        } else if (o[0] == '-' && o[1] != '\0') {
            return usage_error("unknown option '%s'", o), false;
        } else if (a->positional_count < a->positional_max) {
            a->positional[a->positional_count++] = o;
        } else {
            return usage_error("unexpected argument '%s'", o), false;
        }
    }
    if (a->positional_count != a->positional_max)
        return usage_error("%s", a->positional_missing), false;
    return true;
}

static bool boot(const args_t *a, bool log)
{
    capheap_sim_options_t o = a->sim;
    o.quiet = !log;
    esp_err_t err = capheap_sim_boot(a->chip, &o);
    if (err != ESP_OK) {
        fprintf(stderr, "capheap: %s did not boot with these options: %s (docs/simulator.md lists the conditions)\n",
                a->chip->name, esp_err_to_name(err));
        return false;
    }
    return true;
}

static void print_title(const args_t *a)
{
    char s[TOOL_SIZE_TEXT_MAX];
    printf("%s", a->chip->title != NULL ? a->chip->title : a->chip->name);
    if (a->sim.psram_bytes != 0)
        printf(", %s PSRAM", tool_size_text(a->sim.psram_bytes, s, sizeof s));
    printf("\n");
}

/* ---- boot, fit, replay ---------------------------------------------------------- */

static int cmd_boot(const args_t *a)
{
    if (!boot(a, true))
        return TOOL_EXIT_ERROR;
    printf("\nheaps, in search order (bytes)\n");
    replay_print_heaps();
    printf("\nby capability (bytes)\n");
    replay_print_caps();
    capheap_sim_shutdown();
    return TOOL_EXIT_OK;
}

static int cmd_fit(const args_t *a)
{
    size_t size;
    uint32_t caps;
    const char *bad;
    if (!tool_parse_size(a->positional[0], &size))
        return usage_error("bad size '%s'", a->positional[0]);
    if (!tool_parse_caps(a->positional[1], &caps, &bad))
        return usage_error("unknown capability '%.*s' in '%s' (DMA|INTERNAL, SPIRAM, DEFAULT, 0x808, ...)",
                           (int)strcspn(bad, "|,"), bad, a->positional[1]);
    if (!boot(a, a->boot_log))
        return TOOL_EXIT_ERROR;
    char c[TOOL_CAPS_TEXT_MAX];
    if (a->has_align)
        printf("heap_caps_aligned_alloc(%zu, %zu, %s) on ", a->align, size, tool_caps_text(caps, c, sizeof c));
    else
        printf("heap_caps_malloc(%zu, %s) on ", size, tool_caps_text(caps, c, sizeof c));
    print_title(a);
    if (a->has_align && a->align == 0) {
        /* The dry run reads alignment 0 as "no alignment" (the malloc question), but
         * heap_caps_aligned_alloc(0, ...) returns NULL before it, as `a ID 0 SIZE` in a trace. */
        printf("  does not fit: %s\n", capheap_fit_reason_text(CAPHEAP_FIT_BAD_ALIGNMENT));
        capheap_sim_shutdown();
        return TOOL_EXIT_FAILED;
    }
    capheap_fit_t why;
    bool fits = capheap_would_fit(size, caps, a->align, &why);
    printf("  after the chip's adjustment: %zu B", why.size);
    if (why.alignment != 0)
        printf(", alignment %zu", why.alignment);
    printf(", caps %s", tool_caps_text(why.caps, c, sizeof c));
    /* the dry run counts the heaps with the caps only when it gets as far as looking */
    if (why.reason == CAPHEAP_FIT_OK || why.reason == CAPHEAP_FIT_NO_HEAP_WITH_CAPS ||
        why.reason == CAPHEAP_FIT_NO_ROOM || why.reason == CAPHEAP_FIT_ALIGNMENT_IMPOSSIBLE)
        printf("; %zu heap%s with these caps", why.candidates, why.candidates == 1 ? "" : "s");
    printf("\n");
    capheap_heap_desc_t d;
    if (fits && capheap_heap_get((size_t)why.heap_index, &d) && d.heap != NULL) {
        multi_heap_info_t info;
        multi_heap_get_info(d.heap, &info);
        printf("  fits: heap %d, %s at 0x%08lx (%zu B, %zu B free, largest block %zu B)\n", why.heap_index, d.name,
               (unsigned long)(uintptr_t)(d.start - capheap_sim_offset()), (size_t)(d.end - d.start),
               info.total_free_bytes, info.largest_free_block);
    } else {
        printf("  does not fit: %s", capheap_fit_reason_text(why.reason));
        replay_print_room(&why);
        printf("\n");
    }
    capheap_sim_shutdown();
    return fits ? TOOL_EXIT_OK : TOOL_EXIT_FAILED;
}

static int cmd_replay(const args_t *a)
{
    const char *path = a->positional[0];
    bool from_stdin = strcmp(path, "-") == 0;
    FILE *in = from_stdin ? stdin : fopen(path, "r");
    if (in == NULL) {
        fprintf(stderr, "capheap: cannot read %s: %s\n", path, strerror(errno));
        return TOOL_EXIT_ERROR;
    }
    int rc = TOOL_EXIT_ERROR;
    if (boot(a, a->boot_log)) {
        printf("replay of %s on ", from_stdin ? "standard input" : path);
        print_title(a);
        rc = replay_trace(in, from_stdin ? "<stdin>" : path, &a->replay);
        capheap_sim_shutdown();
    }
    if (!from_stdin)
        fclose(in);
    return rc;
}

int main(int argc, char **argv)
{
    capheap_set_writer(to_stdout); /* the boot log and heap reports, in order with printf's */
    if (argc < 2) {
        fputs(usage_text, stderr);
        return TOOL_EXIT_ERROR;
    }
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return TOOL_EXIT_OK;
        }
    const char *command = argv[1];
    args_t a;
    memset(&a, 0, sizeof a);
    a.sim = (capheap_sim_options_t)CAPHEAP_SIM_OPTIONS_DEFAULT;
    a.replay.list_failures = 10;
    if (strcmp(command, "chips") == 0) {
        if (argc > 2)
            return usage_error("chips takes no arguments, not '%s'", argv[2]);
        return cmd_chips();
    }
    if (strcmp(command, "boot") == 0) {
        a.positional_max = 0;
    } else if (strcmp(command, "fit") == 0) {
        a.positional_max = 2;
        a.positional_missing = "fit needs SIZE and CAPS after the chip";
    } else if (strcmp(command, "replay") == 0) {
        a.positional_max = 1;
        a.positional_missing = "replay needs a TRACE file (or -) after the chip";
    } else {
        return usage_error("unknown command '%s' (chips, boot, fit or replay)", command);
    }
    if (!parse_args(argc, argv, command, &a))
        return TOOL_EXIT_ERROR;
    fflush(stdout);
    if (strcmp(command, "boot") == 0)
        return cmd_boot(&a);
    return strcmp(command, "fit") == 0 ? cmd_fit(&a) : cmd_replay(&a);
}
