#include "http/cli/cli_client.hpp"

#include "hookd/version.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url_view.hpp>

#include <openssl/ssl.h>

#include <exception>
#include <optional>

namespace hookd::http {
namespace {

namespace urls = boost::urls;
using tcp = asio::ip::tcp;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// hookd's largest answers are lists (100 webhooks of a project, every token): far below this.
constexpr std::uint64_t kMaxResponseBytes = 64ull * 1024 * 1024;

std::string quoted(std::string_view text) {
  return "'" + std::string(text) + "'";
}

// Everything one request needs and yields; lives on the caller's stack while the io_context runs.
struct exchange {
  const base_url& where;
  std::chrono::milliseconds timeout;
  request req;
  std::optional<client_response> answer;
  client_failure failure;
};

void fail(exchange& x, client_failure::stage stage, std::string what) {
  x.failure = client_failure{stage, std::move(what)};
}

template <class Stream>
asio::awaitable<void> write_and_read(Stream& stream, exchange& x) {
  beast::get_lowest_layer(stream).expires_after(x.timeout);
  auto [wec, written] = co_await bhttp::async_write(stream, x.req, use_tuple);
  if (wec) {
    fail(x, client_failure::stage::exchange,
         "sending the request to " + x.where.host_header + ": " + wec.message());
    co_return;
  }
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(kMaxResponseBytes);
  beast::get_lowest_layer(stream).expires_after(x.timeout);
  auto [rec, got] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
  if (rec) {
    fail(x, client_failure::stage::exchange,
         "reading the answer from " + x.where.host_header + ": " + rec.message());
    co_return;
  }
  auto res = parser.release();
  client_response out;
  out.status = res.result_int();
  out.content_type = std::string(res[bhttp::field::content_type]);
  out.body = std::move(res.body());
  x.answer = std::move(out);
}

asio::awaitable<void> run_exchange(exchange& x, asio::ssl::context* tls) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto [rec, endpoints] =
      co_await resolver.async_resolve(x.where.host, std::to_string(x.where.port), use_tuple);
  if (rec) {
    fail(x, client_failure::stage::resolve,
         "cannot resolve " + quoted(x.where.host) + ": " + rec.message());
    co_return;
  }
  beast::tcp_stream tcp_stream(executor);
  tcp_stream.expires_after(x.timeout);
  auto [cec, endpoint] = co_await tcp_stream.async_connect(endpoints, use_tuple);
  if (cec) {
    fail(x, client_failure::stage::connect,
         "cannot connect to " + x.where.host_header + ": " + cec.message());
    co_return;
  }
  if (tls == nullptr) {
    co_await write_and_read(tcp_stream, x);
    beast::error_code ignored;
    tcp_stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    co_return;
  }

  beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), *tls);
  if (x.where.host_is_name &&
      SSL_set_tlsext_host_name(stream.native_handle(), x.where.host.c_str()) != 1) {
    fail(x, client_failure::stage::tls, "cannot set the TLS server name " + quoted(x.where.host));
    co_return;
  }
  stream.set_verify_callback(asio::ssl::host_name_verification(x.where.host));
  beast::get_lowest_layer(stream).expires_after(x.timeout);
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, use_tuple);
  if (hec) {
    fail(x, client_failure::stage::tls,
         "TLS handshake with " + x.where.host_header + " failed: " + hec.message());
    co_return;
  }
  co_await write_and_read(stream, x);
  // The answer is complete; a peer that skips close_notify is not our problem here.
  beast::get_lowest_layer(stream).expires_after(x.timeout);
  co_await stream.async_shutdown(use_tuple);
}

}  // namespace

std::variant<base_url, std::string> parse_base_url(std::string_view text) {
  auto parsed = urls::parse_absolute_uri(text);
  if (!parsed) {
    return "expected a URL such as http://127.0.0.1:8080, got " + quoted(text);
  }
  const urls::url_view& u = *parsed;
  base_url out;
  if (u.scheme_id() == urls::scheme::https) {
    out.tls = true;
    out.port = 443;
  } else if (u.scheme_id() != urls::scheme::http) {
    return "expected an http or https URL, got " + quoted(text);
  }
  if (u.has_userinfo()) {
    return "the URL must not carry user-info; pass the token with --token: " + quoted(text);
  }
  if (u.has_query() || u.has_fragment()) {
    return "the URL must not have a query or fragment: " + quoted(text);
  }
  switch (u.host_type()) {
    case urls::host_type::name:
    case urls::host_type::ipv4:
    case urls::host_type::ipv6:
      break;
    default:
      return "the URL needs a host name or address: " + quoted(text);
  }
  out.host = u.host_address();
  if (out.host.empty()) {
    return "the URL needs a host name or address: " + quoted(text);
  }
  out.host_is_name = u.host_type() == urls::host_type::name;
  if (u.has_port()) {
    if (u.port().empty() || u.port_number() == 0) {
      return "the URL's port must be 1..65535: " + quoted(text);
    }
    out.port = u.port_number();
  }
  out.host_header = std::string(u.encoded_host_and_port());
  out.path_prefix = std::string(u.encoded_path());
  while (!out.path_prefix.empty() && out.path_prefix.back() == '/') {
    out.path_prefix.pop_back();
  }
  return out;
}

sync_client::sync_client(base_url where, std::chrono::milliseconds timeout)
    : where_(std::move(where)), timeout_(timeout) {}

std::variant<client_response, client_failure> sync_client::send(
    bhttp::verb method, std::string_view target, std::string_view body,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  exchange x{where_, timeout_, {}, std::nullopt, {client_failure::stage::exchange, {}}};
  x.req.method(method);
  x.req.target(where_.path_prefix + std::string(target));
  x.req.version(11);
  x.req.set(bhttp::field::host, where_.host_header);
  x.req.set(bhttp::field::user_agent, std::string("hookctl/") + kVersion);
  x.req.set(bhttp::field::accept, "application/json, application/problem+json");
  for (const auto& [name, value] : headers) {
    x.req.set(name, value);
  }
  if (!body.empty()) {
    x.req.set(bhttp::field::content_type, "application/json");
    x.req.body() = std::string(body);
  }
  x.req.keep_alive(false);
  x.req.prepare_payload();

  std::optional<asio::ssl::context> tls;
  if (where_.tls) {
    tls.emplace(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(tls->native_handle(), TLS1_2_VERSION);
    beast::error_code ec;
    if (!ca_file_.empty()) {
      tls->load_verify_file(ca_file_, ec);
      if (ec) {
        return client_failure{
            client_failure::stage::tls,
            "cannot load the CA certificates in " + quoted(ca_file_) + ": " + ec.message()};
      }
    } else {
      // The system store; OpenSSL also honours SSL_CERT_FILE and SSL_CERT_DIR.
      tls->set_default_verify_paths(ec);
      if (ec) {
        return client_failure{client_failure::stage::tls,
                              "cannot load the system CA certificates: " + ec.message()};
      }
    }
    tls->set_verify_mode(asio::ssl::verify_peer);
  }

  asio::io_context io;
  std::exception_ptr crashed;
  asio::co_spawn(io, run_exchange(x, tls ? &*tls : nullptr),
                 [&crashed](std::exception_ptr e) { crashed = e; });
  io.run();
  if (crashed) {
    try {
      std::rethrow_exception(crashed);
    } catch (const std::exception& e) {
      return client_failure{client_failure::stage::exchange,
                            "request to " + where_.host_header + " failed: " + e.what()};
    } catch (...) {
      return client_failure{client_failure::stage::exchange,
                            "request to " + where_.host_header + " failed"};
    }
  }
  if (x.answer) {
    return std::move(*x.answer);
  }
  if (x.failure.what.empty()) {
    x.failure.what = "no answer from " + where_.host_header;
  }
  return x.failure;
}

std::string encode_path_segment(std::string_view segment) {
  return urls::encode(segment, urls::unreserved_chars);
}

}  // namespace hookd::http
