#pragma once
// Fixtures for the delivery tests:
// - `receiver`: a real HTTP/1.1 webhook receiver on 127.0.0.1 port 0 (its own io_context and
//   thread) that records every request and answers from a script per path: a status, extra
//   headers, an optional delay (a "hang", bounded, cut short when the receiver stops), and an
//   optional hold until the test calls release_held().
// - `delivery_stack`: the whole hookd stack in-process like test_server (RocksDB in a mkdtemp
//   dir, catalog, admin token, router, server on port 0) plus the delivery log and the
//   dispatcher, with short retry schedules and timeouts for tests. restart() reopens everything
//   over the same data dir.
// The receiver's longer bodies are in delivery_fixture.cpp (the hookd_test_support library).

#include "core/delivery/delivery_log.hpp"
#include "http/outbound/dispatcher.hpp"
#include "support/test_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

extern char** environ;

namespace hookd::test {

using namespace std::chrono_literals;

// ---------------------------------------------------------------- hookd's JSON log lines

// Whether a log line is the `event` one.
inline bool has_event(const json::object& o, std::string_view event) {
  const auto* e = o.if_contains("event");
  return e && e->is_string() && e->as_string() == event;
}

// A string field of a log line; "" when it is missing or not a string.
inline std::string str_of(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// ---------------------------------------------------------------- child processes

// A program run as a real child process (posix_spawn), its stdout and stderr going to files so
// that a chatty child never blocks on a full pipe. The destructor SIGKILLs it if it still runs.
class child_process {
 public:
  child_process(const std::string& program, std::vector<std::string> args,
                const std::filesystem::path& output_prefix, std::vector<std::string> extra_env = {})
      : out_path_(output_prefix.string() + ".out"), err_path_(output_prefix.string() + ".err") {
    args.insert(args.begin(), program);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings = std::move(extra_env);
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int rc = posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
      throw std::runtime_error("posix_spawn " + program + " failed: " + std::to_string(rc));
  }
  ~child_process() {
    if (!exited_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  // Complete lines written so far to stdout (or stderr).
  std::vector<std::string> lines(bool from_stderr = false) const {
    std::ifstream in(from_stderr ? err_path_ : out_path_, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    std::vector<std::string> out;
    std::size_t start = 0;
    for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
      out.push_back(text.substr(start, nl - start));
    }
    return out;
  }
  std::string output(bool from_stderr = false) const {
    std::ifstream in(from_stderr ? err_path_ : out_path_, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }

  // The first JSON object line (stdout or stderr) for which `match` holds, waiting up to
  // `limit`; nullopt when none came or the process exited first.
  template <class Match>
  std::optional<json::object> wait_for_json(Match match, bool from_stderr,
                                            std::chrono::milliseconds limit = 20s) {
    std::optional<json::object> found;
    eventually_impl(
        [&] {
          for (const auto& line : lines(from_stderr)) {
            boost::system::error_code ec;
            auto v = json::parse(line, ec);
            if (!ec && v.is_object() && match(v.as_object())) {
              found = v.as_object();
              return true;
            }
          }
          return running() ? false : true;
        },
        limit);
    return found;
  }

  bool running() {
    if (exited_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return false;
    }
    return true;
  }

  void signal(int sig) {
    if (!exited_) ::kill(pid_, sig);
  }

  // The exit code (128 + signal when killed), or nullopt if still running after `limit`.
  std::optional<int> wait_exit(std::chrono::milliseconds limit = 30s) {
    eventually_impl([&] { return !running(); }, limit);
    if (!exited_) return std::nullopt;
    return exit_code_;
  }

  pid_t pid() const { return pid_; }

 private:
  template <class Condition>
  static void eventually_impl(Condition condition, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
    }
  }

  std::string out_path_, err_path_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_code_ = -1;
};

// `node` on PATH (for the receivers in tests/node), or nullopt.
inline std::optional<std::string> find_node() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const auto candidate = std::filesystem::path(dir.empty() ? "." : dir) / "node";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return std::nullopt;
}

// Polls `condition` every 10 ms until it holds or `limit` passes; the result of the last poll.
// For waiting on asynchronous effects (a delivery arriving), never for asserting durations.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// ---------------------------------------------------------------- receiver

struct scripted_reply {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. Location, Retry-After
  std::string body = "ok";
  std::chrono::milliseconds delay{0};  // before answering; a hang when longer than the timeout
  bool hold = false;  // after the delay, wait for receiver::release_held() (bounded like delays)
};

struct received_request {
  std::string path;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  unsigned answered = 0;                     // the status the receiver chose for it
  std::chrono::steady_clock::time_point at;  // when it was read
  std::size_t concurrent = 0;  // requests being answered when it was read, itself included

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class receiver {
 public:
  // Bounds every socket operation of the receiver and every scripted delay.
  static constexpr std::chrono::seconds kIoTimeout{30};

  receiver();
  ~receiver() { stop(); }
  receiver(const receiver&) = delete;
  receiver& operator=(const receiver&) = delete;

  // Ends every connection and pending delay; frames still waiting go with the io_context.
  void stop() {
    if (!thread_.joinable()) return;
    ioc_.stop();
    thread_.join();
  }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port()) + path;
  }

  // Replies for the next requests to `path`, in order; after them, the default for the path.
  void script(const std::string& path, std::vector<scripted_reply> replies) {
    std::lock_guard lock(mutex_);
    auto& q = scripts_[path];
    for (auto& r : replies) q.push_back(std::move(r));
  }
  // The reply once a path's script is used up (200 "ok" unless set).
  void set_default(const std::string& path, scripted_reply reply) {
    std::lock_guard lock(mutex_);
    defaults_[path] = std::move(reply);
  }

  std::vector<received_request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::vector<received_request> requests(const std::string& path) const {
    std::vector<received_request> out;
    for (auto& r : requests()) {
      if (r.path == path) out.push_back(std::move(r));
    }
    return out;
  }
  std::size_t count(const std::string& path) const { return requests(path).size(); }
  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return requests_.size() + forgotten_;
  }
  // From now on requests are counted (count()) but not kept: for tests that measure memory.
  void forget_requests() {
    std::lock_guard lock(mutex_);
    keep_requests_ = false;
  }

  // The most requests that were being answered at once (received, response not yet written).
  std::size_t max_concurrent() const {
    std::lock_guard lock(mutex_);
    return max_concurrent_;
  }

  // Requests held now: received, waiting for release_held().
  std::size_t held() const {
    std::lock_guard lock(mutex_);
    return held_;
  }
  // Requests answered so far (their response written).
  std::size_t answered() const {
    std::lock_guard lock(mutex_);
    return answered_;
  }

  // Answers every held request, and from now on every request scripted to hold at once.
  void release_held();

  // TCP connections accepted so far.
  std::size_t connections() const {
    std::lock_guard lock(mutex_);
    return connections_;
  }

  // Waits until `path` got at least `n` requests (bounded).
  bool wait_for(const std::string& path, std::size_t n, std::chrono::milliseconds limit = 20s) {
    return eventually([&] { return count(path) >= n; }, limit);
  }

 private:
  using tcp = asio::ip::tcp;

  static asio::awaitable<void> accept_loop(receiver& self);
  static asio::awaitable<void> session(receiver& self, tcp::socket socket);
  scripted_reply next_reply(const std::string& path);

  void task_done() { --tasks_; }

  asio::io_context ioc_{1};
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<int> tasks_{0};  // accept loop and sessions running (tracked, never detached)

  // The receiver's thread only: the waits of held requests, and whether they are over.
  std::set<asio::steady_timer*> holding_;
  bool released_ = false;

  mutable std::mutex mutex_;
  std::map<std::string, std::deque<scripted_reply>> scripts_;
  std::map<std::string, scripted_reply> defaults_;
  std::vector<received_request> requests_;
  bool keep_requests_ = true;
  std::size_t forgotten_ = 0;
  std::size_t concurrent_ = 0, max_concurrent_ = 0, connections_ = 0, held_ = 0, answered_ = 0;
};

// ---------------------------------------------------------------- the stack

struct delivery_stack_options {
  std::size_t max_body_bytes = 16 * 1024;
  std::size_t max_webhooks_per_project = 10;
  // Short, so that retries happen within a test.
  std::vector<std::chrono::milliseconds> retry_schedule{100ms, 200ms};
  std::chrono::milliseconds delivery_timeout{5000};
  // The receivers are on 127.0.0.1; the guard test turns this off.
  bool allow_private_targets = true;
  std::size_t max_in_flight = 256;
  std::size_t max_in_flight_per_webhook = 4;
  std::size_t max_in_flight_per_organization = 0;                   // 0: the scheduler's default
  std::chrono::milliseconds retention{30LL * 24 * 3600 * 1000};     // --retention
  std::chrono::milliseconds secret_grace{24LL * 3600 * 1000};       // --secret-grace
  std::chrono::milliseconds disable_after{5LL * 24 * 3600 * 1000};  // --disable-after
  bool metrics_per_webhook = false;                                 // --metrics-per-webhook
};

// The test server (its requests and fixtures) with the delivery settings of the options.
class delivery_stack : public test_server {
 public:
  explicit delivery_stack(delivery_stack_options options = {})
      : test_server(settings_for(options), "hookd-delivery-test") {}

  storage& store() { return stack().store(); }
  delivery_engine& log() { return stack().deliveries(); }
  http::dispatcher& dispatch() { return stack().dispatch(); }

  static std::string events_path(const std::string& org, const std::string& proj) {
    return projects_path(org) + "/" + proj + "/events";
  }
  static std::string project_deliveries_path(const std::string& org, const std::string& proj) {
    return projects_path(org) + "/" + proj + "/deliveries";
  }
  static std::string event_path(const std::string& org, const std::string& proj,
                                const std::string& event) {
    return events_path(org, proj) + "/" + event;
  }
  static std::string deliveries_path(const std::string& org, const std::string& proj,
                                     const std::string& hook) {
    return webhook_path(org, proj, hook) + "/deliveries";
  }

  // POST …/events.
  http_reply ingest(const std::string& org, const std::string& proj, const json::value& body,
                    std::string_view token = kAdminToken, header_list headers = {}) {
    return post(events_path(org, proj), body, token, std::move(headers));
  }

 private:
  static config settings_for(const delivery_stack_options& o) {
    config c;
    c.max_body_bytes = o.max_body_bytes;
    c.max_webhooks_per_project = o.max_webhooks_per_project;
    c.retry_schedule = o.retry_schedule;
    c.delivery_timeout = o.delivery_timeout;
    c.allow_private_targets = o.allow_private_targets;
    c.max_inflight_deliveries = o.max_in_flight;
    c.max_inflight_per_webhook = o.max_in_flight_per_webhook;
    c.max_inflight_per_organization = o.max_in_flight_per_organization;
    c.retention = o.retention;
    c.secret_grace = o.secret_grace;
    c.disable_after = o.disable_after;
    c.metrics_per_webhook = o.metrics_per_webhook;
    return c;
  }
};

}  // namespace hookd::test
