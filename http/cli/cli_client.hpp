#pragma once
// A small synchronous HTTP/1.1 client for hookctl and the tests that drive hookd from outside:
// one request per connection, plain http or https (system CA store, SNI, host name check).
// Not for the server's own outbound deliveries. Each call blocks the calling thread; one
// sync_client may be used by one thread at a time.

#include "http/server/types.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace hookd::http {

// Where hookd listens, from a URL such as "http://127.0.0.1:8080" or "https://hooks.example/x".
struct base_url {
  bool tls = false;
  std::string host;          // for the resolver: a name, an IPv4 address or a bare IPv6 address
  std::uint16_t port = 80;   // 80 / 443 when the URL has none
  std::string host_header;   // "host:port" as the URL spelled it, IPv6 in brackets
  std::string path_prefix;   // "" or "/x" without a trailing slash, prepended to every target
  bool host_is_name = true;  // false for IP literals: no SNI then
};

// On error, a one-line reason ("expected an http or https URL, got 'ftp://x'").
std::variant<base_url, std::string> parse_base_url(std::string_view text);

struct client_response {
  unsigned status = 0;
  std::string content_type;
  std::string body;
};

// The request never got an answer: refused, unreachable, timed out, TLS failure, ...
struct client_failure {
  enum class stage { resolve, connect, tls, exchange };
  stage where = stage::exchange;
  std::string what;  // one line, no JSON: "cannot connect to 127.0.0.1:8080: Connection refused"
};

class sync_client {
 public:
  // `timeout` bounds each stage (resolve, connect, handshake, write, read) separately.
  explicit sync_client(base_url where,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // `target` is appended to the URL's path prefix; `body` is sent as application/json when
  // non-empty. `headers` are extra (name, value) pairs, e.g. Authorization.
  std::variant<client_response, client_failure> send(
      bhttp::verb method, std::string_view target, std::string_view body = {},
      const std::vector<std::pair<std::string, std::string>>& headers = {});

  const base_url& where() const noexcept { return where_; }
  // https: trust the CA certificates in this PEM file (a private CA's) instead of the system
  // store. A file that cannot be loaded fails the request at the tls stage, naming it.
  void set_ca_file(std::string path) { ca_file_ = std::move(path); }

 private:
  base_url where_;
  std::string ca_file_;
  std::chrono::milliseconds timeout_;
};

// Percent-encodes one path segment so that an argument such as "../tokens" stays inside it.
std::string encode_path_segment(std::string_view segment);

}  // namespace hookd::http
