#pragma once
// What the benchmarks share: a mkdtemp directory that removes itself, hookd's stack in it (see
// stack below), and blocking helpers that turn the catalog's completions into values (set-up
// only: they wait on a future, which is fine outside the timed loops).
//
// Not thread-safe by itself: build a stack on one thread, then read it from many.

#include "core/catalog/catalog.hpp"
#include "core/catalog/entities.hpp"
#include "core/catalog/validation.hpp"
#include "core/common/completion.hpp"
#include "tools/service/service.hpp"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace hookd::bench {

// xorshift64: a cheap (per-thread) index generator, so that a loop measures what it calls, not
// an RNG. The seed must not be zero.
struct xorshift {
  std::uint64_t s;
  std::uint64_t next() noexcept {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class temp_dir {
 public:
  temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/hookd-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

// hookd::wait_for for one catalog write, throwing when it fails, since a benchmark whose set-up
// failed measures nothing.
template <class T, class Start>
T wait_for(Start start) {
  auto r = hookd::wait_for<T>(std::move(start));
  if (!r) throw std::runtime_error("catalog write failed: " + r.error().detail);
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

inline webhook_input sample_webhook(const std::string& name);  // defined below

// hookd's stack from the composition root (tools/service), opened but not started: storage,
// catalog and delivery log with their writers running, no listener serving and no dispatcher
// sending (benchmarks never send to the sample webhooks' hosts); plus one organization with one
// project.
struct stack {
  // `sync`: fsync every batch (the production setting) or not (read benchmarks, where only the
  // published in-memory state matters and the disk would only add noise to the writers).
  explicit stack(bool sync, std::size_t max_webhooks_per_project = 100) {
    options.settings.data_dir = (dir.path() / "data").string();
    options.settings.listen_port = 0;
    options.settings.threads = 1;
    options.settings.unsafe_no_fsync = !sync;
    options.settings.max_webhooks_per_project = max_webhooks_per_project;
    options.admin_token = std::string(kAdminToken);
    options.log = [](const boost::json::object&) {
    };
    open();
    org = wait_for<std::shared_ptr<const organization>>([&](auto done) {
            cat->create_organization({.name = "Bench Org"}, std::move(done));
          })->id;
    project = add_project("bench");
  }

  // Stops the stack (writers drained, RocksDB closed) and opens it again over the same data dir,
  // as a restart of hookd would.
  void reopen() {
    svc.reset();
    open();
  }
  stack(const stack&) = delete;
  stack& operator=(const stack&) = delete;

  static constexpr std::string_view kAdminToken = "hkd_bench-admin-token-0123456789abcdefABCDEF";

  object_id add_project(const std::string& slug) {
    project_input in;
    in.name = "Project " + slug;
    in.slug = slug;
    return wait_for<std::shared_ptr<const hookd::project>>(
               [&](auto done) { cat->create_project(org, std::move(in), std::move(done)); })
        ->id;
  }

  // `n` projects created concurrently, so that they share fsyncs through group commit.
  std::vector<object_id> add_projects(const std::string& prefix, std::size_t n) {
    std::vector<std::promise<result<std::shared_ptr<const hookd::project>>>> done(n);
    for (std::size_t i = 0; i < n; ++i) {
      project_input in;
      in.name = "Project " + prefix + std::to_string(i);
      in.slug = prefix + std::to_string(i);
      cat->create_project(org, std::move(in),
                          [&promise = done[i]](result<std::shared_ptr<const hookd::project>> r) {
                            promise.set_value(std::move(r));
                          });
    }
    std::vector<object_id> ids;
    ids.reserve(n);
    for (auto& d : done) {
      auto r = d.get_future().get();
      if (!r) throw std::runtime_error("create_project failed: " + r.error().detail);
      ids.push_back((*r)->id);
    }
    return ids;
  }

  // A token for `org` with `scopes`, whose string is `secret`.
  std::shared_ptr<const api_token> add_token(const std::string& secret, scope_set scopes) {
    token_input in;
    in.name = "bench token";
    in.organizations = {org};
    in.scopes = scopes;
    return wait_for<created_token>(
               [&](auto done) { cat->create_token(std::move(in), secret, std::move(done)); })
        .token;
  }

  std::shared_ptr<const webhook> add_webhook(const object_id& proj, webhook_input in) {
    return wait_for<std::shared_ptr<const webhook>>(
        [&](auto done) { cat->create_webhook(org, proj, std::move(in), std::move(done)); });
  }

  // `n` sample_webhook()s in `proj`, created concurrently so that they share fsyncs.
  std::vector<std::shared_ptr<const webhook>> add_webhooks(const object_id& proj, std::size_t n) {
    std::vector<std::promise<result<std::shared_ptr<const webhook>>>> done(n);
    for (std::size_t i = 0; i < n; ++i) {
      cat->create_webhook(org, proj, sample_webhook("hook " + std::to_string(i)),
                          [&promise = done[i]](result<std::shared_ptr<const webhook>> r) {
                            promise.set_value(std::move(r));
                          });
    }
    std::vector<std::shared_ptr<const webhook>> hooks;
    hooks.reserve(n);
    for (auto& d : done) {
      auto r = d.get_future().get();
      if (!r) throw std::runtime_error("create_webhook failed: " + r.error().detail);
      hooks.push_back(std::move(*r));
    }
    return hooks;
  }

  void open() {
    auto opened = service::open(options);
    if (auto* failed = std::get_if<service_failure>(&opened)) {
      throw std::runtime_error("cannot open the stack: " + failed->message);
    }
    svc = std::move(std::get<std::unique_ptr<service>>(opened));
    cat = &svc->cat();
    store = &svc->store();
    deliveries = &svc->deliveries();
  }

  temp_dir dir;
  service_options options;
  std::unique_ptr<service> svc;  // stopped by its destructor: writers drained, RocksDB closed
  catalog* cat = nullptr;
  storage* store = nullptr;
  delivery_engine* deliveries = nullptr;
  object_id org;
  object_id project;
};

// A realistic webhook: 3 custom headers, 3 event patterns, an https URL.
inline webhook_input sample_webhook(const std::string& name) {
  webhook_input in;
  in.name = name;
  in.url = "https://hooks.example.com/services/T024BE7LD/B08F3QZ1X/incoming";
  in.headers = {{"X-Tenant", "acme-production"},
                {"X-Api-Version", "2024-06-01"},
                {"Authorization", "Basic YmVuY2g6c2VjcmV0LXZhbHVlLWZvci1iZW5jaA=="}};
  in.events = {"invoice.paid", "invoice.payment_failed", "customer.*"};
  return in;
}

}  // namespace hookd::bench
