#pragma once
// The domain entities as the catalog holds them (immutable once published) and their JSON
// shapes on the wire. Secrets never appear in `to_json`; see webhook_secret_json.

#include "core/clock.hpp"
#include "core/crypto.hpp"
#include "core/object_id.hpp"
#include "core/scopes.hpp"

#include <boost/json/object.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hookd {

enum class project_status : std::uint8_t { draft, active, archived };
std::string_view to_string(project_status s) noexcept;
std::optional<project_status> parse_project_status(std::string_view) noexcept;

struct organization {
  object_id id;
  std::string name;
  timestamp created_at{};
  timestamp updated_at{};
};

// The platform's Project schema. `credential`, `additionalCredentials` and `lastActivityAt`
// belong to the platform; hookd stores none and omits them from its JSON.
struct project {
  object_id id;
  object_id organization;
  std::string name;
  std::string slug;
  std::optional<std::string> description;
  project_status status = project_status::draft;
  std::optional<std::string> app_icon_url;
  timestamp created_at{};
  timestamp updated_at{};
};

// An API token as stored: only the SHA-256 digest of the secret string is kept.
struct api_token {
  object_id id;
  std::string name;
  std::vector<object_id> organizations;
  scope_set scopes;
  sha256_digest digest{};
  timestamp created_at{};

  bool can_access(const object_id& org) const noexcept;  // admin, or org listed
};

struct header_entry {
  std::string name;
  std::string value;
  friend bool operator==(const header_entry&, const header_entry&) = default;
};

struct webhook {
  object_id id;
  object_id organization;
  object_id project;
  std::string name;
  std::string url;
  std::vector<header_entry> headers;  // in the order the client gave them
  bool active = true;
  std::vector<std::string> events;
  std::string secret;  // "whsec_" + base64(24 random bytes); plaintext in memory only
  timestamp created_at{};
  timestamp updated_at{};
  std::optional<std::string> disabled_reason;  // set by auto-disable (delivery, later)
  std::optional<timestamp> disabled_at;
};

boost::json::object to_json(const organization&);
boost::json::object to_json(const project&);
boost::json::object to_json(const api_token&);  // never the token string or its digest
boost::json::object to_json(const webhook&);    // never the secret

// A fresh signing secret: "whsec_" + standard base64 of 24 RAND_bytes.
std::string generate_webhook_secret();
// A fresh API token string: "hkd_" + base64url of 32 RAND_bytes.
std::string generate_api_token();

}  // namespace hookd
