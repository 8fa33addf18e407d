#pragma once
// The outbound HTTP/1.1 client that delivers webhooks (docs/openapi.yaml): one POST per send(),
// over plain TCP or TLS, with a keep-alive pool per origin, and the SSRF guard in front of every
// new connection.
//
// The contract of send():
// - The URL's host is an IP literal (parse_ip_literal, so "127.1" and "0x7f.1" are addresses) or a
//   name that is resolved once; check_target judges the addresses and a refusal ends the attempt
//   before any socket exists (refused_by_guard). A new connection goes only to the addresses the
//   guard returned; nothing is resolved twice.
// - Redirects are never followed: a 3xx is an answer like any other.
// - The first 4 KiB of the response body are kept (cut on a UTF-8 boundary); the rest is read and
//   discarded up to max_response_read_bytes, past which the connection is closed.
// - Every stage is bounded: DNS, connect, TLS and the exchange all end by the total timeout.
// - A pooled connection that fails before a single response byte arrives (the server closed it
//   while idle) is retried once on a fresh connection.
//
// Thread safety: none inside. Call send() and close_idle() from the client's executor only (a
// strand when its io_context runs on several threads); any number of send() coroutines may be in
// flight at once on it. The client must outlive every send() it started.

#include "core/catalog/entities.hpp"
#include "core/delivery/address_guard.hpp"
#include "http/server/types.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hookd::http {

struct outbound_request {
  std::string url;  // absolute http:// or https:// URL; user-info and fragment are ignored
  // Sent in this order after Host. Host, Content-Length, Transfer-Encoding and Connection are
  // the client's to set (they frame the message) and are skipped if present here.
  std::vector<header_entry> headers;
  std::string body;
};

// A header of one send of a prepared request, by reference (delivery_client::send).
struct header_ref {
  std::string_view name;
  std::string_view value;
};

struct delivery_target;

// The fixed part of requests to one URL with one set of headers, checked and written once
// (delivery_client::prepare): the parsed URL, and the request line, Host, the headers that pass
// send()'s checks and User-Agent, as they go on the wire. Immutable; any number of sends, in
// flight at once or one after another, may share it.
class prepared_request {
 public:
  // Empty when the URL is usable; otherwise why not ("invalid URL: ...").
  [[nodiscard]] const std::string& error() const noexcept { return error_; }

 private:
  friend class delivery_client;
  std::shared_ptr<const delivery_target> target_;
  std::string head_;
  std::string error_;
};

struct attempt_result {
  int status_code = 0;      // the response status; 0 when no response head arrived
  std::string body_prefix;  // the first kBodyPrefixBytes of the body, cut on a UTF-8 boundary
  std::optional<std::string> retry_after;  // the Retry-After header, verbatim
  std::chrono::milliseconds duration{0};   // from send() to the end of the attempt (steady clock)
  // From the request written to the response read (or the error that ended the wait for it);
  // nullopt when the request was not written. For /metrics (docs/operations.md).
  std::optional<std::chrono::nanoseconds> exchange;
  // Empty when a response head arrived. Otherwise one line: "connect timeout after 15s to
  // 203.0.113.5:443", "TLS handshake failed: certificate verify failed (...)", "refused: ...".
  std::string error;
  bool refused_by_guard = false;  // the SSRF guard refused the target; no connection was made
  // No response head within the timeout (DNS, connect, TLS, sending or waiting for the head):
  // a receiver that is overloaded or gone, which slows the webhook down (docs/delivery.md,
  // "Flow control").
  bool timed_out = false;
  std::string remote_endpoint;  // "203.0.113.5:443" / "[2001:db8::1]:443" when connected

  [[nodiscard]] bool has_response() const noexcept { return status_code != 0; }
};

// Host name -> addresses; an empty vector means the name does not resolve.
using resolve_function = std::function<std::vector<ip_address>(std::string_view host)>;

struct client_options {
  // The whole attempt: DNS, connect, TLS, writing the request and reading the response head and
  // body (--delivery-timeout, default 15 s, docs/operations.md).
  std::chrono::milliseconds total_timeout{15'000};
  // Connecting (over all checked addresses), within the total. 10 s: a SYN that goes unanswered
  // that long is a dead or filtered host, and the rest of the budget is left for the exchange.
  std::chrono::milliseconds connect_timeout{10'000};
  // The TLS handshake, within the total. 10 s, for the same reason.
  std::chrono::milliseconds tls_handshake_timeout{10'000};
  // Body bytes read before the connection is given up on (the first 4 KiB are kept). 64 KiB lets
  // most chatty receivers keep their connection alive without letting one feed us a gigabyte.
  std::size_t max_response_read_bytes = 64 * 1024;
  // A response head larger than this ends the attempt as an error. 16 KiB, twice Beast's default.
  std::uint32_t max_response_header_bytes = 16 * 1024;
  // --allow-private-targets: admit loopback, private and other local addresses (testing).
  bool allow_private_targets = false;
  // Idle keep-alive connections kept per origin (scheme, host, port). 4 covers the parallel
  // deliveries one endpoint usually gets without hoarding sockets; 0 disables reuse.
  std::size_t max_idle_per_origin = 4;
  // Idle keep-alive connections kept over all origins; past it the one idle longest is closed.
  // 0: no bound but the per-origin one. The dispatcher sets it to its global in-flight cap, so
  // that it never holds more idle sockets than it may have busy ones.
  std::size_t max_idle_total = 0;
  // An idle connection older than this is closed rather than reused. 30 s keeps a connection
  // warm across a burst; servers that hang up sooner (Node and Apache wait 5 s) are caught by the
  // liveness peek before reuse or, in a race, by the one retry on a fresh connection.
  std::chrono::milliseconds idle_expiry{30'000};
  // A connection idle at least this long is peeked at (one recv syscall) before reuse; one idle
  // for less is reused as it is (docs/delivery.md, "Connections to receivers"). Servers close
  // idle connections after seconds, so under load, where a connection idles for microseconds,
  // the peek would find nothing; a close it misses ends as a failed write or an empty read before
  // any response byte, and the request goes once more on a fresh connection.
  std::chrono::milliseconds check_idle_after{100};
  // Replaces the system resolver (tests). It is called on the client's executor and must not
  // block. Empty: asio's asynchronous resolver (getaddrinfo on a background thread).
  resolve_function resolver;
  // Extra trust anchors in PEM, on top of the system store (tests with a private CA).
  std::string extra_ca_pem;
  // Sent unless the request has its own User-Agent. Empty: none.
  std::string user_agent;
  // Parsed webhook URLs remembered per client, so that a URL is parsed once rather than on every
  // attempt; past this many the cache starts over (attempts in flight keep theirs). 4096 covers
  // the webhooks a dispatcher serves at once many times over; each entry is a few hundred bytes.
  std::size_t max_cached_targets = 4096;
};

// Counters for metrics and tests. Monotonic.
struct client_stats {
  std::uint64_t connections_opened = 0;  // TCP connections established
  std::uint64_t connections_reused = 0;  // sends that took a pooled connection
  std::uint64_t stale_retries = 0;       // pooled connections found dead and replaced
  std::uint64_t guard_refusals = 0;      // attempts the SSRF guard refused
};

class delivery_client {
 public:
  // The kept body prefix: the documented "first 4 KiB of the response body" (docs/openapi.yaml).
  static constexpr std::size_t kBodyPrefixBytes = 4096;

  // Throws std::invalid_argument when extra_ca_pem is not valid PEM.
  delivery_client(asio::any_io_executor executor, client_options options);
  ~delivery_client();
  delivery_client(const delivery_client&) = delete;
  delivery_client& operator=(const delivery_client&) = delete;

  // One attempt. Never throws for network or protocol failures: they come back in `error`.
  // The same as send(prepare(url, headers), {}, body).
  asio::awaitable<attempt_result> send(outbound_request request);

  // The fixed part of requests to `url` with `headers`, for sending many times: the URL parsed
  // and the headers checked and written once (the same checks and order as send()). A bad URL
  // gives a request whose error() says why; sending it ends at once with that error.
  [[nodiscard]] std::shared_ptr<const prepared_request> prepare(
      const std::string& url, std::span<const header_entry> headers);

  // One attempt of a prepared request: its fixed part, then `more_headers` (checked like the
  // others; a User-Agent of the caller's belongs in prepare's headers), Content-Length and
  // `body`. `more_headers` and `body` must stay valid until the send completes.
  asio::awaitable<attempt_result> send(std::shared_ptr<const prepared_request> prepared,
                                       std::span<const header_ref> more_headers,
                                       std::string_view body);

  // Closes every pooled idle connection (shutdown, tests). Connections in use are unaffected.
  void close_idle();

  [[nodiscard]] std::size_t idle_connections() const noexcept;
  [[nodiscard]] const client_stats& stats() const noexcept;
  [[nodiscard]] const client_options& options() const noexcept;
  [[nodiscard]] const asio::any_io_executor& get_executor() const noexcept;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace hookd::http
