/* soc/soc_memory_layout.h - ESP-IDF's compatibility header: the memory-layout types. */
#ifndef SOC_SOC_MEMORY_LAYOUT_H
#define SOC_SOC_MEMORY_LAYOUT_H
#include "heap_memory_layout.h"
#endif
