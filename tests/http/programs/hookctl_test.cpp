// hookctl end to end: the built hookctl binary against a real hookd (its own data dir from
// mkdtemp, a free port, a known admin token). Asserts what scripts depend on: one line of JSON
// on stdout, the problem on stderr, and the exit codes 0 / 1 / 2 / 3.

#include "http/cli/cli_client.hpp"

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
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

constexpr const char* kAdminToken = "hkd_test_admin_token_0123456789abcdef";

const fs::path kBinDir = HOOKD_BIN_DIR;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A port nobody listens on right now: bind to port 0, read the port, close.
std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// The inherited environment without HOOKD_*, so that a developer's HOOKD_URL or HOOKD_TOKEN
// never leaks into a test, plus `extra` ("NAME=value").
std::vector<std::string> child_env(const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "HOOKD_", 6) != 0) out.emplace_back(*e);
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Starts `program` with stdout and stderr going to files; returns its pid. The child gets
// SIGKILL if this test process dies first, so that a crashed test leaves no hookd behind.
pid_t spawn(const fs::path& program, std::vector<std::string> args,
            const std::vector<std::string>& extra_env, const fs::path& out, const fs::path& err) {
  args.insert(args.begin(), program.string());
  auto env = child_env(extra_env);
  auto argv = c_strings(args);
  auto envp = c_strings(env);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) _exit(126);
    const int in_fd = ::open("/dev/null", O_RDONLY);
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in_fd < 0 || out_fd < 0 || err_fd < 0) _exit(126);
    if (::dup2(in_fd, STDIN_FILENO) < 0 || ::dup2(out_fd, STDOUT_FILENO) < 0 ||
        ::dup2(err_fd, STDERR_FILENO) < 0) {
      _exit(126);
    }
    ::execve(program.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  EXPECT_GT(pid, 0) << "cannot fork: " << std::strerror(errno);
  return pid;
}

// The exit code, or 128 + signal for a child killed by a signal.
int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

struct cli_result {
  int code = -1;
  std::string out, err;

  json::value json_out() const { return json::parse(out); }
  json::value json_err() const { return json::parse(err); }
};

// Runs hookctl to completion in `dir`.
cli_result run_hookctl(const fs::path& dir, std::vector<std::string> args,
                       const std::vector<std::string>& extra_env = {}) {
  static int counter = 0;
  const auto n = std::to_string(++counter);
  const fs::path out = dir / ("hookctl." + n + ".out"), err = dir / ("hookctl." + n + ".err");
  cli_result r;
  pid_t pid = spawn(kBinDir / "hookctl", std::move(args), extra_env, out, err);
  if (pid < 0) return r;
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  r.code = exit_code_of(status);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

bool is_id(const json::value& v) {
  if (!v.is_string()) return false;
  const auto& s = v.get_string();
  if (s.size() != 24) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string str(const json::value& v, std::string_view key) {
  return std::string(v.as_object().at(key).as_string());
}

// One line of output, ending in a newline.
bool one_line(const std::string& s) {
  return !s.empty() && s.back() == '\n' && s.find('\n') == s.size() - 1;
}

class HookctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kBinDir / "hookd")) << "build the hookd target first";
    ASSERT_TRUE(fs::exists(kBinDir / "hookctl")) << "build the hookctl target first";
    std::string templ = (fs::temp_directory_path() / "hookctl_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    port_ = free_port();
    url_ = "http://127.0.0.1:" + std::to_string(port_);
    hookd_ = spawn(kBinDir / "hookd",
                   {"--listen", "127.0.0.1:" + std::to_string(port_), "--data-dir",
                    (dir_ / "data").string(), "--threads", "2", "--shutdown-delay", "0s"},
                   {std::string("HOOKD_ADMIN_TOKEN=") + kAdminToken}, dir_ / "hookd.out",
                   dir_ / "hookd.log");
    ASSERT_GT(hookd_, 0);
    ASSERT_TRUE(wait_ready()) << "hookd did not become ready:\n" << read_file(dir_ / "hookd.log");
  }

  void TearDown() override {
    if (hookd_ > 0) {
      EXPECT_EQ(stop_hookd(), 0) << read_file(dir_ / "hookd.log");
    }
    if (HasFailure() && !dir_.empty()) {
      std::cerr << "hookd log:\n" << read_file(dir_ / "hookd.log");
    }
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // Polls /readyz until 200; false when hookd exits first or after a generous bound (this is a
  // liveness guard, not a timing assertion).
  bool wait_ready() {
    auto where = std::get<hookd::http::base_url>(hookd::http::parse_base_url(url_));
    hookd::http::sync_client client(where, std::chrono::seconds(5));
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < give_up) {
      int status = 0;
      if (::waitpid(hookd_, &status, WNOHANG) == hookd_) {
        hookd_ = -1;
        return false;
      }
      auto r = client.send(hookd::http::bhttp::verb::get, "/readyz");
      if (auto* ok = std::get_if<hookd::http::client_response>(&r); ok && ok->status == 200) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // SIGTERM, then the exit code (SIGKILL and -1 when it does not exit within a minute).
  int stop_hookd() {
    ::kill(hookd_, SIGTERM);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    int status = 0;
    while (std::chrono::steady_clock::now() < give_up) {
      if (::waitpid(hookd_, &status, WNOHANG) == hookd_) {
        hookd_ = -1;
        return exit_code_of(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(hookd_, SIGKILL);
    ::waitpid(hookd_, &status, 0);
    hookd_ = -1;
    return -1;
  }

  // hookctl as the admin, against this hookd.
  cli_result admin(std::vector<std::string> args) {
    args.insert(args.begin(), {"--url", url_, "--token", kAdminToken});
    return run_hookctl(dir_, std::move(args));
  }
  cli_result with_env(std::vector<std::string> args, const std::vector<std::string>& env) {
    return run_hookctl(dir_, std::move(args), env);
  }

  // An organization and a project in it; their ids.
  std::pair<std::string, std::string> make_project() {
    auto org = admin({"org", "create", "Acme"});
    EXPECT_EQ(org.code, 0) << org.err;
    const std::string org_id = str(org.json_out(), "_id");
    auto proj =
        admin({"project", "create", org_id, "--name", "Storefront", "--slug", "storefront"});
    EXPECT_EQ(proj.code, 0) << proj.err;
    return {org_id, str(proj.json_out(), "_id")};
  }

  fs::path dir_;
  std::uint16_t port_ = 0;
  std::string url_;
  pid_t hookd_ = -1;
};

TEST_F(HookctlTest, OrganizationsAndProjects) {
  auto created = admin({"org", "create", "Acme Corp"});
  ASSERT_EQ(created.code, 0) << created.err;
  EXPECT_TRUE(one_line(created.out)) << created.out;
  EXPECT_TRUE(created.err.empty()) << created.err;
  json::value org = created.json_out();
  ASSERT_TRUE(is_id(org.at("_id")));
  EXPECT_EQ(str(org, "name"), "Acme Corp");
  const std::string org_id = str(org, "_id");

  auto listed = admin({"org", "list"});
  ASSERT_EQ(listed.code, 0) << listed.err;
  EXPECT_TRUE(one_line(listed.out));
  ASSERT_EQ(listed.json_out().as_array().size(), 1u);
  EXPECT_EQ(listed.json_out().as_array()[0], org);

  auto got = admin({"org", "get", org_id});
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_EQ(got.json_out(), org);

  auto proj = admin({"project", "create", org_id, "--name", "Storefront", "--slug", "storefront",
                     "--description", "The shop", "--status", "active", "--app-icon-url",
                     "https://cdn.example.com/icon.png"});
  ASSERT_EQ(proj.code, 0) << proj.err;
  json::value p = proj.json_out();
  ASSERT_TRUE(is_id(p.at("_id")));
  EXPECT_EQ(str(p, "organization"), org_id);
  EXPECT_EQ(str(p, "slug"), "storefront");
  EXPECT_EQ(str(p, "description"), "The shop");
  EXPECT_EQ(str(p, "status"), "active");
  EXPECT_EQ(str(p, "appIconUrl"), "https://cdn.example.com/icon.png");

  // The default status, with --opt=value syntax.
  auto draft = admin({"project", "create", org_id, "--name=Back office", "--slug=back-office"});
  ASSERT_EQ(draft.code, 0) << draft.err;
  EXPECT_EQ(str(draft.json_out(), "status"), "draft");

  auto projects = admin({"project", "list", org_id});
  ASSERT_EQ(projects.code, 0) << projects.err;
  ASSERT_EQ(projects.json_out().as_array().size(), 2u);
  EXPECT_EQ(projects.json_out().as_array()[0], p);  // oldest first

  auto one = admin({"project", "get", org_id, str(p, "_id")});
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_EQ(one.json_out(), p);

  // A taken slug: exit 1, the 409 problem on stderr, nothing on stdout.
  auto taken = admin({"project", "create", org_id, "--name", "Again", "--slug", "storefront"});
  EXPECT_EQ(taken.code, 1);
  EXPECT_TRUE(taken.out.empty()) << taken.out;
  ASSERT_TRUE(one_line(taken.err)) << taken.err;
  json::value problem = taken.json_err();
  EXPECT_EQ(problem.at("status").as_int64(), 409);
  EXPECT_EQ(str(problem, "type"), "https://hookd.dev/problems/conflict");
}

TEST_F(HookctlTest, HttpErrorsExitOneWithTheProblemOnStderr) {
  // Unknown organization: 404.
  auto missing = admin({"org", "get", "0123456789abcdef01234567"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(missing.out.empty());
  ASSERT_TRUE(one_line(missing.err)) << missing.err;
  EXPECT_EQ(missing.json_err().at("status").as_int64(), 404);
  EXPECT_EQ(str(missing.json_err(), "type"), "https://hookd.dev/problems/not-found");
  EXPECT_FALSE(str(missing.json_err(), "requestId").empty());

  // A malformed id is the server's 400, naming the parameter.
  auto bad_id = admin({"org", "get", "not-an-id"});
  EXPECT_EQ(bad_id.code, 1);
  json::value bad = bad_id.json_err();
  EXPECT_EQ(str(bad, "type"), "https://hookd.dev/problems/bad-id");
  EXPECT_EQ(str(bad.at("errors").as_array()[0], "field"), "organizationId");

  // A path argument cannot escape its segment: "../tokens" arrives as one (malformed) id.
  auto traversal = admin({"org", "get", "../tokens"});
  EXPECT_EQ(traversal.code, 1);
  EXPECT_EQ(str(traversal.json_err(), "type"), "https://hookd.dev/problems/bad-id");

  // Validation errors name every field.
  auto invalid = admin({"org", "create", "x"});
  EXPECT_EQ(invalid.code, 1);
  json::value v = invalid.json_err();
  EXPECT_EQ(str(v, "type"), "https://hookd.dev/problems/validation");
  EXPECT_EQ(str(v.at("errors").as_array()[0], "field"), "name");

  // No token: 401.
  auto anonymous = run_hookctl(dir_, {"--url", url_, "org", "list"});
  EXPECT_EQ(anonymous.code, 1);
  EXPECT_EQ(anonymous.json_err().at("status").as_int64(), 401);

  // A wrong token: 401 as well.
  auto wrong = run_hookctl(dir_, {"--url", url_, "--token", "hkd_nope", "org", "list"});
  EXPECT_EQ(wrong.code, 1);
  EXPECT_EQ(str(wrong.json_err(), "type"), "https://hookd.dev/problems/unauthorized");
}

TEST_F(HookctlTest, UsageErrorsExitTwoWithOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {},                                                                // no command
      {"frobnicate"},                                                    // unknown command
      {"org"},                                                           // missing sub-command
      {"org", "create"},                                                 // missing NAME
      {"org", "create", "a", "b"},                                       // one too many
      {"org", "delete"},                                                 // missing ORG
      {"project", "delete", "0123456789abcdef01234567"},                 // missing ID
      {"org", "list", "--bogus"},                                        // unknown option
      {"project", "create", "0123456789abcdef01234567", "--name", "N"},  // --slug missing
      {"webhook", "create", "o", "p", "--name", "n", "--url"},           // value missing
      {"webhook", "update", "o", "p", "w"},                              // nothing to update
      {"webhook", "update", "o", "p", "w", "--active", "maybe"},
      {"webhook", "update", "o", "p", "w", "--rate-limit", "fast"},
      {"webhook", "create", "o", "p", "--name", "n", "--url", "http://x", "--event", "a",
       "--rate-limit", "none"},
      {"webhook", "create", "o", "p", "--name", "n", "--url", "http://x", "--event", "a",
       "--header", "no-colon"},
      {"token", "create", "--name", "n", "--name", "m", "--scope", "admin"},  // not repeatable
      {"--token", "a", "--token-file", "b", "org", "list"},
      {"--url", "ftp://example.com", "org", "list"},
  };
  for (const auto& args : cases) {
    std::vector<std::string> full = args;
    // Global options first, where they belong; the cases that test them bring their own.
    if (full.empty() || full[0].rfind("--", 0) != 0) {
      full.insert(full.begin(), {"--url", url_, "--token", kAdminToken});
    }
    auto r = run_hookctl(dir_, full);
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    EXPECT_EQ(r.code, 2) << shown << "\n" << r.err;
    EXPECT_TRUE(r.out.empty()) << shown;
    EXPECT_TRUE(one_line(r.err)) << shown << ": " << r.err;
  }

  // Nothing was created by any of them.
  auto orgs = admin({"org", "list"});
  ASSERT_EQ(orgs.code, 0);
  EXPECT_TRUE(orgs.json_out().as_array().empty());

  // A token file that does not exist is a usage error too, and says which file.
  auto no_file =
      run_hookctl(dir_, {"--url", url_, "--token-file", (dir_ / "nope").string(), "org", "list"});
  EXPECT_EQ(no_file.code, 2);
  EXPECT_NE(no_file.err.find("nope"), std::string::npos) << no_file.err;
}

TEST_F(HookctlTest, HelpExitsZero) {
  auto top = run_hookctl(dir_, {"--help"});
  EXPECT_EQ(top.code, 0);
  for (const char* command : {"org create", "org delete", "project create", "project delete",
                              "token create", "token revoke", "webhook create", "webhook update",
                              "webhook secret", "webhook rotate", "health"}) {
    EXPECT_NE(top.out.find(command), std::string::npos) << command;
  }
  auto group = run_hookctl(dir_, {"webhook", "--help"});
  EXPECT_EQ(group.code, 0);
  EXPECT_NE(group.out.find("webhook delete"), std::string::npos);
  auto one = run_hookctl(dir_, {"webhook", "update", "--help"});
  EXPECT_EQ(one.code, 0);
  EXPECT_NE(one.out.find("--clear-headers"), std::string::npos);
  auto via_help = run_hookctl(dir_, {"help", "token", "create"});
  EXPECT_EQ(via_help.code, 0);
  EXPECT_NE(via_help.out.find("--scope"), std::string::npos);
}

TEST_F(HookctlTest, DeletingProjectsAndOrganizations) {
  auto [org_id, proj_id] = make_project();
  auto hook = admin({"webhook", "create", org_id, proj_id, "--name", "Builds", "--url",
                     "https://example.com/hooks", "--event", "*"});
  ASSERT_EQ(hook.code, 0) << hook.err;
  auto other = admin({"org", "create", "Other"});
  ASSERT_EQ(other.code, 0) << other.err;
  const std::string other_id = str(other.json_out(), "_id");
  auto token = admin({"token", "create", "--name", "both", "--org", org_id, "--org", other_id,
                      "--scope", "webhooks:read"});
  ASSERT_EQ(token.code, 0) << token.err;
  const std::string token_id = str(token.json_out(), "_id");

  // Like `webhook delete`: a 204 prints nothing.
  auto deleted = admin({"project", "delete", org_id, proj_id});
  EXPECT_EQ(deleted.code, 0) << deleted.err;
  EXPECT_TRUE(deleted.out.empty()) << deleted.out;
  EXPECT_TRUE(deleted.err.empty()) << deleted.err;
  auto gone = admin({"project", "get", org_id, proj_id});
  EXPECT_EQ(gone.code, 1);
  EXPECT_EQ(gone.json_err().at("status").as_int64(), 404);
  auto hooks_gone = admin({"webhook", "list", org_id, proj_id});
  EXPECT_EQ(hooks_gone.code, 1);
  auto again = admin({"project", "delete", org_id, proj_id});
  EXPECT_EQ(again.code, 1);
  EXPECT_TRUE(again.out.empty());
  EXPECT_EQ(str(again.json_err(), "type"), "https://hookd.dev/problems/not-found");

  auto org_deleted = admin({"org", "delete", org_id});
  EXPECT_EQ(org_deleted.code, 0) << org_deleted.err;
  EXPECT_TRUE(org_deleted.out.empty()) << org_deleted.out;
  auto org_gone = admin({"org", "get", org_id});
  EXPECT_EQ(org_gone.code, 1);
  EXPECT_EQ(org_gone.json_err().at("status").as_int64(), 404);
  auto orgs = admin({"org", "list"});
  ASSERT_EQ(orgs.code, 0) << orgs.err;
  ASSERT_EQ(orgs.json_out().as_array().size(), 1u);
  EXPECT_EQ(str(orgs.json_out().as_array()[0], "_id"), other_id);
  // The token keeps its other organization.
  auto kept = admin({"token", "get", token_id});
  ASSERT_EQ(kept.code, 0) << kept.err;
  EXPECT_EQ(kept.json_out().at("organizations"), json::array({json::value(other_id)}));
  auto bad = admin({"org", "delete", "not-an-id"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_EQ(str(bad.json_err(), "type"), "https://hookd.dev/problems/bad-id");
}

TEST_F(HookctlTest, Tokens) {
  auto [org_id, proj_id] = make_project();

  auto created = admin({"token", "create", "--name", "deploys", "--org", org_id, "--scope",
                        "webhooks:read", "--scope", "webhooks:write"});
  ASSERT_EQ(created.code, 0) << created.err;
  json::value t = created.json_out();
  ASSERT_TRUE(is_id(t.at("_id")));
  const std::string token_id = str(t, "_id");
  const std::string secret = str(t, "token");
  EXPECT_FALSE(secret.empty());
  EXPECT_EQ(t.at("organizations"), json::array({json::value(org_id)}));
  EXPECT_EQ(t.at("scopes"), json::array({"webhooks:read", "webhooks:write"}));

  // Lists and gets never show the secret.
  auto listed = admin({"token", "list"});
  ASSERT_EQ(listed.code, 0) << listed.err;
  EXPECT_EQ(listed.out.find(secret), std::string::npos);
  bool found = false;
  const json::value tokens = listed.json_out();
  for (const auto& item : tokens.as_array()) {
    if (str(item, "_id") == token_id) {
      found = true;
      EXPECT_FALSE(item.as_object().contains("token"));
    }
  }
  EXPECT_TRUE(found);
  auto got = admin({"token", "get", token_id});
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_EQ(str(got.json_out(), "name"), "deploys");
  EXPECT_FALSE(got.json_out().as_object().contains("token"));

  // The scoped token works from a file (with its trailing newline) and from HOOKD_TOKEN /
  // HOOKD_URL, within its organization and scopes only.
  const fs::path token_file = dir_ / "token";
  std::ofstream(token_file) << secret << "\n";
  auto hooks = run_hookctl(dir_, {"--url", url_, "--token-file", token_file.string(), "webhook",
                                  "list", org_id, proj_id});
  ASSERT_EQ(hooks.code, 0) << hooks.err;
  EXPECT_EQ(hooks.out, "[]\n");
  auto from_env = with_env({"webhook", "list", org_id, proj_id},
                           {"HOOKD_URL=" + url_, "HOOKD_TOKEN=" + secret});
  EXPECT_EQ(from_env.code, 0) << from_env.err;
  auto not_admin = with_env({"org", "list"}, {"HOOKD_URL=" + url_, "HOOKD_TOKEN=" + secret});
  EXPECT_EQ(not_admin.code, 1);
  EXPECT_EQ(str(not_admin.json_err(), "type"), "https://hookd.dev/problems/forbidden");

  // Revoked: 204 prints nothing, and the token fails at once.
  auto revoked = admin({"token", "revoke", token_id});
  EXPECT_EQ(revoked.code, 0) << revoked.err;
  EXPECT_TRUE(revoked.out.empty()) << revoked.out;
  auto after = run_hookctl(dir_, {"--url", url_, "--token-file", token_file.string(), "webhook",
                                  "list", org_id, proj_id});
  EXPECT_EQ(after.code, 1);
  EXPECT_EQ(after.json_err().at("status").as_int64(), 401);
  auto gone = admin({"token", "get", token_id});
  EXPECT_EQ(gone.code, 1);
  EXPECT_EQ(gone.json_err().at("status").as_int64(), 404);
}

TEST_F(HookctlTest, Webhooks) {
  auto [org_id, proj_id] = make_project();

  auto created = admin({"webhook", "create", org_id, proj_id, "--name", "Builds", "--url",
                        "https://example.com/hooks", "--event", "deployment.build.*", "--event",
                        "invoice.paid", "--header", "X-Team: payments", "--header", "X-Env:prod"});
  ASSERT_EQ(created.code, 0) << created.err;
  EXPECT_TRUE(one_line(created.out));
  json::value w = created.json_out();
  ASSERT_TRUE(is_id(w.at("_id")));
  const std::string hook_id = str(w, "_id");
  EXPECT_EQ(str(w, "organization"), org_id);
  EXPECT_EQ(str(w, "project"), proj_id);
  EXPECT_EQ(str(w, "url"), "https://example.com/hooks");
  EXPECT_EQ(w.at("active"), json::value(true));
  EXPECT_EQ(w.at("events"), json::array({"deployment.build.*", "invoice.paid"}));
  // In the order given.
  EXPECT_EQ(json::serialize(w.at("headers")), R"({"X-Team":"payments","X-Env":"prod"})");
  const std::string secret = str(w, "secret");
  EXPECT_EQ(secret.rfind("whsec_", 0), 0u) << secret;

  auto inactive = admin({"webhook", "create", org_id, proj_id, "--name", "Quiet", "--url",
                         "http://example.com/quiet", "--event", "*", "--inactive"});
  ASSERT_EQ(inactive.code, 0) << inactive.err;
  EXPECT_EQ(inactive.json_out().at("active"), json::value(false));
  EXPECT_EQ(inactive.json_out().at("headers"), json::object());

  auto listed = admin({"webhook", "list", org_id, proj_id});
  ASSERT_EQ(listed.code, 0) << listed.err;
  const json::value all = listed.json_out();
  const json::array& items = all.as_array();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(str(items[0], "_id"), hook_id);                 // oldest first
  EXPECT_EQ(listed.out.find("whsec_"), std::string::npos);  // never the secrets

  auto got = admin({"webhook", "get", org_id, proj_id, hook_id});
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_FALSE(got.json_out().as_object().contains("secret"));
  EXPECT_EQ(str(got.json_out(), "name"), "Builds");

  auto shown = admin({"webhook", "secret", org_id, proj_id, hook_id});
  ASSERT_EQ(shown.code, 0) << shown.err;
  EXPECT_EQ(shown.json_out(), json::object({{"secret", secret}}));

  // A webhook never attempted: healthy, nothing known yet.
  auto health = admin({"webhook", "health", org_id, proj_id, hook_id});
  ASSERT_EQ(health.code, 0) << health.err;
  EXPECT_EQ(str(health.json_out(), "state"), "healthy");
  EXPECT_EQ(health.json_out().at("consecutiveFailures"), json::value(0));
  EXPECT_TRUE(health.json_out().at("lastSuccessAt").is_null());
  EXPECT_EQ(
      str(admin({"webhook", "health", org_id, proj_id, str(inactive.json_out(), "_id")}).json_out(),
          "state"),
      "disabled");

  // Only the fields given change.
  auto updated = admin({"webhook", "update", org_id, proj_id, hook_id, "--active", "false",
                        "--event", "order.created"});
  ASSERT_EQ(updated.code, 0) << updated.err;
  json::value u = updated.json_out();
  EXPECT_EQ(u.at("active"), json::value(false));
  EXPECT_EQ(u.at("events"), json::array({"order.created"}));
  EXPECT_EQ(str(u, "name"), "Builds");
  EXPECT_EQ(u.at("headers"), w.at("headers"));
  EXPECT_EQ(str(u, "createdAt"), str(w, "createdAt"));

  auto renamed = admin({"webhook", "update", org_id, proj_id, hook_id, "--name", "Deploys", "--url",
                        "https://example.com/v2", "--clear-headers", "--active", "true"});
  ASSERT_EQ(renamed.code, 0) << renamed.err;
  json::value r = renamed.json_out();
  EXPECT_EQ(str(r, "name"), "Deploys");
  EXPECT_EQ(str(r, "url"), "https://example.com/v2");
  EXPECT_EQ(r.at("headers"), json::object());
  EXPECT_EQ(r.at("active"), json::value(true));

  // A rate limit: set at create, replaced, removed with none; the server checks the range.
  auto limited = admin({"webhook", "create", org_id, proj_id, "--name", "Limited", "--url",
                        "https://example.com/limited", "--event", "*", "--rate-limit", "50"});
  ASSERT_EQ(limited.code, 0) << limited.err;
  EXPECT_EQ(limited.json_out().at("rateLimit").as_int64(), 50);
  const std::string limited_id = str(limited.json_out(), "_id");
  auto relimited = admin({"webhook", "update", org_id, proj_id, limited_id, "--rate-limit", "7"});
  ASSERT_EQ(relimited.code, 0) << relimited.err;
  EXPECT_EQ(relimited.json_out().at("rateLimit").as_int64(), 7);
  auto unlimited =
      admin({"webhook", "update", org_id, proj_id, limited_id, "--rate-limit", "none"});
  ASSERT_EQ(unlimited.code, 0) << unlimited.err;
  EXPECT_FALSE(unlimited.json_out().as_object().contains("rateLimit"));
  auto too_fast =
      admin({"webhook", "update", org_id, proj_id, limited_id, "--rate-limit", "10001"});
  EXPECT_EQ(too_fast.code, 1);
  EXPECT_EQ(str(too_fast.json_err().at("errors").as_array().at(0), "field"), "rateLimit");

  // The server's validation reaches the shell as exit 1 with every field named.
  auto invalid = admin(
      {"webhook", "update", org_id, proj_id, hook_id, "--url", "ftp://x", "--event", "Bad Event"});
  EXPECT_EQ(invalid.code, 1);
  json::value problem = invalid.json_err();
  EXPECT_EQ(str(problem, "type"), "https://hookd.dev/problems/validation");
  std::vector<std::string> fields;
  for (const auto& e : problem.at("errors").as_array()) fields.push_back(str(e, "field"));
  EXPECT_EQ(fields, (std::vector<std::string>{"url", "events[0]"}));

  auto deleted = admin({"webhook", "delete", org_id, proj_id, hook_id});
  EXPECT_EQ(deleted.code, 0) << deleted.err;
  EXPECT_TRUE(deleted.out.empty());
  auto gone = admin({"webhook", "get", org_id, proj_id, hook_id});
  EXPECT_EQ(gone.code, 1);
  EXPECT_EQ(gone.json_err().at("status").as_int64(), 404);
  auto secret_gone = admin({"webhook", "secret", org_id, proj_id, hook_id});
  EXPECT_EQ(secret_gone.code, 1);
  EXPECT_EQ(str(secret_gone.json_err(), "type"), "https://hookd.dev/problems/not-found");
}

TEST_F(HookctlTest, WebhookRotateSigningAndFilter) {
  auto [org_id, proj_id] = make_project();
  auto created = admin({"webhook", "create", org_id, proj_id, "--name", "Signed", "--url",
                        "https://example.com/hooks", "--event", "order.*", "--signing", "v1a",
                        "--filter", R"({"data.country":"TR"})"});
  ASSERT_EQ(created.code, 0) << created.err;
  json::value w = created.json_out();
  const std::string hook_id = str(w, "_id");
  EXPECT_EQ(str(w, "signing"), "v1a");
  EXPECT_EQ(w.at("filter"), json::object({{"data.country", "TR"}}));
  const std::string first = str(w, "secret");
  EXPECT_EQ(first.rfind("whsk_", 0), 0u) << first;

  // rotate prints the new secret like `webhook secret` does, as one JSON line.
  auto rotated = admin({"webhook", "rotate", org_id, proj_id, hook_id});
  ASSERT_EQ(rotated.code, 0) << rotated.err;
  EXPECT_TRUE(one_line(rotated.out));
  const json::value r = rotated.json_out();
  EXPECT_EQ(str(r, "secret").rfind("whsk_", 0), 0u);
  EXPECT_NE(str(r, "secret"), first);
  EXPECT_EQ(str(r, "publicKey").rfind("whpk_", 0), 0u);
  EXPECT_EQ(admin({"webhook", "secret", org_id, proj_id, hook_id}).json_out(), r);

  // Back to v1 with a chosen secret, and the filter removed.
  auto v1 =
      admin({"webhook", "update", org_id, proj_id, hook_id, "--signing", "v1", "--filter", "null"});
  ASSERT_EQ(v1.code, 0) << v1.err;
  EXPECT_EQ(str(v1.json_out(), "signing"), "v1");
  EXPECT_TRUE(v1.json_out().at("filter").is_null());
  const std::string chosen = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  auto given = admin({"webhook", "rotate", org_id, proj_id, hook_id, "--secret", chosen});
  ASSERT_EQ(given.code, 0) << given.err;
  EXPECT_EQ(given.json_out(), json::object({{"secret", chosen}}));

  // The server's 400 naming the field reaches the shell; bad JSON for --filter is a usage error.
  auto refused = admin({"webhook", "rotate", org_id, proj_id, hook_id, "--secret", "whsec_x"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_EQ(str(refused.json_err().at("errors").at(0), "field"), "secret");
  auto bad_filter = admin({"webhook", "update", org_id, proj_id, hook_id, "--filter", "{nope"});
  EXPECT_EQ(bad_filter.code, 2);
}

// `hookctl portal open ORG PROJECT` prints the portal session (docs/portal.md) as one JSON line:
// a URL on this hookd that carries the token in its fragment; --expires-in takes seconds or a
// duration, and hookd's 400 for a bad one reaches the shell.
TEST_F(HookctlTest, PortalOpen) {
  auto [org_id, proj_id] = make_project();
  auto opened = admin({"portal", "open", org_id, proj_id});
  ASSERT_EQ(opened.code, 0) << opened.err;
  EXPECT_TRUE(one_line(opened.out));
  const json::value s = opened.json_out();
  const std::string token = str(s, "token");
  EXPECT_EQ(token.rfind("hkp_", 0), 0u) << token;
  EXPECT_EQ(str(s, "url"),
            url_ + "/portal/#token=" + token + "&organization=" + org_id + "&project=" + proj_id);
  EXPECT_FALSE(str(s, "expiresAt").empty());
  // The token works as a token of that project.
  auto hooks =
      run_hookctl(dir_, {"--url", url_, "--token", token, "webhook", "list", org_id, proj_id});
  EXPECT_EQ(hooks.code, 0) << hooks.err;

  EXPECT_EQ(admin({"portal", "open", org_id, proj_id, "--expires-in", "600"}).code, 0);
  EXPECT_EQ(admin({"portal", "open", org_id, proj_id, "--expires-in", "30m"}).code, 0);
  auto refused = admin({"portal", "open", org_id, proj_id, "--expires-in", "2d"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_EQ(str(refused.json_err().at("errors").at(0), "field"), "expiresIn");
  EXPECT_EQ(admin({"portal", "open", org_id}).code, 2);
}

TEST_F(HookctlTest, Health) {
  auto r = run_hookctl(dir_, {"--url", url_, "health"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.json_out(), json::object({{"healthy", true}, {"ready", true}}));
}

// `hookctl backup DIR` prints the report as one line of JSON; a relative DIR is taken from
// hookctl's working directory; a DIR that exists is a 409 on stderr with exit 1.
TEST_F(HookctlTest, BackupWritesANewDataDirAndPrintsWhatItWrote) {
  (void)make_project();  // something to back up
  const fs::path target = dir_ / "backup";
  auto r = admin({"backup", target.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(one_line(r.out)) << r.out;
  const json::value report = r.json_out();
  EXPECT_EQ(str(report, "directory"), target.string());
  EXPECT_EQ(str(report, "masterKey"), "file");
  EXPECT_GT(report.at("files").as_int64(), 0);
  EXPECT_TRUE(fs::exists(target / "db" / "CURRENT"));
  EXPECT_TRUE(fs::exists(target / "master.key"));

  auto again = admin({"backup", target.string()});
  EXPECT_EQ(again.code, 1);
  EXPECT_EQ(again.json_err().at("status").as_int64(), 409) << again.err;

  // From hookctl's working directory (the test's, not hookd's): resolved before it is sent.
  const fs::path cwd = fs::current_path();
  fs::current_path(dir_);
  auto relative = admin({"backup", "relative-backup"});
  fs::current_path(cwd);
  ASSERT_EQ(relative.code, 0) << relative.err;
  EXPECT_EQ(str(relative.json_out(), "directory"), (dir_ / "relative-backup").string());

  EXPECT_EQ(admin({"backup"}).code, 2);
  EXPECT_EQ(admin({"backup", "a", "b"}).code, 2);
  auto help = run_hookctl(dir_, {"backup", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("backup DIR"), std::string::npos) << help.out;
}

// No server: exit 3 and a message that says what to check, without JSON.
TEST(HookctlUnreachable, ExitsThree) {
  ASSERT_TRUE(fs::exists(kBinDir / "hookctl")) << "build the hookctl target first";
  std::string templ = (fs::temp_directory_path() / "hookctl_test.XXXXXX").string();
  ASSERT_NE(::mkdtemp(templ.data()), nullptr);
  const fs::path dir = templ;
  const std::string url = "http://127.0.0.1:" + std::to_string(free_port());
  for (std::vector<std::string> args :
       {std::vector<std::string>{"org", "list"}, std::vector<std::string>{"health"}}) {
    args.insert(args.begin(), {"--url", url, "--token", kAdminToken});
    auto r = run_hookctl(dir, args);
    EXPECT_EQ(r.code, 3) << r.err;
    EXPECT_TRUE(r.out.empty());
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_EQ(r.err.find('{'), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("HOOKD_URL"), std::string::npos) << r.err;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST_F(HookctlTest, EventsAndDeliveries) {
  auto [org_id, proj_id] = make_project();
  // hookd runs without --allow-private-targets: attempts to 127.0.0.1 are refused by the address
  // guard, recorded, and retried later, with no traffic at all.
  auto hook = admin({"webhook", "create", org_id, proj_id, "--name", "Local", "--url",
                     "http://127.0.0.1:9/hooks", "--event", "order.*"});
  ASSERT_EQ(hook.code, 0) << hook.err;
  const std::string hook_id = str(hook.json_out(), "_id");

  const std::vector<std::string> send = {
      "event",   "send",          org_id,
      proj_id,   "--type",        "order.created",
      "--data",  R"({"id":1})",   "--idempotency-key",
      "order-1", "--traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"};
  auto sent = admin(send);
  ASSERT_EQ(sent.code, 0) << sent.err;
  EXPECT_TRUE(one_line(sent.out));
  const json::value event = sent.json_out();
  EXPECT_TRUE(is_id(event.at("_id")));
  EXPECT_EQ(str(event, "type"), "order.created");
  EXPECT_EQ(event.at("deliveries").as_int64(), 1);
  auto replayed = admin(send);  // the same key and body: the first answer
  ASSERT_EQ(replayed.code, 0) << replayed.err;
  EXPECT_EQ(replayed.json_out(), event);

  auto bad_data =
      admin({"event", "send", org_id, proj_id, "--type", "order.created", "--data", "{not json"});
  EXPECT_EQ(bad_data.code, 2);
  EXPECT_TRUE(one_line(bad_data.err)) << bad_data.err;
  EXPECT_NE(bad_data.err.find("--data"), std::string::npos) << bad_data.err;

  auto listed = admin({"delivery", "list", org_id, proj_id, hook_id, "--limit", "10"});
  ASSERT_EQ(listed.code, 0) << listed.err;
  const json::value page = listed.json_out();
  ASSERT_EQ(page.at("data").as_array().size(), 1u);
  EXPECT_TRUE(page.at("next").is_null());
  const std::string delivery_id = str(page.at("data").as_array().at(0), "_id");
  EXPECT_EQ(str(page.at("data").as_array().at(0), "event"), str(event, "_id"));

  auto got = admin({"delivery", "get", org_id, proj_id, hook_id, delivery_id});
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_EQ(str(got.json_out(), "_id"), delivery_id);
  EXPECT_TRUE(got.json_out().at("attempts").is_array());

  auto again = admin({"delivery", "redeliver", org_id, proj_id, hook_id, delivery_id});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(str(again.json_out(), "_id"), delivery_id);
  EXPECT_EQ(str(again.json_out(), "status"), "pending");

  auto ping = admin({"webhook", "test", org_id, proj_id, hook_id});
  ASSERT_EQ(ping.code, 0) << ping.err;
  EXPECT_EQ(str(ping.json_out(), "type"), "webhook.ping");
  EXPECT_EQ(str(ping.json_out(), "webhook"), hook_id);
  auto pending = admin({"delivery", "list", org_id, proj_id, hook_id, "--status", "pending"});
  ASSERT_EQ(pending.code, 0) << pending.err;
  EXPECT_EQ(pending.json_out().at("data").as_array().size(), 2u);

  // Nothing has failed for good: nothing to recover.
  auto recovered = admin({"webhook", "recover", org_id, proj_id, hook_id, "--since",
                          "2020-01-01T00:00:00Z", "--until", "2100-01-01T00:00:00Z"});
  ASSERT_EQ(recovered.code, 0) << recovered.err;
  EXPECT_EQ(recovered.json_out(), json::object({{"deliveries", 0}}));
  auto bad_time = admin({"webhook", "recover", org_id, proj_id, hook_id, "--since", "yesterday"});
  EXPECT_EQ(bad_time.code, 1);
  EXPECT_EQ(str(bad_time.json_err().at("errors").as_array().at(0), "field"), "since");
  auto no_since = admin({"webhook", "recover", org_id, proj_id, hook_id});
  EXPECT_EQ(no_since.code, 2);
  EXPECT_NE(no_since.err.find("--since is required"), std::string::npos) << no_since.err;
  auto unknown =
      admin({"delivery", "redeliver", org_id, proj_id, hook_id, "65a0f1c2aabbccddee000999"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_EQ(unknown.json_err().at("status").as_int64(), 404);
}

}  // namespace
