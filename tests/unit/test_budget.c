/* test_budget.c — spending caps (include/sluice/budget.h) and their config.
 *
 * Calendar periods in UTC first (day, Monday weeks, months across the year
 * end, February in leap and common years, total), then the reservation and
 * its true-up through the shared table with the clock passed in: refusal
 * when spend + reservations + estimate exceed the limit, release of a failed
 * call, rollover into a new period, a request under several budgets reserved
 * on all or none, and concurrent threads that admit exactly what fits. Last,
 * the config forms and their errors naming line and key. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "sluice/budget.h"
#include "sluice/config.h"
#include "sluice/log.h"
#include "leak_check.h"

static void setup(void)
{
    log_set_level(LOG_ERROR);
    budget_reset();
}

static void teardown(void)
{
    budget_reset();
    unit_leak_check();
}

TestSuite(budget, .init = setup, .fini = teardown);

#define USD(x) ((int64_t)((x) * BUDGET_NANO_PER_USD))

/* 2024-02-29T13:45:00Z, a Thursday in a leap year. */
#define LEAP_DAY 1709214300LL

Test(budget, day_period_is_the_utc_day)
{
    cr_assert_eq(budget_period_start(BUDGET_PERIOD_DAY, LEAP_DAY), 1709164800LL); /* 2024-02-29 00:00 */
    cr_assert_eq(budget_period_end(BUDGET_PERIOD_DAY, LEAP_DAY), 1709251200LL);   /* 2024-03-01 00:00 */
    cr_assert_eq(budget_period_start(BUDGET_PERIOD_DAY, 1709251200LL), 1709251200LL, "midnight starts a day");
    cr_assert_eq(budget_period_start(BUDGET_PERIOD_DAY, 1709251199LL), 1709164800LL, "a second before is yesterday");
}

Test(budget, week_starts_on_monday)
{
    cr_assert_eq(budget_period_start(BUDGET_PERIOD_WEEK, LEAP_DAY), 1708905600LL); /* Mon 2024-02-26 */
    cr_assert_eq(budget_period_end(BUDGET_PERIOD_WEEK, LEAP_DAY), 1709510400LL);   /* Mon 2024-03-04 */
    cr_assert_eq(budget_period_start(BUDGET_PERIOD_WEEK, 0), -259200LL, "1970-01-01 is in the week of Mon 12-29");
    cr_assert_eq(budget_period_start(BUDGET_PERIOD_WEEK, 345600LL), 345600LL, "1970-01-05 was a Monday");
}

Test(budget, months_in_leap_and_common_years)
{
    cr_assert_eq(budget_period_start(BUDGET_PERIOD_MONTH, LEAP_DAY), 1706745600LL); /* 2024-02-01 */
    cr_assert_eq(budget_period_end(BUDGET_PERIOD_MONTH, LEAP_DAY), 1709251200LL);   /* 2024-03-01: 29 days */
    int64_t feb_2023 = 1676246400LL;                                                /* 2023-02-13 */
    cr_assert_eq(budget_period_end(BUDGET_PERIOD_MONTH, feb_2023) - budget_period_start(BUDGET_PERIOD_MONTH, feb_2023),
                 28LL * 86400);
    int64_t feb_2100 = 4106304000LL; /* 2100-02-14: not a leap year */
    cr_assert_eq(budget_period_end(BUDGET_PERIOD_MONTH, feb_2100) - budget_period_start(BUDGET_PERIOD_MONTH, feb_2100),
                 28LL * 86400);
    int64_t feb_2000 = 950486400LL; /* 2000-02-14: a leap year */
    cr_assert_eq(budget_period_end(BUDGET_PERIOD_MONTH, feb_2000) - budget_period_start(BUDGET_PERIOD_MONTH, feb_2000),
                 29LL * 86400);
}

Test(budget, december_rolls_into_the_next_year)
{
    int64_t new_years_eve = 1735689599LL; /* 2024-12-31T23:59:59Z */
    cr_assert_eq(budget_period_start(BUDGET_PERIOD_MONTH, new_years_eve), 1733011200LL); /* 2024-12-01 */
    cr_assert_eq(budget_period_end(BUDGET_PERIOD_MONTH, new_years_eve), 1735689600LL);   /* 2025-01-01 */
    cr_assert_eq(budget_period_start(BUDGET_PERIOD_MONTH, 1735689600LL), 1735689600LL);
    cr_assert_eq(budget_period_start(BUDGET_PERIOD_TOTAL, new_years_eve), 0);
    cr_assert_eq(budget_period_end(BUDGET_PERIOD_TOTAL, new_years_eve), INT64_MAX);
}

static bool admit_one(budget_ticket_t *ticket, const char *team, double limit, int64_t now, int64_t estimate)
{
    budget_ticket_init(ticket);
    budget_ticket_add(ticket, BUDGET_SCOPE_TEAM, team, BUDGET_PERIOD_MONTH, limit, true);
    return budget_admit(ticket, now, estimate);
}

Test(budget, reservation_and_true_up)
{
    budget_ticket_t a, b, c;
    cr_assert(admit_one(&a, "web", 1.0, LEAP_DAY, USD(0.4)));
    cr_assert(admit_one(&b, "web", 1.0, LEAP_DAY, USD(0.4)));
    cr_assert_not(admit_one(&c, "web", 1.0, LEAP_DAY, USD(0.4)), "0.4 + 0.4 reserved: 0.4 more does not fit");
    cr_assert(c.is_refused_for_in_flight, "spend alone would fit: it is the requests in flight");
    cr_assert_eq(c.retry_after_s, 1);
    budget_commit(&a, LEAP_DAY, USD(0.1), NULL); /* cost less than reserved */
    budget_commit(&a, LEAP_DAY, USD(0.1), NULL); /* a second commit is a no-op */
    budget_commit(&b, LEAP_DAY, 0, NULL);        /* failed: releases its reservation */
    cr_assert_eq(budget_spent("team:web:month", LEAP_DAY), USD(0.1));
    cr_assert(admit_one(&c, "web", 1.0, LEAP_DAY, USD(0.9)), "0.1 spent, nothing in flight: 0.9 fits exactly");
    budget_commit(&c, LEAP_DAY, USD(0.95), NULL); /* cost more than estimated */
    cr_assert_eq(budget_spent("team:web:month", LEAP_DAY), USD(1.05));
    budget_ticket_t d;
    cr_assert_not(admit_one(&d, "web", 1.0, LEAP_DAY, 0), "exhausted: even a free request is refused");
    cr_assert_not(d.is_refused_for_in_flight);
    cr_assert_eq(d.retry_after_s, 1709251200LL - LEAP_DAY, "until 2024-03-01 00:00 UTC");
    cr_assert_eq(d.lines[0].spent, USD(1.05));
}

Test(budget, a_new_period_starts_with_no_spend)
{
    budget_ticket_t a, b;
    cr_assert(admit_one(&a, "web", 1.0, LEAP_DAY, USD(0.5)));
    budget_commit(&a, LEAP_DAY, USD(1.0), NULL);
    cr_assert_not(admit_one(&b, "web", 1.0, LEAP_DAY, 0));
    int64_t march = 1709251200LL;
    cr_assert(admit_one(&b, "web", 1.0, march, USD(0.5)), "March starts afresh");
    cr_assert_eq(budget_spent("team:web:month", march), 0);
    budget_commit(&b, march, USD(0.25), NULL);
    cr_assert_eq(budget_spent("team:web:month", march), USD(0.25));
    budget_ticket_t late;
    cr_assert(admit_one(&late, "web", 1.0, march - 1, USD(0.5)), "a clock stepped back stays in March");
    budget_commit(&late, march - 1, USD(0.5), NULL);
    cr_assert_eq(budget_spent("team:web:month", march), USD(0.75), "and does not wipe its spend");
}

Test(budget, reserved_on_every_budget_or_none)
{
    budget_ticket_t ticket, other;
    budget_ticket_init(&ticket);
    budget_ticket_add(&ticket, BUDGET_SCOPE_KEY, "app", BUDGET_PERIOD_DAY, 10.0, true);
    budget_ticket_add(&ticket, BUDGET_SCOPE_USER, "alice", BUDGET_PERIOD_DAY, 1.0, false);
    budget_ticket_add(&ticket, BUDGET_SCOPE_USER, "alice", BUDGET_PERIOD_DAY, 0.5, true); /* merged: lower limit */
    cr_assert_eq(ticket.line_count, 2);
    cr_assert_eq(ticket.lines[1].limit, USD(0.5));
    cr_assert_not(budget_admit(&ticket, LEAP_DAY, USD(0.6)), "the user budget cannot take it");
    cr_assert_eq(ticket.refused_line, 1);
    cr_assert(admit_one(&other, "x", 1.0, LEAP_DAY, 0));
    budget_ticket_init(&other);
    budget_ticket_add(&other, BUDGET_SCOPE_KEY, "app", BUDGET_PERIOD_DAY, 10.0, true);
    cr_assert(budget_admit(&other, LEAP_DAY, USD(10.0)), "the refusal reserved nothing on the key budget");
}

Test(budget, long_values_keep_apart)
{
    char a[400], b[400];
    memset(a, 'u', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memcpy(b, a, sizeof b);
    b[sizeof b - 2] = 'v'; /* differs only at the end */
    budget_ticket_t ticket;
    budget_ticket_init(&ticket);
    budget_ticket_add(&ticket, BUDGET_SCOPE_USER, a, BUDGET_PERIOD_DAY, 1.0, false);
    budget_ticket_add(&ticket, BUDGET_SCOPE_USER, b, BUDGET_PERIOD_DAY, 1.0, false);
    cr_assert_eq(ticket.line_count, 2);
    cr_assert_str_neq(ticket.lines[0].identity, ticket.lines[1].identity);
    cr_assert(strstr(ticket.lines[0].identity, ":day") != NULL);
}

/* N threads reserve against one budget: exactly what fits is admitted. */
enum { THREADS = 8, ATTEMPTS = 200 };
static atomic_int admitted;

static void *burst(void *unused)
{
    (void)unused;
    for (int i = 0; i < ATTEMPTS; i++) {
        budget_ticket_t ticket;
        if (admit_one(&ticket, "burst", 10.0, LEAP_DAY, USD(0.01)))
            atomic_fetch_add(&admitted, 1);
    }
    return NULL;
}

Test(budget, concurrent_reservations_admit_exactly_what_fits)
{
    atomic_store(&admitted, 0);
    budget_ticket_t first;
    cr_assert(admit_one(&first, "burst", 10.0, LEAP_DAY, 0));
    budget_commit(&first, LEAP_DAY, USD(8.0), NULL); /* $2 left: 200 requests of a cent */
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&threads[i], NULL, burst, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    cr_assert_eq(atomic_load(&admitted), 200);
}

Test(budget, idle_entries_of_past_periods_are_swept)
{
    char user[32];
    for (int i = 0; i < 1100; i++) {
        budget_ticket_t ticket;
        budget_ticket_init(&ticket);
        snprintf(user, sizeof user, "user-%d", i);
        budget_ticket_add(&ticket, BUDGET_SCOPE_USER, user, BUDGET_PERIOD_DAY, 1.0, false);
        cr_assert(budget_admit(&ticket, LEAP_DAY, USD(0.5)));
        budget_commit(&ticket, LEAP_DAY, USD(0.25), NULL);
    }
    budget_ticket_t held, total, next_day;
    cr_assert(admit_one(&held, "held", 1.0, LEAP_DAY, USD(0.5))); /* in flight across midnight */
    cr_assert(admit_one(&total, "forever", 1.0, LEAP_DAY, 0));
    budget_commit(&total, LEAP_DAY, USD(0.5), NULL);
    cr_assert_eq(budget_entry_count(), 1102);
    int64_t tomorrow = LEAP_DAY + 86400 * 40; /* April: the month entries have rolled too */
    budget_ticket_init(&next_day);
    budget_ticket_add(&next_day, BUDGET_SCOPE_USER, "late", BUDGET_PERIOD_DAY, 1.0, false);
    budget_ticket_add(&next_day, BUDGET_SCOPE_TEAM, "kept", BUDGET_PERIOD_TOTAL, 1.0, true);
    cr_assert(budget_admit(&next_day, tomorrow, USD(0.1)));
    cr_assert_eq(budget_entry_count(), 3, "only the in-flight entry and the new ones are left");
    budget_commit(&held, tomorrow, USD(0.5), NULL);
    cr_assert_eq(budget_spent("team:held:month", tomorrow), USD(0.5), "the late true-up lands in the new period");
}

Test(budget, reload_keeps_spend_of_budgets_still_configured)
{
    budget_ticket_t a, b;
    cr_assert(admit_one(&a, "web", 5.0, LEAP_DAY, 0));
    budget_commit(&a, LEAP_DAY, USD(2.0), NULL);
    cr_assert(admit_one(&b, "gone", 5.0, LEAP_DAY, 0));
    budget_commit(&b, LEAP_DAY, USD(1.0), NULL);
    char error[512];
    static const char yaml[] = "providers: { p: { type: openai, api_key: sk-test-123 } }\n"
                               "teams: { web: { budget: { usd: 9, period: month } } }\n";
    config_t *config = config_load_string(yaml, sizeof yaml - 1, "test.yaml", error, sizeof error);
    cr_assert_not_null(config, "%s", error);
    budget_reconfigure(config);
    cr_assert_eq(budget_spent("team:web:month", LEAP_DAY), USD(2.0));
    cr_assert_eq(budget_entry_count(), 1, "the budget no longer configured is dropped");
    config_unref(config);
}

static config_t *load(const char *yaml, char *error, size_t size)
{
    char text[2048];
    snprintf(text, sizeof text, "providers: { p: { type: openai, api_key: sk-test-123 } }\n%s", yaml);
    return config_load_string(text, strlen(text), "test.yaml", error, size);
}

Test(budget, config_collects_all_forms)
{
    char error[512];
    config_t *config = load("keys:\n"
                            "  - { name: app, key: sk-app-12345678, team: web, user: bob, budget: { usd: 20, period: day } }\n"
                            "teams:\n  web: { budget: { usd: 500 } }\n"
                            "budgets:\n"
                            "  - { scope: user, match: \"*\", usd: 5, period: week }\n"
                            "  - { scope: feature, match: search, usd: 100, period: total }\n",
                            error, sizeof error);
    cr_assert_not_null(config, "%s", error);
    cr_assert_eq(config->budget_count, 4);
    cr_assert_str_eq(config->keys[0].user, "bob");
    const budget_config_t *b = config->budgets;
    cr_assert(b[0].scope == BUDGET_SCOPE_KEY && strcmp(b[0].match, "app") == 0 && b[0].period == BUDGET_PERIOD_DAY);
    cr_assert(b[1].scope == BUDGET_SCOPE_TEAM && b[1].usd == 500 && b[1].period == BUDGET_PERIOD_MONTH);
    cr_assert(b[2].scope == BUDGET_SCOPE_USER && strcmp(b[2].match, "*") == 0 && b[2].period == BUDGET_PERIOD_WEEK);
    cr_assert(b[3].scope == BUDGET_SCOPE_FEATURE && b[3].period == BUDGET_PERIOD_TOTAL);
    cr_assert_null(config->alert_webhook_url);
    config_unref(config);
}

static void assert_rejected(const char *yaml, const char *expected)
{
    char error[512];
    config_t *config = load(yaml, error, sizeof error);
    cr_assert_null(config, "accepted: %s", yaml);
    cr_assert(strstr(error, expected) != NULL, "error '%s' lacks '%s'", error, expected);
}

Test(budget, config_errors_name_line_and_key)
{
    assert_rejected("teams:\n  web: { budget: { usd: 0 } }\n", "test.yaml:3: teams.web.budget.usd: must be a positive");
    assert_rejected("teams:\n  web: { budget: { usd: 5, period: year } }\n",
                    "teams.web.budget.period: unknown value 'year': must be one of day, week, month, total");
    assert_rejected("teams:\n  web: { budget: { period: day } }\n", "teams.web.budget: missing required key 'usd'");
    assert_rejected("teams:\n  web: { budgets: {} }\n", "budgets");
    assert_rejected("budgets:\n  - { scope: org, match: a, usd: 1 }\n", "budgets[0].scope: unknown value 'org': must be one of key, team");
    assert_rejected("budgets:\n  - { scope: user, usd: 1 }\n", "budgets[0]: missing required key 'match'");
    assert_rejected("budgets:\n  - { scope: user, match: a, usd: 1, every: day }\n", "every");
    assert_rejected("keys:\n  - { name: a, key: sk-app-12345678, budget: { usd: -1 } }\n", "keys[0].budget.usd");
    assert_rejected("alerts: { webhook_url: \"ftp://x\" }\n", "test.yaml:2: alerts.webhook_url: must start with http");
    assert_rejected("alerts: { email: a@b }\n", "email");
}
