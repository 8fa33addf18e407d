#include "core/delivery/history_keys.hpp"

#include "support/test_util.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace hookd {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using testing::id_of;

TEST(BucketPlan, WidthIsASixteenthOfTheRetentionFromASecondToADay) {
  EXPECT_EQ(bucket_plan::width_for(seconds(3)), 1u);
  EXPECT_EQ(bucket_plan::width_for(seconds(16)), 1u);
  EXPECT_EQ(bucket_plan::width_for(minutes(2)), 7u);
  EXPECT_EQ(bucket_plan::width_for(hours(16)), 3600u);
  EXPECT_EQ(bucket_plan::width_for(hours(24 * 30)), 86400u);
  EXPECT_EQ(bucket_plan::width_for(hours(24 * 365)), 86400u);
}

TEST(BucketPlan, EverySecondHasExactlyOneBucketAcrossEpochs) {
  bucket_plan plan(10);
  EXPECT_EQ(plan.start_of(0), 0u);
  EXPECT_EQ(plan.start_of(9), 0u);
  EXPECT_EQ(plan.start_of(10), 10u);
  EXPECT_EQ(plan.start_of(1'234), 1'230u);
  EXPECT_FALSE(plan.adopt(500, 10));  // same width: nothing changes
  ASSERT_TRUE(plan.adopt(1'005, 3));  // from 1 005 on, 3 s buckets
  EXPECT_EQ(plan.start_of(1'004), 1'000u);
  EXPECT_EQ(plan.end_of(1'000), 1'005u);  // cut short by the next epoch
  EXPECT_EQ(plan.start_of(1'005), 1'005u);
  EXPECT_EQ(plan.start_of(1'007), 1'005u);
  EXPECT_EQ(plan.start_of(1'008), 1'008u);
  EXPECT_EQ(plan.end_of(1'008), 1'011u);
  EXPECT_EQ(plan.previous(1'008), 1'005u);
  EXPECT_EQ(plan.previous(1'005), 1'000u);
  EXPECT_EQ(plan.previous(10), 0u);
  EXPECT_EQ(plan.previous(0), std::nullopt);

  // Walking back from any bucket visits contiguous buckets, each second in exactly one.
  std::uint32_t expected_end = plan.start_of(1'100) + 3;
  for (std::optional<std::uint32_t> b = plan.start_of(1'100); b; b = plan.previous(*b)) {
    EXPECT_EQ(plan.end_of(*b), expected_end);
    for (std::uint32_t s = *b; s < plan.end_of(*b); ++s) ASSERT_EQ(plan.start_of(s), *b);
    expected_end = *b;
  }
  EXPECT_EQ(expected_end, 0u);
}

TEST(BucketPlan, RoundTripsThroughItsMetaRecordAndRefusesDamage) {
  bucket_plan plan(86'400);
  plan.adopt(1'700'000'001, 60);
  auto back = bucket_plan::decode(plan.encode());
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->epochs(), plan.epochs());
  for (const char* bad : {"", "[]", "[[1,5]]", "[[0,0]]", "[[0,5],[0,6]]", "{}", "[[0,5,1]]"}) {
    EXPECT_FALSE(bucket_plan::decode(bad)) << bad;
  }
}

TEST(HistoryKeys, HaveTheDocumentedLayoutAndSortNewestLastWithinAPrefix) {
  const object_id project = id_of("65a0f1c2aabbccddee0000bb");
  const object_id webhook = id_of("65a0f1c2aabbccddee0000cc");
  const object_id older = id_of("65a0f1c2aabbccddee000001");
  const object_id newer = id_of("65a0f1c3aabbccddee000001");
  const std::string e = event_key(0x01020304, project, older);
  ASSERT_EQ(e.size(), 4u + 12u + 1u + 12u);
  EXPECT_EQ(e.substr(0, 4), std::string("\x01\x02\x03\x04"));
  EXPECT_EQ(e.substr(4, 12), project.binary());
  EXPECT_EQ(e[16], 'e');
  EXPECT_EQ(bucket_of_key(e), 0x01020304u);
  EXPECT_EQ(attempt_key(7, project, older, 1).size(), 4u + 12u + 1u + 12u + 4u);
  EXPECT_LT(attempt_key(7, project, older, 9), attempt_key(7, project, older, 10));
  EXPECT_LT(attempt_key(7, project, older, 255), attempt_key(7, project, older, 256));
  EXPECT_TRUE(attempt_key(7, project, older, 3).starts_with(attempt_prefix(7, project, older)));
  EXPECT_LT(finished_key(7, project, delivery_status::failed, older),
            finished_key(7, project, delivery_status::failed, newer));
  EXPECT_TRUE(finished_key(7, project, delivery_status::failed, newer)
                  .starts_with(finished_prefix(7, project, delivery_status::failed)));
  EXPECT_FALSE(finished_key(7, project, delivery_status::succeeded, newer)
                   .starts_with(finished_prefix(7, project, delivery_status::failed)));
  EXPECT_TRUE(by_webhook_key(7, project, webhook, delivery_status::succeeded, older)
                  .starts_with(by_webhook_prefix(7, project, webhook, delivery_status::succeeded)));
  // Older buckets sort first, whatever follows: one range from "" drops them all.
  EXPECT_LT(event_key(6, id_of("ffffffffffffffffffffffff"), newer), bucket_key(7));
  EXPECT_LT(bucket_key(7), event_key(7, project, older));
}

// The storage gives memtable insert hints to record keys only and refuses a range erase that
// starts at one (RocksDB 7.8 would misfile the tombstone): every range hookd erases starts at a
// bucket, a prefix, or a subject entry, none of which may look like a record's key.
TEST(HistoryKeys, RecordKeysAreTellableFromEveryPrefixAndSubjectEntry) {
  const object_id project = id_of("65a0f1c2aabbccddee0000bb");
  const object_id webhook = id_of("65a0f1c2aabbccddee0000cc");
  const object_id id = id_of("65a0f1c2aabbccddee000001");
  const auto s = delivery_status::failed;
  EXPECT_TRUE(is_record_key(event_key(7, project, id)));
  EXPECT_TRUE(is_record_key(attempt_key(7, project, id, 3)));
  EXPECT_TRUE(is_record_key(finished_key(7, project, s, id)));
  EXPECT_TRUE(is_record_key(by_webhook_key(7, project, webhook, s, id)));
  EXPECT_FALSE(is_record_key(""));
  EXPECT_FALSE(is_record_key(bucket_key(7)));
  EXPECT_FALSE(is_record_key(history_prefix(7, project)));
  EXPECT_FALSE(is_record_key(attempt_prefix(7, project, id)));
  EXPECT_FALSE(is_record_key(finished_prefix(7, project, s)));
  EXPECT_FALSE(is_record_key(by_webhook_prefix(7, project, webhook, s)));
  // A subject of the length that would make its entry as long as an attempt's key.
  EXPECT_FALSE(is_record_key(subject_key(7, project, "abc", id)));
  EXPECT_FALSE(is_record_key(subject_prefix(7, project, "customer-7")));
}

TEST(HistoryKeys, PrefixEndIsTheFirstKeyPastThePrefix) {
  EXPECT_EQ(prefix_end("ab"), "ac");
  EXPECT_EQ(prefix_end(std::string("a\xFF", 2)), "b");
  EXPECT_EQ(prefix_end(std::string("\xFF\xFF", 2)), "");
  const std::string p = history_prefix(9, id_of("ffffffffffffffffffffffff"));
  EXPECT_LT(p + std::string(40, '\xFF'), prefix_end(p));
  EXPECT_EQ(prefix_end(p), bucket_key(10));
}

}  // namespace
}  // namespace hookd
