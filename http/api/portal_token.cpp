#include "http/api/portal_token.hpp"

#include <array>
#include <cstdint>

namespace hookd::http {
namespace {

constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kClaimsSize = 1 + object_id::kSize * 2 + 8;
constexpr std::size_t kTagSize = 32;
constexpr std::string_view kKeyLabel = "hookd portal session v1";

std::string_view as_view(const sha256_digest& d) noexcept {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

std::string claims_bytes(const portal_claims& c) {
  std::string out;
  out.reserve(kClaimsSize);
  out.push_back(static_cast<char>(kVersion));
  out += c.organization.binary();
  out += c.project.binary();
  const auto ms = static_cast<std::uint64_t>(c.expires_at.time_since_epoch().count());
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((ms >> static_cast<unsigned>(shift)) & 0xffu));
  }
  return out;
}

// base64url without padding back to bytes; nullopt for any other character.
std::optional<std::string> base64url_decode(std::string_view text) {
  std::string standard(text);
  for (char& ch : standard) {
    if (ch == '-') {
      ch = '+';
    } else if (ch == '_') {
      ch = '/';
    } else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                 (ch >= '0' && ch <= '9'))) {
      return std::nullopt;
    }
  }
  return base64_decode(standard);
}

}  // namespace

std::string derive_portal_key(const aes256gcm_key& master_key) {
  return std::string(as_view(hmac_sha256(master_key.raw(), kKeyLabel)));
}

std::string mint_portal_token(std::string_view key, const portal_claims& claims) {
  std::string bytes = claims_bytes(claims);
  bytes += as_view(hmac_sha256(key, bytes));
  return std::string(kPortalTokenPrefix) + base64url_encode(bytes);
}

portal_token_check verify_portal_token(std::string_view key, std::string_view token,
                                       timestamp now) {
  portal_token_check check;
  if (!token.starts_with(kPortalTokenPrefix)) return check;
  auto bytes = base64url_decode(token.substr(kPortalTokenPrefix.size()));
  if (!bytes || bytes->size() != kClaimsSize + kTagSize ||
      static_cast<std::uint8_t>((*bytes)[0]) != kVersion) {
    return check;
  }
  const std::string_view body = std::string_view(*bytes).substr(0, kClaimsSize);
  const std::string_view tag = std::string_view(*bytes).substr(kClaimsSize);
  if (!constant_time_equal(as_view(hmac_sha256(key, body)), tag)) return check;
  auto org = object_id::from_binary(body.substr(1, object_id::kSize));
  auto project = object_id::from_binary(body.substr(1 + object_id::kSize, object_id::kSize));
  if (!org || !project) return check;
  std::uint64_t ms = 0;
  for (char ch : body.substr(1 + 2 * object_id::kSize)) {
    ms = (ms << 8u) | static_cast<std::uint8_t>(ch);
  }
  check.claims.organization = *org;
  check.claims.project = *project;
  check.claims.expires_at = timestamp(std::chrono::milliseconds(static_cast<std::int64_t>(ms)));
  check.state =
      check.claims.expires_at > now ? portal_token_state::valid : portal_token_state::expired;
  return check;
}

}  // namespace hookd::http
