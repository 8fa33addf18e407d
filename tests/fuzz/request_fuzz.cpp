// The request path in process: raw bytes -> Beast's request parser (the server's parser type and
// limits) -> the real route table -> the handlers -> the response head and body as the session
// renders them, on hookd's whole stack from the composition root (RocksDB in a mkdtemp dir, the
// dispatcher never started, so nothing is delivered). No sockets.
//
// Input: one or more pipelined HTTP/1.1 requests, served in turn while they ask for keep-alive
// (at most kMaxRequests). Before parsing, the placeholders {org}, {project}, {webhook}, {event},
// {delivery} and {token} become the ids of entities made at start-up and the admin token, so that
// the fuzzer reaches past authentication and the existence checks (a seed's Content-Length counts
// the substituted ids: 24 characters, the token 44). An input that deleted those entities leaves
// fresh ones for the next. Unlike the session, nothing here refuses a head for its framing or Host
// header (tests/http/server covers those): such requests reach the router and handlers too.
//
// What counts as a bug (the process aborts): a handler that throws, a 500, a response the session
// cannot render (a body on 204/304), and a JSON response whose body is not JSON.

#include "core/catalog/catalog.hpp"
#include "http/api/app.hpp"
#include "http/server/metrics.hpp"
#include "http/server/problem.hpp"
#include "http/server/router.hpp"
#include "tools/service/service.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace {

using namespace hookd;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

constexpr std::string_view kAdminToken = "hkd_fuzz-admin-token-0123456789abcdefABCDEF";
constexpr std::size_t kHeaderLimit = 8 * 1024;  // the server's default max_header_bytes
constexpr std::size_t kMaxRequests = 8;
// A fresh stack after this many inputs: what inputs create and delete does not pile up, and the
// start-up entities exist again.
constexpr std::uint64_t kInputsPerStack = 20'000;

[[noreturn]] void bug(const std::string& what) {
  std::fprintf(stderr, "request_fuzz: %s\n", what.c_str());
  std::abort();
}

std::filesystem::path make_temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/hookd-fuzz-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) bug("mkdtemp failed");
  return pattern;
}

struct served {
  unsigned status = 0;
  std::string body;
  bool keep_alive = false;
};

class stack {
 public:
  stack() : dir_(make_temp_dir()) {
    service_options o;
    o.settings.data_dir = (dir_ / "data").string();
    o.settings.listen_host = "127.0.0.1";
    o.settings.listen_port = 0;
    o.settings.threads = 1;
    o.settings.unsafe_no_fsync = true;  // nothing here survives the process
    o.admin_token = std::string(kAdminToken);
    o.log = [](const boost::json::object&) {
    };
    auto opened = service::open(std::move(o));
    if (auto* failed = std::get_if<service_failure>(&opened)) bug("open: " + failed->message);
    svc_ = std::move(std::get<std::unique_ptr<service>>(opened));
    svc_->shared().ready = true;
    http::register_ops_routes(routes_, svc_->shared());
    http::register_api_routes(routes_, svc_->shared());

    make_entities();
  }

  ~stack() {
    svc_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Serves the requests in `raw`, one after another, while they keep the connection alive.
  void serve_all(std::string raw) {
    substitute(raw);
    std::string_view rest = raw;
    for (std::size_t i = 0; i < kMaxRequests && !rest.empty(); ++i) {
      std::size_t used = 0;
      const auto s = serve(rest, used);
      if (!s || !s->keep_alive || used == 0) break;
      rest.remove_prefix(used);
    }
    // An input that deleted what the placeholders name leaves the next one with fresh entities,
    // so that one DELETE does not turn every later input into a 404.
    const auto hook = object_id::parse(ids_.webhook);
    if (!hook || !svc_->cat().find_webhook(*hook)) make_entities();
  }

 private:
  struct placeholder_ids {
    std::string org, project, webhook, event, delivery;
  };

  // The entities the placeholders name, made through the request path itself: a new organization
  // with a project, a webhook, an event and its delivery.
  void make_entities() {
    ids_.org = create("/api/v1/organizations", R"({"name":"Fuzz Org"})");
    ids_.project = create("/api/v1/organizations/" + ids_.org + "/projects",
                          R"({"name":"Fuzz Project","slug":"fuzz"})");
    const std::string project_path =
        "/api/v1/organizations/" + ids_.org + "/projects/" + ids_.project;
    ids_.webhook = create(project_path + "/settings/webhooks",
                          R"({"name":"Fuzz hook","url":"https://hooks.example.com/in",)"
                          R"("events":["order.*"],"headers":{"X-Tenant":"a"}})");
    ids_.event = create(project_path + "/events", R"({"type":"order.created","data":{"id":1}})");
    const auto listed = serve_one("GET " + project_path + "/settings/webhooks/" + ids_.webhook +
                                  "/deliveries HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer " +
                                  std::string(kAdminToken) + "\r\n\r\n");
    ids_.delivery =
        std::string(boost::json::parse(listed.body).at("data").at(0).at("_id").as_string());
  }

  std::string create(const std::string& path, const std::string& body) {
    const auto s =
        serve_one("POST " + path +
                  " HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
                  "Authorization: Bearer " +
                  std::string(kAdminToken) + "\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\n\r\n" + body);
    if (s.status != 201 && s.status != 202) bug("set-up: POST " + path + ": " + s.body);
    return std::string(boost::json::parse(s.body).at("_id").as_string());
  }

  served serve_one(const std::string& raw) {
    std::size_t used = 0;
    auto s = serve(raw, used);
    if (!s) bug("set-up request did not parse");
    return *s;
  }

  void substitute(std::string& raw) const {
    const std::pair<std::string_view, const std::string*> table[] = {
        {"{org}", &ids_.org},     {"{project}", &ids_.project},   {"{webhook}", &ids_.webhook},
        {"{event}", &ids_.event}, {"{delivery}", &ids_.delivery}, {"{token}", &admin_token_}};
    for (const auto& [name, value] : table) {
      for (auto at = raw.find(name); at != std::string::npos; at = raw.find(name, at)) {
        raw.replace(at, name.size(), *value);
        at += value->size();
      }
    }
  }

  // One request from the front of `raw`, as the session serves it: nullopt when the bytes end
  // before a complete request or a malformed one is answered and the connection closed.
  std::optional<served> serve(std::string_view raw, std::size_t& used) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(kHeaderLimit));
    parser.body_limit(boost::none);
    parser.eager(false);
    beast::error_code ec;
    used = parser.put(asio::buffer(raw.data(), raw.size()), ec);
    if (ec || !parser.is_header_done()) return std::nullopt;  // 400/431, or waiting for more
    const std::size_t max_body = svc_->shared().max_body_bytes;
    if (const auto length = parser.content_length(); length && *length > max_body) {
      return std::nullopt;  // 413 from the head alone, and the connection ends
    }
    parser.body_limit(max_body);
    parser.eager(true);
    while (!parser.is_done() && used < raw.size()) {
      const auto n = parser.put(asio::buffer(raw.data() + used, raw.size() - used), ec);
      used += n;
      if (ec || n == 0) break;
    }
    if (!parser.is_done() && !ec) parser.put_eof(ec);
    if (ec || !parser.is_done()) return std::nullopt;

    const http::request& req = parser.get();
    const std::string_view target = req.target();
    const auto q = target.find('?');
    const std::string_view path = target.substr(0, q);
    const std::string_view query =
        q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    const auto started = std::chrono::steady_clock::now();
    auto m = routes_.find(req.method(), path);
    http::response res;
    if (m.outcome == http::router::match::kind::found) {
      http::request_context ctx{req, m.params, path, query, kRequestId};
      std::exception_ptr failure;
      bool done = false;
      asio::co_spawn(ioc_, (*m.target)(ctx), [&](std::exception_ptr e, http::response r) {
        failure = e;
        res = std::move(r);
        done = true;
      });
      ioc_.restart();
      ioc_.run();
      if (failure) {
        try {
          std::rethrow_exception(failure);
        } catch (const std::exception& e) {
          bug(std::string("handler threw: ") + e.what());
        }
      }
      if (!done) bug("the handler never completed");
    } else {
      res = http::problem_response(make_problem(error_kind::not_found, "no route"), kRequestId);
    }
    if (res.result_int() == 500) bug("500 answered: " + res.body());

    std::string head;
    try {
      http::render_head(res, req.version(), req.keep_alive(), kRequestId, head);
    } catch (const std::exception& e) {
      bug(std::string("the response cannot be rendered: ") + e.what());
    }
    if (const auto type = res[bhttp::field::content_type];
        type.find("json") != std::string_view::npos) {
      boost::system::error_code jec;
      (void)boost::json::parse(res.body(), jec);
      if (jec) bug("a JSON response that is not JSON: " + res.body());
    }
    svc_->shared().stats.record_request(m.route, res.result_int(),
                                        std::chrono::steady_clock::now() - started);
    if (verbose_) {
      std::fprintf(stderr, "%s %s -> %u %s\n", std::string(req.method_string()).c_str(),
                   std::string(target).c_str(), res.result_int(),
                   res.result_int() >= 400 ? res.body().c_str() : "");
    }
    return served{res.result_int(), res.body(), req.keep_alive()};
  }

  static constexpr std::string_view kRequestId = "5f0c3a9e1b7d4c2a8e6f1d3b9a7c5e0f";
  std::filesystem::path dir_;
  std::unique_ptr<service> svc_;
  http::router routes_;
  asio::io_context ioc_{1};
  placeholder_ids ids_;
  std::string admin_token_{kAdminToken};
  // HOOKD_FUZZ_VERBOSE=1: one line per request served (method, target, status), to see what a
  // corpus reaches.
  bool verbose_ = std::getenv("HOOKD_FUZZ_VERBOSE") != nullptr;
};

// Never destroyed at exit: the stack's threads and what they use would meet static destructors
// in an unknown order. It is replaced (stopped, its directory removed) every kInputsPerStack.
stack* the_stack = nullptr;
std::uint64_t inputs = 0;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (the_stack == nullptr || ++inputs % kInputsPerStack == 0) {
    delete the_stack;
    the_stack = new stack();
  }
  the_stack->serve_all(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
