/* soc/soc_memory_layout.h - ESP-IDF's compatibility header: the memory-layout
 * types (heap_memory_layout.h) and the address questions (esp_memory_utils.h). */
#ifndef SOC_SOC_MEMORY_LAYOUT_H
#define SOC_SOC_MEMORY_LAYOUT_H
#include "esp_memory_utils.h"
#include "heap_memory_layout.h"
#endif
