// hookd-load end to end: the built hookd-load binary against a real hookd (its own data dir from
// mkdtemp, port 0, a known admin token). Runs are short (about a second, a few connections) and
// the assertions are on the JSON summary that bench/compare.sh reads: counts, statuses, errors,
// ordered percentiles, what exists afterwards, and the exit codes. No assertion on speed.

#include "http/cli/cli_client.hpp"

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
namespace http = hookd::http;
using namespace std::chrono_literals;

constexpr const char* kAdminToken = "hkd_load_test_admin_token_0123456789";
const fs::path kBinDir = HOOKD_BIN_DIR;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// A child process with stdout and stderr in files. Killed (SIGKILL) by the destructor if it still
// runs; the environment is ours without HOOKD_*, plus `extra_env`.
class child {
 public:
  child(const fs::path& program, std::vector<std::string> args, const fs::path& prefix,
        const std::vector<std::string>& extra_env = {})
      : out_(prefix.string() + ".out"), err_(prefix.string() + ".err") {
    args.insert(args.begin(), program.string());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env(extra_env);
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "HOOKD_", 6) != 0) env.emplace_back(*e);
    }
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) pid_ = -1;
  }
  ~child() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  bool started() const { return pid_ > 0; }
  bool running() {
    if (pid_ <= 0 || code_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return false;
    }
    return true;
  }
  void signal(int sig) {
    if (running()) ::kill(pid_, sig);
  }
  // The exit code, or nullopt when it still runs after `limit` (a liveness guard, not a timing
  // assertion).
  std::optional<int> wait(std::chrono::milliseconds limit) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    while (running() && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(10ms);
    }
    return code_;
  }
  std::string out() const { return read_text(out_); }
  std::string err() const { return read_text(err_); }

 private:
  std::string out_, err_;
  pid_t pid_ = -1;
  std::optional<int> code_;
};

struct load_result {
  int code = -1;
  std::string out, err;
  json::object summary;  // empty unless stdout was one JSON object
};

class HookdLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kBinDir / "hookd")) << "build the hookd target first";
    ASSERT_TRUE(fs::exists(kBinDir / "hookd-load")) << "build the hookd-load target first";
    std::string pattern = (fs::temp_directory_path() / "hookd_load_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    hookd_ = std::make_unique<child>(
        kBinDir / "hookd",
        std::vector<std::string>{"--listen", "127.0.0.1:0", "--data-dir", (dir_ / "data").string(),
                                 "--threads", "2", "--unsafe-no-fsync", "--allow-private-targets",
                                 "--retry-schedule", "200ms,200ms,200ms", "--shutdown-delay", "0s"},
        dir_ / "hookd", std::vector<std::string>{std::string("HOOKD_ADMIN_TOKEN=") + kAdminToken});
    ASSERT_TRUE(hookd_->started());
    // The listening line carries the port hookd picked.
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    while (url_.empty() && hookd_->running() && std::chrono::steady_clock::now() < give_up) {
      for (const auto& line : lines_of(hookd_->err())) {
        boost::system::error_code ec;
        const json::value v = json::parse(line, ec);
        if (!ec && v.is_object() && v.as_object().contains("event") &&
            v.at("event") == "listening") {
          url_ = std::string(v.at("address").as_string());
        }
      }
      if (url_.empty()) std::this_thread::sleep_for(20ms);
    }
    ASSERT_FALSE(url_.empty()) << "hookd did not start:\n" << hookd_->err();
  }

  void TearDown() override {
    if (hookd_) {
      hookd_->signal(SIGTERM);
      EXPECT_EQ(hookd_->wait(60s), 0) << hookd_->err();
      if (HasFailure()) std::cerr << "hookd log:\n" << hookd_->err();
      hookd_.reset();
    }
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }

  // Runs hookd-load to completion (bounded) with --url of this hookd unless `with_url` is false.
  load_result run_load(std::vector<std::string> args, bool with_url = true) {
    if (with_url) args.insert(args.begin(), {"--url", url_});
    child load(kBinDir / "hookd-load", std::move(args), dir_ / ("load." + std::to_string(++runs_)));
    load_result r;
    EXPECT_TRUE(load.started());
    const auto code = load.wait(120s);
    EXPECT_TRUE(code.has_value()) << "hookd-load did not finish";
    r.code = code.value_or(-1);
    r.out = load.out();
    r.err = load.err();
    boost::system::error_code ec;
    const json::value v = json::parse(r.out, ec);
    if (!ec && v.is_object()) r.summary = v.as_object();
    return r;
  }

  // GET as the admin; the parsed JSON answer (null on a failure, which fails the test).
  json::value admin_get(const std::string& target) {
    auto where = std::get<http::base_url>(http::parse_base_url(url_));
    http::sync_client client(where, 10s);
    auto r = client.send(http::bhttp::verb::get, target, {},
                         {{"Authorization", std::string("Bearer ") + kAdminToken}});
    auto* ok = std::get_if<http::client_response>(&r);
    EXPECT_NE(ok, nullptr);
    if (ok == nullptr) return nullptr;
    EXPECT_EQ(ok->status, 200u) << ok->body;
    return json::parse(ok->body);
  }

  // The status of a GET as the admin (0 when hookd did not answer, which fails the test).
  unsigned admin_status(const std::string& target) {
    auto where = std::get<http::base_url>(http::parse_base_url(url_));
    http::sync_client client(where, 10s);
    auto r = client.send(http::bhttp::verb::get, target, {},
                         {{"Authorization", std::string("Bearer ") + kAdminToken}});
    auto* ok = std::get_if<http::client_response>(&r);
    EXPECT_NE(ok, nullptr);
    return ok == nullptr ? 0 : ok->status;
  }

  static std::string webhooks_path(const std::string& org, const std::string& project) {
    return "/api/v1/organizations/" + org + "/projects/" + project + "/settings/webhooks";
  }

  fs::path dir_;
  std::unique_ptr<child> hookd_;
  std::string url_;
  int runs_ = 0;
};

std::uint64_t u64(const json::value& v) {
  return v.to_number<std::uint64_t>();
}

void expect_no_errors(const json::object& s) {
  for (const auto& [kind, count] : s.at("errors").as_object()) {
    EXPECT_EQ(u64(count), 0u) << kind;
  }
}

void expect_ordered_latency(const json::object& s) {
  const auto& l = s.at("latency_us").as_object();
  EXPECT_LE(u64(l.at("min")), u64(l.at("p50")));
  EXPECT_LE(u64(l.at("p50")), u64(l.at("p90")));
  EXPECT_LE(u64(l.at("p90")), u64(l.at("p99")));
  EXPECT_LE(u64(l.at("p99")), u64(l.at("p999")));
  EXPECT_LE(u64(l.at("p999")), u64(l.at("max")));
  EXPECT_GT(u64(l.at("max")), 0u);
}

TEST_F(HookdLoadTest, GetScenarioAnswersOnly200AndCleansUp) {
  auto r = run_load({"--scenario", "get", "--admin-token", kAdminToken, "--duration", "1",
                     "--connections", "4", "--webhooks", "5"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_FALSE(r.summary.empty()) << r.out;
  const auto& s = r.summary;
  EXPECT_EQ(s.at("scenario"), "get");
  EXPECT_EQ(s.at("mode"), "closed");
  EXPECT_TRUE(s.at("rate").is_null());
  EXPECT_EQ(u64(s.at("connections")), 4u);
  const auto requests = u64(s.at("requests"));
  EXPECT_GT(requests, 0u);
  const auto& status = s.at("status").as_object();
  ASSERT_EQ(status.size(), 1u) << r.out;
  EXPECT_EQ(u64(status.at("200")), requests);
  expect_no_errors(s);
  expect_ordered_latency(s);
  EXPECT_GT(s.at("duration_s").to_number<double>(), 0.0);
  EXPECT_GT(s.at("rps").to_number<double>(), 0.0);

  // Progress: JSON lines on stderr with the agreed fields.
  bool progress = false;
  for (const auto& line : lines_of(r.err)) {
    const json::value v = json::parse(line);
    const auto& o = v.as_object();
    if (o.contains("phase")) continue;  // setup and cleanup lines
    progress = true;
    for (const char* key : {"t", "requests", "rps", "errors", "p99_us"}) {
      EXPECT_TRUE(o.contains(key)) << key << " in " << line;
    }
  }
  EXPECT_TRUE(progress) << r.err;

  // It deleted the organization it made, with its project and webhooks, and revoked its token.
  const auto& setup = s.at("setup").as_object();
  EXPECT_EQ(setup.at("cleanup"), "done");
  EXPECT_EQ(u64(setup.at("webhooks")), 5u);
  EXPECT_FALSE(setup.contains("note"));
  const std::string org(setup.at("organization").as_string());
  const std::string project(setup.at("project").as_array().at(0).as_string());
  EXPECT_EQ(admin_status("/api/v1/organizations/" + org), 404u);
  EXPECT_EQ(admin_status("/api/v1/organizations/" + org + "/projects/" + project), 404u);
  EXPECT_EQ(admin_status("/api/v1/tokens/" + std::string(setup.at("token_id").as_string())), 404u);
}

TEST_F(HookdLoadTest, CreateWithRequestsMakesExactlyThatManyAndKeepsThem) {
  auto r = run_load({"--scenario", "create", "--admin-token", kAdminToken, "--requests", "50",
                     "--connections", "4", "--keep"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto& s = r.summary;
  EXPECT_EQ(u64(s.at("requests")), 50u);
  const auto& status = s.at("status").as_object();
  ASSERT_EQ(status.size(), 1u) << r.out;
  EXPECT_EQ(u64(status.at("201")), 50u);
  expect_no_errors(s);
  expect_ordered_latency(s);

  const auto& setup = s.at("setup").as_object();
  EXPECT_EQ(setup.at("cleanup"), "kept");
  const std::string org(setup.at("organization").as_string());
  const std::string project(setup.at("project").as_array().at(0).as_string());
  const json::value hooks = admin_get(webhooks_path(org, project));
  ASSERT_EQ(hooks.as_array().size(), 50u);
  for (const auto& hook : hooks.as_array()) {
    EXPECT_EQ(hook.at("url"), "https://hooks.example.com/hookd-load");
    EXPECT_EQ(hook.at("events"), json::array{"hookd.load.test"});
  }

  // The kept token drives a run over existing webhooks, which leaves them alone.
  const std::string token(setup.at("token").as_string());
  auto again = run_load({"--scenario", "get", "--token", token, "--organization", org, "--project",
                         project, "--duration", "0.5", "--connections", "2"});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_GT(u64(again.summary.at("requests")), 0u);
  EXPECT_EQ(again.summary.at("status").as_object().size(), 1u) << again.out;
  expect_no_errors(again.summary);
  EXPECT_EQ(u64(again.summary.at("setup").at("webhooks")), 50u);
  EXPECT_EQ(admin_get(webhooks_path(org, project)).as_array().size(), 50u);
}

TEST_F(HookdLoadTest, OpenLoopSendsTheScheduledNumberOfRequests) {
  auto r = run_load({"--scenario", "get", "--admin-token", kAdminToken, "--rate", "200",
                     "--duration", "1", "--connections", "4", "--webhooks", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto& s = r.summary;
  EXPECT_EQ(s.at("mode"), "open");
  EXPECT_EQ(s.at("rate").to_number<double>(), 200.0);
  // A count, not a speed: 200 slots fall in the measured second.
  const auto requests = u64(s.at("requests"));
  EXPECT_GE(requests, 150u);
  EXPECT_LE(requests, 250u);
  EXPECT_EQ(u64(s.at("status").at("200")), requests);
  expect_no_errors(s);
  expect_ordered_latency(s);
}

TEST_F(HookdLoadTest, DeliverReceivesEverySignedDelivery) {
  auto r = run_load({"--scenario", "deliver", "--admin-token", kAdminToken, "--duration", "1",
                     "--connections", "2", "--projects", "2", "--webhooks", "3", "--drain", "60"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto& s = r.summary;
  expect_no_errors(s);  // the signature count included
  const auto& d = s.at("deliver").as_object();
  const auto events = u64(d.at("events"));
  EXPECT_GT(events, 0u);
  EXPECT_EQ(events, u64(s.at("status").at("202")));
  EXPECT_EQ(u64(d.at("deliveries")), events * 3);
  EXPECT_EQ(u64(d.at("missing")), 0u);
  EXPECT_EQ(u64(d.at("unknown")), 0u);
  const auto& l = d.at("latency_us").as_object();
  EXPECT_LE(u64(l.at("p50")), u64(l.at("p99")));
  EXPECT_LE(u64(l.at("p99")), u64(l.at("max")));
  // hookd's share: the kernel's receive time was read (a delivery takes an fsync at least), and
  // each delivery's share lies inside its whole latency, so every percentile does too.
  const auto& share = d.at("sent_to_received_us").as_object();
  EXPECT_GT(u64(share.at("p50")), 0u);
  for (const char* q : {"p50", "p99", "max"}) {
    EXPECT_LE(u64(share.at(q)), u64(l.at(q))) << q;
  }
  EXPECT_LE(u64(d.at("send_late_us").at("p50")), u64(l.at("p50")));
  EXPECT_EQ(s.at("setup").at("cleanup"), "done");
}

// --signing v1a: the webhooks sign with Ed25519 and hookd-load verifies with their public keys.
TEST_F(HookdLoadTest, DeliverWithV1aWebhooksVerifiesEd25519Signatures) {
  auto r = run_load({"--scenario", "deliver", "--admin-token", kAdminToken, "--duration", "1",
                     "--connections", "2", "--webhooks", "2", "--signing", "v1a", "--drain", "60"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto& s = r.summary;
  expect_no_errors(s);  // the signature count included
  EXPECT_EQ(s.at("setup").at("signing"), "v1a");
  const auto& d = s.at("deliver").as_object();
  const auto events = u64(d.at("events"));
  EXPECT_GT(events, 0u);
  EXPECT_EQ(u64(d.at("deliveries")), events * 2);
  EXPECT_EQ(u64(d.at("missing")), 0u);

  auto bad = run_load({"--scenario", "deliver", "--admin-token", kAdminToken, "--signing", "v2"});
  EXPECT_EQ(bad.code, 2);
}

TEST_F(HookdLoadTest, SigintStopsTheRunAndStillPrintsTheSummary) {
  child load(kBinDir / "hookd-load",
             {"--url", url_, "--scenario", "get", "--admin-token", kAdminToken, "--duration", "60",
              "--connections", "2", "--webhooks", "2"},
             dir_ / "interrupted");
  ASSERT_TRUE(load.started());
  // Waits for the first progress line of the load itself, then interrupts.
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  bool loading = false;
  while (!loading && load.running() && std::chrono::steady_clock::now() < give_up) {
    for (const auto& line : lines_of(load.err())) {
      boost::system::error_code ec;
      const json::value v = json::parse(line, ec);
      if (!ec && v.is_object() && v.as_object().contains("p99_us")) loading = true;
    }
    if (!loading) std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(loading) << load.err();
  load.signal(SIGINT);
  ASSERT_EQ(load.wait(60s), 0) << load.err();
  const json::value s = json::parse(load.out());
  EXPECT_EQ(s.at("interrupted"), true);
  EXPECT_GT(u64(s.at("requests")), 0u);
  EXPECT_EQ(s.at("setup").at("cleanup"), "done");
}

TEST_F(HookdLoadTest, BadUsageExitsTwoWithAJsonError) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"--url", "http://127.0.0.1:1", "--scenario", "get"},  // no credentials
      {"--url", "http://127.0.0.1:1", "--scenario", "fly", "--admin-token", "x"},
      {"--url", "https://127.0.0.1:1", "--scenario", "get", "--admin-token", "x"},
      {"--url", "http://127.0.0.1:1", "--scenario", "get", "--admin-token", "x", "--rate", "-5"},
      {"--url", "http://127.0.0.1:1", "--scenario", "mix", "--admin-token", "x", "--mix", "get=x"},
      {"--url", "http://127.0.0.1:1", "--scenario", "get", "--admin-token", "x", "--bogus"},
      {"--url", "http://127.0.0.1:1", "--scenario", "get", "--token", "x"},
  };
  for (const auto& args : cases) {
    auto r = run_load(args, false);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    boost::system::error_code ec;
    const json::value e = json::parse(r.err, ec);
    ASSERT_FALSE(ec) << r.err;
    EXPECT_TRUE(e.at("error").is_string()) << r.err;
    EXPECT_TRUE(e.at("hint").is_string()) << r.err;
  }
}

TEST_F(HookdLoadTest, UnreachableHookdExitsOneWithAJsonError) {
  // Stops this test's hookd so that its port is known to be closed.
  const std::string url = url_;
  hookd_->signal(SIGTERM);
  ASSERT_EQ(hookd_->wait(60s), 0);
  hookd_.reset();
  auto r = run_load({"--url", url, "--scenario", "get", "--admin-token", kAdminToken}, false);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(r.out.empty());
  const json::value e = json::parse(r.err);
  EXPECT_NE(std::string(e.at("error").as_string()).find("cannot connect"), std::string::npos);
}

}  // namespace
