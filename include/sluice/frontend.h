/* frontend.h — the HTTP front end: maps method + path to a handler.
 *
 * API paths become a request_t and enter the pipeline; operational paths
 * (/healthz, /readyz) are answered directly; anything else gets an
 * OpenAI-shaped 404 or 405. */
#ifndef SLUICE_FRONTEND_H
#define SLUICE_FRONTEND_H

struct evhttp_request;

/* The evhttp general callback; argument is the worker_t. */
void frontend_handle(struct evhttp_request *http, void *argument);

#endif
