// hookd-sink: a webhook receiver for tests, demos and benchmarks. It verifies Standard Webhooks
// signatures, answers with scripted statuses, and prints one JSON line per delivery.
// Single-threaded: one io_context, one coroutine per connection, all state on that thread.

#include "core/delivery/signing.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxBodyBytes = 1024 * 1024;  // a delivery is far smaller
constexpr std::size_t kMaxHeaderBytes = 16 * 1024;
constexpr auto kIdleTimeout = 60s;  // keep-alive wait for the next request
constexpr auto kIoTimeout = 30s;    // reading one request, writing one response

constexpr std::string_view kHelp =
    R"(hookd-sink: a webhook receiver that verifies Standard Webhooks signatures.

Usage: hookd-sink [options]

  --listen HOST:PORT   where to listen (default 127.0.0.1:9000; port 0 picks a free one).
                       The first stdout line is {"event":"listening","address":"http://HOST:PORT"}.
  --secret whsec_...   verify webhook-signature with this secret (repeatable: any one may match);
                       a v1a webhook's public key, whpk_..., verifies its Ed25519 signatures.
                       A bad or missing signature, or a timestamp more than 5 minutes away,
                       is answered 401 with a JSON error. Without --secret nothing is verified.
  --status CODE        the answer to every delivery without a script (default 200).
  --script RULE        scripted answers for one path (repeatable). RULE is
                         PATH=CODE[xN][,delay=MS][,retry-after=SECONDS]
                       CODE answers requests to PATH (exact match, query ignored); xN limits the
                       rule to the next N requests, after which the next rule for PATH applies,
                       and when none is left, --status. delay=MS waits before answering;
                       retry-after adds that Retry-After header. Examples:
                         --script /gone=410             always 410 Gone
                         --script /slow=200,delay=3000  answer after 3 s
                         --script /flaky=500x2          500 twice, then the default
                         --script /busy=429x1,retry-after=30
  --max-requests N     exit 0 after answering N deliveries.
  --quiet              no line per delivery (the listening and summary lines remain).
  --help               this text.

Each delivery prints one JSON line to stdout:
  {"path":...,"webhookId":...,"timestamp":...,"verified":true|false,"status":...,"type":...,"bytes":N}
("error" is added when verification failed). GET /__stats answers the counts as JSON:
  {"received":N,"verified":N,"failedVerification":N,"byStatus":{"200":N,...}}
SIGINT or SIGTERM prints {"event":"summary",...} with the same counts and exits 0.
Invalid options exit 2.
)";

// ---------------------------------------------------------------- options

struct script_rule {
  unsigned status = 200;
  std::optional<std::uint64_t> times;  // nullopt: for ever
  std::chrono::milliseconds delay{0};
  std::optional<std::string> retry_after;
};

struct sink_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 9000;
  std::vector<std::string> secrets;
  unsigned default_status = 200;
  std::map<std::string, std::deque<script_rule>, std::less<>> scripts;
  std::optional<std::uint64_t> max_requests;
  bool quiet = false;
};

std::optional<std::uint64_t> parse_number(std::string_view s, std::uint64_t max) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (value > max) return std::nullopt;
  return value;
}

std::optional<unsigned> parse_status(std::string_view s) {
  auto v = parse_number(s, 599);
  if (!v || *v < 100 || s.size() != 3) return std::nullopt;
  return static_cast<unsigned>(*v);
}

// "/path=CODE[xN][,delay=MS][,retry-after=S]"
std::optional<std::pair<std::string, script_rule>> parse_script(std::string_view text) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0 || text[0] != '/') return std::nullopt;
  std::string path(text.substr(0, eq));
  std::string_view rest = text.substr(eq + 1);
  const auto comma = rest.find(',');
  std::string_view code = rest.substr(0, comma);
  script_rule rule;
  if (const auto x = code.find('x'); x != std::string_view::npos) {
    auto times = parse_number(code.substr(x + 1), 1'000'000'000);
    if (!times || *times == 0) return std::nullopt;
    rule.times = *times;
    code = code.substr(0, x);
  }
  auto status = parse_status(code);
  if (!status) return std::nullopt;
  rule.status = *status;
  rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  while (!rest.empty()) {
    const auto next = rest.find(',');
    const std::string_view item = rest.substr(0, next);
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
    if (item.starts_with("delay=")) {
      auto ms = parse_number(item.substr(6), 3'600'000);
      if (!ms) return std::nullopt;
      rule.delay = std::chrono::milliseconds(static_cast<std::int64_t>(*ms));
    } else if (item.starts_with("retry-after=")) {
      auto seconds = parse_number(item.substr(12), 1'000'000'000);
      if (!seconds) return std::nullopt;
      rule.retry_after = std::to_string(*seconds);
    } else {
      return std::nullopt;
    }
  }
  return std::pair{std::move(path), rule};
}

// "HOST:PORT" or "[v6]:PORT"; "localhost" means 127.0.0.1.
bool parse_listen(std::string_view text, sink_options& out) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = text.substr(0, colon);
  auto port = parse_number(text.substr(colon + 1), 65535);
  if (!port) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  if (ec) return false;
  out.host = std::string(host);
  out.port = static_cast<std::uint16_t>(*port);
  return true;
}

// 0: go on; -1: --help was printed (exit 0); 2: a one-line error was printed (exit 2).
int parse_arguments(int argc, char** argv, sink_options& out) {
  auto fail = [](std::string_view message) {
    std::cerr << "hookd-sink: " << message << " (see --help)\n";
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string_view& v) {
      if (i + 1 >= argc) return false;
      v = argv[++i];
      return true;
    };
    std::string_view v;
    if (arg == "--help" || arg == "-h") {
      std::cout << kHelp;
      return -1;
    } else if (arg == "--quiet") {
      out.quiet = true;
    } else if (arg == "--listen") {
      if (!value(v) || !parse_listen(v, out)) return fail("--listen expects HOST:PORT");
    } else if (arg == "--secret") {
      if (!value(v)) return fail("--secret expects whsec_...");
      out.secrets.emplace_back(v);
    } else if (arg == "--status") {
      std::optional<unsigned> status;
      if (!value(v) || !(status = parse_status(v))) return fail("--status expects 100..599");
      out.default_status = *status;
    } else if (arg == "--script") {
      std::optional<std::pair<std::string, script_rule>> rule;
      if (!value(v) || !(rule = parse_script(v))) {
        return fail("--script expects PATH=CODE[xN][,delay=MS][,retry-after=SECONDS]");
      }
      out.scripts[rule->first].push_back(rule->second);
    } else if (arg == "--max-requests") {
      std::optional<std::uint64_t> n;
      if (!value(v) || !(n = parse_number(v, 1'000'000'000'000)) || *n == 0) {
        return fail("--max-requests expects a positive number");
      }
      out.max_requests = *n;
    } else {
      return fail("unknown option '" + std::string(arg) + "'");
    }
  }
  return 0;
}

// ---------------------------------------------------------------- the receiver

void print_line(const json::value& v) {
  const std::string line = json::serialize(v) + "\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

std::optional<std::string> header(const bhttp::request<bhttp::string_body>& req,
                                  std::string_view name) {
  auto it = req.find(name);
  if (it == req.end()) return std::nullopt;
  return std::string(it->value());
}

class sink {
 public:
  sink(asio::io_context& ioc, sink_options options, std::optional<hookd::webhook_signer> signer)
      : ioc_(ioc),
        options_(std::move(options)),
        signer_(std::move(signer)),
        acceptor_(ioc),
        signals_(ioc, SIGINT, SIGTERM) {}

  // Binds and prints the listening line; false after printing why not.
  bool listen() {
    const tcp::endpoint wanted(asio::ip::make_address(options_.host), options_.port);
    boost::system::error_code ec;
    acceptor_.open(wanted.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(wanted, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      std::cerr << "hookd-sink: cannot listen on " << options_.host << ':' << options_.port << ": "
                << ec.message() << '\n';
      return false;
    }
    const tcp::endpoint bound = acceptor_.local_endpoint();
    const std::string host = bound.address().is_v6() ? '[' + bound.address().to_string() + ']'
                                                     : bound.address().to_string();
    print_line(json::object{{"event", "listening"},
                            {"address", "http://" + host + ':' + std::to_string(bound.port())}});
    return true;
  }

  void start() {
    signals_.async_wait([this](const boost::system::error_code& ec, int) {
      if (!ec) stop();
    });
    asio::co_spawn(ioc_, accept_loop(), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  }

 private:
  struct connection {
    explicit connection(tcp::socket socket)
        : stream(std::move(socket)), delay(stream.get_executor()) {}
    beast::tcp_stream stream;
    asio::steady_timer delay;
  };

  // Stop accepting, close every connection (their coroutines end at their next await), print
  // the summary. The io_context then runs out of work and main returns.
  void stop() {
    if (stopping_) return;
    stopping_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    signals_.cancel(ignored);
    for (connection* c : live_) {
      c->stream.socket().close(ignored);
      c->delay.cancel();
    }
    json::object summary{{"event", "summary"}};
    for (auto& [key, value] : counts()) summary[key] = value;
    print_line(summary);
  }

  json::object counts() const {
    json::object by_status;
    for (const auto& [status, n] : by_status_) by_status[std::to_string(status)] = n;
    return json::object{{"received", received_},
                        {"verified", verified_},
                        {"failedVerification", failed_verification_},
                        {"byStatus", std::move(by_status)}};
  }

  asio::awaitable<void> accept_loop() {
    while (!stopping_) {
      auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
      if (ec) {
        if (stopping_ || ec == asio::error::operation_aborted) co_return;
        continue;  // EMFILE and friends: keep serving the connections we have
      }
      auto c = std::make_unique<connection>(std::move(socket));
      connection* raw = c.get();
      live_.insert(raw);
      asio::co_spawn(ioc_, serve(std::move(c)), [this, raw](std::exception_ptr e) {
        live_.erase(raw);
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& what) {
            std::cerr << "hookd-sink: connection failed: " << what.what() << '\n';
          }
        }
      });
    }
  }

  asio::awaitable<void> serve(std::unique_ptr<connection> c) {
    beast::flat_buffer buffer;
    for (bool first = true; !stopping_; first = false) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(kMaxHeaderBytes);
      parser.body_limit(kMaxBodyBytes);
      c->stream.expires_after(first ? kIoTimeout : kIdleTimeout);
      auto [ec, n] = co_await bhttp::async_read(c->stream, buffer, parser, use_tuple);
      if (ec) co_return;  // end of stream, timeout, garbage or an oversized body: goodbye
      bhttp::request<bhttp::string_body> req = parser.release();

      bhttp::response<bhttp::string_body> res;
      if (req.method() == bhttp::verb::get && req.target() == "/__stats") {
        res.result(bhttp::status::ok);
        res.body() = json::serialize(counts());
      } else {
        std::chrono::milliseconds delay{0};
        res = answer(req, delay);
        if (delay.count() > 0) {
          c->delay.expires_after(delay);
          co_await c->delay.async_wait(use_tuple);
          if (stopping_) co_return;
        }
      }
      res.version(11);
      const unsigned code = res.result_int();
      if (code < 200 || code == 204 || code == 304) {
        res.body().clear();  // these statuses have no body (RFC 9110 §6.4.1)
      } else {
        res.set(bhttp::field::content_type, "application/json");
      }
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      c->stream.expires_after(kIoTimeout);
      auto [wec, wn] = co_await bhttp::async_write(c->stream, res, use_tuple);
      if (options_.max_requests && received_ >= *options_.max_requests) {
        stop();
        co_return;
      }
      if (wec || !res.keep_alive()) co_return;
    }
  }

  // Verifies, consults the script, counts and prints; the response and the delay before it.
  bhttp::response<bhttp::string_body> answer(const bhttp::request<bhttp::string_body>& req,
                                             std::chrono::milliseconds& delay) {
    ++received_;
    const std::string_view target = req.target();
    const std::string path(target.substr(0, target.find('?')));
    const auto id = header(req, "webhook-id");
    const auto timestamp = header(req, "webhook-timestamp");

    json::object line{{"path", path}, {"webhookId", id ? json::value(*id) : json::value(nullptr)}};
    std::int64_t unix_seconds = 0;
    bool numeric_timestamp = timestamp && !timestamp->empty();
    if (numeric_timestamp) {
      try {
        std::size_t used = 0;
        unix_seconds = std::stoll(*timestamp, &used);
        numeric_timestamp = used == timestamp->size();
      } catch (const std::exception&) {
        numeric_timestamp = false;
      }
    }
    line["timestamp"] = numeric_timestamp ? json::value(unix_seconds)
                        : timestamp       ? json::value(*timestamp)
                                          : json::value(nullptr);

    bhttp::response<bhttp::string_body> res;
    bool verified = false;
    std::optional<hookd::verify_result> failure;
    if (signer_) {
      const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      hookd::verify_result check =
          signer_->verify(id.value_or(""), timestamp.value_or(""), req.body(),
                          header(req, "webhook-signature").value_or(""), now);
      verified = check.ok();
      if (!verified) failure = std::move(check);
    }

    unsigned status = options_.default_status;
    if (failure) {
      ++failed_verification_;
      status = 401;
      std::string code(
          hookd::to_string(failure->status));  // "stale timestamp" -> "stale_timestamp"
      std::replace(code.begin(), code.end(), ' ', '_');
      res.body() = json::serialize(json::object{{"error", code}, {"detail", failure->detail}});
      line["error"] = failure->detail;
    } else {
      if (verified) ++verified_;
      if (auto it = options_.scripts.find(path);
          it != options_.scripts.end() && !it->second.empty()) {
        script_rule& rule = it->second.front();
        status = rule.status;
        delay = rule.delay;
        if (rule.retry_after) res.set(bhttp::field::retry_after, *rule.retry_after);
        if (rule.times && --*rule.times == 0) it->second.pop_front();
      }
      res.body() = json::serialize(json::object{{"status", status}});
    }
    res.result(status);
    ++by_status_[status];

    line["verified"] = verified;
    line["status"] = status;
    json::value type = nullptr;
    boost::system::error_code ec;
    json::value body = json::parse(req.body(), ec);
    if (!ec && body.is_object()) {
      if (const auto* t = body.as_object().if_contains("type"); t && t->is_string()) type = *t;
    }
    line["type"] = type;
    line["bytes"] = req.body().size();
    if (!options_.quiet) print_line(line);
    return res;
  }

  asio::io_context& ioc_;
  sink_options options_;
  std::optional<hookd::webhook_signer> signer_;
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  std::set<connection*> live_;
  bool stopping_ = false;
  std::uint64_t received_ = 0;
  std::uint64_t verified_ = 0;
  std::uint64_t failed_verification_ = 0;
  std::map<unsigned, std::uint64_t> by_status_;
};

}  // namespace

int main(int argc, char** argv) {
  sink_options options;
  if (const int rc = parse_arguments(argc, argv, options); rc != 0) return rc < 0 ? 0 : rc;

  std::optional<hookd::webhook_signer> signer;
  if (!options.secrets.empty()) {
    auto created = hookd::webhook_signer::create(options.secrets);
    if (!created) {
      std::cerr << "hookd-sink: --secret: " << created.error().detail << '\n';
      return 2;
    }
    signer = std::move(*created);
  }

  try {
    asio::io_context ioc(1);
    sink receiver(ioc, std::move(options), std::move(signer));
    if (!receiver.listen()) return 1;
    receiver.start();
    ioc.run();
  } catch (const std::exception& e) {
    std::cerr << "hookd-sink: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
