#include "core/delivery/signing.hpp"

#include "core/common/crypto.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hookd {
namespace {

// The reference vector of the Standard Webhooks specification and its libraries.
constexpr std::string_view kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr std::string_view kMsgId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr std::int64_t kTimestamp = 1614265330;
constexpr std::string_view kBody = R"({"test": 2432232314})";
constexpr std::string_view kExpected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

webhook_signer make(std::vector<std::string> secrets) {
  auto signer = webhook_signer::create(secrets);
  EXPECT_TRUE(signer.has_value());
  return std::move(signer).value();
}

TEST(Signing, StandardWebhooksReferenceVector) {
  const auto signer = make({std::string(kSecret)});
  EXPECT_EQ(signer.sign(kMsgId, kTimestamp, kBody), kExpected);
}

TEST(Signing, PrefixIsOptional) {
  const auto signer = make({std::string(kSecret.substr(6))});
  EXPECT_EQ(signer.sign(kMsgId, kTimestamp, kBody), kExpected);
}

TEST(Signing, SingleSecretOverload) {
  auto signer = webhook_signer::create(kSecret);
  ASSERT_TRUE(signer.has_value());
  EXPECT_EQ(signer->secret_count(), 1u);
  EXPECT_EQ(signer->sign(kMsgId, kTimestamp, kBody), kExpected);
}

TEST(Signing, TwoSecretsGiveTwoSpaceSeparatedEntriesInOrder) {
  const std::string other = "whsec_" + base64_encode("another key of 24 bytes!");
  const auto both = make({std::string(kSecret), other});
  const auto only_other = make({other});
  const std::string header = both.sign(kMsgId, kTimestamp, kBody);
  EXPECT_EQ(header, std::string(kExpected) + " " + only_other.sign(kMsgId, kTimestamp, kBody));
  EXPECT_NE(only_other.sign(kMsgId, kTimestamp, kBody), kExpected);
}

// A thread reuses each secret's keyed HMAC: signers of different secrets taking turns on one
// thread, again and again, each still sign with their own secret, over any body.
TEST(Signing, SignersTakingTurnsOnOneThreadEachSignWithTheirOwnSecret) {
  const std::string other = "whsec_" + base64_encode("another key of 24 bytes!");
  const auto reference = make({std::string(kSecret)});
  const auto second = make({other});
  const auto both = make({other, std::string(kSecret)});
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(reference.sign(kMsgId, kTimestamp, kBody), kExpected);
    const std::string body = "{\"n\":" + std::to_string(i) + "}";
    const std::string signature = second.sign(kMsgId, kTimestamp + i, body);
    EXPECT_TRUE(
        second.verify(kMsgId, std::to_string(kTimestamp + i), body, signature, kTimestamp + i));
    EXPECT_FALSE(
        reference.verify(kMsgId, std::to_string(kTimestamp + i), body, signature, kTimestamp + i));
    EXPECT_EQ(both.sign(kMsgId, kTimestamp, kBody),
              second.sign(kMsgId, kTimestamp, kBody) + " " + std::string(kExpected));
  }
}

TEST(Signing, VerifyAcceptsTheReferenceVector) {
  const auto signer = make({std::string(kSecret)});
  const auto r = signer.verify(kMsgId, "1614265330", kBody, kExpected, kTimestamp);
  EXPECT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.status, verify_status::ok);
}

TEST(Signing, VerifyAcceptsEitherSecretDuringRotation) {
  const std::string old_secret = "whsec_" + base64_encode("the old key, 24 bytes ok");
  const std::string new_secret = "whsec_" + base64_encode("the new key, 24 bytes ok");
  const std::string header =
      make({new_secret, old_secret}).sign(kMsgId, kTimestamp, kBody);  // what hookd sends

  // A receiver that knows only one of them (not yet updated, or already updated) accepts it.
  EXPECT_TRUE(make({old_secret}).verify(kMsgId, "1614265330", kBody, header, kTimestamp).ok());
  EXPECT_TRUE(make({new_secret}).verify(kMsgId, "1614265330", kBody, header, kTimestamp).ok());
  // A receiver holding both accepts a header signed by either one.
  const auto both = make({new_secret, old_secret});
  const std::string by_old = make({old_secret}).sign(kMsgId, kTimestamp, kBody);
  EXPECT_TRUE(both.verify(kMsgId, "1614265330", kBody, by_old, kTimestamp).ok());
  // An unrelated secret matches neither entry.
  const auto stranger = make({"whsec_" + base64_encode("somebody else's 24 bytes")});
  EXPECT_EQ(stranger.verify(kMsgId, "1614265330", kBody, header, kTimestamp).status,
            verify_status::no_matching_signature);
}

TEST(Signing, VerifyIgnoresOtherVersionsAndExtraSpaces) {
  const auto signer = make({std::string(kSecret)});
  const std::string header = "v1a,AAAA  v2,bm90IGl0 " + std::string(kExpected) + " ";
  EXPECT_TRUE(signer.verify(kMsgId, "1614265330", kBody, header, kTimestamp).ok());
}

TEST(Signing, VerifyAcceptsSignatureWithoutPadding) {
  const auto signer = make({std::string(kSecret)});
  std::string header(kExpected);
  header.pop_back();  // drop '='
  EXPECT_TRUE(signer.verify(kMsgId, "1614265330", kBody, header, kTimestamp).ok());
}

TEST(Signing, StaleAndFutureTimestampsAreRejected) {
  const auto signer = make({std::string(kSecret)});
  // Exactly at the tolerance is still accepted, one second beyond is not, in both directions.
  EXPECT_TRUE(signer.verify(kMsgId, "1614265330", kBody, kExpected, kTimestamp + 300).ok());
  EXPECT_TRUE(signer.verify(kMsgId, "1614265330", kBody, kExpected, kTimestamp - 300).ok());

  const auto old = signer.verify(kMsgId, "1614265330", kBody, kExpected, kTimestamp + 301);
  EXPECT_EQ(old.status, verify_status::stale_timestamp);
  EXPECT_FALSE(old.ok());
  const auto future = signer.verify(kMsgId, "1614265330", kBody, kExpected, kTimestamp - 301);
  EXPECT_EQ(future.status, verify_status::stale_timestamp);
  EXPECT_NE(old.detail, future.detail);  // says which direction

  // A custom tolerance.
  EXPECT_EQ(
      signer
          .verify(kMsgId, "1614265330", kBody, kExpected, kTimestamp + 31, std::chrono::seconds(30))
          .status,
      verify_status::stale_timestamp);
  // A stale replay is reported as stale even though the signature itself is valid.
  const auto replay = signer.verify(kMsgId, "1614265330", kBody, kExpected, kTimestamp + 86400);
  EXPECT_EQ(replay.status, verify_status::stale_timestamp);
}

TEST(Signing, ExtremeTimestampsDoNotOverflow) {
  const auto signer = make({std::string(kSecret)});
  EXPECT_EQ(signer.verify(kMsgId, "9223372036854775807", kBody, kExpected, -1).status,
            verify_status::stale_timestamp);
  EXPECT_EQ(
      signer.verify(kMsgId, "0", kBody, kExpected, std::numeric_limits<std::int64_t>::min()).status,
      verify_status::stale_timestamp);
  EXPECT_EQ(signer.verify(kMsgId, "9223372036854775808", kBody, kExpected, kTimestamp).status,
            verify_status::malformed_header);
}

TEST(Signing, TamperedInputsAreRejected) {
  const auto signer = make({std::string(kSecret)});
  const std::string ts = "1614265330";
  EXPECT_EQ(signer.verify(kMsgId, ts, R"({"test": 2432232315})", kExpected, kTimestamp).status,
            verify_status::no_matching_signature);
  EXPECT_EQ(signer.verify("msg_other", ts, kBody, kExpected, kTimestamp).status,
            verify_status::no_matching_signature);
  // Another timestamp inside the tolerance: the signature covers it.
  EXPECT_EQ(signer.verify(kMsgId, "1614265331", kBody, kExpected, kTimestamp).status,
            verify_status::no_matching_signature);
  // One flipped character of the signature.
  std::string flipped(kExpected);
  flipped[5] = flipped[5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(signer.verify(kMsgId, ts, kBody, flipped, kTimestamp).status,
            verify_status::no_matching_signature);
  // Right signature, wrong version tag.
  EXPECT_EQ(
      signer.verify(kMsgId, ts, kBody, "v2" + std::string(kExpected.substr(2)), kTimestamp).status,
      verify_status::no_matching_signature);
}

TEST(Signing, MalformedHeadersAreNamed) {
  const auto signer = make({std::string(kSecret)});
  const std::string ts = "1614265330";
  EXPECT_EQ(signer.verify(kMsgId, ts, kBody, "", kTimestamp).status,
            verify_status::malformed_header);
  EXPECT_EQ(signer.verify(kMsgId, ts, kBody, "   ", kTimestamp).status,
            verify_status::malformed_header);
  EXPECT_EQ(signer.verify(kMsgId, ts, kBody, "g0hM9SsE+OTPJTGt", kTimestamp).status,
            verify_status::malformed_header);
  EXPECT_EQ(signer.verify(kMsgId, ts, kBody, "v1,", kTimestamp).status,
            verify_status::malformed_header);
  EXPECT_EQ(signer.verify(kMsgId, "", kBody, kExpected, kTimestamp).status,
            verify_status::malformed_header);
  EXPECT_EQ(signer.verify(kMsgId, "1614265330.5", kBody, kExpected, kTimestamp).status,
            verify_status::malformed_header);
  EXPECT_EQ(signer.verify(kMsgId, "-1614265330", kBody, kExpected, kTimestamp).status,
            verify_status::malformed_header);
  EXPECT_EQ(signer.verify("", ts, kBody, kExpected, kTimestamp).status,
            verify_status::malformed_header);
  EXPECT_EQ(to_string(verify_status::malformed_header), "malformed header");
}

TEST(Signing, BadSecretsAreRefused) {
  for (const std::string& bad : {std::string("whsec_not*base64!"), std::string("whsec_"),
                                 std::string("whsec_A"), std::string("")}) {
    const auto r = webhook_signer::create(std::vector<std::string>{bad});
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().kind, error_kind::validation);
    ASSERT_EQ(r.error().errors.size(), 1u);
    EXPECT_EQ(r.error().errors[0].field, "secrets[0]");
  }
  // The index of the bad one is named when it is not the first.
  const auto second = webhook_signer::create({std::string(kSecret), "whsec_%%%%"});
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().errors.at(0).field, "secrets[1]");
  // No secret at all.
  EXPECT_FALSE(webhook_signer::create(std::vector<std::string>{}).has_value());
}

// ---------------------------------------------------------------- v1a (Ed25519)

std::string whsk(const ed25519_key& k) {
  return "whsk_" + base64_encode(k.seed());
}
std::string whpk(const ed25519_key& k) {
  return "whpk_" + base64_encode(k.public_key());
}

TEST(Signing, V1aSignsTheStandardContentWithEd25519) {
  const auto key = ed25519_key::generate();
  const std::string header = make({whsk(key)}).sign(kMsgId, kTimestamp, kBody);
  ASSERT_TRUE(header.starts_with("v1a,")) << header;
  EXPECT_EQ(header.find(' '), std::string::npos);
  const auto signature = base64_decode(header.substr(4));
  ASSERT_TRUE(signature);
  EXPECT_EQ(signature->size(), ed25519_key::kSignatureSize);
  // Checked with the crypto layer's verify over the content Standard Webhooks defines.
  const std::string content =
      std::string(kMsgId) + "." + std::to_string(kTimestamp) + "." + std::string(kBody);
  EXPECT_TRUE(key.verify(content, *signature));

  // A receiver holding only the public key accepts it; another key, or a changed body, does not.
  const auto receiver = make({whpk(key)});
  EXPECT_TRUE(receiver.verify(kMsgId, "1614265330", kBody, header, kTimestamp).ok());
  EXPECT_EQ(receiver.verify(kMsgId, "1614265330", "{}", header, kTimestamp).status,
            verify_status::no_matching_signature);
  EXPECT_EQ(make({whpk(ed25519_key::generate())})
                .verify(kMsgId, "1614265330", kBody, header, kTimestamp)
                .status,
            verify_status::no_matching_signature);
  // A public key cannot sign: nothing to put in the header.
  EXPECT_EQ(receiver.sign(kMsgId, kTimestamp, kBody), "");
  // An HMAC secret does not accept a v1a entry, nor a public key a v1 entry.
  EXPECT_FALSE(
      make({std::string(kSecret)}).verify(kMsgId, "1614265330", kBody, header, kTimestamp));
  EXPECT_FALSE(receiver.verify(kMsgId, "1614265330", kBody, kExpected, kTimestamp));
}

TEST(Signing, MixedSchemesEachSignInTheirOwnEntry) {
  const auto key = ed25519_key::generate();
  const std::string header =
      make({whsk(key), std::string(kSecret)}).sign(kMsgId, kTimestamp, kBody);
  const std::size_t space = header.find(' ');
  ASSERT_NE(space, std::string::npos) << header;
  EXPECT_TRUE(header.starts_with("v1a,"));
  EXPECT_EQ(header.substr(space + 1), kExpected);  // the HMAC entry is the reference one
  EXPECT_TRUE(make({whpk(key)}).verify(kMsgId, "1614265330", kBody, header, kTimestamp).ok());
  EXPECT_TRUE(make({std::string(kSecret)}).verify(kMsgId, "1614265330", kBody, header, kTimestamp));
}

TEST(Signing, ForWebhookAddsPreviousSecretsUntilTheirGraceEnds) {
  webhook w;
  w.secret = "whsec_" + base64_encode("the new key, 24 bytes ok");
  const std::string older = "whsec_" + base64_encode("the old key, 24 bytes ok");
  const std::string oldest = "whsec_" + base64_encode("the first key, 24 bytes!");
  const timestamp rotation = timestamp{std::chrono::milliseconds{1'700'000'000'000}};
  w.previous_secrets = {{older, rotation + std::chrono::hours(24)},
                        {oldest, rotation + std::chrono::hours(1)}};

  auto header_at = [&](timestamp t) {
    auto signer = webhook_signer::for_webhook(w, t);
    EXPECT_TRUE(signer);
    return signer->sign(kMsgId, kTimestamp, kBody);
  };
  auto entry = [&](const std::string& secret) {
    return make({secret}).sign(kMsgId, kTimestamp, kBody);
  };
  // Within both graces: the current one first, then the previous ones, newest first.
  EXPECT_EQ(header_at(rotation), entry(w.secret) + " " + entry(older) + " " + entry(oldest));
  // The oldest one's grace is over; the other still signs.
  EXPECT_EQ(header_at(rotation + std::chrono::hours(1)), entry(w.secret) + " " + entry(older));
  // Both over: only the current one.
  EXPECT_EQ(header_at(rotation + std::chrono::hours(24)), entry(w.secret));
  w.previous_secrets.clear();
  EXPECT_EQ(header_at(rotation), entry(w.secret));
}

// The dispatcher keeps a webhook's signer until the keys for_webhook gives would change: the end
// of the earliest grace still running, then the next one, then never.
TEST(Signing, SameKeysUntilTheNextGraceEnds) {
  webhook w;
  w.secret = "whsec_" + base64_encode("the new key, 24 bytes ok");
  const timestamp rotation = timestamp{std::chrono::milliseconds{1'700'000'000'000}};
  const timestamp one_hour = rotation + std::chrono::hours(1);
  const timestamp one_day = rotation + std::chrono::hours(24);
  EXPECT_EQ(webhook_signer::same_keys_until(w, rotation), timestamp::max());
  w.previous_secrets = {{"whsec_" + base64_encode("the old key, 24 bytes ok"), one_day},
                        {"whsec_" + base64_encode("the first key, 24 bytes!"), one_hour}};
  EXPECT_EQ(webhook_signer::same_keys_until(w, rotation), one_hour);
  EXPECT_EQ(webhook_signer::same_keys_until(w, one_hour - std::chrono::milliseconds(1)), one_hour);
  EXPECT_EQ(webhook_signer::same_keys_until(w, one_hour), one_day);  // its grace is over at its end
  EXPECT_EQ(webhook_signer::same_keys_until(w, one_day), timestamp::max());
  // And for_webhook's keys are indeed the same within each span, different across its end.
  const auto header_at = [&](timestamp t) {
    return webhook_signer::for_webhook(w, t)->sign(kMsgId, kTimestamp, kBody);
  };
  EXPECT_EQ(header_at(rotation), header_at(one_hour - std::chrono::milliseconds(1)));
  EXPECT_NE(header_at(one_hour - std::chrono::milliseconds(1)), header_at(one_hour));
  EXPECT_EQ(header_at(one_hour), header_at(one_day - std::chrono::milliseconds(1)));
  EXPECT_NE(header_at(one_day - std::chrono::milliseconds(1)), header_at(one_day));
}

TEST(Signing, SecretFormsAreCheckedPerScheme) {
  const std::string v1 = "whsec_" + base64_encode(std::string(24, 'k'));
  const std::string v1a = "whsk_" + base64_encode(ed25519_key::generate().seed());
  EXPECT_EQ(check_signing_secret(v1, signing_scheme::v1), std::nullopt);
  EXPECT_EQ(
      check_signing_secret("whsec_" + base64_encode(std::string(64, 'k')), signing_scheme::v1),
      std::nullopt);
  EXPECT_EQ(check_signing_secret(v1a, signing_scheme::v1a), std::nullopt);
  for (const std::string& bad :
       {std::string(), std::string("whsec_"), "whsec_" + base64_encode(std::string(23, 'k')),
        "whsec_" + base64_encode(std::string(65, 'k')), std::string("whsec_not*base64!"),
        base64_encode(std::string(24, 'k')), v1a}) {
    EXPECT_NE(check_signing_secret(bad, signing_scheme::v1), std::nullopt) << bad;
  }
  for (const std::string& bad :
       {std::string(), std::string("whsk_"), v1, "whsk_" + base64_encode(std::string(31, 's')),
        "whsk_" + base64_encode(std::string(33, 's'))}) {
    EXPECT_NE(check_signing_secret(bad, signing_scheme::v1a), std::nullopt) << bad;
  }
}

TEST(Signing, PublicKeyOfAV1aSecret) {
  const auto key = ed25519_key::generate();
  EXPECT_EQ(signing_public_key(whsk(key)), whpk(key));
  EXPECT_EQ(signing_public_key(std::string(kSecret)), std::nullopt);
  EXPECT_EQ(signing_public_key("whsk_" + base64_encode("short")), std::nullopt);
}

}  // namespace
}  // namespace hookd
