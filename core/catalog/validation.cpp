#include "core/catalog/validation.hpp"

#include "core/common/json_body.hpp"

#include "core/common/ascii.hpp"
#include "core/delivery/address_guard.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/scheme.hpp>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <unordered_set>
#include <utility>

namespace hookd {

namespace {

namespace json = boost::json;

// ---------------------------------------------------------------- text helpers

std::string_view view(const json::string& s) noexcept {
  return {s.data(), s.size()};
}

// Decodes one code point starting at `i` and advances `i`. Inputs from Boost.JSON are valid
// UTF-8; a stray byte (possible through the public check_* functions) counts as one code point.
char32_t next_code_point(std::string_view s, std::size_t& i) noexcept {
  const auto lead = static_cast<unsigned char>(s[i++]);
  int extra = 0;
  char32_t cp = lead;
  if (lead >= 0xF0 && lead <= 0xF4) {
    extra = 3;
    cp = lead & 0x07u;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    extra = 2;
    cp = lead & 0x0Fu;
  } else if (lead >= 0xC2 && lead <= 0xDF) {
    extra = 1;
    cp = lead & 0x1Fu;
  } else {
    return lead;  // ASCII, or an invalid lead byte counted as itself
  }
  for (int k = 0; k < extra && i < s.size(); ++k) {
    const auto cont = static_cast<unsigned char>(s[i]);
    if ((cont & 0xC0u) != 0x80u) break;
    cp = (cp << 6) | (cont & 0x3Fu);
    ++i;
  }
  return cp;
}

// Lengths in the API (docs/openapi.yaml) are characters as a person counts them: Unicode code
// points.
std::size_t code_points(std::string_view s) noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size(); ++n) next_code_point(s, i);
  return n;
}

bool is_space(char32_t c) noexcept {
  switch (c) {
    case U' ':
    case U'\t':
    case U'\n':
    case U'\r':
    case U'\f':
    case U'\v':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
    case 0xFEFF:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200B;  // en quad .. zero width space
  }
}

bool is_blank(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    if (!is_space(next_code_point(s, i))) return false;
  }
  return true;
}

bool is_control(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7F;
}

// RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
// "_" / "`" / "|" / "~" / DIGIT / ALPHA
bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Header names the transport or the signature owns; a client value would either break framing
// or let a webhook forge what the receiver verifies.
constexpr std::array<std::string_view, 13> kReservedHeaders{"host",
                                                            "content-length",
                                                            "content-type",
                                                            "transfer-encoding",
                                                            "connection",
                                                            "upgrade",
                                                            "te",
                                                            "trailer",
                                                            "keep-alive",
                                                            "user-agent",
                                                            "webhook-id",
                                                            "webhook-timestamp",
                                                            "webhook-signature"};

bool is_event_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// ^[a-z0-9_-]+(\.[a-z0-9_-]+)*$
bool is_dotted_name(std::string_view s) noexcept {
  if (s.empty()) return false;
  bool segment_empty = true;
  for (char c : s) {
    if (c == '.') {
      if (segment_empty) return false;
      segment_empty = true;
    } else if (is_event_char(c)) {
      segment_empty = false;
    } else {
      return false;
    }
  }
  return !segment_empty;
}

std::optional<std::string> check_http_url(std::string_view text) {
  if (text.size() > limits::kUrlMax) {
    return "must be at most " + std::to_string(limits::kUrlMax) + " characters";
  }
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) {
    // absolute-URI has no fragment, so a URL that fails only because of one gets its own message.
    auto with_fragment = boost::urls::parse_uri(text);
    if (with_fragment && with_fragment->has_fragment()) return "must not contain a fragment";
    return "must be an absolute http or https URL";
  }
  const boost::urls::url_view& u = *parsed;
  if (u.scheme_id() != boost::urls::scheme::http && u.scheme_id() != boost::urls::scheme::https) {
    return "must use the http or https scheme";
  }
  if (!u.has_authority() || u.encoded_host().empty() ||
      u.host_type() == boost::urls::host_type::ipvfuture) {
    return "must have a host";
  }
  if (u.has_userinfo()) return "must not contain user info";
  // Boost.URL 1.81 reads "http://1.2.3.4.5/" as host 1.2.3.4 with the path ".5/": an IPv4
  // address followed by more of the host. After a host comes a port, a path or nothing; a path
  // that does not begin with '/' means the host was not what the text says.
  if (const auto path = u.encoded_path(); !path.empty() && path.front() != '/') {
    return "must have a valid host, followed by ':port' or a path beginning with '/', not '" +
           std::string(path.substr(0, 32)) + "'";
  }
  if (u.has_port()) {
    const auto port = u.port();
    // An empty port ("http://host:/") means the scheme's default (RFC 3986 §3.2.3).
    if (!port.empty()) {
      unsigned long value = 0;
      for (char c : port) {
        value = value * 10 + static_cast<unsigned long>(c - '0');
        if (value > 65535) break;
      }
      if (value == 0 || value > 65535) return "must have a port between 1 and 65535";
    }
  }
  return std::nullopt;
}

std::optional<std::string> check_length(std::string_view s, std::size_t min, std::size_t max) {
  const std::size_t n = code_points(s);
  if (n < min) return "must be at least " + std::to_string(min) + " characters";
  if (n > max) return "must be at most " + std::to_string(max) + " characters";
  return std::nullopt;
}

std::optional<std::string> check_slug(std::string_view s) {
  const bool charset_ok = std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
  if (!charset_ok || s.size() < limits::kNameMin || s.size() > limits::kNameMax) {
    return "must be 2 to 100 characters of a-z, 0-9 and '-'";
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- body walking

// Gathers every field error of one body, so a client fixes them all in one round trip.
class collector {
 public:
  void add(std::string field, std::string message) {
    errors_.push_back(field_error{std::move(field), std::move(message)});
  }
  void add_if(std::string_view field, std::optional<std::string> message) {
    if (message) add(std::string(field), std::move(*message));
  }
  bool ok() const noexcept { return errors_.empty(); }
  problem take() { return validation_problem(std::move(errors_)); }
  std::vector<field_error>& list() noexcept { return errors_; }

 private:
  std::vector<field_error> errors_;
};

problem not_an_object() {
  return not_a_json_object();
}

void reject_unknown(const json::object& obj, std::initializer_list<std::string_view> known,
                    collector& errors) {
  reject_unknown_fields(obj, known, errors.list());
}

// The member `key`, or nullptr when absent (reporting "is required" when it must be present).
const json::value* member(const json::object& obj, std::string_view key, bool required,
                          collector& errors) {
  const json::value* v = obj.if_contains(json::string_view(key.data(), key.size()));
  if (v == nullptr && required) errors.add(std::string(key), "is required");
  return v;
}

// A string member; null and other types are type errors (null is never "absent").
const json::string* string_member(const json::object& obj, std::string_view key, bool required,
                                  collector& errors) {
  const json::value* v = member(obj, key, required, errors);
  if (v == nullptr) return nullptr;
  if (!v->is_string()) {
    errors.add(std::string(key), "must be a string");
    return nullptr;
  }
  return &v->get_string();
}

const json::array* array_member(const json::object& obj, std::string_view key, bool required,
                                collector& errors) {
  const json::value* v = member(obj, key, required, errors);
  if (v == nullptr) return nullptr;
  if (!v->is_array()) {
    errors.add(std::string(key), "must be an array");
    return nullptr;
  }
  return &v->get_array();
}

std::optional<std::string> checked_name(const json::object& obj, bool required, collector& errors) {
  const json::string* s = string_member(obj, "name", required, errors);
  if (s == nullptr) return std::nullopt;
  if (auto message = check_name(view(*s))) {
    errors.add("name", std::move(*message));
    return std::nullopt;
  }
  return std::string(view(*s));
}

// `mask_keeps`: whether a value equal to kMaskedHeaderValue is allowed (a PATCH: it keeps the
// stored value, see catalog::update_webhook) or refused (a create has nothing to keep).
std::optional<std::vector<header_entry>> checked_headers(const json::object& obj, bool mask_keeps,
                                                         collector& errors) {
  const json::value* v = member(obj, "headers", false, errors);
  if (v == nullptr) return std::nullopt;
  if (!v->is_object()) {
    errors.add("headers", "must be an object of header names to string values");
    return std::nullopt;
  }
  const json::object& headers = v->get_object();
  bool ok = true;
  if (headers.size() > limits::kHeadersMax) {
    errors.add("headers", "must have at most " + std::to_string(limits::kHeadersMax) + " entries");
    ok = false;
  }
  std::vector<header_entry> out;
  out.reserve(headers.size());
  std::unordered_set<std::string> seen;
  for (const auto& h : headers) {
    const std::string_view name(h.key().data(), h.key().size());
    const std::string path = "headers." + std::string(name);
    if (auto message = check_header_name(name)) {
      errors.add(path, std::move(*message));
      ok = false;
    } else if (!seen.insert(ascii_lowercase(name)).second) {
      errors.add(path, "duplicates another header name (names are case-insensitive)");
      ok = false;
    }
    if (!h.value().is_string()) {
      errors.add(path, "must be a string");
      ok = false;
      continue;
    }
    const std::string_view value = view(h.value().get_string());
    if (auto message = check_header_value(value)) {
      errors.add(path, std::move(*message));
      ok = false;
      continue;
    }
    if (!mask_keeps && value == kMaskedHeaderValue) {
      errors.add(path, "is the mask \"" + std::string(kMaskedHeaderValue) +
                           "\" that read-only tokens see; a new webhook has no stored value to "
                           "keep, send the real value");
      ok = false;
      continue;
    }
    out.push_back(header_entry{std::string(name), std::string(value)});
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<bool> checked_active(const json::object& obj, collector& errors) {
  const json::value* v = member(obj, "active", false, errors);
  if (v == nullptr) return std::nullopt;
  if (!v->is_bool()) {
    errors.add("active", "must be a boolean");
    return std::nullopt;
  }
  return v->get_bool();
}

// rateLimit: an integer from 1 to kMaxRateLimit, or null (no limit). Engaged when the field was
// sent and is valid.
std::optional<std::optional<std::uint32_t>> checked_rate_limit(const json::object& obj,
                                                               collector& errors) {
  const json::value* v = member(obj, "rateLimit", false, errors);
  if (v == nullptr) return std::nullopt;
  // Built in place: returning a disengaged optional<uint32_t> temporary copies its uninitialized
  // value bytes, which GCC 12 -O2 reports as maybe-uninitialized.
  if (v->is_null()) return std::optional<std::optional<std::uint32_t>>(std::in_place);
  const std::string message =
      "must be an integer from 1 to " + std::to_string(kMaxRateLimit) + " (per second) or null";
  std::int64_t rate = 0;
  if (v->is_int64()) {
    rate = v->get_int64();
  } else if (v->is_uint64()) {
    rate = kMaxRateLimit + 1;  // beyond int64: out of range
  } else {
    errors.add("rateLimit", message);
    return std::nullopt;
  }
  if (rate < 1 || rate > kMaxRateLimit) {
    errors.add("rateLimit", message);
    return std::nullopt;
  }
  return std::optional<std::uint32_t>(static_cast<std::uint32_t>(rate));
}

std::optional<std::vector<std::string>> checked_events(const json::object& obj, bool required,
                                                       collector& errors) {
  const json::array* arr = array_member(obj, "events", required, errors);
  if (arr == nullptr) return std::nullopt;
  bool ok = true;
  if (arr->size() < limits::kEventsMin) {
    errors.add("events", "must contain at least 1 event type");
    ok = false;
  } else if (arr->size() > limits::kEventsMax) {
    errors.add("events",
               "must contain at most " + std::to_string(limits::kEventsMax) + " event types");
    ok = false;
  }
  std::vector<std::string> out;
  out.reserve(arr->size());
  std::unordered_set<std::string_view> seen;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const std::string path = "events[" + std::to_string(i) + "]";
    const json::value& e = (*arr)[i];
    if (!e.is_string()) {
      errors.add(path, "must be a string");
      ok = false;
      continue;
    }
    const std::string_view pattern = view(e.get_string());
    if (auto message = check_event_pattern(pattern)) {
      errors.add(path, std::move(*message));
      ok = false;
    } else if (!seen.insert(pattern).second) {
      errors.add(path, "duplicates an earlier entry");
      ok = false;
    } else {
      out.emplace_back(pattern);
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::string> checked_url(const json::object& obj, bool required, collector& errors) {
  const json::string* s = string_member(obj, "url", required, errors);
  if (s == nullptr) return std::nullopt;
  if (auto message = check_webhook_url(view(*s))) {
    errors.add("url", std::move(*message));
    return std::nullopt;
  }
  return std::string(view(*s));
}

std::optional<signing_scheme> checked_signing(const json::object& obj, collector& errors) {
  const json::string* s = string_member(obj, "signing", false, errors);
  if (s == nullptr) return std::nullopt;
  const auto scheme = parse_signing_scheme(view(*s));
  if (!scheme) errors.add("signing", "must be \"v1\" (HMAC-SHA256) or \"v1a\" (Ed25519)");
  return scheme;
}

// Absent: nullopt. null or {}: an engaged null (no filter). Otherwise the parsed filter, or
// nullopt with the errors added.
std::optional<std::shared_ptr<const event_filter>> checked_filter(const json::object& obj,
                                                                  collector& errors) {
  const json::value* v = member(obj, "filter", false, errors);
  if (v == nullptr) return std::nullopt;
  if (v->is_null()) return std::shared_ptr<const event_filter>();
  std::vector<field_error> found;
  auto filter = event_filter::parse(*v, found);
  if (!found.empty()) {
    for (field_error& e : found) errors.add(std::move(e.field), std::move(e.message));
    return std::nullopt;
  }
  return filter;
}

std::string known_scopes() {
  std::string out;
  for (std::string_view name : scope_set(0xFF).names()) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- single rules

std::optional<std::string> check_name(std::string_view s) {
  if (auto message = check_length(s, limits::kNameMin, limits::kNameMax)) return message;
  if (is_blank(s)) return "must not be blank";
  // Names are shown in lists and logs; a control character there is never intended.
  if (std::any_of(s.begin(), s.end(), is_control)) return "must not contain control characters";
  return std::nullopt;
}

std::optional<std::string> check_webhook_url(std::string_view s) {
  if (auto message = check_http_url(s)) return message;
  // A host whose last label is a number is an IPv4 address to the delivery client, as to a
  // browser (address_guard.hpp): "example.1" or "1.2.3.4.5" is no address, and no name either,
  // so every delivery to it would fail.
  const auto u = boost::urls::parse_absolute_uri(s);
  if (u && u->host_type() == boost::urls::host_type::name) {
    const std::string host = ascii_lowercase(u->host_name());
    if (!parse_ip_literal(host) && host_ends_in_a_number(host)) {
      return "must have a valid host: '" + host + "' ends in a number but is not an IPv4 address";
    }
  }
  return std::nullopt;
}

std::optional<std::string> check_header_name(std::string_view s) {
  if (s.empty()) return "header name must not be empty";
  if (s.size() > limits::kHeaderNameMax) {
    return "header name must be at most " + std::to_string(limits::kHeaderNameMax) + " characters";
  }
  if (!std::all_of(s.begin(), s.end(), is_tchar)) {
    return "header name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)";
  }
  if (std::any_of(kReservedHeaders.begin(), kReservedHeaders.end(),
                  [&](std::string_view r) { return ascii_iequals(s, r); }) ||
      (s.size() >= 6 && ascii_iequals(s.substr(0, 6), "proxy-"))) {
    return "header name is reserved for the transport or the signature";
  }
  return std::nullopt;
}

std::optional<std::string> check_header_value(std::string_view s) {
  if (code_points(s) > limits::kHeaderValueMax) {
    return "must be at most " + std::to_string(limits::kHeaderValueMax) + " characters";
  }
  if (s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
    return "must not contain CR, LF or NUL";
  }
  // RFC 9110 §5.5 allows only visible characters, space and tab in a field value.
  if (std::any_of(s.begin(), s.end(), [](char c) { return c != '\t' && is_control(c); })) {
    return "must not contain control characters";
  }
  return std::nullopt;
}

std::optional<std::string> check_event_pattern(std::string_view s) {
  if (s.size() > limits::kEventMax) {
    return "must be at most " + std::to_string(limits::kEventMax) + " characters";
  }
  if (s == "*") return std::nullopt;
  std::string_view base = s;
  if (base.size() > 2 && base.substr(base.size() - 2) == ".*") base.remove_suffix(2);
  if (!is_dotted_name(base)) {
    return "must be a dotted event type of a-z, 0-9, '_' and '-' (e.g. \"invoice.paid\"), "
           "optionally ending in \".*\", or \"*\"";
  }
  return std::nullopt;
}

std::optional<std::string> check_event_type(std::string_view s) {
  if (s.size() > limits::kEventMax) {
    return "must be at most " + std::to_string(limits::kEventMax) + " characters";
  }
  if (!is_dotted_name(s)) {
    return "must be a dotted event type of a-z, 0-9, '_' and '-' (e.g. \"invoice.paid\"), "
           "without wildcards";
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- bodies

result<organization_input> parse_organization_input(const json::value& body) {
  if (!body.is_object()) return not_an_object();
  const json::object& obj = body.get_object();
  collector errors;
  reject_unknown(obj, {"name"}, errors);
  auto name = checked_name(obj, true, errors);
  if (!errors.ok()) return errors.take();
  return organization_input{std::move(*name)};
}

result<project_input> parse_project_input(const json::value& body) {
  if (!body.is_object()) return not_an_object();
  const json::object& obj = body.get_object();
  collector errors;
  reject_unknown(obj, {"name", "slug", "description", "status", "appIconUrl"}, errors);
  project_input in;

  if (auto name = checked_name(obj, true, errors)) in.name = std::move(*name);

  if (const json::string* slug = string_member(obj, "slug", true, errors)) {
    if (auto message = check_slug(view(*slug))) {
      errors.add("slug", std::move(*message));
    } else {
      in.slug = std::string(view(*slug));
    }
  }

  if (const json::string* description = string_member(obj, "description", false, errors)) {
    if (auto message = check_length(view(*description), 0, limits::kDescriptionMax)) {
      errors.add("description", std::move(*message));
    } else {
      in.description = std::string(view(*description));
    }
  }

  if (const json::string* status = string_member(obj, "status", false, errors)) {
    if (auto parsed = parse_project_status(view(*status))) {
      in.status = *parsed;
    } else {
      errors.add("status", "must be one of draft, active, archived");
    }
  }

  if (const json::string* icon = string_member(obj, "appIconUrl", false, errors)) {
    if (auto message = check_http_url(view(*icon))) {
      errors.add("appIconUrl", std::move(*message));
    } else {
      in.app_icon_url = std::string(view(*icon));
    }
  }

  if (!errors.ok()) return errors.take();
  return in;
}

result<token_input> parse_token_input(const json::value& body) {
  if (!body.is_object()) return not_an_object();
  const json::object& obj = body.get_object();
  collector errors;
  reject_unknown(obj, {"name", "organizations", "scopes"}, errors);
  token_input in;

  if (auto name = checked_name(obj, true, errors)) in.name = std::move(*name);

  // Optional: an admin token needs no organization. Repeats are dropped, order kept.
  if (const json::array* orgs = array_member(obj, "organizations", false, errors)) {
    for (std::size_t i = 0; i < orgs->size(); ++i) {
      const std::string path = "organizations[" + std::to_string(i) + "]";
      const json::value& v = (*orgs)[i];
      if (!v.is_string()) {
        errors.add(path, "must be a string");
        continue;
      }
      const auto id = object_id::parse(view(v.get_string()));
      if (!id) {
        errors.add(path, "must be an id of 24 hex digits");
        continue;
      }
      if (std::find(in.organizations.begin(), in.organizations.end(), *id) ==
          in.organizations.end()) {
        in.organizations.push_back(*id);
      }
    }
  }

  if (const json::array* scopes = array_member(obj, "scopes", true, errors)) {
    if (scopes->empty()) errors.add("scopes", "must contain at least one scope");
    for (std::size_t i = 0; i < scopes->size(); ++i) {
      const std::string path = "scopes[" + std::to_string(i) + "]";
      const json::value& v = (*scopes)[i];
      if (!v.is_string()) {
        errors.add(path, "must be a string");
        continue;
      }
      if (auto s = parse_scope(view(v.get_string()))) {
        in.scopes.add(*s);
      } else {
        errors.add(path, "must be one of " + known_scopes());
      }
    }
  }

  if (!errors.ok()) return errors.take();
  return in;
}

result<webhook_input> parse_webhook_input(const json::value& body) {
  if (!body.is_object()) return not_an_object();
  const json::object& obj = body.get_object();
  collector errors;
  reject_unknown(obj,
                 {"name", "url", "headers", "active", "events", "rateLimit", "signing", "filter"},
                 errors);
  webhook_input in;
  if (auto name = checked_name(obj, true, errors)) in.name = std::move(*name);
  if (auto url = checked_url(obj, true, errors)) in.url = std::move(*url);
  if (auto headers = checked_headers(obj, false, errors)) in.headers = std::move(*headers);
  if (auto active = checked_active(obj, errors)) in.active = *active;
  if (auto events = checked_events(obj, true, errors)) in.events = std::move(*events);
  if (auto rate = checked_rate_limit(obj, errors)) in.rate_limit = *rate;
  if (auto signing = checked_signing(obj, errors)) in.signing = *signing;
  if (auto filter = checked_filter(obj, errors)) in.filter = std::move(*filter);
  if (!errors.ok()) return errors.take();
  return in;
}

result<webhook_patch> parse_webhook_patch(const json::value& body) {
  if (!body.is_object()) return not_an_object();
  const json::object& obj = body.get_object();
  collector errors;
  reject_unknown(obj,
                 {"name", "url", "headers", "active", "events", "rateLimit", "signing", "filter"},
                 errors);
  webhook_patch patch;
  patch.name = checked_name(obj, false, errors);
  patch.url = checked_url(obj, false, errors);
  patch.headers = checked_headers(obj, true, errors);
  patch.active = checked_active(obj, errors);
  patch.events = checked_events(obj, false, errors);
  patch.rate_limit = checked_rate_limit(obj, errors);
  patch.signing = checked_signing(obj, errors);
  patch.filter = checked_filter(obj, errors);
  if (!errors.ok()) return errors.take();
  return patch;
}

result<secret_rotation_input> parse_secret_rotation(const json::value& body) {
  if (!body.is_object()) return not_an_object();
  const json::object& obj = body.get_object();
  collector errors;
  reject_unknown(obj, {"secret"}, errors);
  secret_rotation_input in;
  if (const json::string* secret = string_member(obj, "secret", false, errors)) {
    in.secret = std::string(view(*secret));
  }
  if (!errors.ok()) return errors.take();
  return in;
}

}  // namespace hookd
