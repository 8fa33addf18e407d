// The built hookd-sink binary as a real process on 127.0.0.1 port 0: signatures verified with the
// core signer, scripted statuses, its JSON lines, /__stats, --max-requests and SIGTERM. Requests
// go through the delivery client, the way hookd itself will talk to the sink.

#include "core/delivery/signing.hpp"
#include "http/outbound/delivery_client.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace hookd::http {
namespace {

namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr std::string_view kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// hookd-sink as a child process with its stdout on a pipe.
class sink_process {
 public:
  explicit sink_process(std::vector<std::string> args) {
    const std::string binary = std::string(HOOKD_BIN_DIR) + "/hookd-sink";
    if (::access(binary.c_str(), X_OK) != 0) {
      throw std::runtime_error(binary + " is not built (ninja hookd-sink)");
    }
    args.insert(args.begin(), binary);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    const int rc = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_ = fds[0];
    if (rc != 0) throw std::runtime_error("posix_spawn failed");
  }

  ~sink_process() {
    if (!exited_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    ::close(out_);
  }

  sink_process(const sink_process&) = delete;
  sink_process& operator=(const sink_process&) = delete;

  // The next stdout line, or nullopt at EOF or after `timeout`.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const auto nl = pending_.find('\n'); nl != std::string::npos) {
        std::string line = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
      char buf[4096];
      const auto n = ::read(out_, buf, sizeof buf);
      if (n <= 0) return std::nullopt;
      pending_.append(buf, static_cast<std::size_t>(n));
    }
  }

  json::object read_json(std::chrono::milliseconds timeout = 10s) {
    auto line = read_line(timeout);
    if (!line) {
      ADD_FAILURE() << "no line from hookd-sink";
      return {};
    }
    boost::system::error_code ec;
    json::value v = json::parse(*line, ec);
    if (ec || !v.is_object()) {
      ADD_FAILURE() << "not a JSON object: " << *line;
      return {};
    }
    return v.as_object();
  }

  // The exit code, or nullopt if the process is still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(10ms);
    }
    return std::nullopt;
  }

  void signal(int sig) { ::kill(pid_, sig); }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool exited_ = false;
  std::string pending_;
};

class hookd_sink_test : public ::testing::Test {
 protected:
  // Starts the sink on port 0 and reads its address from the first line.
  std::unique_ptr<sink_process> start(std::vector<std::string> args) {
    args.insert(args.begin(), {"--listen", "127.0.0.1:0"});
    auto sink = std::make_unique<sink_process>(std::move(args));
    const json::object first = sink->read_json();
    EXPECT_EQ(first.if_contains("event") ? json::value_to<std::string>(first.at("event")) : "",
              "listening");
    address_ = first.if_contains("address") ? json::value_to<std::string>(first.at("address"))
                                            : std::string();
    EXPECT_TRUE(address_.starts_with("http://127.0.0.1:")) << address_;
    return sink;
  }

  attempt_result post(std::string_view path, std::string body,
                      std::vector<header_entry> headers = {},
                      std::chrono::milliseconds timeout = 5s) {
    client_options options;
    options.allow_private_targets = true;
    options.total_timeout = timeout;
    delivery_client client(ioc_.get_executor(), options);
    headers.push_back({"content-type", "application/json"});
    auto result = asio::co_spawn(
        ioc_, client.send({address_ + std::string(path), std::move(headers), std::move(body)}),
        asio::use_future);
    ioc_.restart();
    ioc_.run();
    return result.get();
  }

  attempt_result post_signed(std::string_view path, const std::string& body, std::string_view id,
                             std::int64_t unix_seconds) {
    const auto signer = webhook_signer::create(kSecret).value();
    return post(path, body,
                {{"webhook-id", std::string(id)},
                 {"webhook-timestamp", std::to_string(unix_seconds)},
                 {"webhook-signature", signer.sign(id, unix_seconds, body)}});
  }

  // GET /__stats with a blocking Beast client (bounded by socket timeouts).
  json::object stats() {
    asio::io_context ioc;
    tcp::socket socket(ioc);
    const auto port =
        static_cast<std::uint16_t>(std::stoi(address_.substr(address_.rfind(':') + 1)));
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval tv{5, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    bhttp::request<bhttp::empty_body> req{bhttp::verb::get, "/__stats", 11};
    req.set(bhttp::field::host, "127.0.0.1");
    bhttp::write(socket, req);
    beast::flat_buffer buffer;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(socket, buffer, res);
    EXPECT_EQ(res.result_int(), 200U);
    return json::parse(res.body()).as_object();
  }

  static std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  asio::io_context ioc_;
  std::string address_;
};

TEST_F(hookd_sink_test, accepts_a_correctly_signed_delivery) {
  auto sink = start({"--secret", std::string(kSecret)});
  const std::string body =
      R"({"type":"user.created","timestamp":"2026-01-01T00:00:00.000Z","data":{}})";
  const std::int64_t now = now_seconds();
  const attempt_result result = post_signed("/hook", body, "msg_2a", now);
  ASSERT_EQ(result.status_code, 200) << result.error;

  const json::object line = sink->read_json();
  EXPECT_EQ(line.at("path"), "/hook");
  EXPECT_EQ(line.at("webhookId"), "msg_2a");
  EXPECT_EQ(line.at("timestamp"), now);
  EXPECT_EQ(line.at("verified"), true);
  EXPECT_EQ(line.at("status"), 200);
  EXPECT_EQ(line.at("type"), "user.created");
  EXPECT_EQ(line.at("bytes"), body.size());
}

TEST_F(hookd_sink_test, rejects_a_bad_signature_with_401) {
  auto sink = start({"--secret", std::string(kSecret)});
  const std::int64_t now = now_seconds();
  const auto other = webhook_signer::create("whsec_" + std::string(32, 'A')).value();
  const std::string body = R"({"type":"a.b"})";
  const attempt_result result = post("/hook", body,
                                     {{"webhook-id", "msg_1"},
                                      {"webhook-timestamp", std::to_string(now)},
                                      {"webhook-signature", other.sign("msg_1", now, body)}});
  EXPECT_EQ(result.status_code, 401);
  const json::value error = json::parse(result.body_prefix);
  EXPECT_EQ(error.at("error"), "no_matching_signature") << result.body_prefix;

  const json::object line = sink->read_json();
  EXPECT_EQ(line.at("verified"), false);
  EXPECT_EQ(line.at("status"), 401);
  EXPECT_TRUE(line.contains("error"));

  // No signature headers at all: also refused.
  EXPECT_EQ(post("/hook", body).status_code, 401);
}

TEST_F(hookd_sink_test, rejects_a_stale_timestamp_with_401) {
  auto sink = start({"--secret", std::string(kSecret)});
  const attempt_result result =
      post_signed("/hook", R"({"type":"a.b"})", "msg_old", now_seconds() - 10 * 60);
  EXPECT_EQ(result.status_code, 401);
  EXPECT_EQ(json::parse(result.body_prefix).at("error"), "stale_timestamp") << result.body_prefix;
  EXPECT_EQ(sink->read_json().at("verified"), false);

  const json::object counts = stats();
  EXPECT_EQ(counts.at("received"), 1);
  EXPECT_EQ(counts.at("verified"), 0);
  EXPECT_EQ(counts.at("failedVerification"), 1);
}

TEST_F(hookd_sink_test, answers_scripted_statuses_per_path) {
  auto sink = start({"--quiet", "--status", "204", "--script", "/flaky=500x2", "--script",
                     "/gone=410", "--script", "/busy=429x1,retry-after=30"});
  EXPECT_EQ(post("/flaky", "{}").status_code, 500);
  EXPECT_EQ(post("/flaky", "{}").status_code, 500);
  EXPECT_EQ(post("/flaky", "{}").status_code, 204);
  EXPECT_EQ(post("/gone", "{}").status_code, 410);
  EXPECT_EQ(post("/gone?x=1", "{}").status_code, 410);
  const attempt_result busy = post("/busy", "{}");
  EXPECT_EQ(busy.status_code, 429);
  EXPECT_EQ(busy.retry_after.value_or(""), "30");
  EXPECT_EQ(post("/busy", "{}").status_code, 204);
  EXPECT_EQ(post("/other", "{}").status_code, 204);

  const json::object counts = stats();
  EXPECT_EQ(counts.at("received"), 8);
  EXPECT_EQ(counts.at("verified"), 0);
  const json::object& by_status = counts.at("byStatus").as_object();
  EXPECT_EQ(by_status.at("500"), 2);
  EXPECT_EQ(by_status.at("410"), 2);
  EXPECT_EQ(by_status.at("429"), 1);
  EXPECT_EQ(by_status.at("204"), 3);
}

TEST_F(hookd_sink_test, delays_a_scripted_answer) {
  auto sink = start({"--script", "/slow=200,delay=5000"});
  // The client gives up long before the sink answers.
  const attempt_result result = post("/slow", "{}", {}, 300ms);
  EXPECT_EQ(result.status_code, 0);
  EXPECT_TRUE(result.error.starts_with("timeout after 300ms")) << result.error;
  // Unscripted paths are not delayed.
  EXPECT_EQ(post("/fast", "{}").status_code, 200);
}

TEST_F(hookd_sink_test, exits_zero_after_max_requests) {
  auto sink = start({"--max-requests", "2"});
  EXPECT_EQ(post("/a", R"({"type":"x.y"})").status_code, 200);
  EXPECT_EQ(sink->read_json().at("type"), "x.y");
  EXPECT_EQ(post("/b", "not json").status_code, 200);
  EXPECT_TRUE(sink->read_json().at("type").is_null());
  EXPECT_EQ(sink->wait_exit(), std::optional<int>(0));
  const json::object summary = sink->read_json();
  EXPECT_EQ(summary.at("event"), "summary");
  EXPECT_EQ(summary.at("received"), 2);
}

TEST_F(hookd_sink_test, exits_zero_on_sigterm_with_a_summary) {
  auto sink = start({"--quiet"});
  EXPECT_EQ(post("/a", "{}").status_code, 200);
  sink->signal(SIGTERM);
  EXPECT_EQ(sink->wait_exit(), std::optional<int>(0));
  const json::object summary = sink->read_json();
  EXPECT_EQ(summary.at("event"), "summary");
  EXPECT_EQ(summary.at("received"), 1);
  EXPECT_EQ(summary.at("byStatus").at("200"), 1);
}

TEST_F(hookd_sink_test, refuses_bad_options_with_exit_2) {
  for (std::vector<std::string> args :
       std::vector<std::vector<std::string>>{{"--status", "99"},
                                             {"--script", "nopath=200"},
                                             {"--script", "/x=200,wait=5"},
                                             {"--listen", "nowhere"},
                                             {"--frobnicate"},
                                             {"--secret", "whsec_***"}}) {
    sink_process sink(args);
    EXPECT_EQ(sink.wait_exit(), std::optional<int>(2)) << args.front() << " " << args.back();
  }
}

}  // namespace
}  // namespace hookd::http
