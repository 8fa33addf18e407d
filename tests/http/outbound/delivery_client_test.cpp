// The outbound delivery client against a real receiver on 127.0.0.1 (plain and TLS), started in
// the test on port 0. The receiver counts accepted connections and requests per path, so the
// tests can tell reuse from reconnects and a followed redirect from an unfollowed one.

#include "http/outbound/delivery_client.hpp"

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace hookd::http {
namespace {

namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// ---------------------------------------------------------------- a self-signed certificate

struct tls_material {
  std::string cert_pem;
  std::string key_pem;
};

void add_extension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// A P-256 certificate for "localhost" and 127.0.0.1, valid from an hour ago for a day.
tls_material make_localhost_certificate() {
  tls_material out;
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  add_extension(cert, NID_basic_constraints, "critical,CA:TRUE");
  add_extension(cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  X509_sign(cert, key, EVP_sha256());

  BIO* cert_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cert_bio, cert);
  out.cert_pem = bio_text(cert_bio);
  BIO* key_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = bio_text(key_bio);
  BIO_free(cert_bio);
  BIO_free(key_bio);
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

// ---------------------------------------------------------------- the receiver

struct seen_request {
  std::string target;
  bhttp::fields headers;
  std::size_t body_bytes = 0;
  std::string sni;  // the TLS server name the client sent, if any
};

// Paths: /big (100 KiB body, UTF-8 two-byte characters after one ASCII byte), /medium (20 KiB),
// /redirect (302 to /target), /hang (never answers), /retry (429 + Retry-After: 120),
// /drop (closes without answering), /drop-next (answers, then drops the next request on the same
// connection), /close-after (answers as if keeping the connection, then closes it: closed()
// counts those), /gate... (answers 200 only once open_gate() is called); anything else: 200 "ok".
class receiver {
 public:
  explicit receiver(std::optional<tls_material> tls = std::nullopt,
                    std::string_view address = "127.0.0.1")
      : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address(address), 0)) {
    if (tls) {
      tls_context_.emplace(ssl::context::tls_server);
      tls_context_->use_certificate_chain(asio::buffer(tls->cert_pem));
      tls_context_->use_private_key(asio::buffer(tls->key_pem), ssl::context::pem);
    }
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(ioc_, accept_loop(), [](std::exception_ptr) {});
    thread_ = std::thread([this] { ioc_.run(); });
  }

  ~receiver() {
    asio::post(ioc_, [this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
      for (auto* s : sessions_) {
        s->lowest().socket().close(ignored);
        s->hang.cancel();
      }
    });
    auto done = std::async(std::launch::async, [this] { thread_.join(); });
    if (done.wait_for(10s) != std::future_status::ready) ioc_.stop();
    done.wait();
  }

  std::uint16_t port() const { return port_; }
  std::size_t connections() const { return connections_.load(); }
  // Waits (bounded) until /close-after has closed `n` connections; the receiver has its own thread.
  bool wait_closed(std::size_t n) const {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (closed_.load() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    return closed_.load() >= n;
  }
  std::size_t requests() const {
    std::lock_guard lock(mutex_);
    return seen_.size();
  }
  std::size_t requests(std::string_view path) const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& r : seen_) n += r.target == path ? 1U : 0U;
    return n;
  }
  std::size_t requests_starting_with(std::string_view prefix) const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& r : seen_) n += r.target.starts_with(prefix) ? 1U : 0U;
    return n;
  }
  // Answers every /gate request held so far, and every later one at once.
  void open_gate() {
    asio::post(ioc_, [this] {
      gate_open_ = true;
      for (auto* s : sessions_) s->hang.cancel();
    });
  }
  seen_request last() const {
    std::lock_guard lock(mutex_);
    return seen_.empty() ? seen_request{} : seen_.back();
  }

 private:
  struct session {
    explicit session(asio::io_context& ioc) : plain(ioc), hang(ioc) {}
    beast::tcp_stream plain;
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls;  // takes `plain` over when TLS
    asio::steady_timer hang;
    beast::flat_buffer buffer;
    bool drop_next = false;
    std::string sni;

    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : plain; }
  };

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
      if (ec) co_return;
      ++connections_;
      auto s = std::make_unique<session>(ioc_);
      s->plain.socket() = std::move(socket);
      session* raw = s.get();
      sessions_.insert(raw);
      asio::co_spawn(ioc_, serve(std::move(s)),
                     [this, raw](std::exception_ptr) { sessions_.erase(raw); });
    }
  }

  asio::awaitable<void> serve(std::unique_ptr<session> s) {
    if (tls_context_) {
      s->tls.emplace(std::move(s->plain), *tls_context_);
      s->lowest().expires_after(5s);
      auto [ec] = co_await s->tls->async_handshake(ssl::stream_base::server, use_tuple);
      if (ec) co_return;
      if (const char* name =
              SSL_get_servername(s->tls->native_handle(), TLSEXT_NAMETYPE_host_name)) {
        s->sni = name;
      }
      co_await serve_requests(*s->tls, *s);
    } else {
      co_await serve_requests(s->plain, *s);
    }
  }

  template <class Stream>
  asio::awaitable<void> serve_requests(Stream& stream, session& s) {
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(1024 * 1024);
      s.lowest().expires_after(10s);
      auto [ec, n] = co_await bhttp::async_read(stream, s.buffer, parser, use_tuple);
      if (ec) co_return;
      const auto& req = parser.get();
      const std::string target(req.target());
      {
        std::lock_guard lock(mutex_);
        seen_.push_back({target, req.base(), req.body().size(), s.sni});
      }
      if (s.drop_next || target == "/drop") co_return;  // the socket closes with the session
      if (target == "/hang") {
        s.hang.expires_after(30s);
        co_await s.hang.async_wait(use_tuple);
        co_return;
      }
      if (target.starts_with("/gate")) {
        while (!gate_open_) {
          s.hang.expires_after(30s);
          auto [wait_ec] = co_await s.hang.async_wait(use_tuple);
          if (!wait_ec) co_return;  // never opened: give up like /hang
        }
      }

      bhttp::response<bhttp::string_body> res{bhttp::status::ok, 11};
      res.keep_alive(req.keep_alive());
      if (target == "/big") {
        std::string body = "a";
        for (int i = 0; i < 50 * 1024; ++i) body += "\xC3\xA9";  // é
        res.body() = std::move(body);
      } else if (target == "/medium") {
        res.body() = std::string(20 * 1024, 'm');
      } else if (target == "/chunked" || target == "/chunked-large") {
        res.body() = target == "/chunked" ? std::string("chunked ok") : std::string(20 * 1024, 'c');
        res.chunked(true);
      } else if (target == "/redirect") {
        res.result(bhttp::status::found);
        res.set(bhttp::field::location, "/target");
      } else if (target == "/retry") {
        res.result(bhttp::status::too_many_requests);
        res.set(bhttp::field::retry_after, "120");
      } else {
        res.body() = "ok";
        s.drop_next = target == "/drop-next";
      }
      if (!res.chunked()) res.prepare_payload();
      s.lowest().expires_after(10s);
      auto [wec, wn] = co_await bhttp::async_write(stream, res, use_tuple);
      if (wec || !res.keep_alive()) co_return;
      if (target == "/close-after") {
        boost::system::error_code ignored;
        s.lowest().socket().close(ignored);  // on loopback the client's socket sees it at once
        ++closed_;
        co_return;
      }
    }
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::optional<ssl::context> tls_context_;
  std::uint16_t port_ = 0;
  std::set<session*> sessions_;  // touched only on the receiver's thread
  bool gate_open_ = false;       // likewise
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::size_t> closed_{0};  // connections /close-after closed
  mutable std::mutex mutex_;
  std::vector<seen_request> seen_;
  std::thread thread_;
};

// ---------------------------------------------------------------- the client side

class delivery_client_test : public ::testing::Test {
 protected:
  static client_options private_ok() {
    client_options o;
    o.allow_private_targets = true;
    o.total_timeout = 5s;
    return o;
  }

  std::unique_ptr<delivery_client> make_client(client_options options) {
    return std::make_unique<delivery_client>(ioc_.get_executor(), std::move(options));
  }

  attempt_result send(delivery_client& client, std::string url,
                      std::vector<header_entry> headers = {}, std::string body = "{}") {
    auto result = asio::co_spawn(
        ioc_, client.send({std::move(url), std::move(headers), std::move(body)}), asio::use_future);
    ioc_.restart();
    ioc_.run();
    return result.get();
  }

  static std::string url(const receiver& r, std::string_view path,
                         std::string_view host = "127.0.0.1", std::string_view scheme = "http") {
    return std::string(scheme) + "://" + std::string(host) + ":" + std::to_string(r.port()) +
           std::string(path);
  }

  // One request to /close-after on a client whose pool peeks at connections idle
  // `check_idle_after` or more; once the receiver has closed that connection, one to /ok.
  struct after_close {
    std::unique_ptr<delivery_client> client;
    attempt_result result;  // of /ok
  };
  after_close send_after_a_close(receiver& r, std::chrono::milliseconds check_idle_after) {
    client_options options = private_ok();
    options.check_idle_after = check_idle_after;
    auto client = make_client(options);
    EXPECT_EQ(send(*client, url(r, "/close-after")).status_code, 200);
    EXPECT_TRUE(r.wait_closed(1));
    attempt_result result = send(*client, url(r, "/ok"));
    return {std::move(client), std::move(result)};
  }

  asio::io_context ioc_;
};

TEST_F(delivery_client_test, keeps_a_utf8_safe_4kib_prefix_and_closes_after_a_huge_body) {
  receiver r;
  auto client = make_client(private_ok());

  const attempt_result big = send(*client, url(r, "/big"), {}, std::string(100 * 1024, 'b'));
  EXPECT_EQ(big.status_code, 200);
  EXPECT_TRUE(big.error.empty()) << big.error;
  // Byte 4096 is the second byte of an "é": the cut steps back to keep whole characters.
  ASSERT_EQ(big.body_prefix.size(), 4095U);
  EXPECT_EQ(big.body_prefix.substr(0, 3), "a\xC3\xA9");
  EXPECT_EQ(big.body_prefix.substr(4093), "\xC3\xA9");
  EXPECT_EQ(r.last().body_bytes, 100U * 1024U);
  EXPECT_EQ(big.remote_endpoint, "127.0.0.1:" + std::to_string(r.port()));

  // 100 KiB exceeds the 64 KiB read bound: that connection was given up, the next one is fresh.
  EXPECT_EQ(client->idle_connections(), 0U);
  const attempt_result next = send(*client, url(r, "/ok"));
  EXPECT_EQ(next.status_code, 200);
  EXPECT_EQ(next.body_prefix, "ok");
  EXPECT_EQ(r.connections(), 2U);
}

TEST_F(delivery_client_test, discards_a_moderate_body_and_keeps_the_connection) {
  receiver r;
  auto client = make_client(private_ok());
  const attempt_result medium = send(*client, url(r, "/medium"));
  EXPECT_EQ(medium.status_code, 200);
  EXPECT_EQ(medium.body_prefix, std::string(4096, 'm'));
  EXPECT_EQ(send(*client, url(r, "/ok")).status_code, 200);
  EXPECT_EQ(r.connections(), 1U);
  EXPECT_EQ(r.requests(), 2U);
}

// Chunked bodies, one shorter and one longer than the client's 8 KiB read piece: the prefix is
// kept and the connection serves the next request (the body was parsed to the message's end,
// from the bytes that came with the head and from reads after it).
TEST_F(delivery_client_test, reads_a_chunked_body_and_keeps_the_connection) {
  receiver r;
  auto client = make_client(private_ok());
  const attempt_result small = send(*client, url(r, "/chunked"));
  EXPECT_EQ(small.status_code, 200) << small.error;
  EXPECT_EQ(small.body_prefix, "chunked ok");
  const attempt_result large = send(*client, url(r, "/chunked-large"));
  EXPECT_EQ(large.status_code, 200) << large.error;
  EXPECT_EQ(large.body_prefix, std::string(4096, 'c'));
  EXPECT_EQ(send(*client, url(r, "/ok")).status_code, 200);
  EXPECT_EQ(r.connections(), 1U);
  EXPECT_EQ(r.requests(), 3U);
}

TEST_F(delivery_client_test, reuses_one_keep_alive_connection) {
  receiver r;
  auto client = make_client(private_ok());
  for (int i = 0; i < 5; ++i) {
    const attempt_result result = send(*client, url(r, "/ok"));
    EXPECT_EQ(result.status_code, 200) << result.error;
  }
  EXPECT_EQ(r.connections(), 1U);
  EXPECT_EQ(r.requests("/ok"), 5U);
  EXPECT_EQ(client->stats().connections_opened, 1U);
  EXPECT_EQ(client->stats().connections_reused, 4U);
  EXPECT_EQ(client->idle_connections(), 1U);

  client->close_idle();
  EXPECT_EQ(client->idle_connections(), 0U);
  EXPECT_EQ(send(*client, url(r, "/ok")).status_code, 200);
  EXPECT_EQ(r.connections(), 2U);
}

TEST_F(delivery_client_test, keeps_at_most_max_idle_total_over_all_origins_closing_the_oldest) {
  receiver a, b, c;
  client_options options = private_ok();
  options.max_idle_total = 2;
  auto client = make_client(options);
  EXPECT_EQ(send(*client, url(a, "/ok")).status_code, 200);
  EXPECT_EQ(send(*client, url(b, "/ok")).status_code, 200);
  EXPECT_EQ(client->idle_connections(), 2U);
  // A third idle connection: the one idle longest (to a) is closed.
  EXPECT_EQ(send(*client, url(c, "/ok")).status_code, 200);
  EXPECT_EQ(client->idle_connections(), 2U);

  EXPECT_EQ(send(*client, url(b, "/ok")).status_code, 200);
  EXPECT_EQ(send(*client, url(c, "/ok")).status_code, 200);
  EXPECT_EQ(send(*client, url(a, "/ok")).status_code, 200);
  EXPECT_EQ(b.connections(), 1U);  // reused
  EXPECT_EQ(c.connections(), 1U);  // reused
  EXPECT_EQ(a.connections(), 2U);  // its idle connection had been closed
  EXPECT_EQ(client->idle_connections(), 2U);
  EXPECT_EQ(client->stats().connections_reused, 2U);
}

TEST_F(delivery_client_test, an_expired_idle_connection_is_not_reused) {
  receiver r;
  client_options options = private_ok();
  options.idle_expiry = 0ms;
  auto client = make_client(options);
  EXPECT_EQ(send(*client, url(r, "/ok")).status_code, 200);
  EXPECT_EQ(send(*client, url(r, "/ok")).status_code, 200);
  EXPECT_EQ(r.connections(), 2U);
}

TEST_F(delivery_client_test, returns_a_redirect_without_following_it) {
  receiver r;
  auto client = make_client(private_ok());
  const attempt_result result = send(*client, url(r, "/redirect"));
  EXPECT_EQ(result.status_code, 302);
  EXPECT_TRUE(result.error.empty());
  EXPECT_EQ(r.requests(), 1U);
  EXPECT_EQ(r.requests("/target"), 0U);
}

TEST_F(delivery_client_test, times_out_when_the_receiver_never_answers) {
  receiver r;
  client_options options = private_ok();
  options.total_timeout = 300ms;
  auto client = make_client(options);
  const attempt_result result = send(*client, url(r, "/hang"));
  EXPECT_EQ(result.status_code, 0);
  EXPECT_FALSE(result.refused_by_guard);
  EXPECT_EQ(result.error, "timeout after 300ms waiting for the response from 127.0.0.1:" +
                              std::to_string(r.port()));
  EXPECT_EQ(r.requests("/hang"), 1U);
  EXPECT_EQ(client->idle_connections(), 0U);
}

TEST_F(delivery_client_test, reports_a_refused_connection) {
  std::uint16_t port = 0;
  {
    asio::io_context scratch;
    tcp::acceptor probe(scratch, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }  // closed: nothing listens there now
  auto client = make_client(private_ok());
  const attempt_result result = send(*client, "http://127.0.0.1:" + std::to_string(port) + "/x");
  EXPECT_EQ(result.status_code, 0);
  EXPECT_FALSE(result.refused_by_guard);
  EXPECT_EQ(result.error,
            "connect failed to 127.0.0.1:" + std::to_string(port) + ": Connection refused");
}

TEST_F(delivery_client_test, captures_retry_after) {
  receiver r;
  auto client = make_client(private_ok());
  const attempt_result result = send(*client, url(r, "/retry"));
  EXPECT_EQ(result.status_code, 429);
  ASSERT_TRUE(result.retry_after.has_value());
  EXPECT_EQ(*result.retry_after, "120");
  EXPECT_FALSE(send(*client, url(r, "/ok")).retry_after.has_value());
}

TEST_F(delivery_client_test, sends_custom_headers_host_and_content_length) {
  receiver r;
  auto client = make_client(private_ok());
  const std::string body = R"({"type":"user.created"})";
  const attempt_result result =
      send(*client, url(r, "/echo?x=1&y=2"),
           {{"content-type", "application/json"},
            {"X-Custom", "abc"},
            {"webhook-id", "msg_1"},
            {"Host", "evil.example"},  // framing headers are the client's own
            {"Content-Length", "1"},
            {"X-Bad", "a\r\nInjected: yes"},    // would split the header: skipped
            {"X-Nul", std::string("a\0b", 3)},  // and a NUL: skipped
            {"Bad Name", "x"},                  // not a token: skipped
            {"X-\xC3\xA9t\xC3\xA9", "x"},       // not ASCII: skipped
            {"X-Punct!#$%&'*+.^_`|~", "ok"},    // every token punctuation: sent
            {"X-Custom", "second"}},
           body);
  ASSERT_EQ(result.status_code, 200) << result.error;
  const seen_request seen = r.last();
  EXPECT_EQ(seen.target, "/echo?x=1&y=2");
  EXPECT_EQ(seen.headers[bhttp::field::host], "127.0.0.1:" + std::to_string(r.port()));
  EXPECT_EQ(seen.headers.count(bhttp::field::host), 1U);
  EXPECT_EQ(seen.headers[bhttp::field::content_length], std::to_string(body.size()));
  EXPECT_EQ(seen.headers[bhttp::field::content_type], "application/json");
  EXPECT_EQ(seen.headers["webhook-id"], "msg_1");
  EXPECT_EQ(seen.headers.count("x-custom"), 2U);
  EXPECT_EQ(seen.headers["x-custom"], "abc");
  EXPECT_EQ(seen.headers.count("x-bad"), 0U);
  EXPECT_EQ(seen.headers.count("injected"), 0U);
  EXPECT_EQ(seen.headers.count("x-nul"), 0U);
  EXPECT_EQ(seen.headers.count("bad name"), 0U);
  EXPECT_EQ(seen.headers["x-punct!#$%&'*+.^_`|~"], "ok");
  EXPECT_EQ(seen.body_bytes, body.size());
}

TEST_F(delivery_client_test, a_cr_lf_or_nul_anywhere_in_a_value_keeps_the_header_out) {
  // Values are checked eight bytes at a time, then the tail: a forbidden byte at any position of
  // a word or of the tail, in values of every length up to three words, is found.
  receiver r;
  auto client = make_client(private_ok());
  std::vector<std::string> names, values;
  std::size_t good = 0;
  for (std::size_t length = 0; length <= 24; ++length) {
    names.push_back("X-Good-" + std::to_string(length));
    values.push_back(std::string(length, 'v'));
    ++good;
    for (std::size_t at = 0; at < length; ++at) {
      for (const char bad : {'\r', '\n', '\0'}) {
        std::string value(length, 'v');
        value[at] = bad;
        names.push_back("X-Bad-" + std::to_string(length) + "-" + std::to_string(at) + "-" +
                        std::to_string(static_cast<int>(bad)));
        values.push_back(std::move(value));
      }
    }
  }
  std::vector<header_ref> more;
  for (std::size_t i = 0; i < names.size(); ++i) more.push_back({names[i], values[i]});
  const auto prepared = client->prepare(url(r, "/ok"), {});
  auto sent = asio::co_spawn(ioc_, client->send(prepared, more, "{}"), asio::use_future);
  ioc_.restart();
  ioc_.run();
  const attempt_result result = sent.get();
  ASSERT_EQ(result.status_code, 200) << result.error;
  const seen_request seen = r.last();
  std::size_t good_seen = 0;
  for (const auto& field : seen.headers) {
    const std::string name(field.name_string());
    EXPECT_FALSE(name.starts_with("X-Bad-")) << name;
    if (name.starts_with("X-Good-")) {
      ++good_seen;
      EXPECT_EQ(field.value().size(), std::stoul(name.substr(7))) << name;
    }
  }
  EXPECT_EQ(good_seen, good);
}

TEST_F(delivery_client_test, a_prepared_request_is_sent_many_times_with_its_own_headers_each) {
  // What the dispatcher does per webhook: the URL and the fixed headers once, then per attempt
  // only its own headers and body. Each send must carry exactly its own, checked like the rest.
  receiver r;
  client_options options = private_ok();
  options.user_agent = "hookd/test";
  auto client = make_client(options);
  const auto prepared = client->prepare(
      url(r, "/prepared?q=1"), std::vector<header_entry>{{"content-type", "application/json"},
                                                         {"X-Fixed", "f"},
                                                         {"Content-Length", "7"},
                                                         {"X-Bad", "a\r\nInjected: yes"}});
  ASSERT_TRUE(prepared->error().empty()) << prepared->error();
  const auto send_prepared = [&](std::vector<header_ref> more, std::string_view body) {
    auto result = asio::co_spawn(ioc_, client->send(prepared, more, body), asio::use_future);
    ioc_.restart();
    ioc_.run();
    return result.get();
  };
  for (int i = 0; i < 3; ++i) {
    const std::string id = "msg_" + std::to_string(i);
    const std::string body = std::string(static_cast<std::size_t>(i + 1) * 10, 'b');
    const attempt_result result = send_prepared(
        {{"webhook-id", id}, {"X-Split", "x\r\nInjected: yes"}, {"Host", "evil.example"}}, body);
    ASSERT_EQ(result.status_code, 200) << result.error;
    const seen_request seen = r.last();
    EXPECT_EQ(seen.target, "/prepared?q=1");
    EXPECT_EQ(seen.headers[bhttp::field::host], "127.0.0.1:" + std::to_string(r.port()));
    EXPECT_EQ(seen.headers.count(bhttp::field::host), 1U);
    EXPECT_EQ(seen.headers[bhttp::field::content_type], "application/json");
    EXPECT_EQ(seen.headers["x-fixed"], "f");
    EXPECT_EQ(seen.headers[bhttp::field::user_agent], "hookd/test");
    EXPECT_EQ(seen.headers["webhook-id"], id);  // this send's, not an earlier one's
    EXPECT_EQ(seen.headers.count("webhook-id"), 1U);
    EXPECT_EQ(seen.headers.count("x-bad"), 0U);
    EXPECT_EQ(seen.headers.count("x-split"), 0U);
    EXPECT_EQ(seen.headers.count("injected"), 0U);
    EXPECT_EQ(seen.headers[bhttp::field::content_length], std::to_string(body.size()));
    EXPECT_EQ(seen.body_bytes, body.size());
  }
  EXPECT_EQ(client->stats().connections_opened, 1U);  // and one keep-alive connection for all

  // A bad URL prepares into its error, which every send of it reports without connecting.
  const auto bad = client->prepare("ftp://127.0.0.1/x", {});
  EXPECT_NE(bad->error().find("invalid URL"), std::string::npos) << bad->error();
  for (int i = 0; i < 2; ++i) {
    auto result = asio::co_spawn(ioc_, client->send(bad, {}, "{}"), asio::use_future);
    ioc_.restart();
    ioc_.run();
    const attempt_result res = result.get();
    EXPECT_FALSE(res.has_response());
    EXPECT_EQ(res.error, bad->error());
  }
  EXPECT_EQ(client->stats().connections_opened, 1U);
}

TEST_F(delivery_client_test, each_url_keeps_its_own_target_across_sends) {
  // Parsed URLs are remembered per client: alternating URLs must each reach their own target,
  // and a bad URL is refused every time, not only the first.
  receiver r;
  auto client = make_client(private_ok());
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(send(*client, url(r, "/a?round=1")).status_code, 200);
    EXPECT_EQ(r.last().target, "/a?round=1");
    ASSERT_EQ(send(*client, url(r, "/b")).status_code, 200);
    EXPECT_EQ(r.last().target, "/b");
    const attempt_result bad = send(*client, "ftp://127.0.0.1/x");
    EXPECT_FALSE(bad.has_response());
    EXPECT_NE(bad.error.find("invalid URL"), std::string::npos) << bad.error;
  }
  EXPECT_EQ(r.requests("/a?round=1"), 3U);
  EXPECT_EQ(r.requests("/b"), 3U);
}

TEST_F(delivery_client_test, starting_the_url_cache_over_spares_the_attempts_in_flight) {
  // Attempts suspended on their receiver must keep the parsed URL they started with when the
  // cache of parsed URLs fills up and starts over meanwhile (a use-after-free under ASan before:
  // the in-flight attempts read the freed host and origin when they resumed).
  receiver r;
  client_options options = private_ok();
  options.max_cached_targets = 4;
  auto client = make_client(options);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  const auto run_until = [&](const auto& done) {
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      ioc_.restart();
      ioc_.run_for(5ms);
    }
    return done();
  };
  const auto all_ready = [](const std::vector<std::future<attempt_result>>& fs) {
    for (const auto& f : fs) {
      if (f.wait_for(0s) != std::future_status::ready) return false;
    }
    return true;
  };

  constexpr int kHeld = 8;
  std::vector<std::future<attempt_result>> held;
  for (int i = 0; i < kHeld; ++i) {
    held.push_back(asio::co_spawn(
        ioc_, client->send({url(r, "/gate?i=" + std::to_string(i)), {}, "{}"}), asio::use_future));
  }
  ASSERT_TRUE(run_until([&] { return r.requests_starting_with("/gate") == kHeld; }));

  // Sixteen other URLs while the eight wait: the cache (4) starts over several times.
  std::vector<std::future<attempt_result>> fills;
  for (int j = 0; j < 16; ++j) {
    fills.push_back(asio::co_spawn(
        ioc_, client->send({url(r, "/fill?j=" + std::to_string(j)), {}, "{}"}), asio::use_future));
  }
  ASSERT_TRUE(run_until([&] { return all_ready(fills); }));
  for (auto& f : fills) EXPECT_EQ(f.get().status_code, 200);

  r.open_gate();
  ASSERT_TRUE(run_until([&] { return all_ready(held); }));
  for (auto& f : held) {
    const attempt_result res = f.get();
    EXPECT_EQ(res.status_code, 200) << res.error;
  }
  // Their connections went back to the pool of the right origin: the next send reuses one.
  const std::size_t opened = client->stats().connections_opened;
  ASSERT_EQ(send(*client, url(r, "/after")).status_code, 200);
  EXPECT_EQ(client->stats().connections_opened, opened);
  EXPECT_GE(client->stats().connections_reused, 1U);
}

TEST_F(delivery_client_test, adds_the_default_user_agent_unless_the_request_has_one) {
  receiver r;
  client_options options = private_ok();
  options.user_agent = "hookd/test";
  auto client = make_client(options);
  ASSERT_EQ(send(*client, url(r, "/ok")).status_code, 200);
  EXPECT_EQ(r.last().headers[bhttp::field::user_agent], "hookd/test");
  ASSERT_EQ(send(*client, url(r, "/ok"), {{"User-Agent", "mine"}}).status_code, 200);
  EXPECT_EQ(r.last().headers[bhttp::field::user_agent], "mine");
  EXPECT_EQ(r.last().headers.count(bhttp::field::user_agent), 1U);
}

TEST_F(delivery_client_test, retries_a_pooled_connection_the_server_dropped_once) {
  receiver r;
  auto client = make_client(private_ok());
  ASSERT_EQ(send(*client, url(r, "/drop-next")).status_code, 200);
  // The pooled connection looks alive, but the server drops the request sent on it.
  const attempt_result result = send(*client, url(r, "/ok"));
  EXPECT_EQ(result.status_code, 200) << result.error;
  EXPECT_EQ(client->stats().stale_retries, 1U);
  EXPECT_EQ(r.connections(), 2U);
  EXPECT_EQ(r.requests("/ok"), 2U);  // the dropped one and the retry
}

TEST_F(delivery_client_test,
       peeks_at_a_connection_idle_past_check_idle_after_and_drops_it_if_closed) {
  receiver r;
  const after_close sent = send_after_a_close(r, 0ms);  // every reuse peeks first
  EXPECT_EQ(sent.result.status_code, 200) << sent.result.error;
  // The peek saw the close: the request went on a new connection without a wasted write.
  EXPECT_EQ(sent.client->stats().stale_retries, 0U);
  EXPECT_EQ(sent.client->stats().connections_reused, 0U);
  EXPECT_EQ(sent.client->stats().connections_opened, 2U);
  EXPECT_EQ(r.connections(), 2U);
}

TEST_F(delivery_client_test, reuses_a_connection_idle_for_less_than_check_idle_after_unpeeked) {
  receiver r;
  const after_close sent = send_after_a_close(r, std::chrono::hours(1));  // no reuse peeks
  // Taken without a peek; the request fails on the closed connection before any response byte,
  // and goes once more on a fresh one.
  EXPECT_EQ(sent.result.status_code, 200) << sent.result.error;
  EXPECT_EQ(sent.client->stats().connections_reused, 1U);
  EXPECT_EQ(sent.client->stats().stale_retries, 1U);
  EXPECT_EQ(r.connections(), 2U);
  EXPECT_EQ(r.requests("/ok"), 1U);  // the closed connection took nothing
}

TEST_F(delivery_client_test, does_not_retry_a_fresh_connection_that_closes) {
  receiver r;
  auto client = make_client(private_ok());
  const attempt_result result = send(*client, url(r, "/drop"));
  EXPECT_EQ(result.status_code, 0);
  EXPECT_EQ(result.error,
            "127.0.0.1:" + std::to_string(r.port()) + " closed the connection without a response");
  EXPECT_EQ(r.requests("/drop"), 1U);
  EXPECT_EQ(client->stats().stale_retries, 0U);
}

TEST_F(delivery_client_test, speaks_to_an_ipv6_literal_with_a_bracketed_host_header) {
  std::unique_ptr<receiver> r;
  try {
    r = std::make_unique<receiver>(std::nullopt, "::1");
  } catch (const boost::system::system_error& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  auto client = make_client(private_ok());
  const attempt_result result = send(*client, url(*r, "/ok", "[::1]"));
  ASSERT_EQ(result.status_code, 200) << result.error;
  EXPECT_EQ(result.remote_endpoint, "[::1]:" + std::to_string(r->port()));
  EXPECT_EQ(r->last().headers[bhttp::field::host], "[::1]:" + std::to_string(r->port()));
}

TEST_F(delivery_client_test, resolves_names_with_the_system_resolver) {
  receiver r;
  // "localhost" comes from /etc/hosts: no DNS server is involved.
  auto permissive = make_client(private_ok());
  const attempt_result reached = send(*permissive, url(r, "/ok", "localhost"));
  ASSERT_EQ(reached.status_code, 200) << reached.error;
  EXPECT_EQ(r.last().headers[bhttp::field::host], "localhost:" + std::to_string(r.port()));

  client_options strict;
  strict.total_timeout = 5s;
  auto guarded = make_client(strict);
  const attempt_result refused = send(*guarded, url(r, "/ok", "localhost"));
  EXPECT_TRUE(refused.refused_by_guard);
  EXPECT_TRUE(refused.error.starts_with("refused: localhost resolves to ")) << refused.error;
  EXPECT_EQ(r.requests(), 1U);
}

TEST_F(delivery_client_test, refuses_loopback_targets_without_connecting) {
  receiver r;
  std::vector<std::string> looked_up;
  client_options options;
  options.total_timeout = 5s;
  options.resolver = [&looked_up](std::string_view host) {
    looked_up.emplace_back(host);
    return std::vector<ip_address>{ip_address::v4({127, 0, 0, 1})};
  };
  auto client = make_client(options);
  const std::string port = std::to_string(r.port());
  for (const std::string host :
       {"127.0.0.1", "localhost", "127.1", "0x7f.1", "2130706433", "[::1]", "[::ffff:127.0.0.1]"}) {
    SCOPED_TRACE(host);
    const attempt_result result = send(*client, "http://" + host + ":" + port + "/ok");
    EXPECT_TRUE(result.refused_by_guard);
    EXPECT_EQ(result.status_code, 0);
    EXPECT_TRUE(result.error.starts_with("refused: ")) << result.error;
    EXPECT_TRUE(result.remote_endpoint.empty());
  }
  // Only the name was resolved; every spelling of an address was judged as an address.
  EXPECT_EQ(looked_up, std::vector<std::string>{"localhost"});
  EXPECT_EQ(r.connections(), 0U);
  EXPECT_EQ(client->stats().connections_opened, 0U);
  EXPECT_EQ(client->stats().guard_refusals, 7U);
}

TEST_F(delivery_client_test, refuses_a_name_when_any_resolved_address_is_private) {
  client_options options;
  options.total_timeout = 5s;
  options.resolver = [](std::string_view) {
    return std::vector<ip_address>{ip_address::v4({93, 184, 216, 34}),
                                   ip_address::v4({10, 0, 0, 1})};
  };
  auto client = make_client(options);
  const attempt_result result = send(*client, "https://mixed.example/hook");
  EXPECT_TRUE(result.refused_by_guard);
  EXPECT_NE(result.error.find("10.0.0.1"), std::string::npos) << result.error;
  EXPECT_EQ(client->stats().connections_opened, 0U);
}

TEST_F(delivery_client_test, reports_an_unresolvable_name_and_a_bad_url) {
  client_options options = private_ok();
  options.resolver = [](std::string_view) {
    return std::vector<ip_address>{};
  };
  auto client = make_client(options);
  const attempt_result unresolved = send(*client, "http://nowhere.test/x");
  EXPECT_FALSE(unresolved.refused_by_guard);
  EXPECT_EQ(unresolved.error, "DNS lookup failed for nowhere.test: no addresses");

  const attempt_result bad = send(*client, "ftp://127.0.0.1/x");
  EXPECT_FALSE(bad.refused_by_guard);
  EXPECT_TRUE(bad.error.starts_with("invalid URL")) << bad.error;
  EXPECT_EQ(client->stats().connections_opened, 0U);
}

// Boost.URL 1.81 reads "http://127.0.0.1:PORT.evil/ok" as host 127.0.0.1, port PORT and the path
// ".evil/ok"; the client then connected there and sent "POST .evil/ok". A webhook stored before
// the API refused such URLs must not be delivered to an address its URL does not name (found by
// tests/fuzz: address_guard, input "http://1.2.3.4.5/").
TEST_F(delivery_client_test, refuses_a_url_whose_address_is_followed_by_more_host) {
  receiver r;
  std::vector<std::string> looked_up;
  client_options options = private_ok();
  options.resolver = [&looked_up](std::string_view host) {
    looked_up.emplace_back(host);
    return std::vector<ip_address>{ip_address::v4({127, 0, 0, 1})};
  };
  auto client = make_client(options);
  const std::string port = std::to_string(r.port());
  const std::vector<std::string> urls{"http://127.0.0.1:" + port + ".evil.example/ok",
                                      "http://127.0.0.1.evil.example/ok", "http://[::1]x/ok"};
  for (const std::string& url : urls) {
    SCOPED_TRACE(url);
    const attempt_result result = send(*client, url);
    EXPECT_EQ(result.status_code, 0);
    EXPECT_TRUE(result.error.starts_with("invalid URL")) << result.error;
  }
  EXPECT_TRUE(looked_up.empty());
  EXPECT_EQ(r.requests(), 0U);
  EXPECT_EQ(client->stats().connections_opened, 0U);
}

// ---------------------------------------------------------------- TLS

class delivery_client_tls_test : public delivery_client_test {
 protected:
  static const tls_material& material() {
    static const tls_material m = make_localhost_certificate();
    return m;
  }
  static client_options tls_options(bool trust_the_certificate) {
    client_options o = private_ok();
    if (trust_the_certificate) o.extra_ca_pem = material().cert_pem;
    o.resolver = [](std::string_view) {
      return std::vector<ip_address>{ip_address::v4({127, 0, 0, 1})};
    };
    return o;
  }
};

TEST_F(delivery_client_tls_test, verifies_the_certificate_against_the_host_name) {
  receiver r(material());
  auto client = make_client(tls_options(true));
  const attempt_result result = send(*client, url(r, "/ok", "localhost", "https"));
  EXPECT_EQ(result.status_code, 200) << result.error;
  EXPECT_EQ(result.body_prefix, "ok");
  EXPECT_EQ(r.last().sni, "localhost");
  EXPECT_EQ(r.last().headers[bhttp::field::host], "localhost:" + std::to_string(r.port()));

  // Keep-alive works over TLS too.
  EXPECT_EQ(send(*client, url(r, "/ok", "localhost", "https")).status_code, 200);
  EXPECT_EQ(r.connections(), 1U);
}

TEST_F(delivery_client_tls_test, verifies_an_ip_literal_without_sni) {
  receiver r(material());
  auto client = make_client(tls_options(true));
  const attempt_result result = send(*client, url(r, "/ok", "127.0.0.1", "https"));
  EXPECT_EQ(result.status_code, 200) << result.error;
  EXPECT_EQ(r.last().sni, "");
}

TEST_F(delivery_client_tls_test, refuses_a_host_name_the_certificate_does_not_name) {
  receiver r(material());
  auto client = make_client(tls_options(true));
  const attempt_result result = send(*client, url(r, "/ok", "other.test", "https"));
  EXPECT_EQ(result.status_code, 0);
  EXPECT_TRUE(result.error.starts_with("TLS handshake failed: certificate verify failed"))
      << result.error;
  EXPECT_NE(result.error.find("hostname mismatch"), std::string::npos) << result.error;
  EXPECT_EQ(r.requests(), 0U);
}

TEST_F(delivery_client_tls_test, refuses_an_untrusted_certificate) {
  receiver r(material());
  auto client = make_client(tls_options(false));
  const attempt_result result = send(*client, url(r, "/ok", "localhost", "https"));
  EXPECT_EQ(result.status_code, 0);
  EXPECT_TRUE(result.error.starts_with("TLS handshake failed: certificate verify failed"))
      << result.error;
  EXPECT_EQ(r.requests(), 0U);
}

TEST_F(delivery_client_tls_test, rejects_bad_extra_ca_pem) {
  client_options options = private_ok();
  options.extra_ca_pem = "not a certificate";
  EXPECT_THROW(make_client(options), std::invalid_argument);
}

}  // namespace
}  // namespace hookd::http
