#include "core/common/json_body.hpp"

#include <algorithm>
#include <string>

namespace hookd {

problem not_a_json_object(std::string_view message) {
  return validation_problem({field_error{"body", std::string(message)}},
                            "The request body must be a JSON object.");
}

void reject_unknown_fields(const boost::json::object& obj,
                           std::initializer_list<std::string_view> known,
                           std::vector<field_error>& errors) {
  for (const auto& member : obj) {
    const std::string_view key(member.key().data(), member.key().size());
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      errors.push_back({std::string(key), "unknown field"});
    }
  }
}

}  // namespace hookd
