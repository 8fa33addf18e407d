// hookd: the server. Parses the configuration, opens the data dir, loads the catalog, makes
// sure an admin token exists, serves HTTP until SIGTERM/SIGINT, then drains and exits 0.
// Exit codes: 0 clean stop (and --help/--version), 1 start-up failure, 2 bad configuration
// (including a HOOKD_ADMIN_TOKEN too short on the first start).

#include "core/catalog/catalog.hpp"
#include "core/catalog/entities.hpp"
#include "core/config/config.hpp"
#include "core/delivery/delivery_log.hpp"
#include "hookd/version.hpp"
#include "http/api/app.hpp"
#include "http/outbound/dispatcher.hpp"
#include "http/server/metrics.hpp"
#include "http/server/server.hpp"
#include "storage/data_dir.hpp"
#include "storage/rocksdb_storage.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <systemd/sd-daemon.h>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

void log_line(const boost::json::object& line) {
  auto text = boost::json::serialize(line);
  text += '\n';
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

void fail_line(const std::string& message) {
  std::fprintf(stderr, "hookd: %s\n", message.c_str());
}

std::optional<std::string> env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

std::string url_of(const boost::asio::ip::tcp::endpoint& ep) {
  const auto host = ep.address().to_string();
  return "http://" + (ep.address().is_v6() ? "[" + host + "]" : host) + ":" +
         std::to_string(ep.port());
}

// Connections the --metrics-listen listener serves at once: scrapers and probes need a handful,
// and a scan of that port holds no more descriptors than this.
constexpr std::size_t kOpsMaxConnections = 64;

// The shortest HOOKD_ADMIN_TOKEN accepted: 32 characters, what `openssl rand -base64 32` gives
// with room to spare (44), so that a chosen admin token is no easier to guess than a generated one.
constexpr std::size_t kMinAdminTokenChars = 32;

// The first start on an empty data dir creates the admin token: HOOKD_ADMIN_TOKEN when set (at
// least kMinAdminTokenChars, else exit 2), else a generated one, written to
// <data-dir>/admin-token (0600) and never logged: the log names the file. The file is written
// before the token is created, so a crash in between leaves no admin nobody can reach: the next
// start generates again and overwrites the file. Returns the exit code, 0 to go on.
int bootstrap_admin(hookd::catalog& cat, const std::filesystem::path& data_dir) {
  const auto token_file = data_dir / "admin-token";
  if (cat.has_admin_token()) {
    boost::json::object line{{"event", "admin_token"}, {"source", "existing"}};
    line["file"] = std::filesystem::exists(token_file) ? boost::json::value(token_file.string())
                                                       : boost::json::value(nullptr);
    log_line(line);
    return 0;
  }

  auto secret = env("HOOKD_ADMIN_TOKEN");
  if (secret && secret->empty()) secret.reset();
  const bool generated = !secret;
  if (secret && secret->size() < kMinAdminTokenChars) {
    fail_line("HOOKD_ADMIN_TOKEN is " + std::to_string(secret->size()) +
              " characters; an admin token needs at least " + std::to_string(kMinAdminTokenChars) +
              ": make one with `openssl rand -base64 32`");
    return 2;
  }
  if (generated) {
    secret = hookd::generate_api_token();
    if (auto written = hookd::write_admin_token_file(data_dir, *secret); !written) {
      fail_line("cannot write " + token_file.string() + ": " + written.error().detail);
      return 1;
    }
  }

  hookd::token_input in;
  in.name = "admin";
  in.scopes.add(hookd::scope::admin);
  std::promise<hookd::result<hookd::created_token>> done;
  auto created = done.get_future();
  cat.create_token(std::move(in), secret, [&done](hookd::result<hookd::created_token> r) {
    done.set_value(std::move(r));
  });
  const auto r = created.get();
  if (!r) {
    fail_line("cannot create the admin token: " + r.error().detail);
    return 1;
  }

  boost::json::object line{{"event", "admin_token"}};
  if (generated) {
    line["source"] = "generated";
    line["file"] = token_file.string();  // the token itself stays out of logs and journals
  } else {
    line["source"] = "HOOKD_ADMIN_TOKEN";
  }
  log_line(line);
  return 0;
}

int run(const hookd::config& cfg) {
  const std::filesystem::path data_dir = cfg.data_dir;
  if (auto ok = hookd::ensure_data_dir(data_dir); !ok) {
    fail_line(ok.error().detail);
    return 1;
  }

  auto opened = hookd::open_rocksdb_storage((data_dir / "db").string(),
                                            hookd::rocksdb_options{.sync = !cfg.unsafe_no_fsync});
  if (!opened) {
    fail_line(opened.error().detail);
    return 1;
  }
  std::unique_ptr<hookd::storage> store = std::move(*opened);
  if (cfg.unsafe_no_fsync) {
    log_line({{"level", "warn"},
              {"event", "unsafe_no_fsync"},
              {"detail", "writes are not fsynced: a crash can lose acknowledged changes"}});
  }

  const auto master_env = env("HOOKD_MASTER_KEY");
  auto key = hookd::load_or_create_master_key(
      data_dir, master_env ? std::optional<std::string_view>(*master_env) : std::nullopt);
  if (!key) {
    fail_line(key.error().detail);
    return 1;
  }

  {
    hookd::catalog_options options;
    options.max_webhooks_per_project = cfg.max_webhooks_per_project;
    options.master_key = *key;
    hookd::catalog cat(*store, options);

    const auto load_started = std::chrono::steady_clock::now();
    const auto counts = cat.load();
    if (!counts) {
      fail_line("cannot load the catalog: " + counts.error().detail);
      return 1;
    }
    const auto load_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - load_started)
                             .count();
    log_line({{"event", "catalog_loaded"},
              {"organizations", counts->organizations},
              {"projects", counts->projects},
              {"tokens", counts->tokens},
              {"webhooks", counts->webhooks},
              {"ms", load_ms}});
    cat.start();

    if (const int code = bootstrap_admin(cat, data_dir); code != 0) {
      cat.stop();
      return code;
    }

    // Events and deliveries: the log puts every pending delivery back on its scheduler.
    hookd::delivery_log_options log_options;
    log_options.retry = hookd::retry_policy(cfg.retry_schedule);
    log_options.scheduling.max_in_flight = cfg.max_inflight_deliveries;
    log_options.scheduling.max_in_flight_per_webhook = cfg.max_inflight_per_webhook;
    log_options.scheduling.max_in_flight_per_organization = cfg.max_inflight_per_organization;
    hookd::delivery_log deliveries(*store, cat, log_options);
    const auto log_started = std::chrono::steady_clock::now();
    const auto log_counts = deliveries.load();
    if (!log_counts) {
      fail_line("cannot load the delivery log: " + log_counts.error().detail);
      cat.stop();
      return 1;
    }
    log_line({{"event", "deliveries_loaded"},
              {"events", log_counts->events},
              {"deliveries", log_counts->deliveries},
              {"pending", log_counts->pending},
              {"attempts", log_counts->attempts},
              {"idempotencyKeys", log_counts->idempotency_keys},
              {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - log_started)
                         .count()}});
    deliveries.start();

    hookd::http::dispatcher_options dispatch_options;
    dispatch_options.client.total_timeout = cfg.delivery_timeout;
    dispatch_options.client.connect_timeout =
        std::min(dispatch_options.client.connect_timeout, cfg.delivery_timeout);
    dispatch_options.client.tls_handshake_timeout =
        std::min(dispatch_options.client.tls_handshake_timeout, cfg.delivery_timeout);
    dispatch_options.client.allow_private_targets = cfg.allow_private_targets;
    dispatch_options.client.user_agent = std::string("hookd/") + std::string(hookd::kVersion);
    hookd::http::dispatcher dispatch(deliveries, cat, dispatch_options);
    if (cfg.allow_private_targets) {
      log_line({{"level", "warn"},
                {"event", "allow_private_targets"},
                {"detail", "deliveries may go to loopback and private addresses"}});
    }

    hookd::http::metrics stats;
    hookd::http::app shared{cat, stats, cfg.max_body_bytes};
    shared.store = store.get();
    shared.deliveries = &deliveries;
    shared.delivery_stats = &dispatch.stats();
    // With --metrics-listen, /metrics leaves the main listener (a 404 there, like any unknown
    // path) for a second one that serves it with the probes, on one thread.
    hookd::http::router routes;
    if (cfg.metrics_listen) {
      hookd::http::register_health_routes(routes, shared);
    } else {
      hookd::http::register_ops_routes(routes, shared);
    }
    hookd::http::register_api_routes(routes, shared);

    hookd::http::server_options server_options;
    server_options.host = cfg.listen_host;
    server_options.port = cfg.listen_port;
    server_options.threads = cfg.threads;
    server_options.max_connections = cfg.max_connections;
    server_options.max_body_bytes = cfg.max_body_bytes;
    server_options.header_timeout = cfg.header_timeout;
    server_options.idle_timeout = cfg.idle_timeout;
    server_options.drain_timeout = cfg.drain_timeout;
    hookd::http::server http(server_options, routes, shared);

    hookd::http::router ops_routes;
    std::optional<hookd::http::server> ops_http;
    if (cfg.metrics_listen) {
      hookd::http::register_ops_routes(ops_routes, shared);
      hookd::http::server_options ops_options = server_options;
      ops_options.host = cfg.metrics_listen->host;
      ops_options.port = cfg.metrics_listen->port;
      ops_options.threads = 1;
      ops_options.max_connections = kOpsMaxConnections;
      ops_http.emplace(ops_options, ops_routes, shared);
    }

    const auto endpoint = http.listen();
    const auto ops_endpoint =
        ops_http ? ops_http->listen() : hookd::result<boost::asio::ip::tcp::endpoint>();
    for (const auto* bound : {&endpoint, &ops_endpoint}) {
      if (!*bound) {
        fail_line(bound->error().detail);
        deliveries.stop();
        cat.stop();
        return 1;
      }
    }
    http.start();
    if (ops_http) ops_http->start();
    dispatch.start();
    const auto token_file = data_dir / "admin-token";
    log_line({{"event", "listening"},
              {"address", url_of(*endpoint)},
              {"metricsAddress",
               ops_http ? boost::json::value(url_of(*ops_endpoint)) : boost::json::value(nullptr)},
              {"version", hookd::kVersion},
              {"dataDir", data_dir.string()},
              {"adminTokenFile", std::filesystem::exists(token_file)
                                     ? boost::json::value(token_file.string())
                                     : boost::json::value(nullptr)}});
    shared.ready = true;
    sd_notify(0, "READY=1");

    // SIGTERM/SIGINT were blocked in main before any thread started, so they stay pending
    // until this sigwait picks them up.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    int signal_number = 0;
    sigwait(&signals, &signal_number);

    log_line({{"event", "stopping"}, {"signal", signal_number == SIGINT ? "SIGINT" : "SIGTERM"}});
    shared.draining = true;
    sd_notify(0, "STOPPING=1");
    http.stop();
    if (ops_http) ops_http->stop();
    // Attempts in flight finish (bounded by the delivery timeout); one cut short is attempted
    // again after the next start.
    if (!dispatch.stop()) {
      log_line({{"level", "warn"},
                {"event", "dispatcher_stop_timeout"},
                {"detail", "attempts still in flight were abandoned; they will be retried"}});
    }
    deliveries.stop();  // drains queued writes
    cat.stop();
  }
  store.reset();  // closes RocksDB
  log_line({{"event", "stopped"}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Block the stop signals in every thread (threads inherit the mask); main sigwaits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::vector<std::string> args(argv + 1, argv + argc);
  const auto parsed = hookd::parse_config(args, env);
  if (const auto* error = std::get_if<std::string>(&parsed)) {
    std::fprintf(stderr, "%s\n", error->c_str());
    return 2;
  }
  const auto& cfg = std::get<hookd::parsed_config>(parsed);
  switch (cfg.action) {
    case hookd::config_action::help:
      std::cout << hookd::config_help();
      return 0;
    case hookd::config_action::version:
      std::cout << "hookd " << hookd::kVersion << "\n";
      return 0;
    case hookd::config_action::run:
      break;
  }
  try {
    return run(cfg.values);
  } catch (const std::exception& e) {
    fail_line(std::string("fatal: ") + e.what());
    return 1;
  }
}
