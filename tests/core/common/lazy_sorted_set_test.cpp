#include "core/common/lazy_sorted_set.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <vector>

namespace hookd {
namespace {

std::vector<int> ascending(const lazy_sorted_set<int>& s) {
  std::vector<int> out;
  s.for_each([&out](int k) {
    out.push_back(k);
    return true;
  });
  return out;
}

std::vector<int> descending_below(const lazy_sorted_set<int>& s, std::optional<int> bound) {
  std::vector<int> out;
  s.for_each_below(bound, [&out](int k) {
    out.push_back(k);
    return true;
  });
  return out;
}

// The pending indexes' life: keys arrive mostly in order, some out of order, some come back after
// leaving; they leave mostly oldest first, some from the middle. Every view must match std::set's
// after every step.
TEST(LazySortedSet, BehavesLikeAnOrderedSetUnderTheIndexesWorkload) {
  std::mt19937 engine(20261207);
  // A number in [0, n).
  const auto random = [&engine](int n) {
    return static_cast<int>(engine() % static_cast<unsigned>(n));
  };
  lazy_sorted_set<int> lazy;
  std::set<int> model;
  int next = 0;
  for (int step = 0; step < 20000; ++step) {
    const int pick = random(100);
    if (pick < 50 || model.empty()) {
      // In order mostly; now and then an older key (a redelivery, a re-install).
      const int key = pick < 45 ? next++ : random(next + 1);
      ASSERT_EQ(lazy.insert(key), model.insert(key).second) << "insert " << key;
    } else {
      // The oldest mostly, else any key (present or not).
      const int key = pick < 85 ? *model.begin() : random(next + 1);
      ASSERT_EQ(lazy.erase(key), model.erase(key) == 1) << "erase " << key;
    }
    ASSERT_EQ(lazy.size(), model.size());
    ASSERT_EQ(lazy.empty(), model.empty());
    ASSERT_EQ(lazy.first(), model.empty() ? std::nullopt : std::optional<int>(*model.begin()));
    if (step % 97 == 0) {
      ASSERT_EQ(ascending(lazy), std::vector<int>(model.begin(), model.end()));
      const int bound = random(next + 2);
      ASSERT_EQ(
          descending_below(lazy, bound),
          std::vector<int>(std::make_reverse_iterator(model.lower_bound(bound)), model.rend()));
      ASSERT_EQ(descending_below(lazy, std::nullopt),
                std::vector<int>(model.rbegin(), model.rend()));
      const int probe = random(next + 1);
      ASSERT_EQ(lazy.contains(probe), model.contains(probe));
    }
  }
}

// A webhook with a long backlog delivered oldest first: the erased keys do not pile up.
TEST(LazySortedSet, TombstonesStayBoundedByTheLiveKeys) {
  lazy_sorted_set<int> s;
  for (int k = 0; k < 100000; ++k) s.insert(k);
  for (int k = 0; k < 99000; ++k) {
    ASSERT_TRUE(s.erase(k));
    ASSERT_LE(s.capacity_used(), 2 * s.size() + 17) << "after erasing " << k;
  }
  EXPECT_EQ(s.size(), 1000u);
  EXPECT_EQ(s.first(), 99000);
  // A key that keeps leaving and coming back costs nothing lasting either.
  for (int round = 0; round < 1000; ++round) {
    ASSERT_TRUE(s.insert(200000 + round));
    ASSERT_TRUE(s.erase(200000 + round));
  }
  EXPECT_EQ(s.size(), 1000u);
  EXPECT_LE(s.capacity_used(), 2 * s.size() + 17);
}

TEST(LazySortedSet, StopsWhenTheCallbackSaysSo) {
  lazy_sorted_set<int> s;
  for (int k : {5, 1, 9, 3, 7}) s.insert(k);
  std::vector<int> seen;
  s.for_each_below(8, [&seen](int k) {
    seen.push_back(k);
    return seen.size() < 2;
  });
  EXPECT_EQ(seen, (std::vector<int>{7, 5}));
  seen.clear();
  s.for_each([&seen](int k) {
    seen.push_back(k);
    return k < 3;
  });
  EXPECT_EQ(seen, (std::vector<int>{1, 3}));
  EXPECT_FALSE(s.insert(9));
  EXPECT_FALSE(s.erase(4));
}

}  // namespace
}  // namespace hookd
