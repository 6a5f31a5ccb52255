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
/* True when the request matches a rule's conditions. */
bool router_rule_matches(const request_t *request, const route_config_t *route);

#endif
