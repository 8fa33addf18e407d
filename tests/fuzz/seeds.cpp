// Writes the seed corpus of records_fuzz (tests/fuzz/corpus/records/): every kind of stored
// record, encoded by the same functions the catalog and the delivery log write with, from
// realistic entities, in records_fuzz's input form (decoder byte, key length, key, value).
// Run once after a codec change: build/fuzz/bin/fuzz_seeds tests/fuzz/corpus/records

#include "core/catalog/codec.hpp"
#include "core/delivery/delivery.hpp"
#include "core/delivery/endpoint_health.hpp"
#include "core/delivery/history_keys.hpp"

#include <boost/json/parse.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

using namespace hookd;

// records_fuzz's decoder numbers.
enum : std::uint8_t {
  kOrganization,
  kProject,
  kToken,
  kWebhook,
  kEvent,
  kDelivery,
  kAttempt,
  kStoredAttempt,
  kIdempotency,
  kFailureStreak,
  kBucketPlan,
  kKeyHelpers
};

std::filesystem::path out_dir;
int written = 0;

void seed(const std::string& name, std::uint8_t decoder, std::string_view key,
          std::string_view value) {
  std::string bytes;
  bytes += static_cast<char>(decoder);
  bytes += static_cast<char>(key.size());
  bytes.append(key);
  bytes.append(value);
  std::ofstream(out_dir / name, std::ios::binary) << bytes;
  ++written;
}

object_id id(const char* hex) {
  return *object_id::parse(hex);
}
timestamp at(std::int64_t ms) {
  return timestamp{std::chrono::milliseconds(ms)};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds DIR\n");
    return 2;
  }
  out_dir = argv[1];
  std::filesystem::create_directories(out_dir);
  const auto key = *aes256gcm_key::from_bytes(std::string(32, 'k'));  // records_fuzz's
  const auto org_id = id("65a0c0ffee00000000000001");
  const auto project_id = id("65a0c0ffee00000000000002");
  const auto hook_id = id("65a0c0ffee00000000000003");
  const auto event_id = id("65a0c0ffee00000000000004");
  const auto delivery_id = id("65a0c0ffee00000000000005");
  const auto token_id = id("65a0c0ffee00000000000006");

  seed("organization", kOrganization, org_id.binary(),
       encode(organization{org_id, "Acme Inc.", at(1'780'000'000'000), at(1'780'000'100'000)}));

  project p{project_id,
            org_id,
            "Storefront",
            "storefront",
            "Orders and payments",
            project_status::active,
            "https://acme.example/icon.png",
            at(1'780'000'000'000),
            at(1'780'000'000'500)};
  seed("project", kProject, project_id.binary(), encode(p));
  p.description.reset();
  p.app_icon_url.reset();
  p.status = project_status::draft;
  seed("project-minimal", kProject, project_id.binary(), encode(p));

  api_token t;
  t.id = token_id;
  t.name = "CI deploys";
  t.organizations = {org_id, project_id};
  t.scopes.add(scope::webhooks_read);
  t.scopes.add(scope::events_write);
  t.digest = sha256("hkd_example-token");
  t.created_at = at(1'780'000'000'000);
  seed("token", kToken, token_id.binary(), encode(t));
  api_token admin = t;
  admin.organizations.clear();
  admin.scopes.add(scope::admin);
  seed("token-admin", kToken, token_id.binary(), encode(admin));

  webhook w;
  w.id = hook_id;
  w.organization = org_id;
  w.project = project_id;
  w.name = "Invoice notifications";
  w.url = "https://hooks.example.com/services/T024BE7LD/B08F3QZ1X/incoming";
  w.headers = {{"X-Tenant", "acme-production"}, {"Authorization", "Basic YmVuY2g6c2VjcmV0"}};
  w.events = {"invoice.paid", "customer.*"};
  w.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  w.created_at = w.updated_at = at(1'780'000'000'000);
  seed("webhook", kWebhook, hook_id.binary(), encode(w, key));
  webhook full = w;
  full.active = false;
  full.disabled_reason = "410 Gone";
  full.disabled_at = at(1'780'000'500'000);
  full.rate_limit = 50;
  full.previous_secrets = {{"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", at(1'780'086'400'000)}};
  std::vector<field_error> errors;
  full.filter = event_filter::parse(
      boost::json::parse(R"({"data.country":"TR","data.items.0.qty":2,"data.vip":true})"), errors);
  seed("webhook-full", kWebhook, hook_id.binary(), encode(full, key));
  webhook signed_v1a = w;
  signed_v1a.signing = signing_scheme::v1a;
  signed_v1a.secret = generate_webhook_secret(signing_scheme::v1a);
  signed_v1a.headers.clear();
  seed("webhook-v1a", kWebhook, hook_id.binary(), encode(signed_v1a, key));

  event e;
  e.id = event_id;
  e.organization = org_id;
  e.project = project_id;
  e.type = "order.created";
  e.data = R"({"id":1,"total":9.99,"items":[{"sku":"a-1","qty":2}],"country":"TR"})";
  e.time = at(1'780'000'000'000);
  e.deliveries = {{delivery_id, hook_id}};
  seed("event", kEvent, event_id.binary(), encode(e));
  e.subject = "user_4821";
  e.ordering_key = "order-77";
  e.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  seed("event-full", kEvent, event_id.binary(), encode(e));

  delivery d;
  d.id = delivery_id;
  d.event = event_id;
  d.webhook = hook_id;
  d.project = project_id;
  d.type = "order.created";
  d.next_attempt_at = at(1'780'000'005'000);
  d.created_at = d.updated_at = at(1'780'000'000'000);
  seed("delivery-pending", kDelivery, delivery_id.binary(), encode(d));
  delivery failed = d;
  failed.status = delivery_status::failed;
  failed.attempts = 7;
  failed.next_attempt_at.reset();
  failed.reason = std::string(kReasonExhausted);
  failed.ordering_key = "order-77";
  failed.schedule_start = 3;
  failed.test = true;
  seed("delivery-failed", kDelivery, delivery_id.binary(), encode(failed));

  const std::string full_attempt_key =
      attempt_key(1'780'000'000 / 3600, project_id, delivery_id, 2);
  const std::string_view attempt_id =
      std::string_view(full_attempt_key).substr(full_attempt_key.size() - 16);
  attempt a;
  a.number = 2;
  a.at = at(1'780'000'005'000);
  a.duration = std::chrono::milliseconds(182);
  a.status_code = 503;
  a.response = R"({"error":"busy"})";
  seed("attempt", kAttempt, attempt_id, encode(a));
  attempt timed_out = a;
  timed_out.status_code.reset();
  timed_out.response.clear();
  timed_out.error = "connect timeout after 10s to 203.0.113.5:443";
  seed("attempt-error", kAttempt, attempt_id, encode(timed_out));
  delivery after = d;
  after.attempts = 2;
  after.next_attempt_at = at(1'780'000'305'000);
  seed("stored-attempt", kStoredAttempt, attempt_id, encode(a, after));
  seed("stored-attempt-failed", kStoredAttempt, attempt_id, encode(timed_out, failed));
  seed("stored-attempt-legacy", kStoredAttempt, attempt_id, encode(a));

  idempotency_record r;
  r.body_hash = sha256(e.data);
  r.event = event_id;
  r.type = e.type;
  r.time = e.time;
  r.deliveries = 1;
  r.created_at = e.time;
  seed("idempotency", kIdempotency, {}, encode(r));

  failure_streak s;
  seed("failure-streak-none", kFailureStreak, {}, encode(s));
  s.failures = 12;
  s.first_failure_at = at(1'780'000'000'000);
  s.last_failure_at = at(1'780'000'900'000);
  s.last_success_at = at(1'779'999'000'000);
  seed("failure-streak", kFailureStreak, {}, encode(s));

  bucket_plan plan(3600);
  seed("bucket-plan", kBucketPlan, {}, plan.encode());
  plan.adopt(1'780'000'000, 86'400);
  seed("bucket-plan-epochs", kBucketPlan, {}, plan.encode());

  seed("key-history", kKeyHelpers, full_attempt_key, project_slug_key(org_id, "storefront"));
  seed("key-index", kKeyHelpers, project_webhook_key(project_id, hook_id),
       token_digest_key(t.digest));

  std::printf("%d seeds in %s\n", written, out_dir.c_str());
  return 0;
}
