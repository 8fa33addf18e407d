#include "core/delivery/recover_input.hpp"

#include "core/common/json_body.hpp"

#include <boost/json/object.hpp>

#include <string>
#include <vector>

namespace hookd {

namespace {

constexpr std::string_view kTimeHint = "must be an RFC 3339 time such as 2026-12-01T00:00:00Z";

// The field as a time; an error naming it when it is there but not one.
std::optional<timestamp> read_time(const boost::json::object& obj, std::string_view name,
                                   std::vector<field_error>& errors) {
  const auto* value = obj.if_contains(boost::json::string_view(name.data(), name.size()));
  if (value == nullptr) return std::nullopt;
  std::optional<timestamp> t;
  if (const auto* text = value->if_string()) {
    t = parse_rfc3339(std::string_view(text->data(), text->size()));
  }
  if (!t) errors.push_back({std::string(name), std::string(kTimeHint)});
  return t;
}

}  // namespace

result<recover_window> parse_recover(const boost::json::value& body) {
  if (!body.is_object()) {
    return not_a_json_object();
  }
  const boost::json::object& obj = body.get_object();
  std::vector<field_error> errors;
  reject_unknown_fields(obj, {"since", "until"}, errors);
  recover_window out;
  const std::optional<timestamp> since = read_time(obj, "since", errors);
  if (!obj.contains("since")) errors.push_back({"since", "is required"});
  out.until = read_time(obj, "until", errors);
  if (since && out.until && *out.until <= *since) {
    errors.push_back({"until", "must be later than since"});
  }
  if (!errors.empty()) return validation_problem(std::move(errors));
  out.since = *since;
  return out;
}

}  // namespace hookd
