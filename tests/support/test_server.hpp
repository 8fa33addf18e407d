#pragma once
// The whole hookd stack in-process for black-box HTTP tests: a mkdtemp data dir, RocksDB, the
// master key, the catalog, an admin token with a known secret, the router with the ops and API
// routes, and the server on 127.0.0.1 port 0. `restart()` stops everything and reopens it over
// the same data dir, the way a process restart would.
//
// `http_client` is a small blocking HTTP/1.1 client (Beast) that keeps one connection alive
// and reconnects only when the server said `Connection: close`.
//
// The bodies of the longer functions are in test_server.cpp (the hookd_test_support library).

#include "core/catalog/entities.hpp"
#include "core/catalog/validation.hpp"
#include "support/pg_cluster.hpp"
#include "tools/service/service.hpp"

#include <gtest/gtest.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace hookd::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace json = boost::json;

// One response as the client saw it.
struct http_reply {
  unsigned status = 0;
  bhttp::fields headers;
  std::string body;

  std::string header(std::string_view name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : std::string(it->value());
  }
  bool has_header(std::string_view name) const { return headers.find(name) != headers.end(); }
  // The body as JSON; a failed test (and null) when it is not JSON.
  json::value json() const;
  // Shorthands for problem bodies and JSON objects.
  std::string str(std::string_view key) const;
};

struct header_list : std::vector<std::pair<std::string, std::string>> {
  using vector::vector;
};

class http_client {
 public:
  static constexpr std::chrono::seconds kTimeout{20};

  explicit http_client(asio::ip::tcp::endpoint endpoint) : endpoint_(endpoint) {}

  void set_endpoint(asio::ip::tcp::endpoint endpoint) {
    close();
    endpoint_ = endpoint;
  }

  // Sends `req` (version, Host and Content-Length filled in) and reads one response; an I/O
  // failure is a test failure (and an empty reply).
  http_reply send(bhttp::request<bhttp::string_body> req);

  // Like send(), but an I/O failure (a refused or reset connection, a timeout) is an outcome
  // too: nullopt, the connection closed, `failure` saying which step failed. For tests that
  // kill the server on purpose.
  std::optional<http_reply> try_send(bhttp::request<bhttp::string_body> req,
                                     std::string* failure = nullptr);

  http_reply request(bhttp::verb method, std::string target, std::optional<std::string> body = {},
                     const header_list& headers = {}) {
    return send(make_request(method, std::move(target), std::move(body), headers));
  }
  std::optional<http_reply> try_request(bhttp::verb method, std::string target,
                                        std::optional<std::string> body = {},
                                        const header_list& headers = {}) {
    return try_send(make_request(method, std::move(target), std::move(body), headers));
  }

  static bhttp::request<bhttp::string_body> make_request(bhttp::verb method, std::string target,
                                                         std::optional<std::string> body,
                                                         const header_list& headers);

  bool connected() const { return stream_ != nullptr; }

  void close();

 private:
  asio::io_context ioc_;
  asio::ip::tcp::endpoint endpoint_;
  std::unique_ptr<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
};

struct test_server_options {
  // Small, so that the 413 test sends little and the limit test creates few webhooks.
  std::size_t max_body_bytes = 16 * 1024;
  std::size_t max_webhooks_per_project = 3;
};

class test_server {
 public:
  // The admin token's secret, set at bootstrap like HOOKD_ADMIN_TOKEN would.
  static constexpr std::string_view kAdminToken = "hkd_test-admin-token-0123456789abcdefABCDEF";

  // HOOKD_TEST_STORAGE=postgresql: the catalog lives in a fresh database of this binary's private
  // PostgreSQL (support/pg_cluster.hpp) instead of the data dir's RocksDB; ctest runs the catalog
  // API suites both ways (names ending _pg).
  static bool on_postgresql() {
    const char* v = std::getenv("HOOKD_TEST_STORAGE");
    return v != nullptr && std::string_view(v) == "postgresql";
  }
  // Cluster mode needs the master key given (every node opens the secrets with it).
  static constexpr std::string_view kMasterKey =
      "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

  explicit test_server(test_server_options options = {})
      : test_server(settings_for(options), "hookd-http-test") {}

  virtual ~test_server();

  test_server(const test_server&) = delete;
  test_server& operator=(const test_server&) = delete;

  // Stops the server and the catalog, closes RocksDB, and opens everything again over the same
  // data dir, on a new port.
  void restart() {
    shutdown();
    open();
  }

  const std::filesystem::path& data_dir() const { return data_dir_; }
  catalog& cat() { return service_->cat(); }
  http_client& client() { return *client_; }
  std::uint16_t port() const { return endpoint_.port(); }
  asio::ip::tcp::endpoint endpoint() const { return endpoint_; }

  // ---- requests; an empty token sends no credentials

  http_reply call(bhttp::verb method, const std::string& target,
                  std::optional<std::string> body = {}, std::string_view token = kAdminToken,
                  header_list headers = {});
  http_reply get(const std::string& target, std::string_view token = kAdminToken) {
    return call(bhttp::verb::get, target, std::nullopt, token);
  }
  http_reply post(const std::string& target, const json::value& body,
                  std::string_view token = kAdminToken, header_list headers = {}) {
    return call(bhttp::verb::post, target, json::serialize(body), token, std::move(headers));
  }
  http_reply patch(const std::string& target, const json::value& body,
                   std::string_view token = kAdminToken) {
    return call(bhttp::verb::patch, target, json::serialize(body), token);
  }
  http_reply del(const std::string& target, std::string_view token = kAdminToken) {
    return call(bhttp::verb::delete_, target, std::nullopt, token);
  }

  // ---- fixtures through the API; each asserts its 201

  std::string create_organization(const std::string& name);
  std::string create_project(const std::string& org, const std::string& slug);
  struct issued_token {
    std::string id;
    std::string secret;
  };
  issued_token create_token(std::initializer_list<std::string> orgs,
                            std::initializer_list<std::string> scopes);
  // A valid create body; tests change one field at a time.
  static json::object webhook_body(const std::string& name = "Orders");
  // The created webhook, with its `secret`.
  json::object create_webhook(const std::string& org, const std::string& proj,
                              const json::object& body);

  static std::string org_path(const std::string& org) { return "/api/v1/organizations/" + org; }
  static std::string projects_path(const std::string& org) { return org_path(org) + "/projects"; }
  static std::string webhooks_path(const std::string& org, const std::string& proj) {
    return projects_path(org) + "/" + proj + "/settings/webhooks";
  }
  static std::string webhook_path(const std::string& org, const std::string& proj,
                                  const std::string& hook) {
    return webhooks_path(org, proj) + "/" + hook;
  }

 protected:
  // A server over a fresh mkdtemp dir named after `dir_prefix`, built from `settings` (the data
  // dir, listener and threads are the fixture's).
  test_server(config settings, std::string_view dir_prefix);

  service& stack() { return *service_; }

 private:
  static config settings_for(const test_server_options& o) {
    config c;
    c.max_body_bytes = o.max_body_bytes;
    c.max_webhooks_per_project = o.max_webhooks_per_project;
    return c;
  }

  // The stack comes from the composition root (tools/service), like hookd's: only the values of
  // the configuration are the test's.
  void open();

  // In the order hookd stops: listeners, dispatcher, delivery log, catalog, storage.
  void shutdown();

  config settings_;
  std::filesystem::path data_dir_;
  std::unique_ptr<service> service_;
  asio::ip::tcp::endpoint endpoint_;
  std::unique_ptr<http_client> client_;
};

// Every byte of every file under `dir`, for scans of what reaches the disk.
std::vector<std::pair<std::filesystem::path, std::string>> read_all_files(
    const std::filesystem::path& dir);

// Asserts the RFC 9457 shape every error shares, and that requestId matches X-Request-Id.
void expect_problem(const http_reply& r, unsigned status);

// The `field` of every entry of a problem's `errors`.
std::vector<std::string> error_fields(const http_reply& r);

}  // namespace hookd::test
