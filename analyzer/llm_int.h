/*
 * llm_int.h -- what llm.c and llm_reply.c share (not for other callers).
 */
#ifndef HALO_LLM_INT_H
#define HALO_LLM_INT_H

#include "llm.h"

/* halo_llm_decode_reply, generating missing call ids from *next_id (which
 * advances), so the ids a client generates stay unique across the turns of
 * a conversation. */
halo_status halo_llm_decode_ids(const char *body, size_t len,
                                halo_llm_reply *out, uint64_t *next_id,
                                halo_err *err);

/* The human message in an error reply body ({"error": {"message": ...}},
 * {"error": "..."}, {"message": ...}, else the text itself), cut to about
 * 300 bytes of printable text, into buf. */
void halo_llm_error_text(const char *body, size_t len, char *buf, size_t cap);

#endif
