#include "core/config/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace hookd {
namespace {

using namespace std::chrono_literals;
using env_map = std::map<std::string, std::string>;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hookd-config-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const auto path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  static std::variant<parsed_config, std::string> parse(std::vector<std::string> args,
                                                        env_map env = {}) {
    return parse_config(args, [env](const std::string& name) -> std::optional<std::string> {
      const auto it = env.find(name);
      if (it == env.end()) return std::nullopt;
      return it->second;
    });
  }

  static config ok(std::vector<std::string> args, env_map env = {}) {
    auto r = parse(std::move(args), std::move(env));
    if (auto* err = std::get_if<std::string>(&r)) {
      ADD_FAILURE() << *err;
      return config{};
    }
    const auto& parsed = std::get<parsed_config>(r);
    EXPECT_EQ(parsed.action, config_action::run);
    return parsed.values;
  }

  // The error for a bad value: one line, naming where and what, pointing at --help.
  static std::string fails(std::vector<std::string> args, env_map env = {}) {
    auto r = parse(std::move(args), std::move(env));
    if (!std::holds_alternative<std::string>(r)) {
      ADD_FAILURE() << "expected an error";
      return {};
    }
    const auto msg = std::get<std::string>(r);
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find("see hookd --help"), std::string::npos) << msg;
    EXPECT_EQ(msg.rfind("hookd: ", 0), 0u) << msg;
    return msg;
  }

  std::filesystem::path dir_;
};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_F(ConfigTest, DefaultsMatchTheDocs) {
  const auto c = ok({});
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 8080);
  EXPECT_FALSE(c.metrics_listen.has_value());
  EXPECT_EQ(c.data_dir, "./data");
  EXPECT_EQ(c.threads, 0u);
  EXPECT_EQ(c.max_connections, 10'000u);
  EXPECT_EQ(c.max_body_bytes, 64u * 1024);
  EXPECT_EQ(c.max_webhooks_per_project, 100u);
  const std::vector<std::chrono::milliseconds> schedule{5s, 5min, 30min, 2h, 5h, 10h, 10h};
  EXPECT_EQ(c.retry_schedule, schedule);
  EXPECT_EQ(c.delivery_timeout, 15s);
  EXPECT_EQ(c.disable_after, 120h);
  EXPECT_EQ(c.secret_grace, 24h);
  EXPECT_FALSE(c.allow_private_targets);
  EXPECT_FALSE(c.unsafe_no_fsync);
  EXPECT_FALSE(c.config_file.has_value());
  // Above a load balancer's usual upstream keep-alive (60 s), and long enough for its health
  // check to see /readyz turn 503 before a stop refuses connections.
  EXPECT_EQ(c.idle_timeout, 75s);
  EXPECT_EQ(c.shutdown_delay, 5s);
}

TEST_F(ConfigTest, PrecedenceIsDefaultsThenFileThenEnvironmentThenFlags) {
  const auto file = write("hookd.toml",
                          "threads = 2\n"
                          "data_dir = \"/from/file\"\n"
                          "max-webhooks-per-project = 7\n"
                          "idle_timeout = \"5s\"\n");
  const env_map env{{"HOOKD_THREADS", "3"}, {"HOOKD_DATA_DIR", "/from/env"}};
  const auto c = ok({"--config", file, "--threads", "4"}, env);
  EXPECT_EQ(c.threads, 4u);                   // flag over env over file
  EXPECT_EQ(c.data_dir, "/from/env");         // env over file
  EXPECT_EQ(c.max_webhooks_per_project, 7u);  // file over default
  EXPECT_EQ(c.idle_timeout, 5s);              // file over default
  EXPECT_EQ(c.delivery_timeout, 15s);         // default
  EXPECT_EQ(c.config_file, file);

  // Without the flag, the environment wins over the file.
  EXPECT_EQ(ok({"--config", file}, env).threads, 3u);
  // Without the environment, the file wins over the default.
  EXPECT_EQ(ok({"--config", file}).threads, 2u);
}

TEST_F(ConfigTest, ConfigPathComesFromEnvironmentUnlessTheFlagNamesAnother) {
  const auto a = write("a.toml", "threads = 5\n");
  const auto b = write("b.toml", "threads = 6\n");
  EXPECT_EQ(ok({}, {{"HOOKD_CONFIG", a}}).threads, 5u);
  EXPECT_EQ(ok({"--config=" + b}, {{"HOOKD_CONFIG", a}}).threads, 6u);
}

TEST_F(ConfigTest, BothFlagFormsAndLastFlagWins) {
  const auto c = ok({"--data-dir=/x", "--threads", "2", "--threads=3"});
  EXPECT_EQ(c.data_dir, "/x");
  EXPECT_EQ(c.threads, 3u);
}

TEST_F(ConfigTest, ListenForms) {
  auto c = ok({"--listen", "0.0.0.0:9000"});
  EXPECT_EQ(c.listen_host, "0.0.0.0");
  EXPECT_EQ(c.listen_port, 9000);
  c = ok({"--listen=[::1]:8081"});
  EXPECT_EQ(c.listen_host, "::1");
  EXPECT_EQ(c.listen_port, 8081);
  c = ok({"--listen", "localhost:0"});
  EXPECT_EQ(c.listen_host, "localhost");
  EXPECT_EQ(c.listen_port, 0);
  c = ok({}, {{"HOOKD_LISTEN", "[fe80::1]:65535"}});
  EXPECT_EQ(c.listen_host, "fe80::1");
  EXPECT_EQ(c.listen_port, 65535);

  for (const auto* bad : {"8080", "::1:8080", "host:", ":8080", "host:65536", "host:-1",
                          "[::1]8080", "[::1]", "[]:80", "[nothex]:80", "a b:80", "host:80x"}) {
    const auto msg = fails({"--listen", bad});
    EXPECT_TRUE(contains(msg, "--listen")) << msg;
    EXPECT_TRUE(contains(msg, std::string("'") + bad + "'")) << msg;
  }
}

TEST_F(ConfigTest, MetricsListen) {
  auto c = ok({"--metrics-listen", "127.0.0.1:9100"});
  ASSERT_TRUE(c.metrics_listen.has_value());
  EXPECT_EQ(c.metrics_listen->host, "127.0.0.1");
  EXPECT_EQ(c.metrics_listen->port, 9100);
  EXPECT_EQ(c.listen_port, 8080);  // the main listener is unchanged
  c = ok({}, {{"HOOKD_METRICS_LISTEN", "[::1]:9100"}});
  ASSERT_TRUE(c.metrics_listen.has_value());
  EXPECT_EQ(c.metrics_listen->host, "::1");
  // An empty flag turns it off again; an empty variable counts as unset.
  EXPECT_FALSE(ok({"--metrics-listen="}, {{"HOOKD_METRICS_LISTEN", "127.0.0.1:9100"}})
                   .metrics_listen.has_value());
  EXPECT_FALSE(ok({}, {{"HOOKD_METRICS_LISTEN", ""}}).metrics_listen.has_value());
  // Port 0 on both picks two free ports.
  c = ok({"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"});
  EXPECT_TRUE(c.metrics_listen.has_value());

  EXPECT_TRUE(contains(fails({"--metrics-listen", "9100"}), "--metrics-listen"));
  const auto same = fails({"--listen", "0.0.0.0:8080", "--metrics-listen", "0.0.0.0:8080"});
  EXPECT_TRUE(contains(same, "--metrics-listen")) << same;
  EXPECT_TRUE(contains(same, "0.0.0.0:8080")) << same;
}

TEST_F(ConfigTest, TlsTakesACertificateAndItsKeyOrNeither) {
  EXPECT_TRUE(ok({}).tls_cert.empty());
  auto c = ok({"--tls-cert", "/etc/hookd/cert.pem", "--tls-key", "/etc/hookd/key.pem"});
  EXPECT_EQ(c.tls_cert, "/etc/hookd/cert.pem");
  EXPECT_EQ(c.tls_key, "/etc/hookd/key.pem");
  c = ok({}, {{"HOOKD_TLS_CERT", "c.pem"}, {"HOOKD_TLS_KEY", "k.pem"}});
  EXPECT_EQ(c.tls_cert, "c.pem");
  // One without the other is refused at once, naming the missing one.
  auto only_cert = fails({"--tls-cert", "c.pem"});
  EXPECT_TRUE(contains(only_cert, "--tls-cert: needs --tls-key")) << only_cert;
  auto only_key = fails({}, {{"HOOKD_TLS_KEY", "k.pem"}});
  EXPECT_TRUE(contains(only_key, "--tls-key: needs --tls-cert")) << only_key;
}

TEST_F(ConfigTest, RateLimitAccessLogTrustedProxiesAndLogLevel) {
  const auto defaults = ok({});
  EXPECT_EQ(defaults.rate_limit, 0u);
  EXPECT_FALSE(defaults.access_log);
  EXPECT_TRUE(defaults.trusted_proxies.empty());
  EXPECT_EQ(defaults.min_log_level, log_level::info);

  const auto c = ok({"--rate-limit", "50", "--access-log", "--trusted-proxies",
                     "10.0.0.0/8, 192.0.2.7,2001:db8::/32,::1", "--log-level", "WARN"});
  EXPECT_EQ(c.rate_limit, 50u);
  EXPECT_TRUE(c.access_log);
  ASSERT_EQ(c.trusted_proxies.size(), 4u);
  EXPECT_EQ(c.trusted_proxies[0].to_string(), "10.0.0.0/8");
  EXPECT_EQ(c.trusted_proxies[1].to_string(), "192.0.2.7/32");
  EXPECT_EQ(c.trusted_proxies[2].to_string(), "2001:db8::/32");
  EXPECT_EQ(c.trusted_proxies[3].to_string(), "::1/128");
  EXPECT_EQ(c.min_log_level, log_level::warn);
  EXPECT_EQ(ok({"--rate-limit=0"}).rate_limit, 0u);  // off, said explicitly
  EXPECT_EQ(ok({}, {{"HOOKD_LOG_LEVEL", "debug"}}).min_log_level, log_level::debug);

  EXPECT_TRUE(contains(fails({"--rate-limit", "-1"}), "--rate-limit"));
  EXPECT_TRUE(contains(fails({"--rate-limit", "fast"}), "--rate-limit"));
  EXPECT_TRUE(contains(fails({"--log-level", "fatal"}), "debug, info, warn or error"));
  const auto host_bits = fails({"--trusted-proxies", "10.0.0.1/8"});
  EXPECT_TRUE(contains(host_bits, "did you mean 10.0.0.0/8")) << host_bits;
  EXPECT_TRUE(contains(fails({"--trusted-proxies", "127.1"}), "--trusted-proxies"));
  EXPECT_TRUE(contains(fails({"--trusted-proxies", "10.0.0.0/33"}), "0..32"));
  EXPECT_TRUE(contains(fails({"--trusted-proxies", "10.0.0.0/8,,::1"}), "empty item"));
}

TEST_F(ConfigTest, Durations) {
  const auto c = ok({"--delivery-timeout", "30s", "--disable-after=1h30m", "--secret-grace", "0s",
                     "--header-timeout", "250ms", "--drain-timeout", "2m"});
  EXPECT_EQ(c.delivery_timeout, 30s);
  EXPECT_EQ(c.disable_after, 90min);
  EXPECT_EQ(c.secret_grace, 0s);
  EXPECT_EQ(c.header_timeout, 250ms);
  EXPECT_EQ(c.drain_timeout, 2min);

  EXPECT_TRUE(contains(fails({"--delivery-timeout", "soon"}), "--delivery-timeout"));
  EXPECT_TRUE(contains(fails({"--delivery-timeout", "0s"}), "'0s'"));  // must be positive
  EXPECT_TRUE(contains(fails({"--idle-timeout", "-5s"}), "--idle-timeout"));
  EXPECT_TRUE(contains(fails({}, {{"HOOKD_DISABLE_AFTER", "5 days"}}), "HOOKD_DISABLE_AFTER"));
}

TEST_F(ConfigTest, RetrySchedule) {
  const std::vector<std::chrono::milliseconds> expected{1s, 2min, 3h};
  EXPECT_EQ(ok({"--retry-schedule", "1s,2m,3h"}).retry_schedule, expected);
  EXPECT_EQ(ok({}, {{"HOOKD_RETRY_SCHEDULE", "1s, 2m, 3h"}}).retry_schedule, expected);
  const auto msg = fails({"--retry-schedule", "1s,,3h"});
  EXPECT_TRUE(contains(msg, "--retry-schedule")) << msg;
  EXPECT_TRUE(contains(msg, "'1s,,3h'")) << msg;
  fails({"--retry-schedule", "0s"});
}

TEST_F(ConfigTest, MaxBodyAcceptsSizeSuffixes) {
  EXPECT_EQ(ok({"--max-body", "1000"}).max_body_bytes, 1000u);
  EXPECT_EQ(ok({"--max-body", "64k"}).max_body_bytes, 65536u);
  EXPECT_EQ(ok({"--max-body", "64KiB"}).max_body_bytes, 65536u);
  EXPECT_EQ(ok({"--max-body", "1m"}).max_body_bytes, 1048576u);
  EXPECT_EQ(ok({"--max-body", "2MiB"}).max_body_bytes, 2u * 1048576u);
  for (const auto* bad : {"", "0", "1x", "k", "-1", "2GiB", "99999999999999999999"}) {
    EXPECT_TRUE(contains(fails({"--max-body", bad}), "--max-body")) << bad;
  }
}

TEST_F(ConfigTest, Counts) {
  const auto c =
      ok({"--threads", "8", "--max-webhooks-per-project", "3", "--max-inflight-deliveries", "10",
          "--max-inflight-per-webhook", "2", "--max-inflight-per-organization", "5"});
  EXPECT_EQ(c.threads, 8u);
  EXPECT_EQ(c.max_webhooks_per_project, 3u);
  EXPECT_EQ(c.max_inflight_deliveries, 10u);
  EXPECT_EQ(c.max_inflight_per_webhook, 2u);
  EXPECT_EQ(c.max_inflight_per_organization, 5u);
  // Unset, it is 0: the scheduler takes a quarter of the global cap.
  EXPECT_EQ(ok({}).max_inflight_per_organization, 0u);
  EXPECT_EQ(ok({}, {{"HOOKD_MAX_INFLIGHT_PER_ORGANIZATION", "256"}}).max_inflight_per_organization,
            256u);
  fails({"--max-inflight-per-organization", "0"});
  fails({"--max-inflight-per-organization", "-1"});
  EXPECT_TRUE(contains(fails({}, {{"HOOKD_MAX_INFLIGHT_PER_ORGANIZATION", "all"}}),
                       "HOOKD_MAX_INFLIGHT_PER_ORGANIZATION"));
  EXPECT_EQ(ok({"--max-connections", "2"}).max_connections, 2u);
  EXPECT_EQ(ok({}, {{"HOOKD_MAX_CONNECTIONS", "500"}}).max_connections, 500u);
  EXPECT_TRUE(contains(fails({"--max-connections", "0"}), "--max-connections"));
  EXPECT_TRUE(contains(fails({}, {{"HOOKD_MAX_CONNECTIONS", "lots"}}), "HOOKD_MAX_CONNECTIONS"));
  const auto msg = fails({"--threads", "x"});
  EXPECT_TRUE(contains(msg, "--threads")) << msg;
  EXPECT_TRUE(contains(msg, "'x'")) << msg;
  fails({"--threads", "0"});
  fails({"--threads", "-2"});
  fails({"--threads", "2.5"});
  fails({"--max-webhooks-per-project", ""});
  EXPECT_TRUE(contains(fails({}, {{"HOOKD_MAX_INFLIGHT_PER_WEBHOOK", "many"}}),
                       "HOOKD_MAX_INFLIGHT_PER_WEBHOOK"));
}

TEST_F(ConfigTest, StorageBackgroundIsIdleOrNormal) {
  EXPECT_TRUE(ok({}).storage_background_idle);
  EXPECT_FALSE(ok({"--storage-background", "normal"}).storage_background_idle);
  EXPECT_TRUE(ok({"--storage-background=idle"}).storage_background_idle);
  EXPECT_FALSE(ok({}, {{"HOOKD_STORAGE_BACKGROUND", "normal"}}).storage_background_idle);
  const std::string msg = fails({"--storage-background", "low"});
  EXPECT_TRUE(contains(msg, "--storage-background")) << msg;
  EXPECT_TRUE(contains(msg, "expected idle or normal")) << msg;
}

TEST_F(ConfigTest, BooleansInFlagsAndEnvironment) {
  EXPECT_TRUE(ok({"--allow-private-targets"}).allow_private_targets);
  EXPECT_FALSE(ok({"--allow-private-targets=false"}).allow_private_targets);
  EXPECT_TRUE(ok({"--unsafe-no-fsync"}).unsafe_no_fsync);
  EXPECT_FALSE(ok({}).metrics_per_webhook);
  EXPECT_TRUE(ok({"--metrics-per-webhook"}).metrics_per_webhook);
  EXPECT_TRUE(ok({}, {{"HOOKD_METRICS_PER_WEBHOOK", "yes"}}).metrics_per_webhook);
  for (const auto* yes : {"1", "true", "yes", "TRUE"}) {
    EXPECT_TRUE(ok({}, {{"HOOKD_ALLOW_PRIVATE_TARGETS", yes}}).allow_private_targets) << yes;
  }
  for (const auto* no : {"0", "false", "no"}) {
    EXPECT_FALSE(ok({"--allow-private-targets=" + std::string(no)}).allow_private_targets) << no;
  }
  // A boolean flag never swallows the next argument.
  const auto c = ok({"--allow-private-targets", "--threads", "2"});
  EXPECT_TRUE(c.allow_private_targets);
  EXPECT_EQ(c.threads, 2u);
  // The flag overrides the environment in both directions.
  EXPECT_FALSE(ok({"--allow-private-targets=no"}, {{"HOOKD_ALLOW_PRIVATE_TARGETS", "yes"}})
                   .allow_private_targets);
  const auto msg = fails({}, {{"HOOKD_ALLOW_PRIVATE_TARGETS", "maybe"}});
  EXPECT_TRUE(contains(msg, "HOOKD_ALLOW_PRIVATE_TARGETS")) << msg;
  EXPECT_TRUE(contains(msg, "'maybe'")) << msg;
}

TEST_F(ConfigTest, EmptyEnvironmentValueCountsAsUnset) {
  EXPECT_EQ(ok({}, {{"HOOKD_THREADS", ""}}).threads, 0u);
}

TEST_F(ConfigTest, UnknownOptionsAndMissingValues) {
  EXPECT_TRUE(contains(fails({"--bogus"}), "'--bogus'"));
  EXPECT_TRUE(contains(fails({"--bogus=1"}), "'--bogus'"));
  EXPECT_TRUE(contains(fails({"positional"}), "'positional'"));
  EXPECT_TRUE(contains(fails({"--data-dir"}), "--data-dir"));
  fails({"--help=yes"});
}

TEST_F(ConfigTest, HelpAndVersionActions) {
  auto r = parse({"--help"});
  ASSERT_TRUE(std::holds_alternative<parsed_config>(r));
  EXPECT_EQ(std::get<parsed_config>(r).action, config_action::help);
  // --help works whatever the environment holds.
  r = parse({"-h"}, {{"HOOKD_THREADS", "garbage"}});
  ASSERT_TRUE(std::holds_alternative<parsed_config>(r));
  EXPECT_EQ(std::get<parsed_config>(r).action, config_action::help);
  r = parse({"--version"});
  ASSERT_TRUE(std::holds_alternative<parsed_config>(r));
  EXPECT_EQ(std::get<parsed_config>(r).action, config_action::version);
}

TEST_F(ConfigTest, HelpListsEveryOptionWithItsEnvironmentTwin) {
  const auto help = config_help();
  for (const auto* pair : {"--listen|HOOKD_LISTEN",
                           "--metrics-listen|HOOKD_METRICS_LISTEN",
                           "--data-dir|HOOKD_DATA_DIR",
                           "--threads|HOOKD_THREADS",
                           "--max-connections|HOOKD_MAX_CONNECTIONS",
                           "--max-body|HOOKD_MAX_BODY",
                           "--max-webhooks-per-project|HOOKD_MAX_WEBHOOKS_PER_PROJECT",
                           "--retry-schedule|HOOKD_RETRY_SCHEDULE",
                           "--delivery-timeout|HOOKD_DELIVERY_TIMEOUT",
                           "--disable-after|HOOKD_DISABLE_AFTER",
                           "--secret-grace|HOOKD_SECRET_GRACE",
                           "--allow-private-targets|HOOKD_ALLOW_PRIVATE_TARGETS",
                           "--header-timeout|HOOKD_HEADER_TIMEOUT",
                           "--idle-timeout|HOOKD_IDLE_TIMEOUT",
                           "--drain-timeout|HOOKD_DRAIN_TIMEOUT",
                           "--max-inflight-deliveries|HOOKD_MAX_INFLIGHT_DELIVERIES",
                           "--max-inflight-per-webhook|HOOKD_MAX_INFLIGHT_PER_WEBHOOK",
                           "--max-inflight-per-organization|HOOKD_MAX_INFLIGHT_PER_ORGANIZATION",
                           "--unsafe-no-fsync|HOOKD_UNSAFE_NO_FSYNC",
                           "--storage-background|HOOKD_STORAGE_BACKGROUND",
                           "--metrics-per-webhook|HOOKD_METRICS_PER_WEBHOOK",
                           "--config|HOOKD_CONFIG",
                           "--tls-cert|HOOKD_TLS_CERT",
                           "--tls-key|HOOKD_TLS_KEY",
                           "--rate-limit|HOOKD_RATE_LIMIT",
                           "--access-log|HOOKD_ACCESS_LOG",
                           "--trusted-proxies|HOOKD_TRUSTED_PROXIES",
                           "--log-level|HOOKD_LOG_LEVEL",
                           "--public-url|HOOKD_PUBLIC_URL",
                           "--help|",
                           "--version|"}) {
    const std::string s = pair;
    const auto bar = s.find('|');
    EXPECT_TRUE(contains(help, s.substr(0, bar) + " ") || contains(help, s.substr(0, bar) + "\n"))
        << s;
    EXPECT_TRUE(contains(help, s.substr(bar + 1))) << s;
  }
}

// Portal session URLs start with it (docs/portal.md); an origin only, so a path or user-info is
// refused at start rather than making broken links.
TEST_F(ConfigTest, PublicUrl) {
  EXPECT_EQ(ok({}).public_url, "");
  EXPECT_EQ(ok({"--public-url", "https://hooks.example.com/"}).public_url,
            "https://hooks.example.com");
  EXPECT_EQ(ok({}, {{"HOOKD_PUBLIC_URL", "http://127.0.0.1:8080"}}).public_url,
            "http://127.0.0.1:8080");
  EXPECT_EQ(ok({"--config", write("p.toml", "public_url = \"https://a.example\"\n")}).public_url,
            "https://a.example");
  for (const char* bad : {"hooks.example.com", "ftp://x", "https://", "https://x/portal",
                          "https://user@x", "https://x?y"}) {
    EXPECT_TRUE(contains(fails({"--public-url", bad}), "--public-url")) << bad;
  }
}

TEST_F(ConfigTest, TomlFile) {
  const auto file = write("full.toml",
                          "# hookd configuration\n"
                          "listen = \"[::1]:9090\"   # trailing comment\n"
                          "data-dir = '/var/lib/hookd'\n"
                          "\n"
                          "threads = 1_2\n"
                          "max_body = \"128k\"\n"
                          "allow_private_targets = true\n"
                          "retry_schedule = [\n"
                          "  \"1s\",  # first\n"
                          "  \"10s\",\n"
                          "]\n"
                          "\"secret_grace\" = \"1h\"\n"
                          "delivery_timeout = \"\"\"\n20s\"\"\"   # a multi-line string\n"
                          "retention = \"\\u0037d\"\n");
  const auto c = ok({"--config", file});
  EXPECT_EQ(c.listen_host, "::1");
  EXPECT_EQ(c.listen_port, 9090);
  EXPECT_EQ(c.data_dir, "/var/lib/hookd");
  EXPECT_EQ(c.threads, 12u);
  EXPECT_EQ(c.max_body_bytes, 128u * 1024);
  EXPECT_TRUE(c.allow_private_targets);
  const std::vector<std::chrono::milliseconds> schedule{1s, 10s};
  EXPECT_EQ(c.retry_schedule, schedule);
  EXPECT_EQ(c.secret_grace, 1h);
  EXPECT_EQ(c.delivery_timeout, 20s);
  EXPECT_EQ(c.retention, std::chrono::hours(24 * 7));
}

TEST_F(ConfigTest, JsonFileIncludingDetectionWithoutExtension) {
  const auto json = R"({"listen": "127.0.0.1:7000", "threads": 3, "unsafe_no_fsync": true,
                        "retry-schedule": ["2s", "4s"], "max-body": "1MiB"})";
  for (const auto& name : {"c.json", "c.conf"}) {
    const auto c = ok({"--config", write(name, json)});
    EXPECT_EQ(c.listen_port, 7000);
    EXPECT_EQ(c.threads, 3u);
    EXPECT_TRUE(c.unsafe_no_fsync);
    const std::vector<std::chrono::milliseconds> schedule{2s, 4s};
    EXPECT_EQ(c.retry_schedule, schedule);
    EXPECT_EQ(c.max_body_bytes, 1048576u);
  }
}

TEST_F(ConfigTest, FileErrorsNameTheFileAndKey) {
  auto msg = fails({"--config", write("u.toml", "threads = 2\nlisten_addr = \"x\"\n")});
  EXPECT_TRUE(contains(msg, "listen_addr")) << msg;
  EXPECT_TRUE(contains(msg, "unknown key")) << msg;

  msg = fails({"--config", write("u.json", R"({"bogus": 1})")});
  EXPECT_TRUE(contains(msg, "bogus")) << msg;
  EXPECT_TRUE(contains(msg, "u.json")) << msg;

  msg = fails({"--config", write("t.toml", "threads = \"many\"\n")});
  EXPECT_TRUE(contains(msg, "threads")) << msg;
  EXPECT_TRUE(contains(msg, "'many'")) << msg;

  msg = fails({"--config", write("j.json", R"({"threads": true})")});
  EXPECT_TRUE(contains(msg, "threads")) << msg;

  msg = fails({"--config", write("d.json", R"({"delivery_timeout": 15})")});
  EXPECT_TRUE(contains(msg, "delivery_timeout")) << msg;

  msg = fails({"--config", write("s.toml", "threads = 2\n[server]\nport = 2\n")});
  EXPECT_TRUE(contains(msg, "s.toml:2: server")) << msg;
  EXPECT_TRUE(contains(msg, "tables")) << msg;
  msg = fails({"--config", write("twice.toml", "data-dir = \"/a\"\ndata_dir = \"/b\"\n")});
  EXPECT_TRUE(contains(msg, "given twice")) << msg;
  msg = fails({"--config", write("neg.toml", "threads = -3\n")});
  EXPECT_TRUE(contains(msg, "neg.toml:1: threads")) << msg;
  // A TOML syntax error names its line, from the parser.
  msg = fails({"--config", write("syntax.toml", "threads = 2\n\nlisten = \"x\" = 3\n")});
  EXPECT_TRUE(contains(msg, "syntax.toml:3")) << msg;
  fails({"--config", write("q.toml", "data_dir = \"unterminated\n")});
  fails({"--config", write("a.toml", "threads = [\"1\"]\n")});
  fails({"--config", write("f.toml", "threads = 1.5\n")});
  fails({"--config", write("x.toml", "threads 2\n")});
  fails({"--config", write("bad.json", "{\"threads\": ")});
  fails({"--config", write("arr.json", "[1, 2]")});
  fails({"--config", write("nested.json", R"({"config": "other.toml"})")});
  msg = fails({"--config", (dir_ / "missing.toml").string()});
  EXPECT_TRUE(contains(msg, "missing.toml")) << msg;
}

}  // namespace
}  // namespace hookd

namespace hookd {
namespace {

// deploy/hookd.toml, the example the Debian package installs as /etc/hookd/hookd.toml, shows every
// option a user sets there, each line valid once uncommented; an option added to hookd without
// its line there (or a line that no longer parses) fails here.
TEST_F(ConfigTest, StorageIsRocksdbOrAPostgresqlUri) {
  EXPECT_EQ(ok({}).storage, "");
  EXPECT_EQ(ok({"--storage", "rocksdb"}).storage, "");
  const std::string uri = "postgresql://hookd@127.0.0.1:5433/hookd?sslmode=disable";
  EXPECT_EQ(ok({"--storage", uri}).storage, uri);
  EXPECT_EQ(ok({"--storage=postgres://db/hookd"}).storage, "postgres://db/hookd");
  EXPECT_TRUE(is_postgresql_uri(ok({}, {{"HOOKD_STORAGE", uri}}).storage));
  EXPECT_EQ(ok({"--config", write("s.toml", "storage = \"" + uri + "\"\n")}).storage, uri);
  // The flag wins over the environment, rocksdb included.
  EXPECT_EQ(ok({"--storage", "rocksdb"}, {{"HOOKD_STORAGE", uri}}).storage, "");
  for (const char* bad : {"mysql://db/hookd", "RocksDB", "/var/lib/hookd", "postgresql:"}) {
    const auto msg = fails({"--storage", bad});
    EXPECT_TRUE(contains(msg, "--storage")) << msg;
    EXPECT_TRUE(contains(msg, "postgresql://")) << msg;
  }
  EXPECT_TRUE(contains(fails({}, {{"HOOKD_STORAGE", "sqlite"}}), "HOOKD_STORAGE"));
  EXPECT_TRUE(contains(config_help(), "--storage"));
  EXPECT_TRUE(contains(config_help(), "HOOKD_STORAGE"));
}

// A --storage value is echoed when it is refused, but never its password: a mistyped scheme
// (postgresq://, mysql://) still carries a real one, from the flag, the environment or a file.
TEST_F(ConfigTest, ARefusedStorageValueIsEchoedWithoutItsPassword) {
  const std::string secret = "s3cr3t-Pa55";
  for (const std::string& bad :
       {"postgresq://hookd:" + secret + "@db.internal:5432/hookd",
        "mysql://hookd:" + secret + "@db/hookd?sslmode=require",
        "postgresq://db/hookd?user=hookd&password=" + secret + "&sslmode=disable",
        "host=db user=hookd password=" + secret}) {
    for (const auto& msg :
         {fails({"--storage", bad}), fails({}, {{"HOOKD_STORAGE", bad}}),
          fails({"--config", write("bad.toml", "storage = \"" + bad + "\"\n")})}) {
      EXPECT_FALSE(contains(msg, secret)) << msg;
      EXPECT_TRUE(contains(msg, "***")) << msg;
    }
  }
  // What stays shows which value it was: scheme, user, host and database.
  const auto msg = fails({"--storage", "postgresq://hookd:" + secret + "@db.internal:5432/hookd"});
  EXPECT_TRUE(contains(msg, "'postgresq://hookd:***@db.internal:5432/hookd'")) << msg;
}

TEST(RedactPassword, HidesEachPasswordAndKeepsTheRest) {
  EXPECT_EQ(redact_password("postgresql://hookd:pw@db:5432/hookd"),
            "postgresql://hookd:***@db:5432/hookd");
  // A password holding '@' or ':': the host is after the last '@', the password after the first
  // ':'.
  EXPECT_EQ(redact_password("postgresql://hookd:p@ss:w@db/hookd"),
            "postgresql://hookd:***@db/hookd");
  EXPECT_EQ(redact_password("postgresql://db/hookd?password=pw&sslmode=disable"),
            "postgresql://db/hookd?password=***&sslmode=disable");
  EXPECT_EQ(redact_password("host=db password=pw user=hookd"), "host=db password=*** user=hookd");
  // Nothing secret, nothing changed.
  for (const char* plain : {"postgresql://hookd@db:5432/hookd", "rocksdb", "postgresql://db:5432/x",
                            "postgresql://db/x?application_name=mypassword=1"}) {
    EXPECT_EQ(redact_password(plain), plain);
  }
  EXPECT_EQ(redact_password_in("invalid percent-encoded token: \"p%zz\"",
                               "postgresql://hookd:p%zz@db/hookd"),
            "invalid percent-encoded token: \"***\"");
}

// A cluster node's lease, claim interval and name (docs/cluster.md, "A node's deliveries").
TEST_F(ConfigTest, ClusterLeaseClaimIntervalAndNodeName) {
  const auto defaults = ok({});
  EXPECT_EQ(defaults.cluster_lease, 30s);
  EXPECT_EQ(defaults.cluster_claim_interval, 250ms);
  EXPECT_EQ(defaults.node_name, "");  // host:pid, made at start

  const auto flags =
      ok({"--cluster-lease", "5s", "--cluster-claim-interval=100ms", "--node-name", "node-1"});
  EXPECT_EQ(flags.cluster_lease, 5s);
  EXPECT_EQ(flags.cluster_claim_interval, 100ms);
  EXPECT_EQ(flags.node_name, "node-1");

  const auto env = ok({}, {{"HOOKD_CLUSTER_LEASE", "1m"},
                           {"HOOKD_CLUSTER_CLAIM_INTERVAL", "2s"},
                           {"HOOKD_NODE_NAME", "db-a:7"}});
  EXPECT_EQ(env.cluster_lease, 60s);
  EXPECT_EQ(env.cluster_claim_interval, 2s);
  EXPECT_EQ(env.node_name, "db-a:7");

  const auto file = ok({"--config", write("c.toml",
                                          "cluster_lease = \"10s\"\n"
                                          "cluster_claim_interval = \"500ms\"\n"
                                          "node_name = \"east-2\"\n")});
  EXPECT_EQ(file.cluster_lease, 10s);
  EXPECT_EQ(file.cluster_claim_interval, 500ms);
  EXPECT_EQ(file.node_name, "east-2");
  // The flag wins over the environment.
  EXPECT_EQ(ok({"--node-name", "a"}, {{"HOOKD_NODE_NAME", "b"}}).node_name, "a");

  // A lease shorter than 3 s would expire under a live node between two renewals of a busy
  // database; the message says the bound.
  for (const char* bad : {"2s", "2999ms", "0s", "soon"}) {
    const auto msg = fails({"--cluster-lease", bad});
    EXPECT_TRUE(contains(msg, "--cluster-lease")) << msg;
    EXPECT_TRUE(contains(msg, "at least 3s")) << msg;
  }
  EXPECT_EQ(ok({"--cluster-lease", "3s", "--cluster-claim-interval", "1s"}).cluster_lease, 3s);
  EXPECT_TRUE(contains(fails({"--cluster-claim-interval", "0ms"}), "--cluster-claim-interval"));
  // Leases are renewed on the claim rounds: an interval above a third of the lease is refused,
  // whichever of the two was given.
  const auto slow = fails({"--cluster-lease", "5s", "--cluster-claim-interval", "2s"});
  EXPECT_TRUE(contains(slow, "--cluster-claim-interval")) << slow;
  EXPECT_TRUE(contains(slow, "--cluster-lease")) << slow;
  EXPECT_FALSE(std::holds_alternative<std::string>(parse({"--cluster-claim-interval", "10s"})));
  EXPECT_TRUE(contains(fails({"--cluster-claim-interval", "11s"}), "third"));

  for (const char* bad : {"node 1", "a\tb", "x\ny"}) {
    EXPECT_TRUE(contains(fails({"--node-name", bad}), "--node-name")) << bad;
  }
  EXPECT_TRUE(contains(fails({"--node-name", std::string(201, 'n')}), "200"));
  EXPECT_EQ(ok({"--node-name", ""}).node_name, "");  // back to host:pid

  const auto help = config_help();
  for (const char* name : {"--cluster-lease", "HOOKD_CLUSTER_LEASE", "--cluster-claim-interval",
                           "HOOKD_CLUSTER_CLAIM_INTERVAL", "--node-name", "HOOKD_NODE_NAME"}) {
    EXPECT_TRUE(contains(help, name)) << name;
  }
}

TEST_F(ConfigTest, TheShippedExampleConfigShowsEveryOptionAndParsesUncommented) {
  std::ifstream in(std::string(HOOKD_SOURCE_DIR) + "/deploy/hookd.toml");
  ASSERT_TRUE(in) << "deploy/hookd.toml";
  std::string line, uncommented;
  std::vector<std::string> keys;
  while (std::getline(in, line)) {
    // "# key = value   # remark": an option line, as opposed to prose comments.
    if (line.rfind("# ", 0) != 0) continue;
    const auto eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    const auto key = line.substr(2, eq - 2);
    if (key.empty() || key.find(' ') != std::string::npos) continue;
    keys.push_back(key);
    uncommented += line.substr(2) + "\n";
  }
  // All together, as a user who uncomments the lines they need might end up with.
  ok({"--config", write("all.toml", uncommented)});
  // Set by the unit's command line (a drop-in changes them), or for benchmarks only.
  const std::vector<std::string> elsewhere{"config", "data_dir", "shutdown_delay",
                                           "unsafe_no_fsync"};
  const auto help = config_help();
  std::istringstream help_lines(help);
  while (std::getline(help_lines, line)) {
    if (line.rfind("  --", 0) != 0) continue;
    auto name = line.substr(4, line.find(' ', 4) - 4);
    if (name == "help" || name == "version") continue;
    std::replace(name.begin(), name.end(), '-', '_');
    if (std::find(elsewhere.begin(), elsewhere.end(), name) != elsewhere.end()) continue;
    EXPECT_NE(std::find(keys.begin(), keys.end(), name), keys.end())
        << "deploy/hookd.toml has no line for --" << name;
  }
}

}  // namespace
}  // namespace hookd
