/*
 * test_port.c - capheap/port.h and capheap/report.h: capheap_printf()
 * formatting (compared with the C library's snprintf for every supported
 * conversion), the 160-byte cut, the replaceable writer and abort handler,
 * the host port's stderr writer and abort(), and capheap_report_corruption()
 * with capheap_last_report(); the host port's task handles and names; and
 * capheap/config.h's ESP-IDF names (CONFIG_HEAP_*) against the build's options.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support.h"

#if CAPHEAP_PORT_HOST
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

/* capheap_vprintf and vsnprintf must print the same text for these arguments. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void same_as_libc(const char *fmt, ...)
{
    char want[512];
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    ct_capture_begin();
    capheap_vprintf(fmt, ap2);
    ct_capture_end();
    va_end(ap2);
    if (strcmp(ct_capture_text(), want) != 0) {
        fail_msg("format \"%s\": capheap printed \"%s\", libc \"%s\"", fmt, ct_capture_text(),
                 want);
    }
}

static void test_printf_integers(void **state)
{
    (void)state;
    same_as_libc("%d", 0);
    same_as_libc("%d", 7);
    same_as_libc("%d", -1);
    same_as_libc("%d", INT_MAX);
    same_as_libc("%d", INT_MIN);
    same_as_libc("%i", -123456);
    same_as_libc("%u", 0u);
    same_as_libc("%u", 4000000000u);
    same_as_libc("%u", UINT_MAX);
    same_as_libc("%x", 0u);
    same_as_libc("%x", 0xdeadbeefu);
    same_as_libc("%X", 0xdeadbeefu);
    same_as_libc("%x", 0xabcu);
    same_as_libc("%X", 0xabcu);
}

static void test_printf_width_and_zero(void **state)
{
    (void)state;
    same_as_libc("%08x", 0x12u);
    same_as_libc("%08x", 0xbaad5687u);
    same_as_libc("%08X", 0xfeu);
    same_as_libc("%02x", 0xfeu);
    same_as_libc("%02x", 0x5u);
    same_as_libc("%8x", 0x12u);
    same_as_libc("%5d", 42);
    same_as_libc("%5d", -42);
    same_as_libc("%05d", 42);
    same_as_libc("%05d", -42);
    same_as_libc("%3d", 12345);
    same_as_libc("%010u", 4000000000u);
    same_as_libc("%1d", 0);
    same_as_libc("%10s", "hi");
    same_as_libc("%2s", "hello");
    same_as_libc("%-5d|", 42);
    same_as_libc("%-5d|", -42);
    same_as_libc("%-10s|", "left");
    same_as_libc("%-8x|", 0xabcu);
}

/* Width applies to %c as to every conversion. */
static void test_printf_char_width(void **state)
{
    (void)state;
    same_as_libc("%3c", 'z');
    same_as_libc("%1c", 'z');
}

static void test_printf_length_modifiers(void **state)
{
    (void)state;
    same_as_libc("%ld", LONG_MIN);
    same_as_libc("%ld", LONG_MAX);
    same_as_libc("%lu", ULONG_MAX);
    same_as_libc("%lx", ULONG_MAX);
    same_as_libc("%li", -5L);
    same_as_libc("%lld", LLONG_MIN);
    same_as_libc("%lld", LLONG_MAX);
    same_as_libc("%llu", ULLONG_MAX);
    same_as_libc("%llx", 0x123456789abcdef0ull);
    same_as_libc("%llX", 0x123456789abcdef0ull);
    same_as_libc("%016llx", 0xabcull);
    same_as_libc("%zu", SIZE_MAX);
    same_as_libc("%zu", (size_t)0);
    same_as_libc("%zx", SIZE_MAX);
    same_as_libc("%zu", (size_t)12345);
    same_as_libc("%8zu", (size_t)42);
    same_as_libc("%08lx", 0xbeefUL);
}

static void test_printf_text(void **state)
{
    (void)state;
    same_as_libc("plain text");
    same_as_libc("%s", "");
    same_as_libc("%s", "hello");
    same_as_libc("%c", 'A');
    same_as_libc("%c%c%c", 'a', 'b', 'c');
    same_as_libc("%%");
    same_as_libc("100%% sure");
    same_as_libc("a=%d b=%s c=%x%% d=%c e=%zu\n", -3, "str", 0xffu, 'q', (size_t)99);
    same_as_libc("Block %s data, size: %u bytes, Free: %s \n", "x", 12u, "Yes");
    /* An empty format prints nothing. */
    ct_capture_begin();
    capheap_printf("%s", "");
    capheap_printf("%s", "");
    ct_capture_end();
    assert_int_equal(ct_capture_len(), 0);
}

/* capheap_printf with a format that is not a literal (formats the compiler
 * would reject as printf formats: unknown conversions, a trailing '%'). */
static void capheap_vprintf_text(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    capheap_vprintf(fmt, ap);
    va_end(ap);
}

/* Conversions capheap_printf does not know are printed as written (src/port/print.c),
 * a '%' at the very end of the format included; a NULL string prints as glibc's. */
static void test_printf_unknown_and_null(void **state)
{
    (void)state;
    const char *volatile none = NULL; /* volatile: no compile-time NULL-argument warning */
    static const struct {
        const char *fmt, *want;
    } cases[] = {
        {"%q", "%q"}, {"a%qb", "a%qb"}, {"%5.2f", "%5.2f"}, {"%-3y|", "%-3y|"}, {"50%", "50%"}, {"%", "%"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_capture_begin();
        capheap_vprintf_text(cases[i].fmt);
        ct_capture_end();
        if (strcmp(ct_capture_text(), cases[i].want) != 0)
            fail_msg("format \"%s\": printed \"%s\"", cases[i].fmt, ct_capture_text());
    }
    ct_capture_begin();
    capheap_printf("[%s]", none);
    ct_capture_end();
    assert_string_equal(ct_capture_text(), "[(null)]");
}

/* %p: a 0x-prefixed hexadecimal address that reads back as the pointer. */
static void test_printf_pointer(void **state)
{
    (void)state;
    static int object;
    const void *ptrs[] = {&object, (void *)(uintptr_t)0x1000, (void *)(uintptr_t)0x3ffb0000u,
                          (void *)UINTPTR_MAX};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) {
        ct_capture_begin();
        capheap_printf("%p", ptrs[i]);
        ct_capture_end();
        const char *t = ct_capture_text();
        assert_memory_equal(t, "0x", 2);
        char *end = NULL;
        unsigned long long v = strtoull(t + 2, &end, 16);
        assert_int_equal(*end, '\0');
        assert_true((uintptr_t)v == (uintptr_t)ptrs[i]);
    }
    /* NULL prints something and does not crash. */
    ct_capture_begin();
    capheap_printf("[%p]", (void *)NULL);
    ct_capture_end();
    assert_true(ct_capture_len() > 2);
}

/* Output longer than 160 bytes is cut (to a prefix of the full text). */
static void test_printf_cut_at_160(void **state)
{
    (void)state;
    char longtext[400];
    for (size_t i = 0; i < sizeof longtext - 1; i++) {
        longtext[i] = (char)('a' + i % 26);
    }
    longtext[sizeof longtext - 1] = '\0';
    ct_capture_begin();
    capheap_printf("%s", longtext);
    ct_capture_end();
    assert_true(ct_capture_len() > 0);
    assert_true(ct_capture_len() <= 160);
    assert_memory_equal(ct_capture_text(), longtext, ct_capture_len());

    /* Many conversions adding up past the limit. */
    char want[512];
    snprintf(want, sizeof want, "%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d",
             1000000, 2000000, 3000000, 4000000, 5000000, 6000000, 7000000, 8000000, 9000000,
             1000001, 1000002, 1000003, 1000004, 1000005, 1000006, 1000007, 1000008, 1000009,
             1000010, 1000011);
    ct_capture_begin();
    capheap_printf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d", 1000000, 2000000,
                   3000000, 4000000, 5000000, 6000000, 7000000, 8000000, 9000000, 1000001, 1000002,
                   1000003, 1000004, 1000005, 1000006, 1000007, 1000008, 1000009, 1000010,
                   1000011);
    ct_capture_end();
    assert_true(ct_capture_len() <= 160);
    assert_true(ct_capture_len() >= 100);
    assert_memory_equal(ct_capture_text(), want, ct_capture_len());

    /* Exactly 160 bytes fit. */
    longtext[160] = '\0';
    ct_capture_begin();
    capheap_printf("%s", longtext);
    ct_capture_end();
    assert_int_equal(ct_capture_len(), 160);
}

static void test_printf_varargs_wrapper(void **state)
{
    (void)state;
    ct_capture_begin();
    capheap_printf("x%dy%sz", 5, "-");
    ct_capture_end();
    assert_string_equal(ct_capture_text(), "x5y-z");
}

/* ---- writer replacement ---- */
static char other_buf[256];
static size_t other_len;
static void other_writer(const char *t, size_t n)
{
    if (other_len + n < sizeof other_buf) {
        memcpy(other_buf + other_len, t, n);
        other_len += n;
        other_buf[other_len] = '\0';
    }
}

static void test_set_writer(void **state)
{
    (void)state;
    capheap_write_fn first = capheap_set_writer(other_writer);
    assert_true(first == NULL || first == capheap_port_write);
    other_len = 0;
    capheap_printf("to %s", "other");
    assert_string_equal(other_buf, "to other");
    /* Replacing returns the one being replaced. */
    assert_true(capheap_set_writer(NULL) == other_writer);
    capheap_write_fn restored = capheap_set_writer(other_writer);
    assert_true(restored == NULL || restored == capheap_port_write);
    assert_true(capheap_set_writer(first) == other_writer);
}

#if CAPHEAP_PORT_HOST
/* Run fn with fd 2 redirected to a file; return what was written to it. */
static size_t stderr_of(void (*fn)(void), char *out, size_t out_size)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, out_size - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return n;
}

static void write_hello(void)
{
    capheap_port_write("hello port\n", 11);
}

static void printf_default(void)
{
    capheap_write_fn old = capheap_set_writer(NULL); /* the port's writer */
    capheap_printf("via %s %d\n", "default", 42);
    capheap_set_writer(old);
}

static void test_host_writer_is_stderr(void **state)
{
    (void)state;
    char buf[128];
    stderr_of(write_hello, buf, sizeof buf);
    assert_string_equal(buf, "hello port\n");
    stderr_of(printf_default, buf, sizeof buf);
    assert_string_equal(buf, "via default 42\n");
}

/* The host port's abort, and the default abort after a fatal report, raise SIGABRT. */
static int child_status(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 2);
        }
        fn();
        _exit(0); /* not reached if fn aborts */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void call_port_abort(void)
{
    capheap_port_abort("test");
}

static void call_fatal_report(void)
{
    capheap_set_abort_handler(NULL); /* the port's abort */
    capheap_report_t r = {.what = "Test report", .address = NULL, .expected = 1, .found = 2};
    capheap_report_corruption(&r, true, true);
}

static void test_host_abort(void **state)
{
    (void)state;
    int st = child_status(call_port_abort);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    st = child_status(call_fatal_report);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
}
#endif

/* ---- abort handler replacement ---- */
static jmp_buf my_env;
static const char *my_reason;
static int my_calls;
static void my_abort(const char *reason)
{
    my_calls++;
    my_reason = reason;
    longjmp(my_env, 1);
}

static void test_set_abort_handler(void **state)
{
    (void)state;
    capheap_abort_fn first = capheap_set_abort_handler(my_abort);
    assert_true(capheap_set_abort_handler(my_abort) == my_abort);
    my_calls = 0;
    capheap_report_t r = {.what = "Bad tail", .address = (void *)(uintptr_t)0x1000,
                          .expected = CT_TAIL_CANARY, .found = 0xbaad5687u, .invariant = 0};
    ct_capture_begin();
    if (setjmp(my_env) == 0) {
        capheap_report_corruption(&r, true, true);
        ct_capture_end();
        fail_msg("a fatal report returned");
    }
    ct_capture_end();
    assert_int_equal(my_calls, 1);
    assert_non_null(my_reason);
    assert_true(ct_capture_contains("CORRUPT HEAP: Bad tail at "));
    assert_true(capheap_set_abort_handler(first) == my_abort);
}

/* The report line: "CORRUPT HEAP: <what> at <address>. Expected 0x<e> got 0x<f> (...)". */
static void test_report_line_format(void **state)
{
    (void)state;
    static int object;
    capheap_report_t r = {.what = "Bad tail", .address = &object, .expected = CT_TAIL_CANARY,
                          .found = 0xbaad5687u, .invariant = 13}; /* multi_heap's canary reports name I13 */
    ct_capture_begin();
    capheap_report_corruption(&r, true, false);
    ct_capture_end();
    assert_int_equal(ct_capture_lines(), 1);
    const char *t = ct_capture_text();
    static const char prefix[] = "CORRUPT HEAP: Bad tail at 0x";
    assert_memory_equal(t, prefix, sizeof prefix - 1);
    char *end = NULL;
    unsigned long long addr = strtoull(t + sizeof prefix - 1, &end, 16);
    assert_true((uintptr_t)addr == (uintptr_t)&object);
    static const char rest[] = ". Expected 0xbaad5678 got 0xbaad5687";
    assert_memory_equal(end, rest, sizeof rest - 1);
    assert_int_equal(t[ct_capture_len() - 1], '\n');

    /* Small values are printed as hexadecimal too. */
    capheap_report_t s = {.what = "Invalid data", .address = &object, .expected = 0xfe,
                          .found = 0x42, .invariant = 9};
    ct_capture_begin();
    capheap_report_corruption(&s, true, false);
    ct_capture_end();
    const char *e = strstr(ct_capture_text(), "Expected 0x");
    assert_non_null(e);
    unsigned long long ev = strtoull(e + 11, &end, 16);
    assert_int_equal(ev, 0xfe);
    assert_memory_equal(end, " got 0x", 7);
    assert_int_equal(strtoull(end + 7, NULL, 16), 0x42);
}

static unsigned epilogue_calls;
static const void *epilogue_address;

static void count_epilogue(const void *address)
{
    epilogue_calls++;
    epilogue_address = address;
}

/* The line's exact form (capheap/report.h, docs/compat.md): expected and found
 * as 0x%08x followed by " (invariant In, docs/design.md)" when the report
 * names an invariant; without one (a pointer in no heap) neither, as the
 * values then carry nothing. */
static void test_report_invariant_suffix(void **state)
{
    (void)state;
    char want[128];
    capheap_report_t r = {.what = "Broken invariant", .address = (void *)(uintptr_t)0x2000, .expected = 0xfe,
                          .found = 0x42, .invariant = 0};
    ct_capture_begin();
    capheap_report_corruption(&r, true, false);
    ct_capture_end();
    assert_string_equal(ct_capture_text(), "CORRUPT HEAP: Broken invariant at 0x2000.\n");
    r.invariant = 7;
    ct_capture_begin();
    capheap_report_corruption(&r, true, false);
    ct_capture_end();
    snprintf(want, sizeof want,
             "CORRUPT HEAP: Broken invariant at 0x2000. Expected 0x000000fe got 0x00000042 (invariant I7, "
             "docs/design.md)\n");
    assert_string_equal(ct_capture_text(), want);
    r.invariant = 12;
    r.what = NULL; /* no text: a generic one, never NULL */
    ct_capture_begin();
    capheap_report_corruption(&r, true, false);
    ct_capture_end();
    assert_true(ct_capture_contains(" (invariant I12, docs/design.md)\n"));
    assert_false(ct_capture_contains("(null)"));
}

/* A report that names no memory (address NULL) is a usage error, not
 * corruption (capheap/report.h): "<what> (esp_err_t 0x<found>)", no "CORRUPT
 * HEAP", no expected value, no invariant, and no block description before a
 * fatal one's abort (there is no block). */
static void test_report_usage_error(void **state)
{
    (void)state;
    capheap_report_t r = {.what = "heap_caps_init: called twice", .address = NULL, .expected = 0,
                          .found = 0x103, .invariant = 0};
    ct_capture_begin();
    capheap_report_corruption(&r, true, false);
    ct_capture_end();
    assert_string_equal(ct_capture_text(), "heap_caps_init: called twice (esp_err_t 0x103)\n");
    r.expected = 0x77;
    r.invariant = 9;
    r.found = 0xffffffffu; /* ESP_FAIL */
    capheap_report_set_epilogue(count_epilogue);
    epilogue_calls = 0;
    bool aborted;
    ct_capture_begin();
    CT_CATCH_ABORT(aborted, capheap_report_corruption(&r, true, true));
    ct_capture_end();
    capheap_report_set_epilogue(NULL);
    assert_true(aborted);
    assert_int_equal(epilogue_calls, 0);
    assert_string_equal(ct_capture_text(), "heap_caps_init: called twice (esp_err_t 0xffffffff)\n");
    assert_int_equal(capheap_last_report().found, 0xffffffffu);
}

/* A line as long as the library's longest message, with every field at its
 * widest, is printed whole. */
static void test_report_long_line_whole(void **state)
{
    (void)state;
    char want[256];
    capheap_report_t r = {.what = "free() target pointer is outside heap areas",
                          .address = (void *)UINTPTR_MAX, .expected = 0xffffffffu, .found = 0x80000000u,
                          .invariant = 4294967295u};
    ct_capture_begin();
    capheap_report_corruption(&r, true, false);
    ct_capture_end();
    snprintf(want, sizeof want,
             "CORRUPT HEAP: free() target pointer is outside heap areas at 0x%" PRIxPTR
             ". Expected 0xffffffff got 0x80000000 (invariant I4294967295, docs/design.md)\n",
             (uintptr_t)UINTPTR_MAX);
    assert_string_equal(ct_capture_text(), want);
}

/* The report epilogue (capheap_report_set_epilogue, report.h: heap_caps'
 * block description) runs after a printed fatal report only: not after a
 * non-fatal one (heap_caps_check_integrity describes the block itself), not
 * when nothing was printed. */

static void test_report_epilogue_after_printed_fatal_only(void **state)
{
    (void)state;
    capheap_report_t r = {.what = "Bad head", .address = (void *)(uintptr_t)0x4000, .expected = 1, .found = 2};
    bool aborted;
    capheap_report_set_epilogue(count_epilogue);
    epilogue_calls = 0;
    ct_capture_begin();
    capheap_report_corruption(&r, true, false);
    CT_CATCH_ABORT(aborted, capheap_report_corruption(&r, false, true));
    ct_capture_end();
    assert_true(aborted);
    assert_int_equal(epilogue_calls, 0);
    ct_capture_begin();
    CT_CATCH_ABORT(aborted, capheap_report_corruption(&r, true, true));
    ct_capture_end();
    capheap_report_set_epilogue(NULL);
    assert_true(aborted);
    assert_int_equal(epilogue_calls, 1);
    assert_ptr_equal(epilogue_address, r.address);
}

/* print=false prints nothing; the report is remembered either way; clear forgets it. */
static void test_last_report(void **state)
{
    (void)state;
    capheap_clear_last_report();
    assert_null(capheap_last_report().what);
    capheap_report_t r = {.what = "Double free", .address = (void *)(uintptr_t)0x2000,
                          .expected = 3, .found = 4, .invariant = 7};
    ct_capture_begin();
    capheap_report_corruption(&r, false, false);
    ct_capture_end();
    assert_int_equal(ct_capture_len(), 0);
    capheap_report_t got = capheap_last_report();
    assert_string_equal(got.what, "Double free");
    assert_ptr_equal(got.address, (void *)(uintptr_t)0x2000);
    assert_int_equal(got.expected, 3);
    assert_int_equal(got.found, 4);
    assert_int_equal(got.invariant, 7);
    capheap_report_t r2 = {.what = "Bad head", .address = (void *)(uintptr_t)0x10, .expected = 5, .found = 6};
    ct_capture_begin();
    capheap_report_corruption(&r2, true, false);
    ct_capture_end();
    assert_string_equal(capheap_last_report().what, "Bad head");
    assert_true(ct_capture_contains("CORRUPT HEAP: Bad head"));
    capheap_clear_last_report();
    assert_null(capheap_last_report().what);
}

/* The support harness itself: CT_CATCH_ABORT sees a fatal report. */
static void test_harness_catches_abort(void **state)
{
    (void)state;
    capheap_report_t r = {.what = "Harness", .address = NULL, .expected = 0, .found = 0};
    bool aborted = false;
    unsigned before = ct_abort_count();
    ct_capture_begin();
    CT_CATCH_ABORT(aborted, capheap_report_corruption(&r, true, true));
    ct_capture_end();
    assert_true(aborted);
    assert_int_equal(ct_abort_count(), before + 1);
    CT_CATCH_ABORT(aborted, capheap_report_corruption(&r, false, false));
    assert_false(aborted);
}

#if CAPHEAP_PORT_HOST
/* The host port's task handles and names (capheap/port.h): a handle per
 * thread, 1, 2, 3, ... in order of first call and never reused; the name is
 * the thread's own pthread name if it set one, "main" for the process's first
 * thread, else "thread-N" with N the handle in decimal (one, two and three
 * digits alike); NULL for another thread's handle. */
typedef struct {
    const char *set; /* pthread_setname_np first, or NULL */
    void *task;
    char name[32];
} name_probe_t;

static void *report_name(void *arg)
{
    name_probe_t *p = arg;
    if (p->set != NULL)
        (void)pthread_setname_np(pthread_self(), p->set);
    p->task = capheap_port_current_task();
    const char *n = capheap_port_task_name(p->task);
    snprintf(p->name, sizeof p->name, "%s", n ? n : "(null)");
    return NULL;
}

static void test_host_task_handles_and_names(void **state)
{
    (void)state;
    void *me = capheap_port_current_task();
    assert_non_null(me);
    assert_ptr_equal(capheap_port_current_task(), me);
    assert_string_equal(capheap_port_task_name(me), "main");
    assert_string_equal(capheap_port_task_name(NULL), "Pre-scheduler");
    uintptr_t last = (uintptr_t)me;
    for (int k = 0; k < 200 && last < 100; k++) {
        name_probe_t p = {NULL, NULL, ""};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, report_name, &p), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        uintptr_t id = (uintptr_t)p.task;
        assert_true(id > last); /* in order, never reused */
        last = id;
        char want[32];
        snprintf(want, sizeof want, "thread-%" PRIuPTR, id);
        assert_string_equal(p.name, want);
        assert_null(capheap_port_task_name(p.task)); /* not this thread's handle */
    }
    assert_true(last >= 100);

    name_probe_t named = {"cam-worker", NULL, ""};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, report_name, &named), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_string_equal(named.name, "cam-worker");
}

/* capheap_port_backtrace (capheap/port.h): frames[0] is where its caller
 * will return to, skip drops further callers, depth bounds what it writes.
 * Both host unwinders (the frame-pointer walk of -O0 builds, glibc's
 * backtrace() otherwise) answer the same. The functions are called through
 * volatile pointers, so that no clone or inlined copy stands in for them. */
typedef struct {
    void *frames[8];
    size_t depth, skip, n;
    void *leaf_ra, *mid_ra; /* their own return addresses, from the compiler */
} bt_probe_t;

static __attribute__((noinline)) void bt_leaf(bt_probe_t *p)
{
    p->n = capheap_port_backtrace(p->frames, p->depth, p->skip);
    p->leaf_ra = __builtin_return_address(0);
    __asm__ volatile("" ::: "memory"); /* no tail call: the leaf keeps its frame */
}

static void (*volatile bt_leaf_fn)(bt_probe_t *) = bt_leaf;

static __attribute__((noinline)) void bt_mid(bt_probe_t *p)
{
    bt_leaf_fn(p);
    p->mid_ra = __builtin_return_address(0);
    __asm__ volatile("" ::: "memory");
}

static void (*volatile bt_mid_fn)(bt_probe_t *) = bt_mid;

#define BT_UNTOUCHED ((void *)(uintptr_t)0x5a5a)

static bt_probe_t bt_run(size_t depth, size_t skip)
{
    bt_probe_t p;
    memset(&p, 0, sizeof p);
    for (size_t i = 0; i < 8; i++)
        p.frames[i] = BT_UNTOUCHED;
    p.depth = depth;
    p.skip = skip;
    bt_mid_fn(&p);
    return p;
}

static void test_host_backtrace(void **state)
{
    (void)state;
    bt_probe_t p = bt_run(8, 0);
    assert_true(p.n >= 3); /* into bt_mid, into bt_run, into this test, and beyond */
    assert_ptr_equal(p.frames[0], p.leaf_ra);
    assert_ptr_equal(p.frames[1], p.mid_ra);
    for (size_t i = p.n; i < 8; i++)
        assert_ptr_equal(p.frames[i], BT_UNTOUCHED);

    bt_probe_t one = bt_run(8, 1); /* the leaf's caller dropped */
    assert_true(one.n >= 2);
    assert_ptr_equal(one.frames[0], one.mid_ra);

    bt_probe_t two = bt_run(1, 0);
    assert_int_equal(two.n, 1);
    assert_ptr_equal(two.frames[0], two.leaf_ra);
    assert_ptr_equal(two.frames[1], BT_UNTOUCHED);

    bt_probe_t none = bt_run(0, 0);
    assert_int_equal(none.n, 0);
    assert_ptr_equal(none.frames[0], BT_UNTOUCHED);

    bt_probe_t far = bt_run(8, 100000); /* more callers skipped than there are */
    assert_int_equal(far.n, 0);
    assert_ptr_equal(far.frames[0], BT_UNTOUCHED);
}

/* The critical section (capheap/port.h; the library calls it only on CPUs
 * without atomic read-modify-write, tests/target runs those): on the host a
 * process-wide mutex, so two threads' unlocked read-modify-writes inside it
 * lose no update. Without the exclusion this loses thousands: each thread
 * yields inside the section now and then, so the two interleave also on a
 * loaded machine (without the yield a mutant with no lock passed there). */
#define CRIT_ROUNDS 200000
static volatile uint32_t crit_counter;

static pthread_barrier_t crit_start;

static void *crit_worker(void *arg)
{
    (void)arg;
    (void)pthread_barrier_wait(&crit_start); /* both at once, however loaded the machine */
    for (int i = 0; i < CRIT_ROUNDS; i++) {
        uint32_t st = capheap_port_critical_enter();
        uint32_t v = crit_counter;
        if (i % 64 == 0)
            sched_yield(); /* the other thread runs now, even on one free core: it must wait */
        crit_counter = v + 1u;
        capheap_port_critical_exit(st);
    }
    return NULL;
}

static void test_host_critical_section(void **state)
{
    (void)state;
    crit_counter = 0;
    assert_int_equal(pthread_barrier_init(&crit_start, NULL, 2), 0);
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, crit_worker, NULL), 0);
    assert_int_equal(pthread_create(&b, NULL, crit_worker, NULL), 0);
    assert_int_equal(pthread_join(a, NULL), 0);
    assert_int_equal(pthread_join(b, NULL), 0);
    assert_int_equal(pthread_barrier_destroy(&crit_start), 0);
    assert_int_equal(crit_counter, 2u * CRIT_ROUNDS);
    uint32_t st = capheap_port_critical_enter(); /* usable again after the threads */
    capheap_port_critical_exit(st);
}
#endif

/* Ported code tests ESP-IDF's Kconfig symbols with #if and #ifdef: each must
 * say what the build's own option says (docs/config.md). */
static void test_config_esp_idf_names(void **state)
{
    (void)state;
    int disabled = 0, light = 0, comprehensive = 0, poisoning = 0, slow = 0;
#ifdef CONFIG_HEAP_POISONING_DISABLED
    disabled = CONFIG_HEAP_POISONING_DISABLED;
#endif
#ifdef CONFIG_HEAP_POISONING_LIGHT
    light = CONFIG_HEAP_POISONING_LIGHT;
#endif
#ifdef CONFIG_HEAP_POISONING_COMPREHENSIVE
    comprehensive = CONFIG_HEAP_POISONING_COMPREHENSIVE;
#endif
#ifdef MULTI_HEAP_POISONING
    poisoning = 1;
#endif
#ifdef MULTI_HEAP_POISONING_SLOW
    slow = 1;
#endif
    assert_int_equal(disabled + light + comprehensive, 1);
    assert_int_equal(disabled, CAPHEAP_POISONING_NONE);
    assert_int_equal(light, CAPHEAP_POISONING_LIGHT);
    assert_int_equal(comprehensive, CAPHEAP_POISONING_COMPREHENSIVE);
    assert_int_equal(poisoning, !CAPHEAP_POISONING_NONE);
    assert_int_equal(slow, CAPHEAP_POISONING_COMPREHENSIVE);

    int exec = 0, tracing = 0, hooks = 0, tracking = 0, abort_fail = 0;
#ifdef CONFIG_HEAP_HAS_EXEC_HEAP
    exec = CONFIG_HEAP_HAS_EXEC_HEAP;
#endif
#ifdef CONFIG_HEAP_TRACING
    tracing = CONFIG_HEAP_TRACING;
#endif
#ifdef CONFIG_HEAP_USE_HOOKS
    hooks = CONFIG_HEAP_USE_HOOKS;
#endif
#ifdef CONFIG_HEAP_TASK_TRACKING
    tracking = CONFIG_HEAP_TASK_TRACKING;
#endif
#ifdef CONFIG_HEAP_ABORT_WHEN_ALLOCATION_FAILS
    abort_fail = CONFIG_HEAP_ABORT_WHEN_ALLOCATION_FAILS;
#endif
    assert_int_equal(exec, CAPHEAP_EXEC_HEAP);
    assert_int_equal(tracing, CAPHEAP_TRACING);
    assert_int_equal(hooks, CAPHEAP_USE_HOOKS);
    assert_int_equal(tracking, CAPHEAP_TASK_TRACKING);
    assert_int_equal(abort_fail, CAPHEAP_ABORT_WHEN_ALLOCATION_FAILS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_esp_idf_names),
        cmocka_unit_test(test_printf_integers),
        cmocka_unit_test(test_printf_width_and_zero),
        cmocka_unit_test(test_printf_char_width),
        cmocka_unit_test(test_printf_length_modifiers),
        cmocka_unit_test(test_printf_text),
        cmocka_unit_test(test_printf_unknown_and_null),
        cmocka_unit_test(test_printf_pointer),
        cmocka_unit_test(test_printf_cut_at_160),
        cmocka_unit_test(test_printf_varargs_wrapper),
        cmocka_unit_test(test_set_writer),
#if CAPHEAP_PORT_HOST
        cmocka_unit_test(test_host_writer_is_stderr),
        cmocka_unit_test(test_host_abort),
#endif
        cmocka_unit_test(test_set_abort_handler),
        cmocka_unit_test(test_report_line_format),
        cmocka_unit_test(test_report_invariant_suffix),
        cmocka_unit_test(test_report_usage_error),
        cmocka_unit_test(test_report_long_line_whole),
        cmocka_unit_test(test_report_epilogue_after_printed_fatal_only),
        cmocka_unit_test(test_last_report),
        cmocka_unit_test(test_harness_catches_abort),
#if CAPHEAP_PORT_HOST
        cmocka_unit_test(test_host_task_handles_and_names),
        cmocka_unit_test(test_host_critical_section),
        cmocka_unit_test(test_host_backtrace),
#endif
    };
    return cmocka_run_group_tests_name("port", tests, NULL, NULL);
}
