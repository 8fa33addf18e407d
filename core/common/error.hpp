#pragma once
// Domain errors. Core and storage return `result<T>`; the HTTP layer maps `error_kind` to a status
// and a problem type through one table (http/server/problem.hpp).

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <utility>
#include <vector>

namespace hookd {

enum class error_kind {
  invalid_json,       // 400: the body is not JSON, or nests too deep
  validation,         // 400: JSON of the wrong shape; `errors` names the fields
  bad_id,             // 400: a path id that is not 24 hex digits; `errors` names the parameter
  unauthorized,       // 401: no token, or an unknown or revoked one
  forbidden,          // 403: the token lacks the organization or the scope
  not_found,          // 404: unknown organization, project, webhook, token or route
  conflict,           // 409: a taken slug, an idempotency key reused with another body
  limit_reached,      // 409: e.g. the per-project webhook limit
  payload_too_large,  // 413
  unsupported_media,  // 415
  rate_limited,       // 429
  unavailable,        // 503: starting or draining
  storage_failure,    // 503: the write did not become durable; nothing was acknowledged
  internal,           // 500
};

struct field_error {
  std::string field;    // JSON path of the offending value: "name", "events[0]", "headers.X-Foo"
  std::string message;  // what is wrong and what is accepted
};

// An RFC 9457 problem before it meets HTTP: a kind, a human detail, and the fields at fault.
struct problem {
  error_kind kind = error_kind::internal;
  std::string detail;
  std::vector<field_error> errors;

  [[nodiscard]] bool is_not_found() const noexcept { return kind == error_kind::not_found; }
  [[nodiscard]] bool is_conflict() const noexcept { return kind == error_kind::conflict; }
};

inline problem make_problem(error_kind kind, std::string detail) {
  return problem{kind, std::move(detail), {}};
}
inline problem validation_problem(std::vector<field_error> errors,
                                  std::string detail = "The request body is invalid.") {
  return problem{error_kind::validation, std::move(detail), std::move(errors)};
}

// `result<T>::value()` on an error throws this (found by ADL from boost::system::result).
struct problem_exception : std::exception {
  explicit problem_exception(problem p) : value(std::move(p)) {}
  const char* what() const noexcept override { return value.detail.c_str(); }
  problem value;
};
[[noreturn]] inline void throw_exception_from_error(const problem& p,
                                                    const boost::source_location&) {
  throw problem_exception(p);
}

template <class T>
using result = boost::system::result<T, problem>;

}  // namespace hookd
