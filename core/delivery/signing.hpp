#pragma once
// Standard Webhooks signatures (docs/delivery.md, "Signing"; https://www.standardwebhooks.com/).
//
// The signed content is "{msg_id}.{unix_seconds}.{body}". Two schemes:
// - v1: HMAC-SHA256 keyed with the base64-decoded secret ("whsec_..."), sent as "v1,<base64>";
// - v1a: Ed25519 with a private key ("whsk_" + base64 of its 32-byte seed), sent as
//   "v1a,<base64 of the 64-byte signature>"; receivers verify with the public key ("whpk_" +
//   base64 of its 32 bytes).
// During a secret rotation the new and the previous secrets all sign, and the `webhook-signature`
// header carries one entry per secret, space-separated, the newest first.

#include "core/catalog/entities.hpp"
#include "core/common/clock.hpp"
#include "core/common/crypto.hpp"
#include "core/common/error.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace hookd {

inline constexpr std::string_view kHmacSecretPrefix = "whsec_";
inline constexpr std::string_view kEd25519SecretPrefix = "whsk_";
inline constexpr std::string_view kEd25519PublicKeyPrefix = "whpk_";

// Why `secret` is not a secret a webhook of `scheme` can be given (nullopt: it is): for v1,
// "whsec_" and standard base64 of 24 to 64 bytes (Standard Webhooks' recommended range); for v1a,
// "whsk_" and standard base64 of exactly 32 bytes (an Ed25519 seed).
std::optional<std::string> check_signing_secret(std::string_view secret, signing_scheme scheme);

// The public key of a v1a secret, "whpk_" + base64 of its 32 bytes; nullopt for any other text.
std::optional<std::string> signing_public_key(std::string_view secret);

enum class verify_status {
  ok,
  malformed_header,       // a missing id, a non-integer timestamp, an empty or garbled signature
  stale_timestamp,        // outside the tolerance, in the past or in the future
  no_matching_signature,  // well-formed, but no v1 entry is the HMAC of a known secret
};

std::string_view to_string(verify_status s) noexcept;

struct verify_result {
  verify_status status = verify_status::malformed_header;
  std::string detail;  // a one-line explanation for logs and the test receiver's output

  [[nodiscard]] bool ok() const noexcept { return status == verify_status::ok; }
  explicit operator bool() const noexcept { return ok(); }
};

// Signs with, or verifies against, one or more keys.
// Immutable after creation: `sign` and `verify` are safe to call from many threads at once.
class webhook_signer {
 public:
  // Standard Webhooks' default: a receiver refuses a timestamp more than 5 minutes away from its
  // clock in either direction, which bounds replays without tripping over ordinary clock skew.
  static constexpr std::chrono::seconds kDefaultTolerance{5 * 60};

  // Each key is one of: "whsec_" + standard base64 (v1; the prefix is optional), "whsk_" + base64
  // of a 32-byte Ed25519 seed (v1a; signs and verifies), "whpk_" + base64 of a 32-byte Ed25519
  // public key (v1a; verifies only). A key that is none of these, and an empty list, are
  // `validation` problems naming the index.
  [[nodiscard]] static result<webhook_signer> create(const std::vector<std::string>& secrets);
  [[nodiscard]] static result<webhook_signer> create(std::string_view secret);

  // The signer of an attempt made at `at` (docs/delivery.md, "Rotating the secret"): the
  // webhook's secret, then each previous secret whose grace has not ended by `at`, newest first.
  [[nodiscard]] static result<webhook_signer> for_webhook(const webhook& hook, timestamp at);
  // Until when for_webhook(hook, at) signs with the same keys, from `at` on: the end of the
  // earliest grace still running at `at` (timestamp::max() when none is), so that a caller may
  // keep one signer per version of a webhook for the attempts before it.
  [[nodiscard]] static timestamp same_keys_until(const webhook& hook, timestamp at) noexcept;

  // One entry per key that can sign, space-separated, in the order the keys were given:
  // "v1,<sig>" for an HMAC secret, "v1a,<sig>" for an Ed25519 private key.
  [[nodiscard]] std::string sign(std::string_view msg_id, std::int64_t unix_seconds,
                                 std::string_view body) const;

  // Checks the three Standard Webhooks headers the way a receiver does: the timestamp first (so
  // that a replay is reported as such), then every "v1,<sig>" entry of `signature_header` against
  // every HMAC secret (in constant time) and every "v1a,<sig>" entry against every Ed25519 key.
  // Entries of other versions are ignored.
  [[nodiscard]] verify_result verify(std::string_view msg_id, std::string_view timestamp_header,
                                     std::string_view body, std::string_view signature_header,
                                     std::int64_t now_unix_seconds,
                                     std::chrono::seconds tolerance = kDefaultTolerance) const;

  [[nodiscard]] std::size_t secret_count() const noexcept { return keys_.size(); }

 private:
  using key = std::variant<std::string, ed25519_key>;  // decoded HMAC key bytes, or Ed25519

  explicit webhook_signer(std::vector<key> keys) : keys_(std::move(keys)) {}

  std::vector<key> keys_;
};

}  // namespace hookd
