// /healthz, /readyz and /metrics: unauthenticated, cheap, and never touching storage.

#include "http/app.hpp"
#include "http/metrics.hpp"
#include "http/problem.hpp"

namespace hookd::http {
namespace {

asio::awaitable<response> healthz(request_context&) {
  co_return json_response(bhttp::status::ok, std::string(R"({"status":"ok"})"));
}

asio::awaitable<response> readyz(const app& a, request_context& ctx) {
  if (a.draining.load()) {
    co_return problem_response(make_problem(error_kind::unavailable, "hookd is shutting down."),
                               ctx.request_id);
  }
  if (!a.ready.load()) {
    co_return problem_response(make_problem(error_kind::unavailable, "hookd is starting."),
                               ctx.request_id);
  }
  co_return json_response(bhttp::status::ok, std::string(R"({"status":"ready"})"));
}

asio::awaitable<response> metrics_text(const app& a, request_context&) {
  response res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.body() = a.stats.render(a);
  co_return res;
}

}  // namespace

void register_ops_routes(router& r, app& a) {
  // Plain lambdas that call coroutine functions: the coroutine frames hold `a` as a parameter,
  // not as a lambda capture that could dangle.
  r.add(bhttp::verb::get, "/healthz", [](request_context& ctx) { return healthz(ctx); });
  r.add(bhttp::verb::get, "/readyz", [&a](request_context& ctx) { return readyz(a, ctx); });
  r.add(bhttp::verb::get, "/metrics", [&a](request_context& ctx) { return metrics_text(a, ctx); });
}

}  // namespace hookd::http
