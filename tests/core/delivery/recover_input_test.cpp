#include "core/delivery/recover_input.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>

#include <string>
#include <vector>

namespace hookd {
namespace {

std::vector<std::string> fields(const result<recover_window>& r) {
  std::vector<std::string> out;
  if (r) return out;
  for (const auto& e : r.error().errors) out.push_back(e.field + ": " + e.message);
  return out;
}

result<recover_window> parse(std::string_view body) {
  return parse_recover(boost::json::parse(body));
}

TEST(RecoverInput, SinceAloneOrWithALaterUntil) {
  auto open = parse(R"({"since":"2026-12-01T00:00:00.000Z"})");
  ASSERT_TRUE(open) << open.error().detail;
  EXPECT_FALSE(open->until);
  auto closed = parse(R"({"since":"2026-12-01T00:00:00.000Z","until":"2026-12-01T01:00:00Z"})");
  ASSERT_TRUE(closed) << closed.error().detail;
  ASSERT_TRUE(closed->until);
  EXPECT_EQ(*closed->until - closed->since, std::chrono::hours(1));
}

TEST(RecoverInput, NamesEveryFieldAtFaultInOneAnswer) {
  // A typo of "until" must not pass as a window up to now.
  EXPECT_EQ(fields(parse(R"({"since":"2026-12-01T00:00:00Z","untill":"2026-12-02T00:00:00Z"})")),
            std::vector<std::string>{"untill: unknown field"});
  EXPECT_EQ(fields(parse(R"({})")), std::vector<std::string>{"since: is required"});
  EXPECT_EQ(fields(parse(R"({"since":"2026-12-02T00:00:00Z","until":"2026-12-01T00:00:00Z"})")),
            std::vector<std::string>{"until: must be later than since"});
  const auto both = fields(parse(R"({"from":1,"since":"yesterday"})"));
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[0], "from: unknown field");
  EXPECT_EQ(both[1].substr(0, 7), "since: ");
  EXPECT_EQ(fields(parse(R"([])")), std::vector<std::string>{"body: must be a JSON object"});
}

}  // namespace
}  // namespace hookd
