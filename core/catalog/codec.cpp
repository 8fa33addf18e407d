#include "core/catalog/codec.hpp"

#include "core/durable/record_reader.hpp"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace hookd {
namespace json = boost::json;

namespace {

using detail::begin_record;
using detail::decode_error;
using detail::finish;
using detail::open_record;
using detail::record_reader;
using detail::to_millis;

// Room for one record's parsed JSON tree on the decoder's stack: a record fits, so parsing
// allocates nothing on the heap (past it, the resource falls back to the heap). A record is
// decoded once at start-up per entity, so this is per webhook at load.
struct parse_arena {
  unsigned char buffer[4096];
  json::monotonic_resource resource{buffer, sizeof buffer};
  json::storage_ptr storage() noexcept { return json::storage_ptr(&resource); }
};

std::string digest_view(const sha256_digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

// The associated data of a webhook's sealed header values: its id, after a label that tells
// them from its sealed secret (whose associated data is the bare id), so that neither sealed
// blob opens in the other's place or in another webhook.
std::string headers_aad(const object_id& id) {
  std::string aad("headers:");
  aad.append(id.binary());
  return aad;
}

// [["name","value"],...] as JSON text: the plaintext of sealed header values.
std::string headers_plaintext(const std::vector<header_entry>& headers) {
  json::array list;
  list.reserve(headers.size());
  for (const header_entry& h : headers) list.push_back(json::array{h.name, h.value});
  return json::serialize(list);
}

// The pairs of a header list read from JSON: the sealed plaintext, or the plain array of records
// written before header values were sealed. false when it is not a list of string pairs.
bool read_header_pairs(const json::value& v, std::vector<header_entry>& out) {
  const json::array* list = v.if_array();
  if (list == nullptr) return false;
  out.reserve(list->size());
  for (const json::value& item : *list) {
    const json::array* pair = item.if_array();
    if (pair == nullptr || pair->size() != 2 || !(*pair)[0].is_string() ||
        !(*pair)[1].is_string()) {
      return false;
    }
    out.push_back(
        header_entry{std::string((*pair)[0].get_string()), std::string((*pair)[1].get_string())});
  }
  return true;
}

// Opens sealed header values (base64 of AES-256-GCM under the master key). false when the
// text is not base64, does not open, or does not hold a list of pairs.
bool open_headers(std::string_view sealed_b64, const object_id& id, const aes256gcm_key& master_key,
                  std::vector<header_entry>& out) {
  const std::optional<std::string> sealed = base64_decode(sealed_b64);
  if (!sealed) return false;
  const std::optional<std::string> plain = master_key.open(*sealed, headers_aad(id));
  if (!plain) return false;
  boost::system::error_code ec;
  const json::value parsed = json::parse(*plain, ec);
  return !ec && read_header_pairs(parsed, out);
}

// The associated data of a webhook's sealed previous secrets, labelled like headers_aad.
std::string previous_secrets_aad(const object_id& id) {
  std::string aad("previous:");
  aad.append(id.binary());
  return aad;
}

// [["secret", expiresAtMillis],...] as JSON text: the plaintext of sealed previous secrets.
std::string previous_secrets_plaintext(const std::vector<previous_secret>& secrets) {
  json::array list;
  list.reserve(secrets.size());
  for (const previous_secret& p : secrets) {
    list.push_back(json::array{json::value(p.secret), json::value(to_millis(p.expires_at))});
  }
  return json::serialize(list);
}

// Opens sealed previous secrets. false when the text is not base64, does not open, or does not
// hold a list of [secret, integer] pairs.
bool open_previous_secrets(std::string_view sealed_b64, const object_id& id,
                           const aes256gcm_key& master_key, std::vector<previous_secret>& out) {
  const std::optional<std::string> sealed = base64_decode(sealed_b64);
  if (!sealed) return false;
  const std::optional<std::string> plain = master_key.open(*sealed, previous_secrets_aad(id));
  if (!plain) return false;
  boost::system::error_code ec;
  const json::value parsed = json::parse(*plain, ec);
  const json::array* list = ec ? nullptr : parsed.if_array();
  if (list == nullptr) return false;
  for (const json::value& item : *list) {
    const json::array* pair = item.if_array();
    if (pair == nullptr || pair->size() != 2 || !(*pair)[0].is_string() || !(*pair)[1].is_int64()) {
      return false;
    }
    out.push_back(previous_secret{std::string((*pair)[0].get_string()),
                                  detail::from_millis((*pair)[1].get_int64())});
  }
  return true;
}

}  // namespace

// ---- organizations

std::string encode(const organization& org) {
  json::object o = begin_record();
  o["name"] = org.name;
  o["createdAt"] = to_millis(org.created_at);
  o["updatedAt"] = to_millis(org.updated_at);
  return json::serialize(o);
}

result<organization> decode_organization(std::string_view key, std::string_view value) {
  parse_arena arena;  // outlives `rec`, whose tree it holds
  auto rec = open_record(key, value, arena.storage());
  if (!rec) return rec.error();
  record_reader r(rec->value.get_object());
  organization org;
  org.id = rec->id;
  org.name = r.string("name");
  org.created_at = r.time("createdAt");
  org.updated_at = r.time("updatedAt");
  return finish(r, std::move(org));
}

// ---- projects

std::string encode(const project& p) {
  json::object o = begin_record();
  o["organization"] = p.organization.to_string();
  o["name"] = p.name;
  o["slug"] = p.slug;
  if (p.description) o["description"] = *p.description;
  o["status"] = to_string(p.status);
  if (p.app_icon_url) o["appIconUrl"] = *p.app_icon_url;
  o["createdAt"] = to_millis(p.created_at);
  o["updatedAt"] = to_millis(p.updated_at);
  return json::serialize(o);
}

result<project> decode_project(std::string_view key, std::string_view value) {
  parse_arena arena;  // outlives `rec`, whose tree it holds
  auto rec = open_record(key, value, arena.storage());
  if (!rec) return rec.error();
  record_reader r(rec->value.get_object());
  project p;
  p.id = rec->id;
  p.organization = r.id("organization");
  p.name = r.string("name");
  p.slug = r.string("slug");
  p.description = r.opt_string("description");
  const std::string status = r.string("status");
  if (r.ok()) {
    if (auto s = parse_project_status(status)) {
      p.status = *s;
    } else {
      r.fail("field \"status\" is not draft, active or archived");
    }
  }
  p.app_icon_url = r.opt_string("appIconUrl");
  p.created_at = r.time("createdAt");
  p.updated_at = r.time("updatedAt");
  return finish(r, std::move(p));
}

// ---- tokens

std::string encode(const api_token& t) {
  json::object o = begin_record();
  o["name"] = t.name;
  json::array orgs;
  orgs.reserve(t.organizations.size());
  for (const object_id& id : t.organizations) orgs.emplace_back(id.to_string());
  o["organizations"] = std::move(orgs);
  json::array scopes;
  for (std::string_view name : t.scopes.names()) scopes.emplace_back(name);
  o["scopes"] = std::move(scopes);
  o["digest"] = base64_encode(digest_view(t.digest));
  o["createdAt"] = to_millis(t.created_at);
  return json::serialize(o);
}

result<api_token> decode_token(std::string_view key, std::string_view value) {
  parse_arena arena;  // outlives `rec`, whose tree it holds
  auto rec = open_record(key, value, arena.storage());
  if (!rec) return rec.error();
  record_reader r(rec->value.get_object());
  api_token t;
  t.id = rec->id;
  t.name = r.string("name");
  for (const std::string& text : r.strings("organizations")) {
    if (auto id = object_id::parse(text)) {
      t.organizations.push_back(*id);
    } else {
      r.fail("field \"organizations\" holds \"" + text + "\", which is not an id");
    }
  }
  for (const std::string& name : r.strings("scopes")) {
    if (auto s = parse_scope(name)) {
      t.scopes.add(*s);
    } else {
      r.fail("field \"scopes\" holds the unknown scope \"" + name + "\"");
    }
  }
  const std::string digest_b64 = r.string("digest");
  if (r.ok()) {
    const std::optional<std::string> raw = base64_decode(digest_b64);
    if (raw && raw->size() == t.digest.size()) {
      std::copy(raw->begin(), raw->end(), reinterpret_cast<char*>(t.digest.data()));
    } else {
      r.fail("field \"digest\" is not the base64 of a 32-byte SHA-256 digest");
    }
  }
  t.created_at = r.time("createdAt");
  return finish(r, std::move(t));
}

// ---- webhooks

std::string encode(const webhook& w, const aes256gcm_key& master_key) {
  json::object o = begin_record();
  o["organization"] = w.organization.to_string();
  o["project"] = w.project.to_string();
  o["name"] = w.name;
  o["url"] = w.url;
  // Header values often carry the receiver's credentials: sealed like the secret. No headers
  // stay an empty array (nothing to hide, nothing to open at start-up).
  if (w.headers.empty()) {
    o["headers"] = json::array();
  } else {
    o["headers"] = base64_encode(master_key.seal(headers_plaintext(w.headers), headers_aad(w.id)));
  }
  o["active"] = w.active;
  json::array events;
  events.reserve(w.events.size());
  for (const std::string& e : w.events) events.emplace_back(e);
  o["events"] = std::move(events);
  o["secret"] = base64_encode(master_key.seal(w.secret.value(), w.id.binary()));
  o["createdAt"] = to_millis(w.created_at);
  o["updatedAt"] = to_millis(w.updated_at);
  if (w.disabled_reason) o["disabledReason"] = *w.disabled_reason;
  if (w.disabled_at) o["disabledAt"] = to_millis(*w.disabled_at);
  if (w.rate_limit) o["rateLimit"] = *w.rate_limit;
  // Signing and filter fields only when they differ from the defaults, so that a webhook without
  // them is stored exactly as before they existed (docs/delivery.md, "Signing").
  if (w.signing != signing_scheme::v1) o["signing"] = to_string(w.signing);
  if (!w.previous_secrets.empty()) {
    o["previousSecrets"] = base64_encode(master_key.seal(
        previous_secrets_plaintext(w.previous_secrets), previous_secrets_aad(w.id)));
  }
  if (w.filter) o["filter"] = w.filter->to_json();
  return json::serialize(o);
}

namespace {

// Reads the one shape encode(webhook) writes, left to right, without a JSON tree: the fields in
// their fixed order, strings of printable ASCII without escapes, integers as plain decimal.
// Start-up decodes every webhook once, and this is most of its cost. It never refuses anything:
// whatever else it meets (an escape, non-ASCII, whitespace, another field order, an unknown
// field, a value that does not check out) makes it decline, and decode_webhook reads the record
// with the general reader, which gives the same webhook or the error message.
class canonical_reader {
 public:
  explicit canonical_reader(std::string_view text) noexcept : rest_(text) {}

  // A literal of known length: the comparison compiles to a few word compares, no memcmp call.
  template <std::size_t N>
  bool literal(const char (&expected)[N]) noexcept {
    constexpr std::size_t n = N - 1;  // without the terminating NUL
    if (rest_.size() < n || std::memcmp(rest_.data(), expected, n) != 0) return false;
    rest_.remove_prefix(n);
    return true;
  }
  bool string(std::string_view& out) noexcept {
    if (rest_.empty() || rest_.front() != '"') return false;
    rest_.remove_prefix(1);
    // Eight bytes at a time up to the first word that holds a byte to look at (a quote, a
    // backslash, a control character or non-ASCII), then byte by byte from that word on: the
    // strings are long (a sealed secret is 88 characters) and this runs for every webhook.
    std::size_t i = 0;
    for (; i + 8 <= rest_.size(); i += 8) {
      std::uint64_t word;
      std::memcpy(&word, rest_.data() + i, 8);
      if (has_special_byte(word)) break;
    }
    for (; i < rest_.size(); ++i) {
      const auto c = static_cast<unsigned char>(rest_[i]);
      if (c == '"') {
        out = rest_.substr(0, i);
        rest_.remove_prefix(i + 1);
        return true;
      }
      if (c == '\\' || c < 0x20 || c >= 0x80) return false;
    }
    return false;
  }
  // Non-negative, no leading zero, at most 18 digits: exactly what Boost.JSON reads as an int64.
  bool integer(std::int64_t& out) noexcept {
    std::size_t n = 0;
    std::int64_t v = 0;
    while (n < rest_.size() && rest_[n] >= '0' && rest_[n] <= '9') {
      if (n == 18) return false;  // a 19th digit: before v * 10 can overflow
      v = v * 10 + (rest_[n] - '0');
      ++n;
    }
    if (n == 0 || (n > 1 && rest_[0] == '0')) return false;
    if (n < rest_.size() && (rest_[n] == '.' || rest_[n] == 'e' || rest_[n] == 'E')) return false;
    rest_.remove_prefix(n);
    out = v;
    return true;
  }
  bool time(timestamp& out) noexcept {
    std::int64_t ms = 0;
    if (!integer(ms)) return false;
    out = detail::from_millis(ms);
    return true;
  }
  bool id(object_id& out) noexcept {
    std::string_view text;
    if (!string(text)) return false;
    const auto parsed = object_id::parse(text);
    if (!parsed) return false;
    out = *parsed;
    return true;
  }
  // `[]` or `["a","b"]`.
  bool strings(std::vector<std::string>& out) {
    if (!literal("[")) return false;
    if (literal("]")) return true;
    do {
      std::string_view item;
      if (!string(item)) return false;
      out.emplace_back(item);
    } while (literal(","));
    return literal("]");
  }
  // `[]` or `[["name","value"],...]`.
  bool headers(std::vector<header_entry>& out) {
    if (!literal("[")) return false;
    if (literal("]")) return true;
    do {
      std::string_view name, value;
      if (!literal("[") || !string(name) || !literal(",") || !string(value) || !literal("]")) {
        return false;
      }
      out.push_back(header_entry{std::string(name), std::string(value)});
    } while (literal(","));
    return literal("]");
  }
  bool at_end() const noexcept { return rest_.empty(); }

 private:
  // Whether any byte of `word` is '"', '\\', below 0x20 or 0x80 and above (exact as a yes/no:
  // the bit tricks find whether such a byte exists, not which one).
  static bool has_special_byte(std::uint64_t word) noexcept {
    constexpr std::uint64_t kOnes = 0x0101010101010101, kHigh = 0x8080808080808080;
    const auto has_zero = [](std::uint64_t v) {
      return ((v - kOnes) & ~v & kHigh) != 0;
    };
    const bool below_space = ((word - kOnes * 0x20) & ~word & kHigh) != 0;
    return (word & kHigh) != 0 || below_space || has_zero(word ^ (kOnes * '"')) ||
           has_zero(word ^ (kOnes * '\\'));
  }

  std::string_view rest_;
};

// The master key, and whether the signing secret is to be opened now or kept sealed for
// webhook_secret to open at its first use (decode_webhook_lazily).
struct secret_opening {
  const aes256gcm_key& key;
  const std::shared_ptr<const aes256gcm_key>* lazily = nullptr;
};

std::optional<webhook> read_canonical_webhook(std::string_view key, std::string_view value,
                                              const secret_opening& opening) {
  const aes256gcm_key& master_key = opening.key;
  const auto id = object_id::from_binary(key);
  if (!id) return std::nullopt;
  canonical_reader r(value);
  webhook w;
  w.id = *id;
  std::string_view name, url, sealed_b64, sealed_headers_b64;
  if (!r.literal("{\"v\":1,\"organization\":") || !r.id(w.organization) ||
      !r.literal(",\"project\":") || !r.id(w.project) || !r.literal(",\"name\":") ||
      !r.string(name) || !r.literal(",\"url\":") || !r.string(url) || !r.literal(",\"headers\":")) {
    return std::nullopt;
  }
  const bool sealed_headers = r.string(sealed_headers_b64);
  if ((!sealed_headers && !r.headers(w.headers)) || !r.literal(",\"active\":")) {
    return std::nullopt;
  }
  if (r.literal("true")) {
    w.active = true;
  } else if (r.literal("false")) {
    w.active = false;
  } else {
    return std::nullopt;
  }
  if (!r.literal(",\"events\":") || !r.strings(w.events) || !r.literal(",\"secret\":") ||
      !r.string(sealed_b64) || !r.literal(",\"createdAt\":") || !r.time(w.created_at) ||
      !r.literal(",\"updatedAt\":") || !r.time(w.updated_at)) {
    return std::nullopt;
  }
  if (std::string_view reason; r.literal(",\"disabledReason\":")) {
    if (!r.string(reason)) return std::nullopt;
    w.disabled_reason = std::string(reason);
  }
  if (timestamp t; r.literal(",\"disabledAt\":")) {
    if (!r.time(t)) return std::nullopt;
    w.disabled_at = t;
  }
  if (std::int64_t rate = 0; r.literal(",\"rateLimit\":")) {
    if (!r.integer(rate) || rate < 1 || rate > kMaxRateLimit) return std::nullopt;
    w.rate_limit = static_cast<std::uint32_t>(rate);
  }
  if (std::string_view scheme; r.literal(",\"signing\":")) {
    if (!r.string(scheme)) return std::nullopt;
    const auto parsed = parse_signing_scheme(scheme);
    if (!parsed) return std::nullopt;
    w.signing = *parsed;
  }
  std::string_view sealed_previous_b64;
  const bool has_previous = r.literal(",\"previousSecrets\":") && r.string(sealed_previous_b64);
  // A filter is arbitrary JSON: the general reader reads such records.
  if (!r.literal("}") || !r.at_end()) return std::nullopt;
  if (has_previous &&
      !open_previous_secrets(sealed_previous_b64, w.id, master_key, w.previous_secrets)) {
    return std::nullopt;
  }
  if (opening.lazily != nullptr) {
    w.secret = webhook_secret::sealed(w.id, sealed_b64, *opening.lazily);
  } else {
    // The sealed bytes only live until opened: decoded into this thread's buffer, not a fresh
    // string per webhook.
    thread_local std::string sealed;
    if (!base64_decode(sealed_b64, sealed)) return std::nullopt;
    std::optional<std::string> secret = master_key.open(sealed, w.id.binary());
    if (!secret) return std::nullopt;
    w.secret = std::move(*secret);
  }
  if (sealed_headers && !open_headers(sealed_headers_b64, w.id, master_key, w.headers)) {
    return std::nullopt;
  }
  w.name = std::string(name);
  w.url = std::string(url);
  return w;
}

result<webhook> decode_webhook_with(std::string_view key, std::string_view value,
                                    const secret_opening& opening) {
  const aes256gcm_key& master_key = opening.key;
  if (std::optional<webhook> w = read_canonical_webhook(key, value, opening)) {
    return std::move(*w);
  }
  parse_arena arena;  // outlives `rec`, whose tree it holds
  auto rec = open_record(key, value, arena.storage());
  if (!rec) return rec.error();
  record_reader r(rec->value.get_object());
  webhook w;
  w.id = rec->id;
  w.organization = r.id("organization");
  w.project = r.id("project");
  w.name = r.string("name");
  w.url = r.string("url");
  // Sealed (a string), or a plain array as written before header values were sealed; opened
  // after the secret, whose message is the one to give when a record does not open at all.
  const json::value* headers = r.field("headers", true);
  const json::string* sealed_headers = headers != nullptr ? headers->if_string() : nullptr;
  if (headers != nullptr && sealed_headers == nullptr && !read_header_pairs(*headers, w.headers)) {
    r.fail(
        "field \"headers\" is neither sealed header values nor a list of [name, value] pairs of "
        "strings");
  }
  w.active = r.boolean("active");
  w.events = r.strings("events");
  const std::string sealed_b64 = r.string("secret");
  if (r.ok()) {
    const std::optional<std::string> sealed = base64_decode(sealed_b64);
    if (!sealed) {
      r.fail("field \"secret\" is not base64");
    } else if (opening.lazily != nullptr) {
      w.secret = webhook_secret::sealed(w.id, sealed_b64, *opening.lazily);
    } else if (auto plain = master_key.open(*sealed, w.id.binary())) {
      w.secret = std::move(*plain);
    } else {
      r.fail(
          "the signing secret does not open with the master key (a different master key than "
          "the one this data was written with, or a damaged record)");
    }
  }
  if (sealed_headers != nullptr && r.ok() &&
      !open_headers(std::string_view(sealed_headers->data(), sealed_headers->size()), w.id,
                    master_key, w.headers)) {
    r.fail(
        "the header values do not open with the master key (a different master key than the one "
        "this data was written with, or a damaged record)");
  }
  w.created_at = r.time("createdAt");
  w.updated_at = r.time("updatedAt");
  w.disabled_reason = r.opt_string("disabledReason");
  w.disabled_at = r.opt_time("disabledAt");
  // Absent in records written before rate limits.
  if (const std::optional<std::int64_t> rate = r.opt_integer("rateLimit")) {
    if (*rate < 1 || *rate > kMaxRateLimit) {
      r.fail("field \"rateLimit\" is not between 1 and " + std::to_string(kMaxRateLimit));
    } else {
      w.rate_limit = static_cast<std::uint32_t>(*rate);
    }
  }
  if (const auto scheme = r.opt_string("signing")) {
    if (const auto parsed = parse_signing_scheme(*scheme)) {
      w.signing = *parsed;
    } else {
      r.fail("field \"signing\" is not v1 or v1a");
    }
  }
  if (const auto previous = r.opt_string("previousSecrets"); previous && r.ok()) {
    if (!open_previous_secrets(*previous, w.id, master_key, w.previous_secrets)) {
      r.fail(
          "the previous signing secrets do not open with the master key (a different master key "
          "than the one this data was written with, or a damaged record)");
    }
  }
  if (const json::value* filter = r.field("filter", false)) {
    std::vector<field_error> errors;
    w.filter = event_filter::parse(*filter, errors);
    if (!errors.empty()) {
      r.fail("field \"filter\" is not a valid filter: " + errors.front().field + " " +
             errors.front().message);
    }
  }
  return finish(r, std::move(w));
}

}  // namespace

result<webhook> decode_webhook(std::string_view key, std::string_view value,
                               const aes256gcm_key& master_key) {
  return decode_webhook_with(key, value, secret_opening{master_key});
}

result<webhook> decode_webhook_lazily(std::string_view key, std::string_view value,
                                      const std::shared_ptr<const aes256gcm_key>& master_key) {
  return decode_webhook_with(key, value, secret_opening{*master_key, &master_key});
}

// ---- index keys

std::string project_slug_key(const object_id& org, std::string_view slug) {
  std::string key;
  key.reserve(kProjectSlugPrefix.size() + object_id::kSize + slug.size());
  key.append(kProjectSlugPrefix).append(org.binary()).append(slug);
  return key;
}

std::string project_webhook_key(const object_id& project, const object_id& webhook) {
  std::string key;
  key.reserve(kProjectWebhookPrefix.size() + 2 * object_id::kSize);
  key.append(kProjectWebhookPrefix).append(project.binary()).append(webhook.binary());
  return key;
}

std::string token_digest_key(const sha256_digest& digest) {
  std::string key;
  key.reserve(kTokenDigestPrefix.size() + digest.size());
  key.append(kTokenDigestPrefix).append(digest_view(digest));
  return key;
}

std::string printable_key(std::string_view key) {
  if (key.size() == object_id::kSize) return hex_encode(key);
  const bool prefixed =
      key.size() > 2 && key[0] >= 'a' && key[0] <= 'z' && key[1] >= 'a' && key[1] <= 'z';
  if (!prefixed) return hex_encode(key);
  std::string out(key.substr(0, 2));
  out += ':';
  if (key.starts_with(kProjectSlugPrefix) && key.size() > 2 + object_id::kSize) {
    // The slug part was validated as [a-z0-9-] when written; print it as text.
    out += hex_encode(key.substr(2, object_id::kSize));
    out += ':';
    const std::string_view slug = key.substr(2 + object_id::kSize);
    const bool printable = std::all_of(slug.begin(), slug.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
    out += printable ? std::string(slug) : hex_encode(slug);
    return out;
  }
  out += hex_encode(key.substr(2));
  return out;
}

}  // namespace hookd
