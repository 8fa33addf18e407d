#include "core/delivery/event_match.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hookd {
namespace {

TEST(EventMatch, ExactPatternMatchesOnlyTheSameType) {
  EXPECT_TRUE(event_matches("invoice.paid", "invoice.paid"));
  EXPECT_FALSE(event_matches("invoice.paid", "invoice.paid.late"));
  EXPECT_FALSE(event_matches("invoice.paid", "invoice"));
  EXPECT_FALSE(event_matches("invoice.paid", "invoice.pai"));
  EXPECT_FALSE(event_matches("invoice.paid", "Invoice.Paid"));  // case-sensitive
}

TEST(EventMatch, StarMatchesEveryType) {
  EXPECT_TRUE(event_matches("*", "invoice.paid"));
  EXPECT_TRUE(event_matches("*", "webhook.ping"));
  EXPECT_TRUE(event_matches("*", "a"));
}

TEST(EventMatch, PrefixWildcardMatchesDescendantsOnly) {
  EXPECT_TRUE(event_matches("a.b.*", "a.b.c"));
  EXPECT_TRUE(event_matches("a.b.*", "a.b.c.d"));
  EXPECT_FALSE(event_matches("a.b.*", "a.b"));   // the parent itself is not included
  EXPECT_FALSE(event_matches("a.b.*", "a.bc"));  // whole segments only
  EXPECT_FALSE(event_matches("a.b.*", "a.bc.d"));
  EXPECT_FALSE(event_matches("a.b.*", "a.b."));
  EXPECT_FALSE(event_matches("a.b.*", "x.a.b.c"));
  EXPECT_FALSE(event_matches("a.b.*", "a"));
}

TEST(EventMatch, SingleSegmentPrefix) {
  EXPECT_TRUE(event_matches("user.*", "user.created"));
  EXPECT_FALSE(event_matches("user.*", "user"));
  EXPECT_FALSE(event_matches("user.*", "users.created"));
}

TEST(EventMatch, StarInsideAPatternIsLiteral) {
  EXPECT_FALSE(event_matches("a.*.c", "a.b.c"));
  EXPECT_TRUE(event_matches("a.*.c", "a.*.c"));
  EXPECT_FALSE(event_matches("a*", "ab"));
}

TEST(EventMatch, AnyMatches) {
  const std::vector<std::string> patterns{"order.created", "invoice.*"};
  EXPECT_TRUE(any_matches(patterns, "order.created"));
  EXPECT_TRUE(any_matches(patterns, "invoice.paid"));
  EXPECT_FALSE(any_matches(patterns, "invoice"));
  EXPECT_FALSE(any_matches(patterns, "order.deleted"));
  EXPECT_FALSE(any_matches({}, "order.created"));
  EXPECT_TRUE(any_matches({"nothing", "*"}, "order.deleted"));
}

}  // namespace
}  // namespace hookd
