#pragma once
// Request-body validation: JSON in, typed input out, or a `validation` problem whose `errors`
// name every field at fault (all of them, not just the first). Unknown fields and wrong JSON
// types are errors. These are the rules of docs/openapi.yaml, in one place.

#include "core/catalog/entities.hpp"
#include "core/common/error.hpp"

#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hookd {

struct organization_input {
  std::string name;  // 2..100 chars, not blank
};

struct project_input {
  std::string name;                        // 2..100 chars, not blank
  std::string slug;                        // ^[a-z0-9-]{2,100}$
  std::optional<std::string> description;  // <= 255 chars
  project_status status = project_status::draft;
  std::optional<std::string> app_icon_url;  // absolute http(s) URL
};

struct token_input {
  std::string name;                      // 2..100 chars, not blank
  std::vector<object_id> organizations;  // 24-hex ids; existence is the catalog's check
  scope_set scopes;                      // at least one known scope
};

struct webhook_input {
  std::string name;
  std::string url;
  std::vector<header_entry> headers;
  bool active = true;
  std::vector<std::string> events;
  std::optional<std::uint32_t> rate_limit;  // 1..kMaxRateLimit; null or absent: none
  signing_scheme signing = signing_scheme::v1;
  std::shared_ptr<const event_filter> filter;  // null: none
};

// Every member engaged is a field the client sent. The merged result obeys webhook_input's rules.
struct webhook_patch {
  std::optional<std::string> name;
  std::optional<std::string> url;
  std::optional<std::vector<header_entry>> headers;
  std::optional<bool> active;
  std::optional<std::vector<std::string>> events;
  // Engaged when sent; engaged with nullopt when sent as null (no limit).
  std::optional<std::optional<std::uint32_t>> rate_limit;
  std::optional<signing_scheme> signing;
  std::optional<std::shared_ptr<const event_filter>> filter;  // engaged null: remove the filter

  bool empty() const noexcept {
    return !name && !url && !headers && !active && !events && !rate_limit && !signing && !filter;
  }
};

// The body of POST …/secret/rotate: a chosen secret, or none (hookd makes one). Its form is
// checked against the webhook's scheme by the catalog (check_signing_secret).
struct secret_rotation_input {
  std::optional<std::string> secret;
};

struct limits {
  static constexpr std::size_t kNameMin = 2, kNameMax = 100;
  static constexpr std::size_t kUrlMax = 2048;
  static constexpr std::size_t kHeadersMax = 20, kHeaderNameMax = 64, kHeaderValueMax = 1024;
  static constexpr std::size_t kEventsMin = 1, kEventsMax = 100, kEventMax = 128;
  static constexpr std::size_t kDescriptionMax = 255;
};

result<organization_input> parse_organization_input(const boost::json::value& body);
result<project_input> parse_project_input(const boost::json::value& body);
result<token_input> parse_token_input(const boost::json::value& body);
result<webhook_input> parse_webhook_input(const boost::json::value& body);
result<webhook_patch> parse_webhook_patch(const boost::json::value& body);
result<secret_rotation_input> parse_secret_rotation(const boost::json::value& body);

// Single rules, each returning the message for a field error, or nullopt when the value is fine.
std::optional<std::string> check_name(std::string_view);
std::optional<std::string> check_webhook_url(std::string_view);
std::optional<std::string> check_header_name(std::string_view);
std::optional<std::string> check_header_value(std::string_view);
// A subscription pattern: a dotted name, optionally ending in ".*", or "*".
std::optional<std::string> check_event_pattern(std::string_view);
// An event type as emitted: a dotted name, no wildcard.
std::optional<std::string> check_event_type(std::string_view);

}  // namespace hookd
