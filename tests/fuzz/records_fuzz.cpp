// Every decoder of a stored record, given what a damaged or hostile database could hold: the
// catalog's organizations, projects, tokens and webhooks (sealed with a fixed master key), the
// delivery log's events, deliveries, attempts (with and without the delivery's state) and
// idempotency records, a webhook's failure streak, the history's bucket plan, and the key helpers
// that print and bucket a storage key.
//
// Input: byte 0 picks the decoder (modulo their number), byte 1 is the key's length, then the
// key, then the value (tests/fuzz/seeds.cpp writes the seeds in this form). A record that decodes
// must encode and decode again to the same value (compared as its API JSON); the process aborts
// otherwise.

#include "core/catalog/codec.hpp"
#include "core/delivery/delivery.hpp"
#include "core/delivery/endpoint_health.hpp"
#include "core/delivery/history_keys.hpp"
#include "fuzz/fuzz_input.hpp"

#include <boost/json/serialize.hpp>

#include <cstdio>
#include <cstdlib>

namespace {

using namespace hookd;

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "records_fuzz: %s\n", what);
  std::abort();
}

const aes256gcm_key& master_key() {
  static const aes256gcm_key key = *aes256gcm_key::from_bytes(std::string(32, 'k'));
  return key;
}

template <class T, class Decode>
void check_round_trip(const T& first, Decode decode_again, const char* what) {
  auto again = decode_again();
  if (!again) bug(what);
  if (to_json(first) != to_json(*again)) bug(what);
}

enum class kind : std::uint8_t {
  organization,
  project,
  token,
  webhook,
  event,
  delivery,
  attempt,
  stored_attempt,
  idempotency,
  failure_streak,
  bucket_plan,
  key_helpers,
  count
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const auto which = static_cast<kind>(data[0] % static_cast<std::uint8_t>(kind::count));
  const std::size_t key_size = std::min<std::size_t>(data[1], size - 2);
  const std::string_view key = fuzz::as_text(data + 2, key_size);
  const std::string_view value = fuzz::as_text(data + 2 + key_size, size - 2 - key_size);

  switch (which) {
    case kind::organization:
      if (auto r = decode_organization(key, value)) {
        check_round_trip(
            *r, [&] { return decode_organization(key, encode(*r)); },
            "an organization does not read back");
      }
      break;
    case kind::project:
      if (auto r = decode_project(key, value)) {
        check_round_trip(
            *r, [&] { return decode_project(key, encode(*r)); }, "a project does not read back");
      }
      break;
    case kind::token:
      if (auto r = decode_token(key, value)) {
        auto again = decode_token(key, encode(*r));
        if (!again || to_json(*again) != to_json(*r) || again->digest != r->digest) {
          bug("a token does not read back");
        }
      }
      break;
    case kind::webhook:
      if (auto r = decode_webhook(key, value, master_key())) {
        auto again = decode_webhook(key, encode(*r, master_key()), master_key());
        if (!again || to_json(*again) != to_json(*r) || again->secret != r->secret ||
            again->previous_secrets != r->previous_secrets) {
          bug("a webhook does not read back");
        }
      }
      break;
    case kind::event:
      if (auto r = decode_event(key, value)) {
        auto again = decode_event(key, encode(*r));
        if (!again || to_json(*again) != to_json(*r) || again->data != r->data ||
            again->deliveries != r->deliveries) {
          bug("an event does not read back");
        }
        (void)delivery_body(*r);
      }
      break;
    case kind::delivery:
      if (auto r = decode_delivery(key, value)) {
        check_round_trip(
            *r, [&] { return decode_delivery(key, encode(*r)); }, "a delivery does not read back");
      }
      break;
    case kind::attempt:
      if (auto r = decode_attempt(key, value)) {
        auto again = decode_attempt(key, encode(r->second));
        if (!again || again->first != r->first || to_json(again->second) != to_json(r->second)) {
          bug("an attempt does not read back");
        }
      }
      break;
    case kind::stored_attempt:
      (void)decode_stored_attempt(key, value);
      break;
    case kind::idempotency:
      if (auto r = decode_idempotency(value)) {
        auto again = decode_idempotency(encode(*r));
        if (!again || again->body_hash != r->body_hash || again->event != r->event ||
            again->type != r->type || again->time != r->time ||
            again->deliveries != r->deliveries || again->created_at != r->created_at) {
          bug("an idempotency record does not read back");
        }
      }
      break;
    case kind::failure_streak:
      if (auto r = decode_failure_streak(value)) {
        auto again = decode_failure_streak(encode(*r));
        if (!again || !(*again == *r)) bug("a failure streak does not read back");
      }
      break;
    case kind::bucket_plan:
      if (auto r = bucket_plan::decode(value)) {
        auto again = bucket_plan::decode(r->encode());
        if (!again || again->encode() != r->encode()) bug("a bucket plan does not read back");
        for (std::uint32_t second : {0U, 1U, 86'400U, 1'780'000'000U, 0xFFFF'FFFFU}) {
          const auto start = r->start_of(second);
          if (start > second) bug("a bucket starts after the second it holds");
          (void)r->end_of(start);
          (void)r->previous(start);
        }
      }
      break;
    case kind::key_helpers:
      (void)printable_key(key);
      (void)bucket_of_key(key);
      (void)printable_key(value);
      break;
    case kind::count:
      break;
  }
  return 0;
}
