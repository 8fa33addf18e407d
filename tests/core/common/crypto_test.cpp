#include "core/common/crypto.hpp"

#include <gtest/gtest.h>

#include <array>

#include <set>

namespace hookd {
namespace {

std::string hex(const sha256_digest& d) {
  return hex_encode({reinterpret_cast<const char*>(d.data()), d.size()});
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(HmacSha256, Rfc4231Vectors) {
  // Test case 2: a key shorter than the block.
  EXPECT_EQ(hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 1: 20 bytes of 0x0b.
  EXPECT_EQ(hex(hmac_sha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

// The keyed contexts kept per thread: every key gets its own MAC, used again, alternating with
// others, in parts, and after the cache has started over (past 1024 keys).
TEST(HmacSha256, ReusedKeyMatchesTheOneShotForEveryKeyAndSplit) {
  const std::string jefe_data = "what do ya want for nothing?";
  const std::array<std::string_view, 3> jefe_parts{"what do ya ", "", "want for nothing?"};
  const std::array<std::string_view, 1> hi_there{"Hi There"};
  const std::string key20(20, '\x0b');
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(hex(hmac_sha256_reused_key("Jefe", jefe_parts)),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    EXPECT_EQ(hex(hmac_sha256_reused_key(key20, hi_there)),
              "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  }
  for (int i = 0; i < 1100; ++i) {
    const std::string key = "key number " + std::to_string(i);
    const std::string data = "data " + std::to_string(i);
    const std::array<std::string_view, 2> parts{"data ", std::string_view(data).substr(5)};
    ASSERT_EQ(hmac_sha256_reused_key(key, parts), hmac_sha256(key, data)) << i;
  }
  EXPECT_EQ(hex(hmac_sha256_reused_key("Jefe", std::array<std::string_view, 1>{jefe_data})),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(hmac_sha256_reused_key("", std::array<std::string_view, 1>{""}), hmac_sha256("", ""));
}

TEST(HmacSha256, EmptyKeyIsAValidKey) {
  // RFC 2104 with an empty key; also checks the empty key does not crash OpenSSL.
  EXPECT_EQ(hex(hmac_sha256("", "")),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(RandomBytes, FillsAndDiffers) {
  const std::string a = random_bytes(32);
  const std::string b = random_bytes(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(random_bytes(0).empty());
  std::array<std::uint8_t, 16> buf{};
  random_bytes(buf);
  EXPECT_NE(buf, (std::array<std::uint8_t, 16>{}));
}

TEST(ConstantTimeEqual, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("secret", "secret"));
  EXPECT_FALSE(constant_time_equal("secret", "secreT"));
  EXPECT_FALSE(constant_time_equal("secret", "secret "));
  EXPECT_FALSE(constant_time_equal("secret", "secre"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_TRUE(constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
  EXPECT_FALSE(constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), std::string(plain)) << encoded;
  }
}

TEST(Base64, DecodesUnpadded) {
  EXPECT_EQ(base64_decode("Zg"), "f");
  EXPECT_EQ(base64_decode("Zm8"), "fo");
  EXPECT_EQ(base64_decode("Zm9vYmE"), "fooba");
}

TEST(Base64, UsesTheStandardAlphabet) {
  const std::string bytes("\xfb\xff\xbf", 3);
  EXPECT_EQ(base64_encode(bytes), "+/+/");
  EXPECT_EQ(base64_decode("+/+/"), bytes);
}

TEST(Base64, RejectsInvalidInput) {
  EXPECT_FALSE(base64_decode("Zm9v!"));
  EXPECT_FALSE(base64_decode("Zm 9v"));
  EXPECT_FALSE(base64_decode("Zm9v\n"));
  EXPECT_FALSE(base64_decode("-_-_"));  // URL alphabet is not standard base64
  EXPECT_FALSE(base64_decode("Z"));     // a lone sextet encodes no byte
  EXPECT_FALSE(base64_decode("Zm9vY"));
  EXPECT_FALSE(base64_decode("Zg="));  // padding that does not complete the quantum
  EXPECT_FALSE(base64_decode("Zg==="));
  EXPECT_FALSE(base64_decode("Z==="));
  EXPECT_FALSE(base64_decode("Zg==Zg=="));  // padding in the middle
  EXPECT_FALSE(base64_decode("="));
  EXPECT_FALSE(base64_decode("===="));
}

TEST(Base64, RoundTripsEveryLength) {
  for (std::size_t n = 0; n < 70; ++n) {
    const std::string bytes = random_bytes(n);
    const std::string encoded = base64_encode(bytes);
    EXPECT_EQ(encoded.size() % 4, 0u);
    EXPECT_EQ(base64_decode(encoded), bytes);
  }
}

// The buffer form, as the start-up load uses it: one string reused for every record, longer and
// shorter ones in turn, gives exactly the bytes of each, and refuses what the optional form does.
TEST(Base64, DecodesIntoAReusedBuffer) {
  std::string buffer = "left over from an earlier, longer record";
  for (std::size_t n : {66u, 3u, 0u, 40u, 1u, 2u, 66u}) {
    const std::string bytes = random_bytes(n);
    const std::string padded = base64_encode(bytes);
    ASSERT_TRUE(base64_decode(padded, buffer)) << padded;
    EXPECT_EQ(buffer, bytes);
    const std::string unpadded = padded.substr(0, padded.find('='));
    ASSERT_TRUE(base64_decode(unpadded, buffer)) << unpadded;
    EXPECT_EQ(buffer, bytes);
  }
  for (std::string_view bad : {"Zm9v!", "Zm 9v", "Z", "Zg=", "Zg==Zg==", "-_-_", "Zm9vY"}) {
    EXPECT_FALSE(base64_decode(bad, buffer)) << bad;
  }
}

TEST(Base64Url, NoPaddingUrlAlphabet) {
  EXPECT_EQ(base64url_encode(std::string("\xfb\xff", 2)), "-_8");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
  const std::string encoded = base64url_encode(random_bytes(32));
  EXPECT_EQ(encoded.size(), 43u);
  EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos);
}

TEST(Hex, Lowercase) {
  EXPECT_EQ(hex_encode(""), "");
  EXPECT_EQ(hex_encode(std::string("\x00\x0f\xab\xff", 4)), "000fabff");
}

class Aes256Gcm : public ::testing::Test {
 protected:
  aes256gcm_key key_ = aes256gcm_key::generate();
};

TEST_F(Aes256Gcm, RoundTripWithAad) {
  const std::string sealed = key_.seal("whsec_abc", "webhook-1");
  EXPECT_EQ(sealed.size(), 12u + 9u + 16u);  // nonce | ciphertext | tag
  EXPECT_EQ(sealed.find("whsec_abc"), std::string::npos);
  EXPECT_EQ(key_.open(sealed, "webhook-1"), "whsec_abc");
}

TEST_F(Aes256Gcm, EmptyPlaintextAndAad) {
  const std::string sealed = key_.seal("");
  EXPECT_EQ(sealed.size(), 28u);
  EXPECT_EQ(key_.open(sealed), "");
}

TEST_F(Aes256Gcm, FreshNonceEachSeal) {
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) seen.insert(key_.seal("same plaintext"));
  EXPECT_EQ(seen.size(), 50u);
}

TEST_F(Aes256Gcm, TamperingAnyByteFails) {
  const std::string sealed = key_.seal("secret value", "ctx");
  for (std::size_t i = 0; i < sealed.size(); ++i) {
    std::string bad = sealed;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    EXPECT_FALSE(key_.open(bad, "ctx")) << "byte " << i;
  }
}

TEST_F(Aes256Gcm, WrongAadWrongKeyAndShortInputFail) {
  const std::string sealed = key_.seal("secret value", "webhook-1");
  EXPECT_FALSE(key_.open(sealed, "webhook-2"));
  EXPECT_FALSE(key_.open(sealed));
  EXPECT_FALSE(aes256gcm_key::generate().open(sealed, "webhook-1"));
  EXPECT_FALSE(key_.open(sealed.substr(0, 27), "webhook-1"));
  EXPECT_FALSE(key_.open("", "webhook-1"));
  EXPECT_FALSE(key_.open(sealed.substr(0, sealed.size() - 1), "webhook-1"));
}

TEST_F(Aes256Gcm, KeysAlternatingOnOneThreadAndAFailureInBetween) {
  // Each thread keeps a context with the last key's schedule: switching keys, and a failed open,
  // must not leak into the next call.
  const aes256gcm_key other = aes256gcm_key::generate();
  for (int i = 0; i < 3; ++i) {
    const std::string mine = key_.seal("first", "a");
    const std::string theirs = other.seal("second", "b");
    EXPECT_FALSE(other.open(mine, "a"));
    EXPECT_EQ(key_.open(mine, "a"), "first");
    EXPECT_FALSE(key_.open(theirs, "b"));
    EXPECT_EQ(other.open(theirs, "b"), "second");
    std::string bad = mine;
    bad.back() = static_cast<char>(bad.back() ^ 0x01);
    EXPECT_FALSE(key_.open(bad, "a"));
    EXPECT_EQ(key_.open(mine, "a"), "first");
  }
}

TEST_F(Aes256Gcm, KeyFromBytesRoundTrips) {
  const auto copy = aes256gcm_key::from_bytes(key_.raw());
  ASSERT_TRUE(copy.has_value());
  EXPECT_EQ(copy->raw(), key_.raw());
  EXPECT_EQ(copy->open(key_.seal("x", "a"), "a"), "x");
  EXPECT_FALSE(aes256gcm_key::from_bytes(std::string(31, 'k')));
  EXPECT_FALSE(aes256gcm_key::from_bytes(std::string(33, 'k')));
  EXPECT_NE(aes256gcm_key::generate().raw(), aes256gcm_key::generate().raw());
}

// ---------------------------------------------------------------- Ed25519

std::string unhex(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// RFC 8032 section 7.1, tests 1 and 2: Ed25519 is deterministic, so the signature is known.
TEST(Ed25519, Rfc8032Vectors) {
  struct vector {
    std::string_view seed, public_key, message, signature;
  };
  const vector vectors[] = {
      {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
       "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
       "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701c"
       "f9b46bd25bf5f0595bbe24655141438e7a100b"},
      {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
       "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
       "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0"
       "f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
  };
  for (const vector& v : vectors) {
    const auto key = ed25519_key::from_seed(unhex(v.seed));
    ASSERT_TRUE(key);
    EXPECT_TRUE(key->has_private());
    EXPECT_EQ(hex_encode(key->seed()), v.seed);
    EXPECT_EQ(hex_encode(key->public_key()), v.public_key);
    const std::string signature = key->sign(unhex(v.message));
    EXPECT_EQ(hex_encode(signature), v.signature);
    EXPECT_TRUE(key->verify(unhex(v.message), signature));

    // The public key alone verifies, and cannot give a seed.
    const auto pub = ed25519_key::from_public(unhex(v.public_key));
    ASSERT_TRUE(pub);
    EXPECT_FALSE(pub->has_private());
    EXPECT_EQ(pub->seed(), "");
    EXPECT_TRUE(pub->verify(unhex(v.message), signature));
    EXPECT_FALSE(pub->verify(unhex(v.message) + "x", signature));
    std::string flipped = signature;
    flipped[10] = static_cast<char>(flipped[10] ^ 1);
    EXPECT_FALSE(pub->verify(unhex(v.message), flipped));
    EXPECT_FALSE(pub->verify(unhex(v.message), signature.substr(1)));
  }
}

TEST(Ed25519, GeneratedKeysDifferAndWrongSizesAreRefused) {
  const auto a = ed25519_key::generate();
  const auto b = ed25519_key::generate();
  EXPECT_EQ(a.seed().size(), ed25519_key::kSeedSize);
  EXPECT_NE(a.seed(), b.seed());
  EXPECT_NE(a.public_key(), b.public_key());
  EXPECT_FALSE(b.verify("message", a.sign("message")));
  EXPECT_FALSE(ed25519_key::from_seed(std::string(31, 'a')));
  EXPECT_FALSE(ed25519_key::from_seed(std::string(33, 'a')));
  EXPECT_FALSE(ed25519_key::from_public(std::string(31, 'a')));
}

}  // namespace
}  // namespace hookd
