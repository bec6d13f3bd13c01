/*
 * port_private.h - what the library's own layers need from the port beyond
 * the public capheap/port.h.
 */
#ifndef CAPHEAP_PORT_PRIVATE_H
#define CAPHEAP_PORT_PRIVATE_H

#include <stddef.h>

/* Call the current abort handler (the test's, or the port's). Does not return. */
void capheap_port_abort_now(const char *reason);

/* Hand text to the current sink (the test's, or capheap_port_write). */
void capheap_write(const char *text, size_t len);

#endif
