// The stages of a GET-by-id request (GET .../settings/webhooks/{webhookId}), each on its own, then
// the handler and the whole in-process path together. Where a GET's time goes before any socket
// is involved; bench/http.sh measures the same request over loopback against nginx.
//
// Stages, in the order the server runs them (http/server/server.cpp):
//   parse        Beast request_parser over the raw request bytes (parser built per request, as
//                the server does), then release() of the message
//   route        router::find on the real route table (register_api_routes + register_ops_routes)
//   sha256       the digest of the presented token alone
//   authenticate extract_token + SHA-256 + find_token_by_digest + constant-time compare
//   resolve      the handler's checks after auth: 3 path ids, authorize, organization, project
//   find_webhook the catalog lookup by id
//   to_json / serialize / to_json_serialize   the webhook (3 headers, 3 events) as JSON text
//   response     json_response + what the session adds (version, keep-alive, X-Request-Id,
//                Content-Length) + the serializer producing the bytes a write would send
//   metrics      metrics::record_request for the route
//   handler      the GET handler coroutine as the session awaits it
//   full         parse + route + handler + response bytes + metrics, in one coroutine
//
// The catalog sits on RocksDB in a mkdtemp dir; reads never touch it. Inputs are built once.

#include "bench_stack.hpp"

#include "core/common/crypto.hpp"
#include "http/api/app.hpp"
#include "http/api/auth.hpp"
#include "http/server/metrics.hpp"
#include "http/server/problem.hpp"
#include "http/server/router.hpp"

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <exception>
#include <string>

namespace {

using namespace hookd;
namespace http = hookd::http;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

constexpr std::size_t kHeaderLimit = 8 * 1024;  // the server's default max_header_bytes
constexpr std::string_view kRequestId = "5f0c3a9e1b7d4c2a8e6f1d3b9a7c5e0f";

struct fixture {
  bench::stack stack{/*sync=*/false};
  std::string token_secret = generate_api_token();
  std::shared_ptr<const webhook> hook;
  http::app& shared = stack.svc->shared();
  http::router routes;
  std::string path;
  std::string raw_request;  // the bytes a client sends
  http::request parsed;     // the same request, parsed once

  fixture() {
    scope_set scopes;
    scopes.add(scope::webhooks_read);
    stack.add_token(token_secret, scopes);
    // A few neighbours so the lookups are not into single-entry maps.
    for (int i = 0; i < 20; ++i) {
      std::string name = "n";  // not "n" + to_string(i): GCC 12 -Wrestrict false positive
      name += std::to_string(i);
      stack.add_webhook(stack.project, bench::sample_webhook(name));
    }
    hook = stack.add_webhook(stack.project, bench::sample_webhook("Invoice notifications"));
    http::register_ops_routes(routes, shared);
    http::register_api_routes(routes, shared);

    path = "/api/v1/organizations/" + stack.org.to_string() + "/projects/" +
           stack.project.to_string() + "/settings/webhooks/" + hook->id.to_string();
    raw_request = "GET " + path +
                  " HTTP/1.1\r\n"
                  "Host: hookd.internal:8080\r\n"
                  "User-Agent: acme-billing/3.14.2 (+https://acme.example)\r\n"
                  "Accept: application/json\r\n"
                  "Accept-Encoding: gzip, deflate, br\r\n"
                  "Authorization: Bearer " +
                  token_secret +
                  "\r\n"
                  "Connection: keep-alive\r\n"
                  "\r\n";
    parsed = parse(raw_request);
  }

  static http::request parse(const std::string& raw) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(kHeaderLimit);
    beast::error_code ec;
    parser.put(asio::buffer(raw), ec);
    if (ec || !parser.is_done()) throw std::runtime_error("bench request does not parse");
    return parser.release();
  }
};

fixture& the_fixture() {
  static fixture f;
  return f;
}

// What the server does after the handler: render the head (http/server/problem.hpp) and write head
// + body in one gather write (here: appended to `out`).
std::size_t finish_and_serialize(http::response& res, std::string& out) {
  http::render_head(res, 11, true, kRequestId, out);
  out += res.body();
  return out.size();
}

void BM_parse(benchmark::State& state) {
  const auto& raw = the_fixture().raw_request;
  for (auto _ : state) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(boost::none);
    beast::error_code ec;
    auto used = parser.put(asio::buffer(raw), ec);
    benchmark::DoNotOptimize(used);
    http::request req = parser.release();
    benchmark::DoNotOptimize(req);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(raw.size()));
}
BENCHMARK(BM_parse);

void BM_route(benchmark::State& state) {
  auto& f = the_fixture();
  for (auto _ : state) {
    auto m = f.routes.find(bhttp::verb::get, f.path);
    benchmark::DoNotOptimize(m);
  }
  if (f.routes.find(bhttp::verb::get, f.path).outcome != http::router::match::kind::found) {
    state.SkipWithError("the GET route did not match");
  }
}
BENCHMARK(BM_route);

void BM_sha256(benchmark::State& state) {
  const auto& token = the_fixture().token_secret;
  for (auto _ : state) {
    auto d = sha256(token);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_sha256);

void BM_authenticate(benchmark::State& state) {
  auto& f = the_fixture();
  for (auto _ : state) {
    auto token = http::authenticate(*f.stack.cat, f.parsed);
    benchmark::DoNotOptimize(token);
  }
  if (!http::authenticate(*f.stack.cat, f.parsed)) state.SkipWithError("token not accepted");
}
BENCHMARK(BM_authenticate);

// The rest of the handler's resolve(): path ids, organization access and scope, and the two
// existence checks, as api_webhooks.cpp runs them.
void BM_resolve(benchmark::State& state) {
  auto& f = the_fixture();
  const auto token = *http::authenticate(*f.stack.cat, f.parsed);
  const auto m = f.routes.find(bhttp::verb::get, f.path);
  for (auto _ : state) {
    auto org = object_id::parse(m.params.get("organizationId"));
    auto proj = object_id::parse(m.params.get("projectId"));
    auto id = object_id::parse(m.params.get("webhookId"));
    auto allowed = http::authorize(*token, scope::webhooks_read, *org);
    auto o = f.stack.cat->find_organization(*org);
    auto p = f.stack.cat->find_project(*proj);
    benchmark::DoNotOptimize(id);
    benchmark::DoNotOptimize(allowed);
    benchmark::DoNotOptimize(o);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_resolve);

void BM_find_webhook(benchmark::State& state) {
  auto& f = the_fixture();
  const object_id id = f.hook->id;
  for (auto _ : state) {
    auto hook = f.stack.cat->find_webhook(id);
    benchmark::DoNotOptimize(hook);
  }
}
BENCHMARK(BM_find_webhook);

void BM_to_json(benchmark::State& state) {
  const auto& hook = *the_fixture().hook;
  for (auto _ : state) {
    auto obj = to_json(hook);
    benchmark::DoNotOptimize(obj);
  }
}
BENCHMARK(BM_to_json);

void BM_serialize(benchmark::State& state) {
  const boost::json::value obj = to_json(*the_fixture().hook);
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto text = boost::json::serialize(obj);
    bytes = text.size();
    benchmark::DoNotOptimize(text);
  }
  state.counters["body_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_serialize);

// What the handlers use: the text cached with the published webhook (a copy of it per response).
void BM_to_json_text_cached(benchmark::State& state) {
  const auto& hook = *the_fixture().hook;
  for (auto _ : state) {
    std::string text = to_json_text(hook);
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_to_json_text_cached);

void BM_to_json_serialize(benchmark::State& state) {
  const auto& hook = *the_fixture().hook;
  for (auto _ : state) {
    auto text = boost::json::serialize(to_json(hook));
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_to_json_serialize);

void BM_response(benchmark::State& state) {
  const std::string body = boost::json::serialize(to_json(*the_fixture().hook));
  std::string out;
  for (auto _ : state) {
    auto res = http::json_response(bhttp::status::ok, body);
    auto n = finish_and_serialize(res, out);
    benchmark::DoNotOptimize(n);
  }
  state.counters["response_bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_response);

void BM_metrics(benchmark::State& state) {
  auto& f = the_fixture();
  const auto route = f.routes.find(bhttp::verb::get, f.path).route;
  for (auto _ : state) {
    f.shared.stats.record_request(route, 200, std::chrono::microseconds(180));
  }
}
BENCHMARK(BM_metrics);

// No coroutine lambdas with captures: the loops are coroutine functions taking references.
asio::awaitable<void> handler_loop(benchmark::State& state, fixture& f, http::router::match& m) {
  for (auto _ : state) {
    http::request_context ctx{f.parsed, m.params, f.path, {}, kRequestId};
    http::response res = co_await (*m.target)(ctx);
    benchmark::DoNotOptimize(res);
  }
}

asio::awaitable<void> full_loop(benchmark::State& state, fixture& f) {
  std::string out;
  for (auto _ : state) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(boost::none);
    beast::error_code ec;
    parser.put(asio::buffer(f.raw_request), ec);
    const auto started = std::chrono::steady_clock::now();
    const http::request req = parser.release();
    std::string_view target = req.target();
    const auto path = target.substr(0, target.find('?'));
    auto m = f.routes.find(req.method(), path);
    http::request_context ctx{req, m.params, path, {}, kRequestId};
    http::response res = co_await (*m.target)(ctx);
    auto n = finish_and_serialize(res, out);
    benchmark::DoNotOptimize(n);
    f.shared.stats.record_request(m.route, res.result_int(),
                                  std::chrono::steady_clock::now() - started);
  }
}

template <class Loop>
void run_on_io_context(benchmark::State& state, Loop loop) {
  asio::io_context ioc;
  std::exception_ptr failure;
  asio::co_spawn(ioc, std::move(loop), [&failure](std::exception_ptr e) { failure = e; });
  ioc.run();
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
    }
  }
}

// The status the handler answers, checked once outside the timed loops.
unsigned probe_status(fixture& f) {
  asio::io_context ioc;
  unsigned status = 0;
  auto m = f.routes.find(bhttp::verb::get, f.path);
  http::request_context ctx{f.parsed, m.params, f.path, {}, kRequestId};
  asio::co_spawn(ioc, (*m.target)(ctx),
                 [&status](std::exception_ptr, http::response res) { status = res.result_int(); });
  ioc.run();
  return status;
}

void BM_handler(benchmark::State& state) {
  auto& f = the_fixture();
  if (probe_status(f) != 200) {
    state.SkipWithError("the GET handler does not answer 200");
    return;
  }
  auto m = f.routes.find(bhttp::verb::get, f.path);
  run_on_io_context(state, handler_loop(state, f, m));
}
BENCHMARK(BM_handler);

void BM_full(benchmark::State& state) {
  auto& f = the_fixture();
  if (probe_status(f) != 200) {
    state.SkipWithError("the GET handler does not answer 200");
    return;
  }
  run_on_io_context(state, full_loop(state, f));
}
BENCHMARK(BM_full);

}  // namespace

BENCHMARK_MAIN();
