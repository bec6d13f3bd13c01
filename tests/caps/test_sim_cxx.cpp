/*
 * test_sim_cxx.cpp - capheap_sim_cxx (sim/libcxx/new.cpp): with a simulated
 * chip booted, every form of operator new takes its memory from heap_caps'
 * _default policy, as ESP-IDF's libstdc++ does, the C++ library's own
 * allocations included; before the boot the host allocator serves them, and
 * delete gives every block back to the allocator that made it. Failure is
 * the standard's (new handler, std::bad_alloc, nullptr from nothrow), with
 * heap_caps' failed-allocation callback on the way.
 */
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <system_error>
#include <vector>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

extern "C" { /* Debian's cmocka.h declares its functions without C linkage for C++ */
#include <cmocka.h>
}

#include "capheap/caps.h"
#include "capheap/chip.h"
#include "capheap/config.h"
#include "capheap/report.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "sim_cxx_userlib.h"
#include "support.h"
#if CAPHEAP_TRACING
#include "esp_heap_trace.h"
#endif

namespace {

/* A result stored here escapes, so the compiler cannot drop the allocation. */
void *volatile kept;

/* The caps of the heap holding p (all priorities), or 0 for a pointer in no heap. */
uint32_t heap_caps_of(const void *p)
{
    capheap_heap_desc_t d;
    if (!capheap_heap_find_desc(p, &d))
        return 0;
    return d.caps[0] | d.caps[1] | d.caps[2];
}

bool in_chip(const void *p)
{
    return capheap_heap_find(p) >= 0;
}

void boot(const char *chip, size_t psram)
{
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    o.psram_bytes = psram;
    assert_int_equal(capheap_sim_boot(capheap_chip_find(chip), &o), ESP_OK);
}

int shutdown_sim(void **)
{
    if (capheap_sim_chip() != nullptr)
        assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    std::set_new_handler(nullptr);
    return 0;
}

size_t default_free(void)
{
    return heap_caps_get_free_size(MALLOC_CAP_DEFAULT);
}

/* The sized forms exist where the compiler has sized deallocation (g++ from
 * C++14; clang 14 only with -fsized-deallocation): then sized, else unsized. */
#if defined(__cpp_sized_deallocation)
#define SIZED(sized, unsized) sized
#else
#define SIZED(sized, unsized) unsized
#endif

struct alignas(64) line {
    unsigned char bytes[64];
};

/* No chip: the host allocator. */
void test_host_before_boot(void **)
{
    assert_null(capheap_sim_chip());
    int *p = new int(7);
    assert_false(in_chip(p));
    delete p;
    line *l = new line[3];
    assert_int_equal(reinterpret_cast<uintptr_t>(l) % 64u, 0);
    assert_false(in_chip(l));
    delete[] l;
}

/* Booted: new and new[] are served by the chip's internal RAM, and delete
 * gives the bytes back. */
void test_new_and_delete_in_the_chip(void **)
{
    boot("esp32s3", 0);
    size_t before = default_free();
    int *a = new int[1000];
    assert_true(in_chip(a));
    assert_true((heap_caps_of(a) & MALLOC_CAP_INTERNAL) != 0);
    assert_true(heap_caps_get_allocated_size(a) >= 1000 * sizeof(int));
    assert_true(default_free() <= before - 1000 * sizeof(int));
    int *one = new int(42);
    assert_true(in_chip(one));
    assert_int_equal(*one, 42);
    delete one;
    delete[] a;
    assert_int_equal(default_free(), before);
}

/* The containers and strings of a C++ firmware live in the chip too: a
 * vector's storage, and a string made inside libstdc++.so (the message of an
 * error code is built there), which proves the replacement reaches the C++
 * library's own calls of operator new. */
void test_library_allocations_in_the_chip(void **)
{
    boot("esp32s3", 0);
    size_t before = default_free();
    {
        std::vector<uint32_t> v;
        for (uint32_t i = 0; i < 5000; i++)
            v.push_back(i);
        assert_true(in_chip(v.data()));
        std::string message = std::make_error_code(std::errc::no_such_file_or_directory).message();
        assert_true(message.size() > 15u); /* past libstdc++'s small-string buffer (15 chars) */
        assert_true(in_chip(message.data()));
        std::string copy(300, 'x');
        assert_true(in_chip(copy.data()));
        assert_true(default_free() < before);
    }
    assert_int_equal(default_free(), before);
}

/* Over-aligned types take the aligned forms, served by the chip at that alignment. */
void test_aligned_new(void **)
{
    boot("esp32s3", 0);
    size_t before = default_free();
    line *l = new line;
    assert_true(in_chip(l));
    assert_int_equal(reinterpret_cast<uintptr_t>(l) % 64u, 0);
    line *arr = new line[5];
    assert_true(in_chip(arr));
    assert_int_equal(reinterpret_cast<uintptr_t>(arr) % 64u, 0);
    void *p = ::operator new(100, std::align_val_t(256));
    assert_true(in_chip(p));
    assert_int_equal(reinterpret_cast<uintptr_t>(p) % 256u, 0);
    void *q = ::operator new[](10, std::align_val_t(128), std::nothrow);
    assert_non_null(q);
    assert_int_equal(reinterpret_cast<uintptr_t>(q) % 128u, 0);
    void *r = ::operator new(24, std::align_val_t(512), std::nothrow); /* each form keeps its alignment */
    assert_true(in_chip(r));
    assert_int_equal(reinterpret_cast<uintptr_t>(r) % 512u, 0);
    ::operator delete(r, std::align_val_t(512), std::nothrow);
    SIZED(::operator delete(p, 100, std::align_val_t(256)), ::operator delete(p, std::align_val_t(256)));
    ::operator delete[](q, std::align_val_t(128), std::nothrow);
    delete[] arr;
    delete l;
    assert_int_equal(default_free(), before);
}

/* With the boot's heap_alignment at the host's alignof(max_align_t), objects
 * that hold pointers (or need 16 bytes) are aligned for the host: what a
 * 64-bit host program under UndefinedBehaviorSanitizer wants. */
void test_host_alignment_option(void **)
{
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    o.heap_alignment = alignof(std::max_align_t);
    assert_int_equal(capheap_sim_boot(capheap_chip_find("esp32s3"), &o), ESP_OK);
    std::vector<std::string *> v;
    for (size_t i = 0; i < 50; i++) {
        v.push_back(new std::string(i * 3, 'a'));
        assert_true(in_chip(v.back()));
        assert_int_equal(reinterpret_cast<uintptr_t>(v.back()) % alignof(std::max_align_t), 0);
    }
    long double *ld = new long double(1.5L);
    assert_int_equal(reinterpret_cast<uintptr_t>(ld) % alignof(long double), 0);
    delete ld;
    for (std::string *s : v)
        delete s;
}

/* Every delete form gives the block back; new of 0 bytes is a unique block. */
void test_every_delete_form(void **)
{
    boot("esp32s3", 0);
    size_t before = default_free();
    void *z1 = ::operator new(0);
    void *z2 = ::operator new[](0);
    assert_non_null(z1);
    assert_non_null(z2);
    assert_ptr_not_equal(z1, z2);
    assert_true(in_chip(z1) && in_chip(z2));
    ::operator delete(z1);
    ::operator delete[](z2);
    void *p[10];
    for (size_t i = 0; i < 10; i++) {
        p[i] = i % 2 ? ::operator new(48, std::align_val_t(32)) : ::operator new(48, std::nothrow);
        assert_true(in_chip(p[i]));
    }
    SIZED(::operator delete(p[0], 48), ::operator delete(p[0]));
    SIZED(::operator delete[](p[1], 48, std::align_val_t(32)), ::operator delete[](p[1], std::align_val_t(32)));
    ::operator delete(p[2], std::nothrow);
    ::operator delete[](p[3], std::align_val_t(32), std::nothrow);
    ::operator delete[](p[4], std::nothrow);
    ::operator delete(p[5], std::align_val_t(32));
    SIZED(::operator delete[](p[6], 48), ::operator delete[](p[6]));
    ::operator delete(p[7], std::align_val_t(32), std::nothrow);
    ::operator delete[](p[8]);
    ::operator delete[](p[9], std::align_val_t(32));
    ::operator delete(nullptr);
    ::operator delete[](nullptr, std::align_val_t(32));
    assert_int_equal(default_free(), before);
}

size_t failed_size;
int failed_calls;

void on_failed(size_t size, uint32_t caps, const char *function)
{
    (void)caps;
    (void)function;
    failed_size = size;
    failed_calls++;
}

/* A request the chip cannot serve: std::bad_alloc, or nullptr from the
 * nothrow forms, after heap_caps' failed-allocation callback. */
void test_failure_throws_bad_alloc(void **)
{
    boot("esp32s3", 0);
    assert_int_equal(heap_caps_register_failed_alloc_callback(on_failed), ESP_OK);
    failed_calls = 0;
    size_t huge = 1u << 20; /* more than the S3's internal RAM */
    bool thrown = false;
    try {
        kept = ::operator new(huge);
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    assert_true(thrown);
    assert_true(failed_calls >= 1);
    assert_int_equal(failed_size, huge);
    assert_null(::operator new(huge, std::nothrow)); /* every nothrow form */
    assert_null(::operator new[](huge, std::nothrow));
    assert_null(::operator new(huge, std::align_val_t(64), std::nothrow));
    assert_null(::operator new[](huge, std::align_val_t(64), std::nothrow));
    thrown = false;
    try {
        kept = new line[huge / sizeof(line)];
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    assert_true(thrown);
    assert_int_equal(heap_caps_register_failed_alloc_callback(nullptr), ESP_OK);
}

void *reserve;
int handler_calls;

/* Frees the reserve, so that the retry succeeds. */
void release_reserve()
{
    handler_calls++;
    heap_caps_free(reserve);
    reserve = nullptr;
}

/* The new handler runs while the chip cannot serve the request, and new
 * tries again after it: here it frees a reserve, and the second try succeeds. */
void test_new_handler_is_called(void **)
{
    boot("esp32s3", 0);
    size_t largest = heap_caps_get_largest_free_block(MALLOC_CAP_DEFAULT);
    reserve = heap_caps_malloc(largest, MALLOC_CAP_DEFAULT);
    assert_non_null(reserve);
    size_t want = largest - 1024; /* more than any other heap holds */
    assert_true(want > heap_caps_get_largest_free_block(MALLOC_CAP_DEFAULT));
    handler_calls = 0;
    std::set_new_handler(release_reserve);
    char *p = new char[want];
    assert_int_equal(handler_calls, 1);
    assert_true(in_chip(p));
    std::set_new_handler(nullptr);
    delete[] p;
}

/* A host object made before the boot is still the host's to free afterwards,
 * and a chip object made while booted is the chip's, whichever API frees it. */
void test_blocks_go_back_where_they_came_from(void **)
{
    std::string *host = new std::string(100, 'h');
    assert_false(in_chip(host));
    assert_false(in_chip(host->data()));
    boot("esp32s3", 0);
    size_t before = default_free();
    delete host; /* the host's, through the chip-era operator delete */
    assert_int_equal(default_free(), before);
    void *c = ::operator new(200);
    assert_true(in_chip(c));
    heap_caps_free(c); /* ESP-IDF's new is malloc: heap_caps takes the block back */
    assert_int_equal(default_free(), before);
}

/* A chip object deleted after the shutdown is reported (its memory is gone),
 * in delete's words, and aborts through the port. */
void test_delete_after_shutdown_is_reported(void **)
{
    boot("esp32c3", 0);
    void *p = ::operator new(64);
    assert_true(in_chip(p));
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    bool aborted = false;
    CT_CATCH_ABORT(aborted, ::operator delete(p));
    assert_true(aborted);
    assert_ptr_equal(capheap_last_report().address, p);
    assert_non_null(std::strstr(capheap_last_report().what,
                                "operator delete of a block of the simulated chip after capheap_sim_shutdown()"));
    int *h = new int(3); /* no chip: the host's */
    assert_false(in_chip(h));
    delete h;
}

#if CAPHEAP_TRACING
void *volatile sink;

/* site must lie in the function at fn (after: a ct_call_site() it made). */
void expect_site(void *site, void *fn, void *after, const char *name)
{
    if (!ct_site_within(reinterpret_cast<uintptr_t>(site), reinterpret_cast<uintptr_t>(fn),
                        reinterpret_cast<uintptr_t>(after)))
        fail_msg("alloced_by[0] = %p, expected in %s from %p", site, name, fn);
}

/* The program's own code calling new: the trace must name it as the caller. */
CT_NOINLINE int *user_new()
{
    sink = ct_call_site();
    int *p = new int[10];
    sink = ct_call_site();
    return p;
}
#endif

/* A leak hunt over C++ code sees its objects, with the caller in the
 * program, not in operator new. */
void test_tracing_sees_new(void **)
{
#if CAPHEAP_TRACING
    boot("esp32s3", 0);
    static heap_trace_record_t records[16];
    assert_int_equal(heap_trace_init_standalone(records, 16), ESP_OK);
    assert_int_equal(heap_trace_start(HEAP_TRACE_LEAKS), ESP_OK);
    int *leak = user_new();
    delete new int(1);
    int *lib_leak = sim_userlib_new(); /* from a static library between the simulator's archives */
    assert_int_equal(heap_trace_stop(), ESP_OK);
    assert_int_equal(heap_trace_get_count(), 2);
    heap_trace_record_t r;
    assert_int_equal(heap_trace_get(0, &r), ESP_OK);
    assert_ptr_equal(r.address, leak);
    assert_int_equal(r.size, 10 * sizeof(int));
#if CAPHEAP_TRACE_STACK_DEPTH > 0
    expect_site(r.alloced_by[0], reinterpret_cast<void *>(&user_new), sink, "user_new");
#endif
    assert_int_equal(heap_trace_get(1, &r), ESP_OK);
    assert_ptr_equal(r.address, lib_leak);
#if CAPHEAP_TRACE_STACK_DEPTH > 0
    expect_site(r.alloced_by[0], reinterpret_cast<void *>(&sim_userlib_new), sim_userlib_after, "sim_userlib_new");
#endif
    delete[] lib_leak;
    delete[] leak;
    assert_int_equal(heap_trace_init_standalone(nullptr, 0), ESP_OK);
#else
    skip();
#endif
}

} // namespace

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_host_before_boot, shutdown_sim),
        cmocka_unit_test_teardown(test_new_and_delete_in_the_chip, shutdown_sim),
        cmocka_unit_test_teardown(test_library_allocations_in_the_chip, shutdown_sim),
        cmocka_unit_test_teardown(test_aligned_new, shutdown_sim),
        cmocka_unit_test_teardown(test_every_delete_form, shutdown_sim),
        cmocka_unit_test_teardown(test_host_alignment_option, shutdown_sim),
        cmocka_unit_test_teardown(test_failure_throws_bad_alloc, shutdown_sim),
        cmocka_unit_test_teardown(test_new_handler_is_called, shutdown_sim),
        cmocka_unit_test_teardown(test_blocks_go_back_where_they_came_from, shutdown_sim),
        cmocka_unit_test_teardown(test_delete_after_shutdown_is_reported, shutdown_sim),
        cmocka_unit_test_teardown(test_tracing_sees_new, shutdown_sim),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
