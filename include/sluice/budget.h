/* budget.h — spending caps per key, team, user and feature (the budget stage).
 *
 * Every budget (config_t.budgets) caps the USD spent by one key, team, user
 * or feature in a calendar period in UTC. The stage (stage_budget in
 * pipeline.h) collects the budgets a request falls under, reserves an
 * estimate of its cost on all of them at once — or refuses it with 429
 * insufficient_quota when one of them cannot take it — and replaces the
 * reservation with the real cost on completion.
 *
 * Spend lives in one process-wide table keyed by the budget's identity
 * (scope, value, period: "team:web:month"), shared by all workers, each
 * entry behind its own mutex. It survives config reloads; a changed amount
 * applies at once. Amounts are kept in nano-USD so concurrent true-ups add
 * up exactly.
 *
 * The functions take the time (Unix seconds) explicitly so the period and
 * reservation math can be tested without waiting for the first of a month. */
#ifndef SLUICE_BUDGET_H
#define SLUICE_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/config.h"
#include "sluice/util/buf.h"

struct request;

/* A request falls under at most this many budgets; more are ignored (logged). */
enum { BUDGET_MAX_LINES = 8, BUDGET_IDENTITY_LENGTH = 160 };

#define BUDGET_NANO_PER_USD 1000000000.0

/* Start (inclusive) and end (exclusive) of the period containing now, in
 * Unix seconds. total: 0 and INT64_MAX. */
int64_t budget_period_start(budget_period_t period, int64_t now);
int64_t budget_period_end(budget_period_t period, int64_t now);
const char *budget_period_name(budget_period_t period);
const char *budget_scope_name(budget_scope_t scope);

/* One budget a request falls under. */
typedef struct budget_line {
    char identity[BUDGET_IDENTITY_LENGTH]; /* "scope:value:period"; a long value as "start#hash" */
    budget_scope_t scope;
    budget_period_t period;
    const char *value; /* the key, team, user or feature (caller's memory), for messages */
    int64_t limit;     /* nano-USD */
    bool is_named;     /* named in the config (not only by a "*" rule): its own metrics series */
    uint64_t generation; /* the entry's, after admission; 0 = nothing reserved */
    int64_t spent;       /* after admission: committed spend this period */
    int64_t reserved;    /* after admission: reservations in flight, this request's included */
} budget_line_t;

/* Owner: the caller (the request's arena, or a test's stack). What a request
 * is subject to, and what admission decided. */
typedef struct budget_ticket {
    budget_line_t lines[BUDGET_MAX_LINES];
    size_t line_count;
    int64_t reserved;   /* nano-USD this request reserved on every line */
    int refused_line;   /* -1: admitted (or not decided yet) */
    bool is_refused_for_in_flight; /* spend alone fits: requests in flight hold the rest */
    int64_t retry_after_s; /* refused: until the period resets (or 1 for in-flight), -1 = never */
} budget_ticket_t;

/* Empties ticket. */
void budget_ticket_init(budget_ticket_t *ticket);
/* Adds a budget to ticket; one identity already there keeps the lower limit.
 * Returns -1 when the ticket is full. */
int budget_ticket_add(budget_ticket_t *ticket, budget_scope_t scope, const char *value, budget_period_t period,
                      double limit_usd, bool is_named);
/* Reserves estimate (nano-USD) on every line of ticket, or on none: refused
 * (returns false, refused_line set) when for some line spent + reserved
 * reaches the limit or spent + reserved + estimate exceeds it. Lines get spent/reserved filled either way. */
bool budget_admit(budget_ticket_t *ticket, int64_t now_s, int64_t estimate);
/* A threshold (70, 90 or 100 % of the limit) a budget's spend crossed. */
typedef struct budget_alert {
    const budget_line_t *line; /* in the committed ticket */
    int percent;
    int64_t spent;
    int64_t period_start;
} budget_alert_t;

enum { BUDGET_MAX_ALERTS = BUDGET_MAX_LINES * 3 };

/* On completion: replaces the ticket's reservation with actual (nano-USD,
 * 0 for a call that cost nothing); logs an alert for each 70/90/100 %
 * threshold a line crossed in its period (once per period) and returns them
 * in alerts (capacity BUDGET_MAX_ALERTS; may be NULL). A no-op returning 0
 * for a refused or committed ticket and lines whose entries have since been
 * dropped. */
size_t budget_commit(budget_ticket_t *ticket, int64_t now_s, int64_t actual, budget_alert_t *alerts);
/* An alert as a JSON object (the webhook body; the log line has the same members). */
void budget_alert_json(const budget_alert_t *alert, buf_t *out);
/* Committed spend of an identity this period (tests, admin); 0 when unknown. */
int64_t budget_spent(const char *identity, int64_t now_s);
/* After a reload: drops the spend of budgets the config no longer has. */
void budget_reconfigure(const config_t *config);
/* Frees the table (shutdown, tests). */
void budget_reset(void);
size_t budget_entry_count(void);

/* /metrics: spend and limit per named budget, per-rule aggregates for "*"
 * user and feature budgets, alert and refusal counters. */
void budget_metrics_render(buf_t *out);
/* The access log's budget fields for request (a refusal's budget). */
void budget_log_fields(const struct request *request, buf_t *line);

#endif
