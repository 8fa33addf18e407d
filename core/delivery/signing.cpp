#include "core/delivery/signing.hpp"

#include "core/common/crypto.hpp"

#include <limits>
#include <optional>
#include <utility>

namespace hookd {

namespace {

constexpr std::string_view kSecretPrefix = "whsec_";
constexpr std::string_view kVersion = "v1";

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

}  // namespace

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
  std::vector<std::string> keys;
  keys.reserve(secrets.size());
  for (std::size_t i = 0; i < secrets.size(); ++i) {
    std::string_view text = secrets[i];
    if (text.starts_with(kSecretPrefix)) text.remove_prefix(kSecretPrefix.size());
    auto key = base64_decode(text);
    if (!key || key->empty()) {
      return validation_problem(
          {{"secrets[" + std::to_string(i) + "]",
            "must be \"whsec_\" followed by standard base64 of the key bytes"}},
          "A signing secret is not valid base64.");
    }
    keys.push_back(std::move(*key));
  }
  return webhook_signer(std::move(keys));
}

result<webhook_signer> webhook_signer::create(std::string_view secret) {
  return create(std::vector<std::string>{std::string(secret)});
}

std::string webhook_signer::sign(std::string_view msg_id, std::int64_t unix_seconds,
                                 std::string_view body) const {
  const std::string content = signed_content(msg_id, unix_seconds, body);
  std::string header;
  for (const std::string& key : keys_) {
    if (!header.empty()) header.push_back(' ');
    header.append(kVersion);
    header.push_back(',');
    header.append(base64_encode(digest_view(hmac_sha256(key, content))));
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
  std::vector<std::string_view> candidates;
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
  }
  if (!any_entry) return fail(verify_status::malformed_header, "webhook-signature is empty");

  const std::string content = signed_content(msg_id, *ts, body);
  bool matched = false;
  for (const std::string& key : keys_) {
    const sha256_digest expected = hmac_sha256(key, content);
    for (std::string_view candidate : candidates) {
      const auto decoded = base64_decode(candidate);
      // Keep looping after a match: the work done must not depend on which entry matched.
      if (decoded && constant_time_equal(*decoded, digest_view(expected))) matched = true;
    }
  }
  if (!matched) {
    return fail(verify_status::no_matching_signature,
                candidates.empty() ? "webhook-signature has no v1 entry"
                                   : "no v1 signature matches a known secret");
  }
  return verify_result{verify_status::ok, {}};
}

}  // namespace hookd
