#include "core/delivery/signing.hpp"

#include "core/common/crypto.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <unordered_map>
#include <utility>

namespace hookd {

namespace {

constexpr std::string_view kVersion = "v1";
constexpr std::string_view kAsymmetricVersion = "v1a";

// Standard Webhooks recommends HMAC secrets of 24 to 64 bytes.
constexpr std::size_t kHmacSecretMin = 24, kHmacSecretMax = 64;

std::string signed_content(std::string_view msg_id, std::int64_t unix_seconds,
                           std::string_view body) {
  std::string content;
  content.reserve(msg_id.size() + body.size() + 24);
  content.append(msg_id);
  content.push_back('.');
  content.append(std::to_string(unix_seconds));
  content.push_back('.');
  content.append(body);
  return content;
}

std::string_view digest_view(const sha256_digest& d) noexcept {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

// Unsigned decimal digits only: no sign, no spaces, no fraction.
std::optional<std::int64_t> parse_unix_seconds(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  std::int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const int digit = c - '0';
    if (value > (std::numeric_limits<std::int64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

verify_result fail(verify_status status, std::string detail) {
  return verify_result{status, std::move(detail)};
}

// The bytes after `prefix`, base64-decoded; nullopt when the prefix is missing or it is not
// base64.
std::optional<std::string> decoded_after(std::string_view text, std::string_view prefix) {
  if (!text.starts_with(prefix)) return std::nullopt;
  return base64_decode(text.substr(prefix.size()));
}

// The Ed25519 private key of a "whsk_" secret. Making one from its seed derives the public key,
// a scalar multiplication as costly as a signature, and the dispatcher makes a signer from the
// webhook for every attempt; so each thread keeps the keys of the secrets it used last, at most
// kCachedKeys (then it starts over). They hold nothing the catalog does not hold already.
std::optional<ed25519_key> private_key_of(std::string_view secret) {
  static constexpr std::size_t kCachedKeys = 1024;
  thread_local std::unordered_map<std::string, ed25519_key> cache;
  if (const auto it = cache.find(std::string(secret)); it != cache.end()) return it->second;
  const auto seed = decoded_after(secret, kEd25519SecretPrefix);
  if (!seed) return std::nullopt;
  auto key = ed25519_key::from_seed(*seed);
  if (!key) return std::nullopt;
  if (cache.size() >= kCachedKeys) cache.clear();
  cache.emplace(std::string(secret), *key);
  return key;
}

}  // namespace

std::optional<std::string> check_signing_secret(std::string_view secret, signing_scheme scheme) {
  if (scheme == signing_scheme::v1) {
    const auto key = decoded_after(secret, kHmacSecretPrefix);
    if (!key || key->size() < kHmacSecretMin || key->size() > kHmacSecretMax) {
      return "must be \"whsec_\" followed by standard base64 of 24 to 64 bytes (this webhook "
             "signs with v1)";
    }
    return std::nullopt;
  }
  const auto seed = decoded_after(secret, kEd25519SecretPrefix);
  if (!seed || !ed25519_key::from_seed(*seed)) {
    return "must be \"whsk_\" followed by standard base64 of a 32-byte Ed25519 seed (this "
           "webhook signs with v1a)";
  }
  return std::nullopt;
}

std::optional<std::string> signing_public_key(std::string_view secret) {
  const auto seed = decoded_after(secret, kEd25519SecretPrefix);
  if (!seed) return std::nullopt;
  const auto key = ed25519_key::from_seed(*seed);
  if (!key) return std::nullopt;
  return std::string(kEd25519PublicKeyPrefix) + base64_encode(key->public_key());
}

std::string_view to_string(verify_status s) noexcept {
  switch (s) {
    case verify_status::ok:
      return "ok";
    case verify_status::malformed_header:
      return "malformed header";
    case verify_status::stale_timestamp:
      return "stale timestamp";
    case verify_status::no_matching_signature:
      return "no matching signature";
  }
  return "unknown";
}

result<webhook_signer> webhook_signer::create(const std::vector<std::string>& secrets) {
  if (secrets.empty()) {
    return validation_problem({{"secrets", "at least one signing secret is required"}},
                              "No signing secret was given.");
  }
  std::vector<key> keys;
  keys.reserve(secrets.size());
  for (std::size_t i = 0; i < secrets.size(); ++i) {
    const std::string_view text = secrets[i];
    std::optional<key> parsed;
    if (text.starts_with(kEd25519SecretPrefix)) {
      if (auto k = private_key_of(text)) parsed.emplace(std::move(*k));
    } else if (text.starts_with(kEd25519PublicKeyPrefix)) {
      if (auto raw = decoded_after(text, kEd25519PublicKeyPrefix)) {
        if (auto k = ed25519_key::from_public(*raw)) parsed.emplace(std::move(*k));
      }
    } else {
      const std::string_view b64 =
          text.starts_with(kHmacSecretPrefix) ? text.substr(kHmacSecretPrefix.size()) : text;
      if (auto bytes = base64_decode(b64); bytes && !bytes->empty()) {
        parsed.emplace(std::move(*bytes));
      }
    }
    if (!parsed) {
      return validation_problem(
          {{"secrets[" + std::to_string(i) + "]",
            "must be \"whsec_\" followed by standard base64 of the key bytes, or \"whsk_\" / "
            "\"whpk_\" followed by standard base64 of a 32-byte Ed25519 seed / public key"}},
          "A signing secret is not valid.");
    }
    keys.push_back(std::move(*parsed));
  }
  return webhook_signer(std::move(keys));
}

result<webhook_signer> webhook_signer::for_webhook(const webhook& hook, timestamp at) {
  const std::string& secret = hook.secret.value();
  if (secret.empty()) {
    // Opened at its first use (webhook_secret): only a damaged record gets here.
    return make_problem(error_kind::internal,
                        "the webhook's signing secret does not open with the master key (a "
                        "damaged record)");
  }
  if (hook.previous_secrets.empty()) return create(secret);
  std::vector<std::string> secrets{secret};
  for (const previous_secret& p : hook.previous_secrets) {
    if (p.expires_at > at) secrets.push_back(p.secret);
  }
  return create(secrets);
}

timestamp webhook_signer::same_keys_until(const webhook& hook, timestamp at) noexcept {
  timestamp until = timestamp::max();
  for (const previous_secret& p : hook.previous_secrets) {
    if (p.expires_at > at) until = std::min(until, p.expires_at);
  }
  return until;
}

result<webhook_signer> webhook_signer::create(std::string_view secret) {
  return create(std::vector<std::string>{std::string(secret)});
}

std::string webhook_signer::sign(std::string_view msg_id, std::int64_t unix_seconds,
                                 std::string_view body) const {
  // HMAC takes the signed content in its parts, without a copy of the body, with the secret's
  // keyed context of this thread (a webhook's secret signs attempt after attempt); Ed25519 signs
  // one contiguous message.
  const std::string seconds = std::to_string(unix_seconds);
  const std::array<std::string_view, 5> parts{msg_id, ".", seconds, ".", body};
  std::string content;
  std::string header;
  for (const key& k : keys_) {
    if (const auto* hmac = std::get_if<std::string>(&k)) {
      if (!header.empty()) header.push_back(' ');
      header.append(kVersion);
      header.push_back(',');
      header.append(base64_encode(digest_view(hmac_sha256_reused_key(*hmac, parts))));
    } else if (const auto& ed = std::get<ed25519_key>(k); ed.has_private()) {
      if (content.empty()) content = signed_content(msg_id, unix_seconds, body);
      if (!header.empty()) header.push_back(' ');
      header.append(kAsymmetricVersion);
      header.push_back(',');
      header.append(base64_encode(ed.sign(content)));
    }
  }
  return header;
}

verify_result webhook_signer::verify(std::string_view msg_id, std::string_view timestamp_header,
                                     std::string_view body, std::string_view signature_header,
                                     std::int64_t now_unix_seconds,
                                     std::chrono::seconds tolerance) const {
  if (msg_id.empty()) return fail(verify_status::malformed_header, "missing webhook-id");
  const auto ts = parse_unix_seconds(timestamp_header);
  if (!ts) {
    return fail(verify_status::malformed_header,
                "webhook-timestamp is not an integer number of seconds");
  }
  // Unsigned subtraction: the distance between two arbitrary int64 values always fits.
  const bool in_past = now_unix_seconds >= *ts;
  const std::uint64_t distance =
      in_past ? static_cast<std::uint64_t>(now_unix_seconds) - static_cast<std::uint64_t>(*ts)
              : static_cast<std::uint64_t>(*ts) - static_cast<std::uint64_t>(now_unix_seconds);
  const std::uint64_t allowed =
      tolerance.count() > 0 ? static_cast<std::uint64_t>(tolerance.count()) : 0;
  if (distance > allowed) {
    return fail(verify_status::stale_timestamp,
                in_past ? "webhook-timestamp is too old" : "webhook-timestamp is in the future");
  }

  // Parse every entry before comparing so that a garbled header is reported as such.
  std::vector<std::string_view> candidates, asymmetric;
  bool any_entry = false;
  std::string_view rest = signature_header;
  while (!rest.empty()) {
    const std::size_t space = rest.find(' ');
    const std::string_view entry = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
    if (entry.empty()) continue;  // repeated spaces
    const std::size_t comma = entry.find(',');
    if (comma == std::string_view::npos || comma == 0 || comma + 1 == entry.size()) {
      return fail(verify_status::malformed_header,
                  "webhook-signature entries must be \"<version>,<signature>\"");
    }
    any_entry = true;
    if (entry.substr(0, comma) == kVersion) candidates.push_back(entry.substr(comma + 1));
    if (entry.substr(0, comma) == kAsymmetricVersion) asymmetric.push_back(entry.substr(comma + 1));
  }
  if (!any_entry) return fail(verify_status::malformed_header, "webhook-signature is empty");

  const std::string content = signed_content(msg_id, *ts, body);
  bool matched = false;
  for (const key& k : keys_) {
    if (const auto* hmac = std::get_if<std::string>(&k)) {
      const sha256_digest expected = hmac_sha256(*hmac, content);
      for (std::string_view candidate : candidates) {
        const auto decoded = base64_decode(candidate);
        // Keep looping after a match: the work done must not depend on which entry matched.
        if (decoded && constant_time_equal(*decoded, digest_view(expected))) matched = true;
      }
    } else {
      // A signature is public: no timing to hide, so the first match ends the search.
      const auto& ed = std::get<ed25519_key>(k);
      for (std::string_view candidate : asymmetric) {
        if (matched) break;
        const auto decoded = base64_decode(candidate);
        if (decoded && ed.verify(content, *decoded)) matched = true;
      }
    }
  }
  if (!matched) {
    return fail(verify_status::no_matching_signature,
                candidates.empty() && asymmetric.empty()
                    ? "webhook-signature has no v1 or v1a entry"
                    : "no v1 or v1a signature matches a known key");
  }
  return verify_result{verify_status::ok, {}};
}

}  // namespace hookd
