/* budget.c — the budget stage: USD caps per key, team, user and feature.
 *
 * Runs after the router (the price of a request depends on the upstream
 * models it may go to) and before the cache stages, so an exhausted budget
 * is told so whatever it asks.
 *
 * The idea is the limits stage's, for money. Each budget a request falls
 * under is a line of its ticket; each line names an entry of one
 * process-wide table (identity "scope:value:period") holding the spend
 * committed this period and the reservations of requests in flight.
 * Admission locks the ticket's entries (in address order, so two requests
 * never wait on each other), and either reserves the request's estimated
 * cost — prompt bytes / 4 + max_tokens at the dearest candidate's price —
 * on all of them, or on none when one cannot take it. Completion replaces
 * the reservation with the real cost. Reserving first is what keeps fifty
 * concurrent requests from all slipping under an almost exhausted budget
 * that none of them has been charged to yet.
 *
 * Periods are calendar periods in UTC: an entry whose period has ended
 * starts the next with no spend (reservations in flight stay: they are
 * trued up into the period they finish in). Alerts fire once per threshold
 * (70, 90, 100 %) per period per entry, as a warn line on stderr and a
 * counter in /metrics.
 *
 * Spend is per process: several instances each enforce the full amount
 * (Redis-shared spend is not implemented yet). */
#include "sluice/budget.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/log.h"
#include "sluice/pipeline.h"
#include "sluice/request.h"
#include "sluice/upstream_pool.h"
#include "sluice/util/hash.h"
#include "sluice/util/strtable.h"
#include "sluice/worker.h"
#include "sluice/provider_util.h"

/* ---- calendar periods --------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil); month 1..12. */
static int64_t days_from_civil(int64_t year, int64_t month, int64_t day)
{
    year -= month <= 2;
    int64_t era = (year >= 0 ? year : year - 399) / 400;
    int64_t year_of_era = year - era * 400;
    int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

static void civil_from_days(int64_t days, int64_t *year, int64_t *month)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t day_of_era = days - era * 146097;
    int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t shifted_month = (5 * day_of_year + 2) / 153;
    *month = shifted_month + (shifted_month < 10 ? 3 : -9);
    *year = year_of_era + era * 400 + (*month <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

int64_t budget_period_start(budget_period_t period, int64_t now)
{
    int64_t days = floor_div(now, 86400);
    switch (period) {
    case BUDGET_PERIOD_DAY:
        return days * 86400;
    case BUDGET_PERIOD_WEEK: /* 1970-01-01 was a Thursday; weeks start on Monday */
        return (days - (days + 3 - floor_div(days + 3, 7) * 7)) * 86400;
    case BUDGET_PERIOD_MONTH: {
        int64_t year, month;
        civil_from_days(days, &year, &month);
        return days_from_civil(year, month, 1) * 86400;
    }
    case BUDGET_PERIOD_TOTAL:
        break;
    }
    return 0;
}

int64_t budget_period_end(budget_period_t period, int64_t now)
{
    int64_t start = budget_period_start(period, now);
    switch (period) {
    case BUDGET_PERIOD_DAY:
        return start + 86400;
    case BUDGET_PERIOD_WEEK:
        return start + 7 * 86400;
    case BUDGET_PERIOD_MONTH: {
        int64_t year, month;
        civil_from_days(floor_div(start, 86400), &year, &month);
        return (month == 12 ? days_from_civil(year + 1, 1, 1) : days_from_civil(year, month + 1, 1)) * 86400;
    }
    case BUDGET_PERIOD_TOTAL:
        break;
    }
    return INT64_MAX;
}

const char *budget_period_name(budget_period_t period)
{
    static const char *const names[] = {"day", "week", "month", "total"};
    return names[period];
}

const char *budget_scope_name(budget_scope_t scope)
{
    static const char *const names[] = {"key", "team", "user", "feature"};
    return names[scope];
}

/* ---- the table ---------------------------------------------------------- */

/* Owner: the table (entries linked in by identity). */
typedef struct budget_entry {
    strtable_link_t link; /* keyed by identity */
    char *identity;
    budget_scope_t scope;
    budget_period_t period;
    pthread_mutex_t lock; /* guards everything below */
    uint64_t generation;
    int64_t period_start;
    int64_t spent;    /* nano-USD committed this period */
    int64_t reserved; /* nano-USD held by requests in flight */
    int64_t limit;    /* the last limit seen, for metrics */
    unsigned alerted; /* thresholds logged this period: bit i = alert_percents[i] */
    bool is_named;
} budget_entry_t;

static const int alert_percents[] = {70, 90, 100};
enum { ALERT_COUNT = 3 };

static pthread_rwlock_t table_lock = PTHREAD_RWLOCK_INITIALIZER;
static strtable_t table = STRTABLE_INIT;
/* Creating an entry sweeps idle ones once the table has SWEEP_MIN entries,
 * when it has doubled since the last sweep or a UTC day has begun (the
 * earliest a period can end). */
enum { SWEEP_MIN = 1024 };
static size_t sweep_at = SWEEP_MIN;
static int64_t swept_day = INT64_MIN;
static atomic_uint_fast64_t next_generation = 1;
/* Counters for /metrics, by scope (and threshold). */
static atomic_long alert_counts[4][ALERT_COUNT];
static atomic_long refusal_counts[4];

static budget_entry_t *entry_of(strtable_link_t *link)
{
    return link != NULL ? STRTABLE_ENTRY(link, budget_entry_t, link) : NULL;
}

/* Under the table lock (either mode). */
static budget_entry_t *find(const char *identity, uint64_t hash)
{
    return entry_of(strtable_find(&table, identity, hash));
}

static void entry_free(budget_entry_t *entry);

/* Under the write lock (so no entry lock is held by anyone): drops entries
 * whose period has ended with nothing in flight. They hold no spend for the
 * current period, so this loses nothing; it keeps the table of a "*" budget
 * as large as the users or features active in the current period. */
static void sweep_idle(int64_t now_s)
{
    for (strtable_link_t *link = strtable_first(&table), *next; link != NULL; link = next) {
        next = strtable_next(&table, link);
        budget_entry_t *entry = entry_of(link);
        if (entry->reserved != 0 || entry->period_start >= budget_period_start(entry->period, now_s))
            continue;
        strtable_remove(&table, link);
        entry_free(entry);
    }
    sweep_at = table.count * 2 > SWEEP_MIN ? table.count * 2 : SWEEP_MIN;
    swept_day = floor_div(now_s, 86400);
}

static bool is_sweep_due(int64_t now_s)
{
    return table.count >= SWEEP_MIN && (table.count >= sweep_at || floor_div(now_s, 86400) != swept_day);
}

/* Under the write lock. */
static budget_entry_t *insert(const budget_line_t *line, uint64_t hash, int64_t now_s)
{
    budget_entry_t *entry = calloc(1, sizeof *entry);
    if (entry == NULL || (entry->identity = strdup(line->identity)) == NULL ||
        strtable_insert(&table, &entry->link, entry->identity, hash) != 0) {
        if (entry != NULL)
            free(entry->identity);
        free(entry);
        return NULL;
    }
    entry->scope = line->scope;
    entry->period = line->period;
    entry->period_start = budget_period_start(line->period, now_s);
    pthread_mutex_init(&entry->lock, NULL);
    entry->generation = atomic_fetch_add(&next_generation, 1);
    return entry;
}

static void entry_free(budget_entry_t *entry)
{
    pthread_mutex_destroy(&entry->lock);
    free(entry->identity);
    free(entry);
}

/* Under the entry's lock: a new period starts with no spend and no alerts.
 * Periods only move forward, so a clock stepped back across a boundary does
 * not wipe the spend of the period it already started. */
static void entry_roll(budget_entry_t *entry, int64_t now_s)
{
    int64_t start = budget_period_start(entry->period, now_s);
    if (start <= entry->period_start)
        return;
    entry->period_start = start;
    entry->spent = 0;
    entry->alerted = 0;
}

/* ---- tickets ------------------------------------------------------------ */

void budget_ticket_init(budget_ticket_t *ticket)
{
    ticket->line_count = 0;
    ticket->reserved = 0;
    ticket->refused_line = -1;
    ticket->is_refused_for_in_flight = false;
    ticket->retry_after_s = 0;
}

int budget_ticket_add(budget_ticket_t *ticket, budget_scope_t scope, const char *value, budget_period_t period,
                      double limit_usd, bool is_named)
{
    char identity[BUDGET_IDENTITY_LENGTH];
    int length = snprintf(identity, sizeof identity, "%s:%s:%s", budget_scope_name(scope), value,
                          budget_period_name(period));
    if (length < 0 || (size_t)length >= sizeof identity) {
        /* A value too long to spell out: its start and a hash of all of it,
         * so two long values that share a prefix keep apart. */
        snprintf(identity, sizeof identity, "%s:%.100s#%016llx:%s", budget_scope_name(scope), value,
                 (unsigned long long)hash_fnv1a(value, strlen(value), 0), budget_period_name(period));
    }
    int64_t limit = (int64_t)(limit_usd * BUDGET_NANO_PER_USD + 0.5);
    for (size_t i = 0; i < ticket->line_count; i++) {
        budget_line_t *line = &ticket->lines[i];
        if (strcmp(line->identity, identity) == 0) {
            if (limit < line->limit)
                line->limit = limit;
            line->is_named |= is_named;
            return 0;
        }
    }
    if (ticket->line_count == BUDGET_MAX_LINES)
        return -1;
    budget_line_t *line = &ticket->lines[ticket->line_count++];
    memcpy(line->identity, identity, sizeof identity);
    line->scope = scope;
    line->period = period;
    line->value = value;
    line->limit = limit;
    line->is_named = is_named;
    line->generation = 0;
    line->spent = line->reserved = 0;
    return 0;
}

static int compare_entries(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (budget_entry_t *const *)a, y = (uintptr_t) * (budget_entry_t *const *)b;
    return (x > y) - (x < y);
}

/* Under the table read lock: locks the distinct entries of entries[] in
 * address order (the same order for every thread, so no deadlock). */
static size_t lock_in_order(budget_entry_t **entries, size_t count, budget_entry_t **sorted)
{
    memcpy(sorted, entries, count * sizeof *sorted);
    qsort(sorted, count, sizeof *sorted, compare_entries);
    size_t distinct = 0;
    for (size_t i = 0; i < count; i++)
        if (sorted[i] != NULL && (distinct == 0 || sorted[distinct - 1] != sorted[i]))
            sorted[distinct++] = sorted[i];
    for (size_t i = 0; i < distinct; i++)
        pthread_mutex_lock(&sorted[i]->lock);
    return distinct;
}

static void unlock_all(budget_entry_t **sorted, size_t count)
{
    for (size_t i = count; i-- > 0;)
        pthread_mutex_unlock(&sorted[i]->lock);
}

/* Under the table read lock: the entries of the ticket's lines, NULL for
 * those that do not exist. Returns how many are missing. */
static size_t find_entries(const budget_ticket_t *ticket, budget_entry_t **entries)
{
    size_t missing = 0;
    for (size_t i = 0; i < ticket->line_count; i++) {
        entries[i] = find(ticket->lines[i].identity, strtable_hash(ticket->lines[i].identity));
        missing += entries[i] == NULL;
    }
    return missing;
}

bool budget_admit(budget_ticket_t *ticket, int64_t now_s, int64_t estimate)
{
    ticket->refused_line = -1;
    ticket->reserved = 0;
    if (ticket->line_count == 0)
        return true;
    if (estimate < 0)
        estimate = 0;
    budget_entry_t *entries[BUDGET_MAX_LINES], *sorted[BUDGET_MAX_LINES];
    pthread_rwlock_rdlock(&table_lock);
    if (find_entries(ticket, entries) > 0) {
        /* A budget's first request: create its entries under the write lock. */
        pthread_rwlock_unlock(&table_lock);
        pthread_rwlock_wrlock(&table_lock);
        if (is_sweep_due(now_s))
            sweep_idle(now_s); /* before looking up: it may drop entries found above */
        for (size_t i = 0; i < ticket->line_count; i++) {
            uint64_t hash = strtable_hash(ticket->lines[i].identity);
            if ((entries[i] = find(ticket->lines[i].identity, hash)) == NULL &&
                (entries[i] = insert(&ticket->lines[i], hash, now_s)) == NULL) {
                pthread_rwlock_unlock(&table_lock);
                log_warn("budget: out of memory creating the spend of '%s'; admitting unchecked",
                         ticket->lines[i].identity);
                ticket->line_count = 0;
                return true;
            }
        }
    }
    size_t locked = lock_in_order(entries, ticket->line_count, sorted);
    for (size_t i = 0; i < ticket->line_count; i++) {
        budget_entry_t *entry = entries[i];
        budget_line_t *line = &ticket->lines[i];
        entry_roll(entry, now_s);
        entry->limit = line->limit;
        entry->is_named |= line->is_named;
        line->spent = entry->spent;
        line->reserved = entry->reserved;
        /* Exhausted (even a free request is refused), or no room for this one. */
        int64_t held = entry->spent + entry->reserved;
        if (ticket->refused_line < 0 && (held >= line->limit || held + estimate > line->limit))
            ticket->refused_line = (int)i;
    }
    bool is_admitted = ticket->refused_line < 0;
    if (is_admitted) {
        ticket->reserved = estimate;
        /* Two lines may share an entry only through identical identities,
         * which budget_ticket_add merges: each entry is charged once. */
        for (size_t i = 0; i < ticket->line_count; i++) {
            entries[i]->reserved += estimate;
            ticket->lines[i].reserved = entries[i]->reserved;
            ticket->lines[i].generation = entries[i]->generation;
        }
    }
    unlock_all(sorted, locked);
    pthread_rwlock_unlock(&table_lock);
    if (!is_admitted) {
        const budget_line_t *line = &ticket->lines[ticket->refused_line];
        int64_t end = budget_period_end(line->period, now_s);
        ticket->is_refused_for_in_flight = line->spent < line->limit && line->spent + estimate <= line->limit;
        ticket->retry_after_s = ticket->is_refused_for_in_flight ? 1 : end == INT64_MAX ? -1 : end - now_s;
        atomic_fetch_add(&refusal_counts[line->scope], 1);
    }
    return is_admitted;
}

/* The members of an alert's JSON object, without braces. */
static void alert_members(const budget_alert_t *alert, buf_t *extra)
{
    const budget_line_t *line = alert->line;
    char start[32] = "";
    time_t seconds = (time_t)alert->period_start;
    struct tm tm;
    if (line->period != BUDGET_PERIOD_TOTAL && gmtime_r(&seconds, &tm) != NULL)
        strftime(start, sizeof start, "%Y-%m-%dT%H:%M:%SZ", &tm);
    buf_printf(extra, "\"event\":\"budget_alert\",\"budget\":\"");
    buf_append_json_escaped(extra, line->identity, strlen(line->identity));
    buf_printf(extra, "\",\"scope\":\"%s\",\"name\":\"", budget_scope_name(line->scope));
    buf_append_json_escaped(extra, line->value, strlen(line->value));
    buf_printf(extra, "\",\"threshold_percent\":%d,\"spent_usd\":%.6f,\"limit_usd\":%.6f,\"period\":\"%s\"",
               alert->percent, (double)alert->spent / BUDGET_NANO_PER_USD, (double)line->limit / BUDGET_NANO_PER_USD,
               budget_period_name(line->period));
    if (start[0] != '\0')
        buf_printf(extra, ",\"period_start\":\"%s\"", start);
}

static void alert_message(const budget_alert_t *alert, char *out, size_t size)
{
    const budget_line_t *line = alert->line;
    snprintf(out, size, "budget for %s '%s' reached %d%%: spent $%.2f of $%.2f %s%s", budget_scope_name(line->scope),
             line->value, alert->percent, (double)alert->spent / BUDGET_NANO_PER_USD,
             (double)line->limit / BUDGET_NANO_PER_USD, line->period == BUDGET_PERIOD_TOTAL ? "in " : "this ",
             line->period == BUDGET_PERIOD_TOTAL ? "total" : budget_period_name(line->period));
}

void budget_alert_json(const budget_alert_t *alert, buf_t *out)
{
    char message[BUDGET_IDENTITY_LENGTH + 128];
    alert_message(alert, message, sizeof message);
    buf_append_str(out, "{\"message\":\"");
    buf_append_json_escaped(out, message, strlen(message));
    buf_append_str(out, "\",");
    alert_members(alert, out);
    buf_append_char(out, '}');
}

static void log_alert(const budget_alert_t *alert)
{
    char message[BUDGET_IDENTITY_LENGTH + 128];
    alert_message(alert, message, sizeof message);
    buf_t extra;
    buf_init(&extra);
    alert_members(alert, &extra);
    log_write(LOG_WARN, extra.data, "%s", message);
    buf_free(&extra);
}

size_t budget_commit(budget_ticket_t *ticket, int64_t now_s, int64_t actual, budget_alert_t *alerts_out)
{
    if (ticket == NULL || ticket->refused_line >= 0 || ticket->line_count == 0)
        return 0;
    if (actual < 0)
        actual = 0;
    budget_entry_t *entries[BUDGET_MAX_LINES], *sorted[BUDGET_MAX_LINES];
    budget_alert_t alerts[BUDGET_MAX_ALERTS];
    size_t alert_count = 0;
    pthread_rwlock_rdlock(&table_lock);
    find_entries(ticket, entries);
    size_t locked = lock_in_order(entries, ticket->line_count, sorted);
    for (size_t i = 0; i < ticket->line_count; i++) {
        budget_entry_t *entry = entries[i];
        budget_line_t *line = &ticket->lines[i];
        if (entry == NULL || entry->generation != line->generation)
            continue; /* dropped by a reload since */
        entry_roll(entry, now_s);
        entry->reserved -= ticket->reserved;
        entry->spent += actual;
        line->spent = entry->spent;
        line->reserved = entry->reserved;
        for (int a = 0; a < ALERT_COUNT; a++) {
            /* spent / limit >= percent / 100, in integers */
            bool is_crossed = (double)entry->spent * 100.0 >= (double)line->limit * alert_percents[a];
            if (!is_crossed || (entry->alerted & (1u << a)))
                continue;
            entry->alerted |= 1u << a;
            alerts[alert_count++] = (budget_alert_t){line, alert_percents[a], entry->spent, entry->period_start};
        }
    }
    unlock_all(sorted, locked);
    pthread_rwlock_unlock(&table_lock);
    ticket->line_count = 0; /* committed: a second call is a no-op */
    for (size_t i = 0; i < alert_count; i++) {
        log_alert(&alerts[i]);
        int a = alerts[i].percent == 70 ? 0 : alerts[i].percent == 90 ? 1 : 2;
        atomic_fetch_add(&alert_counts[alerts[i].line->scope][a], 1);
    }
    if (alerts_out != NULL)
        memcpy(alerts_out, alerts, alert_count * sizeof *alerts);
    return alert_count;
}

int64_t budget_spent(const char *identity, int64_t now_s)
{
    int64_t spent = 0;
    pthread_rwlock_rdlock(&table_lock);
    budget_entry_t *entry = find(identity, strtable_hash(identity));
    if (entry != NULL) {
        pthread_mutex_lock(&entry->lock);
        entry_roll(entry, now_s);
        spent = entry->spent;
        pthread_mutex_unlock(&entry->lock);
    }
    pthread_rwlock_unlock(&table_lock);
    return spent;
}

/* Whether some budget of config still counts entry's spend. */
static bool is_budgeted_in(const config_t *config, const budget_entry_t *entry)
{
    const char *value = strchr(entry->identity, ':') + 1;
    size_t value_length = (size_t)(strrchr(entry->identity, ':') - value);
    for (size_t i = 0; i < config->budget_count; i++) {
        const budget_config_t *budget = &config->budgets[i];
        if (budget->scope != entry->scope || budget->period != entry->period)
            continue;
        if (strcmp(budget->match, "*") == 0 ||
            (strlen(budget->match) == value_length && memcmp(budget->match, value, value_length) == 0))
            return true;
    }
    return false;
}

void budget_reconfigure(const config_t *config)
{
    pthread_rwlock_wrlock(&table_lock);
    for (strtable_link_t *link = strtable_first(&table), *next; link != NULL; link = next) {
        next = strtable_next(&table, link);
        budget_entry_t *entry = entry_of(link);
        if (is_budgeted_in(config, entry))
            continue;
        strtable_remove(&table, link);
        entry_free(entry);
    }
    pthread_rwlock_unlock(&table_lock);
}

void budget_reset(void)
{
    pthread_rwlock_wrlock(&table_lock);
    for (strtable_link_t *link = strtable_first(&table), *next; link != NULL; link = next) {
        next = strtable_next(&table, link);
        entry_free(entry_of(link));
    }
    strtable_release(&table);
    sweep_at = SWEEP_MIN;
    swept_day = INT64_MIN;
    pthread_rwlock_unlock(&table_lock);
}

size_t budget_entry_count(void)
{
    pthread_rwlock_rdlock(&table_lock);
    size_t count = table.count;
    pthread_rwlock_unlock(&table_lock);
    return count;
}

/* ---- metrics and log ---------------------------------------------------- */

static void append_label_value(buf_t *out, const char *text, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        char c = text[i];
        if (c == '\\' || c == '"')
            buf_printf(out, "\\%c", c);
        else if (c == '\n')
            buf_append_str(out, "\\n");
        else
            buf_append_char(out, c);
    }
}

/* Named budgets get a series each, up to this many; "*" budgets of users
 * and features one series per scope and period, however many values. */
enum { NAMED_SERIES_MAX = 1000 };

typedef struct aggregate {
    int64_t spent, limit;
    long count;
} aggregate_t;

void budget_metrics_render(buf_t *out)
{
    int64_t now_s = (int64_t)time(NULL);
    aggregate_t aggregates[4][4] = {{{0}}}; /* [scope][period] */
    buf_t limits;
    buf_init(&limits);
    buf_append_str(out, "# HELP sluice_budget_spend_usd Spend this period per budget; budget=\"*\" sums every "
                        "user or feature of a per-value budget.\n# TYPE sluice_budget_spend_usd gauge\n");
    buf_append_str(&limits, "# HELP sluice_budget_limit_usd The cap of each budget (per value for budget=\"*\").\n"
                            "# TYPE sluice_budget_limit_usd gauge\n");
    size_t named = 0;
    pthread_rwlock_rdlock(&table_lock);
    for (strtable_link_t *link = strtable_first(&table); link != NULL; link = strtable_next(&table, link)) {
        budget_entry_t *entry = entry_of(link);
        pthread_mutex_lock(&entry->lock);
        entry_roll(entry, now_s);
        int64_t spent = entry->spent, limit = entry->limit;
        bool is_named = entry->is_named;
        pthread_mutex_unlock(&entry->lock);
        if (!is_named || named >= NAMED_SERIES_MAX) {
            aggregate_t *aggregate = &aggregates[entry->scope][entry->period];
            aggregate->spent += spent;
            aggregate->limit = limit > aggregate->limit ? limit : aggregate->limit;
            aggregate->count++;
            continue;
        }
        named++;
        const char *value = strchr(entry->identity, ':') + 1;
        size_t value_length = (size_t)(strrchr(entry->identity, ':') - value);
        buf_t *targets[] = {out, &limits};
        for (size_t t = 0; t < 2; t++) {
            buf_printf(targets[t], "sluice_budget_%s_usd{scope=\"%s\",budget=\"", t ? "limit" : "spend",
                       budget_scope_name(entry->scope));
            append_label_value(targets[t], value, value_length);
            buf_printf(targets[t], "\",period=\"%s\"} %.6f\n", budget_period_name(entry->period),
                       (double)(t ? limit : spent) / BUDGET_NANO_PER_USD);
        }
    }
    pthread_rwlock_unlock(&table_lock);
    buf_t tracked;
    buf_init(&tracked);
    buf_append_str(&tracked, "# HELP sluice_budget_tracked Distinct values with spend under a per-value budget.\n"
                             "# TYPE sluice_budget_tracked gauge\n");
    for (int scope = 0; scope < 4; scope++) {
        for (int period = 0; period < 4; period++) {
            const aggregate_t *aggregate = &aggregates[scope][period];
            if (aggregate->count == 0)
                continue;
            const char *labels[2] = {budget_scope_name((budget_scope_t)scope), budget_period_name((budget_period_t)period)};
            buf_printf(out, "sluice_budget_spend_usd{scope=\"%s\",budget=\"*\",period=\"%s\"} %.6f\n", labels[0],
                       labels[1], (double)aggregate->spent / BUDGET_NANO_PER_USD);
            buf_printf(&limits, "sluice_budget_limit_usd{scope=\"%s\",budget=\"*\",period=\"%s\"} %.6f\n", labels[0],
                       labels[1], (double)aggregate->limit / BUDGET_NANO_PER_USD);
            buf_printf(&tracked, "sluice_budget_tracked{scope=\"%s\",period=\"%s\"} %ld\n", labels[0], labels[1],
                       aggregate->count);
        }
    }
    if (limits.data != NULL)
        buf_append(out, limits.data, limits.length);
    if (tracked.data != NULL)
        buf_append(out, tracked.data, tracked.length);
    buf_free(&limits);
    buf_free(&tracked);
    buf_append_str(out, "# HELP sluice_budget_alerts_total Budget thresholds crossed (once per budget and period).\n"
                        "# TYPE sluice_budget_alerts_total counter\n");
    for (int scope = 0; scope < 4; scope++)
        for (int a = 0; a < ALERT_COUNT; a++)
            buf_printf(out, "sluice_budget_alerts_total{scope=\"%s\",threshold=\"%d\"} %ld\n",
                       budget_scope_name((budget_scope_t)scope), alert_percents[a], atomic_load(&alert_counts[scope][a]));
    buf_append_str(out, "# HELP sluice_budget_refusals_total Requests refused with 429 insufficient_quota.\n"
                        "# TYPE sluice_budget_refusals_total counter\n");
    for (int scope = 0; scope < 4; scope++)
        buf_printf(out, "sluice_budget_refusals_total{scope=\"%s\"} %ld\n", budget_scope_name((budget_scope_t)scope),
                   atomic_load(&refusal_counts[scope]));
}

void budget_log_fields(const request_t *request, buf_t *line)
{
    const budget_ticket_t *ticket = request->stage_context[STAGE_SLOT_BUDGET];
    if (ticket == NULL || ticket->refused_line < 0)
        return;
    const char *identity = ticket->lines[ticket->refused_line].identity;
    buf_append_str(line, ",\"budget_exceeded\":\"");
    buf_append_json_escaped(line, identity, strlen(identity));
    buf_append_char(line, '"');
}

/* ---- the stage ---------------------------------------------------------- */

/* The value a budget of scope is counted under for request; NULL = none. */
static const char *request_value(const request_t *request, budget_scope_t scope)
{
    const key_config_t *key = request->key;
    switch (scope) {
    case BUDGET_SCOPE_KEY:
        return key ? key->name : NULL;
    case BUDGET_SCOPE_TEAM:
        return key ? key->team : NULL;
    case BUDGET_SCOPE_USER:
        return request->user ? request->user : key ? key->user : NULL;
    case BUDGET_SCOPE_FEATURE:
        return request->feature;
    }
    return NULL;
}

/* Fills ticket with the budgets request falls under. */
static void collect(const request_t *request, budget_ticket_t *ticket)
{
    const config_t *config = request->config;
    for (size_t i = 0; i < config->budget_count; i++) {
        const budget_config_t *budget = &config->budgets[i];
        const char *value = request_value(request, budget->scope);
        if (value == NULL || value[0] == '\0')
            continue;
        bool is_wildcard = strcmp(budget->match, "*") == 0;
        if (!is_wildcard && strcmp(budget->match, value) != 0)
            continue;
        /* Keys and teams are as many as the config has: always their own series. */
        bool is_named = !is_wildcard || budget->scope == BUDGET_SCOPE_KEY || budget->scope == BUDGET_SCOPE_TEAM;
        if (budget_ticket_add(ticket, budget->scope, value, budget->period, budget->usd, is_named) != 0) {
            log_warn("budget: request %s falls under more than %d budgets; the rest are not enforced", request->id,
                     BUDGET_MAX_LINES);
            return;
        }
    }
}

/* The most request can cost, in nano-USD: prompt bytes / 4 and max_tokens at
 * the dearest priced candidate. *is_priced is false when none is priced. */
static int64_t estimate_cost(const request_t *request, bool *is_priced)
{
    long cap = provider_max_tokens(request->body);
    double prompt = (double)(request->bytes_in / 4), completion = cap > 0 ? (double)cap : 0;
    double most = 0;
    *is_priced = false;
    for (size_t i = 0; i < request->candidate_count; i++) {
        const price_config_t *price = config_find_price(request->config, request->candidates[i]->model);
        if (price == NULL)
            continue;
        *is_priced = true;
        double usd = (prompt * price->input_per_million + completion * price->output_per_million) / 1e6;
        if (usd > most)
            most = usd;
    }
    return (int64_t)(most * BUDGET_NANO_PER_USD + 0.5);
}

static void add_usd_header(request_t *request, const char *name, int64_t nano)
{
    char value[32];
    snprintf(value, sizeof value, "%.6f", (double)(nano > 0 ? nano : 0) / BUDGET_NANO_PER_USD);
    request_add_header(request, name, value);
}

static stage_result_t budget_on_request(request_t *request)
{
    if (request->config->budget_count == 0 || request->endpoint == ENDPOINT_MODELS)
        return STAGE_CONTINUE;
    budget_ticket_t *ticket = arena_alloc(&request->arena, sizeof *ticket);
    if (ticket == NULL)
        return STAGE_ERROR;
    budget_ticket_init(ticket);
    collect(request, ticket);
    if (ticket->line_count == 0)
        return STAGE_CONTINUE;
    bool is_priced;
    int64_t estimate = estimate_cost(request, &is_priced);
    if (!is_priced)
        request_add_header(request, "x-sluice-budget-unpriced", "true"); /* nothing reserved: see docs */
    int64_t now_s = (int64_t)time(NULL);
    bool is_admitted = budget_admit(ticket, now_s, estimate);
    request->stage_context[STAGE_SLOT_BUDGET] = ticket;
    /* The tightest budget's headroom after this request's reservation. */
    const budget_line_t *tightest = &ticket->lines[0];
    for (size_t i = 1; i < ticket->line_count; i++) {
        const budget_line_t *line = &ticket->lines[i];
        if (line->limit - line->spent - line->reserved < tightest->limit - tightest->spent - tightest->reserved)
            tightest = line;
    }
    add_usd_header(request, "x-sluice-budget-remaining-usd", tightest->limit - tightest->spent - tightest->reserved);
    add_usd_header(request, "x-sluice-budget-limit-usd", tightest->limit);
    if (is_admitted)
        return STAGE_CONTINUE;
    const budget_line_t *line = &ticket->lines[ticket->refused_line];
    if (ticket->retry_after_s >= 0) {
        char text[24];
        snprintf(text, sizeof text, "%lld", (long long)(ticket->retry_after_s > 0 ? ticket->retry_after_s : 1));
        request_add_header(request, "retry-after", text);
    }
    const char *when = line->period == BUDGET_PERIOD_TOTAL ? "in total"
                       : line->period == BUDGET_PERIOD_DAY ? "today"
                       : line->period == BUDGET_PERIOD_WEEK ? "this week"
                                                            : "this month";
    double spent = (double)line->spent / BUDGET_NANO_PER_USD, limit = (double)line->limit / BUDGET_NANO_PER_USD;
    if (ticket->is_refused_for_in_flight)
        request_reply_error(request, 429, "insufficient_quota", "insufficient_quota", NULL,
                            "Budget for %s '%s' is held by requests in flight: spent $%.2f and $%.2f reserved of "
                            "$%.2f %s, and this request may cost up to $%.2f. Please retry shortly.",
                            budget_scope_name(line->scope), line->value, spent,
                            (double)line->reserved / BUDGET_NANO_PER_USD, limit, when,
                            (double)estimate / BUDGET_NANO_PER_USD);
    else
        request_reply_error(request, 429, "insufficient_quota", "insufficient_quota", NULL,
                            "Budget exceeded for %s '%s': spent $%.2f of $%.2f %s%s", budget_scope_name(line->scope),
                            line->value, spent, limit, when,
                            spent < limit ? " (not enough left for this request's max_tokens)" : "");
    return STAGE_RESPONDED;
}

/* What the call cost, in nano-USD: the priced usage; nothing for a cache hit
 * or a call that failed before an answer; the reservation when an answer
 * went out but its cost is unknown (a stream cut short, no usage sent). */
static int64_t actual_cost(const request_t *request, const budget_ticket_t *ticket)
{
    if (request->cache_outcome == CACHE_OUTCOME_HIT || request->provider == NULL)
        return 0;
    if (request->is_priced)
        return (int64_t)(request->cost_usd * BUDGET_NANO_PER_USD + 0.5);
    bool has_answered = request->status >= 200 && request->status < 300;
    return has_answered ? ticket->reserved : 0;
}

/* Owner: itself, from webhook_post until its transfer ends. One alert POST. */
typedef struct budget_webhook {
    upstream_pool_t *pool;
    CURL *easy;
    struct curl_slist *headers;
    char *url; /* for the failure message */
    buf_t body;
} budget_webhook_t;

static size_t webhook_discard(char *data, size_t size, size_t count, void *unused)
{
    (void)data;
    (void)unused;
    return size * count;
}

static void webhook_free(budget_webhook_t *webhook)
{
    upstream_pool_release(webhook->pool, webhook->easy);
    curl_slist_free_all(webhook->headers);
    free(webhook->url);
    buf_free(&webhook->body);
    free(webhook);
}

static void webhook_done(void *argument, CURLcode result)
{
    budget_webhook_t *webhook = argument;
    long status = 0;
    curl_easy_getinfo(webhook->easy, CURLINFO_RESPONSE_CODE, &status);
    if (result != CURLE_OK || status < 200 || status >= 300)
        log_warn("budget alert webhook %s failed: %s", webhook->url,
                 result != CURLE_OK ? curl_easy_strerror(result) : "non-2xx status");
    webhook_free(webhook);
}

/* POSTs alert to the configured webhook on the request's worker's libcurl
 * multi: the loop never waits for it, and a failure is only logged. */
static void webhook_post(const request_t *request, const budget_alert_t *alert)
{
    const config_t *config = request->config;
    if (config->alert_webhook_url == NULL || request->worker == NULL || request->worker->pool == NULL)
        return;
    budget_webhook_t *webhook = calloc(1, sizeof *webhook);
    if (webhook == NULL)
        return;
    webhook->pool = request->worker->pool;
    buf_init(&webhook->body);
    budget_alert_json(alert, &webhook->body);
    webhook->url = strdup(config->alert_webhook_url);
    webhook->headers = curl_slist_append(NULL, "Content-Type: application/json");
    webhook->easy = upstream_pool_acquire(webhook->pool);
    if (webhook->body.data == NULL || webhook->url == NULL || webhook->headers == NULL || webhook->easy == NULL) {
        webhook_free(webhook);
        return;
    }
    CURL *easy = webhook->easy;
    curl_easy_setopt(easy, CURLOPT_URL, webhook->url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, webhook->headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, webhook->body.data);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)webhook->body.length);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, config->alert_webhook_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, webhook_discard);
    if (upstream_pool_add(webhook->pool, easy, "budget-alert-webhook", 4, webhook_done, webhook) != 0) {
        log_warn("budget alert webhook %s: cannot start the transfer", webhook->url);
        webhook_free(webhook);
    }
}

static void budget_on_complete(request_t *request)
{
    budget_ticket_t *ticket = request->stage_context[STAGE_SLOT_BUDGET];
    if (ticket == NULL)
        return;
    budget_alert_t alerts[BUDGET_MAX_ALERTS];
    size_t count = budget_commit(ticket, (int64_t)time(NULL), actual_cost(request, ticket), alerts);
    for (size_t i = 0; i < count; i++)
        webhook_post(request, &alerts[i]);
}

static void budget_on_reconfigure(const config_t *old_config, const config_t *new_config)
{
    (void)old_config;
    budget_reconfigure(new_config);
}

const stage_t stage_budget = {
    .name = "budget",
    .slot = STAGE_SLOT_BUDGET,
    .on_reconfigure = budget_on_reconfigure,
    .on_shutdown = budget_reset,
    .on_request = budget_on_request,
    .on_complete = budget_on_complete,
    .on_log = budget_log_fields,
    .on_metrics = budget_metrics_render,
};
