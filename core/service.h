/*
 * service.h -- a running configuration: components wired into pipelines.
 *
 * Built from a parsed halo.yaml: every component section is validated
 * against its schema, pipelines are checked for references, processors are
 * instantiated once per pipeline (as in the OpenTelemetry Collector),
 * receivers and exporters once, shared by the pipelines that name them.
 *
 * Start order: exporters, processors (from the exporter end), receivers,
 * extensions. Shutdown (SIGTERM drain): receivers stop accepting and wait
 * for their in-flight answers, processors flush, exporters drain and close.
 */
#ifndef HALO_SERVICE_H
#define HALO_SERVICE_H

#include "component.h"
#include "config.h"

#include <stdbool.h>

typedef struct halo_service halo_service;

/* Validate and build (nothing started). On failure returns NULL with every
 * problem in errs. Warnings (unused components) go to warns. */
halo_service *halo_service_build(const halo_node *root, halo_errlist *errs,
                                 halo_errlist *warns);
/* The checks of halo_service_build without creating any component (no
 * connection, no file opened): what `halo validate` would say of root's
 * keys, values and pipelines, added to errs. False when there was any. */
bool halo_service_check(const halo_node *root, halo_errlist *errs);
enum {
    HALO_START_RECEIVERS = 1u << 0,
    HALO_START_EXTENSIONS = 1u << 1,
    HALO_START_ALL = HALO_START_RECEIVERS | HALO_START_EXTENSIONS,
};
/* Start exporters and processors, then what flags ask for (halo import
 * starts the pipelines only and feeds halo_service_entry()). On failure
 * everything already started is shut down again. */
halo_status halo_service_start(halo_service *svc, unsigned flags,
                               halo_err *err);
/* Drain and stop everything; safe twice. */
void halo_service_shutdown(halo_service *svc);
void halo_service_free(halo_service *svc);

/* True between a successful start and the beginning of shutdown (health
 * checks answer 200 only then), unless a component reported a failure. */
bool halo_service_ready(const halo_service *svc);

/* A component can no longer do its job and will not recover by itself
 * (the SQLite store could not sync its log: it refuses every write until
 * a restart). From then on the service is not ready and the health check
 * answers 503 with the reason; the first reason is kept. Thread-safe;
 * svc may be NULL (a component used outside a service). */
void halo_service_fail(halo_service *svc, const char *why);
/* The reason given to halo_service_fail, or NULL. */
const char *halo_service_failure(const halo_service *svc);

/* The first component of each pipeline that a receiver-less producer (halo
 * import) can emit into: a pseudo-receiver whose next[] are the pipelines'
 * first processors or exporters. NULL when no pipeline exists. */
halo_component *halo_service_entry(halo_service *svc);

/* Look up a built component by kind and id ("sqlite", "kafka/ingest"). */
halo_component *halo_service_find(halo_service *svc, halo_kind kind,
                                  const char *id);

/* The configured log level (service.telemetry.logs.level), or -1. */
int halo_service_log_level(const halo_service *svc);

#endif
