/* test_config.c — the configuration loader (include/sluice/config.h).
 *
 * A full file is loaded and every field checked; then the defaults, the
 * ${VAR} interpolation, and one bad file per validation rule. A bad file
 * must be refused with a message that starts "FILE:LINE: KEY.PATH: ", so
 * those tests compare that prefix exactly: the line and the key path are what
 * a user needs to find the mistake. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/config.h"
#include "sluice/log.h"
#include "sluice/util/crypto.h"
#include "leak_check.h"

static void quiet_log(void) { log_set_level(LOG_ERROR); }

TestSuite(config, .init = quiet_log, .fini = unit_leak_check);

/* sha256("sk-app-secret-1"), as `printf %s sk-app-secret-1 | sha256sum` prints it. */
#define APP_SECRET "sk-app-secret-1"
#define APP_SECRET_SHA256 "c69adcfae0f8d4a3e2fdcfd4e2be09507ef312233f7a8f480754d08218e07c37"

static const char full_yaml[] = "server:\n"
                                "  listen: \"127.0.0.1:9090\"\n"
                                "  workers: 4\n"
                                "  max_body_bytes: 1048576\n"
                                "  max_json_depth: 32\n"
                                "  drain_timeout_ms: 5000\n"
                                "providers:\n"
                                "  openai:\n"
                                "    type: openai\n"
                                "    base_url: https://api.openai.com/v1/\n"
                                "    api_key: sk-upstream-123\n"
                                "    headers:\n"
                                "      OpenAI-Organization: org-1\n"
                                "    max_connections: 64\n"
                                "    timeouts:\n"
                                "      connect_ms: 1000\n"
                                "      first_byte_ms: 2000\n"
                                "      idle_ms: 3000\n"
                                "      total_ms: 4000\n"
                                "  local:\n"
                                "    type: openai-compatible\n"
                                "    base_url: http://127.0.0.1:11434/v1\n"
                                "models:\n"
                                "  smart:\n"
                                "    strategy: fallback\n"
                                "    targets:\n"
                                "      - provider: openai\n"
                                "        model: gpt-4o\n"
                                "        weight: 3\n"
                                "      - provider: local\n"
                                "        model: llama3\n"
                                "  cheap:\n"
                                "    targets:\n"
                                "      - { provider: local, model: qwen }\n"
                                "pricing:\n"
                                "  gpt-4o:\n"
                                "    input: 2.5\n"
                                "    output: 10\n"
                                "  qwen: { input: 0, output: 0.25 }\n"
                                "keys:\n"
                                "  - name: app\n"
                                "    key_sha256: " APP_SECRET_SHA256 "\n"
                                "    team: core\n"
                                "    models: [smart]\n"
                                "    rpm: 60\n"
                                "    tpm: 100000\n"
                                "  - name: admin\n"
                                "    key: sk-admin-secret-2\n"
                                "  - name: ops\n"
                                "    key: sk-ops-secret-3\n"
                                "    models: [cheap, local/qwen]\n"
                                "logging:\n"
                                "  access_log: stderr\n"
                                "  level: warn\n";

/* The smallest file that loads: one provider. */
#define MINIMAL_PROVIDER                                                                                               \
    "providers:\n"                                                                                                     \
    "  p:\n"                                                                                                           \
    "    type: openai\n"                                                                                               \
    "    base_url: http://upstream.test/v1\n"

static config_t *load(const char *yaml)
{
    char error[512];
    config_t *config = config_load_string(yaml, strlen(yaml), "test.yaml", error, sizeof error);
    cr_assert_not_null(config, "config did not load: %s", error);
    return config;
}

/* Loads yaml as "bad.yaml", expects a refusal whose message starts with prefix. */
static void assert_refused(const char *yaml, const char *prefix)
{
    char error[512];
    strcpy(error, "(untouched)");
    config_t *config = config_load_string(yaml, strlen(yaml), "bad.yaml", error, sizeof error);
    int loaded = config != NULL;
    config_unref(config);
    cr_assert(!loaded, "this config should be refused (expected \"%s...\"):\n%s", prefix, yaml);
    cr_assert(strncmp(error, prefix, strlen(prefix)) == 0, "error is\n  \"%s\"\nexpected it to start with\n  \"%s\"",
              error, prefix);
}

/* ---- a full, valid file ------------------------------------------------- */

Test(config, full_file_server_and_logging)
{
    config_t *config = load(full_yaml);
    cr_expect_str_eq(config->server.listen_host, "127.0.0.1");
    cr_expect_eq(config->server.listen_port, 9090);
    cr_expect_eq(config->server.workers, 4);
    cr_expect_eq(config->server.max_body_bytes, 1048576);
    cr_expect_eq(config->server.max_json_depth, 32);
    cr_expect_eq(config->server.drain_timeout_ms, 5000);
    cr_expect_str_eq(config->logging.access_log, "stderr");
    cr_expect_str_eq(config->logging.level, "warn");
    cr_expect_null(config->path, "config_load_string has no path");
    config_unref(config);
}

Test(config, full_file_providers)
{
    config_t *config = load(full_yaml);
    cr_assert_eq(config->provider_count, 2);

    const provider_config_t *openai = &config->providers[0];
    cr_expect_str_eq(openai->name, "openai");
    cr_expect_eq(openai->type, PROVIDER_OPENAI);
    cr_expect_str_eq(openai->base_url, "https://api.openai.com/v1", "the trailing slash is removed");
    cr_expect_str_eq(openai->api_key, "sk-upstream-123");
    cr_assert_eq(openai->extra_header_count, 1);
    cr_expect_str_eq(openai->extra_headers[0], "OpenAI-Organization: org-1");
    cr_expect_eq(openai->max_connections, 64);
    cr_expect_eq(openai->timeouts.connect_ms, 1000);
    cr_expect_eq(openai->timeouts.first_byte_ms, 2000);
    cr_expect_eq(openai->timeouts.idle_ms, 3000);
    cr_expect_eq(openai->timeouts.total_ms, 4000);

    const provider_config_t *local = &config->providers[1];
    cr_expect_str_eq(local->name, "local");
    cr_expect_eq(local->type, PROVIDER_OPENAI_COMPATIBLE);
    cr_expect_str_eq(local->base_url, "http://127.0.0.1:11434/v1");
    cr_expect_null(local->api_key);
    cr_expect_eq(local->extra_header_count, 0);
    config_unref(config);
}

Test(config, full_file_models_and_targets)
{
    config_t *config = load(full_yaml);
    cr_assert_eq(config->model_count, 2);

    const model_config_t *smart = config_find_model(config, "smart");
    cr_assert_not_null(smart);
    cr_expect_eq(smart->strategy, STRATEGY_FALLBACK);
    cr_assert_eq(smart->target_count, 2);
    cr_expect_eq(smart->targets[0].provider, &config->providers[0]);
    cr_expect_str_eq(smart->targets[0].model, "gpt-4o");
    cr_expect_eq(smart->targets[0].weight, 3);
    cr_expect_eq(smart->targets[1].provider, &config->providers[1]);
    cr_expect_str_eq(smart->targets[1].model, "llama3");
    cr_expect_eq(smart->targets[1].weight, 1, "weight defaults to 1");

    const model_config_t *cheap = config_find_model(config, "cheap");
    cr_assert_not_null(cheap);
    cr_expect_eq(cheap->strategy, STRATEGY_FALLBACK, "strategy defaults to fallback");
    cr_assert_eq(cheap->target_count, 1);
    cr_expect_str_eq(cheap->targets[0].provider->name, "local");
    cr_expect_str_eq(cheap->targets[0].model, "qwen");

    cr_expect_null(config_find_model(config, "gpt-4o"), "upstream names are not client model names");
    config_unref(config);
}

Test(config, full_file_pricing)
{
    config_t *config = load(full_yaml);
    cr_assert_eq(config->price_count, 2);
    const price_config_t *gpt = config_find_price(config, "gpt-4o");
    cr_assert_not_null(gpt);
    cr_expect_eq(gpt->input_per_million, 2.5);
    cr_expect_eq(gpt->output_per_million, 10.0);
    const price_config_t *qwen = config_find_price(config, "qwen");
    cr_assert_not_null(qwen);
    cr_expect_eq(qwen->input_per_million, 0.0);
    cr_expect_eq(qwen->output_per_million, 0.25);
    cr_expect_null(config_find_price(config, "llama3"));
    config_unref(config);
}

Test(config, full_file_keys)
{
    config_t *config = load(full_yaml);
    cr_assert_eq(config->key_count, 3);

    const key_config_t *app = &config->keys[0];
    cr_expect_str_eq(app->name, "app");
    cr_expect_str_eq(app->team, "core");
    cr_expect_eq(app->rpm, 60);
    cr_expect_eq(app->tpm, 100000);
    cr_assert_eq(app->model_count, 1);
    cr_expect_str_eq(app->models[0], "smart");
    char hex[2 * CONFIG_SHA256_LENGTH + 1];
    crypto_hex_encode(app->sha256, CONFIG_SHA256_LENGTH, hex);
    cr_expect_str_eq(hex, APP_SECRET_SHA256);

    const key_config_t *admin = &config->keys[1];
    cr_expect_str_eq(admin->name, "admin");
    cr_expect_null(admin->team);
    cr_expect_null(admin->models, "no models: list means every model");
    cr_expect_eq(admin->rpm, 0);
    cr_expect_eq(admin->tpm, 0);
    unsigned char expected[CRYPTO_SHA256_LENGTH];
    crypto_sha256("sk-admin-secret-2", strlen("sk-admin-secret-2"), expected);
    cr_expect(memcmp(admin->sha256, expected, sizeof expected) == 0, "a plain key is stored as its sha256");
    config_unref(config);
}

/* ---- defaults ----------------------------------------------------------- */

Test(config, defaults)
{
    config_t *config = load(MINIMAL_PROVIDER);
    cr_expect_str_eq(config->server.listen_host, "0.0.0.0");
    cr_expect_eq(config->server.listen_port, 8080);
    cr_expect_eq(config->server.workers, 0, "auto");
    cr_expect_eq(config->server.max_body_bytes, 8388608);
    cr_expect_eq(config->server.max_json_depth, 64);
    cr_expect_eq(config->server.drain_timeout_ms, 30000);
    cr_expect_str_eq(config->logging.access_log, "stdout");
    cr_expect_str_eq(config->logging.level, "info");
    cr_expect_eq(config->model_count, 0);
    cr_expect_eq(config->price_count, 0);
    cr_expect_eq(config->key_count, 0);

    cr_assert_eq(config->provider_count, 1);
    const provider_config_t *provider = &config->providers[0];
    cr_expect_null(provider->api_key);
    cr_expect_eq(provider->extra_header_count, 0);
    cr_expect_eq(provider->max_connections, 256);
    cr_expect_eq(provider->timeouts.connect_ms, 5000);
    cr_expect_eq(provider->timeouts.first_byte_ms, 60000);
    cr_expect_eq(provider->timeouts.idle_ms, 60000);
    cr_expect_eq(provider->timeouts.total_ms, 600000);
    config_unref(config);
}

Test(config, workers_auto_and_partial_timeouts)
{
    config_t *config = load("server:\n"
                            "  workers: auto\n"
                            "  listen: \"[::1]:8443\"\n"
                            "providers:\n"
                            "  p:\n"
                            "    type: openai-compatible\n"
                            "    base_url: http://upstream.test\n"
                            "    api_key: \"\"\n"
                            "    timeouts: { idle_ms: 1234 }\n");
    cr_expect_eq(config->server.workers, 0);
    cr_expect_str_eq(config->server.listen_host, "::1", "IPv6 brackets are removed");
    cr_expect_eq(config->server.listen_port, 8443);
    const provider_config_t *provider = &config->providers[0];
    cr_expect_null(provider->api_key, "an empty api_key means none");
    cr_expect_eq(provider->timeouts.idle_ms, 1234);
    cr_expect_eq(provider->timeouts.connect_ms, 5000, "unset timeouts keep their defaults");
    cr_expect_eq(provider->timeouts.total_ms, 600000);
    config_unref(config);
}

Test(config, reserved_sections_are_accepted)
{
    config_t *config = load(MINIMAL_PROVIDER "cache:\n"
                                             "  semantic: { threshold: 0.92 }\n"
                                             "redis:\n"
                                             "  url: redis://localhost\n"
                                             "budgets: []\n");
    cr_expect_eq(config->provider_count, 1);
    config_unref(config);
}

Test(config, config_load_reads_a_file)
{
    char path[] = "/tmp/sluice-test-config-XXXXXX";
    int descriptor = mkstemp(path);
    cr_assert(descriptor >= 0);
    FILE *file = fdopen(descriptor, "w");
    fputs(full_yaml, file);
    fclose(file);
    char error[512];
    config_t *config = config_load(path, error, sizeof error);
    unlink(path);
    cr_assert_not_null(config, "%s", error);
    cr_expect_str_eq(config->path, path);
    cr_expect_eq(config->model_count, 2);
    config_unref(config);

    cr_expect_null(config_load("/nonexistent/sluice.yaml", error, sizeof error));
    cr_expect(strncmp(error, "/nonexistent/sluice.yaml: cannot open", 37) == 0, "error: %s", error);
}

/* ---- interpolation ------------------------------------------------------ */

Test(config, interpolation_while_loading)
{
    setenv("SLUICE_TEST_PORT", "7070", 1);
    setenv("SLUICE_TEST_UPSTREAM_KEY", "sk-from-env", 1);
    setenv("SLUICE_TEST_APP_KEY", "sk-app-from-env", 1);
    unsetenv("SLUICE_TEST_BASE_URL");
    config_t *config = load("server:\n"
                            "  listen: \"127.0.0.1:${SLUICE_TEST_PORT}\"\n"
                            "  max_json_depth: ${SLUICE_TEST_DEPTH:-20}\n"
                            "providers:\n"
                            "  p:\n"
                            "    type: openai\n"
                            "    base_url: ${SLUICE_TEST_BASE_URL:-http://fallback.test:8000/v1}\n"
                            "    api_key: ${SLUICE_TEST_UPSTREAM_KEY}\n"
                            "    headers: { X-Price: \"$$5\" }\n"
                            "keys:\n"
                            "  - name: app\n"
                            "    key: \"${SLUICE_TEST_APP_KEY}\"\n");
    cr_expect_eq(config->server.listen_port, 7070);
    cr_expect_eq(config->server.max_json_depth, 20);
    cr_expect_str_eq(config->providers[0].base_url, "http://fallback.test:8000/v1");
    cr_expect_str_eq(config->providers[0].api_key, "sk-from-env");
    cr_expect_str_eq(config->providers[0].extra_headers[0], "X-Price: $5");
    cr_expect_not_null(config_find_key(config, "sk-app-from-env", strlen("sk-app-from-env")));
    config_unref(config);
}

/* docs/configuration.md: workers is "integer 1-256 or auto", and any scalar
 * may come from ${VAR:-default}; the two together must work. */
Test(config, interpolated_workers_auto)
{
    unsetenv("SLUICE_TEST_WORKERS");
    config_t *config = load("server:\n"
                            "  workers: ${SLUICE_TEST_WORKERS:-auto}\n" MINIMAL_PROVIDER);
    cr_expect_eq(config->server.workers, 0);
    config_unref(config);
}

Test(config, unset_variable_names_the_line)
{
    unsetenv("SLUICE_TEST_MISSING");
    assert_refused(MINIMAL_PROVIDER "    api_key: ${SLUICE_TEST_MISSING}\n",
                   "bad.yaml:5: providers.p.api_key: environment variable SLUICE_TEST_MISSING is not set");
}

Test(config, interpolate_plain_text_and_dollars)
{
    char error[256] = "";
    char *out = config_interpolate("no variables here", error, sizeof error);
    cr_assert_str_eq(out, "no variables here");
    free(out);
    out = config_interpolate("costs $5 and $$5 and $${X}", error, sizeof error);
    cr_assert_not_null(out, "%s", error);
    cr_expect_str_eq(out, "costs $5 and $5 and ${X}", "$$ is a literal $ and stops interpolation");
    free(out);
    out = config_interpolate("", error, sizeof error);
    cr_expect_str_eq(out, "");
    free(out);
}

Test(config, interpolate_variables_and_defaults)
{
    char error[256] = "";
    setenv("SLUICE_TEST_A", "alpha", 1);
    setenv("SLUICE_TEST_B", "beta", 1);
    setenv("SLUICE_TEST_EMPTY", "", 1);
    unsetenv("SLUICE_TEST_UNSET");
    struct {
        const char *text, *expected;
    } cases[] = {
        {"${SLUICE_TEST_A}", "alpha"},
        {"<${SLUICE_TEST_A}|${SLUICE_TEST_B}>", "<alpha|beta>"},
        {"${SLUICE_TEST_A:-unused}", "alpha"},
        {"${SLUICE_TEST_UNSET:-fallback value}", "fallback value"},
        {"${SLUICE_TEST_UNSET:-}", ""},
        {"${SLUICE_TEST_EMPTY:-used when empty}", "used when empty"},
        {"${SLUICE_TEST_UNSET:-http://h:1/x}", "http://h:1/x"},
        {"${SLUICE_TEST_A}${SLUICE_TEST_UNSET:-z}$$", "alphaz$"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = config_interpolate(cases[i].text, error, sizeof error);
        cr_assert_not_null(out, "%s: %s", cases[i].text, error);
        cr_expect_str_eq(out, cases[i].expected, "input %s", cases[i].text);
        free(out);
    }
}

Test(config, interpolate_value_longer_than_text)
{
    char value[3000];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    setenv("SLUICE_TEST_LONG", value, 1);
    char error[256];
    char *out = config_interpolate("[${SLUICE_TEST_LONG}][${SLUICE_TEST_LONG}]", error, sizeof error);
    cr_assert_not_null(out);
    cr_expect_eq(strlen(out), 2 * (sizeof value - 1) + 4);
    cr_expect_eq(out[0], '[');
    cr_expect_eq(out[sizeof value], ']');
    cr_expect_eq(out[strlen(out) - 1], ']');
    free(out);
}

Test(config, interpolate_errors)
{
    char error[256];
    unsetenv("SLUICE_TEST_UNSET");
    cr_expect_null(config_interpolate("abc ${SLUICE_TEST_UNSET} def", error, sizeof error));
    cr_expect_str_eq(error,
                     "environment variable SLUICE_TEST_UNSET is not set (use ${SLUICE_TEST_UNSET:-default} for a "
                     "default)");
    cr_expect_null(config_interpolate("abc ${SLUICE_TEST_A", error, sizeof error));
    cr_expect_str_eq(error, "unterminated ${ in value");
    cr_expect_null(config_interpolate("${", error, sizeof error));
    cr_expect_str_eq(error, "unterminated ${ in value");
    cr_expect_null(config_interpolate("${}", error, sizeof error));
    cr_expect_str_eq(error, "bad variable name in ${...}");
    cr_expect_null(config_interpolate("${:-x}", error, sizeof error));
    cr_expect_str_eq(error, "bad variable name in ${...}");
}

/* docs/configuration.md: "${VAR} (the variable must be set and non-empty,
 * else the file is rejected naming the line)". */
Test(config, interpolate_set_but_empty_without_default_is_an_error)
{
    char error[256] = "";
    setenv("SLUICE_TEST_EMPTY", "", 1);
    char *out = config_interpolate("${SLUICE_TEST_EMPTY}", error, sizeof error);
    cr_expect_null(out, "an empty variable was accepted and expanded to \"%s\"", out ? out : "");
    free(out);
}

/* ---- refused files: file, line and key path ----------------------------- */

Test(config, yaml_syntax_error)
{
    assert_refused("server:\n"
                   "  workers: 2\n"
                   "\tlisten: \"0.0.0.0:1\"\n",
                   "bad.yaml:3: YAML syntax error");
    assert_refused(MINIMAL_PROVIDER "models: [unclosed\n"
                                    "pricing: {}\n",
                   "bad.yaml:6: YAML syntax error");
}

Test(config, not_a_mapping)
{
    assert_refused("- just\n- a list\n", "bad.yaml:1: (root): ");
    assert_refused("", "bad.yaml:0: (root): ");
}

Test(config, no_providers)
{
    assert_refused("server:\n  workers: 2\n", "bad.yaml:1: providers: at least one provider is required");
    assert_refused("providers: {}\n", "bad.yaml:1: providers: at least one provider is required");
}

Test(config, unknown_top_level_key)
{
    assert_refused(MINIMAL_PROVIDER "colour: blue\n", "bad.yaml:5: (root): unknown key 'colour'");
}

Test(config, unknown_key_in_server_and_provider)
{
    assert_refused("server:\n  listen: \"0.0.0.0:1\"\n  worker: 2\n" MINIMAL_PROVIDER,
                   "bad.yaml:3: server: unknown key 'worker'");
    assert_refused(MINIMAL_PROVIDER "    base_ur: http://typo\n", "bad.yaml:5: providers.p: unknown key 'base_ur'");
    assert_refused(MINIMAL_PROVIDER "    timeouts:\n      connect: 5\n",
                   "bad.yaml:6: providers.p.timeouts: unknown key 'connect'");
}

Test(config, wrong_types_in_server)
{
    assert_refused("server:\n  workers: \"x\"\n" MINIMAL_PROVIDER, "bad.yaml:2: server.workers: must be an integer");
    assert_refused("server:\n  workers: 0\n" MINIMAL_PROVIDER, "bad.yaml:2: server.workers: must be between 1 and 256");
    assert_refused("server:\n  workers: [1]\n" MINIMAL_PROVIDER, "bad.yaml:2: server.workers: must be a scalar");
    assert_refused("server:\n  max_body_bytes: -1\n" MINIMAL_PROVIDER,
                   "bad.yaml:2: server.max_body_bytes: must be between 1 and 1073741824");
    assert_refused("server:\n  max_json_depth: 1\n" MINIMAL_PROVIDER,
                   "bad.yaml:2: server.max_json_depth: must be between 2 and 1000");
    assert_refused("server:\n  drain_timeout_ms: 1.5\n" MINIMAL_PROVIDER,
                   "bad.yaml:2: server.drain_timeout_ms: must be an integer");
    assert_refused("server: 8080\n" MINIMAL_PROVIDER, "bad.yaml:1: server: must be a mapping, not a scalar");
}

Test(config, bad_listen)
{
    assert_refused("server:\n  listen: \"nohost\"\n" MINIMAL_PROVIDER, "bad.yaml:2: server.listen: must be HOST:PORT");
    assert_refused("server:\n  listen: \"host:\"\n" MINIMAL_PROVIDER, "bad.yaml:2: server.listen: must be HOST:PORT");
    assert_refused("server:\n  listen: \"host:65536\"\n" MINIMAL_PROVIDER,
                   "bad.yaml:2: server.listen: must be HOST:PORT");
    assert_refused("server:\n  listen: \"host:80x\"\n" MINIMAL_PROVIDER,
                   "bad.yaml:2: server.listen: must be HOST:PORT");
}

Test(config, provider_type_missing_or_unknown)
{
    assert_refused("providers:\n"
                   "  p:\n"
                   "    base_url: http://upstream.test\n",
                   "bad.yaml:3: providers.p: missing required key 'type'");
    assert_refused("providers:\n"
                   "  p:\n"
                   "    type: made-up\n"
                   "    base_url: http://upstream.test\n",
                   "bad.yaml:3: providers.p.type: unknown provider type 'made-up'");
}

Test(config, provider_name_with_slash)
{
    assert_refused("providers:\n"
                   "  a/b:\n"
                   "    type: openai\n"
                   "    base_url: http://upstream.test\n",
                   "bad.yaml:3: providers.a/b: provider names must be non-empty and contain no '/'");
}

Test(config, provider_base_url_missing)
{
    /* openai-compatible has no default endpoint. */
    assert_refused("providers:\n"
                   "  p:\n"
                   "    type: openai-compatible\n",
                   "bad.yaml:3: providers.p");
}

/* docs/configuration.md gives this very message as its example:
 * "config.yaml:14: providers.openai.base_url: base_url is required and must
 * start with http:// or https://" — the line of base_url and its key path. */
Test(config, provider_base_url_not_http)
{
    assert_refused("providers:\n"
                   "  p:\n"
                   "    type: openai\n"
                   "    base_url: ftp://upstream.test\n",
                   "bad.yaml:4: providers.p.base_url: base_url is required and must start with http:// or https://");
}

Test(config, provider_bad_values)
{
    assert_refused(MINIMAL_PROVIDER "    max_connections: 0\n",
                   "bad.yaml:5: providers.p.max_connections: must be between 1 and 100000");
    assert_refused(MINIMAL_PROVIDER "    timeouts: { total_ms: soon }\n",
                   "bad.yaml:5: providers.p.timeouts.total_ms: must be an integer");
    assert_refused(MINIMAL_PROVIDER "    headers: { \"Bad Name\": x }\n",
                   "bad.yaml:5: providers.p.headers: invalid header name 'Bad Name'");
    assert_refused(MINIMAL_PROVIDER "    headers: [a]\n", "bad.yaml:5: providers.p.headers: must be a mapping");
}

Test(config, model_target_unknown_provider)
{
    /* The path format the loader documents for this case (CONFIG_PATH_LENGTH's
     * comment in src/config.c): "models.smart.targets[1].provider". */
    assert_refused(MINIMAL_PROVIDER "models:\n"
                                    "  smart:\n"
                                    "    targets:\n"
                                    "      - provider: p\n"
                                    "        model: a\n"
                                    "      - provider: nope\n"
                                    "        model: b\n",
                   "bad.yaml:10: models.smart.targets[1].provider: unknown provider 'nope'");
}

Test(config, model_target_incomplete)
{
    assert_refused(MINIMAL_PROVIDER "models:\n"
                                    "  smart:\n"
                                    "    targets:\n"
                                    "      - provider: p\n",
                   "bad.yaml:8: models.smart.targets[0]: a target needs 'provider' and 'model'");
    assert_refused(MINIMAL_PROVIDER "models:\n"
                                    "  smart:\n"
                                    "    targets:\n"
                                    "      - { provider: p, model: a, colour: red }\n",
                   "bad.yaml:8: models.smart.targets[0]: unknown key 'colour'");
}

Test(config, model_without_targets)
{
    assert_refused(MINIMAL_PROVIDER "models:\n"
                                    "  smart:\n"
                                    "    strategy: fallback\n",
                   "bad.yaml:7: models.smart: needs at least one entry in 'targets'");
    assert_refused(MINIMAL_PROVIDER "models:\n"
                                    "  smart:\n"
                                    "    targets: []\n",
                   "bad.yaml:7: models.smart: needs at least one entry in 'targets'");
    assert_refused(MINIMAL_PROVIDER "models:\n"
                                    "  smart:\n"
                                    "    targets: { provider: p }\n",
                   "bad.yaml:7: models.smart.targets: must be a list, not a mapping");
}

Test(config, model_unknown_strategy)
{
    assert_refused(MINIMAL_PROVIDER "models:\n"
                                    "  smart:\n"
                                    "    strategy: random\n"
                                    "    targets: [{ provider: p, model: a }]\n",
                   "bad.yaml:7: models.smart.strategy: unknown value 'random'");
}

Test(config, bad_pricing)
{
    assert_refused(MINIMAL_PROVIDER "pricing:\n  gpt-4o: { input: -1, output: 1 }\n",
                   "bad.yaml:6: pricing.gpt-4o: must be a number >= 0");
    assert_refused(MINIMAL_PROVIDER "pricing:\n  gpt-4o: { input: 1, cached: 1 }\n",
                   "bad.yaml:6: pricing.gpt-4o: unknown key 'cached'");
}

Test(config, key_needs_exactly_one_secret)
{
    assert_refused(MINIMAL_PROVIDER "keys:\n"
                                    "  - name: app\n"
                                    "    key_sha256: " APP_SECRET_SHA256 "\n"
                                    "    key: sk-also-a-secret\n",
                   "bad.yaml:6: keys[0]: needs exactly one of 'key_sha256' or 'key'");
    assert_refused(MINIMAL_PROVIDER "keys:\n"
                                    "  - name: app\n"
                                    "    team: core\n",
                   "bad.yaml:6: keys[0]: needs exactly one of 'key_sha256' or 'key'");
}

Test(config, limits_section)
{
    config_t *config = load(MINIMAL_PROVIDER);
    cr_expect_eq(config->limits.window_seconds, 60);
    cr_expect(config->limits.is_shared, "shared through redis by default (when there is a redis section)");
    cr_expect_eq(config->limits.redis_timeout_ms, 50);
    config_unref(config);
    config = load(MINIMAL_PROVIDER "limits: { window_seconds: 2, shared: false, redis_timeout_ms: 200 }\n");
    cr_expect_eq(config->limits.window_seconds, 2);
    cr_expect_not(config->limits.is_shared);
    cr_expect_eq(config->limits.redis_timeout_ms, 200);
    config_unref(config);
    assert_refused(MINIMAL_PROVIDER "limits: { redis_timeout_ms: 0 }\n",
                   "bad.yaml:5: limits.redis_timeout_ms: must be between 1 and 10000");
    assert_refused(MINIMAL_PROVIDER "limits: { shared: sometimes }\n",
                   "bad.yaml:5: limits.shared: must be true or false");
    assert_refused(MINIMAL_PROVIDER "limits: { redis: yes }\n", "bad.yaml:5: limits: unknown key 'redis'");
}

Test(config, key_max_cost_usd)
{
    config_t *config = load(MINIMAL_PROVIDER "keys:\n"
                                             "  - name: app\n"
                                             "    key: sk-app-secret-1\n"
                                             "    max_cost_usd: 0.02\n");
    cr_expect_float_eq(config->keys[0].max_cost_usd, 0.02, 1e-12);
    config_unref(config);
    assert_refused(MINIMAL_PROVIDER "keys:\n"
                                    "  - name: app\n"
                                    "    key: sk-app-secret-1\n"
                                    "    max_cost_usd: -1\n",
                   "bad.yaml:8: keys[0].max_cost_usd: must be a number >= 0");
    assert_refused(MINIMAL_PROVIDER "keys:\n"
                                    "  - name: app\n"
                                    "    key: sk-app-secret-1\n"
                                    "    max_cost_usd: lots\n",
                   "bad.yaml:8: keys[0].max_cost_usd: must be a number >= 0");
}

Test(config, key_bad_sha256)
{
    /* 63 digits, 65 digits, and 64 characters with a non-hex one. */
    assert_refused(MINIMAL_PROVIDER "keys:\n"
                                    "  - name: app\n"
                                    "    key_sha256: c69adcfae0f8d4a3e2fdcfd4e2be09507ef312233f7a8f480754d08218e07c3\n",
                   "bad.yaml:7: keys[0].key_sha256: key_sha256 must be 64 hex digits");
    assert_refused(MINIMAL_PROVIDER "keys:\n"
                                    "  - name: app\n"
                                    "    key_sha256: " APP_SECRET_SHA256 "0\n",
                   "bad.yaml:7: keys[0].key_sha256: key_sha256 must be 64 hex digits");
    assert_refused(MINIMAL_PROVIDER "keys:\n"
                                    "  - name: app\n"
                                    "    key_sha256: g69adcfae0f8d4a3e2fdcfd4e2be09507ef312233f7a8f480754d08218e07c37\n",
                   "bad.yaml:7: keys[0].key_sha256: key_sha256 must be 64 hex digits");
}

Test(config, key_too_short_or_without_name)
{
    assert_refused(MINIMAL_PROVIDER "keys:\n"
                                    "  - name: app\n"
                                    "    key: short\n",
                   "bad.yaml:7: keys[0].key: key must be at least 8 characters");
    assert_refused(MINIMAL_PROVIDER "keys:\n"
                                    "  - key: sk-long-enough\n",
                   "bad.yaml:6: keys[0]: missing required key 'name'");
}

Test(config, key_allows_unknown_model)
{
    assert_refused(MINIMAL_PROVIDER "models:\n"
                                    "  smart: { targets: [{ provider: p, model: a }] }\n"
                                    "keys:\n"
                                    "  - name: app\n"
                                    "    key: sk-app-secret\n"
                                    "    models:\n"
                                    "      - smart\n"
                                    "      - p/anything\n"
                                    "      - dumb\n",
                   "bad.yaml:13: keys[0].models: unknown model 'dumb'");
    assert_refused(MINIMAL_PROVIDER "keys:\n"
                                    "  - name: app\n"
                                    "    key: sk-app-secret\n"
                                    "    models: [q/anything]\n",
                   "bad.yaml:8: keys[0].models: unknown model 'q/anything'");
}

Test(config, duplicate_key_names_and_secrets)
{
    assert_refused(MINIMAL_PROVIDER "keys:\n"
                                    "  - name: app\n"
                                    "    key: sk-first-secret\n"
                                    "  - name: app\n"
                                    "    key: sk-second-secret\n",
                   "bad.yaml:8: keys[1]: duplicate key name or secret (same as 'app')");
    assert_refused(MINIMAL_PROVIDER "keys:\n"
                                    "  - name: one\n"
                                    "    key: " APP_SECRET "\n"
                                    "  - name: two\n"
                                    "    key_sha256: " APP_SECRET_SHA256 "\n",
                   "bad.yaml:8: keys[1]: duplicate key name or secret (same as 'one')");
}

Test(config, duplicate_mapping_keys)
{
    assert_refused("server:\n"
                   "  listen: \"0.0.0.0:1\"\n"
                   "  listen: \"0.0.0.0:2\"\n" MINIMAL_PROVIDER,
                   "bad.yaml:3: server: key 'listen' appears twice");
    assert_refused(MINIMAL_PROVIDER "  p:\n"
                                    "    type: openai\n"
                                    "    base_url: http://other.test\n",
                   "bad.yaml:5: providers: key 'p' appears twice");
    assert_refused(MINIMAL_PROVIDER "server: {}\nserver: {}\n", "bad.yaml:6: (root): key 'server' appears twice");
}

Test(config, bad_logging)
{
    assert_refused(MINIMAL_PROVIDER "logging:\n  level: loud\n",
                   "bad.yaml:6: logging.level: must be debug, info, warn or error");
}

/* Each refusal path frees what it built; under ASan a leak fails the test. */
Test(config, refusals_after_partial_parsing_do_not_leak)
{
    assert_refused(MINIMAL_PROVIDER "models:\n"
                                    "  smart:\n"
                                    "    targets:\n"
                                    "      - provider: p\n"
                                    "        model: [not, a, scalar]\n",
                   "bad.yaml:9: models.smart.targets[0]");
    assert_refused(MINIMAL_PROVIDER "models:\n"
                                    "  smart:\n"
                                    "    targets:\n"
                                    "      - provider: p\n"
                                    "        model: a\n"
                                    "        weight: heavy\n",
                   "bad.yaml:10: models.smart.targets[0]");
}

/* ---- lookups ------------------------------------------------------------ */

Test(config, find_key_matches_the_right_secret)
{
    config_t *config = load(full_yaml);
    const key_config_t *key = config_find_key(config, APP_SECRET, strlen(APP_SECRET));
    cr_assert_not_null(key);
    cr_expect_str_eq(key->name, "app");
    key = config_find_key(config, "sk-admin-secret-2", strlen("sk-admin-secret-2"));
    cr_assert_not_null(key);
    cr_expect_str_eq(key->name, "admin");
    key = config_find_key(config, "sk-ops-secret-3 and more", strlen("sk-ops-secret-3"));
    cr_assert_not_null(key, "only length bytes of the secret count");
    cr_expect_str_eq(key->name, "ops");

    cr_expect_null(config_find_key(config, "sk-app-secret-2", strlen("sk-app-secret-2")));
    cr_expect_null(config_find_key(config, APP_SECRET, strlen(APP_SECRET) - 1), "a prefix is not the key");
    cr_expect_null(config_find_key(config, APP_SECRET "1", strlen(APP_SECRET) + 1));
    cr_expect_null(config_find_key(config, APP_SECRET_SHA256, strlen(APP_SECRET_SHA256)), "the hash is not the key");
    cr_expect_null(config_find_key(config, "", 0));
    config_unref(config);
}

Test(config, find_key_without_keys)
{
    config_t *config = load(MINIMAL_PROVIDER);
    cr_expect_null(config_find_key(config, APP_SECRET, strlen(APP_SECRET)));
    config_unref(config);
}

Test(config, key_allows_model)
{
    config_t *config = load(full_yaml);
    const key_config_t *app = &config->keys[0], *admin = &config->keys[1], *ops = &config->keys[2];
    cr_expect(config_key_allows_model(app, "smart"));
    cr_expect_not(config_key_allows_model(app, "cheap"));
    cr_expect_not(config_key_allows_model(app, "smar"));
    cr_expect_not(config_key_allows_model(app, "openai/gpt-4o"));
    cr_expect(config_key_allows_model(admin, "smart"), "no list: every model");
    cr_expect(config_key_allows_model(admin, "anything/at-all"));
    cr_expect(config_key_allows_model(ops, "cheap"));
    cr_expect(config_key_allows_model(ops, "local/qwen"));
    cr_expect_not(config_key_allows_model(ops, "local/llama3"));
    cr_expect_not(config_key_allows_model(ops, "smart"));
    config_unref(config);

    config = load(MINIMAL_PROVIDER "keys:\n  - { name: all, key: sk-all-secret, models: [\"*\"] }\n");
    cr_expect(config_key_allows_model(&config->keys[0], "whatever"));
    config_unref(config);
}

Test(config, find_provider_with_length)
{
    config_t *config = load(full_yaml);
    const char *model = "local/llama3";
    const provider_config_t *provider = config_find_provider(config, model, (size_t)(strchr(model, '/') - model));
    cr_assert_not_null(provider);
    cr_expect_str_eq(provider->name, "local");
    cr_expect_eq(config_find_provider(config, "openai", 6), &config->providers[0]);
    cr_expect_null(config_find_provider(config, "openai", 4), "\"open\" is not \"openai\"");
    cr_expect_null(config_find_provider(config, "loc", 3));
    cr_expect_null(config_find_provider(config, "localhost", 9));
    cr_expect_null(config_find_provider(config, "", 0));
    config_unref(config);
}

Test(config, ref_and_unref)
{
    config_t *config = load(full_yaml);
    cr_expect_eq(atomic_load(&config->references), 1);
    cr_expect_eq(config_ref(config), config);
    cr_expect_eq(config_ref(config), config);
    cr_expect_eq(atomic_load(&config->references), 3);
    config_unref(config);
    config_unref(config);
    cr_expect_eq(atomic_load(&config->references), 1);
    cr_expect_str_eq(config->providers[0].name, "openai", "still alive while referenced");
    config_unref(config); /* frees everything: ASan reports any leak */
    config_unref(NULL);
}
