#pragma once
// What every JSON request body shares (docs/openapi.yaml, "Errors"): the body must be an object,
// and a field the endpoint does not know is a 400 naming it, so that a typo never passes as a
// field left out.

#include "core/common/error.hpp"

#include <boost/json/object.hpp>

#include <initializer_list>
#include <string_view>
#include <vector>

namespace hookd {

// The 400 for a body that is JSON but not an object. `message` is the field error's text.
problem not_a_json_object(std::string_view message = "must be a JSON object");

// Appends "unknown field" for every member of `obj` whose key is not in `known`.
void reject_unknown_fields(const boost::json::object& obj,
                           std::initializer_list<std::string_view> known,
                           std::vector<field_error>& errors);

}  // namespace hookd
