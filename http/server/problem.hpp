#pragma once
// The one table from domain errors to HTTP: status, problem type URI and title, and the
// builders for application/problem+json and application/json responses.

#include "core/common/error.hpp"
#include "http/server/types.hpp"

#include <boost/json/value.hpp>

#include <string>
#include <string_view>

namespace hookd::http {

bhttp::status status_of(error_kind kind) noexcept;
// "https://hookd.dev/problems/<slug>", stable; documented in docs/openapi.yaml.
std::string_view problem_type(error_kind kind) noexcept;
std::string_view problem_title(error_kind kind) noexcept;

// {"type","title","status","detail","requestId","errors"?}, content-type application/problem+json.
// Adds WWW-Authenticate: Bearer on 401.
response problem_response(const problem& p, std::string_view request_id);
response json_response(bhttp::status status, const boost::json::value& body);
response json_response(bhttp::status status, std::string serialized_json);
response empty_response(bhttp::status status);  // e.g. 204

// The status line and header fields of a response as HTTP/1.x text, replacing `out`'s contents.
// The server writes this and the body in one gather write, without Beast's serializer. After the
// handler's fields it adds what the transport decides: `Connection` (keep-alive on HTTP/1.0,
// close on HTTP/1.1 when the connection ends), X-Request-Id, and the framing: Content-Length from
// the body, none on 1xx, 204 and 304, which never carry one (RFC 9110 §8.6). Fields of those
// three names set by a handler are not repeated. Throws std::invalid_argument for a body on a
// status that cannot have one.
void render_head(const response& res, unsigned version, bool keep_alive,
                 std::string_view request_id, std::string& out);

// Problems the HTTP transport raises itself, which have no domain error_kind: a known path with
// another method (405; the caller adds Allow), a request head over the limit (431), a request
// that does not parse as HTTP/1.1 (400), a connection beyond --max-connections (503), a
// request-target over the limit (414), a transfer coding other than chunked (501) and an HTTP
// version other than 1.x (505).
enum class transport_error {
  method_not_allowed,
  headers_too_large,
  malformed_request,
  connection_limit,
  uri_too_long,
  unsupported_transfer_coding,
  version_not_supported,
};
response problem_response(transport_error error, std::string detail, std::string_view request_id);

}  // namespace hookd::http
