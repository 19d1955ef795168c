/*
 * store_open.c -- one entry point that opens whichever store a spec names
 * (store.h: halo_store_open), for the CLI's --store and the analyzer.
 *
 *   postgresql://... / postgres://...   PostgreSQL; the spec is the URI
 *   postgres:KEY=VALUE ...              PostgreSQL; libpq key=value pairs
 *   sqlite:PATH                         SQLite at PATH
 *
 * The prefixes are matched exactly (lower case), as libpq matches its URI
 * schemes. A spec that fits none is quoted back in the error with its
 * password masked (halo_pg_redact_dsn), whatever its form.
 *
 * Also the backend-neutral helpers of store.h: halo_run_key_check and
 * halo_iso_from_us (PostgreSQL's microsecond times, built on
 * halo_iso_from_ns so both texts agree digit for digit).
 */
#include "store.h"

#include <string.h>

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

halo_store_kind halo_store_spec_parse(const char *spec, const char **target)
{
    spec = spec ? spec : "";
    *target = spec;
    if (has_prefix(spec, "postgresql://") || has_prefix(spec, "postgres://"))
        return HALO_STORE_POSTGRES;
    if (has_prefix(spec, "postgres:")) {
        *target = spec + strlen("postgres:");
        return HALO_STORE_POSTGRES;
    }
    if (has_prefix(spec, "sqlite:")) {
        *target = spec + strlen("sqlite:");
        return HALO_STORE_SQLITE;
    }
    return HALO_STORE_INVALID;
}

halo_status halo_store_open(const char *spec, const halo_store_opts *opts,
                            halo_store **out, halo_err *err)
{
    halo_store_opts o = {0};
    if (opts)
        o = *opts;
    *out = NULL;
    spec = spec ? spec : "";
    const char *target;
    switch (halo_store_spec_parse(spec, &target)) {
    case HALO_STORE_POSTGRES:
        return halo_store_open_pg(target, &o, out, err);
    case HALO_STORE_SQLITE:
        o.path = target;
        return halo_store_open_sqlite(&o, out, err);
    case HALO_STORE_INVALID:
        break;
    }
    char shown[HALO_ERR_MAX / 2];
    halo_pg_redact_dsn(spec, shown, sizeof shown);
    return halo_fail(err, HALO_EINVAL,
                     "invalid store \"%s\": expected postgresql://..., "
                     "postgres:KEY=VALUE... or sqlite:PATH",
                     shown);
}

halo_status halo_run_key_check(const halo_run_key *k, const char *owner,
                               halo_err *err)
{
    if (!k->schedule || !*k->schedule || !k->agent_id || !*k->agent_id)
        return halo_fail(err, HALO_EINVAL,
                         "invalid run: schedule and agent id are required");
    if (!owner || !*owner)
        return halo_fail(err, HALO_EINVAL, "invalid run owner: empty");
    return HALO_OK;
}

void halo_iso_from_us(uint64_t us, char out[HALO_ISO_NS_LEN])
{
    /* the whole seconds in ns (us * 1000 itself may not fit), then the six
     * digits of the fraction */
    uint64_t sec = us / 1000000u;
    uint32_t frac = (uint32_t)(us % 1000000u);
    if (sec > UINT64_MAX / 1000000000u)
        sec = UINT64_MAX / 1000000000u;
    halo_iso_from_ns(sec * 1000000000u, out);
    for (int i = 25; i >= 20; i--, frac /= 10)
        out[i] = (char)('0' + frac % 10);
    out[26] = 'Z';
    out[27] = '\0';
}
