#pragma once
// The HTTP/1.1 server, plain or over TLS: an acceptor and one coroutine session per connection on
// an Asio thread pool, each connection on its own strand. Thread-safe to stop from any thread.

#include "core/common/error.hpp"
#include "core/common/ip_network.hpp"
#include "http/server/listen_socket.hpp"
#include "http/server/router.hpp"
#include "http/server/tls.hpp"
#include "http/server/types.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace hookd::http {

struct app;

struct server_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  // 0 picks a free port (tests)
  unsigned threads = 0;       // 0: std::thread::hardware_concurrency()
  // Connections served at once. One more is accepted, answered 503 (problem+json, Connection:
  // close) and closed, so that clients see why; descriptors stay bounded. The default is hookd's
  // --max-connections default (core/config/config.hpp says why).
  std::size_t max_connections = 10'000;
  std::size_t max_body_bytes = 64 * 1024;   // larger Content-Length -> 413 before reading it
  std::size_t max_header_bytes = 8 * 1024;  // larger request head -> 431
  std::size_t max_pipelined = 16;           // responses queued per connection before reading stops
  std::chrono::milliseconds header_timeout{10'000};  // to read one request head
  std::chrono::milliseconds idle_timeout{75'000};    // keep-alive wait for the next request
  std::chrono::milliseconds drain_timeout{10'000};   // in-flight requests get this long on stop
  // A longer request-target is a 414 (a request line that does not end within max_header_bytes
  // too). hookd's longest paths are a few hundred bytes; 4 KiB leaves room for query strings.
  std::size_t max_target_bytes = 4 * 1024;
  // HTTPS with this context (http/server/tls.hpp); null: plain HTTP. set_tls_context() replaces
  // it for new connections.
  tls_context tls;
  // Requests per second per token (burst twice that) beyond which a request that carries a
  // token is answered 429; 0: no limit (docs/operations.md, "Rate limit").
  std::uint32_t rate_limit = 0;
  bool access_log = false;  // one log_access line per request answered
  // Peers whose X-Forwarded-For the access log records; others' is left out.
  std::vector<ip_network> trusted_proxies;
};

class server {
 public:
  server(server_options options, const router& routes, app& shared);
  ~server();  // stop() if still running
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds and listens; the endpoint it got (the real port when options.port was 0).
  result<asio::ip::tcp::endpoint> listen();
  // Serves `socket` (bound beforehand, or passed by systemd) instead of binding options.host and
  // options.port; its endpoint.
  result<asio::ip::tcp::endpoint> listen(listen_socket socket);
  // Before start(): calls `tick` on an I/O thread at once and then every `period` while the
  // threads run, until stop() ends them. The calls are handlers of the same event loop as the
  // sessions, so a loop that stops running handlers stops them (hookd's systemd watchdog,
  // docs/operations.md "Watchdog"). With several threads, a tick shows that at least one of them
  // ran a handler within the period, not that all did.
  void every(std::chrono::microseconds period, std::function<void()> tick);
  // Starts the accept loop and the thread pool; returns at once.
  void start();
  // Graceful: stop accepting, let in-flight requests finish (bounded by drain_timeout), close
  // idle connections, then join the threads. Idempotent.
  void stop();
  std::size_t open_connections() const noexcept;
  // Connections accepted from now on use `context`; those open keep theirs. Ignored (false) on a
  // server started without TLS, which cannot switch to it. Any thread.
  bool set_tls_context(tls_context context);

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace hookd::http
