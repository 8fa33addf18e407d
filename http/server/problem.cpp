// The one table from domain errors to HTTP, and the response builders.

#include "http/server/problem.hpp"

#include "core/common/log.hpp"
#include "core/common/utf8.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <array>
#include <stdexcept>
#include <string>

namespace hookd::http {
namespace {

struct problem_row {
  bhttp::status status;
  std::string_view type;   // full URI, stable: clients switch on it
  std::string_view title;  // short, never varies between occurrences
};

#define HOOKD_PROBLEM_TYPE(slug) "https://hookd.dev/problems/" slug

// Indexed by error_kind; the static_assert below keeps it in step with the enum.
constexpr std::array kDomainTable = {
    problem_row{bhttp::status::bad_request, HOOKD_PROBLEM_TYPE("invalid-json"),
                "Request body is not valid JSON"},
    problem_row{bhttp::status::bad_request, HOOKD_PROBLEM_TYPE("validation"),
                "Request body failed validation"},
    problem_row{bhttp::status::bad_request, HOOKD_PROBLEM_TYPE("bad-id"), "Malformed id"},
    problem_row{bhttp::status::unauthorized, HOOKD_PROBLEM_TYPE("unauthorized"),
                "Missing or invalid token"},
    problem_row{bhttp::status::forbidden, HOOKD_PROBLEM_TYPE("forbidden"), "Access denied"},
    problem_row{bhttp::status::not_found, HOOKD_PROBLEM_TYPE("not-found"), "Not found"},
    problem_row{bhttp::status::conflict, HOOKD_PROBLEM_TYPE("conflict"), "Conflict"},
    problem_row{bhttp::status::conflict, HOOKD_PROBLEM_TYPE("limit-reached"), "Limit reached"},
    problem_row{bhttp::status::payload_too_large, HOOKD_PROBLEM_TYPE("payload-too-large"),
                "Request body too large"},
    problem_row{bhttp::status::unsupported_media_type, HOOKD_PROBLEM_TYPE("unsupported-media-type"),
                "Unsupported media type"},
    problem_row{bhttp::status::too_many_requests, HOOKD_PROBLEM_TYPE("rate-limited"),
                "Too many requests"},
    problem_row{bhttp::status::service_unavailable, HOOKD_PROBLEM_TYPE("unavailable"),
                "Service unavailable"},
    problem_row{bhttp::status::service_unavailable, HOOKD_PROBLEM_TYPE("storage-failure"),
                "Storage failure"},
    problem_row{bhttp::status::internal_server_error, HOOKD_PROBLEM_TYPE("internal"),
                "Internal server error"},
};
static_assert(kDomainTable.size() == static_cast<std::size_t>(error_kind::internal) + 1,
              "one row per error_kind, in enum order");

constexpr std::array kTransportTable = {
    problem_row{bhttp::status::method_not_allowed, HOOKD_PROBLEM_TYPE("method-not-allowed"),
                "Method not allowed"},
    problem_row{bhttp::status::request_header_fields_too_large,
                HOOKD_PROBLEM_TYPE("headers-too-large"), "Request header fields too large"},
    problem_row{bhttp::status::bad_request, HOOKD_PROBLEM_TYPE("malformed-request"),
                "Malformed HTTP request"},
    problem_row{bhttp::status::service_unavailable, HOOKD_PROBLEM_TYPE("connection-limit"),
                "Too many connections"},
    problem_row{bhttp::status::uri_too_long, HOOKD_PROBLEM_TYPE("uri-too-long"),
                "Request-target too long"},
    problem_row{bhttp::status::not_implemented, HOOKD_PROBLEM_TYPE("unsupported-transfer-coding"),
                "Transfer coding not implemented"},
    problem_row{bhttp::status::http_version_not_supported,
                HOOKD_PROBLEM_TYPE("http-version-not-supported"), "HTTP version not supported"},
};
static_assert(kTransportTable.size() ==
              static_cast<std::size_t>(transport_error::version_not_supported) + 1);

#undef HOOKD_PROBLEM_TYPE

const problem_row& row(error_kind kind) noexcept {
  const auto i = static_cast<std::size_t>(kind);
  return i < kDomainTable.size() ? kDomainTable[i] : kDomainTable.back();
}

// How long a client should wait before retrying, where the status invites a retry. Rate limits
// refill within a second; 503 covers start-up and draining, which take a few seconds.
std::string_view retry_after(bhttp::status status) noexcept {
  switch (status) {
    case bhttp::status::too_many_requests:
      return "1";
    case bhttp::status::service_unavailable:
      return "5";
    default:
      return {};
  }
}

response build(const problem_row& r, std::string_view detail,
               const std::vector<field_error>& errors, std::string_view request_id) {
  boost::json::object body;
  body["type"] = r.type;
  body["title"] = r.title;
  body["status"] = static_cast<unsigned>(r.status);
  // Details and errors may quote the request (a header value, a decoded query key), whose bytes
  // need not be UTF-8; the document must stay JSON.
  body["detail"] = detail.empty() ? std::string(r.title) : valid_utf8(detail);
  body["requestId"] = request_id;
  if (!errors.empty()) {
    boost::json::array list;
    list.reserve(errors.size());
    for (const auto& e : errors) {
      list.push_back(
          boost::json::object{{"field", valid_utf8(e.field)}, {"message", valid_utf8(e.message)}});
    }
    body["errors"] = std::move(list);
  }
  response res{r.status, 11};
  res.set(bhttp::field::content_type, "application/problem+json");
  if (r.status == bhttp::status::unauthorized) res.set(bhttp::field::www_authenticate, "Bearer");
  if (const auto after = retry_after(r.status); !after.empty()) {
    res.set(bhttp::field::retry_after, after);
  }
  res.body() = boost::json::serialize(body);
  return res;
}

}  // namespace

bhttp::status status_of(error_kind kind) noexcept {
  return row(kind).status;
}
std::string_view problem_type(error_kind kind) noexcept {
  return row(kind).type;
}
std::string_view problem_title(error_kind kind) noexcept {
  return row(kind).title;
}

response problem_response(const problem& p, std::string_view request_id) {
  // A storage failure's or an internal error's detail names the database's files and its own
  // words: it goes to the log, under the request id, and the client gets what happened and what
  // to do (docs/openapi.yaml, "Conventions").
  if (p.kind == error_kind::storage_failure || p.kind == error_kind::internal) {
    const bool storage = p.kind == error_kind::storage_failure;
    log_line({{"level", "error"},
              {"event", storage ? "storage_failure" : "internal_error"},
              {"requestId", request_id},
              {"detail", p.detail}});
    return build(row(p.kind),
                 storage ? "The change could not be made durable, so nothing was changed. Retry "
                           "later; the server's log has the cause under this X-Request-Id."
                         : "The server failed to handle the request. The server's log has the "
                           "cause under this X-Request-Id.",
                 {}, request_id);
  }
  return build(row(p.kind), p.detail, p.errors, request_id);
}

response problem_response(transport_error error, std::string detail, std::string_view request_id) {
  return build(kTransportTable[static_cast<std::size_t>(error)], detail, {}, request_id);
}

response json_response(bhttp::status status, const boost::json::value& body) {
  return json_response(status, boost::json::serialize(body));
}

response json_response(bhttp::status status, std::string serialized_json) {
  response res{status, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.body() = std::move(serialized_json);
  return res;
}

namespace {

bool carries_no_content(bhttp::status status) noexcept {
  return bhttp::to_status_class(status) == bhttp::status_class::informational ||
         status == bhttp::status::no_content || status == bhttp::status::not_modified;
}

void append_decimal(std::string& out, std::size_t n) {
  char digits[20];
  std::size_t i = sizeof digits;
  do {
    digits[--i] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  out.append(digits + i, sizeof digits - i);
}

}  // namespace

void render_head(const response& res, unsigned version, bool keep_alive,
                 std::string_view request_id, std::string& out) {
  const auto status = res.result();
  const bool no_content = carries_no_content(status);
  if (no_content && !res.body().empty()) {
    throw std::invalid_argument("a " + std::to_string(res.result_int()) +
                                " response cannot carry a body");
  }
  out.clear();
  out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  const unsigned code = res.result_int();
  out += static_cast<char>('0' + code / 100 % 10);
  out += static_cast<char>('0' + code / 10 % 10);
  out += static_cast<char>('0' + code % 10);
  out += ' ';
  out += res.reason();
  out += "\r\n";
  for (const auto& field : res) {
    const auto name = field.name();
    if (name == bhttp::field::connection || name == bhttp::field::content_length ||
        (name == bhttp::field::unknown && beast::iequals(field.name_string(), "X-Request-Id"))) {
      continue;  // the transport's to decide, below
    }
    out += field.name_string();
    out += ": ";
    out += field.value();
    out += "\r\n";
  }
  if (version == 10 && keep_alive) out += "Connection: keep-alive\r\n";
  if (version != 10 && !keep_alive) out += "Connection: close\r\n";
  out += "X-Request-Id: ";
  out += request_id;
  out += "\r\n";
  if (!no_content) {
    out += "Content-Length: ";
    append_decimal(out, res.body().size());
    out += "\r\n";
  }
  out += "\r\n";
}

response empty_response(bhttp::status status) {
  return response{status, 11};
}

}  // namespace hookd::http
