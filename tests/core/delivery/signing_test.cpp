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

}  // namespace
}  // namespace hookd
