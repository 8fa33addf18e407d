#pragma once
// Internal to the /api/v1 handlers: path ids, JSON bodies, responses, and the bridge from the
// catalog's completion callbacks to coroutines. Not for other layers; they use http/api/app.hpp.

#include "core/catalog/catalog.hpp"
#include "core/common/error.hpp"
#include "core/common/object_id.hpp"
#include "http/api/app.hpp"
#include "http/server/problem.hpp"
#include "http/server/router.hpp"
#include "http/server/types.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace hookd::http {

// Nesting deeper than this is invalid_json: no request body of the API nests beyond 3 levels,
// and a bound keeps a hostile body from costing stack or time.
inline constexpr unsigned kMaxJsonDepth = 32;

// The problem as the response for this request (requestId from the context).
response fail(const request_context& ctx, const problem& p);

// The `{name}` path parameter as an id (24 hex digits, either case); otherwise a `bad_id`
// problem whose errors name the parameter.
result<object_id> path_id(const request_context& ctx, std::string_view name);

// True for `application/json`, with or without parameters (`; charset=utf-8`), any case.
bool is_json_media_type(std::string_view content_type) noexcept;

// The request body as JSON: 415 unless Content-Type is application/json, 400 for an empty body,
// invalid_json naming the offset and the reason for malformed or too deeply nested text, and 413
// for a body over `max_body_bytes` (the server normally refuses those before reading them).
// The value's memory comes from `sp` (the default resource when null).
result<boost::json::value> read_json_body(const request& req, std::size_t max_body_bytes,
                                          boost::json::storage_ptr sp = {});

// 201 with `Location: <location>` and the JSON body.
response created_response(std::string_view location, const boost::json::value& body);

// ---- the catalog bridge

// Starts a catalog write with `start(completion<T>)` and completes `token` with its result<T> on
// the executor associated with the completion handler (for a coroutine: its own executor, e.g.
// the connection's strand), never on the catalog's writer thread. The executor counts as busy
// until then, so the io_context does not run dry while the write waits for its fsync.
template <class T, class Start, class CompletionToken>
auto async_catalog(Start start, CompletionToken&& token) {
  return asio::async_initiate<CompletionToken, void(result<T>)>(
      [](auto on_done, Start begin) {
        auto ex = asio::prefer(asio::get_associated_executor(on_done),
                               asio::execution::outstanding_work.tracked);
        // completion<T> is a std::function, which needs a copyable target; the handler is
        // move-only, so it travels in a shared_ptr. The catalog calls the completion once.
        auto shared = std::make_shared<decltype(on_done)>(std::move(on_done));
        begin(completion<T>([shared, ex](result<T> r) {
          asio::post(ex,
                     [shared, r = std::move(r)]() mutable { std::move (*shared)(std::move(r)); });
        }));
      },
      token, std::move(start));
}

// `co_await await_catalog<T>([&](completion<T> done) { cat.create_x(..., std::move(done)); })`
template <class T, class Start>
asio::awaitable<result<T>> await_catalog(Start start) {
  return async_catalog<T>(std::move(start), asio::use_awaitable);
}

// ---- route groups (api_admin.cpp, api_webhooks.cpp) and the embedded OpenAPI document

void register_admin_routes(router& r, app& a);
void register_webhook_routes(router& r, app& a);
void register_event_routes(router& r, app& a);           // events and deliveries (api_events.cpp)
void register_backup_routes(router& r, app& a);          // POST /api/v1/backups (api_backup.cpp)
void register_portal_session_routes(router& r, app& a);  // …/portal-sessions (api_portal.cpp)

// docs/openapi.yaml as it was at build time (generated source, see http/CMakeLists.txt).
std::string_view openapi_yaml() noexcept;

}  // namespace hookd::http
