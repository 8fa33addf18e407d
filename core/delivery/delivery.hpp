#pragma once
// The durable model of event delivery (docs/openapi.yaml): events, deliveries and attempts, their
// JSON shapes on the wire, and how they look in storage. Pure functions and plain values: any
// thread.
//
// - An event is what a client POSTed: its type and its `data`, kept as the compact serialized
//   JSON text it arrived as (never re-parsed on the hot path; see delivery_body).
// - A delivery is one (event, webhook) pair. Its id is the Standard Webhooks `webhook-id`, the
//   same on every retry, so a receiver can deduplicate.
// - An attempt is one HTTP POST of a delivery and what came back.
//
// Storage (values are compact JSON objects with "v":1, timestamps as integer unix milliseconds,
// ids as 24 hex digits, like core/catalog/codec.hpp):
//   queue        delivery id (12 bytes)                        -> encode(delivery), while pending
//   history      see history_keys.hpp: events, attempts, finished deliveries by time bucket
//   idempotency  token id (12 bytes) + idempotency key (text)  -> encode(idempotency_record)
// Before the history layout (read once, to migrate; see delivery_log load):
//   events       id (12 bytes)                                 -> encode(event)
//   deliveries   id (12 bytes)                                 -> encode(delivery)
//   attempts     delivery id + attempt number (4 bytes, BE)    -> encode(attempt, delivery)
//                (the delivery's state after the attempt included; see delivery_state)
//   index        "dw" + webhook id + delivery id               -> ""  (written by still earlier
//                versions)
// The big-endian attempt number makes a prefix scan by delivery id return attempts in order.

#include "core/common/clock.hpp"
#include "core/common/crypto.hpp"
#include "core/common/error.hpp"
#include "core/common/object_id.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hookd {

enum class delivery_status : std::uint8_t { pending, succeeded, failed };
std::string_view to_string(delivery_status s) noexcept;
std::optional<delivery_status> parse_delivery_status(std::string_view text) noexcept;

// One delivery an event fanned out to, as the event's record lists it.
struct fanout_entry {
  object_id delivery;
  object_id webhook;
  friend bool operator==(const fanout_entry&, const fanout_entry&) = default;
};

struct event {
  object_id id;
  object_id organization;
  object_id project;
  std::string type;
  std::string data;                      // compact serialized JSON, exactly as ingested
  timestamp time{};                      // wire name "timestamp"
  std::vector<fanout_entry> deliveries;  // what ingest created for it, in webhook order
  // Whom the event is about (a user id, say), so that all of that subject's events can be erased
  // at once (docs/delivery.md, "Erasing a subject"). Not sent to receivers.
  std::optional<std::string> subject;
  // Events of one ordering key are delivered to each webhook one at a time, in ingest order
  // (docs/delivery.md, "Ordering"). Not sent to receivers.
  std::optional<std::string> ordering_key;
  // The W3C trace context its deliveries continue (docs/delivery.md, "Trace context"): the
  // ingest request's valid `traceparent`, or one hookd started for the event. Each attempt sends
  // a child of it (trace_context.hpp). Events stored before this field have none.
  std::optional<std::string> traceparent;
};

// A subject is 1 to 128 bytes of text without control characters.
inline constexpr std::size_t kMaxSubjectBytes = 128;
// An ordering key likewise.
inline constexpr std::size_t kMaxOrderingKeyBytes = 128;

// Why a delivery failed (the `reason` field). Fixed strings so that clients can match on them.
inline constexpr std::string_view kReasonGone = "410 Gone";
inline constexpr std::string_view kReasonExhausted = "retries exhausted";
inline constexpr std::string_view kReasonWebhookDeleted = "webhook deleted";

struct delivery {
  object_id id;  // the Standard Webhooks webhook-id
  object_id event;
  object_id webhook;
  object_id project;  // the event's: where its history is kept
  std::string type;   // the event's type, copied so that lists need no event lookup
  delivery_status status = delivery_status::pending;
  std::uint32_t attempts = 0;                // attempts made so far
  std::optional<timestamp> next_attempt_at;  // engaged exactly while pending
  timestamp created_at{};
  timestamp updated_at{};
  std::optional<std::string> reason;  // set when failed
  // The event's, copied so that the scheduler keeps the order after a restart from the queue
  // table alone (docs/delivery.md, "Ordering").
  std::optional<std::string> ordering_key;
  // The attempts made before the current retry schedule began: 0, or the attempt count at the
  // last redelivery (docs/delivery.md, "Redelivery and recovery"). The schedule's step after
  // attempt n is the one after attempt n - schedule_start.
  std::uint32_t schedule_start = 0;
  // A test ping (docs/delivery.md, "Test pings"): attempted even while its webhook is inactive.
  bool test = false;
};

// The position in the retry schedule of attempt `number` of `d` (1 for the first attempt after
// the delivery was created or redelivered): what decide() takes as the attempt number.
std::uint32_t schedule_position(const delivery& d, std::uint32_t number) noexcept;

// The response body kept per attempt: at most this many bytes (docs/openapi.yaml: the first 4 KiB).
inline constexpr std::size_t kMaxResponseExcerptBytes = 4096;

struct attempt {
  std::uint32_t number = 0;  // 1-based; part of the storage key, not of the wire JSON
  timestamp at{};            // when the request started
  std::chrono::milliseconds duration{0};
  std::optional<int> status_code;    // nullopt when no response arrived
  std::string response;              // response_excerpt() of the body
  std::optional<std::string> error;  // transport error text (timeout, refused, ...), else null
};

// A delivery's state right after one of its attempts. Recording an attempt writes ONE record:
// the attempt with this state in it (encode(attempt, delivery)); the delivery's own record keeps
// what ingest (or cancel_webhook) wrote, and load() applies the state of every attempt numbered
// past the delivery record's `attempts`, in order. Attempts written before this field existed
// carry no state; their delivery record was rewritten with each of them.
struct delivery_state {
  delivery_status status = delivery_status::pending;
  std::optional<timestamp> next_attempt_at;  // engaged exactly while pending
  timestamp updated_at{};
  std::optional<std::string> reason;
};

// Sets d's status, nextAttemptAt, updatedAt and reason from `s`, and its attempts to `number`.
void apply_state(delivery& d, std::uint32_t number, const delivery_state& s);

// An attempt as stored, with the delivery's state after it when the record has one.
struct stored_attempt {
  object_id delivery;
  attempt value;
  std::optional<delivery_state> state;
};

// What an idempotency key remembers: the request's fingerprint and the first answer.
struct idempotency_record {
  sha256_digest body_hash{};
  object_id event;  // the first answer: {_id, type, timestamp, deliveries}
  std::string type;
  timestamp time{};
  std::uint32_t deliveries = 0;
  timestamp created_at{};  // when the key was first used; it expires a TTL later
};

// ---- wire JSON

// {_id, organization, project, type, data, timestamp, subject?, orderingKey?, traceparent?}.
// `data` is parsed
// from the stored text; text that does not parse (never written by ingest) becomes null.
boost::json::object to_json(const event& e);
// {_id, event, webhook, type, status, attempts, nextAttemptAt (null unless pending), createdAt,
// updatedAt, reason (only when set), orderingKey (only when set)}.
boost::json::object to_json(const delivery& d);
// {at, durationMs, statusCode (null when no response), response, error (null when none)}.
boost::json::object to_json(const attempt& a);

// The body POSTed to the receiver: {"type":...,"timestamp":...,"data":<event.data verbatim>}.
// Built textually, so `data` goes out byte for byte as it came in.
std::string delivery_body(const event& e);

// The first kMaxResponseExcerptBytes bytes of a response body, cut on a UTF-8 boundary, with
// every byte that is not part of valid UTF-8 replaced by U+FFFD (so the excerpt is always valid
// JSON text); the result never exceeds kMaxResponseExcerptBytes bytes.
std::string response_excerpt(std::string_view body,
                             std::size_t max_bytes = kMaxResponseExcerptBytes);

// ---- storage

// With "deliveries": [[delivery id, webhook id], ...] when the event fanned out.
std::string encode(const event& e);
// With "project" when the delivery knows it (records before the history layout do not).
std::string encode(const delivery& d);
std::string encode(const attempt& a);
// The attempt and the state of `after` (the delivery once this attempt is counted), in one record:
// the fields of encode(a) plus "deliveryStatus", "nextAttemptAt" (while pending), "updatedAt"
// and "reason" (when set). Same "v": readers ignore fields they do not know.
std::string encode(const attempt& a, const delivery& after);
std::string encode(const idempotency_record& r);

// `key` is the record's id (12 bytes; the end of a history key) or, for attempts, the delivery id
// and the attempt number (16 bytes; likewise). Errors are error_kind::internal, saying what is
// wrong with the value (the caller names the table and key; see printable_key in codec.hpp).
result<event> decode_event(std::string_view key, std::string_view value);
result<delivery> decode_delivery(std::string_view key, std::string_view value);
// Returns the delivery id from the key as well as the attempt.
result<std::pair<object_id, attempt>> decode_attempt(std::string_view key, std::string_view value);
// The same with the delivery's state after the attempt, when the record has one.
result<stored_attempt> decode_stored_attempt(std::string_view key, std::string_view value);
result<idempotency_record> decode_idempotency(std::string_view value);

std::string idempotency_key(const object_id& token, std::string_view key);

// Keys of the layout before history (the migration reads them).
inline constexpr std::string_view kWebhookDeliveryPrefix = "dw";
std::string webhook_delivery_key(const object_id& webhook, const object_id& delivery);
std::string webhook_delivery_prefix(const object_id& webhook);
std::string legacy_attempt_key(const object_id& delivery, std::uint32_t number);

}  // namespace hookd
