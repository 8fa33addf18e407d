// Portal session tokens (http/api/portal_token.hpp, docs/portal.md, "Session tokens"): what one
// key mints, the same key verifies until expiresAt; any other key, any changed byte or a foreign
// string does not verify.

#include "http/api/portal_token.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace hookd::http {
namespace {

using namespace std::chrono_literals;

const object_id kOrg = *object_id::parse("6760c8a01a2b3c4d5e000001");
const object_id kProject = *object_id::parse("6760c8a01a2b3c4d5e000002");
const timestamp kNow = timestamp(std::chrono::milliseconds(1'765'000'000'000));

std::string key_of(const char* raw) {
  return derive_portal_key(*aes256gcm_key::from_bytes(std::string(raw).substr(0, 32)));
}

TEST(PortalToken, VerifiesWithItsKeyUntilItExpires) {
  const std::string key = key_of("0123456789abcdef0123456789abcdef");
  const std::string token = mint_portal_token(key, {kOrg, kProject, kNow + 1h});
  EXPECT_TRUE(token.starts_with("hkp_"));
  auto check = verify_portal_token(key, token, kNow);
  ASSERT_EQ(check.state, portal_token_state::valid);
  EXPECT_EQ(check.claims.organization, kOrg);
  EXPECT_EQ(check.claims.project, kProject);
  EXPECT_EQ(check.claims.expires_at, kNow + 1h);
  EXPECT_EQ(verify_portal_token(key, token, kNow + 1h - 1ms).state, portal_token_state::valid);
  EXPECT_EQ(verify_portal_token(key, token, kNow + 1h).state, portal_token_state::expired);
  // The same master key, derived again (another node, a restart), accepts it.
  EXPECT_EQ(verify_portal_token(key_of("0123456789abcdef0123456789abcdef"), token, kNow).state,
            portal_token_state::valid);
}

TEST(PortalToken, AnyOtherKeyOrChangeIsInvalid) {
  const std::string key = key_of("0123456789abcdef0123456789abcdef");
  const std::string token = mint_portal_token(key, {kOrg, kProject, kNow + 1h});
  EXPECT_EQ(verify_portal_token(key_of("fedcba9876543210fedcba9876543210"), token, kNow).state,
            portal_token_state::invalid);
  // Every character after the prefix, changed to another base64url character.
  for (std::size_t i = 4; i < token.size(); ++i) {
    std::string changed = token;
    changed[i] = changed[i] == 'A' ? 'B' : 'A';
    const auto state = verify_portal_token(key, changed, kNow).state;
    // The last character ends in 2 padding bits, which some changes only touch.
    if (i + 1 == token.size() && state == portal_token_state::valid) continue;
    EXPECT_EQ(state, portal_token_state::invalid) << i;
  }
  for (const std::string& other :
       {std::string(), std::string("hkp_"), token.substr(0, token.size() - 4), token + "AAAA",
        "hkd_" + token.substr(4), token.substr(0, 10) + "+" + token.substr(11)}) {
    EXPECT_EQ(verify_portal_token(key, other, kNow).state, portal_token_state::invalid) << other;
  }
  // The master key never signs directly: a key equal to it does not verify.
  EXPECT_NE(key, "0123456789abcdef0123456789abcdef");
}

}  // namespace
}  // namespace hookd::http
