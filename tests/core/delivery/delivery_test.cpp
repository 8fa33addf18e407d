#include "core/delivery/delivery.hpp"

#include "core/catalog/codec.hpp"
#include "support/test_util.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace hookd {
namespace {

using testing::at;
using testing::id_of;
using testing::with_null_field;

using ::testing::HasSubstr;
using ::testing::Not;

event sample_event() {
  event e;
  e.id = id_of("65a0f1c2aabbccddee000001");
  e.organization = id_of("65a0f1c2aabbccddee0000aa");
  e.project = id_of("65a0f1c2aabbccddee0000bb");
  e.type = "order.created";
  e.data = R"({"id":42,"items":[1,2],"note":"caf\u00e9 \"q\""})";
  e.time = at(1'700'000'000'123);
  return e;
}

delivery sample_delivery() {
  delivery d;
  d.id = id_of("65a0f1c2aabbccddee000002");
  d.event = id_of("65a0f1c2aabbccddee000001");
  d.webhook = id_of("65a0f1c2aabbccddee0000cc");
  d.type = "order.created";
  d.status = delivery_status::pending;
  d.attempts = 2;
  d.next_attempt_at = at(1'700'000'300'000);
  d.created_at = at(1'700'000'000'123);
  d.updated_at = at(1'700'000'100'000);
  return d;
}

TEST(DeliveryStatus, NamesRoundTrip) {
  for (auto s : {delivery_status::pending, delivery_status::succeeded, delivery_status::failed}) {
    EXPECT_EQ(parse_delivery_status(to_string(s)), s);
  }
  EXPECT_EQ(parse_delivery_status("Pending"), std::nullopt);
  EXPECT_EQ(parse_delivery_status(""), std::nullopt);
}

TEST(DeliveryJson, EventCarriesDataAsJson) {
  const boost::json::object o = to_json(sample_event());
  EXPECT_EQ(o.at("_id").as_string(), "65a0f1c2aabbccddee000001");
  EXPECT_EQ(o.at("organization").as_string(), "65a0f1c2aabbccddee0000aa");
  EXPECT_EQ(o.at("project").as_string(), "65a0f1c2aabbccddee0000bb");
  EXPECT_EQ(o.at("type").as_string(), "order.created");
  EXPECT_EQ(o.at("timestamp").as_string(), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(o.at("data").at("id").as_int64(), 42);
  EXPECT_EQ(o.at("data").at("note").as_string(), "caf\xC3\xA9 \"q\"");
}

TEST(DeliveryJson, PendingDeliveryShowsNextAttempt) {
  const boost::json::object o = to_json(sample_delivery());
  EXPECT_EQ(o.at("_id").as_string(), "65a0f1c2aabbccddee000002");
  EXPECT_EQ(o.at("event").as_string(), "65a0f1c2aabbccddee000001");
  EXPECT_EQ(o.at("webhook").as_string(), "65a0f1c2aabbccddee0000cc");
  EXPECT_EQ(o.at("type").as_string(), "order.created");
  EXPECT_EQ(o.at("status").as_string(), "pending");
  EXPECT_EQ(o.at("attempts").to_number<int>(), 2);
  EXPECT_EQ(o.at("nextAttemptAt").as_string(), "2023-11-14T22:18:20.000Z");
  EXPECT_EQ(o.at("createdAt").as_string(), "2023-11-14T22:13:20.123Z");
  EXPECT_FALSE(o.contains("reason"));
}

TEST(DeliveryJson, FailedDeliveryHasReasonAndNullNextAttempt) {
  delivery d = sample_delivery();
  d.status = delivery_status::failed;
  d.reason = std::string(kReasonGone);
  // Even a stray next time is not shown once the delivery is no longer pending.
  const boost::json::object o = to_json(d);
  EXPECT_TRUE(o.at("nextAttemptAt").is_null());
  EXPECT_EQ(o.at("reason").as_string(), "410 Gone");
}

TEST(DeliveryJson, AttemptWithoutResponseHasNullStatus) {
  attempt a;
  a.number = 1;
  a.at = at(1'700'000'000'000);
  a.duration = std::chrono::milliseconds{15000};
  a.error = "timeout after 15s";
  const boost::json::object o = to_json(a);
  EXPECT_EQ(o.at("at").as_string(), "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(o.at("durationMs").to_number<int>(), 15000);
  EXPECT_TRUE(o.at("statusCode").is_null());
  EXPECT_EQ(o.at("response").as_string(), "");
  EXPECT_EQ(o.at("error").as_string(), "timeout after 15s");
  EXPECT_FALSE(o.contains("number"));

  a.status_code = 500;
  a.error.reset();
  a.response = "oops";
  const boost::json::object o2 = to_json(a);
  EXPECT_EQ(o2.at("statusCode").to_number<int>(), 500);
  EXPECT_TRUE(o2.at("error").is_null());
  EXPECT_EQ(o2.at("response").as_string(), "oops");
}

TEST(DeliveryBody, IsTypeTimestampAndVerbatimData) {
  const event e = sample_event();
  const std::string body = delivery_body(e);
  EXPECT_EQ(body,
            std::string(R"({"type":"order.created","timestamp":"2023-11-14T22:13:20.123Z",)") +
                R"("data":)" + e.data + "}");
  const boost::json::value parsed = boost::json::parse(body);
  EXPECT_EQ(parsed.at("data").at("items").as_array().size(), 2u);
}

TEST(ResponseExcerpt, KeepsShortBodiesAndCutsLongOnes) {
  EXPECT_EQ(response_excerpt("ok"), "ok");
  const std::string big(10000, 'x');
  EXPECT_EQ(response_excerpt(big), std::string(kMaxResponseExcerptBytes, 'x'));
}

TEST(ResponseExcerpt, NeverSplitsAUtf8Sequence) {
  // 4095 ASCII bytes, then a 2-byte "é": the whole character does not fit in 4096 bytes.
  const std::string body = std::string(4095, 'a') + "\xC3\xA9" + "tail";
  const std::string cut = response_excerpt(body);
  EXPECT_EQ(cut, std::string(4095, 'a'));
  // With one byte less before it, it fits.
  const std::string body2 = std::string(4094, 'a') + "\xC3\xA9" + "tail";
  EXPECT_EQ(response_excerpt(body2), std::string(4094, 'a') + "\xC3\xA9");
  // A 4-byte emoji straddling the limit is dropped whole.
  const std::string body3 = std::string(4093, 'a') + "\xF0\x9F\x98\x80";
  EXPECT_EQ(response_excerpt(body3), std::string(4093, 'a'));
}

TEST(ResponseExcerpt, ReplacesInvalidBytesSoTheJsonIsValid) {
  const std::string body = std::string("a\xFF") + "b\xC3" + "c\xED\xA0\x80";  // bad, cut, surrogate
  const std::string cut = response_excerpt(body);
  EXPECT_EQ(cut,
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD"
            "c\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  attempt a;
  a.response = cut;
  const std::string text = boost::json::serialize(to_json(a));
  boost::system::error_code ec;
  (void)boost::json::parse(text, ec);
  EXPECT_FALSE(ec);
  // A binary body never yields more than the limit, even though replacements are longer.
  EXPECT_LE(response_excerpt(std::string(5000, '\x80')).size(), kMaxResponseExcerptBytes);
}

TEST(DeliveryCodec, EventRoundTripsWithExactData) {
  const event e = sample_event();
  const std::string value = encode(e);
  EXPECT_THAT(value, Not(HasSubstr("\n")));
  EXPECT_EQ(boost::json::parse(value).at("v").as_int64(), 1);
  auto back = decode_event(e.id.binary(), value);
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->id, e.id);
  EXPECT_EQ(back->organization, e.organization);
  EXPECT_EQ(back->project, e.project);
  EXPECT_EQ(back->type, e.type);
  EXPECT_EQ(back->data, e.data);
  EXPECT_EQ(back->time, e.time);
}

TEST(DeliveryCodec, DeliveryRoundTripsPendingAndFailed) {
  delivery d = sample_delivery();
  auto back = decode_delivery(d.id.binary(), encode(d));
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->id, d.id);
  EXPECT_EQ(back->event, d.event);
  EXPECT_EQ(back->webhook, d.webhook);
  EXPECT_EQ(back->type, d.type);
  EXPECT_EQ(back->status, delivery_status::pending);
  EXPECT_EQ(back->attempts, 2u);
  EXPECT_EQ(back->next_attempt_at, d.next_attempt_at);
  EXPECT_EQ(back->created_at, d.created_at);
  EXPECT_EQ(back->updated_at, d.updated_at);
  EXPECT_EQ(back->reason, std::nullopt);

  d.status = delivery_status::failed;
  d.next_attempt_at.reset();
  d.reason = std::string(kReasonExhausted);
  back = decode_delivery(d.id.binary(), encode(d));
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->status, delivery_status::failed);
  EXPECT_EQ(back->next_attempt_at, std::nullopt);
  EXPECT_EQ(back->reason, "retries exhausted");
}

// Records are written as text directly; they must be the bytes Boost.JSON writes for the same
// fields, so that what earlier versions wrote and what this one writes read back alike, escapes
// included: every byte value goes through a string field.
TEST(DeliveryCodec, RecordsAreTheBytesBoostJsonWritesForTheSameFields) {
  namespace json = boost::json;
  std::string every_byte;
  for (int c = 0; c < 256; ++c) every_byte.push_back(static_cast<char>(c));
  const auto ms = [](timestamp t) {
    return t.time_since_epoch().count();
  };

  event e = sample_event();
  e.type = "a\"b\\c\x01" + every_byte;
  e.subject = "sub/\n";
  e.ordering_key = "k\t";
  e.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  e.deliveries = {{id_of("65a0f1c2aabbccddee000002"), id_of("65a0f1c2aabbccddee0000cc")},
                  {id_of("65a0f1c2aabbccddee000003"), id_of("65a0f1c2aabbccddee0000cd")}};
  json::object eo{{"v", 1},
                  {"organization", e.organization.to_string()},
                  {"project", e.project.to_string()},
                  {"type", e.type},
                  {"data", e.data},
                  {"timestamp", ms(e.time)},
                  {"subject", *e.subject},
                  {"orderingKey", *e.ordering_key},
                  {"traceparent", *e.traceparent}};
  json::array list;
  for (const fanout_entry& f : e.deliveries) {
    list.push_back(json::array{f.delivery.to_string(), f.webhook.to_string()});
  }
  eo["deliveries"] = std::move(list);
  EXPECT_EQ(encode(e), json::serialize(eo));
  e.subject.reset();
  e.ordering_key.reset();
  e.traceparent.reset();
  e.deliveries.clear();
  for (const char* name : {"subject", "orderingKey", "traceparent", "deliveries"}) eo.erase(name);
  EXPECT_EQ(encode(e), json::serialize(eo));

  delivery d = sample_delivery();
  d.project = id_of("65a0f1c2aabbccddee0000bb");
  d.type = every_byte;
  d.status = delivery_status::failed;
  d.reason = "gone \"410\"\r\f\b";
  d.ordering_key = "customer-7";
  d.schedule_start = 3;
  d.test = true;
  const json::object dobj{{"v", 1},
                          {"event", d.event.to_string()},
                          {"webhook", d.webhook.to_string()},
                          {"project", d.project.to_string()},
                          {"type", d.type},
                          {"status", "failed"},
                          {"attempts", d.attempts},
                          {"nextAttemptAt", ms(*d.next_attempt_at)},
                          {"createdAt", ms(d.created_at)},
                          {"updatedAt", ms(d.updated_at)},
                          {"reason", *d.reason},
                          {"orderingKey", *d.ordering_key},
                          {"scheduleStart", d.schedule_start},
                          {"test", true}};
  EXPECT_EQ(encode(d), json::serialize(dobj));
  const delivery plain = sample_delivery();  // no project, reason, key, schedule start or test
  EXPECT_EQ(encode(plain),
            json::serialize(json::object{{"v", 1},
                                         {"event", plain.event.to_string()},
                                         {"webhook", plain.webhook.to_string()},
                                         {"type", plain.type},
                                         {"status", "pending"},
                                         {"attempts", plain.attempts},
                                         {"nextAttemptAt", ms(*plain.next_attempt_at)},
                                         {"createdAt", ms(plain.created_at)},
                                         {"updatedAt", ms(plain.updated_at)}}));

  attempt a;
  a.number = 4;
  a.at = at(-1);  // before the epoch: a negative number
  a.duration = std::chrono::milliseconds{250};
  a.status_code = 503;
  a.response = every_byte;
  a.error = "reset\x7f";
  json::object ao{{"v", 1},
                  {"at", -1},
                  {"durationMs", 250},
                  {"statusCode", 503},
                  {"response", a.response},
                  {"error", *a.error}};
  EXPECT_EQ(encode(a), json::serialize(ao));
  ao["deliveryStatus"] = "failed";
  ao["nextAttemptAt"] = ms(*d.next_attempt_at);
  ao["updatedAt"] = ms(d.updated_at);
  ao["reason"] = *d.reason;
  EXPECT_EQ(encode(a, d), json::serialize(ao));
  a.status_code.reset();
  a.error.reset();
  EXPECT_EQ(encode(a), json::serialize(json::object{
                           {"v", 1}, {"at", -1}, {"durationMs", 250}, {"response", a.response}}));

  // And what is written reads back: every control character survives its escape.
  std::string controls;
  for (int c = 1; c < 0x20; ++c) controls.push_back(static_cast<char>(c));
  a.response = controls + "\"\\/";
  const auto back = decode_attempt(legacy_attempt_key(plain.id, 4), encode(a));
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->second.response, a.response);
}

TEST(DeliveryCodec, RejectsDamagedDeliveries) {
  const delivery d = sample_delivery();
  EXPECT_FALSE(decode_delivery("short", encode(d)));
  EXPECT_FALSE(decode_delivery(d.id.binary(), "not json"));
  auto bad_status = decode_delivery(
      d.id.binary(),
      R"({"v":1,"event":"65a0f1c2aabbccddee000001","webhook":"65a0f1c2aabbccddee0000cc",)"
      R"("type":"a","status":"lost","attempts":0,"nextAttemptAt":1,"createdAt":1,"updatedAt":1})");
  ASSERT_FALSE(bad_status);
  EXPECT_THAT(bad_status.error().detail, HasSubstr("status"));
  auto no_next = decode_delivery(
      d.id.binary(),
      R"({"v":1,"event":"65a0f1c2aabbccddee000001","webhook":"65a0f1c2aabbccddee0000cc",)"
      R"("type":"a","status":"pending","attempts":0,"createdAt":1,"updatedAt":1})");
  ASSERT_FALSE(no_next);
  EXPECT_THAT(no_next.error().detail, HasSubstr("nextAttemptAt"));
  auto newer = decode_delivery(d.id.binary(), R"({"v":2})");
  ASSERT_FALSE(newer);
  EXPECT_THAT(newer.error().detail, HasSubstr("version 2"));
}

TEST(DeliveryCodec, AttemptKeyOrdersByNumberAndRoundTrips) {
  const object_id d = id_of("65a0f1c2aabbccddee000002");
  EXPECT_EQ(legacy_attempt_key(d, 1).size(), 16u);
  EXPECT_LT(legacy_attempt_key(d, 9), legacy_attempt_key(d, 10));     // big-endian: numeric order
  EXPECT_LT(legacy_attempt_key(d, 255), legacy_attempt_key(d, 256));  // across a byte boundary too
  EXPECT_TRUE(legacy_attempt_key(d, 3).starts_with(d.binary()));

  attempt a;
  a.number = 3;
  a.at = at(1'700'000'000'000);
  a.duration = std::chrono::milliseconds{123};
  a.status_code = 503;
  a.response = "busy";
  auto back = decode_attempt(legacy_attempt_key(d, 3), encode(a));
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->first, d);
  EXPECT_EQ(back->second.number, 3u);
  EXPECT_EQ(back->second.at, a.at);
  EXPECT_EQ(back->second.duration, a.duration);
  EXPECT_EQ(back->second.status_code, 503);
  EXPECT_EQ(back->second.response, "busy");
  EXPECT_EQ(back->second.error, std::nullopt);

  a.status_code.reset();
  a.error = "connection refused";
  back = decode_attempt(legacy_attempt_key(d, 3), encode(a));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->second.status_code, std::nullopt);
  EXPECT_EQ(back->second.error, "connection refused");

  EXPECT_FALSE(decode_attempt(d.binary(), encode(a)));  // no number in the key
}

// An attempt carries the delivery's state after it; a state that is not one of the three is
// refused naming its field, like the delivery record's own status.
TEST(DeliveryCodec, AttemptWithAnUnknownDeliveryStatusIsRefused) {
  const delivery d = sample_delivery();
  attempt a;
  a.number = 1;
  a.at = at(1'700'000'000'000);
  a.response = "ok";
  const std::string good = encode(a, d);
  ASSERT_TRUE(decode_stored_attempt(legacy_attempt_key(d.id, 1), good));
  std::string status = R"("deliveryStatus":")";
  status += to_string(d.status);
  status += '"';
  const auto where = good.find(status);
  ASSERT_NE(where, std::string::npos) << good;
  std::string bad = good;
  bad.replace(where, status.size(), R"("deliveryStatus":"lost")");
  const auto refused = decode_stored_attempt(legacy_attempt_key(d.id, 1), bad);
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().detail, HasSubstr("field \"deliveryStatus\" is not pending"));
}

TEST(DeliveryCodec, IdempotencyRecordRoundTrips) {
  idempotency_record r;
  r.body_hash = sha256("body");
  r.event = id_of("65a0f1c2aabbccddee000001");
  r.type = "order.created";
  r.time = at(1'700'000'000'123);
  r.deliveries = 3;
  r.created_at = at(1'700'000'000'124);
  const std::string value = encode(r);
  const boost::json::value parsed = boost::json::parse(value);
  EXPECT_EQ(parsed.at("response").at("_id").as_string(), "65a0f1c2aabbccddee000001");
  auto back = decode_idempotency(value);
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->body_hash, r.body_hash);
  EXPECT_EQ(back->event, r.event);
  EXPECT_EQ(back->type, r.type);
  EXPECT_EQ(back->time, r.time);
  EXPECT_EQ(back->deliveries, 3u);
  EXPECT_EQ(back->created_at, r.created_at);
  EXPECT_FALSE(decode_idempotency(R"({"v":1,"bodyHash":"zz","response":{},"createdAt":1})"));
}

// Encoders leave an absent optional field out (the wire JSON shows null; storage never holds
// one); a null in storage is damage, refused with the field's name, optional fields included.
TEST(DeliveryCodec, NullFieldsAreRefusedNamingTheField) {
  delivery d = sample_delivery();
  d.status = delivery_status::failed;
  d.next_attempt_at.reset();
  const std::string failed_without_reason = encode(d);
  EXPECT_THAT(failed_without_reason, Not(HasSubstr("null")));
  for (const char* optional : {"nextAttemptAt", "reason"}) {
    auto back = decode_delivery(d.id.binary(), with_null_field(failed_without_reason, optional));
    ASSERT_FALSE(back) << optional;
    EXPECT_EQ(back.error().kind, error_kind::internal);
    EXPECT_THAT(back.error().detail, HasSubstr("field \"" + std::string(optional) + "\" is null"));
  }
  auto null_type = decode_delivery(d.id.binary(), with_null_field(failed_without_reason, "type"));
  ASSERT_FALSE(null_type);
  EXPECT_THAT(null_type.error().detail, HasSubstr("field \"type\" is null"));

  attempt a;
  a.number = 1;
  a.at = at(1'700'000'000'000);
  const std::string bare = encode(a);  // no status code, no error
  EXPECT_THAT(bare, Not(HasSubstr("null")));
  const object_id id = id_of("65a0f1c2aabbccddee000002");
  ASSERT_TRUE(decode_attempt(legacy_attempt_key(id, 1), bare));
  for (const char* optional : {"statusCode", "error"}) {
    auto back = decode_attempt(legacy_attempt_key(id, 1), with_null_field(bare, optional));
    ASSERT_FALSE(back) << optional;
    EXPECT_THAT(back.error().detail, HasSubstr("field \"" + std::string(optional) + "\" is null"));
  }

  const event e = sample_event();
  auto null_data = decode_event(e.id.binary(), with_null_field(encode(e), "data"));
  ASSERT_FALSE(null_data);
  EXPECT_THAT(null_data.error().detail, HasSubstr("field \"data\" is null"));

  idempotency_record r;
  r.body_hash = sha256("body");
  r.event = e.id;
  r.type = e.type;
  boost::json::value rec = boost::json::parse(encode(r));
  rec.at("response").as_object()["_id"] = nullptr;
  auto null_nested = decode_idempotency(boost::json::serialize(rec));
  ASSERT_FALSE(null_nested);
  EXPECT_THAT(null_nested.error().detail, HasSubstr("field \"response\": field \"_id\" is null"));
}

TEST(DeliveryCodec, IndexAndIdempotencyKeys) {
  const object_id w = id_of("65a0f1c2aabbccddee0000cc");
  const object_id d = id_of("65a0f1c2aabbccddee000002");
  const std::string key = webhook_delivery_key(w, d);
  EXPECT_EQ(key.size(), 26u);
  EXPECT_TRUE(key.starts_with("dw"));
  EXPECT_TRUE(key.starts_with(webhook_delivery_prefix(w)));
  EXPECT_EQ(key.substr(14), d.binary());
  const object_id t = id_of("65a0f1c2aabbccddee0000dd");
  EXPECT_EQ(idempotency_key(t, "k-1"), std::string(t.binary()) + "k-1");
}

TEST(DeliveryCodec, OrderingKeysRoundTripAndRecordsWithoutOneStillDecode) {
  event e = sample_event();
  delivery d = sample_delivery();
  // Records written before ordering keys have none, and decode as before.
  EXPECT_THAT(encode(e), Not(HasSubstr("orderingKey")));
  EXPECT_THAT(encode(d), Not(HasSubstr("orderingKey")));
  EXPECT_EQ(decode_event(e.id.binary(), encode(e))->ordering_key, std::nullopt);
  EXPECT_EQ(decode_delivery(d.id.binary(), encode(d))->ordering_key, std::nullopt);
  EXPECT_FALSE(to_json(d).contains("orderingKey"));

  e.ordering_key = "customer-42";
  d.ordering_key = "customer-42";
  auto event_back = decode_event(e.id.binary(), encode(e));
  ASSERT_TRUE(event_back) << event_back.error().detail;
  EXPECT_EQ(event_back->ordering_key, "customer-42");
  auto delivery_back = decode_delivery(d.id.binary(), encode(d));
  ASSERT_TRUE(delivery_back) << delivery_back.error().detail;
  EXPECT_EQ(delivery_back->ordering_key, "customer-42");
  EXPECT_EQ(to_json(e).at("orderingKey").as_string(), "customer-42");
  EXPECT_EQ(to_json(d).at("orderingKey").as_string(), "customer-42");
  // Never part of what the receiver gets.
  EXPECT_THAT(delivery_body(e), Not(HasSubstr("customer-42")));
}

}  // namespace
}  // namespace hookd
