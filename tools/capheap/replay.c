/*
 * replay.c - `capheap replay`: an allocation trace replayed on the simulated
 * chip, and the report of where its memory went.
 *
 * The trace names blocks by IDs (any word: a counter, a variable name, the
 * address a device printed). A table maps each ID to its block, the size the
 * trace asked for and the lines that allocated and freed it, so that a trace
 * error names both ends ("freed at line 40") and an ID may be reused once its
 * block is gone (addresses are). The table is an open-addressing hash on the
 * host's malloc (the tool does not link the simulator's libc wrapper, so host
 * memory and chip memory never mix), grown at half full.
 *
 * Each call goes through the public API exactly as firmware would make it:
 * without caps, the libc policy (heap_caps_malloc_default and friends, with
 * the boot's PSRAM thresholds); with caps, heap_caps_*. A failed allocation
 * is explained by the extended failure callback, which receives the dry-run
 * answer (capheap_would_fit) for the call that failed.
 */
#define _POSIX_C_SOURCE 200809L /* getline, ssize_t, strtok_r */
#include "replay.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "capheap/caps.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "multi_heap.h"
#include "names.h"

#define ID_MAX 63u       /* longest ID */
#define LINE_MAX_LEN 1024u /* longest trace line */

/* The ID table's slots at the start (a power of two). The fuzz build makes it small
 * (fuzz/CMakeLists.txt) so that a few IDs reach its growth: at 1024, growth takes 513
 * distinct IDs, more than a fuzzed input of a few KiB holds. */
#ifndef REPLAY_TABLE_START
#define REPLAY_TABLE_START 1024u
#endif
_Static_assert(REPLAY_TABLE_START >= 2u && (REPLAY_TABLE_START & (REPLAY_TABLE_START - 1u)) == 0,
               "REPLAY_TABLE_START: a power of two, at least 2");

/* Where the report goes: stdout, or the stream replay_trace() was given. */
static FILE *rout;

/* ---- the ID table ---------------------------------------------------------- */

typedef struct {
    char id[ID_MAX + 1]; /* "" marks an unused slot */
    void *ptr;           /* the block while live */
    size_t size;         /* bytes the trace asked for */
    bool live;
    char end;            /* not live: 'f' freed, 'x' its allocation failed, 'r' renamed ("r .. as") */
    unsigned long line;  /* the line that allocated it (live), or ended it; 0: never used */
} entry_t;

typedef struct {
    entry_t *slots;
    size_t cap, used; /* cap a power of two; used counts IDs ever seen */
} id_table_t;

static uint32_t hash_id(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The slot of id, or the empty slot where it belongs. */
static entry_t *slot_of(const id_table_t *t, const char *id)
{
    size_t i = hash_id(id) & (t->cap - 1u);
    while (t->slots[i].id[0] != '\0' && strcmp(t->slots[i].id, id) != 0)
        i = (i + 1u) & (t->cap - 1u);
    return &t->slots[i];
}

static bool table_grow(id_table_t *t)
{
    id_table_t bigger = {calloc(t->cap * 2u, sizeof(entry_t)), t->cap * 2u, t->used};
    if (bigger.slots == NULL)
        return false;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].id[0] != '\0')
            *slot_of(&bigger, t->slots[i].id) = t->slots[i];
    free(t->slots);
    *t = bigger;
    return true;
}

/* The entry of id, created (not live) if new; NULL only when the host is out of memory. */
static entry_t *table_get(id_table_t *t, const char *id)
{
    entry_t *e = slot_of(t, id);
    if (e->id[0] != '\0')
        return e;
    if (2u * (t->used + 1u) > t->cap) {
        if (!table_grow(t))
            return NULL;
        e = slot_of(t, id);
    }
    memset(e, 0, sizeof *e);
    strcpy(e->id, id); /* length checked by the parser */
    t->used++;
    return e;
}

static entry_t *table_find(const id_table_t *t, const char *id)
{
    entry_t *e = slot_of(t, id);
    return e->id[0] != '\0' ? e : NULL;
}

/* ---- failure reasons ------------------------------------------------------- */

static bool failure_seen;
static capheap_fit_t failure_why;

/* The extended failure callback: heap_caps tells why the call it just refused failed. */
static void on_failure(size_t size, uint32_t caps, const char *function_name, const capheap_fit_t *why,
                       void *user)
{
    (void)size;
    (void)caps;
    (void)function_name;
    (void)user;
    failure_seen = true;
    failure_why = *why;
}

/* For a request that found no room: the largest request its candidate heaps
 * serve at its alignment, beside their free bytes (exhaustion, or fragmentation). */
static void print_room(const capheap_fit_t *why)
{
    fprintf(rout, "the largest request the %zu heap%s with these caps serve%s is %zu B, of %zu B free there",
            why->candidates, why->candidates == 1 ? "" : "s", why->alignment > 1 ? " at this alignment" : "",
            why->largest_block, heap_caps_get_free_size(why->caps));
}

static bool no_room(const capheap_fit_t *why)
{
    return why->reason == CAPHEAP_FIT_NO_ROOM || why->reason == CAPHEAP_FIT_ALIGNMENT_IMPOSSIBLE;
}

void replay_print_room(const capheap_fit_t *why)
{
    rout = stdout;
    if (no_room(why)) {
        fprintf(rout, " (");
        print_room(why);
        fprintf(rout, ")");
    }
}

static void print_reason(const capheap_fit_t *why)
{
    char c[TOOL_CAPS_TEXT_MAX];
    fprintf(rout, "%s", capheap_fit_reason_text(why->reason));
    if (no_room(why)) {
        fprintf(rout, " (%zu B asked", why->size);
        if (why->alignment != 0)
            fprintf(rout, ", alignment %zu", why->alignment);
        fprintf(rout, ", caps %s: ", tool_caps_text(why->caps, c, sizeof c));
        print_room(why);
        fprintf(rout, ")");
    } else if (why->reason == CAPHEAP_FIT_NO_HEAP_WITH_CAPS) {
        fprintf(rout, " (caps %s)", tool_caps_text(why->caps, c, sizeof c));
    }
}

/* ---- printing the heaps ----------------------------------------------------- */

static const struct {
    uint32_t caps;
    const char *name;
} cap_rows[] = {
    {MALLOC_CAP_INTERNAL, "INTERNAL"}, {MALLOC_CAP_DMA, "DMA"}, {MALLOC_CAP_SPIRAM, "SPIRAM"},
    {MALLOC_CAP_EXEC, "EXEC"},         {MALLOC_CAP_DEFAULT, "DEFAULT"},
};
#define CAP_ROWS (sizeof cap_rows / sizeof cap_rows[0])

/* Every heap in search order; with peak (count entries: the most bytes heap
 * i had in use beyond what it had before the replay), that too. */
static void print_heaps_with(const size_t *peak, size_t count)
{
    fprintf(rout, "  %-3s %-14s %-10s %10s %10s %10s %10s%s  %s\n", "#", "name", "address", "size", "free",
           "min free", "largest", peak != NULL ? "  peak used" : "", "caps (priority 0 / 1 / 2)");
    for (size_t i = 0;; i++) {
        capheap_heap_desc_t d;
        if (!capheap_heap_get(i, &d))
            break;
        char c[3][TOOL_CAPS_TEXT_MAX];
        for (size_t p = 0; p < 3; p++)
            tool_caps_text(d.caps[p], c[p], sizeof c[p]);
        uintptr_t chip_addr = (uintptr_t)(d.start - capheap_sim_offset());
        size_t size = (size_t)(d.end - d.start);
        if (d.heap == NULL) {
            fprintf(rout, "  %-3zu %-14s 0x%08lx %10zu %10s %10s %10s%s  %s / %s / %s\n", i, d.name,
                   (unsigned long)chip_addr, size, "-", "-", "-", peak != NULL ? "           " : "", c[0], c[1],
                   c[2]);
            continue;
        }
        multi_heap_info_t info;
        multi_heap_get_info(d.heap, &info);
        fprintf(rout, "  %-3zu %-14s 0x%08lx %10zu %10zu %10zu %10zu", i, d.name, (unsigned long)chip_addr, size,
               info.total_free_bytes, info.minimum_free_bytes, info.largest_free_block);
        if (peak != NULL)
            fprintf(rout, "  %9zu", i < count ? peak[i] : 0);
        fprintf(rout, "  %s / %s / %s\n", c[0], c[1], c[2]);
    }
}

void replay_print_heaps(void)
{
    rout = stdout;
    print_heaps_with(NULL, 0);
}

/* The caps table on rout. */
static void print_caps(void)
{
    fprintf(rout, "  %-10s %12s %12s %12s %14s\n", "caps", "total", "free", "min free", "largest block");
    for (size_t i = 0; i < CAP_ROWS; i++) {
        size_t total = heap_caps_get_total_size(cap_rows[i].caps);
        if (total == 0)
            continue; /* no heap of this chip has it */
        fprintf(rout, "  %-10s %12zu %12zu %12zu %14zu\n", cap_rows[i].name, total, heap_caps_get_free_size(cap_rows[i].caps),
               heap_caps_get_minimum_free_size(cap_rows[i].caps), heap_caps_get_largest_free_block(cap_rows[i].caps));
    }
}

/* ---- the replay ----------------------------------------------------------------- */

typedef struct {
    const char *name;
    const replay_options_t *opt;
    id_table_t ids;
    unsigned long line;
    unsigned long calls[5]; /* m c a r f */
    unsigned long failures, skipped;
    size_t live_blocks, live_bytes, peak_bytes;
    unsigned long peak_line;
} replay_t;

enum { K_MALLOC, K_CALLOC, K_ALIGNED, K_REALLOC, K_FREE };

/* "name:line: message" on the options' error stream; returns TOOL_EXIT_ERROR. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int trace_error(const replay_t *r, const char *fmt, ...)
{
    FILE *err = r->opt->errors != NULL ? r->opt->errors : stderr;
    fflush(rout); /* what was replayed so far, then the error */
    fprintf(err, "%s:%lu: ", r->name, r->line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fputc('\n', err);
    return TOOL_EXIT_ERROR;
}

/* Where a dead ID's story ended, for messages: "never allocated", "freed at
 * line N", "its allocation at line N failed" or "renamed at line N". */
static const char *id_history(const entry_t *e, char *buf, size_t len)
{
    if (e == NULL || e->line == 0)
        snprintf(buf, len, "never allocated");
    else if (e->end == 'x')
        snprintf(buf, len, "its allocation at line %lu failed", e->line);
    else
        snprintf(buf, len, e->end == 'r' ? "renamed at line %lu" : "freed at line %lu", e->line);
    return buf;
}

static void note_live(replay_t *r, long blocks, long long bytes)
{
    r->live_blocks = (size_t)((long)r->live_blocks + blocks);
    r->live_bytes = (size_t)((long long)r->live_bytes + bytes);
    if (r->live_bytes > r->peak_bytes) {
        r->peak_bytes = r->live_bytes;
        r->peak_line = r->line;
    }
}

/* A failed allocation: counted, listed up to the limit with its reason (own:
 * the replay's, for a call that failed before reaching heap_caps). */
static void note_failure(replay_t *r, const char *text, const char *own)
{
    r->failures++;
    if (r->failures > r->opt->list_failures)
        return;
    if (r->failures == 1)
        fprintf(rout, "failed allocations:\n");
    fprintf(rout, "  line %lu: %s: ", r->line, text);
    if (own != NULL)
        fprintf(rout, "%s", own);
    else if (failure_seen)
        print_reason(&failure_why);
    else
        fprintf(rout, "refused (no failure callback: size 0 or an alignment that is not a power of two)");
    fprintf(rout, "\n");
}

static bool parse_size_word(const replay_t *r, const char *w, const char *what, size_t *out)
{
    if (w != NULL && tool_parse_size(w, out))
        return true;
    if (w == NULL)
        trace_error(r, "%s missing", what);
    else
        trace_error(r, "bad %s '%s'", what, w);
    return false;
}

/* The optional caps word: absent means the libc policy (*has = false). */
static bool parse_caps_word(const replay_t *r, const char *w, uint32_t *caps, bool *has)
{
    *has = w != NULL;
    if (w == NULL)
        return true;
    const char *bad;
    if (tool_parse_caps(w, caps, &bad))
        return true;
    char name[ID_MAX + 1];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(bad, "|,"), bad);
    trace_error(r, "unknown capability '%s' in '%s'", name, w);
    return false;
}

/* One trace line, split into words; returns an exit code (TOOL_EXIT_OK to go on). */
static int replay_line(replay_t *r, char **w, size_t n, const char *text)
{
    const char *verb = w[0];
    if (strcmp(verb, "s") == 0) {
        fprintf(rout, "snapshot at line %lu%s%s: %zu blocks live, %zu B asked for (min free: since the trace began)\n",
               r->line, n > 1 ? ": " : "", n > 1 ? text + (w[1] - w[0]) : "", r->live_blocks, r->live_bytes);
        print_caps();
        return TOOL_EXIT_OK;
    }
    static const struct {
        const char *verb;
        size_t min_words, max_words;
        int kind;
        const char *usage;
    } verbs[] = {{"m", 3, 4, K_MALLOC, "ID SIZE [CAPS]"},       {"c", 4, 5, K_CALLOC, "ID COUNT SIZE [CAPS]"},
                 {"a", 4, 5, K_ALIGNED, "ID ALIGN SIZE [CAPS]"}, {"r", 3, 6, K_REALLOC, "ID SIZE [CAPS] [as NEWID]"},
                 {"f", 2, 2, K_FREE, "ID"}};
    size_t v = 0;
    while (v < sizeof verbs / sizeof verbs[0] && strcmp(verbs[v].verb, verb) != 0)
        v++;
    if (v == sizeof verbs / sizeof verbs[0])
        return trace_error(r, "unknown call '%s' (m, c, a, r, f or s)", verb);
    if (n < verbs[v].min_words || n > verbs[v].max_words)
        return trace_error(r, "'%s' takes %s", verb, verbs[v].usage);
    int kind = verbs[v].kind;
    const char *id = w[1];
    if (strlen(id) > ID_MAX)
        return trace_error(r, "ID '%.63s...' longer than %u characters", id, ID_MAX);

    char hist[64]; /* the longest history with a 20-digit line number fits */
    if (kind == K_FREE || kind == K_REALLOC) {
        /* r ... as NEWID: the block goes on under another ID (a recorder that names
         * blocks by address, for a realloc that moved). */
        const char *new_id = NULL;
        /* "as" before the last word first: a NEWID may itself be called "as" */
        if (kind == K_REALLOC && n >= 5 && strcmp(w[n - 2], "as") == 0) {
            new_id = w[n - 1];
            n -= 2;
        } else if (kind == K_REALLOC && strcmp(w[n - 1], "as") == 0) {
            return trace_error(r, "'as' needs a NEWID after it");
        }
        if (n > 4)
            return trace_error(r, "'r' takes %s", verbs[v].usage);
        size_t size = 0;
        uint32_t caps = 0;
        bool has_caps = false;
        if (kind == K_REALLOC &&
            (!parse_size_word(r, w[2], "size", &size) || !parse_caps_word(r, n > 3 ? w[3] : NULL, &caps, &has_caps)))
            return TOOL_EXIT_ERROR;
        entry_t *e = table_find(&r->ids, id);
        if (e == NULL || !e->live) {
            if (r->opt->ignore_unknown) {
                r->skipped++;
                return TOOL_EXIT_OK;
            }
            return trace_error(r, "'%s' is not a live block (%s); --ignore-unknown skips such lines", id,
                               id_history(e, hist, sizeof hist));
        }
        entry_t *renamed = NULL;
        if (new_id != NULL && size == 0) /* also "as itself": a free names nothing */
            return trace_error(r, "'r %s 0' frees the block: there is nothing to name '%s'", id, new_id);
        if (new_id != NULL && strcmp(new_id, id) != 0) { /* (as itself: no rename) */
            if (strlen(new_id) > ID_MAX)
                return trace_error(r, "ID '%.63s...' longer than %u characters", new_id, ID_MAX);
            /* making the entry may grow the table, which moves every entry: e again after it */
            if ((renamed = table_get(&r->ids, new_id)) == NULL)
                return trace_error(r, "out of host memory for the ID table");
            e = table_find(&r->ids, id);
            if (renamed->live)
                return trace_error(r, "'%s' is still live (allocated or reallocated at line %lu): free it first, "
                                      "or use another ID", new_id, renamed->line);
        }
        failure_seen = false;
        r->calls[kind]++;
        if (kind == K_FREE) {
            heap_caps_free(e->ptr);
        } else {
            void *q = has_caps ? heap_caps_realloc(e->ptr, size, caps) : heap_caps_realloc_default(e->ptr, size);
            if (q == NULL && size != 0) { /* refused: the old block stays */
                note_failure(r, text, NULL);
                return r->opt->stop_on_failure ? TOOL_EXIT_FAILED : TOOL_EXIT_OK;
            }
            if (q != NULL) { /* (realloc of an ID that holds malloc(0)'s NULL: a new block) */
                note_live(r, e->ptr == NULL ? 1 : 0, (long long)size - (long long)e->size);
                if (renamed != NULL) { /* the block goes on under its new ID */
                    e->live = false;
                    e->end = 'r';
                    e->line = r->line;
                    e = renamed;
                    e->live = true;
                }
                e->ptr = q;
                e->size = size;
                e->line = r->line;
                return TOOL_EXIT_OK;
            }
        }
        e->live = false; /* free, or realloc to 0 */
        e->end = 'f';
        e->line = r->line;
        note_live(r, e->ptr != NULL ? -1 : 0, -(long long)e->size);
        return TOOL_EXIT_OK;
    }

    /* m, c, a: a new block for id */
    size_t count = 1, align = 0, size;
    uint32_t caps = 0;
    bool has_caps;
    size_t at = 2;
    if (kind == K_CALLOC && !parse_size_word(r, w[at++], "count", &count))
        return TOOL_EXIT_ERROR;
    if (kind == K_ALIGNED && !parse_size_word(r, w[at++], "alignment", &align))
        return TOOL_EXIT_ERROR;
    if (!parse_size_word(r, w[at++], "size", &size) || !parse_caps_word(r, at < n ? w[at] : NULL, &caps, &has_caps))
        return TOOL_EXIT_ERROR;
    entry_t *e = table_get(&r->ids, id);
    if (e == NULL) {
        return trace_error(r, "out of host memory for the ID table");
    }
    if (e->live)
        return trace_error(r, "'%s' is still live (allocated or reallocated at line %lu): free it first, or use "
                              "another ID", id, e->line);
    failure_seen = false;
    r->calls[kind]++;
    void *p;
    size_t total = size;
    const char *own = NULL; /* a failure's reason when heap_caps is not asked */
    if (kind == K_CALLOC) {
        bool overflows = size != 0 && count > SIZE_MAX / size;
        total = overflows ? SIZE_MAX : count * size;
        if (overflows) /* with CAPS too: the dry run would only see a product too large */
            own = "COUNT x SIZE overflows size_t";
        if (has_caps) {
            p = heap_caps_calloc(count, size, caps);
        } else if (overflows) { /* the libc policy's calloc refuses it before its malloc */
            p = NULL;
        } else { /* the libc policy's calloc: its malloc, zeroed */
            p = heap_caps_malloc_default(total);
            if (p != NULL)
                memset(p, 0, total);
        }
    } else if (kind == K_ALIGNED) {
        p = has_caps ? heap_caps_aligned_alloc(align, size, caps) : heap_caps_aligned_alloc_default(align, size);
    } else {
        p = has_caps ? heap_caps_malloc(size, caps) : heap_caps_malloc_default(size);
    }
    if (p == NULL && total == 0) { /* malloc(0)'s NULL: the program holds it, may free it */
        e->ptr = NULL;
        e->size = 0;
        e->live = true;
        e->line = r->line;
        return TOOL_EXIT_OK;
    }
    if (p == NULL) {
        note_failure(r, text, own);
        e->live = false; /* the ID names no block */
        e->end = 'x';
        e->line = r->line;
        return r->opt->stop_on_failure ? TOOL_EXIT_FAILED : TOOL_EXIT_OK;
    }
    e->ptr = p;
    e->size = total;
    e->live = true;
    e->line = r->line;
    note_live(r, 1, (long long)total);
    return TOOL_EXIT_OK;
}

/* Split s into at most max words at blanks (a CR inside the line too, as
 * tools/README.md says), after cutting a '#' comment;
 * returns the number of words. */
static size_t split(char *s, char **w, size_t max)
{
    char *hash = strchr(s, '#');
    if (hash != NULL)
        *hash = '\0';
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(s, " \t\r\n", &save); t != NULL && n < max;
         t = strtok_r(NULL, " \t\r\n", &save))
        w[n++] = t;
    return n;
}

/* One line of text (len characters, no line end, no NUL): a comment, a blank
 * line or a call. Returns an exit code (TOOL_EXIT_OK to go on). */
static int replay_text_line(replay_t *r, char *line, size_t len)
{
    char text[LINE_MAX_LEN + 1]; /* the call as written, without its comment, for messages */
    memcpy(text, line, len + 1);
    size_t end = strcspn(text, "#");
    while (end > 0 && (text[end - 1] == ' ' || text[end - 1] == '\t'))
        end--;
    text[end] = '\0';
    /* Every call takes at most 6 words, so 7 are enough to refuse an extra one;
     * s takes the rest of the line as its label. */
    char *w[7];
    size_t n = split(line, w, 7);
    if (n == 0)
        return TOOL_EXIT_OK; /* blank or comment */
    return replay_line(r, w, n, text + (w[0] - line));
}

static void report(const replay_t *r, const size_t *peak, size_t heaps)
{
    fprintf(rout, "\n%lu calls: %lu malloc, %lu calloc, %lu aligned, %lu realloc, %lu free",
           r->calls[K_MALLOC] + r->calls[K_CALLOC] + r->calls[K_ALIGNED] + r->calls[K_REALLOC] + r->calls[K_FREE],
           r->calls[K_MALLOC], r->calls[K_CALLOC], r->calls[K_ALIGNED], r->calls[K_REALLOC], r->calls[K_FREE]);
    if (r->skipped != 0)
        fprintf(rout, " (%lu on blocks the trace never allocated, or freed, skipped)", r->skipped);
    fprintf(rout, "\n");
    if (r->failures == 0)
        fprintf(rout, "every allocation was served\n");
    else
        fprintf(rout, "%lu allocation%s failed%s\n", r->failures, r->failures == 1 ? "" : "s",
                r->opt->list_failures == 0                ? " (--list 0: none listed)"
                : r->failures > r->opt->list_failures ? " (the first ones are listed above)"
                                                          : "");
    char a[TOOL_SIZE_TEXT_MAX], b[TOOL_SIZE_TEXT_MAX];
    if (r->peak_line == 0)
        fprintf(rout, "peak: no block was live at any time\n");
    else
        fprintf(rout, "peak: %s asked for and live at line %lu; at the end: %zu blocks live, %s\n",
               tool_size_text(r->peak_bytes, a, sizeof a), r->peak_line, r->live_blocks,
               tool_size_text(r->live_bytes, b, sizeof b));
    fprintf(rout, "\nheaps, in search order (bytes; min free: the low-water mark since boot; peak used: "
           "the most in use at once during the trace, beyond what was in use before it)\n");
    print_heaps_with(peak, heaps);
    fprintf(rout, "\nby capability (bytes)\n");
    print_caps();
    bool intact = heap_caps_check_integrity_all(true);
    fprintf(rout, "\nheap_caps_check_integrity_all: %s\n", intact ? "every heap intact" : "CORRUPTED");
}

void replay_print_caps(void)
{
    rout = stdout;
    print_caps();
}

int replay_trace(FILE *in, const char *name, const replay_options_t *options)
{
    rout = options->out != NULL ? options->out : stdout;
    replay_t r;
    memset(&r, 0, sizeof r);
    r.name = name;
    r.opt = options;
    r.ids.cap = REPLAY_TABLE_START;
    r.ids.slots = calloc(r.ids.cap, sizeof(entry_t));
    /* Each heap's free bytes before the trace and its low-water mark since boot
     * (old_min), kept while the mark is reset to measure the trace's own peak. */
    size_t heaps = capheap_heap_count();
    size_t *start = calloc(3u * (heaps + 1u), sizeof *start);
    if (r.ids.slots == NULL || start == NULL) {
        fprintf(options->errors != NULL ? options->errors : stderr, "capheap: out of host memory\n");
        free(r.ids.slots);
        free(start);
        return TOOL_EXIT_ERROR;
    }
    size_t *old_min = start + heaps + 1u, *peak = old_min + heaps + 1u;
    for (size_t i = 0; i < heaps; i++) {
        capheap_heap_desc_t d;
        if (capheap_heap_get(i, &d) && d.heap != NULL) {
            start[i] = multi_heap_free_size(d.heap);
            old_min[i] = multi_heap_reset_minimum_free_bytes(d.heap);
        }
    }
    capheap_register_failed_alloc_callback(on_failure, NULL);

    /* Whole physical lines (getline): a NUL byte cannot hide the rest of a
     * line, nor make a new one of it. */
    int rc = TOOL_EXIT_OK;
    char *buf = NULL;
    size_t buf_size = 0;
    int read_errno = 0;
    while (rc == TOOL_EXIT_OK) {
        errno = 0;
        ssize_t got = getline(&buf, &buf_size, in);
        if (got < 0) {
            read_errno = errno; /* 0 at the end of the file */
            break;
        }
        r.line++;
        size_t len = (size_t)got;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = '\0'; /* LF or CRLF */
        if (r.line == 1 && len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
            memmove(buf, buf + 3, len - 2); /* a UTF-8 byte-order mark, and the NUL */
            len -= 3;
        }
        if (memchr(buf, '\0', len) != NULL)
            rc = trace_error(&r, "a NUL byte in the line (a trace is text)");
        else if (len > LINE_MAX_LEN)
            rc = trace_error(&r, "line longer than %u characters", LINE_MAX_LEN);
        else
            rc = replay_text_line(&r, buf, len);
    }
    free(buf);
    if (rc == TOOL_EXIT_OK && ferror(in)) { /* no line to blame: a directory, an I/O error */
        fflush(rout);
        fprintf(options->errors != NULL ? options->errors : stderr, "capheap: cannot read %s: %s\n", name,
                strerror(read_errno != 0 ? read_errno : EIO));
        rc = TOOL_EXIT_ERROR;
    }
    capheap_register_failed_alloc_callback(NULL, NULL);
    for (size_t i = 0; i < heaps; i++) {
        capheap_heap_desc_t d;
        if (capheap_heap_get(i, &d) && d.heap != NULL) {
            size_t low = multi_heap_minimum_free_size(d.heap);
            peak[i] = start[i] > low ? start[i] - low : 0;
            multi_heap_restore_minimum_free_bytes(d.heap, old_min[i]); /* the mark since boot again */
        }
    }
    if (rc != TOOL_EXIT_ERROR) {
        report(&r, peak, heaps);
        if (r.failures != 0)
            rc = TOOL_EXIT_FAILED;
    }
    if (options->free_live_at_end) /* every block the table holds, once: a lost or doubled one shows */
        for (size_t i = 0; i < r.ids.cap; i++)
            if (r.ids.slots[i].id[0] != '\0' && r.ids.slots[i].live)
                heap_caps_free(r.ids.slots[i].ptr);
    free(r.ids.slots);
    free(start);
    return rc;
}
