#include "core/delivery/delivery.hpp"

#include "core/catalog/codec.hpp"  // kCodecVersion
#include "core/common/utf8.hpp"
#include "core/delivery/history_keys.hpp"
#include "core/durable/record_reader.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <utility>

namespace hookd {
namespace json = boost::json;

namespace {

using detail::begin_record;
using detail::decode_error;
using detail::finish;
using detail::open_record;
using detail::record_reader;
using detail::to_millis;

// An event's data was accepted by the HTTP layer with a bounded depth; parsing it back for a
// read uses a generous bound so that whatever was accepted can be shown.
constexpr std::size_t kMaxDataDepth = 256;

// A JSON string with Boost.JSON's escapes: the two-character forms for \b \t \n \f \r,
// \u00xx (lowercase) for the other control characters, \" and \\; every other byte as is.
// Two passes: the escapes' extra length is counted first, so that the text is written once into
// memory sized for it (an event's data is JSON, a quote every few bytes).
void append_quoted(std::string& out, std::string_view text) {
  // The bytes an escape adds to each byte: 0, 1 (\" \\ \b \t \n \f \r) or 5 (\u00xx); and the
  // letter of the two-character ones.
  static constexpr std::array<std::uint8_t, 256> kExtra = [] {
    std::array<std::uint8_t, 256> t{};
    for (std::size_t c = 0; c < 0x20; ++c) t[c] = 5;
    for (const char c : {'"', '\\', '\b', '\t', '\n', '\f', '\r'})
      t[static_cast<unsigned char>(c)] = 1;
    return t;
  }();
  static constexpr std::array<char, 256> kLetter = [] {
    std::array<char, 256> t{};
    t['"'] = '"';
    t['\\'] = '\\';
    t['\b'] = 'b';
    t['\t'] = 't';
    t['\n'] = 'n';
    t['\f'] = 'f';
    t['\r'] = 'r';
    return t;
  }();
  std::size_t extra = 0;
  for (const char c : text) extra += kExtra[static_cast<unsigned char>(c)];
  const std::size_t at = out.size();
  out.resize(at + text.size() + extra + 2);
  char* p = out.data() + at;
  *p++ = '"';
  if (extra == 0) {
    std::memcpy(p, text.data(), text.size());
    p += text.size();
  } else {
    for (const char ch : text) {
      const auto c = static_cast<unsigned char>(ch);
      switch (kExtra[c]) {
        case 0:
          *p++ = ch;
          break;
        case 1:
          *p++ = '\\';
          *p++ = kLetter[c];
          break;
        default: {
          static constexpr char kHex[] = "0123456789abcdef";
          *p++ = '\\';
          *p++ = 'u';
          *p++ = '0';
          *p++ = '0';
          *p++ = kHex[c >> 4];
          *p++ = kHex[c & 0xf];
        }
      }
    }
  }
  *p = '"';
}

// A stored record's text written directly, the bytes json::serialize gives for the same fields
// in the same order: {"v":1, then each field}. Records are written on the log's writer thread for
// every ingest and attempt; building a json::object first costs an allocation per field (the
// field's key and the value's string) and a second pass to serialize it.
class record_text {
 public:
  explicit record_text(std::size_t expected) {
    out_.reserve(expected);
    out_.append("{\"v\":");
    number(kCodecVersion);
  }

  void string(std::string_view name, std::string_view value) {
    key(name);
    quoted(value);
  }
  void id(std::string_view name, const object_id& value) {
    key(name);
    quoted(value);
  }
  void integer(std::string_view name, std::int64_t value) {
    key(name);
    number(value);
  }
  void boolean(std::string_view name, bool value) {
    key(name);
    out_.append(value ? "true" : "false");
  }
  // A field whose value the caller writes (raw() and quoted()); "v" is always the first.
  void key(std::string_view name) {
    out_.append(",\"");
    out_.append(name);  // field names are plain ASCII: nothing to escape
    out_.append("\":");
  }
  void raw(std::string_view text) { out_.append(text); }
  void quoted(const object_id& value) {
    out_.push_back('"');
    value.append_to(out_);
    out_.push_back('"');
  }
  void quoted(std::string_view text) { append_quoted(out_, text); }

  std::string finish() && {
    out_.push_back('}');
    return std::move(out_);
  }

 private:
  template <typename Integer>
  void number(Integer value) {
    std::array<char, 24> text{};
    const auto end = std::to_chars(text.data(), text.data() + text.size(), value).ptr;
    out_.append(text.data(), static_cast<std::size_t>(end - text.data()));
  }

  std::string out_;
};

json::string time_json(timestamp t) {
  std::string text;
  text.reserve(24);
  append_rfc3339(text, t);
  return json::string(text.data(), text.size());
}

}  // namespace

// ---- status

std::string_view to_string(delivery_status s) noexcept {
  switch (s) {
    case delivery_status::pending:
      return "pending";
    case delivery_status::succeeded:
      return "succeeded";
    case delivery_status::failed:
      return "failed";
  }
  return "pending";
}

std::optional<delivery_status> parse_delivery_status(std::string_view text) noexcept {
  if (text == "pending") return delivery_status::pending;
  if (text == "succeeded") return delivery_status::succeeded;
  if (text == "failed") return delivery_status::failed;
  return std::nullopt;
}

// ---- wire JSON

json::object to_json(const event& e) {
  json::object o;
  o["_id"] = e.id.to_string();
  o["organization"] = e.organization.to_string();
  o["project"] = e.project.to_string();
  o["type"] = e.type;
  json::parse_options options;
  options.max_depth = kMaxDataDepth;
  boost::system::error_code ec;
  json::value data = json::parse(e.data, ec, {}, options);
  o["data"] = ec ? json::value() : std::move(data);
  o["timestamp"] = time_json(e.time);
  if (e.subject) o["subject"] = *e.subject;
  if (e.ordering_key) o["orderingKey"] = *e.ordering_key;
  if (e.traceparent) o["traceparent"] = *e.traceparent;
  return o;
}

json::object to_json(const delivery& d) {
  json::object o;
  o["_id"] = d.id.to_string();
  o["event"] = d.event.to_string();
  o["webhook"] = d.webhook.to_string();
  o["type"] = d.type;
  o["status"] = to_string(d.status);
  o["attempts"] = d.attempts;
  if (d.status == delivery_status::pending && d.next_attempt_at) {
    o["nextAttemptAt"] = time_json(*d.next_attempt_at);
  } else {
    o["nextAttemptAt"] = nullptr;
  }
  o["createdAt"] = time_json(d.created_at);
  o["updatedAt"] = time_json(d.updated_at);
  if (d.reason) o["reason"] = *d.reason;
  if (d.ordering_key) o["orderingKey"] = *d.ordering_key;
  return o;
}

json::object to_json(const attempt& a) {
  json::object o;
  o["at"] = time_json(a.at);
  o["durationMs"] = a.duration.count();
  if (a.status_code) {
    o["statusCode"] = *a.status_code;
  } else {
    o["statusCode"] = nullptr;
  }
  o["response"] = a.response;
  if (a.error) {
    o["error"] = *a.error;
  } else {
    o["error"] = nullptr;
  }
  return o;
}

std::string delivery_body(const event& e) {
  std::string out;
  out.reserve(e.type.size() + e.data.size() + 64);
  out += "{\"type\":";
  append_quoted(out, e.type);
  out += ",\"timestamp\":\"";
  append_rfc3339(out, e.time);
  out += "\",\"data\":";
  out += e.data;
  out += '}';
  return out;
}

std::string response_excerpt(std::string_view body, std::size_t max_bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(std::min(body.size(), max_bytes));
  std::size_t i = 0;
  while (i < body.size()) {
    const std::size_t len = utf8_sequence_length(body, i);
    const std::string_view piece = len == 0 ? kReplacement : body.substr(i, len);
    if (out.size() + piece.size() > max_bytes) break;
    out += piece;
    i += len == 0 ? 1 : len;
  }
  return out;
}

// ---- storage: events

std::string encode(const event& e) {
  // Above the ids, the data and the strings: the names, the quotes, a timestamp, the list.
  record_text r(e.data.size() + e.type.size() + 160 + 56 * e.deliveries.size());
  r.id("organization", e.organization);
  r.id("project", e.project);
  r.string("type", e.type);
  r.string("data", e.data);  // as text: the record stays flat and the bytes stay exact
  r.integer("timestamp", to_millis(e.time));
  if (e.subject) r.string("subject", *e.subject);
  if (e.ordering_key) r.string("orderingKey", *e.ordering_key);
  if (e.traceparent) r.string("traceparent", *e.traceparent);
  if (!e.deliveries.empty()) {
    r.key("deliveries");
    r.raw("[");
    for (std::size_t i = 0; i < e.deliveries.size(); ++i) {
      r.raw(i == 0 ? "[" : ",[");
      r.quoted(e.deliveries[i].delivery);
      r.raw(",");
      r.quoted(e.deliveries[i].webhook);
      r.raw("]");
    }
    r.raw("]");
  }
  return std::move(r).finish();
}

result<event> decode_event(std::string_view key, std::string_view value) {
  auto rec = open_record(key, value);
  if (!rec) return rec.error();
  record_reader r(rec->value.get_object());
  event e;
  e.id = rec->id;
  e.organization = r.id("organization");
  e.project = r.id("project");
  e.type = r.string("type");
  e.data = r.string("data");
  e.time = r.time("timestamp");
  e.subject = r.opt_string("subject");
  e.ordering_key = r.opt_string("orderingKey");  // absent in records before ordering keys
  e.traceparent = r.opt_string("traceparent");
  if (const json::value* list = r.field("deliveries", false)) {
    const json::array* items = list->if_array();
    bool good = items != nullptr;
    for (std::size_t i = 0; good && i < items->size(); ++i) {
      const json::array* pair = (*items)[i].if_array();
      good =
          pair != nullptr && pair->size() == 2 && (*pair)[0].is_string() && (*pair)[1].is_string();
      if (!good) break;
      const auto d = object_id::parse((*pair)[0].get_string());
      const auto w = object_id::parse((*pair)[1].get_string());
      good = d && w;
      if (good) e.deliveries.push_back({*d, *w});
    }
    if (!good) r.fail("field \"deliveries\" is not a list of [delivery id, webhook id] pairs");
  }
  return finish(r, std::move(e));
}

// ---- storage: deliveries

std::string encode(const delivery& d) {
  record_text r(d.type.size() + (d.reason ? d.reason->size() : 0) +
                (d.ordering_key ? d.ordering_key->size() : 0) + 260);
  r.id("event", d.event);
  r.id("webhook", d.webhook);
  if (!d.project.is_nil()) r.id("project", d.project);
  r.string("type", d.type);
  r.string("status", to_string(d.status));
  r.integer("attempts", d.attempts);
  if (d.next_attempt_at) r.integer("nextAttemptAt", to_millis(*d.next_attempt_at));
  r.integer("createdAt", to_millis(d.created_at));
  r.integer("updatedAt", to_millis(d.updated_at));
  if (d.reason) r.string("reason", *d.reason);
  if (d.ordering_key) r.string("orderingKey", *d.ordering_key);
  if (d.schedule_start > 0) r.integer("scheduleStart", d.schedule_start);
  if (d.test) r.boolean("test", true);
  return std::move(r).finish();
}

std::uint32_t schedule_position(const delivery& d, std::uint32_t number) noexcept {
  return number > d.schedule_start ? number - d.schedule_start : 1;
}

namespace {

// The status spelled `text`, read from `field` of a record; on anything else the reader fails
// naming the field (and the returned value is not used).
delivery_status read_status(record_reader& r, std::string_view field, std::string_view text) {
  if (const auto s = parse_delivery_status(text)) return *s;
  r.fail("field \"" + std::string(field) + "\" is not pending, succeeded or failed");
  return delivery_status::pending;
}

}  // namespace

result<delivery> decode_delivery(std::string_view key, std::string_view value) {
  auto rec = open_record(key, value);
  if (!rec) return rec.error();
  record_reader r(rec->value.get_object());
  delivery d;
  d.id = rec->id;
  d.event = r.id("event");
  d.webhook = r.id("webhook");
  if (r.field("project", false) != nullptr) d.project = r.id("project");
  d.type = r.string("type");
  const std::string status = r.string("status");
  if (r.ok()) d.status = read_status(r, "status", status);
  d.attempts = r.count("attempts");
  d.next_attempt_at = r.opt_time("nextAttemptAt");
  d.created_at = r.time("createdAt");
  d.updated_at = r.time("updatedAt");
  d.reason = r.opt_string("reason");
  d.ordering_key = r.opt_string("orderingKey");  // absent in records before ordering keys
  if (r.field("scheduleStart", false) != nullptr) d.schedule_start = r.count("scheduleStart");
  if (r.field("test", false) != nullptr) d.test = r.boolean("test");
  if (r.ok() && d.status == delivery_status::pending && !d.next_attempt_at) {
    r.fail("a pending delivery has no \"nextAttemptAt\"");
  }
  return finish(r, std::move(d));
}

// ---- storage: attempts

namespace {

// The fields of an attempt's record, after its "v".
void attempt_fields(record_text& r, const attempt& a) {
  r.integer("at", to_millis(a.at));
  r.integer("durationMs", a.duration.count());
  if (a.status_code) r.integer("statusCode", *a.status_code);
  r.string("response", a.response);
  if (a.error) r.string("error", *a.error);
}

std::size_t attempt_size(const attempt& a) {
  return a.response.size() + (a.error ? a.error->size() : 0) + 96;
}

}  // namespace

std::string encode(const attempt& a) {
  record_text r(attempt_size(a));
  attempt_fields(r, a);
  return std::move(r).finish();
}

std::string encode(const attempt& a, const delivery& after) {
  record_text r(attempt_size(a) + (after.reason ? after.reason->size() : 0) + 96);
  attempt_fields(r, a);
  r.string("deliveryStatus", to_string(after.status));
  if (after.next_attempt_at) r.integer("nextAttemptAt", to_millis(*after.next_attempt_at));
  r.integer("updatedAt", to_millis(after.updated_at));
  if (after.reason) r.string("reason", *after.reason);
  return std::move(r).finish();
}

void apply_state(delivery& d, std::uint32_t number, const delivery_state& s) {
  d.attempts = number;
  d.status = s.status;
  d.next_attempt_at = s.next_attempt_at;
  d.updated_at = s.updated_at;
  d.reason = s.reason;
}

result<stored_attempt> decode_stored_attempt(std::string_view key, std::string_view value) {
  if (key.size() != object_id::kSize + 4) {
    return decode_error("the key is not a 12-byte delivery id and a 4-byte attempt number");
  }
  const object_id delivery_id = *object_id::from_binary(key.substr(0, object_id::kSize));
  auto parsed = open_record(value);
  if (!parsed) return parsed.error();
  record_reader r(parsed->get_object());
  attempt a;
  a.number = read_be32(key.substr(object_id::kSize));
  if (a.number == 0) r.fail("the attempt number in the key is 0");
  a.at = r.time("at");
  a.duration = std::chrono::milliseconds{r.opt_integer("durationMs", true).value_or(0)};
  if (const auto code = r.opt_integer("statusCode")) {
    if (*code < 0 || *code > 999) {
      r.fail("field \"statusCode\" is not an HTTP status");
    } else {
      a.status_code = static_cast<int>(*code);
    }
  }
  a.response = r.string("response");
  a.error = r.opt_string("error");
  std::optional<delivery_state> state;
  if (const auto status = r.opt_string("deliveryStatus")) {
    delivery_state st;
    st.status = read_status(r, "deliveryStatus", *status);
    st.next_attempt_at = r.opt_time("nextAttemptAt");
    st.updated_at = r.time("updatedAt");
    st.reason = r.opt_string("reason");
    if (r.ok() && (st.status == delivery_status::pending) != st.next_attempt_at.has_value()) {
      r.fail("field \"nextAttemptAt\" must be present exactly when the delivery is pending");
    }
    state = std::move(st);
  }
  if (!r.ok()) return decode_error(r.error());
  return stored_attempt{delivery_id, std::move(a), std::move(state)};
}

result<std::pair<object_id, attempt>> decode_attempt(std::string_view key, std::string_view value) {
  auto stored = decode_stored_attempt(key, value);
  if (!stored) return stored.error();
  return std::pair<object_id, attempt>{stored->delivery, std::move(stored->value)};
}

// ---- storage: idempotency

std::string encode(const idempotency_record& rec) {
  json::object o = begin_record();
  o["bodyHash"] = hex_encode(
      std::string_view(reinterpret_cast<const char*>(rec.body_hash.data()), rec.body_hash.size()));
  json::object response;
  response["_id"] = rec.event.to_string();
  response["type"] = rec.type;
  response["timestamp"] = to_millis(rec.time);
  response["deliveries"] = rec.deliveries;
  o["response"] = std::move(response);
  o["createdAt"] = to_millis(rec.created_at);
  return json::serialize(o);
}

result<idempotency_record> decode_idempotency(std::string_view value) {
  auto parsed = open_record(value);
  if (!parsed) return parsed.error();
  record_reader r(parsed->get_object());
  idempotency_record rec;
  const std::string hash = r.string("bodyHash");
  if (r.ok()) {
    bool good = hash.size() == 2 * rec.body_hash.size();
    for (std::size_t i = 0; good && i < rec.body_hash.size(); ++i) {
      const auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
      };
      const int hi = nibble(hash[2 * i]), lo = nibble(hash[2 * i + 1]);
      good = hi >= 0 && lo >= 0;
      if (good) rec.body_hash[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    if (!good) r.fail("field \"bodyHash\" is not 64 lowercase hex digits");
  }
  rec.created_at = r.time("createdAt");
  const json::value* response = r.field("response", true);
  if (response != nullptr) {
    if (const json::object* obj = response->if_object()) {
      record_reader rr(*obj);
      rec.event = rr.id("_id");
      rec.type = rr.string("type");
      rec.time = rr.time("timestamp");
      rec.deliveries = rr.count("deliveries");
      if (!rr.ok()) r.fail("field \"response\": " + rr.error());
    } else {
      r.fail("field \"response\" is not an object");
    }
  }
  return finish(r, std::move(rec));
}

// ---- keys

std::string webhook_delivery_key(const object_id& webhook, const object_id& delivery) {
  std::string key = webhook_delivery_prefix(webhook);
  key.append(delivery.binary());
  return key;
}

std::string webhook_delivery_prefix(const object_id& webhook) {
  std::string key;
  key.reserve(kWebhookDeliveryPrefix.size() + 2 * object_id::kSize);
  key.append(kWebhookDeliveryPrefix).append(webhook.binary());
  return key;
}

std::string legacy_attempt_key(const object_id& delivery, std::uint32_t number) {
  std::string key;
  key.reserve(object_id::kSize + 4);
  key.append(delivery.binary());
  append_be32(key, number);
  return key;
}

std::string idempotency_key(const object_id& token, std::string_view key) {
  std::string out;
  out.reserve(object_id::kSize + key.size());
  out.append(token.binary()).append(key);
  return out;
}

}  // namespace hookd
