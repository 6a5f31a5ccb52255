/* test_limits.c — per-key rate limits (include/sluice/limits.h).
 *
 * The window math first (what a window holds, when it admits again, when it
 * is empty), then admission through the shared table with the clock passed
 * in: exactly rpm requests per window, the boundary to the millisecond,
 * retry-after, the token reservation and its true-up, counters that survive a
 * reload and follow the new limits, entries dropped for keys that vanished,
 * and a concurrent burst from several threads that admits exactly the limit. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "sluice/config.h"
#include "sluice/limits.h"
#include "sluice/log.h"
#include "leak_check.h"

static void setup(void)
{
    log_set_level(LOG_ERROR);
    limits_reset();
}

static void teardown(void)
{
    limits_reset();
    unit_leak_check();
}

TestSuite(limits, .init = setup, .fini = teardown);

/* A start far from 0, as the monotonic clock is; a multiple of a minute so
 * bucket arithmetic in the expectations stays readable. */
#define T0 (1000ull * 60 * 60 * 24)
#define SECOND 1000ull

static key_config_t key_with(const char *name, long rpm, long tpm)
{
    return (key_config_t){.name = (char *)name, .rpm = rpm, .tpm = tpm};
}

static bool admit(const key_config_t *key, uint64_t now_ms, long estimate, limits_ticket_t *ticket,
                  limits_state_t *requests, limits_state_t *tokens)
{
    limits_ticket_t unused_ticket;
    limits_state_t unused_requests, unused_tokens;
    return limits_admit(key, 60, now_ms, estimate, ticket ? ticket : &unused_ticket,
                        requests ? requests : &unused_requests, tokens ? tokens : &unused_tokens);
}

/* ---- the window --------------------------------------------------------- */

Test(limits, window_sums_the_last_sixty_buckets)
{
    limits_window_t window = {0};
    limits_window_add(&window, T0, SECOND, 3);
    limits_window_add(&window, T0 + 30 * SECOND, SECOND, 2);
    cr_assert_eq(limits_window_total(&window, T0 + 59 * SECOND, SECOND), 5);
    /* the bucket of T0 leaves when the head reaches T0 + 60 s */
    cr_assert_eq(limits_window_total(&window, T0 + 60 * SECOND - 1, SECOND), 5);
    cr_assert_eq(limits_window_total(&window, T0 + 60 * SECOND, SECOND), 2);
    cr_assert_eq(limits_window_total(&window, T0 + 90 * SECOND, SECOND), 0);
    /* a jump of more than a window clears everything at once */
    limits_window_add(&window, T0 + 100 * SECOND, SECOND, 7);
    cr_assert_eq(limits_window_total(&window, T0 + 1000 * SECOND, SECOND), 0);
}

Test(limits, window_wait_is_until_enough_buckets_leave)
{
    limits_window_t window = {0};
    limits_window_add(&window, T0, SECOND, 3);
    limits_window_add(&window, T0 + 30 * SECOND + 400, SECOND, 2);
    uint64_t now = T0 + 40 * SECOND + 250;
    cr_assert_eq(limits_window_wait_ms(&window, now, SECOND, 6), 0, "under the limit: no wait");
    /* limit 5: the 3 of T0 must leave, at T0 + 60 s */
    cr_assert_eq(limits_window_wait_ms(&window, now, SECOND, 5), 60 * SECOND - 40 * SECOND - 250);
    cr_assert_eq(limits_window_wait_ms(&window, now, SECOND, 3), 60 * SECOND - 40 * SECOND - 250);
    /* limit 2: both buckets must leave; the second at T0 + 90 s */
    cr_assert_eq(limits_window_wait_ms(&window, now, SECOND, 2), 90 * SECOND - 40 * SECOND - 250);
    /* empty at the same moment */
    cr_assert_eq(limits_window_reset_ms(&window, now, SECOND), 90 * SECOND - 40 * SECOND - 250);
    limits_window_t empty = {0};
    cr_assert_eq(limits_window_reset_ms(&empty, now, SECOND), 0);
}

Test(limits, durations_read_like_openai)
{
    char text[32];
    const struct {
        uint64_t ms;
        const char *expected;
    } cases[] = {{0, "0ms"}, {20, "20ms"}, {999, "999ms"}, {1000, "1s"}, {1500, "1.5s"}, {1250, "1.25s"},
                 {59999, "59.999s"}, {60000, "1m0s"}, {360000, "6m0s"}, {61500, "1m1.5s"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        limits_format_duration(cases[i].ms, text, sizeof text);
        cr_assert_str_eq(text, cases[i].expected, "%llu ms", (unsigned long long)cases[i].ms);
    }
}

/* ---- admission ---------------------------------------------------------- */

Test(limits, key_without_limits_costs_nothing)
{
    key_config_t key = key_with("open", 0, 0);
    limits_ticket_t ticket;
    limits_state_t requests, tokens;
    for (int i = 0; i < 1000; i++)
        cr_assert(admit(&key, T0, 10, &ticket, &requests, &tokens));
    cr_assert_eq(ticket.epoch, 0, "no reservation");
    cr_assert_eq(requests.limit, 0);
    cr_assert_eq(tokens.limit, 0);
    cr_assert_eq(limits_entry_count(), 0, "no table entry");
}

Test(limits, burst_of_rpm_plus_one_gets_exactly_one_refusal)
{
    key_config_t key = key_with("app", 600, 0);
    limits_state_t requests;
    int refused = 0;
    for (int i = 0; i < 601; i++) {
        if (!admit(&key, T0 + (uint64_t)i * 50, 0, NULL, &requests, NULL)) /* 601 requests over 30 s */
            refused++;
        else
            cr_assert_eq(requests.remaining, 600 - (i + 1));
    }
    cr_assert_eq(refused, 1);
    cr_assert(requests.is_exceeded);
    cr_assert_eq(requests.used, 600);
    cr_assert_eq(requests.remaining, 0);
    /* the first second's 20 requests leave at T0 + 60 s */
    cr_assert_eq(requests.wait_ms, T0 + 60 * SECOND - (T0 + 600 * 50));
}

Test(limits, admits_again_exactly_when_the_window_passes)
{
    key_config_t key = key_with("app", 2, 0);
    limits_state_t requests;
    cr_assert(admit(&key, T0 + 200, 0, NULL, NULL, NULL));
    cr_assert(admit(&key, T0 + 10 * SECOND, 0, NULL, NULL, NULL));
    cr_assert_not(admit(&key, T0 + 20 * SECOND, 0, NULL, &requests, NULL));
    cr_assert_eq(requests.wait_ms, 40 * SECOND);
    cr_assert_eq(requests.reset_ms, 50 * SECOND, "empty once the T0+10s bucket leaves");
    cr_assert_not(admit(&key, T0 + 60 * SECOND - 1, 0, NULL, &requests, NULL));
    cr_assert_eq(requests.wait_ms, 1);
    cr_assert(admit(&key, T0 + 60 * SECOND, 0, NULL, &requests, NULL));
    cr_assert_eq(requests.remaining, 0);
    /* a refused request is not counted: the wait stays the same */
    cr_assert_not(admit(&key, T0 + 61 * SECOND, 0, NULL, &requests, NULL));
    cr_assert_eq(requests.wait_ms, 9 * SECOND);
}

Test(limits, other_keys_are_unaffected)
{
    key_config_t app = key_with("app", 1, 0), ops = key_with("ops", 1, 0);
    cr_assert(admit(&app, T0, 0, NULL, NULL, NULL));
    cr_assert_not(admit(&app, T0, 0, NULL, NULL, NULL));
    cr_assert(admit(&ops, T0, 0, NULL, NULL, NULL));
    cr_assert_eq(limits_entry_count(), 2);
}

Test(limits, tokens_reserve_then_true_up)
{
    key_config_t key = key_with("app", 0, 1000);
    limits_ticket_t ticket;
    limits_state_t tokens;
    cr_assert(admit(&key, T0, 900, &ticket, NULL, &tokens));
    cr_assert_eq(ticket.reserved_tokens, 900);
    cr_assert_eq(tokens.used, 900);
    cr_assert_eq(tokens.remaining, 100);
    /* the real answer was small: the reservation gives way to it */
    limits_record(&key, 60, T0 + 5 * SECOND, &ticket, 40);
    cr_assert(admit(&key, T0 + 5 * SECOND, 0, &ticket, NULL, &tokens));
    cr_assert_eq(tokens.used, 40);
    /* a large one: the next request is refused until it leaves */
    limits_record(&key, 60, T0 + 6 * SECOND, &ticket, 5000);
    cr_assert_not(admit(&key, T0 + 7 * SECOND, 10, NULL, NULL, &tokens));
    cr_assert(tokens.is_exceeded);
    cr_assert_eq(tokens.used, 5040);
    /* the 40 at T0+5s would leave first, but 5000 ≥ 1000 remain until T0+66s */
    cr_assert_eq(tokens.wait_ms, 59 * SECOND);
    cr_assert(admit(&key, T0 + 66 * SECOND, 10, NULL, NULL, NULL));
}

Test(limits, failed_call_releases_its_reservation)
{
    key_config_t key = key_with("app", 0, 1000);
    limits_ticket_t ticket;
    limits_state_t tokens;
    cr_assert(admit(&key, T0, 2000, &ticket, NULL, &tokens));
    cr_assert_not(admit(&key, T0, 1, NULL, NULL, NULL), "the estimate holds the window while in flight");
    limits_record(&key, 60, T0 + 3 * SECOND, &ticket, 0);
    cr_assert(admit(&key, T0 + 3 * SECOND, 0, NULL, NULL, &tokens));
    cr_assert_eq(tokens.used, 0);
}

Test(limits, reservation_that_left_the_window_is_not_subtracted_twice)
{
    key_config_t key = key_with("app", 0, 1000);
    limits_ticket_t ticket;
    limits_state_t tokens;
    cr_assert(admit(&key, T0, 500, &ticket, NULL, NULL));
    /* a two-minute stream: its reservation has already left the window */
    limits_record(&key, 60, T0 + 120 * SECOND, &ticket, 300);
    cr_assert(admit(&key, T0 + 120 * SECOND, 0, NULL, NULL, &tokens));
    cr_assert_eq(tokens.used, 300);
}

Test(limits, both_dimensions_exceeded_wait_for_the_later)
{
    key_config_t key = key_with("app", 1, 100);
    limits_ticket_t ticket;
    limits_state_t requests, tokens;
    cr_assert(admit(&key, T0, 0, &ticket, NULL, NULL));
    limits_record(&key, 60, T0 + 30 * SECOND, &ticket, 500);
    cr_assert_not(admit(&key, T0 + 31 * SECOND, 0, NULL, &requests, &tokens));
    cr_assert(requests.is_exceeded && tokens.is_exceeded);
    cr_assert_eq(requests.wait_ms, 29 * SECOND);
    cr_assert_eq(tokens.wait_ms, 59 * SECOND);
}

/* ---- reloads ------------------------------------------------------------ */

static config_t *config_with_keys(const char *keys_yaml)
{
    char yaml[2048], error[512];
    snprintf(yaml, sizeof yaml,
             "providers:\n"
             "  mock: { type: openai-compatible, base_url: \"http://127.0.0.1:1/v1\" }\n"
             "models:\n"
             "  fast: { targets: [ { provider: mock, model: m } ] }\n"
             "%s",
             keys_yaml);
    config_t *config = config_load_string(yaml, strlen(yaml), "test.yaml", error, sizeof error);
    cr_assert_not_null(config, "%s", error);
    return config;
}

Test(limits, reload_keeps_counters_and_applies_the_new_limit_at_once)
{
    config_t *before = config_with_keys("keys:\n"
                                        "  - { name: app, key: sk-app-secret, rpm: 3 }\n"
                                        "  - { name: ops, key: sk-ops-secret, rpm: 5 }\n");
    config_t *after = config_with_keys("keys:\n"
                                       "  - { name: app, key: sk-app-secret, rpm: 2 }\n"
                                       "  - { name: ops, key: sk-ops-secret }\n");
    const key_config_t *app = &before->keys[0], *ops = &before->keys[1];
    cr_assert(admit(app, T0, 0, NULL, NULL, NULL));
    cr_assert(admit(app, T0, 0, NULL, NULL, NULL));
    cr_assert(admit(ops, T0, 0, NULL, NULL, NULL));
    cr_assert_eq(limits_entry_count(), 2);

    limits_reconfigure(after);
    cr_assert_eq(limits_entry_count(), 1, "ops lost its limit: its counters are dropped");
    limits_state_t requests;
    cr_assert_not(admit(&after->keys[0], T0 + SECOND, 0, NULL, &requests, NULL),
                  "the 2 requests made before the reload count against the new limit of 2");
    cr_assert_eq(requests.used, 2);
    config_unref(before);
    config_unref(after);
}

Test(limits, vanished_keys_are_dropped_and_late_completions_ignored)
{
    config_t *before = config_with_keys("keys:\n  - { name: app, key: sk-app-secret, tpm: 100 }\n");
    config_t *after = config_with_keys("keys:\n  - { name: other, key: sk-ops-secret, tpm: 100 }\n");
    limits_ticket_t ticket;
    cr_assert(admit(&before->keys[0], T0, 50, &ticket, NULL, NULL));
    limits_reconfigure(after);
    cr_assert_eq(limits_entry_count(), 0);
    /* a request in flight across the reload completes: nothing is recreated */
    limits_record(&before->keys[0], 60, T0 + SECOND, &ticket, 1000);
    cr_assert_eq(limits_entry_count(), 0);
    config_unref(before);
    config_unref(after);
}

Test(limits, a_new_window_length_starts_afresh)
{
    key_config_t key = key_with("app", 1, 100);
    limits_ticket_t ticket;
    cr_assert(limits_admit(&key, 60, T0, 10, &ticket, &(limits_state_t){0}, &(limits_state_t){0}));
    cr_assert_not(limits_admit(&key, 60, T0, 10, &(limits_ticket_t){0}, &(limits_state_t){0}, &(limits_state_t){0}));
    cr_assert(limits_admit(&key, 2, T0, 10, &(limits_ticket_t){0}, &(limits_state_t){0}, &(limits_state_t){0}));
    /* the old ticket belongs to the old window: recording it changes nothing */
    limits_record(&key, 2, T0, &ticket, 1000);
    limits_state_t tokens;
    cr_assert_not(limits_admit(&key, 2, T0, 0, &(limits_ticket_t){0}, &(limits_state_t){0}, &tokens));
    cr_assert_eq(tokens.used, 10);
}

Test(limits, config_window_seconds)
{
    config_t *config = config_with_keys("limits: { window_seconds: 2 }\n");
    cr_assert_eq(config->limits.window_seconds, 2);
    config_unref(config);
    config = config_with_keys("");
    cr_assert_eq(config->limits.window_seconds, 60, "a minute by default");
    config_unref(config);
    char error[512];
    const char bad[] = "providers:\n  mock: { type: openai-compatible, base_url: \"http://x/v1\" }\n"
                       "limits: { window_seconds: 0 }\n";
    cr_assert_null(config_load_string(bad, strlen(bad), "bad.yaml", error, sizeof error));
    cr_assert(strstr(error, "limits.window_seconds") != NULL, "%s", error);
}

/* ---- concurrency -------------------------------------------------------- */

enum { BURST_THREADS = 8, BURST_EACH = 500, BURST_LIMIT = 1234 };

static atomic_int burst_admitted;
static key_config_t burst_key;

static void *burst(void *argument)
{
    (void)argument;
    for (int i = 0; i < BURST_EACH; i++) {
        limits_ticket_t ticket;
        limits_state_t requests, tokens;
        if (limits_admit(&burst_key, 60, T0, 1, &ticket, &requests, &tokens)) {
            atomic_fetch_add(&burst_admitted, 1);
            limits_record(&burst_key, 60, T0, &ticket, 1);
        }
    }
    return NULL;
}

Test(limits, concurrent_burst_admits_exactly_the_limit)
{
    burst_key = key_with("burst", BURST_LIMIT, 0);
    atomic_store(&burst_admitted, 0);
    pthread_t threads[BURST_THREADS];
    for (int i = 0; i < BURST_THREADS; i++)
        cr_assert_eq(pthread_create(&threads[i], NULL, burst, NULL), 0);
    for (int i = 0; i < BURST_THREADS; i++)
        pthread_join(threads[i], NULL);
    cr_assert_eq(atomic_load(&burst_admitted), BURST_LIMIT);
}
