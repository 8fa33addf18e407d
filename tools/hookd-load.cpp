// hookd-load: the load generator people point at hookd (issue #4). The command line and the JSON
// it prints are agreed with bench/compare.sh (see kHelp in tools/load/load_options.hpp).
//
// Shape: a controller coroutine on shard 0 (main's thread) provisions what the scenario needs,
// spreads --connections worker coroutines over --threads shards (one io_context and thread each),
// prints a progress line a second, waits for outstanding deliveries (deliver), cleans up, and
// prints the summary. A worker owns one keep-alive connection and sends one request at a time,
// either as fast as answers come (closed loop) or on a fixed schedule of intended send times
// (open loop, --rate), in which case latency counts from the intended time, so a stalled server
// cannot hide its stall by slowing the client down (coordinated omission).

#include "tools/load/load_deliver.hpp"
#include "tools/load/load_http.hpp"
#include "tools/load/load_options.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <random>

namespace hookd::load {
namespace {

namespace json = boost::json;

constexpr auto kConnectBackoff = 100ms;  // after a refused connect, so a dead server is no spin
constexpr auto kConnectRetries = 3;      // for setup and cleanup requests, on connect errors only
constexpr std::size_t kMaxProjectIdsShown = 100;

using http_response = bhttp::response<bhttp::string_body>;

// ---------------------------------------------------------------- output

// Boost.JSON writes every double in exponent form ("4.1175E3"); the figures here read better as
// decimals with at most three places ("4117.5"), which is still JSON.
void write_json(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& member : v.get_object()) {
        if (!first) out += ',';
        first = false;
        out += json::serialize(json::string(member.key()));
        out += ':';
        write_json(out, member.value());
      }
      out += '}';
      break;
    }
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out += ',';
        first = false;
        write_json(out, item);
      }
      out += ']';
      break;
    }
    case json::kind::double_: {
      const double d = v.get_double();
      if (!std::isfinite(d)) {
        out += "null";
        break;
      }
      char buf[64];
      const int n = std::snprintf(buf, sizeof buf, "%.3f", d);
      std::string_view text(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
      while (text.size() > 2 && text.back() == '0' && text[text.size() - 2] != '.') {
        text.remove_suffix(1);
      }
      out += text;
      break;
    }
    default:
      out += json::serialize(v);
  }
}

void print_line(std::FILE* to, const json::value& v) {
  std::string line;
  write_json(line, v);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), to);
  std::fflush(to);
}

double round_to(double value, double unit) {
  return std::round(value / unit) * unit;
}

double seconds_between(clock::time_point from, clock::time_point to) {
  return to <= from ? 0.0 : std::chrono::duration<double>(to - from).count();
}

// Why the run could not be done: printed as {"error", "hint", "problem"?} on stderr, exit 1.
struct run_failure {
  std::string error;
  std::string hint;
  std::optional<json::value> problem;  // hookd's problem+json body, when there was one
};

run_failure http_failure(std::string_view what, const http_response& res) {
  run_failure f;
  f.error = std::string(what) + " failed: HTTP " + std::to_string(res.result_int());
  boost::system::error_code ec;
  json::value body = json::parse(res.body(), ec);
  if (!ec) {
    f.problem = std::move(body);
  } else if (!res.body().empty()) {
    f.error += ": " + res.body().substr(0, 300);
  }
  switch (res.result_int()) {
    case 401:
      f.hint = "check the token (--admin-token or --token)";
      break;
    case 403:
      f.hint = "the token lacks the scope or the organization this needs";
      break;
    case 404:
      f.hint = "check --organization and --project, and that --url points at hookd";
      break;
    case 409:
      f.hint =
          "a project is full: hookd allows --max-webhooks-per-project (default 100) webhooks per "
          "project; spread the load over more --projects";
      break;
    default:
      f.hint = "see the problem hookd answered";
  }
  return f;
}

// ---------------------------------------------------------------- webhooks in play

struct hook_ref {
  std::uint32_t project = 0;
  std::array<char, 24> id{};
  bool ours = false;  // created by this run: deleted at the end unless --keep

  std::string_view id_view() const { return {id.data(), id.size()}; }
};

std::optional<hook_ref> make_ref(std::size_t project, std::string_view id, bool ours) {
  if (!is_object_id(id)) return std::nullopt;
  hook_ref h;
  h.project = static_cast<std::uint32_t>(project);
  std::copy(id.begin(), id.end(), h.id.begin());
  h.ours = ours;
  return h;
}

// The webhooks requests can address. Thread-safe: creates add, deletes take, reads pick.
class hook_pool {
 public:
  void add(const hook_ref& h) {
    std::lock_guard lock(mutex_);
    hooks_.push_back(h);
  }
  std::optional<hook_ref> pick(std::uint64_t k) const {
    std::lock_guard lock(mutex_);
    if (hooks_.empty()) return std::nullopt;
    return hooks_[k % hooks_.size()];
  }
  std::optional<hook_ref> take(std::uint64_t k) {
    std::lock_guard lock(mutex_);
    if (hooks_.empty()) return std::nullopt;
    const std::size_t i = k % hooks_.size();
    const hook_ref h = hooks_[i];
    hooks_[i] = hooks_.back();
    hooks_.pop_back();
    return h;
  }
  std::vector<hook_ref> snapshot() const {
    std::lock_guard lock(mutex_);
    return hooks_;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return hooks_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<hook_ref> hooks_;
};

// ---------------------------------------------------------------- the run

struct app {
  app(load_options o, tcp::endpoint endpoint)
      : opt(std::move(o)),
        server(endpoint),
        timeout(std::chrono::duration_cast<clock::duration>(
            std::chrono::duration<double>(opt.timeout_s))),
        signals(init_shards(*this), SIGINT, SIGTERM),
        background(shards[0]->ioc.get_executor()) {}

  static asio::io_context& init_shards(app& a) {
    for (std::size_t i = 0; i < a.opt.threads; ++i) a.shards.push_back(std::make_unique<shard>(i));
    return a.shards[0]->ioc;
  }

  shard& home() { return *shards[0]; }

  load_options opt;
  tcp::endpoint server;
  clock::duration timeout;
  std::vector<std::unique_ptr<shard>> shards;
  asio::signal_set signals;
  wait_group background;  // watchdogs and the receiver

  // What the run talks to.
  std::optional<request_base> admin;  // --admin-token
  std::optional<request_base> run;    // the token the load uses
  std::string organization, token_id, token_secret;
  std::vector<std::string> projects;
  std::vector<std::string> webhooks_paths, events_paths;  // per project, after the URL prefix
  std::size_t setup_webhooks = 0;  // created by setup, or listed with --token

  // Built once before the load.
  std::vector<std::string> get_requests, list_requests, create_requests, patch_paths;
  std::string event_prefix;  // {"type":"...","data":{"seq":
  hook_pool pool;
  std::atomic<std::uint64_t> created{0};  // webhooks created during the load (refills included)

  // deliver
  std::unique_ptr<delivery_tracker> tracker;
  std::unique_ptr<delivery_receiver> receiver;

  // Control. `stop` and the counters are read by every worker; the rest is the controller's.
  std::atomic<bool> stop{false};
  std::atomic<clock::rep> stop_at{std::numeric_limits<clock::rep>::max()};
  std::atomic<std::uint64_t> issued{0};  // measured requests started, against --requests
  std::atomic<std::uint64_t> rotate{0};  // round robin over projects for creates and events
  int interrupts = 0;                    // SIGINT/SIGTERM seen (shard 0's thread)
  bool load_started = false;
  clock::time_point load_start{}, measure_start{}, measure_end = clock::time_point::max();
  clock::time_point load_end{};
  double drain_waited_s = 0;
  std::string cleanup = "skipped";
  std::uint64_t cleanup_failures = 0;
  int exit_code = 0;
};

void request_stop(app& a, clock::time_point when) {
  clock::rep expected = std::numeric_limits<clock::rep>::max();
  a.stop_at.compare_exchange_strong(expected, when.time_since_epoch().count());
  a.stop.store(true);  // after stop_at, which readers of `stop` then find set
}

void arm_signals(app& a) {
  a.signals.async_wait([&a](const boost::system::error_code& ec, int) {
    if (ec) return;
    ++a.interrupts;
    request_stop(a, clock::now());
    arm_signals(a);
  });
}

// Ends the pacing waits (stop) or every exchange in flight (hard cancel) on every shard.
void wake_all(app& a, bool hard) {
  for (auto& s : a.shards) {
    asio::post(s->ioc, [sh = s.get(), hard] {
      for (client_conn* c : sh->live) hard ? c->cancel() : c->wake();
    });
  }
}

bool is_success(unsigned status) {
  return status >= 200 && status <= 299;
}

// The id of the webhook a 201 created: from Location, else from the body.
std::optional<std::string> created_id(const http_response& res) {
  if (auto it = res.find(bhttp::field::location); it != res.end()) {
    const std::string_view location = it->value();
    const std::string_view id = location.substr(location.rfind('/') + 1);
    if (is_object_id(id)) return std::string(id);
  }
  boost::system::error_code ec;
  const json::value body = json::parse(res.body(), ec);
  if (!ec && body.is_object()) {
    if (const auto* id = body.as_object().if_contains("_id"); id && id->is_string()) {
      return std::string(id->get_string());
    }
  }
  return std::nullopt;
}

std::string json_string(std::string_view s) {
  return json::serialize(json::string(s));
}

// ---------------------------------------------------------------- setup and cleanup requests

// One request, tried again (up to kConnectRetries times) only when it could not connect, since
// nothing was sent then.
asio::awaitable<outcome> call(client_conn& conn, std::string_view request) {
  outcome r = outcome::connect_error;
  for (int attempt = 0; attempt < kConnectRetries; ++attempt) {
    r = co_await conn.exchange(request);
    if (r != outcome::connect_error) break;
    if (!co_await conn.sleep_until(clock::now() + 200ms)) break;
  }
  co_return r;
}

run_failure transport_failure(const app& a, std::string_view what, const client_conn& conn) {
  return {std::string(what) + ": cannot get an answer from " + a.opt.url.text + " (" +
              conn.last_error() + ")",
          "check that hookd runs and --url points at it", std::nullopt};
}

// Many independent requests (projects, webhooks, deletes) spread over the connections.
struct batch {
  std::string step;
  std::size_t count = 0;
  std::function<std::string(std::size_t)> build;  // the complete request bytes of job i
  // nullopt when the answer is what the job wanted.
  std::function<std::optional<run_failure>(std::size_t, const http_response&)> handle;
  bool best_effort = false;  // cleanup: count failures and go on
  int max_interrupts = 0;    // stop taking jobs once more signals than this arrived
  std::size_t next = 0, done = 0, failed = 0;
  std::optional<run_failure> failure;
};

asio::awaitable<void> batch_worker(app& a, batch& b) {
  client_conn conn(a.home(), a.server, a.timeout);
  while (!b.failure && b.next < b.count && a.interrupts <= b.max_interrupts) {
    const std::size_t i = b.next++;
    const std::string request = b.build(i);
    const outcome r = co_await call(conn, request);
    std::optional<run_failure> f;
    if (r != outcome::ok) {
      f = transport_failure(a, b.step, conn);
    } else {
      f = b.handle(i, conn.response());
    }
    if (f) {
      ++b.failed;
      if (!b.best_effort && !b.failure) b.failure = std::move(f);
    }
    ++b.done;
  }
}

// Runs the batch on shard 0 with up to --connections requests in flight and a progress line a
// second. Throws the first failure unless best_effort; an interruption leaves jobs undone.
asio::awaitable<void> run_batch(app& a, batch& b, std::string_view phase) {
  if (b.count == 0) co_return;
  wait_group workers(a.home().ioc.get_executor());
  const std::size_t n = std::min(a.opt.connections, b.count);
  for (std::size_t i = 0; i < n; ++i) {
    asio::co_spawn(a.home().ioc, batch_worker(a, b), workers.completion());
  }
  const auto started = clock::now();
  auto next_tick = started + 1s;
  while (workers.pending() > 0) {
    co_await workers.wait_until(next_tick);
    if (clock::now() >= next_tick) {
      if (!a.opt.quiet) {
        print_line(stderr, json::object{{"phase", phase},
                                        {"step", b.step},
                                        {"t", round_to(seconds_between(started, clock::now()), 1)},
                                        {"done", b.done},
                                        {"of", b.count}});
      }
      next_tick += 1s;
    }
  }
  if (!workers.first_error().empty()) {
    throw run_failure{b.step + ": internal error: " + workers.first_error(),
                      "please report this as a hookd-load bug", std::nullopt};
  }
  if (b.failure && !b.best_effort) throw *b.failure;
}

// One request from the controller; its answer, or a failure naming `what`.
asio::awaitable<const http_response*> single(app& a, client_conn& conn, std::string_view what,
                                             std::string request, unsigned expected) {
  const outcome r = co_await call(conn, request);
  if (r != outcome::ok) throw transport_failure(a, what, conn);
  if (conn.status() != expected) throw http_failure(what, conn.response());
  co_return &conn.response();
}

std::string webhook_body(std::string_view name, std::string_view url, std::string_view event,
                         std::string_view signing = "v1") {
  json::object body{{"name", name}, {"url", url}, {"events", json::array{json::string(event)}}};
  if (signing != "v1") body["signing"] = signing;  // v1 is the default: the body stays as it was
  return json::serialize(body);
}

std::string utc_now_text() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string random_hex(std::size_t digits) {
  std::random_device rd;
  std::string out;
  constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < digits; ++i) out += kHex[rd() % 16];
  return out;
}

std::string make_token_request(const app& a, const std::string& label) {
  json::array scopes{"webhooks:read", "webhooks:write", "events:write", "deliveries:read"};
  json::object body{{"name", label},
                    {"organizations", json::array{json::string(a.organization)}},
                    {"scopes", std::move(scopes)}};
  return a.admin->build("POST", "/api/v1/tokens", json::serialize(body));
}

asio::awaitable<void> provision(app& a, client_conn& conn) {
  // Requests are built before each co_await: GCC 12 mishandles string literals inside braced
  // initializers that are part of an awaited expression ("array used as initializer").
  const std::string label = "hookd-load " + utc_now_text();
  std::string request = a.admin->build("POST", "/api/v1/organizations",
                                       json::serialize(json::object{{"name", label}}));
  const http_response* res =
      co_await single(a, conn, "creating the organization", std::move(request), 201);
  a.organization = std::string(json::parse(res->body()).at("_id").as_string());

  a.projects.assign(a.opt.projects, std::string());
  const std::string slug_base = "hookd-load-" + random_hex(8) + "-";
  const std::string projects_path = "/api/v1/organizations/" + a.organization + "/projects";
  batch projects;
  projects.step = "projects";
  projects.count = a.opt.projects;
  projects.build = [&a, &slug_base, &projects_path](std::size_t i) {
    return a.admin->build("POST", projects_path,
                          json::serialize(json::object{{"name", "hookd-load " + std::to_string(i)},
                                                       {"slug", slug_base + std::to_string(i)}}));
  };
  projects.handle = [&a](std::size_t i, const http_response& r) -> std::optional<run_failure> {
    if (r.result_int() != 201) return http_failure("creating a project", r);
    a.projects[i] = std::string(json::parse(r.body()).at("_id").as_string());
    return std::nullopt;
  };
  co_await run_batch(a, projects, "setup");
  if (a.interrupts > 0) {
    throw run_failure{"interrupted during setup", "nothing was measured", std::nullopt};
  }

  request = make_token_request(a, label);
  res = co_await single(a, conn, "creating the token", std::move(request), 201);
  const json::value token = json::parse(res->body());
  a.token_id = std::string(token.at("_id").as_string());
  a.token_secret = std::string(token.at("token").as_string());
  a.run.emplace(a.opt.url, a.token_secret);
}

// W webhooks per project (deliver: pointing at the receiver, with their secrets kept).
asio::awaitable<void> create_webhooks(app& a, std::size_t per_project, std::string receiver_base) {
  batch hooks;
  hooks.step = "webhooks";
  hooks.count = a.projects.size() * per_project;
  hooks.build = [&a, per_project, &receiver_base](std::size_t i) {
    const std::size_t p = i / per_project;
    const std::string url =
        receiver_base.empty() ? a.opt.target : receiver_base + std::to_string(i);
    return a.run->build("POST", a.webhooks_paths[p],
                        webhook_body("hookd-load " + std::to_string(i % per_project), url,
                                     a.opt.event_type, a.opt.signing));
  };
  hooks.handle = [&a, per_project](std::size_t i,
                                   const http_response& r) -> std::optional<run_failure> {
    if (r.result_int() != 201) return http_failure("creating a webhook", r);
    const json::value body = json::parse(r.body());
    const auto ref = make_ref(i / per_project, body.at("_id").as_string(), true);
    if (!ref) return run_failure{"creating a webhook: no id in the answer", "", std::nullopt};
    a.pool.add(*ref);
    ++a.setup_webhooks;
    if (a.receiver) {
      // A v1a webhook is verified the way its receivers do: with its public key only.
      const json::value* key = body.as_object().if_contains("publicKey");
      auto signer = webhook_signer::create(
          std::string(key != nullptr ? key->as_string() : body.at("secret").as_string()));
      if (!signer) {
        return run_failure{"creating a webhook: unusable secret: " + signer.error().detail, "",
                           std::nullopt};
      }
      a.receiver->add_secret(i, std::move(*signer));
    }
    return std::nullopt;
  };
  co_await run_batch(a, hooks, "setup");
  if (a.interrupts > 0) {
    throw run_failure{"interrupted during setup", "nothing was measured", std::nullopt};
  }
}

asio::awaitable<void> setup(app& a) {
  client_conn conn(a.home(), a.server, a.timeout);
  const request_base probe(a.opt.url, a.opt.admin_token ? *a.opt.admin_token : *a.opt.token);
  const std::string ready = probe.build("GET", "/readyz");
  if (co_await call(conn, ready) != outcome::ok) {
    throw run_failure{"cannot connect to " + a.opt.url.text + ": " + conn.last_error(),
                      "start hookd, or check --url", std::nullopt};
  }
  if (conn.status() == 503) {
    throw run_failure{"hookd is not ready (/readyz answered 503)",
                      "wait until hookd has loaded its data, or check whether it is stopping",
                      std::nullopt};
  }

  if (a.opt.provisioning()) {
    a.admin.emplace(a.opt.url, *a.opt.admin_token);
    co_await provision(a, conn);
  } else {
    a.run.emplace(a.opt.url, *a.opt.token);
    a.organization = *a.opt.organization;
    a.projects = {*a.opt.project};
  }
  for (const auto& p : a.projects) {
    const std::string base = "/api/v1/organizations/" + a.organization + "/projects/" + p;
    a.webhooks_paths.push_back(base + "/settings/webhooks");
    a.events_paths.push_back(base + "/events");
  }

  std::string receiver_base;
  if (a.opt.kind == scenario::deliver) {
    a.tracker = std::make_unique<delivery_tracker>(a.opt.webhooks, a.projects.size());
    a.receiver = std::make_unique<delivery_receiver>(a.home().ioc, *a.tracker);
    receiver_base = "http://127.0.0.1:" + std::to_string(a.receiver->listen()) + "/d/";
  }

  const bool uses_existing = !a.opt.provisioning() && a.opt.kind != scenario::deliver &&
                             a.opt.kind != scenario::create && a.opt.kind != scenario::ingest;
  if (uses_existing) {
    std::string list_request = a.run->build("GET", a.webhooks_paths[0]);
    const http_response* res =
        co_await single(a, conn, "listing the project's webhooks", std::move(list_request), 200);
    boost::system::error_code ec;
    const json::value list = json::parse(res->body(), ec);
    if (ec || !list.is_array()) {
      throw run_failure{"listing the project's webhooks: the answer is not a JSON array", "",
                        std::nullopt};
    }
    for (const auto& hook : list.as_array()) {
      const auto* id = hook.is_object() ? hook.as_object().if_contains("_id") : nullptr;
      if (id && id->is_string()) {
        if (auto ref = make_ref(0, id->get_string(), false)) a.pool.add(*ref);
      }
    }
    a.setup_webhooks = a.pool.size();
  } else if (a.opt.provisioning() || a.opt.kind == scenario::deliver) {
    co_await create_webhooks(a, a.opt.webhooks, receiver_base);
  }

  if ((a.opt.kind == scenario::get || a.opt.kind == scenario::patch) && a.pool.size() == 0) {
    throw run_failure{"there are no webhooks to " + std::string(to_string(a.opt.kind)),
                      a.opt.provisioning() ? "give --webhooks 1 or more"
                                           : "create some in the project first (hookctl webhook "
                                             "create), or let hookd-load provision with "
                                             "--admin-token",
                      std::nullopt};
  }

  // Everything a request needs that does not change from one request to the next.
  const auto hooks = a.pool.snapshot();
  const auto hook_path = [&a](const hook_ref& h) {
    return a.webhooks_paths[h.project] + "/" + std::string(h.id_view());
  };
  if (a.opt.kind == scenario::get) {
    for (const auto& h : hooks) a.get_requests.push_back(a.run->build("GET", hook_path(h)));
  }
  if (a.opt.kind == scenario::patch) {
    for (const auto& h : hooks) a.patch_paths.push_back(hook_path(h));
  }
  const std::string create_body = webhook_body("hookd-load", a.opt.target, a.opt.event_type);
  for (const auto& path : a.webhooks_paths) {
    a.list_requests.push_back(a.run->build("GET", path));
    a.create_requests.push_back(a.run->build("POST", path, create_body));
  }
  a.event_prefix = "{\"type\":" + json_string(a.opt.event_type) + ",\"data\":{\"seq\":";

  if (a.receiver) a.receiver->start(a.background);
}

// The token first, so that nothing uses it any more, then the organization (whatever setup got
// to create in it). A second signal skips both.
asio::awaitable<void> delete_provisioned(app& a) {
  std::vector<std::string> targets;
  if (!a.token_id.empty()) targets.push_back("/api/v1/tokens/" + a.token_id);
  if (!a.organization.empty()) targets.push_back("/api/v1/organizations/" + a.organization);
  std::size_t done = 0;
  client_conn conn(a.home(), a.server, a.timeout);
  for (const std::string& target : targets) {
    if (a.interrupts > 1) break;
    const std::string request = a.admin->build("DELETE", target);
    const outcome r = co_await call(conn, request);
    if (r != outcome::ok || !is_success(conn.status())) ++a.cleanup_failures;
    ++done;
  }
  a.cleanup = done == targets.size() && a.cleanup_failures == 0 ? "done" : "skipped";
}

// Provisioned: revokes the token this run created and deletes its organization, which takes the
// projects, webhooks and deliveries with it. With --token: deletes the webhooks this run created
// that still exist.
asio::awaitable<void> clean_up(app& a) {
  if (a.opt.keep) {
    a.cleanup = "kept";
    co_return;
  }
  if (a.admin) {
    co_await delete_provisioned(a);
    co_return;
  }
  std::vector<hook_ref> ours;
  for (const auto& h : a.pool.snapshot()) {
    if (h.ours) ours.push_back(h);
  }
  batch deletes;
  deletes.step = "delete webhooks";
  deletes.count = a.run ? ours.size() : 0;
  deletes.best_effort = true;
  deletes.max_interrupts = 1;  // the first signal stopped the load; a second one skips this
  deletes.build = [&a, &ours](std::size_t i) {
    const hook_ref& h = ours[i];
    return a.run->build("DELETE", a.webhooks_paths[h.project] + "/" + std::string(h.id_view()));
  };
  deletes.handle = [](std::size_t, const http_response& r) -> std::optional<run_failure> {
    if (is_success(r.result_int()) || r.result_int() == 404) return std::nullopt;
    return http_failure("deleting a webhook", r);
  };
  co_await run_batch(a, deletes, "cleanup");
  a.cleanup_failures = deletes.failed;
  a.cleanup = deletes.done == deletes.count && a.cleanup_failures == 0 ? "done" : "skipped";
}

// ---------------------------------------------------------------- the load

struct worker_state {
  std::size_t index = 0;
  std::uint64_t turn = 0;
  std::uint64_t rng = 0;
  std::string request, path, body;

  std::uint64_t random() {  // xorshift64*: cheap and good enough to draw operations
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1DULL;
  }
};

// The k-th turn of worker i takes item (i + k * connections) % n: the connections walk the
// items in step without sharing a counter.
std::size_t spread(const app& a, const worker_state& w, std::size_t n) {
  return static_cast<std::size_t>((w.index + w.turn * a.opt.connections) % n);
}

op choose_op(const app& a, worker_state& w) {
  switch (a.opt.kind) {
    case scenario::get:
      return op::get;
    case scenario::list:
      return op::list;
    case scenario::create:
      return op::create;
    case scenario::patch:
      return op::patch;
    case scenario::del:
      return op::del;
    case scenario::ingest:
    case scenario::deliver:
      return op::ingest;
    case scenario::mix:
      break;
  }
  unsigned total = 0;
  for (unsigned weight : a.opt.mix) total += weight;
  auto draw = static_cast<unsigned>(w.random() % total);
  for (std::size_t i = 0; i < a.opt.mix.size(); ++i) {
    if (draw < a.opt.mix[i]) return static_cast<op>(i);
    draw -= a.opt.mix[i];
  }
  return op::get;
}

void build_hook_request(const app& a, worker_state& w, std::string_view method, const hook_ref& h,
                        std::string_view body = {}) {
  w.path.assign(a.webhooks_paths[h.project]);
  w.path += '/';
  w.path += h.id_view();
  w.request.clear();
  a.run->append(w.request, method, w.path, body);
}

void after_create(app& a, const client_conn& conn, std::size_t project) {
  if (conn.status() != 201) return;
  if (auto id = created_id(conn.response())) {
    if (auto ref = make_ref(project, *id, true)) {
      a.pool.add(*ref);
      ++a.created;
    }
  }
}

// One request of the scenario: prepares it, sends it, records it. `intended` is when it was due.
asio::awaitable<outcome> perform(app& a, shard& s, client_conn& conn, worker_state& w,
                                 clock::time_point intended, bool measured) {
  op o = choose_op(a, w);
  std::string_view bytes;
  std::size_t project = 0;
  std::optional<hook_ref> hook;
  std::uint64_t seq = 0;

  if (o == op::get) {
    if (!a.get_requests.empty()) {
      bytes = a.get_requests[spread(a, w, a.get_requests.size())];
    } else if ((hook = a.pool.pick(w.random()))) {
      build_hook_request(a, w, "GET", *hook);
      bytes = w.request;
    } else {
      o = op::create;  // mix with nothing left to read
    }
  } else if (o == op::patch) {
    w.body.assign("{\"name\":\"hookd-load ");
    w.body += std::to_string(w.turn * a.opt.connections + w.index);  // a new name every time
    w.body += "\"}";
    if (!a.patch_paths.empty()) {
      w.request.clear();
      a.run->append(w.request, "PATCH", a.patch_paths[spread(a, w, a.patch_paths.size())], w.body);
      bytes = w.request;
    } else if ((hook = a.pool.pick(w.random()))) {
      build_hook_request(a, w, "PATCH", *hook, w.body);
      bytes = w.request;
    } else {
      o = op::create;
    }
  } else if (o == op::del) {
    hook = a.pool.take(w.random());
    if (!hook) {
      // Nothing left to delete: create one first, outside the measurement.
      project = static_cast<std::size_t>(a.rotate.fetch_add(1) % a.projects.size());
      const outcome r = co_await conn.exchange(a.create_requests[project]);
      const bool created = r == outcome::ok && conn.status() == 201;
      s.record(op::create, r, r == outcome::ok ? conn.status() : 0, measured && !created, intended,
               clock::now());
      if (!created) co_return r;
      const auto id = created_id(conn.response());
      if (id) hook = make_ref(project, *id, true);
      if (!hook) co_return r;
      ++a.created;
      intended = std::max(intended, clock::now());
    }
    build_hook_request(a, w, "DELETE", *hook);
    bytes = w.request;
  }
  if (o == op::list) {
    bytes = a.list_requests[spread(a, w, a.list_requests.size())];
  } else if (o == op::create) {
    project = static_cast<std::size_t>(a.rotate.fetch_add(1) % a.projects.size());
    bytes = a.create_requests[project];
  } else if (o == op::ingest) {
    if (a.tracker) {
      seq = a.tracker->begin_event(measured, intended);
    } else {
      seq = a.rotate.fetch_add(1);
    }
    project = static_cast<std::size_t>(seq % a.projects.size());
    w.body.assign(a.event_prefix);
    w.body += std::to_string(seq);
    w.body += "}}";
    w.request.clear();
    a.run->append(w.request, "POST", a.events_paths[project], w.body);
    bytes = w.request;
  }

  // The request goes to the kernel now (a connection opened first counts against hookd).
  if (o == op::ingest && a.tracker) a.tracker->sending(seq, wall_clock::now());
  const outcome r = co_await conn.exchange(bytes);
  const auto done = clock::now();
  const unsigned status = r == outcome::ok ? conn.status() : 0;
  if (r == outcome::cancelled) {
    if (o == op::del && hook) a.pool.add(*hook);  // may still exist: let cleanup try
    co_return r;
  }
  s.record(o, r, status, measured, intended, done);

  switch (o) {
    case op::create:
      if (r == outcome::ok) after_create(a, conn, project);
      break;
    case op::del:
      if (r != outcome::ok || (!is_success(status) && status != 404)) a.pool.add(*hook);
      break;
    case op::ingest:
      if (a.tracker && status == 202) {
        boost::system::error_code ec;
        const json::value body = json::parse(conn.response().body(), ec);
        const json::value* n = nullptr;
        if (!ec && body.is_object()) n = body.as_object().if_contains("deliveries");
        a.tracker->confirm(seq,
                           n && n->is_int64() ? static_cast<std::uint64_t>(n->get_int64()) : 0);
      }
      break;
    default:
      break;
  }
  co_return r;
}

clock::duration slot_offset(const app& a, std::uint64_t slot) {
  return std::chrono::duration_cast<clock::duration>(
      std::chrono::duration<double>(double(slot) / *a.opt.rate));
}

asio::awaitable<void> load_worker(app& a, shard& s, std::size_t index) {
  client_conn conn(s, a.server, a.timeout);
  worker_state w;
  w.index = index;
  w.rng = 0x9E3779B97F4A7C15ULL * (index + 1) | 1;
  const std::uint64_t connections = a.opt.connections;
  for (;; ++w.turn) {
    if (a.stop.load(std::memory_order_relaxed)) break;
    clock::time_point intended;
    if (a.opt.rate) {
      // Slot j of the whole schedule is due at load_start + j / rate and is this worker's when
      // j % connections == index. A worker that is behind sends at once, late.
      intended = a.load_start + slot_offset(a, index + w.turn * connections);
      if (intended >= a.measure_end) break;
      if (clock::now() < intended && !co_await conn.sleep_until(intended)) break;
    } else {
      intended = clock::now();
      if (intended >= a.measure_end) break;
    }
    const bool measured = intended >= a.measure_start;
    if (measured && a.opt.requests && a.issued.fetch_add(1) >= *a.opt.requests) {
      request_stop(a, clock::now());
      break;
    }
    const outcome r = co_await perform(a, s, conn, w, intended, measured);
    if (r == outcome::cancelled) break;
    if (r == outcome::connect_error && !co_await conn.sleep_until(clock::now() + kConnectBackoff)) {
      break;
    }
  }
}

struct totals {
  shard_stats stats;
  std::uint64_t interval_requests = 0, interval_errors = 0;
  latency_histogram interval_latency;
};

// Sums the shards; `take_interval` also resets their since-last-line counters.
totals gather(app& a, bool take_interval) {
  totals t;
  for (auto& s : a.shards) {
    std::lock_guard lock(s->mutex);
    shard_stats& st = s->stats;
    t.stats.requests += st.requests;
    for (std::size_t i = 0; i < kErrorKinds; ++i) t.stats.errors[i] += st.errors[i];
    for (std::size_t i = 0; i < st.status.size(); ++i) t.stats.status[i] += st.status[i];
    t.stats.latency.merge(st.latency);
    for (std::size_t i = 0; i < kOpCount; ++i) {
      t.stats.ops[i].requests += st.ops[i].requests;
      t.stats.ops[i].latency.merge(st.ops[i].latency);
    }
    t.stats.last_completion = std::max(t.stats.last_completion, st.last_completion);
    if (take_interval) {
      t.interval_requests += st.interval_requests;
      t.interval_errors += st.interval_errors;
      t.interval_latency.merge(st.interval_latency);
      st.interval_requests = 0;
      st.interval_errors = 0;
      st.interval_latency.reset();
    }
  }
  return t;
}

std::uint64_t error_total(const shard_stats& s) {
  std::uint64_t n = 0;
  for (auto e : s.errors) n += e;
  return n;
}

void print_progress(app& a, std::uint64_t t, double interval_s, std::string_view phase) {
  const totals now = gather(a, true);
  json::object line{{"t", t},
                    {"requests", now.stats.requests},
                    {"rps", round_to(double(now.interval_requests) / interval_s, 0.1)},
                    {"errors", error_total(now.stats)},
                    {"p99_us", now.interval_latency.percentile(0.99)}};
  if (a.tracker) {
    const auto d = a.tracker->read(false);
    line["deliveries"] = d.deliveries;
    line["errors"] = error_total(now.stats) + d.signature_errors;
  }
  if (!phase.empty()) line["phase"] = phase;
  if (!a.opt.quiet) print_line(stderr, line);
}

asio::awaitable<void> run_load(app& a) {
  wait_group workers(a.home().ioc.get_executor());
  a.load_start = clock::now();
  a.measure_start = a.load_start + std::chrono::duration_cast<clock::duration>(
                                       std::chrono::duration<double>(a.opt.warmup_s));
  if (a.opt.duration_s) {
    a.measure_end = a.measure_start + std::chrono::duration_cast<clock::duration>(
                                          std::chrono::duration<double>(*a.opt.duration_s));
  }
  a.load_started = true;
  for (std::size_t i = 0; i < a.opt.connections; ++i) {
    shard& s = *a.shards[i % a.shards.size()];
    asio::co_spawn(s.ioc, load_worker(a, s, i), workers.completion());
  }

  std::uint64_t tick = 1;
  auto last_tick = a.load_start;
  bool woken = false, cancelled = false;
  while (workers.pending() > 0) {
    const auto next_tick = a.load_start + std::chrono::seconds(static_cast<std::int64_t>(tick));
    co_await workers.wait_until(std::min(next_tick, clock::now() + 50ms));
    if (a.stop.load() && !woken) {
      woken = true;
      wake_all(a, false);
    }
    // A second signal, or requests still running well past their timeout, end them now.
    const auto stopped_at = clock::time_point(clock::duration(a.stop_at.load()));
    const bool overdue = a.stop.load() && clock::now() > stopped_at + a.timeout + 1s;
    if ((a.interrupts >= 2 || overdue) && !cancelled) {
      cancelled = true;
      wake_all(a, true);
    }
    const auto now = clock::now();
    if (now >= next_tick) {
      print_progress(a, tick, seconds_between(last_tick, now),
                     next_tick <= a.measure_start ? "warmup" : "");
      last_tick = now;
      ++tick;
    }
  }
  a.load_end = clock::now();
  if (!workers.first_error().empty()) {
    throw run_failure{"a load worker failed: " + workers.first_error(),
                      "please report this as a hookd-load bug", std::nullopt};
  }
}

// deliver: waits (up to --drain) until every delivery of the accepted measured events arrived.
asio::awaitable<void> drain(app& a) {
  const auto started = clock::now();
  const auto deadline = started + std::chrono::duration_cast<clock::duration>(
                                      std::chrono::duration<double>(a.opt.drain_s));
  asio::steady_timer timer(a.home().ioc);
  auto next_tick = started + 1s;
  while (a.interrupts == 0 && a.tracker->read(false).missing() > 0 && clock::now() < deadline) {
    timer.expires_after(20ms);
    (void)co_await timer.async_wait(use_tuple);
    if (clock::now() >= next_tick) {
      const auto d = a.tracker->read(false);
      if (!a.opt.quiet) {
        print_line(stderr,
                   json::object{{"t", round_to(seconds_between(a.load_start, clock::now()), 1)},
                                {"phase", "drain"},
                                {"deliveries", d.deliveries},
                                {"missing", d.missing()}});
      }
      next_tick += 1s;
    }
  }
  a.drain_waited_s = seconds_between(started, clock::now());
}

// ---------------------------------------------------------------- summary

json::object latency_json(const latency_histogram& h, bool with_min_mean) {
  json::object o;
  if (with_min_mean) {
    o["min"] = h.min();
    o["mean"] = round_to(h.mean(), 0.1);
  }
  o["p50"] = h.percentile(0.50);
  o["p90"] = h.percentile(0.90);
  o["p99"] = h.percentile(0.99);
  o["p999"] = h.percentile(0.999);
  o["max"] = h.max();
  return o;
}

json::object summary(app& a) {
  const totals t = gather(a, false);
  const shard_stats& s = t.stats;
  // The measured time ends when the window closed (its end, a signal, --requests reached) or
  // when its last request came back, whichever is later.
  auto window_end = std::min(a.measure_end, clock::time_point(clock::duration(a.stop_at.load())));
  if (a.load_started) window_end = std::min(window_end, a.load_end);
  const auto end = std::max(window_end, s.last_completion);
  const double duration = a.load_started ? seconds_between(a.measure_start, end) : 0.0;

  std::optional<delivery_tracker::snapshot> d;
  if (a.tracker) d = a.tracker->read(true);

  json::object out;
  out["scenario"] = to_string(a.opt.kind);
  out["mode"] = a.opt.rate ? "open" : "closed";
  out["connections"] = a.opt.connections;
  out["threads"] = a.opt.threads;
  out["rate"] = a.opt.rate ? json::value(*a.opt.rate) : json::value(nullptr);
  out["duration_s"] = round_to(duration, 0.01);
  out["requests"] = s.requests;
  out["rps"] = duration > 0 ? round_to(double(s.requests) / duration, 0.1) : 0.0;
  out["errors"] = json::object{{"connect", s.errors[kConnect]},
                               {"timeout", s.errors[kTimeout]},
                               {"io", s.errors[kIo]},
                               {"status", s.errors[kStatus]},
                               {"signature", d ? d->signature_errors : 0}};
  json::object status;
  for (std::size_t code = 0; code < s.status.size(); ++code) {
    if (s.status[code] > 0) status[std::to_string(code)] = s.status[code];
  }
  out["status"] = std::move(status);
  out["latency_us"] = latency_json(s.latency, true);
  if (a.opt.kind == scenario::mix) {
    json::object ops;
    for (std::size_t i = 0; i < 5; ++i) {
      json::object one = latency_json(s.ops[i].latency, false);
      one.emplace("requests", s.ops[i].requests);
      ops[kOpNames[i]] = std::move(one);
    }
    out["ops"] = std::move(ops);
  }
  if (d) {
    const double span = seconds_between(a.measure_start, d->last_arrival);
    out["deliver"] = json::object{
        {"events", d->events},
        {"deliveries", d->deliveries},
        {"deliveries_per_s", span > 0 ? round_to(double(d->deliveries) / span, 0.1) : 0.0},
        {"missing", d->missing()},
        {"latency_us", latency_json(d->latency, false)},
        {"sent_to_received_us", latency_json(d->sent_to_received, false)},
        {"send_late_us", latency_json(d->send_late, false)},
        {"webhooks_per_project", a.opt.webhooks},
        {"accepted", d->accepted},
        {"duplicates", d->duplicates},
        {"unknown", d->unknown},
        {"drain_waited_s", round_to(a.drain_waited_s, 0.01)}};
  }
  json::object setup;
  setup["organization"] = a.organization;
  if (a.projects.size() <= kMaxProjectIdsShown) {
    json::array ids;
    for (const auto& p : a.projects) ids.emplace_back(p);
    setup["project"] = std::move(ids);
  } else {
    setup["project"] = a.projects.size();
  }
  setup["webhooks"] = a.setup_webhooks;
  setup["signing"] = a.opt.signing;
  setup["created_during_run"] = a.created.load();
  setup["cleanup"] = a.cleanup;
  if (a.cleanup_failures > 0) setup["cleanup_failures"] = a.cleanup_failures;
  if (a.opt.provisioning()) {
    setup["token_id"] = a.token_id;
    if (a.opt.keep) setup["token"] = a.token_secret;  // shown once by hookd: the only copy
  }
  out["setup"] = std::move(setup);
  out["warmup_s"] = a.opt.warmup_s;
  out["timeout_s"] = a.opt.timeout_s;
  out["interrupted"] = a.interrupts > 0;
  return out;
}

// ---------------------------------------------------------------- controller

void stop_background(app& a) {
  for (auto& s : a.shards) {
    asio::post(s->ioc, [sh = s.get()] {
      sh->stopping = true;
      sh->watchdog.cancel();
    });
  }
  if (a.receiver) a.receiver->stop();
  boost::system::error_code ignored;
  a.signals.cancel(ignored);
}

bool write_summary(const app& a, const json::object& out) {
  if (!a.opt.output) {
    print_line(stdout, out);
    return true;
  }
  std::string text;
  write_json(text, out);
  std::ofstream file(*a.opt.output, std::ios::trunc);
  file << text << '\n';
  file.close();
  return static_cast<bool>(file);
}

asio::awaitable<void> controller(app& a) {
  const auto period = std::clamp<clock::duration>(a.timeout / 20, 1ms, 100ms);
  for (auto& s : a.shards) {
    asio::co_spawn(s->ioc, run_watchdog(*s, period), a.background.completion());
  }
  arm_signals(a);

  std::optional<run_failure> failure;
  try {
    co_await setup(a);
    co_await run_load(a);
    if (a.tracker) co_await drain(a);
  } catch (const run_failure& f) {
    failure = f;
  }
  co_await clean_up(a);

  stop_background(a);
  co_await a.background.wait_until(clock::now() + 5s);

  if (failure) {
    json::object err{{"error", failure->error}, {"hint", failure->hint}};
    if (failure->problem) err["problem"] = *failure->problem;
    if (a.opt.provisioning() && !a.organization.empty()) {
      err["cleanup"] = a.cleanup;
      err["organization"] = a.organization;
    }
    print_line(stderr, err);
    if (a.interrupts > 0) (void)write_summary(a, summary(a));
    a.exit_code = 1;
    co_return;
  }
  if (!write_summary(a, summary(a))) {
    print_line(stderr, json::object{{"error", "cannot write " + *a.opt.output},
                                    {"hint", "check the --output path"}});
    a.exit_code = 1;
  }
}

}  // namespace
}  // namespace hookd::load

int main(int argc, char** argv) {
  using namespace hookd::load;
  namespace json = boost::json;
  load_options options;
  try {
    options = parse_options(argc, argv);
  } catch (const usage_error& e) {
    print_line(stderr, json::object{{"error", e.message}, {"hint", e.hint}});
    return 2;
  }
  if (options.help) {
    std::cout << kHelp;
    return 0;
  }
  if (options.output) {
    std::ofstream probe(*options.output, std::ios::app);
    if (!probe) {
      print_line(stderr, json::object{{"error", "--output: cannot write " + *options.output},
                                      {"hint", "give a writable file path"}});
      return 2;
    }
  }

  tcp::endpoint server;
  {
    asio::io_context resolve_ctx;
    tcp::resolver resolver(resolve_ctx);
    boost::system::error_code ec;
    const auto found = resolver.resolve(options.url.host, std::to_string(options.url.port), ec);
    if (ec || found.empty()) {
      print_line(stderr, json::object{{"error", "cannot resolve " + options.url.host + ": " +
                                                    (ec ? ec.message() : "no address")},
                                      {"hint", "check --url"}});
      return 1;
    }
    server = found.begin()->endpoint();
  }

  try {
    app a(std::move(options), server);
    for (std::size_t i = 1; i < a.shards.size(); ++i) {
      shard& s = *a.shards[i];
      s.guard.emplace(s.ioc.get_executor());
      s.thread = std::thread([&s] { s.ioc.run(); });
    }
    asio::co_spawn(a.home().ioc, controller(a), [&a](std::exception_ptr e) {
      if (!e) return;
      a.exit_code = 1;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& what) {
        print_line(stderr, json::object{{"error", std::string("internal error: ") + what.what()},
                                        {"hint", "please report this as a hookd-load bug"}});
      }
      stop_background(a);
    });
    a.home().ioc.run();
    for (std::size_t i = 1; i < a.shards.size(); ++i) {
      a.shards[i]->guard.reset();
      a.shards[i]->thread.join();
    }
    return a.exit_code;
  } catch (const std::exception& e) {
    print_line(stderr, json::object{{"error", std::string("internal error: ") + e.what()},
                                    {"hint", "please report this as a hookd-load bug"}});
    return 1;
  }
}
