// /healthz, /readyz and /metrics: unauthenticated, cheap, and never touching storage. /metrics
// can move to a listener of its own (--metrics-listen; docs/operations.md, "Security model").

#include "http/api/app.hpp"
#include "http/server/metrics.hpp"
#include "http/server/problem.hpp"

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
    const auto why = a.not_ready.load();
    co_return problem_response(
        make_problem(error_kind::unavailable,
                     why ? "hookd is not ready: " + *why + "." : std::string("hookd is starting.")),
        ctx.request_id);
  }
  // Degraded storage (writes failing, reads working) keeps the node ready: docs/operations.md,
  // "Storage faults", says why.
  const bool degraded = a.store != nullptr && a.store->stats().degraded;
  co_return json_response(bhttp::status::ok,
                          std::string(degraded ? R"({"status":"ready","storage":"degraded"})"
                                               : R"({"status":"ready","storage":"ok"})"));
}

asio::awaitable<response> metrics_text(const app& a, request_context&) {
  response res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.body() = a.stats.render(a);
  co_return res;
}

}  // namespace

// Plain lambdas that call coroutine functions: the coroutine frames hold `a` as a parameter, not
// as a lambda capture that could dangle.
void register_health_routes(router& r, app& a) {
  r.add(bhttp::verb::get, "/healthz", [](request_context& ctx) { return healthz(ctx); });
  r.add(bhttp::verb::get, "/readyz", [&a](request_context& ctx) { return readyz(a, ctx); });
}

void register_ops_routes(router& r, app& a) {
  register_health_routes(r, a);
  r.add(bhttp::verb::get, "/metrics", [&a](request_context& ctx) { return metrics_text(a, ctx); });
}

}  // namespace hookd::http
