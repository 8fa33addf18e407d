#pragma once
// The domain entities as the catalog holds them (immutable once published) and their JSON
// shapes on the wire. Secrets never appear in `to_json`; see webhook_secret_json.

#include "core/catalog/scopes.hpp"
#include "core/common/clock.hpp"
#include "core/common/crypto.hpp"
#include "core/common/object_id.hpp"
#include "core/delivery/event_filter.hpp"

#include <boost/json/object.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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
  // Set for a portal session (docs/portal.md): the token reaches this one project only. Never
  // stored; stored tokens leave it empty.
  std::optional<object_id> project;

  bool can_access(const object_id& org) const noexcept;  // admin, or org listed
};

struct header_entry {
  std::string name;
  std::string value;
  friend bool operator==(const header_entry&, const header_entry&) = default;
};

// The serialized JSON of one immutable entity version, made on first use and kept with it.
// Readers on any thread may race to fill it: one wins (compare-exchange), the others drop their
// copy. A copy of the cache starts empty, because the catalog makes a webhook's next version by
// copying the current one and changing fields; it must never be filled before such changes.
class json_text_cache {
 public:
  json_text_cache() noexcept = default;
  json_text_cache(const json_text_cache&) noexcept {}
  json_text_cache& operator=(const json_text_cache&) noexcept {
    delete text_.exchange(nullptr, std::memory_order_acq_rel);
    return *this;
  }
  ~json_text_cache() { delete text_.load(std::memory_order_acquire); }

  template <class Make>
  const std::string& get(Make make) const {
    if (const std::string* text = text_.load(std::memory_order_acquire)) return *text;
    auto* fresh = new std::string(make());
    const std::string* expected = nullptr;
    if (text_.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
      return *fresh;
    }
    delete fresh;
    return *expected;
  }

 private:
  mutable std::atomic<const std::string*> text_{nullptr};
};

// How a webhook's deliveries are signed (docs/delivery.md, "Signing"): "v1" HMAC-SHA256 with a
// shared secret ("whsec_..."), or "v1a" Ed25519 with a private key ("whsk_...") whose public key
// ("whpk_...") the receiver verifies with.
enum class signing_scheme : std::uint8_t { v1, v1a };
std::string_view to_string(signing_scheme s) noexcept;
std::optional<signing_scheme> parse_signing_scheme(std::string_view) noexcept;

// A secret a rotation replaced: it keeps signing, next to the current one, until `expires_at`
// (the rotation's time plus --secret-grace; docs/delivery.md, "Rotating the secret").
struct previous_secret {
  std::string secret;  // the same forms as webhook::secret
  timestamp expires_at{};
  friend bool operator==(const previous_secret&, const previous_secret&) = default;
};

// A webhook's signing secret in memory: its plain text, or, as start-up loads it, the sealed form
// that storage holds (codec.hpp), opened with the master key at its first use (signing, showing
// it, rotating it) and kept opened from then on. Start-up then opens no secret, which was a third
// of its work at a million webhooks; the master key is checked once instead
// (kv_catalog_store.cpp).
// value() is safe from many threads at once on a published (const) webhook: racing first uses
// each open it, one publishes its plain text (compare-exchange), the others drop theirs. A copy
// starts unopened (the catalog copies a webhook to make its next version).
class webhook_secret {
 public:
  webhook_secret() noexcept = default;
  explicit webhook_secret(std::string plain) noexcept : bytes_(std::move(plain)) {}
  // `sealed_base64`: the standard base64 of what aes256gcm_key::seal made with `id`'s 12 bytes
  // as associated data (as storage holds it: decoded at first use too).
  static webhook_secret sealed(const object_id& id, std::string_view sealed_base64,
                               std::shared_ptr<const aes256gcm_key> key);

  webhook_secret(const webhook_secret& other) : bytes_(other.bytes_), key_(other.key_) {}
  webhook_secret(webhook_secret&& other) noexcept
      : bytes_(std::move(other.bytes_)),
        key_(std::move(other.key_)),
        opened_(other.opened_.exchange(nullptr, std::memory_order_acq_rel)) {}
  webhook_secret& operator=(const webhook_secret& other);
  webhook_secret& operator=(webhook_secret&& other) noexcept;
  webhook_secret& operator=(std::string plain) noexcept;
  ~webhook_secret() { delete opened_.load(std::memory_order_acquire); }

  // The plain text ("whsec_..." or "whsk_..."); empty when a sealed one does not open (a damaged
  // record: start-up checked the master key).
  const std::string& value() const;
  // Reads as its plain text wherever a string is wanted.
  operator const std::string&() const { return value(); }  // NOLINT(google-explicit-constructor)
  operator std::string_view() const { return value(); }    // NOLINT(google-explicit-constructor)
  // Sealed and not opened yet (for tests and benchmarks).
  bool is_sealed() const noexcept {
    return key_ != nullptr && opened_.load(std::memory_order_acquire) == nullptr;
  }

  friend bool operator==(const webhook_secret& a, const webhook_secret& b) {
    return a.value() == b.value();
  }
  friend bool operator==(const webhook_secret& a, std::string_view b) { return a.value() == b; }

 private:
  // Plain: the text, key_ null. Sealed: the webhook id's 12 bytes (the associated data), then
  // the base64 of the sealed form; key_ opens it.
  std::string bytes_;
  std::shared_ptr<const aes256gcm_key> key_;
  mutable std::atomic<const std::string*> opened_{nullptr};
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
  webhook_secret secret;  // "whsec_" + base64(24 random bytes); see webhook_secret
  timestamp created_at{};
  timestamp updated_at{};
  std::optional<std::string> disabled_reason;  // set by auto-disable (delivery, later)
  std::optional<timestamp> disabled_at;
  // Attempts per second at most (docs/delivery.md, "Flow control"); nullopt: no limit.
  std::optional<std::uint32_t> rate_limit;
  signing_scheme signing = signing_scheme::v1;
  // Newest first, at most kMaxPreviousSecrets; an expired one is ignored, and dropped by the next
  // change of the webhook. Plaintext in memory only, like `secret`.
  std::vector<previous_secret> previous_secrets;
  // Null: no filter, every event its `events` match. Shared by the webhook's versions.
  std::shared_ptr<const event_filter> filter;
  json_text_cache json_cache;         // for to_json_text; not part of the entity's value
  json_text_cache masked_json_cache;  // for to_json_text(w, header_values::masked); likewise
};

// A webhook's rateLimit is 1 to this many attempts per second.
inline constexpr std::uint32_t kMaxRateLimit = 10'000;

// What a token that may read a webhook but not change it sees in place of each custom header
// value, which often carries the receiver's credentials (docs/operations.md, "Security model").
// A PATCH that sends it back as a header's value keeps the value stored under that name.
inline constexpr std::string_view kMaskedHeaderValue = "********";

enum class header_values : std::uint8_t { shown, masked };

boost::json::object to_json(const organization&);
boost::json::object to_json(const project&);
boost::json::object to_json(const api_token&);  // never the token string or its digest
// Never the secret; custom header values as they are, or each one kMaskedHeaderValue;
// rateLimit only when the webhook has one.
boost::json::object to_json(const webhook&, header_values values = header_values::shown);
// serialize(to_json(w, values)), computed once per webhook version and kind. Only for webhooks
// that no longer change (the catalog's published, `const` ones): the text is not refreshed after
// an edit.
const std::string& to_json_text(const webhook&, header_values values = header_values::shown);

// A fresh signing secret: "whsec_" + standard base64 of 24 RAND_bytes.
std::string generate_webhook_secret();
// A fresh secret of `scheme`: the above for v1; for v1a "whsk_" + standard base64 of the 32-byte
// seed of a new Ed25519 key.
std::string generate_webhook_secret(signing_scheme scheme);

// Secrets a webhook keeps after rotations, besides its current one: a second rotation within the
// grace keeps the first one's secret signing too, so that a mistaken double rotation breaks no
// receiver; beyond this many the oldest is dropped at once (docs/delivery.md).
inline constexpr std::size_t kMaxPreviousSecrets = 3;
// A fresh API token string: "hkd_" + base64url of 32 RAND_bytes.
std::string generate_api_token();

}  // namespace hookd
