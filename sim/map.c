/*
 * sim/map.c - host memory behind a simulated chip's address map.
 *
 * What gets mapped. Every region of the chip table except the external-RAM
 * window rows (types with MALLOC_CAP_SPIRAM: a 32 MiB virtual window of which
 * only the PSRAM actually fitted is ever used), the PSRAM range the caller
 * asks for, and the alias windows (D/IRAM, RTC fast memory) that some region
 * touches. Pages are the host's unit, so every range is widened to whole pages
 * and neighbours are merged into "segments":
 *
 *   chip   0x3FC88000 ........ 0x3FCF0000 0x3FCF8000      0x40378000 ... 0x403E0000
 *          |  D/IRAM DRAM side (memfd) |   DRAM  |  ...   |  IRAM side (same memfd) |
 *          '--------- segment ---------'-segment-'        '-------- segment -------'
 *
 * Where. First at the chip's own addresses, with MAP_FIXED_NOREPLACE so that
 * nothing of the host process is ever replaced; a kernel older than 4.17
 * ignores the flag and treats the address as a hint, so the returned address
 * is compared with the requested one. If any segment cannot be placed (address
 * 0, ASan's shadow on a 32-bit host, a library already there) everything is
 * undone and *all* segments move by one common offset: one PROT_NONE span
 * covering [lowest, highest) is reserved anywhere, and the segments are mapped
 * inside it with MAP_FIXED. The gaps stay PROT_NONE, so a stray access
 * between regions faults as it would on the chip's bus. The offset is a
 * multiple of 1 MiB, so host and chip addresses share their low five hex
 * digits, which keeps dumps readable. CAPHEAP_SIM_FORCE_OFFSET=1 skips the
 * first attempt.
 *
 * Aliases. A linear alias (S2, S3, C3: iram = dram + constant) is the same
 * physical SRAM seen on two buses: one memfd is mapped at the DRAM window and
 * again at the IRAM window, so a word written through one address reads back
 * through the other, exactly. An inverted alias (ESP32: the last DRAM word is
 * the first IRAM word) cannot be reproduced by mmap, whose unit is a page and
 * which never reverses bytes within one. Mapping the IRAM window linearly onto
 * the DRAM memfd would be worse than no alias: an EXEC block computed from
 * DRAM block [b, b+n) by the inverted formula lies at the mirror image
 * of [b, b+n) inside the window, so its bookkeeping word and the caller's
 * code would land on *other* blocks and on allocator metadata. So an
 * inverted window gets two private mappings instead: EXEC blocks on ESP32
 * are disjoint, writable, freeable and never disturb the DRAM side; only the
 * cross-bus view (write through DRAM, read through IRAM) is missing, and host
 * code cannot execute that memory anyway. docs/simulator.md says the same.
 *
 * Bounds: at most SIM_MAX_SEGMENTS segments; the work is O(regions^2) once
 * per boot on tables of a few dozen rows. Not thread-safe (boot and shutdown
 * are single-threaded by contract).
 */
#define _GNU_SOURCE /* memfd_create, MAP_FIXED_NOREPLACE, MAP_NORESERVE */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "esp_heap_caps.h"
#include "sim_map.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000 /* Linux >= 4.17; older kernels treat it as a hint */
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 1u
#endif

/* Regions + PSRAM + two alias windows of two sides each, after splitting around the windows. */
#define SIM_MAX_SEGMENTS 160
/* The offset keeps the low 20 bits of every address: host and chip dumps line up. */
#define SIM_OFFSET_GRANULE ((uintptr_t)1 << 20)

typedef enum { SEG_ANON, SEG_DRAM_SIDE, SEG_IRAM_SIDE } seg_kind_t;

typedef struct {
    uintptr_t start, end; /* chip addresses, page multiples */
    seg_kind_t kind;
    int alias;            /* SEG_*_SIDE: index into windows[] */
} segment_t;

typedef struct {
    uintptr_t dram_start, dram_end, iram_start, iram_end; /* page-widened windows */
    bool shared;                            /* one memfd at both windows */
    int fd;
} window_t;

typedef struct {
    void *addr;
    size_t len;
} mapping_t;

static mapping_t mappings[SIM_MAX_SEGMENTS + 1];
static size_t mapping_count;

static uintptr_t page_down(uintptr_t a, uintptr_t page) { return a & ~(page - 1u); }
static uintptr_t page_up(uintptr_t a, uintptr_t page) { return (a + page - 1u) & ~(page - 1u); }

static bool type_is_external(const capheap_chip_t *chip, size_t type)
{
    if (type >= chip->type_count)
        return false;
    for (size_t p = 0; p < SOC_MEMORY_TYPE_NO_PRIOS; p++)
        if (chip->types[type].caps[p] & MALLOC_CAP_SPIRAM)
            return true;
    return false;
}

static bool overlaps(uintptr_t a0, uintptr_t a1, uintptr_t b0, uintptr_t b1)
{
    return a0 < b1 && b0 < a1;
}

static int cmp_segment(const void *a, const void *b)
{
    const segment_t *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

/* Remove [c0, c1) from every anonymous segment, splitting one when the cut is inside it. */
static bool cut(segment_t *seg, size_t *count, uintptr_t c0, uintptr_t c1)
{
    size_t n = *count;
    for (size_t i = 0; i < n; i++) {
        segment_t s = seg[i];
        if (s.kind != SEG_ANON || !overlaps(s.start, s.end, c0, c1))
            continue;
        if (s.start < c0 && s.end > c1) {
            if (*count >= SIM_MAX_SEGMENTS)
                return false;
            seg[*count] = (segment_t){c1, s.end, SEG_ANON, -1};
            (*count)++;
            seg[i].end = c0;
        } else if (s.start < c0) {
            seg[i].end = c0;
        } else if (s.end > c1) {
            seg[i].start = c1;
        } else {
            seg[i].start = seg[i].end = 0; /* swallowed: dropped below */
        }
    }
    size_t w = 0;
    for (size_t i = 0; i < *count; i++)
        if (seg[i].start < seg[i].end)
            seg[w++] = seg[i];
    *count = w;
    return true;
}

/* mmap one segment at host address `at`. fixed: replace (inside our reservation), else never replace. */
static bool map_segment(const segment_t *s, const window_t *windows, uintptr_t at, bool fixed)
{
    size_t len = (size_t)(s->end - s->start);
    int flags = fixed ? MAP_FIXED : MAP_FIXED_NOREPLACE;
    int fd = -1;
    if (s->kind != SEG_ANON && windows[s->alias].shared) {
        flags |= MAP_SHARED;
        fd = windows[s->alias].fd;
    } else {
        flags |= MAP_PRIVATE | MAP_ANONYMOUS;
    }
    void *want = (void *)at;
    void *got = mmap(want, len, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (got == MAP_FAILED)
        return false;
    if (got != want) { /* a kernel without MAP_FIXED_NOREPLACE placed it elsewhere */
        (void)munmap(got, len);
        return false;
    }
    if (!fixed)
        mappings[mapping_count++] = (mapping_t){got, len};
    return true;
}

/* What the last unmap gave back, until the next map: a block of the chip
 * freed after the shutdown is then named for what it is (capheap_sim_libc)
 * instead of reaching the host allocator, which crashes reading its header.
 * The ranges stay reserved (PROT_NONE, no memory behind them) until the next
 * map releases them: were they given back to the kernel, the host's own
 * mmap (glibc's large blocks, thread stacks) could land there, and a valid
 * free of such a host block would be reported as a chip block's. */
static mapping_t unmapped[SIM_MAX_SEGMENTS + 1];
static size_t unmapped_count;

/* hold: keep each range reserved and remember it (the shutdown); else give
 * it back (a failed attempt inside capheap_sim_map). */
static void unmap_all(bool hold)
{
    for (size_t i = 0; i < mapping_count; i++) {
        if (!hold || mmap(mappings[i].addr, mappings[i].len, PROT_NONE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED) {
            (void)munmap(mappings[i].addr, mappings[i].len);
            if (hold) /* given back after all: the host may reuse it, do not claim it */
                mappings[i].len = 0;
        }
        if (hold)
            unmapped[i] = mappings[i];
    }
    if (hold && mapping_count != 0)
        unmapped_count = mapping_count;
    mapping_count = 0;
}

/* Give back the ranges the last shutdown held. */
static void release_held(void)
{
    for (size_t i = 0; i < unmapped_count; i++)
        if (unmapped[i].len != 0)
            (void)munmap(unmapped[i].addr, unmapped[i].len);
    unmapped_count = 0;
}

void capheap_sim_unmap(bool hold)
{
    if (!hold)
        release_held();
    unmap_all(hold);
}

bool capheap_sim_was_mapped(const void *p)
{
    for (size_t i = 0; i < unmapped_count; i++)
        if ((uintptr_t)p - (uintptr_t)unmapped[i].addr < unmapped[i].len)
            return true;
    return false;
}

static void close_windows(window_t *windows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (windows[i].fd >= 0) {
            (void)close(windows[i].fd);
            windows[i].fd = -1;
        }
}

/* Reserve a PROT_NONE span for [lo, hi) anywhere; map every segment inside it. */
static esp_err_t map_at_offset(const segment_t *seg, size_t count, const window_t *windows, uintptr_t *offset)
{
    uintptr_t lo = seg[0].start, hi = seg[0].end;
    for (size_t i = 1; i < count; i++) {
        lo = seg[i].start < lo ? seg[i].start : lo;
        hi = seg[i].end > hi ? seg[i].end : hi;
    }
    size_t span = (size_t)(hi - lo);
    size_t slack = 2u * (size_t)SIM_OFFSET_GRANULE;
    if (span > SIZE_MAX - slack)
        return ESP_ERR_NO_MEM;
    void *base = mmap(NULL, span + slack, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return ESP_ERR_NO_MEM;
    uintptr_t b = (uintptr_t)base;
    uintptr_t host_lo = ((b + SIM_OFFSET_GRANULE - 1u) & ~(SIM_OFFSET_GRANULE - 1u)) + (lo & (SIM_OFFSET_GRANULE - 1u));
    /* Give back the slack on both sides of [host_lo, host_lo + span). */
    if (host_lo > b)
        (void)munmap(base, (size_t)(host_lo - b));
    uintptr_t tail = host_lo + span, top = b + span + slack;
    if (top > tail)
        (void)munmap((void *)tail, (size_t)(top - tail));
    mappings[mapping_count++] = (mapping_t){(void *)host_lo, span};
    /* capheap compares addresses as uintptr_t, but ESP-IDF's API carries them as intptr_t
     * (heap_caps_add_region, soc_reserved_region_t), and a firmware's own start < end on
     * those would misorder a span that straddles the sign change: refuse one. */
    if ((intptr_t)host_lo > (intptr_t)(tail - 1u)) {
        unmap_all(false);
        return ESP_ERR_NO_MEM;
    }
    uintptr_t off = host_lo - lo;
    for (size_t i = 0; i < count; i++)
        if (!map_segment(&seg[i], windows, seg[i].start + off, true)) {
            unmap_all(false);
            return ESP_ERR_NO_MEM;
        }
    *offset = off;
    return ESP_OK;
}

esp_err_t capheap_sim_map(const capheap_chip_t *chip, intptr_t psram_start, size_t psram_bytes,
                          bool force_offset, capheap_sim_map_result_t *out)
{
    static segment_t seg[SIM_MAX_SEGMENTS];
    window_t windows[2];
    size_t count = 0, window_count = 0;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    memset(out, 0, sizeof *out);
    out->forced = force_offset;
    release_held(); /* a new chip may live where the last one did */

    /* 1. Regions (and PSRAM) widened to pages. */
    for (size_t i = 0; i < chip->region_count; i++) {
        const soc_memory_region_t *r = &chip->regions[i];
        uintptr_t s = (uintptr_t)r->start, e = s + r->size;
        if (r->size == 0 || type_is_external(chip, r->type))
            continue;
        if (e < s || page_up(e, page) < e || count >= SIM_MAX_SEGMENTS)
            return ESP_ERR_INVALID_ARG;
        seg[count++] = (segment_t){page_down(s, page), page_up(e, page), SEG_ANON, -1};
    }
    if (psram_bytes > 0) {
        uintptr_t s = (uintptr_t)psram_start, e = s + psram_bytes;
        if (e < s || page_up(e, page) < e || count >= SIM_MAX_SEGMENTS)
            return ESP_ERR_INVALID_ARG;
        seg[count++] = (segment_t){page_down(s, page), page_up(e, page), SEG_ANON, -1};
    }
    if (count == 0)
        return ESP_ERR_INVALID_ARG;

    /* 2. Merge overlapping and touching neighbours. */
    qsort(seg, count, sizeof seg[0], cmp_segment);
    size_t w = 0;
    for (size_t i = 1; i < count; i++) {
        if (seg[i].start <= seg[w].end) {
            seg[w].end = seg[i].end > seg[w].end ? seg[i].end : seg[w].end;
        } else {
            seg[++w] = seg[i];
        }
    }
    count = w + 1;

    /* 3. Alias windows some region touches: cut them out of the anonymous segments. */
    const capheap_alias_t *aliases[2] = {&chip->diram, &chip->rtc};
    capheap_sim_alias_state_t *states[2] = {&out->diram, &out->rtc};
    for (int a = 0; a < 2; a++) {
        const capheap_alias_t *al = aliases[a];
        if (al->kind == CAPHEAP_ALIAS_NONE || al->dram_high <= al->dram_low || al->iram_high <= al->iram_low)
            continue;
        uintptr_t d0 = page_down((uintptr_t)al->dram_low, page), d1 = page_up((uintptr_t)al->dram_high, page);
        uintptr_t i0 = page_down((uintptr_t)al->iram_low, page), i1 = page_up((uintptr_t)al->iram_high, page);
        bool used = false;
        for (size_t i = 0; i < count && !used; i++)
            used = overlaps(seg[i].start, seg[i].end, d0, d1) || overlaps(seg[i].start, seg[i].end, i0, i1);
        if (!used)
            continue;
        if (overlaps(d0, d1, i0, i1))
            return ESP_ERR_INVALID_ARG;
        for (size_t k = 0; k < window_count; k++)
            if (overlaps(d0, d1, windows[k].dram_start, windows[k].dram_end) ||
                overlaps(d0, d1, windows[k].iram_start, windows[k].iram_end) ||
                overlaps(i0, i1, windows[k].dram_start, windows[k].dram_end) ||
                overlaps(i0, i1, windows[k].iram_start, windows[k].iram_end))
                return ESP_ERR_INVALID_ARG;
        /* One memfd serves both sides only if the IRAM window is the DRAM window moved by whole pages. */
        bool shared = al->kind == CAPHEAP_ALIAS_LINEAR && d1 - d0 == i1 - i0 &&
                      (((uintptr_t)al->iram_low - (uintptr_t)al->dram_low) & (page - 1u)) == 0;
        if (!cut(seg, &count, d0, d1) || !cut(seg, &count, i0, i1) || count + 2 > SIM_MAX_SEGMENTS)
            return ESP_ERR_INVALID_ARG;
        windows[window_count] = (window_t){d0, d1, i0, i1, shared, -1};
        seg[count++] = (segment_t){d0, d1, SEG_DRAM_SIDE, (int)window_count};
        seg[count++] = (segment_t){i0, i1, SEG_IRAM_SIDE, (int)window_count};
        *states[a] = shared ? CAPHEAP_SIM_ALIAS_SHARED : CAPHEAP_SIM_ALIAS_SEPARATE;
        window_count++;
    }
    qsort(seg, count, sizeof seg[0], cmp_segment);
    for (size_t i = 0; i < count; i++)
        out->mapped_bytes += (size_t)(seg[i].end - seg[i].start);

    /* 4. The physical memory behind each shared window. */
    for (size_t k = 0; k < window_count; k++) {
        if (!windows[k].shared)
            continue;
        windows[k].fd = memfd_create("capheap-sim-diram", MFD_CLOEXEC);
        if (windows[k].fd < 0 || ftruncate(windows[k].fd, (off_t)(windows[k].dram_end - windows[k].dram_start)) != 0) {
            close_windows(windows, window_count);
            return ESP_ERR_NO_MEM;
        }
    }

    /* 5. Real addresses, else one offset for all. */
    bool placed = false;
    if (!force_offset) {
        placed = true;
        for (size_t i = 0; i < count && placed; i++)
            placed = seg[i].start != 0 && map_segment(&seg[i], windows, seg[i].start, false);
        if (!placed)
            unmap_all(false);
    }
    esp_err_t err = ESP_OK;
    uintptr_t off = 0;
    if (!placed)
        err = map_at_offset(seg, count, windows, &off);
    close_windows(windows, window_count); /* the mappings keep the memfds alive */
    out->offset = (intptr_t)off;
    return err;
}
