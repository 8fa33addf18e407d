#include "http/api/api.hpp"

#include <boost/json/parser.hpp>

#include <cmath>
#include <string>

namespace hookd::http {
namespace {

char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Boost.JSON reads a number too large for a double (1e400) as an infinity, and writes an
// infinity back as `Infinity`, which is not JSON: stored, it would go to receivers as a delivery
// body they cannot parse, or (in a webhook's filter) make the catalog unreadable at the next
// start. Depth is bounded by the parser (kMaxJsonDepth), so the recursion is too.
bool has_infinite_number(const boost::json::value& v) noexcept {
  switch (v.kind()) {
    case boost::json::kind::double_:
      return !std::isfinite(v.get_double());
    case boost::json::kind::array:
      for (const auto& item : v.get_array()) {
        if (has_infinite_number(item)) return true;
      }
      return false;
    case boost::json::kind::object:
      for (const auto& member : v.get_object()) {
        if (has_infinite_number(member.value())) return true;
      }
      return false;
    default:
      return false;
  }
}

}  // namespace

response fail(const request_context& ctx, const problem& p) {
  return problem_response(p, ctx.request_id);
}

result<object_id> path_id(const request_context& ctx, std::string_view name) {
  std::string_view raw = ctx.params.get(name);
  if (auto id = object_id::parse(raw)) return *id;
  std::string field(name);
  return problem{error_kind::bad_id,
                 "The path parameter '" + field + "' is not a valid id.",
                 {{field, "must be 24 hexadecimal digits"}}};
}

bool is_json_media_type(std::string_view content_type) noexcept {
  std::string_view essence = trim(content_type.substr(0, content_type.find(';')));
  constexpr std::string_view kJson = "application/json";
  if (essence.size() != kJson.size()) return false;
  for (std::size_t i = 0; i < kJson.size(); ++i) {
    if (ascii_lower(essence[i]) != kJson[i]) return false;
  }
  return true;
}

result<boost::json::value> read_json_body(const request& req, std::size_t max_body_bytes,
                                          boost::json::storage_ptr sp) {
  const std::string& body = req.body();
  auto content_type = req.find(bhttp::field::content_type);
  if (content_type != req.end() && !is_json_media_type(content_type->value())) {
    return make_problem(error_kind::unsupported_media,
                        "The request body must be application/json, not '" +
                            std::string(content_type->value()) + "'.");
  }
  if (body.empty()) {
    return make_problem(error_kind::invalid_json,
                        "The request body is empty; a JSON object is required.");
  }
  if (content_type == req.end()) {
    return make_problem(error_kind::unsupported_media,
                        "The request body must be sent with Content-Type: application/json.");
  }
  if (body.size() > max_body_bytes) {
    return make_problem(error_kind::payload_too_large,
                        "The request body exceeds " + std::to_string(max_body_bytes) + " bytes.");
  }

  boost::json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  boost::json::parser parser({}, options);
  parser.reset(std::move(sp));
  boost::system::error_code ec;
  const std::size_t consumed = parser.write(body.data(), body.size(), ec);
  if (ec) {
    return make_problem(error_kind::invalid_json,
                        "The request body is not valid JSON: " + ec.message() + " at offset " +
                            std::to_string(consumed) + ".");
  }
  boost::json::value parsed = parser.release();
  if (has_infinite_number(parsed)) {
    return make_problem(error_kind::invalid_json,
                        "The request body is not valid JSON: a number is too large to be a "
                        "double (above about 1.8e308).");
  }
  return parsed;
}

response created_response(std::string_view location, const boost::json::value& body) {
  response res = json_response(bhttp::status::created, body);
  res.set(bhttp::field::location, location);
  return res;
}

}  // namespace hookd::http
