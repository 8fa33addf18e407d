// hookd: the server. Parses the configuration, builds the stack (tools/service: data dir,
// storage, catalog, admin token, deliveries, listeners), serves HTTP until SIGTERM/SIGINT, then
// drains and exits 0.
// Exit codes: 0 clean stop (and --help/--version), 1 start-up failure, 2 bad configuration
// (including a HOOKD_ADMIN_TOKEN too short on the first start).
// `hookd migrate --storage URI [--dry-run]` brings a PostgreSQL database's schema up to date and
// exits (docs/cluster.md, "Migrations"): 0 done, 1 failed, 2 bad usage.

#include "core/common/log.hpp"
#include "core/config/config.hpp"
#include "hookd/version.hpp"
#include "storage/postgres/connection.hpp"
#include "storage/postgres/migrations.hpp"
#include "tools/service/service.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <systemd/sd-daemon.h>

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace {

// A start that cannot go on: one fatal log line (docs/operations.md, "Logs"), like every other
// line hookd writes, with the reason and what to do in `error`.
void fail_line(std::string_view event, const std::string& message) {
  hookd::log_line({{"level", "fatal"}, {"event", event}, {"error", message}});
}

std::optional<std::string> env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

// The listening sockets systemd passed (LISTEN_FDS and LISTEN_FDNAMES, for this process only:
// LISTEN_PID), with their names; none when hookd was not socket-activated. The variables are
// unset, so that nothing started later takes them for its own.
std::vector<hookd::passed_socket> passed_sockets() {
  char** names = nullptr;
  const int count = sd_listen_fds_with_names(1, &names);
  if (count < 0) {
    hookd::log_line({{"level", "warn"},
                     {"event", "listen_fds_ignored"},
                     {"detail", "LISTEN_FDS or LISTEN_FDNAMES is malformed; binding --listen"}});
  }
  std::vector<hookd::passed_socket> out;
  for (int i = 0; i < count; ++i) {
    out.push_back({SD_LISTEN_FDS_START + i, names != nullptr ? names[i] : "unknown"});
  }
  if (names != nullptr) {
    for (int i = 0; i < count; ++i) std::free(names[i]);
    std::free(static_cast<void*>(names));
  }
  return out;
}

// SIGHUP: the configuration is read again (file, environment, flags) and what can change while
// running is applied: the log level here, the TLS files in the service. A configuration that no
// longer parses is logged and changes nothing (docs/operations.md, "Signals and shutdown").
void reload(hookd::service& stack, const std::vector<std::string>& args) {
  const auto parsed = hookd::parse_config(args, env);
  if (const auto* error = std::get_if<std::string>(&parsed)) {
    hookd::log_line({{"level", "error"},
                     {"event", "reload_failed"},
                     {"signal", "SIGHUP"},
                     {"error", *error},
                     {"detail", "the configuration in use stays"}});
    return;
  }
  const auto& fresh = std::get<hookd::parsed_config>(parsed).values;
  boost::json::array reloaded;
  if (fresh.min_log_level != hookd::current_log_level()) {
    hookd::set_log_level(fresh.min_log_level);
    reloaded.emplace_back("log-level");
  }
  for (const auto& name : stack.reload(fresh)) reloaded.emplace_back(name);
  hookd::log_line({{"event", "reload"},
                   {"signal", "SIGHUP"},
                   {"reloaded", std::move(reloaded)},
                   {"logLevel", hookd::to_string(hookd::current_log_level())}});
}

// The stack comes from the composition root (tools/service); this adds the process: systemd's
// sockets, notifications and watchdog, the reload and the stop signals.
int run(const hookd::config& cfg, const std::vector<std::string>& args) {
  hookd::service_options options;
  options.settings = cfg;
  options.master_key = env("HOOKD_MASTER_KEY");
  options.admin_token = env("HOOKD_ADMIN_TOKEN");
  options.passed_sockets = passed_sockets();
  // WatchdogSec= in the unit (WATCHDOG_USEC, WATCHDOG_PID): ping at half the timeout from the
  // main listener's event loop (docs/operations.md, "Watchdog").
  std::uint64_t watchdog_usec = 0;
  if (sd_watchdog_enabled(1, &watchdog_usec) > 0 && watchdog_usec > 0) {
    options.keepalive = [] {
      sd_notify(0, "WATCHDOG=1");
    };
    options.keepalive_interval = std::chrono::microseconds(watchdog_usec / 2);
  }
  auto opened = hookd::service::open(std::move(options));
  if (auto* failed = std::get_if<hookd::service_failure>(&opened)) {
    fail_line("start_failed", "hookd: " + failed->message);
    return failed->exit_code;
  }
  hookd::service& stack = *std::get<std::unique_ptr<hookd::service>>(opened);
  stack.start();
  sd_notify(0, "READY=1");

  // SIGTERM/SIGINT/SIGHUP were blocked in main before any thread started, so they stay pending
  // until this sigwait picks them up. SIGHUP reloads what can be reloaded and hookd carries on
  // (its default action would end the process, and `Restart=on-failure` would not bring it back
  // after a clean signal exit; docs/operations.md, "Signals and shutdown").
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  int signal_number = 0;
  for (;;) {
    sigwait(&signals, &signal_number);
    if (signal_number != SIGHUP) break;
    reload(stack, args);
  }

  const auto delay = cfg.shutdown_delay;
  hookd::log_line({{"event", "stopping"},
                   {"signal", signal_number == SIGINT ? "SIGINT" : "SIGTERM"},
                   {"shutdownDelayMs", delay.count()},
                   {"drainTimeoutMs", cfg.drain_timeout.count()}});
  // /readyz answers 503 from now on; requests are still served for --shutdown-delay, so that a
  // load balancer's health check takes this node out of rotation before it stops accepting
  // (docs/operations.md, "Behind a load balancer"). A second SIGTERM or SIGINT cuts the delay
  // short; SIGHUP waits until the stop is over.
  stack.drain();
  sd_notify(0, "STOPPING=1");
  if (delay.count() > 0) {
    const auto deadline = std::chrono::steady_clock::now() + delay;
    for (;;) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) break;
      const auto left_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      timespec wait{};
      wait.tv_sec = static_cast<time_t>(left_ns / 1'000'000'000);
      wait.tv_nsec = static_cast<long>(left_ns % 1'000'000'000);
      const int got = sigtimedwait(&signals, nullptr, &wait);
      if (got == SIGTERM || got == SIGINT) break;
    }
  }
  stack.stop();
  return 0;
}

constexpr std::string_view kMigrateUsage =
    "usage: hookd migrate --storage postgresql://... [--config FILE] [--dry-run]\n"
    "  Applies the pending schema migrations to the PostgreSQL database (docs/cluster.md) and\n"
    "  prints one JSON line per migration: version, name, applied (true: by this run),\n"
    "  appliedAt. --storage defaults to $HOOKD_STORAGE, then the config file's `storage`.\n"
    "  --dry-run  print the pending migrations' SQL; change nothing\n";

// `hookd migrate`: see the top of this file.
int migrate_command(const std::vector<std::string>& args) {
  // --storage is the server's option (flag, HOOKD_STORAGE, the config file's `storage`), read
  // and checked the same way; --config names the file as for the server.
  std::vector<std::string> options;
  bool dry_run = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--dry-run") {
      dry_run = true;
    } else if (a == "--help" || a == "-h") {
      std::cout << kMigrateUsage;
      return 0;
    } else if ((a == "--storage" || a == "--config") && i + 1 < args.size()) {
      options.push_back(a);
      options.push_back(args[++i]);
    } else if (a.starts_with("--storage=") || a.starts_with("--config=")) {
      options.push_back(a);
    } else {
      std::cerr << "hookd migrate: unknown argument \"" << a << "\"\n" << kMigrateUsage;
      return 2;
    }
  }
  const auto parsed = hookd::parse_config(options, env);
  if (const auto* error = std::get_if<std::string>(&parsed)) {
    std::cerr << *error << "\n" << kMigrateUsage;
    return 2;
  }
  const std::string uri = std::get<hookd::parsed_config>(parsed).values.storage;
  if (uri.empty()) {
    std::cerr << "hookd migrate: --storage (or HOOKD_STORAGE) must be a postgresql:// URI\n"
              << kMigrateUsage;
    return 2;
  }
  auto conn = hookd::pg::connection::open(uri);
  if (!conn) {
    fail_line("migrate_failed", "hookd migrate: " + conn.error().detail);
    return 1;
  }
  if (dry_run) {
    auto pending = hookd::pg::pending_migrations(*conn);
    if (!pending) {
      fail_line("migrate_failed", "hookd migrate: " + pending.error().detail);
      return 1;
    }
    if (pending->empty()) std::cout << "-- no pending migrations\n";
    for (const auto& m : *pending) {
      std::cout << "-- migration " << m.version << " (" << m.name << ")\n" << m.sql << "\n";
    }
    return 0;
  }
  auto done = hookd::pg::migrate(*conn);
  if (!done) {
    fail_line("migrate_failed", "hookd migrate: " + done.error().detail);
    return 1;
  }
  for (const auto& m : *done) {
    boost::json::object line{{"version", m.version}, {"name", m.name}, {"applied", m.applied_now}};
    if (m.applied_at) line["appliedAt"] = *m.applied_at;
    std::cout << boost::json::serialize(line) << "\n";
  }
  return 0;
}

}  // namespace

#if defined(HOOKD_JEMALLOC)
// jemalloc's settings unless MALLOC_CONF overrides them (docs/operations.md, "Memory allocator"):
// a background thread hands freed pages back to the system on jemalloc's decay schedule (10 s),
// also while hookd is idle after a burst, instead of only when later allocations come by; one
// such thread is plenty for hookd's few arenas.
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "background_thread:true,max_background_threads:1";
}
#endif

int main(int argc, char** argv) {
  // Block the stop and reload signals in every thread (threads inherit the mask); main sigwaits
  // for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args.front() == "migrate") {
    return migrate_command(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  const auto parsed = hookd::parse_config(args, env);
  if (const auto* error = std::get_if<std::string>(&parsed)) {
    fail_line("bad_configuration", *error);
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
  hookd::set_log_level(cfg.values.min_log_level);
  try {
    return run(cfg.values, args);
  } catch (const std::exception& e) {
    fail_line("fatal", std::string("hookd: ") + e.what());
    return 1;
  }
}
