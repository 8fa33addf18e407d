// hookd, the executable (tools/hookd.cpp), run as a real process over a mkdtemp data dir: what
// only the binary does, namely the admin-token bootstrap, the listeners it opens and the log
// lines that name them.

#include "core/common/clock.hpp"
#include "support/delivery_fixture.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace hookd::test {
namespace {

namespace fs = std::filesystem;

const std::string kHookd = std::string(HOOKD_BIN_DIR) + "/hookd";
constexpr std::string_view kToken = "hkd_hookd-test-admin-token-0123456789abcdef";

// "http://127.0.0.1:PORT" as an endpoint.
asio::ip::tcp::endpoint endpoint_of(std::string_view url) {
  const auto port = std::stoi(std::string(url.substr(url.rfind(':') + 1)));
  return {asio::ip::make_address("127.0.0.1"), static_cast<std::uint16_t>(port)};
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

class HookdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(kHookd.c_str(), X_OK), 0) << kHookd << " is not built";
    std::string pattern = (fs::temp_directory_path() / "hookd-bin-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  fs::path data_dir() const { return dir_ / "data"; }

  // hookd over data_dir() on a free port, with `extra` options and `env` ("NAME=value").
  std::unique_ptr<child_process> start(const std::string& name, std::vector<std::string> env,
                                       std::vector<std::string> extra = {}) {
    // No shutdown delay unless a test asks for one (a later flag wins).
    std::vector<std::string> args{"--listen",          "127.0.0.1:0", "--data-dir",
                                  data_dir().string(), "--threads",   "1",
                                  "--shutdown-delay",  "0s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<child_process>(kHookd, std::move(args), dir_ / name, std::move(env));
  }

  static std::optional<json::object> listening(child_process& hookd) {
    return hookd.wait_for_json([](const json::object& o) { return has_event(o, "listening"); },
                               true, 60s);
  }

  fs::path dir_;
};

http_reply get(http_client& client, const std::string& target, std::string_view token = {}) {
  header_list headers;
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + std::string(token));
  return client.request(bhttp::verb::get, target, std::nullopt, headers);
}

TEST_F(HookdTest, AShortAdminTokenExitsTwoNamingItsLengthAndCreatesNoToken) {
  const std::string short_token = "hkd_short-token-0123456789";  // 26 characters
  {
    auto hookd = start("short", {"HOOKD_ADMIN_TOKEN=" + short_token});
    ASSERT_EQ(hookd->wait_exit(60s), std::optional<int>(2)) << hookd->output(true);
    const auto lines = hookd->lines(true);
    ASSERT_FALSE(lines.empty());
    // The reason is a fatal log line like every other line (JSON, with time and level).
    boost::system::error_code ec;
    const auto parsed = json::parse(lines.back(), ec);
    ASSERT_FALSE(ec) << lines.back();
    ASSERT_TRUE(parsed.is_object()) << lines.back();
    EXPECT_EQ(str_of(parsed.as_object(), "level"), "fatal");
    EXPECT_EQ(str_of(parsed.as_object(), "event"), "start_failed");
    const std::string message = str_of(parsed.as_object(), "error");
    EXPECT_EQ(message.rfind("hookd: ", 0), 0u) << message;
    EXPECT_NE(message.find("HOOKD_ADMIN_TOKEN"), std::string::npos) << message;
    EXPECT_NE(message.find("26 characters"), std::string::npos) << message;
    EXPECT_NE(message.find("at least 32"), std::string::npos) << message;
    EXPECT_NE(message.find("openssl rand -base64 32"), std::string::npos) << message;
    EXPECT_EQ(hookd->output(true).find(short_token), std::string::npos) << "never echoed";
    EXPECT_FALSE(fs::exists(data_dir() / "admin-token"));
  }

  // No token was created: the next start still takes HOOKD_ADMIN_TOKEN as the first one.
  auto hookd = start("long", {"HOOKD_ADMIN_TOKEN=" + std::string(kToken)});
  const auto admin = hookd->wait_for_json(
      [](const json::object& o) { return has_event(o, "admin_token"); }, true, 60s);
  ASSERT_TRUE(admin) << hookd->output(true);
  EXPECT_EQ(str_of(*admin, "source"), "HOOKD_ADMIN_TOKEN");
  const auto up = listening(*hookd);
  ASSERT_TRUE(up) << hookd->output(true);
  http_client client(endpoint_of(str_of(*up, "address")));
  EXPECT_EQ(get(client, "/api/v1/organizations", kToken).status, 200u);
  EXPECT_EQ(get(client, "/api/v1/organizations", short_token).status, 401u);
}

TEST_F(HookdTest, AGeneratedAdminTokenIsInItsFileAndNeverInTheLog) {
  // An empty HOOKD_ADMIN_TOKEN counts as unset, whatever the test's own environment holds.
  auto hookd = start("generated", {"HOOKD_ADMIN_TOKEN="});
  const auto up = listening(*hookd);
  ASSERT_TRUE(up) << hookd->output(true);

  const fs::path file = data_dir() / "admin-token";
  ASSERT_TRUE(fs::exists(file));
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  const std::string token = read_text(file);
  ASSERT_GE(token.size(), 32u);

  const auto admin = hookd->wait_for_json(
      [](const json::object& o) { return has_event(o, "admin_token"); }, true, 5s);
  ASSERT_TRUE(admin);
  EXPECT_EQ(str_of(*admin, "source"), "generated");
  EXPECT_EQ(str_of(*admin, "file"), file.string());
  EXPECT_FALSE(admin->contains("token"));

  http_client client(endpoint_of(str_of(*up, "address")));
  EXPECT_EQ(get(client, "/api/v1/organizations", token).status, 200u);
  client.close();

  hookd->signal(SIGTERM);
  EXPECT_EQ(hookd->wait_exit(60s), std::optional<int>(0));
  EXPECT_EQ(hookd->output(true).find(token), std::string::npos) << "the token is in stderr";
  EXPECT_EQ(hookd->output(false).find(token), std::string::npos) << "the token is in stdout";
}

TEST_F(HookdTest, SighupIsLoggedAndNeverStopsHookd) {
  auto hookd = start("hup", {"HOOKD_ADMIN_TOKEN=" + std::string(kToken)});
  const auto up = listening(*hookd);
  ASSERT_TRUE(up) << hookd->output(true);
  http_client client(endpoint_of(str_of(*up, "address")));
  ASSERT_EQ(get(client, "/readyz").status, 200u);

  hookd->signal(SIGHUP);
  const auto reload =
      hookd->wait_for_json([](const json::object& o) { return has_event(o, "reload"); }, true, 10s);
  ASSERT_TRUE(reload) << hookd->output(true);
  EXPECT_EQ(str_of(*reload, "signal"), "SIGHUP");
  EXPECT_EQ(get(client, "/readyz").status, 200u);  // still serving, same connection
  EXPECT_EQ(get(client, "/api/v1/organizations", kToken).status, 200u);
  client.close();

  hookd->signal(SIGTERM);
  EXPECT_EQ(hookd->wait_exit(60s), std::optional<int>(0));

  // Every line of the run is JSON with an RFC 3339 time and a level (docs/operations.md, "Logs").
  const auto lines = hookd->lines(true);
  ASSERT_GE(lines.size(), 4u);
  for (const auto& line : lines) {
    boost::system::error_code ec;
    const auto parsed = json::parse(line, ec);
    ASSERT_TRUE(!ec && parsed.is_object()) << line;
    EXPECT_TRUE(parse_rfc3339(str_of(parsed.as_object(), "time"))) << line;
    const std::string level = str_of(parsed.as_object(), "level");
    EXPECT_TRUE(level == "info" || level == "warn" || level == "error") << line;
    EXPECT_FALSE(str_of(parsed.as_object(), "event").empty()) << line;
  }
}

// Every thread of hookd's own carries a name (docs/operations.md, "Threads"), so that `top -H`,
// `ps -L` and a profiler say which part of hookd is busy.
TEST_F(HookdTest, ItsThreadsAreNamedForWhatTheyDo) {
  auto hookd = start("threads", {"HOOKD_ADMIN_TOKEN=" + std::string(kToken)}, {"--threads", "2"});
  const auto up = listening(*hookd);
  ASSERT_TRUE(up) << hookd->output(true);

  // A thread names itself first thing, but may not have run yet when "listening" is logged.
  const std::vector<std::string> expected{"http-0",       "http-1",         "dispatcher",
                                          "delivery-log", "delivery-sweep", "catalog",
                                          "catalog:w",    "history-0",      "history-1"};
  std::multiset<std::string> names;
  const auto read_names = [&] {
    names.clear();
    for (const auto& task :
         fs::directory_iterator(fs::path("/proc") / std::to_string(hookd->pid()) / "task")) {
      std::string name = read_text(task.path() / "comm");
      if (!name.empty() && name.back() == '\n') name.pop_back();
      names.insert(name);
    }
    return std::all_of(expected.begin(), expected.end(),
                       [&](const std::string& e) { return names.count(e) == 1; });
  };
  for (int tries = 0; tries < 100 && !read_names(); ++tries) std::this_thread::sleep_for(100ms);
  for (const std::string& e : expected) {
    EXPECT_EQ(names.count(e), 1u) << e << " among " << names.size() << " threads";
  }
  EXPECT_EQ(names.count("http-2"), 0u);  // --threads 2: two of them

  hookd->signal(SIGTERM);
  EXPECT_EQ(hookd->wait_exit(60s), std::optional<int>(0));
}

// One keep-alive client of the stop test: GETs in a loop until the server refuses new
// connections, classifying every exchange. A clean close before any byte of a response, on a
// connection that served earlier requests, is the ordinary keep-alive race every HTTP client
// retries on a new connection; a reset or a cut response on such a connection is what a stop must
// never cause. A connection the kernel completed but hookd never accepted (it was in the listen
// backlog when the listener closed) is reset by the kernel before its first answer, or even before
// the connect's result is read: to the client that is a refused connection, counted apart (a
// listener handed over by systemd keeps those queued across a restart instead; docs/operations.md,
// "Behind a load balancer").
struct stop_outcomes {
  std::atomic<int> ok{0}, ready_503{0}, ok_after_503{0}, closed_clean{0}, refused{0};
  std::atomic<int> reset_unaccepted{0};
  std::atomic<int> reset{0}, truncated{0}, other{0};
  std::atomic<bool> saw_503{false};
  std::mutex mutex;
  std::vector<std::string> errors;
  void error(std::string e) {
    std::lock_guard lock(mutex);
    if (errors.size() < 10) errors.push_back(std::move(e));
  }
};

void stop_client(asio::ip::tcp::endpoint at, std::string target, std::string token,
                 stop_outcomes& out, std::chrono::steady_clock::time_point give_up) {
  asio::io_context ioc;
  std::unique_ptr<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  bool served = false;  // this connection has answered a request
  while (std::chrono::steady_clock::now() < give_up) {
    boost::system::error_code ec;
    if (!stream) {
      stream = std::make_unique<beast::tcp_stream>(ioc);
      stream->expires_after(10s);
      stream->connect(at, ec);
      if (ec == asio::error::connection_refused) {
        out.refused.fetch_add(1);
        return;  // the server stopped accepting: this client is done
      }
      if (ec == asio::error::connection_reset) {
        // The kernel completed the handshake, then reset the unaccepted connection when the
        // listener closed, before the connect's result was read: the same as a reset before the
        // first answer below. The next connect is refused.
        out.reset_unaccepted.fetch_add(1);
        stream.reset();
        continue;
      }
      if (ec) {
        out.other.fetch_add(1);
        out.error("connect: " + ec.message());
        return;
      }
      buffer.clear();
      served = false;
    }
    bhttp::request<bhttp::empty_body> req{bhttp::verb::get, target, 11};
    req.set(bhttp::field::host, "127.0.0.1");
    if (!token.empty()) req.set(bhttp::field::authorization, "Bearer " + token);
    stream->expires_after(10s);
    bhttp::write(*stream, req, ec);
    bhttp::response_parser<bhttp::string_body> parser;
    if (!ec) bhttp::read(*stream, buffer, parser, ec);
    if (ec) {
      const bool nothing_read = !parser.got_some();
      if ((ec == asio::error::connection_reset || ec == asio::error::broken_pipe) && !served &&
          nothing_read) {
        out.reset_unaccepted.fetch_add(1);
      } else if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe) {
        out.reset.fetch_add(1);
        out.error("reset: " + ec.message());
      } else if (ec == bhttp::error::end_of_stream || ec == asio::error::eof) {
        (nothing_read ? out.closed_clean : out.truncated).fetch_add(1);
        if (!nothing_read) out.error("truncated response");
      } else {
        out.other.fetch_add(1);
        out.error(ec.message());
      }
      stream.reset();
      continue;
    }
    served = true;
    const auto& res = parser.get();
    if (res.result_int() == 503 && target == "/readyz") {
      out.ready_503.fetch_add(1);
      out.saw_503 = true;
    } else if (res.result_int() == 200) {
      out.ok.fetch_add(1);
      if (out.saw_503.load() && target != "/readyz") out.ok_after_503.fetch_add(1);
    } else {
      out.other.fetch_add(1);
      out.error("status " + std::to_string(res.result_int()));
    }
    if (!res.keep_alive()) stream.reset();
  }
}

TEST_F(HookdTest, SigtermUnderLoadAnswers503OnReadyzServesOnAndNeverResets) {
  auto hookd = start("stop", {"HOOKD_ADMIN_TOKEN=" + std::string(kToken)},
                     {"--shutdown-delay", "1500ms", "--drain-timeout", "5s"});
  const auto up = listening(*hookd);
  ASSERT_TRUE(up) << hookd->output(true);
  const auto at = endpoint_of(str_of(*up, "address"));

  stop_outcomes out;
  const auto give_up = std::chrono::steady_clock::now() + 30s;
  std::vector<std::thread> clients;
  clients.emplace_back(stop_client, at, "/readyz", "", std::ref(out), give_up);
  for (int i = 0; i < 7; ++i) {
    clients.emplace_back(stop_client, at, "/api/v1/organizations", std::string(kToken),
                         std::ref(out), give_up);
  }
  while (out.ok.load() < 200 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(5ms);
  }
  hookd->signal(SIGTERM);
  for (auto& t : clients) t.join();
  EXPECT_EQ(hookd->wait_exit(60s), std::optional<int>(0)) << hookd->output(true);

  std::string errors;
  for (const auto& e : out.errors) errors += e + "; ";
  EXPECT_GT(out.ready_503.load(), 0) << "/readyz never answered 503 before the node left";
  EXPECT_GT(out.ok_after_503.load(), 0) << "nothing was served during --shutdown-delay";
  EXPECT_EQ(out.reset.load(), 0) << errors;
  EXPECT_EQ(out.truncated.load(), 0) << errors;
  EXPECT_EQ(out.other.load(), 0) << errors;
  EXPECT_EQ(out.refused.load(), 8) << "every client ends at a refused connect";
  std::printf(
      "stop under load: %d answered, %d of them after /readyz said 503, %d clean closes, "
      "%d connections reset in the listen backlog\n",
      out.ok.load(), out.ok_after_503.load(), out.closed_clean.load(), out.reset_unaccepted.load());
}

TEST_F(HookdTest, MetricsListenMovesMetricsToASecondListener) {
  auto hookd = start("metrics", {"HOOKD_ADMIN_TOKEN=" + std::string(kToken)},
                     {"--metrics-listen", "127.0.0.1:0"});
  const auto up = listening(*hookd);
  ASSERT_TRUE(up) << hookd->output(true);
  ASSERT_TRUE(up->contains("metricsAddress") && up->at("metricsAddress").is_string()) << *up;
  const auto main_endpoint = endpoint_of(str_of(*up, "address"));
  const auto metrics_endpoint = endpoint_of(str_of(*up, "metricsAddress"));
  EXPECT_NE(main_endpoint.port(), metrics_endpoint.port());

  http_client ops(metrics_endpoint);
  auto r = get(ops, "/metrics");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.body.find("hookd_catalog_objects"), std::string::npos) << r.body;
  EXPECT_EQ(get(ops, "/healthz").status, 200u);
  EXPECT_EQ(get(ops, "/readyz").status, 200u);
  expect_problem(get(ops, "/api/v1/organizations", kToken), 404);  // the API is not served here

  http_client api(main_endpoint);
  expect_problem(get(api, "/metrics"), 404);
  EXPECT_EQ(get(api, "/healthz").status, 200u);
  EXPECT_EQ(get(api, "/readyz").status, 200u);
  EXPECT_EQ(get(api, "/api/v1/organizations", kToken).status, 200u);
}

TEST_F(HookdTest, WithoutMetricsListenMetricsStayOnTheMainListener) {
  auto hookd = start("main", {"HOOKD_ADMIN_TOKEN=" + std::string(kToken)});
  const auto up = listening(*hookd);
  ASSERT_TRUE(up) << hookd->output(true);
  ASSERT_TRUE(up->contains("metricsAddress")) << *up;
  EXPECT_TRUE(up->at("metricsAddress").is_null());
  http_client client(endpoint_of(str_of(*up, "address")));
  EXPECT_EQ(get(client, "/metrics").status, 200u);
}

}  // namespace
}  // namespace hookd::test
