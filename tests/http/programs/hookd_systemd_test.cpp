// hookd under systemd, without systemd as PID 1: the test plays the service manager's part.
// - Socket activation: the test owns the listening socket, as systemd owns hookd.socket's, and
//   starts hookd with it as descriptor 3 (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES); restarts under
//   load then refuse no connection and fail no exchange.
// - Start-up checks: what fails before the data dir exists leaves none behind.
// - The watchdog and READY=1 go to a unix datagram socket named by NOTIFY_SOCKET.
// - deploy/hookd.service and deploy/hookd.socket pass `systemd-analyze verify`.
// docs/operations.md, "Running under systemd", says what these behaviours are.

#include "support/delivery_fixture.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hookd::test {
namespace {

namespace fs = std::filesystem;
using tcp = asio::ip::tcp;

const std::string kHookd = std::string(HOOKD_BIN_DIR) + "/hookd";
constexpr std::string_view kToken = "hkd_systemd-test-admin-token-0123456789abcdef";

std::uint16_t port_of(std::string_view url) {
  return static_cast<std::uint16_t>(std::stoi(std::string(url.substr(url.rfind(':') + 1))));
}

// A socket the test holds the way systemd holds a socket unit's: inherited by the hookd processes
// the test starts (no FD_CLOEXEC) and open across their restarts. The descriptor is moved to 10
// or above, so that handing it to hookd as descriptor 3 or 4 never overwrites another one.
class held_socket {
 public:
  // A TCP socket on 127.0.0.1, a free port; listening unless `listening` is false.
  static held_socket tcp_listener(bool listening = true) {
    held_socket s(::socket(AF_INET, SOCK_STREAM, 0));
    const int one = 1;
    ::setsockopt(s.fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(s.fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    if (listening) {
      EXPECT_EQ(::listen(s.fd_, SOMAXCONN), 0);
    }
    socklen_t size = sizeof addr;
    ::getsockname(s.fd_, reinterpret_cast<sockaddr*>(&addr), &size);
    s.port_ = ntohs(addr.sin_port);
    return s;
  }
  static held_socket udp() { return held_socket(::socket(AF_INET, SOCK_DGRAM, 0)); }

  held_socket(held_socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)), port_(o.port_) {}
  held_socket& operator=(held_socket&&) = delete;
  ~held_socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  std::uint16_t port() const { return port_; }
  tcp::endpoint endpoint() const { return {asio::ip::make_address("127.0.0.1"), port_}; }

 private:
  explicit held_socket(int fd) {
    EXPECT_GE(fd, 0) << std::strerror(errno);
    fd_ = ::fcntl(fd, F_DUPFD, 10);  // F_DUPFD leaves FD_CLOEXEC off on the copy
    ::close(fd);
  }
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// A descriptor passed to hookd and the name LISTEN_FDNAMES gives it.
struct passed {
  const held_socket* socket;
  std::string name;
};

// What systemd does when it starts a service: the passed sockets become descriptors 3, 4, … and
// LISTEN_PID (and WATCHDOG_PID when asked) name the service's own pid, which only the process
// itself knows before exec: a bash in between sets them and execs hookd in its place.
std::unique_ptr<child_process> start_hookd(const fs::path& output, std::vector<passed> sockets,
                                           std::vector<std::string> env,
                                           std::vector<std::string> args, bool watchdog = false) {
  std::string script;
  if (!sockets.empty()) script += "export LISTEN_PID=$$; ";
  if (watchdog) script += "export WATCHDOG_PID=$$; ";
  script += "exec \"$0\" \"$@\"";
  std::string names;
  for (std::size_t i = 0; i < sockets.size(); ++i) {
    const auto from = std::to_string(sockets[i].socket->fd());
    script += " " + std::to_string(3 + i) + "<&" + from + " " + from + "<&-";
    names += (i == 0 ? "" : ":") + sockets[i].name;
  }
  if (!sockets.empty()) {
    env.push_back("LISTEN_FDS=" + std::to_string(sockets.size()));
    env.push_back("LISTEN_FDNAMES=" + names);
  }
  args.insert(args.begin(), {"-c", script, kHookd});
  return std::make_unique<child_process>("/bin/bash", std::move(args), output, std::move(env));
}

std::optional<json::object> listening(child_process& hookd) {
  return hookd.wait_for_json(
      [](const json::object& o) { return str_of(o, "event") == "listening"; }, true, 60s);
}

// The fatal line a failed start ends with, and its exit code.
struct failed_start {
  std::optional<int> exit_code;
  std::string event;
  std::string error;
};
failed_start failure_of(child_process& hookd) {
  failed_start out;
  out.exit_code = hookd.wait_exit(60s);
  const auto lines = hookd.lines(true);
  if (lines.empty()) return out;
  boost::system::error_code ec;
  const auto v = json::parse(lines.back(), ec);
  if (ec || !v.is_object()) return out;
  out.event = str_of(v.as_object(), "event");
  out.error = str_of(v.as_object(), "error");
  return out;
}

class HookdSystemdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(kHookd.c_str(), X_OK), 0) << kHookd << " is not built";
    std::string pattern = (fs::temp_directory_path() / "hookd-sysd-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  fs::path data_dir() const { return dir_ / "data"; }
  std::vector<std::string> base_args() const {
    return {"--data-dir", data_dir().string(), "--threads", "2"};
  }
  std::vector<std::string> token_env() const {
    return {"HOOKD_ADMIN_TOKEN=" + std::string(kToken)};
  }

  fs::path dir_;
};

// ---------------------------------------------------------------- restarts under load

// How one exchange ended, as the client saw it.
enum class outcome {
  answered,              // a whole response
  refused,               // connect() refused
  closed_before_answer,  // a clean close (FIN) before any byte of the response
  reset,                 // ECONNRESET or EPIPE
  truncated,             // the connection ended inside the response
  timed_out,             // 60 s without progress
  other,
};

// A blocking HTTP/1.1 client connection with a bound on every step. Its socket is close-on-exec,
// so that the hookd processes the test starts meanwhile do not inherit (and hold open) it.
class client_connection {
 public:
  outcome connect(const tcp::endpoint& at) {
    beast::error_code ec;
    stream_.socket().open(tcp::v4(), ec);
    if (ec) return outcome::other;
    ::fcntl(stream_.socket().native_handle(), F_SETFD, FD_CLOEXEC);
    stream_.expires_after(kStep);
    stream_.async_connect(at, [&](beast::error_code e) { ec = e; });
    run();
    if (ec == asio::error::connection_refused) return outcome::refused;
    return ec ? classify(ec, false) : outcome::answered;
  }

  // Sends `req` and reads its response into `res`.
  outcome exchange(bhttp::request<bhttp::string_body>& req,
                   bhttp::response<bhttp::string_body>& res) {
    beast::error_code ec;
    stream_.expires_after(kStep);
    bhttp::async_write(stream_, req, [&](beast::error_code e, std::size_t) { ec = e; });
    run();
    if (ec) return classify(ec, false);
    bhttp::response_parser<bhttp::string_body> parser;
    stream_.expires_after(kStep);
    bhttp::async_read(stream_, buffer_, parser, [&](beast::error_code e, std::size_t) { ec = e; });
    run();
    if (ec) return classify(ec, parser.got_some());
    res = parser.release();
    return outcome::answered;
  }

 private:
  static constexpr std::chrono::seconds kStep{60};
  void run() {
    ioc_.restart();
    ioc_.run();
  }
  static outcome classify(const beast::error_code& ec, bool got_some) {
    if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe) {
      return outcome::reset;
    }
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
        ec == bhttp::error::partial_message) {
      return got_some ? outcome::truncated : outcome::closed_before_answer;
    }
    if (ec == beast::error::timeout) return outcome::timed_out;
    return outcome::other;
  }

  asio::io_context ioc_;
  beast::tcp_stream stream_{ioc_};
  beast::flat_buffer buffer_;
};

bhttp::request<bhttp::string_body> make_request(bhttp::verb method, std::string target,
                                                std::string body = {}) {
  bhttp::request<bhttp::string_body> req{method, target, 11};
  req.set(bhttp::field::host, "127.0.0.1");
  req.set(bhttp::field::authorization, "Bearer " + std::string(kToken));
  if (!body.empty()) {
    req.set(bhttp::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.prepare_payload();
  return req;
}

// What the load clients saw. Everything but `answered`, `created` and `retried` must stay 0.
struct load_counts {
  std::atomic<int> answered{0};
  std::atomic<int> created{0};  // 201s to a POST on a new connection
  // A GET on a reused keep-alive connection met a clean close before any byte of its answer: the
  // old hookd closed the idle connection while the request was on its way, without reading it.
  // The client retries it on a new connection, as HTTP clients do with idempotent requests.
  std::atomic<int> retried{0};
  std::atomic<int> refused{0}, reset{0}, truncated{0}, timed_out{0}, other{0};
  // A request on a new connection that got no answer: nothing may retry it (it may be a POST).
  std::atomic<int> unanswered_new{0};
  std::atomic<int> wrong_status{0};
  std::mutex mutex;
  std::vector<std::string> errors;

  void count(outcome o, bool new_connection, const std::string& what) {
    switch (o) {
      case outcome::answered:
        return;
      case outcome::refused:
        refused.fetch_add(1);
        break;
      case outcome::closed_before_answer:
        if (!new_connection) {
          retried.fetch_add(1);
          return;
        }
        unanswered_new.fetch_add(1);
        break;
      case outcome::reset:
        reset.fetch_add(1);
        break;
      case outcome::truncated:
        truncated.fetch_add(1);
        break;
      case outcome::timed_out:
        timed_out.fetch_add(1);
        break;
      case outcome::other:
        other.fetch_add(1);
        break;
    }
    note(what + ": outcome " + std::to_string(static_cast<int>(o)));
  }
  void note(std::string e) {
    std::lock_guard lock(mutex);
    if (errors.size() < 20) errors.push_back(std::move(e));
  }
  std::string summary() {
    std::lock_guard lock(mutex);
    std::string s;
    for (const auto& e : errors) s += e + "; ";
    return s;
  }
};

// GETs of the organization list on one keep-alive connection at a time.
void keep_alive_client(tcp::endpoint at, load_counts& counts, const std::atomic<bool>& stop) {
  std::optional<client_connection> conn;
  bool reused = false;
  while (!stop.load()) {
    if (!conn) {
      conn.emplace();
      const auto o = conn->connect(at);
      if (o != outcome::answered) {
        counts.count(o, true, "keep-alive connect");
        conn.reset();
        std::this_thread::sleep_for(10ms);  // a failure is counted; do not spin on it
        continue;
      }
      reused = false;
    }
    auto req = make_request(bhttp::verb::get, "/api/v1/organizations");
    bhttp::response<bhttp::string_body> res;
    const auto o = conn->exchange(req, res);
    if (o != outcome::answered) {
      counts.count(o, !reused, "keep-alive GET");
      conn.reset();
      continue;
    }
    counts.answered.fetch_add(1);
    if (res.result_int() != 200) {
      counts.wrong_status.fetch_add(1);
      counts.note("keep-alive GET: status " + std::to_string(res.result_int()));
    }
    reused = true;
    if (!res.keep_alive()) conn.reset();
  }
}

// One request per new connection (Connection: close): POSTs creating an organization, which no
// client may retry, alternating with GET /healthz.
void new_connection_client(tcp::endpoint at, int id, load_counts& counts,
                           const std::atomic<bool>& stop) {
  for (int i = 0; !stop.load(); ++i) {
    client_connection conn;
    auto o = conn.connect(at);
    if (o != outcome::answered) {
      counts.count(o, true, "connect");
      std::this_thread::sleep_for(10ms);
      continue;
    }
    const bool post = i % 2 == 0;
    auto req = post ? make_request(bhttp::verb::post, "/api/v1/organizations",
                                   R"({"name":"restart-)" + std::to_string(id) + "-" +
                                       std::to_string(i) + R"("})")
                    : make_request(bhttp::verb::get, "/healthz");
    req.keep_alive(false);
    bhttp::response<bhttp::string_body> res;
    o = conn.exchange(req, res);
    if (o != outcome::answered) {
      counts.count(o, true, post ? "new-connection POST" : "new-connection GET");
      continue;
    }
    counts.answered.fetch_add(1);
    const unsigned expected = post ? 201 : 200;
    if (res.result_int() != expected) {
      counts.wrong_status.fetch_add(1);
      counts.note("new-connection: status " + std::to_string(res.result_int()));
    } else if (post) {
      counts.created.fetch_add(1);
    }
  }
}

TEST_F(HookdSystemdTest, RestartsOnAPassedSocketRefuseNoConnectionAndFailNoExchange) {
  const auto socket = held_socket::tcp_listener();
  const auto at = socket.endpoint();
  // --listen names a port hookd could not bind (the passed socket holds it): the passed socket
  // is served instead of binding.
  auto args = base_args();
  args.insert(args.end(), {"--listen", "127.0.0.1:" + std::to_string(socket.port())});
  int generation = 0;
  const auto start = [&] {
    return start_hookd(dir_ / ("hookd-" + std::to_string(generation++)),
                       {{&socket, "hookd.socket"}}, token_env(), args);
  };

  auto hookd = start();
  const auto up = listening(*hookd);
  ASSERT_TRUE(up) << hookd->output(true);
  EXPECT_EQ(port_of(str_of(*up, "address")), socket.port());
  EXPECT_EQ(up->at("socketActivated"), json::value(true)) << *up;

  load_counts counts;
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  // A failed ASSERT returns early: the clients stop and are joined whichever way the test ends.
  struct joiner {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~joiner() {
      stop = true;
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } join_clients{stop, clients};
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back(keep_alive_client, at, std::ref(counts), std::cref(stop));
  }
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back(new_connection_client, at, i, std::ref(counts), std::cref(stop));
  }

  constexpr int kRestarts = 8;
  int queued_created = 0;
  for (int r = 0; r < kRestarts; ++r) {
    // Some load on this generation first.
    const int before = counts.answered.load();
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (counts.answered.load() < before + 100 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    ASSERT_GE(counts.answered.load(), before + 100) << "no progress: " << counts.summary();

    hookd->signal(SIGTERM);
    ASSERT_EQ(hookd->wait_exit(60s), std::optional<int>(0)) << hookd->output(true);

    // No hookd runs now: a connection is still accepted by the kernel into the socket's backlog,
    // and its request waits there for the next hookd.
    client_connection queued;
    ASSERT_EQ(queued.connect(at), outcome::answered) << "refused while no hookd ran";
    auto req = make_request(bhttp::verb::post, "/api/v1/organizations",
                            R"({"name":"queued-)" + std::to_string(r) + R"("})");
    req.keep_alive(false);
    std::optional<outcome> queued_outcome;
    bhttp::response<bhttp::string_body> queued_res;
    std::thread waiter([&] { queued_outcome = queued.exchange(req, queued_res); });

    hookd = start();
    const auto again = listening(*hookd);
    waiter.join();
    ASSERT_TRUE(again) << hookd->output(true);
    ASSERT_EQ(queued_outcome, std::optional<outcome>(outcome::answered));
    EXPECT_EQ(queued_res.result_int(), 201u) << queued_res.body();
    if (queued_res.result_int() == 201) ++queued_created;
  }
  const int before = counts.answered.load();
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (counts.answered.load() < before + 100 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  stop = true;
  for (auto& t : clients) t.join();
  clients.clear();

  // Every 201 is an organization, once: none lost in a restart, none created twice.
  {
    http_client api(at);
    const auto list = api.request(bhttp::verb::get, "/api/v1/organizations", std::nullopt,
                                  {{"Authorization", "Bearer " + std::string(kToken)}});
    ASSERT_EQ(list.status, 200u) << list.body;
    const auto orgs = list.json();
    ASSERT_TRUE(orgs.is_array()) << list.body;
    EXPECT_EQ(orgs.as_array().size(),
              static_cast<std::size_t>(counts.created.load() + queued_created));
  }
  hookd->signal(SIGTERM);
  EXPECT_EQ(hookd->wait_exit(60s), std::optional<int>(0)) << hookd->output(true);

  const auto errors = counts.summary();
  EXPECT_EQ(counts.refused.load(), 0) << errors;
  EXPECT_EQ(counts.reset.load(), 0) << errors;
  EXPECT_EQ(counts.truncated.load(), 0) << errors;
  EXPECT_EQ(counts.timed_out.load(), 0) << errors;
  EXPECT_EQ(counts.other.load(), 0) << errors;
  EXPECT_EQ(counts.unanswered_new.load(), 0) << errors;
  EXPECT_EQ(counts.wrong_status.load(), 0) << errors;
  std::printf(
      "%d restarts on one passed socket: %d exchanges answered (%d organizations created on new "
      "connections, %d on connections made while no hookd ran), %d keep-alive GETs retried after "
      "a clean close; %d refused, %d reset, %d unanswered on a new connection\n",
      kRestarts, counts.answered.load(), counts.created.load(), queued_created,
      counts.retried.load(), counts.refused.load(), counts.reset.load(),
      counts.unanswered_new.load());
}

// ---------------------------------------------------------------- passed sockets

TEST_F(HookdSystemdTest, APassedMetricsSocketServesMetricsAndTheOtherOneTheApi) {
  const auto main_socket = held_socket::tcp_listener();
  const auto metrics_socket = held_socket::tcp_listener();
  auto hookd =
      start_hookd(dir_ / "two", {{&main_socket, "hookd.socket"}, {&metrics_socket, "metrics"}},
                  token_env(), base_args());
  const auto up = listening(*hookd);
  ASSERT_TRUE(up) << hookd->output(true);
  EXPECT_EQ(port_of(str_of(*up, "address")), main_socket.port());
  EXPECT_EQ(port_of(str_of(*up, "metricsAddress")), metrics_socket.port());

  http_client ops(metrics_socket.endpoint());
  const auto metrics = ops.request(bhttp::verb::get, "/metrics");
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.body.find("hookd_ready 1"), std::string::npos) << metrics.body;
  http_client api(main_socket.endpoint());
  expect_problem(api.request(bhttp::verb::get, "/metrics"), 404);
  EXPECT_EQ(api.request(bhttp::verb::get, "/api/v1/organizations", std::nullopt,
                        {{"Authorization", "Bearer " + std::string(kToken)}})
                .status,
            200u);
  hookd->signal(SIGTERM);
  EXPECT_EQ(hookd->wait_exit(60s), std::optional<int>(0)) << hookd->output(true);
}

TEST_F(HookdSystemdTest, APassedSocketHookdCannotServeExitsTwoAndCreatesNothing) {
  const auto udp = held_socket::udp();
  auto hookd = start_hookd(dir_ / "udp", {{&udp, "hookd.socket"}}, token_env(), base_args());
  auto failed = failure_of(*hookd);
  EXPECT_EQ(failed.exit_code, std::optional<int>(2)) << hookd->output(true);
  EXPECT_EQ(failed.event, "start_failed");
  EXPECT_NE(failed.error.find("hookd.socket"), std::string::npos) << failed.error;
  EXPECT_NE(failed.error.find("not a stream socket"), std::string::npos) << failed.error;

  const auto not_listening = held_socket::tcp_listener(false);
  hookd = start_hookd(dir_ / "bound", {{&not_listening, "hookd.socket"}}, token_env(), base_args());
  failed = failure_of(*hookd);
  EXPECT_EQ(failed.exit_code, std::optional<int>(2)) << hookd->output(true);
  EXPECT_NE(failed.error.find("not listening"), std::string::npos) << failed.error;

  // Two sockets for the main listener (one unit with two ListenStream= lines).
  const auto a = held_socket::tcp_listener();
  const auto b = held_socket::tcp_listener();
  hookd = start_hookd(dir_ / "two", {{&a, "hookd.socket"}, {&b, "hookd.socket"}}, token_env(),
                      base_args());
  failed = failure_of(*hookd);
  EXPECT_EQ(failed.exit_code, std::optional<int>(2)) << hookd->output(true);
  EXPECT_NE(failed.error.find("2 sockets"), std::string::npos) << failed.error;
  EXPECT_NE(failed.error.find("FileDescriptorName=metrics"), std::string::npos) << failed.error;
  // And two named metrics.
  hookd = start_hookd(dir_ / "two-metrics", {{&a, "metrics"}, {&b, "metrics"}}, token_env(),
                      base_args());
  failed = failure_of(*hookd);
  EXPECT_EQ(failed.exit_code, std::optional<int>(2)) << hookd->output(true);
  EXPECT_NE(failed.error.find("2 sockets for one listener (metrics, metrics)"), std::string::npos)
      << failed.error;

  EXPECT_FALSE(fs::exists(data_dir()));
}

// ---------------------------------------------------------------- checks before the data dir

TEST_F(HookdSystemdTest, ABusyPortExitsOneNamingItAndLeavesNoDataDir) {
  const auto busy = held_socket::tcp_listener();
  const std::string address = "127.0.0.1:" + std::to_string(busy.port());
  auto args = base_args();
  args.insert(args.end(), {"--listen", address});
  auto hookd = start_hookd(dir_ / "busy", {}, token_env(), args);
  auto failed = failure_of(*hookd);
  EXPECT_EQ(failed.exit_code, std::optional<int>(1)) << hookd->output(true);
  EXPECT_EQ(failed.event, "start_failed");
  EXPECT_NE(failed.error.find("cannot listen on " + address), std::string::npos) << failed.error;
  EXPECT_NE(failed.error.find("Address already in use"), std::string::npos) << failed.error;
  EXPECT_FALSE(fs::exists(data_dir())) << "a failed start left " << data_dir();

  // The same for the metrics listener, the second one bound.
  args = base_args();
  args.insert(args.end(), {"--listen", "127.0.0.1:0", "--metrics-listen", address});
  hookd = start_hookd(dir_ / "busy-metrics", {}, token_env(), args);
  failed = failure_of(*hookd);
  EXPECT_EQ(failed.exit_code, std::optional<int>(1)) << hookd->output(true);
  EXPECT_NE(failed.error.find("cannot listen on " + address), std::string::npos) << failed.error;
  EXPECT_FALSE(fs::exists(data_dir()));
}

TEST_F(HookdSystemdTest, ABadMasterKeyOrShortAdminTokenLeavesNoDataDir) {
  auto args = base_args();
  args.insert(args.end(), {"--listen", "127.0.0.1:0"});
  auto hookd = start_hookd(dir_ / "key", {}, {"HOOKD_MASTER_KEY=not-a-key"}, args);
  auto failed = failure_of(*hookd);
  EXPECT_EQ(failed.exit_code, std::optional<int>(1)) << hookd->output(true);
  EXPECT_NE(failed.error.find("HOOKD_MASTER_KEY is malformed"), std::string::npos) << failed.error;
  EXPECT_FALSE(fs::exists(data_dir()));

  hookd = start_hookd(dir_ / "token", {}, {"HOOKD_ADMIN_TOKEN=too-short"}, args);
  failed = failure_of(*hookd);
  EXPECT_EQ(failed.exit_code, std::optional<int>(2)) << hookd->output(true);
  EXPECT_NE(failed.error.find("HOOKD_ADMIN_TOKEN is 9 characters"), std::string::npos)
      << failed.error;
  EXPECT_FALSE(fs::exists(data_dir()));
}

// ---------------------------------------------------------------- READY=1 and the watchdog

// The notification socket systemd would listen on (NOTIFY_SOCKET).
class notify_socket {
 public:
  explicit notify_socket(fs::path path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
        << std::strerror(errno);
    timeval wait{.tv_sec = 0, .tv_usec = 100'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  }
  ~notify_socket() { ::close(fd_); }
  const fs::path& path() const { return path_; }

  // Messages received until `done` holds for them or `limit` passes (one datagram each).
  template <class Done>
  std::vector<std::string> receive(Done done, std::chrono::milliseconds limit = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done(messages_) && std::chrono::steady_clock::now() < deadline) {
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n > 0) messages_.emplace_back(buffer, static_cast<std::size_t>(n));
    }
    return messages_;
  }

 private:
  fs::path path_;
  int fd_ = -1;
  std::vector<std::string> messages_;
};

std::size_t count_after(const std::vector<std::string>& messages, std::string_view first,
                        std::string_view then) {
  bool seen = false;
  std::size_t n = 0;
  for (const auto& m : messages) {
    if (m == first) seen = true;
    if (seen && m == then) ++n;
  }
  return n;
}

TEST_F(HookdSystemdTest, WatchdogPingsComeFromTheRunningEventLoop) {
  notify_socket notify(dir_ / "notify");
  auto args = base_args();
  args.insert(args.end(), {"--listen", "127.0.0.1:0"});
  // WatchdogSec=300ms: a ping every 150 ms.
  auto hookd = start_hookd(dir_ / "watchdog", {},
                           {"HOOKD_ADMIN_TOKEN=" + std::string(kToken),
                            "NOTIFY_SOCKET=" + notify.path().string(), "WATCHDOG_USEC=300000"},
                           args, /*watchdog=*/true);
  auto messages = notify.receive([](const std::vector<std::string>& m) {
    return count_after(m, "READY=1", "WATCHDOG=1") >= 5;
  });
  ASSERT_GE(count_after(messages, "READY=1", "WATCHDOG=1"), 5u) << hookd->output(true);
  hookd->signal(SIGTERM);
  // Read on until hookd has exited, as systemd does: the pings go on through the shutdown delay
  // and the drain, and a notify socket that nobody reads fills up (10 datagrams) and blocks them.
  std::optional<int> exit_code;
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (!exit_code && std::chrono::steady_clock::now() < give_up) {
    messages = notify.receive([](const std::vector<std::string>&) { return false; }, 100ms);
    exit_code = hookd->wait_exit(10ms);
  }
  EXPECT_NE(std::find(messages.begin(), messages.end(), "STOPPING=1"), messages.end());
  EXPECT_GE(count_after(messages, "STOPPING=1", "WATCHDOG=1"), 1u)
      << "no ping during the shutdown delay";
  EXPECT_EQ(exit_code, std::optional<int>(0)) << hookd->output(true);
}

TEST_F(HookdSystemdTest, WithoutWatchdogUsecNoPingIsSent) {
  notify_socket notify(dir_ / "notify");
  auto args = base_args();
  args.insert(args.end(), {"--listen", "127.0.0.1:0"});
  auto hookd = start_hookd(
      dir_ / "no-watchdog", {},
      {"HOOKD_ADMIN_TOKEN=" + std::string(kToken), "NOTIFY_SOCKET=" + notify.path().string()},
      args);
  auto messages = notify.receive([](const std::vector<std::string>& m) {
    return std::find(m.begin(), m.end(), "READY=1") != m.end();
  });
  ASSERT_NE(std::find(messages.begin(), messages.end(), "READY=1"), messages.end())
      << hookd->output(true);
  const auto up = listening(*hookd);
  ASSERT_TRUE(up);
  http_client client(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_of(str_of(*up, "address"))));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(client.request(bhttp::verb::get, "/healthz").status, 200u);
  hookd->signal(SIGTERM);
  messages = notify.receive([](const std::vector<std::string>& m) {
    return std::find(m.begin(), m.end(), "STOPPING=1") != m.end();
  });
  EXPECT_EQ(std::count(messages.begin(), messages.end(), "WATCHDOG=1"), 0);
  EXPECT_EQ(hookd->wait_exit(60s), std::optional<int>(0)) << hookd->output(true);
}

// ---------------------------------------------------------------- the unit files

// systemd-analyze verify loads the units as systemd would and checks that ExecStart's program is
// executable: the copies verified here name the hookd of this build instead of /usr/local/bin's.
TEST_F(HookdSystemdTest, TheUnitsPassSystemdAnalyzeVerify) {
  const fs::path deploy = fs::path(HOOKD_SOURCE_DIR) / "deploy";
  std::string service = [&] {
    std::ifstream in(deploy / "hookd.service");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  const std::string shipped = "ExecStart=/usr/local/bin/hookd ";
  const auto at = service.find(shipped);
  ASSERT_NE(at, std::string::npos) << "deploy/hookd.service no longer starts " << shipped;
  service.replace(at, shipped.size(), "ExecStart=" + kHookd + " ");
  const fs::path units = dir_ / "units";
  fs::create_directories(units);
  std::ofstream(units / "hookd.service") << service;
  fs::copy_file(deploy / "hookd.socket", units / "hookd.socket");

  const std::string command = "systemd-analyze verify --man=no " +
                              (units / "hookd.service").string() + " " +
                              (units / "hookd.socket").string() + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int status = ::pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_NE(WEXITSTATUS(status), 127) << "systemd-analyze is missing: install systemd "
                                         "(tools/setup.sh does)";
  EXPECT_EQ(WEXITSTATUS(status), 0) << output;
  EXPECT_EQ(output, "") << "warnings about the units";
}

}  // namespace
}  // namespace hookd::test
