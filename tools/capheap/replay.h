/*
 * replay.h - replaying an allocation trace on the booted chip (`capheap replay`).
 *
 * A trace is text, one allocator call per line (tools/README.md has the
 * format): m(alloc), c(alloc), a(ligned alloc), r(ealloc), f(ree) on blocks
 * named by IDs, and s(napshot) to print the heaps at that point. The replay
 * makes each call through the public heap_caps API of the simulated chip,
 * then reports what failed and why (capheap_would_fit's reason), the peak
 * and final use of every heap and capability, and runs the integrity check.
 */
#ifndef CAPHEAP_TOOL_REPLAY_H
#define CAPHEAP_TOOL_REPLAY_H

#include <stdbool.h>
#include <stdio.h>

#include "capheap/caps.h"

typedef struct {
    bool ignore_unknown;  /* frees / reallocs of IDs the trace never allocated: counted, skipped */
    bool stop_on_failure; /* stop at the first allocation that fails */
    unsigned list_failures; /* failed calls listed in the report (the rest are counted) */
    FILE *out;              /* where the report goes (NULL: stdout) */
    FILE *errors;           /* where trace errors go (NULL: stderr) */
    bool free_live_at_end;  /* for tests (fuzz_tool_trace): after the report, free every block the ID
                               table holds as live, so that a block the table lost (still allocated)
                               or holds twice (freed twice) shows in the heaps' free size */
} replay_options_t;

/* Exit codes of the tool, shared by its commands. */
#define TOOL_EXIT_OK 0      /* every request was served (fit: it would be) */
#define TOOL_EXIT_FAILED 1  /* some allocation failed (fit: it would fail) */
#define TOOL_EXIT_ERROR 2   /* bad command line or trace, or the chip did not boot */

/* Replay the trace in `in` (named `name` in messages) on the chip booted now;
 * print the report on options->out and trace errors ("name:line: ...") on
 * options->errors (NULL: stdout, stderr).
 * Returns one of the exit codes above. */
int replay_trace(FILE *in, const char *name, const replay_options_t *options);

/* The heaps and capabilities now, as the report and `capheap boot` print them. */
void replay_print_heaps(void);
void replay_print_caps(void);

/* On stdout, for a dry run that found no room (NO_ROOM, ALIGNMENT_IMPOSSIBLE; else
 * nothing): " (...)" with the largest request the candidates serve beside their free
 * bytes, as the replay's failure lines say it. */
void replay_print_room(const capheap_fit_t *why);

#endif /* CAPHEAP_TOOL_REPLAY_H */
