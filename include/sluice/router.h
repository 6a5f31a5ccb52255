/* router.h — which model name, and which targets in which order, serve a
 * request. The router stage applies, in order: routing rules (routes:),
 * experiments (A/B arms, shadow sampling), then the model's strategy, which
 * orders its targets into the candidates the upstream stage tries in turn. */
#ifndef SLUICE_ROUTER_H
#define SLUICE_ROUTER_H

#include <jansson.h>

#include "sluice/request.h"

/* Rough token count of a request's text (characters / 4), for rules and cost. */
long router_estimate_prompt_tokens(const json_t *body);
/* Orders a model's targets by its strategy into out (model->target_count
 * entries). Returns the number of eligible targets (cost may exclude some). */
size_t router_order_targets(request_t *request, const model_config_t *model, const target_config_t **out);
/* The wait before another pass over the targets: full jitter, a uniform
 * draw (unit_random in [0, 1)) in [0, min(max_ms, base_ms × 2^round)], or
 * retry_after_ms when the upstream asked for longer. */
long router_backoff_ms(int round, long base_ms, long max_ms, double unit_random, long retry_after_ms);
/* True when the request matches a rule's conditions. */
bool router_rule_matches(const request_t *request, const route_config_t *route);

#endif
