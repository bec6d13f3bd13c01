/*
 * sim/libc/wrap.h - the entry points of the simulated firmware's C library
 * allocator (sim/libc/wrap.c) that its C++ allocation functions
 * (sim/libcxx/new.cpp) call. Private to sim/: not installed.
 */
#ifndef CAPHEAP_SIM_LIBC_WRAP_H
#define CAPHEAP_SIM_LIBC_WRAP_H

#include <stddef.h>

/* Every function of sim/libc and sim/libcxx is placed in this section: the
 * linker gathers it from both objects into one range, bounded by its
 * __start_capheap_sim_text and __stop_capheap_sim_text symbols, which heap
 * tracing counts as the library's frames (src/debug/trace.c) wherever the two
 * archives land on the link line, other static libraries between them. */
#define CAPHEAP_SIM_TEXT __attribute__((section("capheap_sim_text")))

#ifdef __cplusplus
extern "C" {
#endif

/* malloc and memalign of the firmware (GNU ld's --wrap names): served by
 * heap_caps' _default policy while a simulated chip is booted, otherwise by
 * the host allocator. */
void *__wrap_malloc(size_t size);
void *__wrap_memalign(size_t alignment, size_t size);

/* free() for operator delete: the same, with delete's words in the report of
 * a chip block deleted after capheap_sim_shutdown(). */
void capheap_sim_delete(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_SIM_LIBC_WRAP_H */
