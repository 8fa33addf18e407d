#include "core/delivery/ingest_input.hpp"

#include "core/common/json_body.hpp"

#include "core/catalog/validation.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <string>
#include <vector>

namespace hookd {

std::optional<std::string> check_subject(std::optional<std::string_view> subject) {
  if (!subject) return "must be a string";
  if (subject->empty() || subject->size() > kMaxSubjectBytes) {
    return "must be 1 to " + std::to_string(kMaxSubjectBytes) + " bytes long";
  }
  for (const char c : *subject) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return "must not contain control characters";
  }
  return std::nullopt;
}

std::optional<std::string> check_ordering_key(std::optional<std::string_view> key) {
  if (!key) return "must be a string";
  if (key->empty() || key->size() > kMaxOrderingKeyBytes) {
    return "must be 1 to " + std::to_string(kMaxOrderingKeyBytes) + " bytes long";
  }
  for (const char c : *key) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return "must not contain control characters";
  }
  return std::nullopt;
}

result<ingest_request> parse_ingest(const boost::json::value& body,
                                    std::optional<std::string_view> idempotency_header) {
  if (!body.is_object()) {
    return not_a_json_object();
  }
  const boost::json::object& obj = body.get_object();
  std::vector<field_error> errors;
  reject_unknown_fields(obj, {"type", "data", "idempotencyKey", "subject", "orderingKey"}, errors);

  ingest_request in;
  if (const auto* type = obj.if_contains("type"); type == nullptr) {
    errors.push_back({"type", "is required"});
  } else if (!type->is_string()) {
    errors.push_back({"type", "must be a string"});
  } else {
    in.type = std::string(type->get_string());
    if (auto message = check_event_type(in.type)) errors.push_back({"type", *message});
  }
  // Any JSON value, null included; only absence is an error. The parser already bounded its
  // depth, so it is valid JSON: serialized once, compactly, and never parsed again.
  if (const auto* data = obj.if_contains("data"); data == nullptr) {
    errors.push_back({"data", "is required (any JSON value, null included)"});
  } else {
    in.data = boost::json::serialize(*data);
  }

  if (const auto* subject = obj.if_contains("subject"); subject != nullptr) {
    const std::optional<std::string_view> text =
        subject->is_string() ? std::optional<std::string_view>(subject->get_string())
                             : std::nullopt;
    if (auto message = check_subject(text)) {
      errors.push_back({"subject", std::move(*message)});
    } else {
      in.subject = std::string(*text);
    }
  }

  if (const auto* key = obj.if_contains("orderingKey"); key != nullptr) {
    const std::optional<std::string_view> text =
        key->is_string() ? std::optional<std::string_view>(key->get_string()) : std::nullopt;
    if (auto message = check_ordering_key(text)) {
      errors.push_back({"orderingKey", std::move(*message)});
    } else {
      in.ordering_key = std::string(*text);
    }
  }

  std::optional<std::string> from_body;
  if (const auto* key = obj.if_contains("idempotencyKey"); key != nullptr) {
    if (!key->is_string()) {
      errors.push_back({"idempotencyKey", "must be a string"});
    } else {
      from_body = std::string(key->get_string());
    }
  }
  if (from_body && idempotency_header && *from_body != *idempotency_header) {
    errors.push_back({"idempotencyKey", "differs from the Idempotency-Key header; send one"});
  }
  if (from_body) {
    in.idempotency_key = std::move(from_body);
  } else if (idempotency_header) {
    in.idempotency_key = std::string(*idempotency_header);
  }
  if (in.idempotency_key &&
      (in.idempotency_key->empty() || in.idempotency_key->size() > kMaxIdempotencyKeyBytes)) {
    errors.push_back({"idempotencyKey",
                      "must be 1 to " + std::to_string(kMaxIdempotencyKeyBytes) + " bytes long"});
  }

  if (!errors.empty()) return validation_problem(std::move(errors));
  return in;
}

}  // namespace hookd
