/*
 * sim/libcxx/new.cpp - the simulated firmware's C++ allocation functions
 * (capheap_sim_cxx; docs/simulator.md, "new and delete in the simulator").
 *
 * On ESP-IDF, libstdc++'s operator new calls malloc, which is heap_caps'
 * _default policy, so the objects of a C++ firmware live in the chip's heaps,
 * run out where the chip does, and show in heap tracing. On a Linux host the
 * C++ library's new calls the host's malloc, which capheap_sim_libc's --wrap
 * does not reach: this file replaces the global allocation and deallocation
 * functions ([new.delete], every form of C++17) for the whole program and
 * sends them to that library's malloc, memalign and free. So while a chip is
 * booted, new takes its memory from the chip (ESP-IDF's policy, and the failed
 * allocation callback on failure), and otherwise from the host; delete gives a
 * block back to whichever allocator made it, so objects made before the boot
 * (static constructors) or after the shutdown can be deleted at any time, and
 * a chip block deleted after capheap_sim_shutdown() is reported.
 *
 * The functions are the replaceable ones, so they serve the C++ library's own
 * allocations too (std::string's buffers inside libstdc++.so, for instance),
 * as on the chip: a block made in one place and freed in another always
 * reaches the allocator that made it. Each is in wrap.c's section
 * (CAPHEAP_SIM_TEXT), so heap tracing counts them as the library's frames.
 *
 * Failure is the standard's: the new handler is called while there is one,
 * then std::bad_alloc is thrown (the nothrow forms return nullptr). ESP-IDF's
 * libstdc++ does the same with C++ exceptions enabled, and aborts without
 * them; a program built with -fno-exceptions aborts here too. new of 0 bytes
 * asks for 1, as libstdc++ does, since ESP-IDF's malloc(0) is NULL.
 */
#include <cstddef>
#include <new>

#include "../libc/wrap.h"

namespace {

/* size bytes at the default alignment (alignment 0) or at alignment (a power
 * of two, [basic.align]), with the standard's new-handler loop. */
CAPHEAP_SIM_TEXT void *allocate(std::size_t size, std::size_t alignment)
{
    if (size == 0)
        size = 1;
    for (;;) {
        void *p = alignment == 0 ? __wrap_malloc(size) : __wrap_memalign(alignment, size);
        if (p != nullptr)
            return p;
        std::new_handler handler = std::get_new_handler();
        if (handler == nullptr)
            throw std::bad_alloc();
        handler();
    }
}

CAPHEAP_SIM_TEXT void *allocate_nothrow(std::size_t size, std::size_t alignment) noexcept
{
    try {
        return allocate(size, alignment);
    } catch (...) {
        return nullptr;
    }
}

CAPHEAP_SIM_TEXT std::size_t alignment_of(std::align_val_t alignment)
{
    return static_cast<std::size_t>(alignment);
}

} // namespace

CAPHEAP_SIM_TEXT void *operator new(std::size_t size)
{
    return allocate(size, 0);
}

CAPHEAP_SIM_TEXT void *operator new[](std::size_t size)
{
    return allocate(size, 0);
}

CAPHEAP_SIM_TEXT void *operator new(std::size_t size, const std::nothrow_t &) noexcept
{
    return allocate_nothrow(size, 0);
}

CAPHEAP_SIM_TEXT void *operator new[](std::size_t size, const std::nothrow_t &) noexcept
{
    return allocate_nothrow(size, 0);
}

CAPHEAP_SIM_TEXT void *operator new(std::size_t size, std::align_val_t alignment)
{
    return allocate(size, alignment_of(alignment));
}

CAPHEAP_SIM_TEXT void *operator new[](std::size_t size, std::align_val_t alignment)
{
    return allocate(size, alignment_of(alignment));
}

CAPHEAP_SIM_TEXT void *operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t &) noexcept
{
    return allocate_nothrow(size, alignment_of(alignment));
}

CAPHEAP_SIM_TEXT void *operator new[](std::size_t size, std::align_val_t alignment, const std::nothrow_t &) noexcept
{
    return allocate_nothrow(size, alignment_of(alignment));
}

/* Every delete frees by address: heap_caps frees aligned blocks with plain
 * free (spec 1.1), so the size and alignment arguments are not needed. */
CAPHEAP_SIM_TEXT void operator delete(void *p) noexcept
{
    capheap_sim_delete(p);
}

CAPHEAP_SIM_TEXT void operator delete[](void *p) noexcept
{
    capheap_sim_delete(p);
}

CAPHEAP_SIM_TEXT void operator delete(void *p, const std::nothrow_t &) noexcept
{
    capheap_sim_delete(p);
}

CAPHEAP_SIM_TEXT void operator delete[](void *p, const std::nothrow_t &) noexcept
{
    capheap_sim_delete(p);
}

CAPHEAP_SIM_TEXT void operator delete(void *p, std::size_t) noexcept
{
    capheap_sim_delete(p);
}

CAPHEAP_SIM_TEXT void operator delete[](void *p, std::size_t) noexcept
{
    capheap_sim_delete(p);
}

CAPHEAP_SIM_TEXT void operator delete(void *p, std::align_val_t) noexcept
{
    capheap_sim_delete(p);
}

CAPHEAP_SIM_TEXT void operator delete[](void *p, std::align_val_t) noexcept
{
    capheap_sim_delete(p);
}

CAPHEAP_SIM_TEXT void operator delete(void *p, std::size_t, std::align_val_t) noexcept
{
    capheap_sim_delete(p);
}

CAPHEAP_SIM_TEXT void operator delete[](void *p, std::size_t, std::align_val_t) noexcept
{
    capheap_sim_delete(p);
}

CAPHEAP_SIM_TEXT void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept
{
    capheap_sim_delete(p);
}

CAPHEAP_SIM_TEXT void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept
{
    capheap_sim_delete(p);
}

/* CMake's capheap_sim_cxx links with --undefined=capheap_sim_cxx_linked, so
 * that this object replaces the allocation functions even when the program's
 * own code never names operator new (std::string's buffers are allocated
 * inside libstdc++.so). */
extern "C" void capheap_sim_cxx_linked(void);
extern "C" CAPHEAP_SIM_TEXT void capheap_sim_cxx_linked(void) {}
