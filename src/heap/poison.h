/*
 * poison.h - the poisoning layout, shared by multi_heap.c (which applies it)
 * and nothing else. ESP-IDF's canaries and fill bytes, 32-bit fields on every
 * build:
 *
 *   | engine hdr | 0xABBA1234 | size ^ tag | [pad to 16] | user bytes ... | 0xBAAD5678 |
 *                ^ raw (engine data)                     ^ user pointer   ^ tail, may be unaligned
 *
 * The size word holds the requested size mixed with the heap's tag (a hash
 * of its handle, multi_heap.c poison_tag()), so that a block of another heap
 * does not pass for one of this heap's.
 * The head is 8 bytes, or 16 on heaps aligned to 16 (so the user pointer keeps
 * the heap's alignment). The tail sits right after the size the user asked for.
 * Comprehensive poisoning also fills free memory with 0xFE (the engine keeps
 * it so, I9) and fresh allocations with 0xCE.
 */
#ifndef CAPHEAP_HEAP_POISON_H
#define CAPHEAP_HEAP_POISON_H

#include "capheap/config.h"

#define POISON_ENABLED (CAPHEAP_POISONING_LIGHT || CAPHEAP_POISONING_COMPREHENSIVE)
#define POISON_HEAD_CANARY 0xABBA1234u
#define POISON_TAIL_CANARY 0xBAAD5678u
#define POISON_HEAD_MIN 8u
#define POISON_TAIL 4u
#define POISON_MALLOC_FILL 0xCEu
#define POISON_FREE_FILL 0xFEu

#endif /* CAPHEAP_HEAP_POISON_H */
