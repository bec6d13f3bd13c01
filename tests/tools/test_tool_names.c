/*
 * test_tool_names.c - the capheap tool's words (tools/capheap/names.c): sizes
 * and capability masks are read whole or not at all, every MALLOC_CAP_ name
 * round-trips, and overflow is refused rather than wrapped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "esp_heap_caps.h"
#include "names.h"

static size_t size_of(const char *word)
{
    size_t v = 12345;
    assert_true(tool_parse_size(word, &v));
    return v;
}

static void refused_size(const char *word)
{
    size_t v = 12345;
    assert_false(tool_parse_size(word, &v));
    assert_int_equal(v, 12345); /* nothing stored */
}

static void test_sizes(void **state)
{
    (void)state;
    assert_int_equal(size_of("0"), 0);
    assert_int_equal(size_of("4096"), 4096);
    assert_int_equal(size_of("0x1000"), 4096);
    assert_int_equal(size_of("0X1f"), 31);
    assert_int_equal(size_of("16K"), 16384);
    assert_int_equal(size_of("16k"), 16384);
    assert_int_equal(size_of("16KiB"), 16384);
    assert_int_equal(size_of("16kib"), 16384);
    assert_int_equal(size_of("8M"), 8u << 20);
    assert_int_equal(size_of("8MiB"), 8u << 20);
    assert_int_equal(size_of("0K"), 0);
}

static void test_sizes_refused(void **state)
{
    (void)state;
    refused_size(NULL);
    refused_size("");
    refused_size("K");
    refused_size("-1");
    refused_size("+1");
    refused_size(" 1");
    refused_size("1 ");
    refused_size("10Q");
    refused_size("1e3");
    refused_size("1.5K");
    refused_size("16KB");
    refused_size("0x");
    refused_size("0xK");
    refused_size("0x10K"); /* a hexadecimal number takes no unit */
    refused_size("0x0x10"); /* one prefix: strtoull would take a second */
    refused_size("0X0x10");
    refused_size("0x0X1F");
    refused_size("0x 1");
    refused_size("0x-1");
    refused_size("16G");
    refused_size("99999999999999999999999999999999"); /* longer than any size */
    refused_size("18446744073709551616");             /* 2^64 */
#if SIZE_MAX == UINT32_MAX
    refused_size("4294967296");
    refused_size("4096M");
    refused_size("4194304K");
    assert_int_equal(size_of("4095M"), 4095u << 20);
#else
    refused_size("18014398509481984K"); /* 2^54 KiB = 2^64 B */
    assert_int_equal(size_of("18014398509481983K"), (size_t)18014398509481983u << 10);
    assert_int_equal(size_of("18446744073709551615"), SIZE_MAX);
#endif
}

static uint32_t caps_of(const char *word)
{
    uint32_t v = 0xDEADu;
    const char *bad = NULL;
    assert_true(tool_parse_caps(word, &v, &bad));
    return v;
}

static void test_caps(void **state)
{
    (void)state;
    assert_int_equal(caps_of("DMA"), MALLOC_CAP_DMA);
    assert_int_equal(caps_of("dma"), MALLOC_CAP_DMA);
    assert_int_equal(caps_of("MALLOC_CAP_DMA"), MALLOC_CAP_DMA);
    assert_int_equal(caps_of("malloc_cap_spiram"), MALLOC_CAP_SPIRAM);
    assert_int_equal(caps_of("DMA|INTERNAL"), MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL);
    assert_int_equal(caps_of("DMA,INTERNAL,8BIT"), MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT);
    assert_int_equal(caps_of("0x808"), MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL);
    assert_int_equal(caps_of("2048"), MALLOC_CAP_INTERNAL);
    assert_int_equal(caps_of("0"), 0);
    assert_int_equal(caps_of("DMA|0x800"), MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL);
    assert_int_equal(caps_of("TCM"), MALLOC_CAP_SPM);
    assert_int_equal(caps_of("SPM"), MALLOC_CAP_SPM);
    assert_int_equal(caps_of("0xffffffff"), 0xFFFFFFFFu);
    assert_int_equal(caps_of("IRAM_8BIT"), MALLOC_CAP_IRAM_8BIT);
    assert_int_equal(caps_of("DMA_DESC_AXI"), MALLOC_CAP_DMA_DESC_AXI);
    assert_int_equal(caps_of("SPIRAM_NO_ENC"), MALLOC_CAP_SPIRAM_NO_ENC);
}

static void refused_caps(const char *word, const char *bad_expected)
{
    uint32_t v = 0xDEADu;
    const char *bad = NULL;
    assert_false(tool_parse_caps(word, &v, &bad));
    assert_int_equal(v, 0xDEADu);
    if (bad_expected != NULL)
        assert_string_equal(bad, bad_expected);
}

static void test_caps_refused(void **state)
{
    (void)state;
    refused_caps(NULL, NULL);
    refused_caps("", "");
    refused_caps("DRAM", "DRAM");
    refused_caps("DMA|FOO|INTERNAL", "FOO|INTERNAL"); /* bad points at the unknown name */
    refused_caps("DMA|", "");
    refused_caps("|DMA", "|DMA");
    refused_caps("DMA||INTERNAL", "|INTERNAL");
    refused_caps("DMA INTERNAL", "DMA INTERNAL");
    refused_caps("MALLOC_CAP_", "MALLOC_CAP_");
    refused_caps("MALLOC_CAP_FOO", "MALLOC_CAP_FOO");
    refused_caps("DM", "DM");
    refused_caps("DMAX", "DMAX");
    refused_caps("0x100000000", "0x100000000"); /* above 32 bits */
    refused_caps("-8", "-8");
    refused_caps("0x0x8", "0x0x8");
    refused_caps("DMA|0x0x800", "0x0x800");
}

static void test_caps_text(void **state)
{
    (void)state;
    char buf[TOOL_CAPS_TEXT_MAX];
    assert_string_equal(tool_caps_text(0, buf, sizeof buf), "0");
    assert_string_equal(tool_caps_text(MALLOC_CAP_DMA, buf, sizeof buf), "DMA");
    assert_string_equal(tool_caps_text(MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA, buf, sizeof buf), "DMA|INTERNAL");
    assert_string_equal(tool_caps_text(MALLOC_CAP_SPM, buf, sizeof buf), "SPM"); /* not TCM */
    assert_string_equal(tool_caps_text(MALLOC_CAP_DMA | (1u << 25) | (1u << 27), buf, sizeof buf), "DMA|0xa000000");
    assert_string_equal(tool_caps_text(1u << 30, buf, sizeof buf), "0x40000000");
    /* every mask of named bits prints and parses back to itself; all 32 bits fit the buffer */
    for (unsigned bit = 0; bit < 32; bit++) {
        uint32_t one = 1u << bit;
        assert_int_equal(caps_of(tool_caps_text(one, buf, sizeof buf)), one);
    }
    const char *all = tool_caps_text(0xFFFFFFFFu, buf, sizeof buf);
    assert_true(strlen(all) < sizeof buf - 1u);
    assert_int_equal(caps_of(all), 0xFFFFFFFFu);
    /* a short buffer is cut, never overrun */
    char small[8];
    memset(small, 'x', sizeof small);
    tool_caps_text(MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL | MALLOC_CAP_SPIRAM, small, 6);
    assert_int_equal(small[6], 'x');
    assert_true(strlen(small) < 6);
}

static void test_size_text(void **state)
{
    (void)state;
    char buf[TOOL_SIZE_TEXT_MAX];
    assert_string_equal(tool_size_text(0, buf, sizeof buf), "0 B");
    assert_string_equal(tool_size_text(1023, buf, sizeof buf), "1023 B");
    assert_string_equal(tool_size_text(1024, buf, sizeof buf), "1 KiB");
    assert_string_equal(tool_size_text(1536, buf, sizeof buf), "1.5 KiB");
    assert_string_equal(tool_size_text(21u * 1024u, buf, sizeof buf), "21 KiB");
    assert_string_equal(tool_size_text(8u << 20, buf, sizeof buf), "8 MiB");
    assert_string_equal(tool_size_text((8u << 20) + 1u, buf, sizeof buf), "8.0 MiB");
    assert_string_equal(tool_size_text(1028u * 1024u, buf, sizeof buf), "1028 KiB");   /* exact, not 1.0 MiB */
    assert_string_equal(tool_size_text(21u * 512u * 1024u, buf, sizeof buf), "10.5 MiB"); /* exact tenths */
    assert_string_equal(tool_size_text(1000u * 1000u, buf, sizeof buf), "976.6 KiB");
    assert_string_equal(tool_size_text(SIZE_MAX, buf, sizeof buf),
                        SIZE_MAX == UINT32_MAX ? "4096.0 MiB" : "17592186044416.0 MiB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),     cmocka_unit_test(test_sizes_refused), cmocka_unit_test(test_caps),
        cmocka_unit_test(test_caps_refused), cmocka_unit_test(test_caps_text), cmocka_unit_test(test_size_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
