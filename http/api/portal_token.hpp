#pragma once
// Portal session tokens (docs/portal.md, "Session tokens"): stateless strings "hkp_" + base64url of
// version | organization | project | expiresAt | HMAC-SHA256 tag. The tag's key is derived from
// the master key, so every node sharing the master key accepts the token, a restart keeps it,
// and nothing is stored. Pure functions: thread-safe.

#include "core/common/clock.hpp"
#include "core/common/crypto.hpp"
#include "core/common/object_id.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace hookd::http {

inline constexpr std::string_view kPortalTokenPrefix = "hkp_";
inline constexpr std::chrono::seconds kPortalDefaultLifetime{3600};
inline constexpr std::chrono::seconds kPortalMaxLifetime{24 * 3600};

// The key that signs portal sessions: HMAC-SHA256 of a fixed label under the master key, so the
// master key itself never signs anything a client holds.
std::string derive_portal_key(const aes256gcm_key& master_key);

struct portal_claims {
  object_id organization;
  object_id project;
  timestamp expires_at{};
};

std::string mint_portal_token(std::string_view key, const portal_claims& claims);

enum class portal_token_state { valid, expired, invalid };
struct portal_token_check {
  portal_token_state state = portal_token_state::invalid;
  portal_claims claims;  // meaningful when valid or expired
};

// Verifies the tag in constant time, then the expiry against `now`.
portal_token_check verify_portal_token(std::string_view key, std::string_view token, timestamp now);

}  // namespace hookd::http
