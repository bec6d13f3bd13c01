/* multi_heap_quickstart.c - one heap over a static array: the multi_heap API alone. */
#include <stdio.h>
#include "multi_heap.h"

static _Alignas(4) unsigned char region[16 * 1024];

int main(void)
{
    multi_heap_handle_t heap = multi_heap_register(region, sizeof region);
    char *text = multi_heap_malloc(heap, 100);
    if (text == NULL) return 1;
    snprintf(text, 100, "hello from a %zu-byte heap", sizeof region);
    puts(text);
    multi_heap_free(heap, text);

    multi_heap_info_t info;
    multi_heap_get_info(heap, &info);
    printf("free %zu bytes, largest block %zu\n", info.total_free_bytes, info.largest_free_block);
    return multi_heap_check(heap, true) ? 0 : 1;
}
