/*
 * json_budget.h -- a memory budget for parsing untrusted JSON with jansson.
 *
 * jansson builds the whole tree before we see any of it, and a tree costs
 * far more than its text: an empty object `{}` is 3 bytes of a request and
 * ~230 bytes of heap, so an 8 MiB body of them took 650 MiB. Bounding the
 * body's size does not bound the tree's.
 *
 * halo installs its own allocation functions in jansson (once, before
 * main): they count what is allocated on the calling thread while a budget
 * is open and refuse allocations past it, which makes json_loadb() fail
 * cleanly ("out of memory" from jansson) instead of growing the process.
 * They are malloc and free plus a thread-local counter: what jansson
 * returns (json_dumps) is still freed with free().
 *
 *     halo_json_budget_begin(64 << 20);
 *     json_t *root = json_loadb(buf, len, 0, &je);
 *     bool over = halo_json_budget_end();   // true: refused for the budget
 *     ...
 *     json_decref(root);   // may happen after _end, on any thread
 */
#ifndef HALO_JSON_BUDGET_H
#define HALO_JSON_BUDGET_H

#include <stdbool.h>
#include <stddef.h>

/* Open a budget of bytes (> 0) for jansson allocations on this thread. */
void halo_json_budget_begin(size_t bytes);
/* Close it; true when an allocation was refused because of it. */
bool halo_json_budget_end(void);
/* Bytes jansson allocated on this thread under the open budget and not
 * freed yet (0 without one). */
size_t halo_json_budget_used(void);

#endif
