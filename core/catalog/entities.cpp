#include "core/catalog/entities.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <algorithm>
#include <memory>

namespace hookd {

namespace {

namespace json = boost::json;

json::string id_json(const object_id& id) {
  constexpr char kHex[] = "0123456789abcdef";
  char buf[2 * object_id::kSize];  // JSON output is hot: no temporary std::string
  char* p = buf;
  for (std::uint8_t byte : id.bytes()) {
    *p++ = kHex[byte >> 4];
    *p++ = kHex[byte & 0x0F];
  }
  return json::string(buf, sizeof buf);
}

json::string time_json(timestamp t) {
  std::string text;
  text.reserve(24);
  append_rfc3339(text, t);
  return json::string(text.data(), text.size());
}

json::string text_json(std::string_view s) {
  return json::string(s.data(), s.size());
}

}  // namespace

std::string_view to_string(project_status s) noexcept {
  switch (s) {
    case project_status::draft:
      return "draft";
    case project_status::active:
      return "active";
    case project_status::archived:
      return "archived";
  }
  return "draft";
}

std::optional<project_status> parse_project_status(std::string_view text) noexcept {
  if (text == "draft") return project_status::draft;
  if (text == "active") return project_status::active;
  if (text == "archived") return project_status::archived;
  return std::nullopt;
}

std::string_view to_string(signing_scheme s) noexcept {
  return s == signing_scheme::v1a ? "v1a" : "v1";
}

std::optional<signing_scheme> parse_signing_scheme(std::string_view text) noexcept {
  if (text == "v1") return signing_scheme::v1;
  if (text == "v1a") return signing_scheme::v1a;
  return std::nullopt;
}

webhook_secret webhook_secret::sealed(const object_id& id, std::string_view sealed_base64,
                                      std::shared_ptr<const aes256gcm_key> key) {
  webhook_secret s;
  s.bytes_.reserve(object_id::kSize + sealed_base64.size());
  s.bytes_.append(id.binary()).append(sealed_base64);
  s.key_ = std::move(key);
  return s;
}

webhook_secret& webhook_secret::operator=(const webhook_secret& other) {
  if (this != &other) {
    bytes_ = other.bytes_;
    key_ = other.key_;
    delete opened_.exchange(nullptr, std::memory_order_acq_rel);
  }
  return *this;
}

webhook_secret& webhook_secret::operator=(webhook_secret&& other) noexcept {
  if (this != &other) {
    bytes_ = std::move(other.bytes_);
    key_ = std::move(other.key_);
    delete opened_.exchange(other.opened_.exchange(nullptr, std::memory_order_acq_rel),
                            std::memory_order_acq_rel);
  }
  return *this;
}

webhook_secret& webhook_secret::operator=(std::string plain) noexcept {
  bytes_ = std::move(plain);
  key_.reset();
  delete opened_.exchange(nullptr, std::memory_order_acq_rel);
  return *this;
}

const std::string& webhook_secret::value() const {
  if (key_ == nullptr) return bytes_;
  if (const std::string* plain = opened_.load(std::memory_order_acquire)) return *plain;
  const std::string_view all(bytes_);
  std::string sealed;
  std::optional<std::string> plain;
  if (base64_decode(all.substr(object_id::kSize), sealed)) {
    plain = key_->open(sealed, all.substr(0, object_id::kSize));
  }
  auto fresh = std::make_unique<const std::string>(std::move(plain).value_or(std::string{}));
  const std::string* expected = nullptr;
  if (opened_.compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
    return *fresh.release();
  }
  return *expected;
}

bool api_token::can_access(const object_id& org) const noexcept {
  return scopes.has(scope::admin) ||
         std::find(organizations.begin(), organizations.end(), org) != organizations.end();
}

json::object to_json(const organization& o) {
  json::object j;
  j.reserve(4);
  j.emplace("_id", id_json(o.id));
  j.emplace("name", text_json(o.name));
  j.emplace("createdAt", time_json(o.created_at));
  j.emplace("updatedAt", time_json(o.updated_at));
  return j;
}

json::object to_json(const project& p) {
  json::object j;
  j.reserve(9);
  j.emplace("_id", id_json(p.id));
  j.emplace("name", text_json(p.name));
  j.emplace("slug", text_json(p.slug));
  if (p.description) j.emplace("description", text_json(*p.description));
  j.emplace("organization", id_json(p.organization));
  j.emplace("status", text_json(to_string(p.status)));
  if (p.app_icon_url) j.emplace("appIconUrl", text_json(*p.app_icon_url));
  j.emplace("createdAt", time_json(p.created_at));
  j.emplace("updatedAt", time_json(p.updated_at));
  return j;
}

json::object to_json(const api_token& t) {
  json::object j;
  j.reserve(5);
  j.emplace("_id", id_json(t.id));
  j.emplace("name", text_json(t.name));
  json::array orgs;
  orgs.reserve(t.organizations.size());
  for (const object_id& org : t.organizations) orgs.emplace_back(id_json(org));
  j.emplace("organizations", std::move(orgs));
  json::array scopes;
  for (std::string_view name : t.scopes.names()) scopes.emplace_back(text_json(name));
  j.emplace("scopes", std::move(scopes));
  j.emplace("createdAt", time_json(t.created_at));
  return j;
}

json::object to_json(const webhook& w, header_values values) {
  json::object j;
  j.reserve(14);
  j.emplace("_id", id_json(w.id));
  j.emplace("organization", id_json(w.organization));
  j.emplace("project", id_json(w.project));
  j.emplace("name", text_json(w.name));
  j.emplace("url", text_json(w.url));
  json::object headers;
  headers.reserve(w.headers.size());
  for (const header_entry& h : w.headers) {
    headers.insert_or_assign(
        json::string_view(h.name.data(), h.name.size()),
        text_json(values == header_values::masked ? kMaskedHeaderValue : h.value));
  }
  j.emplace("headers", std::move(headers));
  j.emplace("active", w.active);
  json::array events;
  events.reserve(w.events.size());
  for (const std::string& e : w.events) events.emplace_back(text_json(e));
  j.emplace("events", std::move(events));
  j.emplace("createdAt", time_json(w.created_at));
  j.emplace("updatedAt", time_json(w.updated_at));
  if (w.disabled_reason) j.emplace("disabledReason", text_json(*w.disabled_reason));
  if (w.disabled_at) j.emplace("disabledAt", time_json(*w.disabled_at));
  if (w.rate_limit) j.emplace("rateLimit", static_cast<std::int64_t>(*w.rate_limit));
  j.emplace("signing", text_json(to_string(w.signing)));
  j.emplace("filter", w.filter ? json::value(w.filter->to_json()) : json::value(nullptr));
  return j;
}

const std::string& to_json_text(const webhook& w, header_values values) {
  if (values == header_values::masked && !w.headers.empty()) {
    return w.masked_json_cache.get(
        [&w] { return json::serialize(to_json(w, header_values::masked)); });
  }
  return w.json_cache.get([&w] { return json::serialize(to_json(w)); });
}

std::string generate_webhook_secret() {
  // 24 bytes (192 bits) is within the 24..64 byte range Standard Webhooks recommends.
  return "whsec_" + base64_encode(random_bytes(24));
}

std::string generate_webhook_secret(signing_scheme scheme) {
  if (scheme == signing_scheme::v1) return generate_webhook_secret();
  return "whsk_" + base64_encode(ed25519_key::generate().seed());
}

std::string generate_api_token() {
  return "hkd_" + base64url_encode(random_bytes(32));
}

}  // namespace hookd
