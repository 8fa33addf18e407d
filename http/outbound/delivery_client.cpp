#include "http/outbound/delivery_client.hpp"

#include "http/outbound/delivery_target.hpp"
#include "http/outbound/response_reader.hpp"

#include "core/common/ascii.hpp"
#include "core/common/clock.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <deque>
#include <map>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <variant>

namespace hookd::http {

namespace {

namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// How often taking an idle connection also closes the expired ones of every origin. Walking all
// origins on every attempt costs O(origins) per delivery for connections that only matter once
// reused, and a reused one is checked on its own; a second keeps the expired ones from lingering
// much past client_options::idle_expiry while deliveries go on.
constexpr std::chrono::seconds kPruneEvery{1};

}  // namespace

// ---------------------------------------------------------------- the URL

std::variant<delivery_target, std::string> parse_delivery_target(std::string_view url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return "invalid URL: " + parsed.error().message();
  const boost::urls::url_view& u = *parsed;

  // Boost.URL 1.81 reads "http://1.2.3.4.5/" as host 1.2.3.4 with the path ".5/" (and so
  // "http://93.184.216.34.example.com/" as an address the URL never named): after the host comes a
  // port, a path beginning with '/', or nothing.
  if (const auto path = u.encoded_path(); !path.empty() && path.front() != '/') {
    return "invalid URL: the host is followed by '" + std::string(path.substr(0, 32)) +
           "', not by a port or a path";
  }

  delivery_target t;
  if (u.scheme_id() == boost::urls::scheme::https) {
    t.tls = true;
  } else if (u.scheme_id() != boost::urls::scheme::http) {
    return "invalid URL: the scheme must be http or https, not '" + std::string(u.scheme()) + "'";
  }

  switch (u.host_type()) {
    case boost::urls::host_type::ipv4:
    case boost::urls::host_type::ipv6:
      t.host = u.host_address();
      break;
    case boost::urls::host_type::name:
      t.host = ascii_lowercase(u.host_name());
      break;
    default:
      return std::string("invalid URL: no usable host");
  }
  if (t.host.empty()) return std::string("invalid URL: empty host");
  // Boost.URL calls "127.1" and "0x7f.1" names; a browser and getaddrinfo call them 127.0.0.1.
  t.literal = parse_ip_literal(t.host);
  if (!t.literal && host_ends_in_a_number(t.host)) {
    return "invalid URL: " + t.host + " is not a valid IPv4 address";
  }

  t.port = t.tls ? 443 : 80;
  t.host_header = std::string(u.encoded_host());
  if (u.has_port() && !u.port().empty()) {
    const std::string_view port = u.port();
    unsigned value = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || value > 65535)
        return "invalid URL: bad port '" + std::string(port) + "'";
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) return "invalid URL: bad port '" + std::string(port) + "'";
    t.port = static_cast<std::uint16_t>(value);
    t.host_header += ':';
    t.host_header += port;
  }

  t.path = std::string(u.encoded_path());
  if (t.path.empty()) t.path = "/";
  if (u.has_query()) {
    t.path += '?';
    t.path += u.encoded_query();
  }

  const std::string key_host = t.literal ? t.literal->to_string() : t.host;
  t.origin = (t.tls ? "https://" : "http://") + key_host + ':' + std::to_string(t.port);
  return t;
}

namespace {

// ---------------------------------------------------------------- small helpers

ip_address from_asio(const asio::ip::address& a) {
  if (a.is_v4()) {
    const auto bytes = a.to_v4().to_bytes();
    return *ip_address::from_bytes(std::span<const std::uint8_t>(bytes.data(), bytes.size()));
  }
  const auto bytes = a.to_v6().to_bytes();
  return *ip_address::from_bytes(std::span<const std::uint8_t>(bytes.data(), bytes.size()));
}

asio::ip::address to_asio(const ip_address& a) {
  const auto bytes = a.bytes();
  if (a.is_v4()) {
    asio::ip::address_v4::bytes_type b{};
    std::copy(bytes.begin(), bytes.end(), b.begin());
    return asio::ip::address_v4(b);
  }
  asio::ip::address_v6::bytes_type b{};
  std::copy(bytes.begin(), bytes.end(), b.begin());
  return asio::ip::address_v6(b);
}

std::string endpoint_text(const tcp::endpoint& ep) {
  const auto a = ep.address();
  std::string out = a.is_v6() ? '[' + a.to_string() + ']' : a.to_string();
  return out + ':' + std::to_string(ep.port());
}

std::string endpoints_text(const std::vector<tcp::endpoint>& eps) {
  std::string out;
  for (const auto& ep : eps) {
    if (!out.empty()) out += ", ";
    out += endpoint_text(ep);
  }
  return out;
}

std::string describe_duration(std::chrono::milliseconds d) {
  return format_duration(d);
}

// RFC 9110 token characters: a header name that is not a token could smuggle a second header.
// A table and single passes, because every header of every attempt is checked: a search of the
// punctuation per character of a name and find_first_of (a memchr per character) over every
// value cost a delivery ~4 300 instructions (bench/README.md, issue #15).
constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (const char c : std::string_view("!#$%&'*+-.^_`|~")) {
    t[static_cast<unsigned char>(c)] = true;
  }
  return t;
}();

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return kTokenChars[static_cast<unsigned char>(c)]; });
}

// No CR, LF or NUL.
bool is_safe_value(std::string_view s) noexcept {
  return std::none_of(s.begin(), s.end(),
                      [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

// Headers that frame the message or steer the connection belong to the client.
bool is_transport_header(std::string_view name) noexcept {
  for (std::string_view reserved : {"host", "content-length", "transfer-encoding", "connection",
                                    "keep-alive", "upgrade", "te", "trailer"}) {
    if (ascii_iequals(name, reserved)) return true;
  }
  return false;
}

// A header the client writes: a token name, a value that cannot split the message, not one of
// the client's own.
bool is_sendable(std::string_view name, std::string_view value) noexcept {
  return is_token(name) && is_safe_value(value) && !is_transport_header(name);
}

// The X.509 reason behind a failed handshake ("hostname mismatch", "self-signed certificate").
std::string tls_failure(const error_code& ec, SSL* ssl) {
  std::string out = "TLS handshake failed: " + ec.message();
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    out += " (";
    out += X509_verify_cert_error_string(verify);
    out += ')';
  }
  return out;
}

// ---------------------------------------------------------------- connections

struct connection {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<tls_stream> tls;
  beast::flat_buffer buffer;
  std::string remote;  // "ip:port" of the peer
  steady::time_point idle_since{};

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

  void close() {
    error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
  }

  // An idle connection the peer has closed (or written to unasked, like a 408 before closing) is
  // not worth a request. Over TLS, pending bytes may be a session ticket: left to the read.
  [[nodiscard]] bool looks_usable() {
    auto& socket = lowest().socket();
    if (!socket.is_open()) return false;
    char byte = 0;
    const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    return tls != nullptr;
  }
};

}  // namespace

// ---------------------------------------------------------------- impl

struct delivery_client::impl {
  impl(asio::any_io_executor ex, client_options opts)
      : executor(std::move(ex)),
        options(std::move(opts)),
        tls_context(ssl::context::tls_client),
        resolver(executor) {
    tls_context.set_default_verify_paths();
    tls_context.set_verify_mode(ssl::verify_peer);
    tls_context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                            ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                            ssl::context::no_tlsv1_1);
    if (!options.extra_ca_pem.empty()) {
      error_code ec;
      tls_context.add_certificate_authority(asio::buffer(options.extra_ca_pem), ec);
      if (ec) throw std::invalid_argument("client_options.extra_ca_pem: " + ec.message());
    }
  }

  asio::any_io_executor executor;
  client_options options;
  ssl::context tls_context;
  tcp::resolver resolver;
  // origin -> idle connections, the most recently used at the back.
  std::map<std::string, std::deque<std::unique_ptr<connection>>, std::less<>> idle;
  std::size_t idle_count = 0;  // connections in `idle`, over all origins
  client_stats stats;

  // When prune_idle last closed the expired connections of every origin. take_idle walks all
  // origins at most once per kPruneEvery; the connection it takes is checked on its own.
  steady::time_point last_prune{};

  std::unique_ptr<connection> take_idle(const std::string& origin, steady::time_point now);
  void put_idle(const std::string& origin, std::unique_ptr<connection> c);
  void prune_idle(steady::time_point now);
  void close_oldest_idle();

  asio::awaitable<std::optional<std::vector<ip_address>>> resolve(const delivery_target& t,
                                                                  steady::time_point deadline,
                                                                  attempt_result& result);
  asio::awaitable<std::unique_ptr<connection>> open(const delivery_target& t,
                                                    steady::time_point deadline,
                                                    attempt_result& result);
  template <class Stream>
  asio::awaitable<exchange_status> exchange(Stream& stream, connection& c, const std::string& wire,
                                            steady::time_point deadline, attempt_result& result);

  // Parsed URLs, so that a webhook's URL is parsed once rather than on every attempt. Only
  // successful parses are kept; past options.max_cached_targets entries the map starts over.
  // Shared ownership: a send() holds its target across every co_await, so starting the map over
  // while attempts are in flight frees nothing they still read (host, origin, path).
  std::unordered_map<std::string, std::shared_ptr<const delivery_target>> targets;
  std::shared_ptr<const delivery_target> find_target(const std::string& url, std::string& error);
};

std::shared_ptr<const delivery_target> delivery_client::impl::find_target(const std::string& url,
                                                                          std::string& error) {
  if (const auto it = targets.find(url); it != targets.end()) return it->second;
  auto parsed = parse_delivery_target(url);
  if (auto* why = std::get_if<std::string>(&parsed)) {
    error = std::move(*why);
    return nullptr;
  }
  if (targets.size() >= std::max<std::size_t>(options.max_cached_targets, 1)) targets.clear();
  auto made = std::make_shared<const delivery_target>(std::move(std::get<delivery_target>(parsed)));
  targets.emplace(url, made);
  return made;
}

std::unique_ptr<connection> delivery_client::impl::take_idle(const std::string& origin,
                                                             steady::time_point now) {
  if (now - last_prune >= kPruneEvery) {
    prune_idle(now);
    last_prune = now;
  }
  auto it = idle.find(origin);
  if (it == idle.end()) return nullptr;
  auto& list = it->second;
  std::unique_ptr<connection> found;
  while (!list.empty() && !found) {
    std::unique_ptr<connection> c = std::move(list.back());
    list.pop_back();
    --idle_count;
    // The most recently used first: when it has expired, so have the others of its origin.
    const auto idle_for = now - c->idle_since;
    if (idle_for < options.idle_expiry &&
        (idle_for < options.check_idle_after || c->looks_usable())) {
      found = std::move(c);
    } else {
      c->close();
    }
  }
  if (list.empty()) idle.erase(it);
  return found;
}

void delivery_client::impl::put_idle(const std::string& origin, std::unique_ptr<connection> c) {
  if (options.max_idle_per_origin == 0) {
    c->close();
    return;
  }
  c->idle_since = steady::now();
  auto& list = idle[origin];
  while (list.size() >= options.max_idle_per_origin) {
    list.front()->close();
    list.pop_front();
    --idle_count;
  }
  list.push_back(std::move(c));
  ++idle_count;
  while (options.max_idle_total != 0 && idle_count > options.max_idle_total) close_oldest_idle();
}

void delivery_client::impl::close_oldest_idle() {
  // Each origin's list is oldest first, so the oldest of all is one of the fronts.
  auto oldest = idle.end();
  for (auto it = idle.begin(); it != idle.end(); ++it) {
    if (oldest == idle.end() ||
        it->second.front()->idle_since < oldest->second.front()->idle_since) {
      oldest = it;
    }
  }
  if (oldest == idle.end()) return;
  oldest->second.front()->close();
  oldest->second.pop_front();
  --idle_count;
  if (oldest->second.empty()) idle.erase(oldest);
}

void delivery_client::impl::prune_idle(steady::time_point now) {
  for (auto it = idle.begin(); it != idle.end();) {
    auto& list = it->second;
    // Oldest first: stop at the first one still fresh.
    while (!list.empty() && now - list.front()->idle_since >= options.idle_expiry) {
      list.front()->close();
      list.pop_front();
      --idle_count;
    }
    it = list.empty() ? idle.erase(it) : std::next(it);
  }
}

namespace {

// What the system resolver's completion handler leaves behind. Shared with the handler so that
// a lookup outliving its deadline (getaddrinfo cannot be interrupted) writes into memory that
// still exists; the waiting coroutine has long moved on by then.
struct resolve_state {
  explicit resolve_state(const asio::any_io_executor& ex) : signal(ex) {}
  asio::steady_timer signal;  // cancelled by the handler: "the lookup is done"
  bool done = false;
  error_code ec;
  tcp::resolver::results_type results;
};

}  // namespace

asio::awaitable<std::optional<std::vector<ip_address>>> delivery_client::impl::resolve(
    const delivery_target& t, steady::time_point deadline, attempt_result& result) {
  std::vector<ip_address> addresses;
  if (options.resolver) {
    addresses = options.resolver(t.host);
    if (addresses.empty()) {
      result.error = "DNS lookup failed for " + t.host + ": no addresses";
      co_return std::nullopt;
    }
    co_return addresses;
  }

  auto state = std::make_shared<resolve_state>(executor);
  state->signal.expires_at(deadline);
  resolver.async_resolve(t.host, std::to_string(t.port),
                         [state](const error_code& ec, tcp::resolver::results_type results) {
                           state->done = true;
                           state->ec = ec;
                           state->results = std::move(results);
                           state->signal.cancel();
                         });
  if (!state->done) co_await state->signal.async_wait(use_tuple);
  if (!state->done) {
    result.timed_out = true;
    result.error =
        "DNS lookup timeout after " + describe_duration(options.total_timeout) + " for " + t.host;
    co_return std::nullopt;
  }
  if (state->ec) {
    result.error = "DNS lookup failed for " + t.host + ": " + state->ec.message();
    co_return std::nullopt;
  }
  for (const auto& entry : state->results)
    addresses.push_back(from_asio(entry.endpoint().address()));
  if (addresses.empty()) {
    result.error = "DNS lookup failed for " + t.host + ": no addresses";
    co_return std::nullopt;
  }
  co_return addresses;
}

asio::awaitable<std::unique_ptr<connection>> delivery_client::impl::open(
    const delivery_target& t, steady::time_point deadline, attempt_result& result) {
  std::vector<ip_address> resolved;
  if (!t.literal) {
    auto addresses = co_await resolve(t, deadline, result);
    if (!addresses) co_return nullptr;
    resolved = std::move(*addresses);
  }
  // For a literal check_target ignores `resolved` and judges the literal itself.
  guard_decision decision = check_target(t.host, resolved, options.allow_private_targets);
  if (!decision.allowed) {
    ++stats.guard_refusals;
    result.refused_by_guard = true;
    result.error = std::move(decision.reason);
    co_return nullptr;
  }

  std::vector<tcp::endpoint> endpoints;
  endpoints.reserve(decision.addresses.size());
  for (const ip_address& a : decision.addresses) endpoints.emplace_back(to_asio(a), t.port);

  auto c = std::make_unique<connection>();
  if (t.tls) {
    c->tls = std::make_unique<tls_stream>(executor, tls_context);
  } else {
    c->plain = std::make_unique<beast::tcp_stream>(executor);
  }

  const auto now = steady::now();
  const bool connect_bound = now + options.connect_timeout < deadline;
  c->lowest().expires_at(connect_bound ? now + options.connect_timeout : deadline);
  auto [connect_ec, peer] = co_await c->lowest().async_connect(endpoints, use_tuple);
  if (connect_ec == beast::error::timeout) {
    result.timed_out = true;
    result.error =
        (connect_bound
             ? "connect timeout after " + describe_duration(options.connect_timeout)
             : "timeout after " + describe_duration(options.total_timeout) + " connecting") +
        " to " + endpoints_text(endpoints);
    co_return nullptr;
  }
  if (connect_ec) {
    result.error = "connect failed to " + endpoints_text(endpoints) + ": " + connect_ec.message();
    co_return nullptr;
  }
  ++stats.connections_opened;
  {
    // A request is written in one go and then answered: nothing is gained by Nagle's waiting for
    // an ACK of the previous segment (a TLS handshake flight or a request larger than one
    // segment would otherwise stall on the receiver's delayed ACK).
    error_code ignored;
    c->lowest().socket().set_option(tcp::no_delay(true), ignored);
  }
  c->remote = endpoint_text(peer);
  result.remote_endpoint = c->remote;

  if (t.tls) {
    SSL* handle = c->tls->native_handle();
    if (t.literal) {
      // No SNI for addresses (RFC 6066 §3); the certificate must name the IP instead.
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), t.literal->to_string().c_str());
    } else {
      if (SSL_set_tlsext_host_name(handle, t.host.c_str()) != 1 ||
          SSL_set1_host(handle, t.host.c_str()) != 1) {
        result.error = "TLS setup failed for " + t.host;
        co_return nullptr;
      }
    }
    const auto hs_now = steady::now();
    const bool hs_bound = hs_now + options.tls_handshake_timeout < deadline;
    c->lowest().expires_at(hs_bound ? hs_now + options.tls_handshake_timeout : deadline);
    auto [hs_ec] = co_await c->tls->async_handshake(ssl::stream_base::client, use_tuple);
    if (hs_ec == beast::error::timeout) {
      result.timed_out = true;
      result.error = (hs_bound ? "TLS handshake timeout after " +
                                     describe_duration(options.tls_handshake_timeout)
                               : "timeout after " + describe_duration(options.total_timeout) +
                                     " in the TLS handshake") +
                     " with " + c->remote;
      co_return nullptr;
    }
    if (hs_ec) {
      result.error = tls_failure(hs_ec, handle);
      c->close();
      co_return nullptr;
    }
  }
  co_return c;
}

template <class Stream>
asio::awaitable<exchange_status> delivery_client::impl::exchange(Stream& stream, connection& c,
                                                                 const std::string& wire,
                                                                 steady::time_point deadline,
                                                                 attempt_result& result) {
  const auto timeout_text = [this] {
    return "timeout after " + describe_duration(options.total_timeout);
  };

  c.lowest().expires_at(deadline);
  auto [write_ec, written] = co_await asio::async_write(stream, asio::buffer(wire), use_tuple);
  (void)written;
  if (write_ec) {
    if (write_ec == beast::error::timeout) {
      result.timed_out = true;
      result.error = timeout_text() + " sending the request to " + c.remote;
      co_return exchange_status::done;
    }
    result.error = "sending the request to " + c.remote + " failed: " + write_ec.message();
    co_return exchange_status::stale;
  }

  const auto written_at = steady::now();
  const exchange_status status = co_await read_response(
      stream, c.buffer,
      response_read_limits{options.max_response_header_bytes, options.max_response_read_bytes},
      [&c, deadline] { c.lowest().expires_at(deadline); }, timeout_text, c.remote, result);
  result.exchange = steady::now() - written_at;
  co_return status;
}

// ---------------------------------------------------------------- the client

delivery_client::delivery_client(asio::any_io_executor executor, client_options options)
    : impl_(std::make_unique<impl>(std::move(executor), std::move(options))) {}

delivery_client::~delivery_client() {
  close_idle();
}

asio::awaitable<attempt_result> delivery_client::send(outbound_request outbound) {
  co_return co_await send(prepare(outbound.url, outbound.headers), {}, outbound.body);
}

std::shared_ptr<const prepared_request> delivery_client::prepare(
    const std::string& url, std::span<const header_entry> headers) {
  impl& self = *impl_;
  auto made = std::make_shared<prepared_request>();
  made->target_ = self.find_target(url, made->error_);
  if (!made->target_) return made;
  const delivery_target& t = *made->target_;

  // The request line, Host, the caller's headers in their order, User-Agent when the caller gave
  // none; send() adds its own headers, Content-Length and the body.
  std::string& head = made->head_;
  {
    std::size_t size = t.path.size() + t.host_header.size() + 40 + self.options.user_agent.size();
    for (const header_entry& h : headers) size += h.name.size() + h.value.size() + 4;
    head.reserve(size);
  }
  head.append("POST ").append(t.path).append(" HTTP/1.1\r\nHost: ").append(t.host_header);
  head.append("\r\n");
  bool has_user_agent = false;
  for (const header_entry& h : headers) {
    if (!is_sendable(h.name, h.value)) continue;
    has_user_agent = has_user_agent || ascii_iequals(h.name, "user-agent");
    head.append(h.name).append(": ").append(h.value).append("\r\n");
  }
  if (!has_user_agent && !self.options.user_agent.empty() &&
      is_safe_value(self.options.user_agent)) {
    head.append("User-Agent: ").append(self.options.user_agent).append("\r\n");
  }
  return made;
}

asio::awaitable<attempt_result> delivery_client::send(
    std::shared_ptr<const prepared_request> prepared, std::span<const header_ref> more_headers,
    std::string_view body) {
  impl& self = *impl_;
  const auto start = steady::now();
  const auto deadline = start + self.options.total_timeout;
  attempt_result result;
  auto finish = [&result, start] {
    result.duration = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
  };

  if (!prepared->target_) {
    result.error = prepared->error_;
    finish();
    co_return result;
  }
  // Owned by the prepared request, which this coroutine holds until it returns.
  const delivery_target& t = *prepared->target_;

  // The request bytes, written with one write: the prepared part, this send's headers,
  // Content-Length, then the body.
  std::string wire;
  {
    std::size_t size = prepared->head_.size() + body.size() + 40;
    for (const header_ref& h : more_headers) size += h.name.size() + h.value.size() + 4;
    wire.reserve(size);
  }
  wire.append(prepared->head_);
  for (const header_ref& h : more_headers) {
    if (!is_sendable(h.name, h.value)) continue;
    wire.append(h.name).append(": ").append(h.value).append("\r\n");
  }
  wire.append("Content-Length: ").append(std::to_string(body.size()));
  wire.append("\r\n\r\n").append(body);

  std::unique_ptr<connection> c = self.take_idle(t.origin, start);
  bool pooled = c != nullptr;
  if (pooled) {
    ++self.stats.connections_reused;
    result.remote_endpoint = c->remote;
  } else {
    c = co_await self.open(t, deadline, result);
    if (!c) {
      finish();
      co_return result;
    }
  }

  for (;;) {
    const exchange_status status =
        c->tls ? co_await self.exchange(*c->tls, *c, wire, deadline, result)
               : co_await self.exchange(*c->plain, *c, wire, deadline, result);
    if (status == exchange_status::stale && pooled) {
      // The server closed the idle connection while we were writing to it; nothing of this
      // request was answered, so a fresh connection gets the one retry.
      ++self.stats.stale_retries;
      c->close();
      pooled = false;
      result = attempt_result{};
      c = co_await self.open(t, deadline, result);
      if (!c) break;
      continue;
    }
    if (status == exchange_status::reusable) {
      self.put_idle(t.origin, std::move(c));
    } else {
      c->close();
    }
    break;
  }
  finish();
  co_return result;
}

void delivery_client::close_idle() {
  for (auto& [origin, list] : impl_->idle) {
    for (auto& c : list) c->close();
  }
  impl_->idle.clear();
  impl_->idle_count = 0;
}

std::size_t delivery_client::idle_connections() const noexcept {
  return impl_->idle_count;
}

const client_stats& delivery_client::stats() const noexcept {
  return impl_->stats;
}
const client_options& delivery_client::options() const noexcept {
  return impl_->options;
}
const asio::any_io_executor& delivery_client::get_executor() const noexcept {
  return impl_->executor;
}

}  // namespace hookd::http
