#include "core/catalog/codec.hpp"
#include "support/test_util.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace hookd {
namespace {

using testing::at;
using testing::expect_same_webhook;
using testing::id_of;
using testing::with_null_field;

using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kV1aSecret = "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
constexpr std::string_view kPreviousV1a = "whsk_TM0Imyj/ltqdtsNG7BFOD1uKMZ81q6Yk2oz27U+4pvs=";
constexpr std::string_view kPreviousV1 = "whsec_b2xkLXNpZ25pbmcta2V5LWJ5dGVzLTI0IQ==";

std::shared_ptr<const event_filter> sample_filter() {
  std::vector<field_error> errors;
  auto f = event_filter::parse(
      boost::json::parse(R"({"data.country":"TR","data.total":10.5,"type":"order.paid"})"), errors);
  EXPECT_TRUE(errors.empty());
  return f;
}

webhook sample_webhook() {
  webhook w;
  w.id = id_of("65a0f1c2aabbccddee000001");
  w.organization = id_of("65a0f1c2aabbccddee0000aa");
  w.project = id_of("65a0f1c2aabbccddee0000bb");
  w.name = "Orders";
  w.url = "https://example.com/hooks?x=1";
  w.headers = {{"X-Zeta", "1"}, {"X-Alpha", "two \"quoted\""}};  // order is the client's
  w.active = false;
  w.events = {"order.created", "invoice.*"};
  w.secret = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LWJ5dGVzIQ==";
  w.created_at = at(1'700'000'000'123);
  w.updated_at = at(1'700'000'111'456);
  w.disabled_reason = "failing for 5 days";
  w.disabled_at = at(1'700'000'222'789);
  return w;
}

TEST(Codec, OrganizationRoundTrips) {
  organization o{id_of("65a0f1c2aabbccddee000002"), "Acme \xC3\xA9", at(1), at(2)};
  const std::string value = encode(o);
  auto back = decode_organization(o.id.binary(), value);
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->id, o.id);
  EXPECT_EQ(back->name, o.name);
  EXPECT_EQ(back->created_at, o.created_at);
  EXPECT_EQ(back->updated_at, o.updated_at);
}

TEST(Codec, ValuesAreCompactJsonWithVersion) {
  organization o{id_of("65a0f1c2aabbccddee000002"), "Acme", at(1), at(2)};
  const std::string value = encode(o);
  EXPECT_THAT(value, Not(HasSubstr(" ")));
  const boost::json::value parsed = boost::json::parse(value);
  EXPECT_EQ(parsed.at("v").as_int64(), 1);
}

TEST(Codec, ProjectRoundTripsWithAndWithoutOptionalFields) {
  project p;
  p.id = id_of("65a0f1c2aabbccddee000003");
  p.organization = id_of("65a0f1c2aabbccddee0000aa");
  p.name = "Shop";
  p.slug = "shop-eu";
  p.status = project_status::archived;
  p.created_at = at(10);
  p.updated_at = at(20);
  {
    auto back = decode_project(p.id.binary(), encode(p));
    ASSERT_TRUE(back) << back.error().detail;
    EXPECT_EQ(back->organization, p.organization);
    EXPECT_EQ(back->slug, "shop-eu");
    EXPECT_EQ(back->status, project_status::archived);
    EXPECT_FALSE(back->description);
    EXPECT_FALSE(back->app_icon_url);
    EXPECT_EQ(back->created_at, at(10));
    EXPECT_EQ(back->updated_at, at(20));
  }
  p.description = "";  // present but empty is not the same as absent
  p.app_icon_url = "https://example.com/icon.png";
  auto back = decode_project(p.id.binary(), encode(p));
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->description, std::optional<std::string>(""));
  EXPECT_EQ(back->app_icon_url, p.app_icon_url);
}

TEST(Codec, TokenRoundTripsAndKeepsOnlyTheDigest) {
  api_token t;
  t.id = id_of("65a0f1c2aabbccddee000004");
  t.name = "ci";
  t.organizations = {id_of("65a0f1c2aabbccddee0000aa"), id_of("65a0f1c2aabbccddee0000ab")};
  t.scopes.add(scope::webhooks_read);
  t.scopes.add(scope::deliveries_write);
  t.digest = sha256("hkd_the-token-string");
  t.created_at = at(99);
  const std::string value = encode(t);
  EXPECT_THAT(value, Not(HasSubstr("hkd_the-token-string")));
  auto back = decode_token(t.id.binary(), value);
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->name, "ci");
  EXPECT_EQ(back->organizations, t.organizations);
  EXPECT_EQ(back->scopes, t.scopes);
  EXPECT_EQ(back->digest, t.digest);
  EXPECT_EQ(back->created_at, at(99));
}

TEST(Codec, WebhookRoundTripsWithSecretSealed) {
  const aes256gcm_key key = aes256gcm_key::generate();
  const webhook w = sample_webhook();
  const std::string value = encode(w, key);
  EXPECT_THAT(value, Not(HasSubstr(w.secret.value())));
  EXPECT_THAT(value, Not(HasSubstr("c2VjcmV0LXNpZ25pbmcta2V5LWJ5dGVzIQ")));
  auto back = decode_webhook(w.id.binary(), value, key);
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->organization, w.organization);
  EXPECT_EQ(back->project, w.project);
  EXPECT_EQ(back->name, w.name);
  EXPECT_EQ(back->url, w.url);
  EXPECT_EQ(back->headers, w.headers);
  EXPECT_EQ(back->active, w.active);
  EXPECT_EQ(back->events, w.events);
  EXPECT_EQ(back->secret, w.secret);
  EXPECT_EQ(back->created_at, w.created_at);
  EXPECT_EQ(back->updated_at, w.updated_at);
  EXPECT_EQ(back->disabled_reason, w.disabled_reason);
  EXPECT_EQ(back->disabled_at, w.disabled_at);
}

// decode_webhook reads the exact shape encode() writes directly and anything else through the
// general JSON reader: every JSON spelling of the same record gives the same webhook, and a
// record with the written shape but a bad value gets the general reader's message.
TEST(Codec, WebhookDecodesTheSameWhateverTheJsonSpelling) {
  const aes256gcm_key key = aes256gcm_key::generate();
  std::vector<webhook> samples;
  webhook plain = sample_webhook();  // printable ASCII, nothing to escape
  plain.headers = {{"X-Zeta", "1"}, {"X-Alpha", "two"}};
  samples.push_back(plain);
  webhook minimal = plain;  // no headers, no events, no disabled fields, active
  minimal.headers.clear();
  minimal.events.clear();
  minimal.active = true;
  minimal.disabled_reason.reset();
  minimal.disabled_at.reset();
  samples.push_back(minimal);
  webhook escaped = sample_webhook();  // a quote to escape, non-ASCII, a control character
  escaped.name = "Caf\xC3\xA9 \"orders\"\t";
  samples.push_back(escaped);
  webhook at_zero = minimal;
  at_zero.created_at = at(0);
  at_zero.disabled_at = at(7);
  samples.push_back(at_zero);
  webhook v1a = plain;  // an Ed25519 key, secrets of a rotation (both kinds), no filter
  v1a.signing = signing_scheme::v1a;
  v1a.secret = std::string(kV1aSecret);
  v1a.previous_secrets = {{std::string(kPreviousV1a), at(1'700'000'999'000)},
                          {std::string(kPreviousV1), at(7)}};
  samples.push_back(v1a);
  webhook filtered = minimal;  // a filter, read by the general reader
  filtered.filter = sample_filter();
  samples.push_back(filtered);
  webhook everything = v1a;
  everything.filter = sample_filter();
  samples.push_back(everything);

  for (const webhook& w : samples) {
    const std::string value = encode(w, key);
    auto direct = decode_webhook(w.id.binary(), value, key);
    ASSERT_TRUE(direct) << direct.error().detail;
    expect_same_webhook(*direct, w);

    const boost::json::object parsed = boost::json::parse(value).as_object();
    std::vector<std::string> spellings;
    boost::json::object reversed;  // the same fields in the opposite order
    for (auto it = parsed.end(); it != parsed.begin();) {
      --it;
      reversed[it->key()] = it->value();
    }
    spellings.push_back(boost::json::serialize(reversed));
    boost::json::object extra = parsed;  // a field a later version might add
    extra["note"] = "later";
    spellings.push_back(boost::json::serialize(extra));
    spellings.push_back(" " + value + "\n");  // whitespace around
    std::string spaced = value;               // whitespace after the first colon
    spaced.insert(spaced.find(':') + 1, " ");
    spellings.push_back(spaced);
    for (const std::string& spelling : spellings) {
      auto back = decode_webhook(w.id.binary(), spelling, key);
      ASSERT_TRUE(back) << spelling << ": " << back.error().detail;
      expect_same_webhook(*back, w);
    }
  }

  // The written shape with values that do not check out: the general reader's messages.
  const std::string value = encode(plain, key);
  const auto detail = [&](const std::string& v) {
    auto back = decode_webhook(plain.id.binary(), v, key);
    return back ? std::string("decoded") : back.error().detail;
  };
  std::string bad_id = value;
  bad_id.replace(bad_id.find(plain.organization.to_string()), 24, std::string(24, 'z'));
  EXPECT_EQ(detail(bad_id), "field \"organization\" is not a 24-hex-digit id");
  std::string bad_time = value;
  bad_time.insert(bad_time.find("\"createdAt\":") + 12, "0");
  EXPECT_THAT(detail(bad_time), HasSubstr("not JSON"));
  std::string negative = value;
  negative.insert(negative.find("\"updatedAt\":") + 12, "-");
  EXPECT_EQ(detail(negative), "decoded");  // a valid integer, only not one encode() writes
}

// The written shape's reader took a 19th digit before refusing it, and multiplied past int64 on
// the way: undefined behaviour, which UBSan reports (found by tests/fuzz: records, a webhook
// record with "createdAt":9780000000044444444). A time of 19 digits is the general reader's to
// judge, like any value encode() does not write.
TEST(Codec, WebhookTimesOfNineteenDigitsGoToTheGeneralReader) {
  const aes256gcm_key key = aes256gcm_key::generate();
  webhook w = sample_webhook();
  w.headers = {{"X-Zeta", "1"}};
  const std::string value = encode(w, key);
  const auto with_created_at = [&](std::string_view digits) {
    std::string v = value;
    const auto at_field = v.find("\"createdAt\":") + 12;
    v.replace(at_field, v.find(',', at_field) - at_field, digits);
    return v;
  };

  auto past_int64 = decode_webhook(w.id.binary(), with_created_at("9780000000044444444"), key);
  ASSERT_FALSE(past_int64);
  EXPECT_THAT(past_int64.error().detail, HasSubstr("createdAt"));

  auto in_int64 = decode_webhook(w.id.binary(), with_created_at("1000000000000000000"), key);
  ASSERT_TRUE(in_int64) << in_int64.error().detail;
  EXPECT_EQ(in_int64->created_at, at(1'000'000'000'000'000'000));
  EXPECT_EQ(in_int64->name, w.name);
}

TEST(Codec, WebhookHeaderValuesAreSealedBoundToTheWebhook) {
  const aes256gcm_key key = aes256gcm_key::generate();
  webhook w = sample_webhook();
  w.headers = {{"Authorization", "Bearer receiver-credential-0123"}, {"X-Api-Key", "k-9876"}};
  const std::string value = encode(w, key);
  EXPECT_THAT(value, Not(HasSubstr("receiver-credential-0123")));
  EXPECT_THAT(value, Not(HasSubstr("k-9876")));
  EXPECT_THAT(value, Not(HasSubstr("Authorization")));
  auto back = decode_webhook(w.id.binary(), value, key);
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->headers, w.headers);

  // The sealed values open only for their webhook, and only in the headers' place.
  auto moved = decode_webhook(id_of("65a0f1c2aabbccddee000099").binary(), value, key);
  ASSERT_FALSE(moved);
  boost::json::object swapped = boost::json::parse(value).as_object();
  swapped["headers"] = swapped["secret"];
  auto mixed = decode_webhook(w.id.binary(), boost::json::serialize(swapped), key);
  ASSERT_FALSE(mixed);
  EXPECT_THAT(mixed.error().detail, HasSubstr("header values do not open"));

  // No headers: nothing sealed, an empty list.
  webhook none = w;
  none.headers.clear();
  EXPECT_THAT(encode(none, key), HasSubstr("\"headers\":[]"));
}

TEST(Codec, WebhookWithPlainHeadersFromEarlierVersionsStillDecodes) {
  // Records written before header values were sealed hold them as a plain [name, value] list.
  const aes256gcm_key key = aes256gcm_key::generate();
  const webhook w = sample_webhook();
  boost::json::object old = boost::json::parse(encode(w, key)).as_object();
  old["headers"] = boost::json::array{boost::json::array{"X-Zeta", "1"},
                                      boost::json::array{"X-Alpha", "two \"quoted\""}};
  auto back = decode_webhook(w.id.binary(), boost::json::serialize(old), key);
  ASSERT_TRUE(back) << back.error().detail;
  expect_same_webhook(*back, w);
}

TEST(Codec, WebhookSealsWithFreshNonceEachTime) {
  const aes256gcm_key key = aes256gcm_key::generate();
  const webhook w = sample_webhook();
  EXPECT_NE(encode(w, key), encode(w, key));
}

TEST(Codec, WebhookWithWrongMasterKeyFailsClearly) {
  const webhook w = sample_webhook();
  const std::string value = encode(w, aes256gcm_key::generate());
  auto back = decode_webhook(w.id.binary(), value, aes256gcm_key::generate());
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().kind, error_kind::internal);
  EXPECT_THAT(back.error().detail, HasSubstr("master key"));
}

TEST(Codec, WebhookSecretCannotBeMovedToAnotherId) {
  const aes256gcm_key key = aes256gcm_key::generate();
  const webhook w = sample_webhook();
  const std::string value = encode(w, key);
  const object_id other = id_of("65a0f1c2aabbccddee000099");
  auto back = decode_webhook(other.binary(), value, key);
  ASSERT_FALSE(back);
  EXPECT_THAT(back.error().detail, HasSubstr("does not open"));
}

TEST(Codec, DamagedRecordsAreErrorsThatSayWhat) {
  const std::string key(object_id{}.binary());
  struct bad_case {
    std::string value;
    std::string expected;
  };
  const std::vector<bad_case> cases = {
      {"not json", "not JSON"},
      {"[1,2]", "not a JSON object"},
      {R"({"name":"x","createdAt":1,"updatedAt":2})", "no version"},
      {R"({"v":2,"name":"x","createdAt":1,"updatedAt":2})", "version 2"},
      {R"({"v":"1","name":"x","createdAt":1,"updatedAt":2})", "not an integer"},
      {R"({"v":1,"createdAt":1,"updatedAt":2})", "\"name\" is missing"},
      {R"({"v":1,"name":7,"createdAt":1,"updatedAt":2})", "\"name\" is not a string"},
      {R"({"v":1,"name":"x","createdAt":"yesterday","updatedAt":2})", "\"createdAt\""},
      {R"({"v":1,"name":"x","createdAt":1.5,"updatedAt":2})", "\"createdAt\""},
  };
  for (const auto& c : cases) {
    auto back = decode_organization(key, c.value);
    ASSERT_FALSE(back) << c.value;
    EXPECT_EQ(back.error().kind, error_kind::internal);
    EXPECT_THAT(back.error().detail, HasSubstr(c.expected)) << c.value;
  }
  EXPECT_FALSE(decode_organization("short", R"({"v":1,"name":"x","createdAt":1,"updatedAt":2})"));
  std::string deep(100, '[');
  EXPECT_FALSE(decode_organization(key, deep + std::string(100, ']')));
}

TEST(Codec, DamagedFieldsOfOtherEntitiesAreErrors) {
  const std::string key(id_of("65a0f1c2aabbccddee000004").binary());
  auto bad_status = decode_project(
      key, R"({"v":1,"organization":"65a0f1c2aabbccddee0000aa","name":"n","slug":"s1",)"
           R"("status":"deleted","createdAt":1,"updatedAt":1})");
  ASSERT_FALSE(bad_status);
  EXPECT_THAT(bad_status.error().detail, HasSubstr("status"));

  auto bad_org = decode_project(key, R"({"v":1,"organization":"xyz","name":"n","slug":"s1",)"
                                     R"("status":"draft","createdAt":1,"updatedAt":1})");
  ASSERT_FALSE(bad_org);
  EXPECT_THAT(bad_org.error().detail, HasSubstr("\"organization\""));

  auto bad_scope = decode_token(key, R"({"v":1,"name":"t","organizations":[],)"
                                     R"("scopes":["root"],"digest":"","createdAt":1})");
  ASSERT_FALSE(bad_scope);
  EXPECT_THAT(bad_scope.error().detail, HasSubstr("root"));

  auto bad_digest = decode_token(key, R"({"v":1,"name":"t","organizations":[],)"
                                      R"("scopes":["admin"],"digest":"AAAA","createdAt":1})");
  ASSERT_FALSE(bad_digest);
  EXPECT_THAT(bad_digest.error().detail, HasSubstr("digest"));

  const aes256gcm_key master = aes256gcm_key::generate();
  auto bad_headers = decode_webhook(
      key,
      R"({"v":1,"organization":"65a0f1c2aabbccddee0000aa","project":"65a0f1c2aabbccddee0000bb",)"
      R"("name":"n","url":"https://e.com","headers":[["only-name"]],"active":true,)"
      R"("events":["*"],"secret":"AAAA","createdAt":1,"updatedAt":1})",
      master);
  ASSERT_FALSE(bad_headers);
  EXPECT_THAT(bad_headers.error().detail, HasSubstr("headers"));
}

// Encoders leave an absent optional field out; a null is damage, refused with the field's name
// whether the field is required or optional.
TEST(Codec, NullFieldsAreRefusedNamingTheField) {
  const organization o{id_of("65a0f1c2aabbccddee000002"), "Acme", at(1), at(2)};
  EXPECT_THAT(encode(o), Not(HasSubstr("null")));
  auto org = decode_organization(o.id.binary(), with_null_field(encode(o), "name"));
  ASSERT_FALSE(org);
  EXPECT_EQ(org.error().kind, error_kind::internal);
  EXPECT_THAT(org.error().detail, HasSubstr("field \"name\" is null"));

  project p;
  p.id = id_of("65a0f1c2aabbccddee000003");
  p.organization = id_of("65a0f1c2aabbccddee0000aa");
  p.name = "Shop";
  p.slug = "shop";
  p.created_at = at(10);
  p.updated_at = at(20);
  const std::string plain = encode(p);  // no description, no icon
  EXPECT_THAT(plain, Not(HasSubstr("null")));
  for (const char* optional : {"description", "appIconUrl"}) {
    auto back = decode_project(p.id.binary(), with_null_field(plain, optional));
    ASSERT_FALSE(back) << optional;
    EXPECT_THAT(back.error().detail, HasSubstr("field \"" + std::string(optional) + "\" is null"));
  }

  const aes256gcm_key key = aes256gcm_key::generate();
  webhook w = sample_webhook();
  w.disabled_reason.reset();
  w.disabled_at.reset();
  const std::string hook = encode(w, key);
  EXPECT_THAT(hook, Not(HasSubstr("null")));
  ASSERT_TRUE(decode_webhook(w.id.binary(), hook, key));
  for (const char* optional : {"disabledReason", "disabledAt"}) {
    auto back = decode_webhook(w.id.binary(), with_null_field(hook, optional), key);
    ASSERT_FALSE(back) << optional;
    EXPECT_THAT(back.error().detail, HasSubstr("field \"" + std::string(optional) + "\" is null"));
  }
}

TEST(Codec, IndexKeysHaveTheDocumentedLayout) {
  const object_id org = id_of("65a0f1c2aabbccddee0000aa");
  const object_id proj = id_of("65a0f1c2aabbccddee0000bb");
  const object_id hook = id_of("65a0f1c2aabbccddee0000cc");

  const std::string ps = project_slug_key(org, "shop");
  EXPECT_EQ(ps, "ps" + std::string(org.binary()) + "shop");
  EXPECT_EQ(printable_key(ps), "ps:65a0f1c2aabbccddee0000aa:shop");

  const std::string pw = project_webhook_key(proj, hook);
  EXPECT_EQ(pw, "pw" + std::string(proj.binary()) + std::string(hook.binary()));
  EXPECT_EQ(printable_key(pw), "pw:65a0f1c2aabbccddee0000bb65a0f1c2aabbccddee0000cc");
  // All webhooks of a project share one prefix, so a scan finds them.
  EXPECT_TRUE(pw.starts_with("pw" + std::string(proj.binary())));

  const sha256_digest d = sha256("x");
  const std::string td = token_digest_key(d);
  ASSERT_EQ(td.size(), 2u + 32u);
  EXPECT_TRUE(td.starts_with("td"));
  EXPECT_EQ(printable_key(td).substr(0, 3), "td:");

  EXPECT_EQ(printable_key(hook.binary()), "65a0f1c2aabbccddee0000cc");
}

TEST(Codec, WebhookRateLimitRoundTripsAndEarlierRecordsHaveNone) {
  const aes256gcm_key key = aes256gcm_key::generate();
  webhook w = sample_webhook();
  const std::string earlier = encode(w, key);  // as written before rate limits: no field
  EXPECT_THAT(earlier, Not(HasSubstr("rateLimit")));
  auto back = decode_webhook(w.id.binary(), earlier, key);
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->rate_limit, std::nullopt);

  w.rate_limit = 250;
  const std::string value = encode(w, key);
  back = decode_webhook(w.id.binary(), value, key);
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->rate_limit, 250u);
  // Another spelling goes through the general reader: the same value.
  back = decode_webhook(w.id.binary(), " " + value, key);
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->rate_limit, 250u);
  // Out of range in storage: an error that names the field.
  std::string bad = value;
  const std::string field = "\"rateLimit\":250";
  bad.replace(bad.find(field), field.size(), "\"rateLimit\":0");
  auto refused = decode_webhook(w.id.binary(), bad, key);
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().detail, HasSubstr("rateLimit"));
}

TEST(Codec, PreviousSecretsAndTheV1aKeyAreSealedBoundToTheWebhook) {
  const aes256gcm_key key = aes256gcm_key::generate();
  webhook w = sample_webhook();
  w.signing = signing_scheme::v1a;
  w.secret = std::string(kV1aSecret);
  w.previous_secrets = {{std::string(kPreviousV1a), at(1'700'000'999'000)},
                        {std::string(kPreviousV1), at(1'700'000'888'000)}};
  const std::string value = encode(w, key);
  for (const std::string& secret :
       {std::string(kV1aSecret), std::string(kPreviousV1a), std::string(kPreviousV1)}) {
    EXPECT_THAT(value, Not(HasSubstr(secret)));
    EXPECT_THAT(value, Not(HasSubstr(secret.substr(secret.find('_') + 1, 20))));
  }
  EXPECT_THAT(value, HasSubstr(R"("signing":"v1a")"));
  auto back = decode_webhook(w.id.binary(), value, key);
  ASSERT_TRUE(back) << back.error().detail;
  expect_same_webhook(*back, w);

  // Under another webhook's id the record's sealed parts do not open.
  auto moved = decode_webhook(id_of("65a0f1c2aabbccddee000099").binary(), value, key);
  EXPECT_FALSE(moved);
  // Nor the previous secrets moved into the place of the header values, or with another key.
  auto other_key = decode_webhook(w.id.binary(), value, aes256gcm_key::generate());
  EXPECT_FALSE(other_key);
}

TEST(Codec, AWebhookWithoutSigningFieldsIsStoredAsBefore) {
  const aes256gcm_key key = aes256gcm_key::generate();
  const std::string value = encode(sample_webhook(), key);
  EXPECT_THAT(value, Not(HasSubstr("signing")));
  EXPECT_THAT(value, Not(HasSubstr("previousSecrets")));
  EXPECT_THAT(value, Not(HasSubstr("filter")));
}

TEST(Codec, BadSigningFieldsAreNamed) {
  const aes256gcm_key key = aes256gcm_key::generate();
  const webhook w = sample_webhook();
  boost::json::object o = boost::json::parse(encode(w, key)).as_object();
  const auto detail = [&](const boost::json::object& changed) {
    auto back = decode_webhook(w.id.binary(), boost::json::serialize(changed), key);
    return back ? std::string("decoded") : back.error().detail;
  };
  boost::json::object scheme = o;
  scheme["signing"] = "v9";
  EXPECT_THAT(detail(scheme), HasSubstr("signing"));
  boost::json::object previous = o;
  previous["previousSecrets"] = "bm90IHNlYWxlZA==";
  EXPECT_THAT(detail(previous), HasSubstr("previous signing secrets"));
  boost::json::object filter = o;
  filter["filter"] = boost::json::object{{"country", "TR"}};
  EXPECT_THAT(detail(filter), HasSubstr("filter"));
}

}  // namespace
}  // namespace hookd
