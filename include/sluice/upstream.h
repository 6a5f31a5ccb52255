/* upstream.h — the stage that calls the provider and relays its answer.
 *
 * It asks the provider adapter for the HTTP call, runs it on the worker's
 * upstream pool, enforces the first-byte and idle-gap timeouts with its own
 * timer (libcurl covers connect and total), and relays the reply: streams are
 * translated event by event and written to the client as they arrive;
 * complete bodies are translated once; errors are mapped to the OpenAI shape
 * with a faithful status. */
#ifndef SLUICE_UPSTREAM_H
#define SLUICE_UPSTREAM_H

#include "sluice/request.h"

/* The client went away: stop the transfer and let the pipeline finish. */
void upstream_cancel(request_t *request);

#endif
