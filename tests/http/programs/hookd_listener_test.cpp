// hookd's listener as a real process over a mkdtemp data dir (docs/operations.md, "TLS",
// "Access log", "Signals and shutdown"): HTTPS checked with curl against a test CA made by the
// openssl command, the certificate and the log level reloaded on SIGHUP, hookctl --cacert, and
// the access log with and without a trusted proxy.

#include "support/delivery_fixture.hpp"
#include "support/test_pki.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

namespace hookd::test {
namespace {

namespace fs = std::filesystem;

const std::string kHookd = std::string(HOOKD_BIN_DIR) + "/hookd";
const std::string kHookctl = std::string(HOOKD_BIN_DIR) + "/hookctl";
constexpr std::string_view kToken = "hkd_listener-test-admin-token-0123456789abc";

std::uint16_t port_of(std::string_view url) {
  return static_cast<std::uint16_t>(std::stoi(std::string(url.substr(url.rfind(':') + 1))));
}

// Runs a shell command; its stdout, and its exit status in `status`.
std::string run(const std::string& command, int& status) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    status = -1;
    return out;
  }
  char chunk[4096];
  for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, pipe)) > 0;) out.append(chunk, n);
  const int raw = ::pclose(pipe);
  status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return out;
}

class HookdListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(kHookd.c_str(), X_OK), 0) << kHookd << " is not built";
    std::string pattern = (fs::temp_directory_path() / "hookd-listener-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::unique_ptr<child_process> start(const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> args{"--listen",   "127.0.0.1:0",
                                  "--data-dir", (dir_ / ("data-" + name)).string(),
                                  "--threads",  "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<child_process>(
        kHookd, std::move(args), dir_ / name,
        std::vector<std::string>{"HOOKD_ADMIN_TOKEN=" + std::string(kToken)});
  }
  static std::optional<json::object> listening(child_process& hookd) {
    return hookd.wait_for_json([](const json::object& o) { return has_event(o, "listening"); },
                               true, 60s);
  }
  // curl's HTTP status for GET `url`, trusting `ca`; 0 when no HTTP answer came (TLS refused).
  static int curl_status(const std::string& url, const fs::path& ca) {
    int status = 0;
    const auto out = run("curl -sS -o /dev/null -w '%{http_code}' --max-time 20 --cacert " +
                             ca.string() + " " + url + " 2>/dev/null",
                         status);
    return std::atoi(out.c_str());
  }
  // The lines of `hookd`'s stderr that are JSON objects with this event.
  static std::vector<json::object> events(child_process& hookd, std::string_view event) {
    std::vector<json::object> out;
    for (const auto& line : hookd.lines(true)) {
      boost::system::error_code ec;
      auto v = json::parse(line, ec);
      if (!ec && v.is_object() && has_event(v.as_object(), event)) out.push_back(v.as_object());
    }
    return out;
  }

  fs::path dir_;
};

TEST_F(HookdListenerTest, TlsFlagsComeInPairsAndBadFilesStopTheStartBeforeTheDataDir) {
  auto only_cert = start("pair", {"--tls-cert", (dir_ / "cert.pem").string()});
  EXPECT_EQ(only_cert->wait_exit(60s), std::optional<int>(2));
  EXPECT_NE(only_cert->output(true).find("needs --tls-key"), std::string::npos)
      << only_cert->output(true);

  std::ofstream(dir_ / "bogus.pem") << "not a certificate\n";
  auto bogus = start("bogus", {"--tls-cert", (dir_ / "bogus.pem").string(), "--tls-key",
                               (dir_ / "bogus.pem").string()});
  EXPECT_EQ(bogus->wait_exit(60s), std::optional<int>(2));
  EXPECT_NE(bogus->output(true).find("--tls-cert"), std::string::npos) << bogus->output(true);
  EXPECT_FALSE(fs::exists(dir_ / "data-bogus")) << "nothing is created before the files load";
}

TEST_F(HookdListenerTest, HttpsWithCurlAndACertificateReloadedOnSighup) {
  const auto a = make_test_pki(dir_, "a");
  const auto b = make_test_pki(dir_, "b");
  const auto live_cert = dir_ / "live-cert.pem";
  const auto live_key = dir_ / "live-key.pem";
  fs::copy_file(a.server_cert, live_cert);
  fs::copy_file(a.server_key, live_key);

  auto hookd = start("tls", {"--tls-cert", live_cert.string(), "--tls-key", live_key.string()});
  const auto up = listening(*hookd);
  ASSERT_TRUE(up) << hookd->output(true);
  const auto port = std::to_string(port_of(str_of(*up, "address")));
  const std::string https = "https://127.0.0.1:" + port;

  EXPECT_EQ(curl_status(https + "/healthz", a.ca_cert), 200);
  EXPECT_EQ(curl_status("https://localhost:" + port + "/healthz", a.ca_cert), 200);
  EXPECT_EQ(curl_status(https + "/healthz", b.ca_cert), 0) << "CA b does not vouch for it";

  // Plain HTTP to the HTTPS port: a clean 400 that says what to do, not a hang or a reset.
  int status = 0;
  const auto plain =
      run("curl -sS --max-time 20 http://127.0.0.1:" + port + "/healthz 2>&1", status);
  EXPECT_EQ(status, 0) << plain;
  EXPECT_NE(plain.find("https://"), std::string::npos) << plain;

  // hookctl talks to it with --cacert (and fails against the system store).
  const auto hookctl_ok = run(kHookctl + " --url " + https + " --token " + std::string(kToken) +
                                  " --cacert " + a.ca_cert.string() + " org list",
                              status);
  EXPECT_EQ(status, 0) << hookctl_ok;
  EXPECT_EQ(hookctl_ok.rfind("[", 0), 0u) << hookctl_ok;
  run(kHookctl + " --url " + https + " --token " + std::string(kToken) + " org list 2>&1", status);
  EXPECT_EQ(status, 3) << "unreachable: the test CA is in no system store";

  // The second certificate in place, then SIGHUP: new connections get it.
  fs::copy_file(b.server_cert, live_cert, fs::copy_options::overwrite_existing);
  fs::copy_file(b.server_key, live_key, fs::copy_options::overwrite_existing);
  hookd->signal(SIGHUP);
  const auto reloaded =
      hookd->wait_for_json([](const json::object& o) { return has_event(o, "reload"); }, true, 20s);
  ASSERT_TRUE(reloaded) << hookd->output(true);
  EXPECT_NE(json::serialize(reloaded->at("reloaded")).find("tls"), std::string::npos) << *reloaded;
  const auto certificates = events(*hookd, "tls_certificate");
  ASSERT_EQ(certificates.size(), 2u);
  EXPECT_NE(str_of(certificates[1], "issuer").find("hookd test CA b"), std::string::npos)
      << certificates[1];
  EXPECT_EQ(curl_status(https + "/healthz", b.ca_cert), 200);
  EXPECT_EQ(curl_status(https + "/healthz", a.ca_cert), 0);
  const auto served = run("openssl s_client -connect 127.0.0.1:" + port + " -CAfile " +
                              b.ca_cert.string() + " -verify_return_error </dev/null 2>&1",
                          status);
  EXPECT_NE(served.find("hookd test CA b"), std::string::npos) << served;
  EXPECT_NE(served.find("Verify return code: 0 (ok)"), std::string::npos) << served;

  // A broken file on reload is logged; the certificate in use stays, and hookd keeps serving.
  std::ofstream(live_cert, std::ios::trunc) << "garbage\n";
  hookd->signal(SIGHUP);
  const auto failed = hookd->wait_for_json(
      [](const json::object& o) { return has_event(o, "tls_reload_failed"); }, true, 20s);
  ASSERT_TRUE(failed) << hookd->output(true);
  EXPECT_EQ(str_of(*failed, "level"), "error");
  EXPECT_TRUE(hookd->running());
  EXPECT_EQ(curl_status(https + "/healthz", b.ca_cert), 200);

  hookd->signal(SIGTERM);
  EXPECT_EQ(hookd->wait_exit(60s), std::optional<int>(0)) << hookd->output(true);
}

TEST_F(HookdListenerTest, SighupAppliesANewLogLevelFromTheConfigFile) {
  const auto pki = make_test_pki(dir_, "a");
  const auto config = dir_ / "hookd.toml";
  std::ofstream(config) << "log-level = \"debug\"\n";
  auto hookd = start("level", {"--config", config.string(), "--tls-cert", pki.server_cert.string(),
                               "--tls-key", pki.server_key.string()});
  const auto up = listening(*hookd);
  ASSERT_TRUE(up) << hookd->output(true);
  const std::string https = "https://127.0.0.1:" + std::to_string(port_of(str_of(*up, "address")));

  // At debug, a refused handshake (the client does not trust the certificate) is logged.
  const auto other = make_test_pki(dir_, "other");
  EXPECT_EQ(curl_status(https + "/healthz", other.ca_cert), 0);
  ASSERT_TRUE(hookd->wait_for_json(
      [](const json::object& o) { return has_event(o, "tls_handshake_failed"); }, true, 20s))
      << hookd->output(true);
  const auto at_debug = events(*hookd, "tls_handshake_failed").size();

  std::ofstream(config, std::ios::trunc) << "log-level = \"info\"\n";
  hookd->signal(SIGHUP);
  const auto reloaded =
      hookd->wait_for_json([](const json::object& o) { return has_event(o, "reload"); }, true, 20s);
  ASSERT_TRUE(reloaded) << hookd->output(true);
  EXPECT_EQ(str_of(*reloaded, "logLevel"), "info");
  EXPECT_NE(json::serialize(reloaded->at("reloaded")).find("log-level"), std::string::npos);

  EXPECT_EQ(curl_status(https + "/healthz", other.ca_cert), 0);
  EXPECT_EQ(curl_status(https + "/healthz", pki.ca_cert), 200);  // served, so the former is done
  EXPECT_EQ(events(*hookd, "tls_handshake_failed").size(), at_debug) << "debug lines are off";

  // A configuration that no longer parses changes nothing and stops nothing.
  std::ofstream(config, std::ios::trunc) << "log-level = \"loud\"\n";
  hookd->signal(SIGHUP);
  ASSERT_TRUE(hookd->wait_for_json(
      [](const json::object& o) { return has_event(o, "reload_failed"); }, true, 20s));
  EXPECT_EQ(curl_status(https + "/healthz", pki.ca_cert), 200);
}

// One GET with a token and X-Forwarded-For; the access line that answered it.
std::optional<json::object> access_line_of(child_process& hookd, const json::object& up) {
  http_client client({asio::ip::make_address("127.0.0.1"), port_of(str_of(up, "address"))});
  const auto r = client.request(bhttp::verb::get, "/api/v1/organizations/0123456789abcdef01234567",
                                std::nullopt,
                                {{"Authorization", "Bearer " + std::string(kToken)},
                                 {"X-Forwarded-For", "203.0.113.9, 198.51.100.2"}});
  EXPECT_EQ(r.status, 404u);
  const auto id = r.header("X-Request-Id");
  return hookd.wait_for_json(
      [&](const json::object& o) { return has_event(o, "access") && str_of(o, "requestId") == id; },
      true, 20s);
}

TEST_F(HookdListenerTest, AccessLogRecordsForwardedForOnlyFromTrustedProxies) {
  auto trusted = start("trusted", {"--access-log", "--trusted-proxies", "10.0.0.0/8,127.0.0.1"});
  const auto up = listening(*trusted);
  ASSERT_TRUE(up) << trusted->output(true);
  const auto line = access_line_of(*trusted, *up);
  ASSERT_TRUE(line) << trusted->output(true);
  EXPECT_EQ(str_of(*line, "level"), "info");
  EXPECT_EQ(str_of(*line, "method"), "GET");
  EXPECT_EQ(str_of(*line, "route"), "/api/v1/organizations/{organizationId}");
  EXPECT_EQ(str_of(*line, "path"), "/api/v1/organizations/0123456789abcdef01234567");
  EXPECT_EQ(line->at("status").as_int64(), 404);
  EXPECT_GE(line->at("durationUs").as_int64(), 0);
  EXPECT_GT(line->at("bytesIn").as_int64(), 0);
  EXPECT_GT(line->at("bytesOut").as_int64(), 0);
  EXPECT_EQ(str_of(*line, "peer"), "127.0.0.1");
  EXPECT_EQ(str_of(*line, "forwardedFor"), "203.0.113.9, 198.51.100.2");
  EXPECT_EQ(json::serialize(*line).find(std::string(kToken)), std::string::npos);

  auto untrusted = start("untrusted", {"--access-log", "--trusted-proxies", "10.0.0.0/8"});
  const auto up2 = listening(*untrusted);
  ASSERT_TRUE(up2) << untrusted->output(true);
  const auto line2 = access_line_of(*untrusted, *up2);
  ASSERT_TRUE(line2) << untrusted->output(true);
  EXPECT_EQ(str_of(*line2, "peer"), "127.0.0.1");
  EXPECT_FALSE(line2->contains("forwardedFor")) << *line2;

  auto off = start("off", {});
  const auto up3 = listening(*off);
  ASSERT_TRUE(up3);
  http_client client({asio::ip::make_address("127.0.0.1"), port_of(str_of(*up3, "address"))});
  EXPECT_EQ(client.request(bhttp::verb::get, "/healthz").status, 200u);
  off->signal(SIGTERM);
  ASSERT_EQ(off->wait_exit(60s), std::optional<int>(0));
  EXPECT_TRUE(events(*off, "access").empty()) << "the access log is off by default";
}

}  // namespace
}  // namespace hookd::test
