#include "core/delivery/delivery.hpp"

#include "core/common/utf8.hpp"
#include "core/delivery/history_keys.hpp"
#include "core/durable/record_reader.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
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
  out += json::serialize(json::string(e.type.data(), e.type.size()));
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
  json::object o = begin_record();
  o["organization"] = e.organization.to_string();
  o["project"] = e.project.to_string();
  o["type"] = e.type;
  o["data"] = e.data;  // as text: the record stays flat and the bytes stay exact
  o["timestamp"] = to_millis(e.time);
  if (e.subject) o["subject"] = *e.subject;
  if (e.ordering_key) o["orderingKey"] = *e.ordering_key;
  if (e.traceparent) o["traceparent"] = *e.traceparent;
  if (!e.deliveries.empty()) {
    json::array list;
    list.reserve(e.deliveries.size());
    for (const fanout_entry& f : e.deliveries) {
      list.push_back(json::array{f.delivery.to_string(), f.webhook.to_string()});
    }
    o["deliveries"] = std::move(list);
  }
  return json::serialize(o);
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
  json::object o = begin_record();
  o["event"] = d.event.to_string();
  o["webhook"] = d.webhook.to_string();
  if (!d.project.is_nil()) o["project"] = d.project.to_string();
  o["type"] = d.type;
  o["status"] = to_string(d.status);
  o["attempts"] = d.attempts;
  if (d.next_attempt_at) o["nextAttemptAt"] = to_millis(*d.next_attempt_at);
  o["createdAt"] = to_millis(d.created_at);
  o["updatedAt"] = to_millis(d.updated_at);
  if (d.reason) o["reason"] = *d.reason;
  if (d.ordering_key) o["orderingKey"] = *d.ordering_key;
  if (d.schedule_start > 0) o["scheduleStart"] = d.schedule_start;
  if (d.test) o["test"] = true;
  return json::serialize(o);
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

json::object attempt_object(const attempt& a) {
  json::object o = begin_record();
  o["at"] = to_millis(a.at);
  o["durationMs"] = a.duration.count();
  if (a.status_code) o["statusCode"] = *a.status_code;
  o["response"] = a.response;
  if (a.error) o["error"] = *a.error;
  return o;
}

}  // namespace

std::string encode(const attempt& a) {
  return json::serialize(attempt_object(a));
}

std::string encode(const attempt& a, const delivery& after) {
  json::object o = attempt_object(a);
  o["deliveryStatus"] = to_string(after.status);
  if (after.next_attempt_at) o["nextAttemptAt"] = to_millis(*after.next_attempt_at);
  o["updatedAt"] = to_millis(after.updated_at);
  if (after.reason) o["reason"] = *after.reason;
  return json::serialize(o);
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
