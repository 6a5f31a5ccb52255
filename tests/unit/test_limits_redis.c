/* test_limits_redis.c — the pure parts of Redis-shared rate limits
 * (include/sluice/limits_redis.h): the key names, the EVALSHA arguments of an
 * admission, parsing the admission script's reply into windows (and refusing
 * errors and malformed replies, which make the stage fall back), and the
 * once-per-outage logging decision. The scripts themselves run against a real
 * redis-server in tests/integration/limits-redis.test.mjs. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/limits_redis.h"
#include "sluice/log.h"
#include "leak_check.h"

static void setup(void) { log_set_level(LOG_ERROR); }
static void teardown(void) { unit_leak_check(); }

TestSuite(limits_redis, .init = setup, .fini = teardown);

Test(limits_redis, key_names_share_a_hash_tag_and_carry_the_bucket_length)
{
    char requests[128], tokens[128];
    cr_assert_eq(limits_redis_key_names("sluice", "app", 1000, requests, tokens, sizeof requests), 0);
    cr_expect_str_eq(requests, "sluice:limits:{app}:1000:r");
    cr_expect_str_eq(tokens, "sluice:limits:{app}:1000:t");
    char small[16];
    cr_expect_eq(limits_redis_key_names("sluice", "app", 1000, small, small, sizeof small), -1, "too long: refused");
}

Test(limits_redis, admit_arguments)
{
    const char *argv[10];
    char numbers[5][24];
    int count = limits_redis_admit_args("abc", "kr", "kt", 33, 5, 0, -3, argv, numbers);
    cr_assert_eq(count, 10);
    const char *expected[] = {"EVALSHA", "abc", "2", "kr", "kt", "33", "60", "5", "0", "0"};
    for (int i = 0; i < count; i++)
        cr_expect_str_eq(argv[i], expected[i], "argument %d", i);
}

/* Reply building: integers and arrays as hiredis would hand them over. */
static redisReply *integer(long long value)
{
    redisReply *reply = calloc(1, sizeof *reply);
    reply->type = REDIS_REPLY_INTEGER;
    reply->integer = value;
    return reply;
}

static redisReply *array(size_t count, ...)
{
    redisReply *reply = calloc(1, sizeof *reply);
    reply->type = REDIS_REPLY_ARRAY;
    reply->elements = count;
    reply->element = calloc(count ? count : 1, sizeof *reply->element);
    va_list items;
    va_start(items, count);
    for (size_t i = 0; i < count; i++)
        reply->element[i] = va_arg(items, redisReply *);
    va_end(items);
    return reply;
}

static void reply_free(redisReply *reply)
{
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++)
        reply_free(reply->element[i]);
    free(reply->element);
    free(reply);
}

Test(limits_redis, parses_an_admission_into_windows)
{
    const long long head = 1000000;
    /* requests: 2 in head-59, 1 in head (the new one, listed twice as the script appends it), one stale bucket */
    redisReply *reply = array(5, integer(1), integer(head * 1000 + 250), integer(head),
                              array(8, integer(head - 59), integer(2), integer(head), integer(1), integer(head - 60),
                                    integer(7), integer(head), integer(1)),
                              array(2, integer(head), integer(40)));
    limits_redis_reply_t parsed;
    cr_assert_eq(limits_redis_parse_admit(reply, &parsed), 0);
    cr_expect(parsed.is_admitted);
    cr_expect_eq(parsed.now_ms, (uint64_t)head * 1000 + 250);
    cr_expect_eq(parsed.head, (uint64_t)head);
    cr_expect_eq(parsed.requests.total, 4, "the bucket that left the window is ignored");
    cr_expect_eq(parsed.requests.counts[head % LIMITS_BUCKETS], 2);
    cr_expect_eq(parsed.tokens.total, 40);
    /* The window math works on it as on a local window. */
    cr_expect_eq(limits_window_wait_ms(&parsed.requests, parsed.now_ms, 1000, 4), 750,
                 "the oldest bucket (2 requests) leaves in 750 ms");
    reply_free(reply);
}

Test(limits_redis, refusal_is_parsed_too)
{
    redisReply *reply = array(5, integer(0), integer(5000), integer(5), array(2, integer(5), integer(3)), array(0));
    limits_redis_reply_t parsed;
    cr_assert_eq(limits_redis_parse_admit(reply, &parsed), 0);
    cr_expect_not(parsed.is_admitted);
    cr_expect_eq(parsed.requests.total, 3);
    cr_expect_eq(parsed.tokens.total, 0);
    reply_free(reply);
}

Test(limits_redis, errors_and_malformed_replies_fall_back)
{
    limits_redis_reply_t parsed;
    cr_expect_eq(limits_redis_parse_admit(NULL, &parsed), -1, "no reply: the connection went");
    redisReply error = {.type = REDIS_REPLY_ERROR, .str = "NOSCRIPT No matching script", .len = 27};
    cr_expect_eq(limits_redis_parse_admit(&error, &parsed), -1);
    redisReply *short_reply = array(2, integer(1), integer(2));
    cr_expect_eq(limits_redis_parse_admit(short_reply, &parsed), -1);
    reply_free(short_reply);
    redisReply *odd = array(5, integer(1), integer(2), integer(3), array(1, integer(3)), array(0));
    cr_expect_eq(limits_redis_parse_admit(odd, &parsed), -1, "bucket without a count");
    reply_free(odd);
    redisReply *negative = array(5, integer(1), integer(-2), integer(3), array(0), array(0));
    cr_expect_eq(limits_redis_parse_admit(negative, &parsed), -1);
    reply_free(negative);
}

Test(limits_redis, an_outage_is_logged_once_and_its_end_once)
{
    limits_redis_note_up();
    cr_expect(limits_redis_note_down(), "first failure: log");
    cr_expect_not(limits_redis_note_down(), "same outage: quiet");
    cr_expect_not(limits_redis_note_down());
    cr_expect(limits_redis_note_up(), "the end of the outage: log");
    cr_expect_not(limits_redis_note_up(), "already up: quiet");
    cr_expect(limits_redis_note_down(), "a new outage: log again");
    limits_redis_note_up();
}
