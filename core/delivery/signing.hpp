#pragma once
// Standard Webhooks signatures (docs/openapi.yaml, https://www.standardwebhooks.com/).
//
// The signed content is "{msg_id}.{unix_seconds}.{body}"; the signature is HMAC-SHA256 keyed with
// the base64-decoded secret, sent as "v1,<base64>". During a secret rotation both the new and the
// old secret sign, and the `webhook-signature` header carries both entries, space-separated.

#include "core/common/error.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hookd {

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

// Signs with, or verifies against, one or more secrets.
// Immutable after creation: `sign` and `verify` are safe to call from many threads at once.
class webhook_signer {
 public:
  // Standard Webhooks' default: a receiver refuses a timestamp more than 5 minutes away from its
  // clock in either direction, which bounds replays without tripping over ordinary clock skew.
  static constexpr std::chrono::seconds kDefaultTolerance{5 * 60};

  // Each secret is "whsec_" + standard base64 (the prefix is optional). A secret that is not
  // base64, or decodes to nothing, and an empty list are `validation` problems naming the index.
  [[nodiscard]] static result<webhook_signer> create(const std::vector<std::string>& secrets);
  [[nodiscard]] static result<webhook_signer> create(std::string_view secret);

  // "v1,<sig1>" or, with two secrets, "v1,<sig1> v1,<sig2>" in the order the secrets were given.
  [[nodiscard]] std::string sign(std::string_view msg_id, std::int64_t unix_seconds,
                                 std::string_view body) const;

  // Checks the three Standard Webhooks headers the way a receiver does: the timestamp first (so
  // that a replay is reported as such), then every "v1,<sig>" entry of `signature_header` against
  // every secret, comparing in constant time. Entries of other versions are ignored.
  [[nodiscard]] verify_result verify(std::string_view msg_id, std::string_view timestamp_header,
                                     std::string_view body, std::string_view signature_header,
                                     std::int64_t now_unix_seconds,
                                     std::chrono::seconds tolerance = kDefaultTolerance) const;

  [[nodiscard]] std::size_t secret_count() const noexcept { return keys_.size(); }

 private:
  explicit webhook_signer(std::vector<std::string> keys) : keys_(std::move(keys)) {}

  std::vector<std::string> keys_;  // decoded key bytes
};

}  // namespace hookd
