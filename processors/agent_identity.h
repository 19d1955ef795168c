/*
 * agent_identity.h -- the span normalization processor (DESIGN §5), exposed
 * for tests and for code that wants the same derivation outside a pipeline
 * (halo import, store re-derivation).
 *
 * The processor fills halo_span.d from the attributes of every convention
 * halo understands (OpenInference, OTel GenAI, Langfuse, HALO's inference.*):
 * see agent_identity.c for the rules and processors/README.md for the user
 * documentation. The component itself is halo_processor_agent_identity.
 */
#ifndef HALO_AGENT_IDENTITY_H
#define HALO_AGENT_IDENTITY_H

#include "core/batch.h"
#include "core/component.h"
#include "core/config.h"
#include "core/span.h"
#include "core/status.h"

#include <stdbool.h>

/* The config struct its schema fills. */
typedef struct halo_agent_identity_cfg {
    halo_strlist prices; /* "MODEL=INPUT/OUTPUT" USD per 1M tokens */
    bool override;       /* replace derived fields that are already set */
} halo_agent_identity_cfg;

/* The prepared, read-only state: the parsed price table and options. Safe to
 * share between threads. */
typedef struct halo_agent_identity halo_agent_identity;

/* Parse cfg (the price entries) into *out. A malformed entry is HALO_EINVAL
 * with a message quoting it. The caller frees *out. */
halo_status halo_agent_identity_new(const halo_agent_identity_cfg *cfg,
                                    halo_agent_identity **out, halo_err *err);
void halo_agent_identity_free(halo_agent_identity *ai);

/* Derive span->d for every span of b, in place. Strings that must be built
 * (numbers rendered as text, JSON of structured input/output, upper-cased
 * span kinds) are allocated from each span's chunk arena; a chunk without an
 * arena gets those fields left unset. Returns HALO_ENOMEM when some field
 * could not be built for lack of memory (every other field is still
 * derived), else HALO_OK. */
halo_status halo_agent_identity_apply(const halo_agent_identity *ai,
                                      halo_batch *b);

/* The cost of a call by the price table, in USD: false when the model has
 * no price. tokens < 0 count as 0. */
bool halo_agent_identity_price(const halo_agent_identity *ai, const char *model,
                               int64_t input_tokens, int64_t output_tokens,
                               double *cost);

/* The component (bottom of agent_identity.c). */
extern const halo_component_def halo_processor_agent_identity;

#endif
