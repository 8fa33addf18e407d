#include "core/catalog/scopes.hpp"

#include <gtest/gtest.h>

namespace hookd {
namespace {

TEST(Scopes, NamesRoundTrip) {
  const std::pair<scope, std::string_view> all[] = {
      {scope::admin, "admin"},
      {scope::webhooks_read, "webhooks:read"},
      {scope::webhooks_write, "webhooks:write"},
      {scope::events_write, "events:write"},
      {scope::deliveries_read, "deliveries:read"},
      {scope::deliveries_write, "deliveries:write"},
  };
  for (const auto& [s, name] : all) {
    EXPECT_EQ(scope_name(s), name);
    EXPECT_EQ(parse_scope(name), s);
  }
}

TEST(Scopes, ParseIsExact) {
  EXPECT_FALSE(parse_scope(""));
  EXPECT_FALSE(parse_scope("Admin"));
  EXPECT_FALSE(parse_scope("WEBHOOKS:READ"));
  EXPECT_FALSE(parse_scope("webhooks:read "));
  EXPECT_FALSE(parse_scope("webhooks"));
  EXPECT_FALSE(parse_scope("webhooks:*"));
  EXPECT_FALSE(parse_scope("events:read"));
}

TEST(ScopeSet, AdminAllowsEverythingButHasOnlyItself) {
  scope_set s;
  s.add(scope::admin);
  EXPECT_TRUE(s.allows(scope::webhooks_write));
  EXPECT_TRUE(s.allows(scope::deliveries_read));
  EXPECT_TRUE(s.has(scope::admin));
  EXPECT_FALSE(s.has(scope::webhooks_write));
}

TEST(ScopeSet, NonAdminAllowsOnlyWhatItHolds) {
  scope_set s;
  EXPECT_TRUE(s.empty());
  s.add(scope::webhooks_read);
  s.add(scope::events_write);
  EXPECT_FALSE(s.empty());
  EXPECT_TRUE(s.allows(scope::webhooks_read));
  EXPECT_TRUE(s.allows(scope::events_write));
  EXPECT_FALSE(s.allows(scope::webhooks_write));
  EXPECT_FALSE(s.allows(scope::admin));
}

TEST(ScopeSet, NamesInEnumOrderRegardlessOfInsertion) {
  scope_set s;
  s.add(scope::deliveries_write);
  s.add(scope::webhooks_read);
  s.add(scope::webhooks_read);
  EXPECT_EQ(s.names(), (std::vector<std::string_view>{"webhooks:read", "deliveries:write"}));
  EXPECT_TRUE(scope_set{}.names().empty());
  EXPECT_EQ(scope_set(0x3F).names().size(), 6u);
}

TEST(ScopeSet, BitsRoundTrip) {
  scope_set s;
  s.add(scope::events_write);
  s.add(scope::deliveries_read);
  EXPECT_EQ(scope_set(s.bits()), s);
}

}  // namespace
}  // namespace hookd
