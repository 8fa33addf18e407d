// The in-memory store that core tests run on, held to the storage contract where the RocksDB
// store's tests hold that one (tests/storage/rocksdb_storage_test.cpp): range deletes, range
// scans in either order, sizes. A core test that relies on these can trust the double.

#include "support/memory_storage.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hookd {
namespace {

using key_list = std::vector<std::string>;
using testing::memory_storage;

class MemoryStorageTest : public ::testing::Test {
 protected:
  void write(const write_batch& batch) {
    auto written = store_.write(batch);
    ASSERT_TRUE(written) << written.error().detail;
  }

  void put_all(table t, const key_list& keys) {
    write_batch batch;
    for (const std::string& k : keys) batch.put(t, k, "value of " + k);
    write(batch);
  }

  key_list scan_range(table t, std::string_view lower, std::string_view upper, scan_order order,
                      std::size_t limit = std::numeric_limits<std::size_t>::max()) const {
    key_list out;
    auto scanned =
        store_.scan_range(t, lower, upper, order, [&](std::string_view k, std::string_view) {
          out.emplace_back(k);
          return out.size() < limit;
        });
    EXPECT_TRUE(scanned) << scanned.error().detail;
    return out;
  }

  key_list all_keys(table t) const {
    key_list out;
    for (const auto& [k, v] : store_.records(t)) out.push_back(k);
    return out;
  }

  memory_storage store_;
};

TEST_F(MemoryStorageTest, EraseRangeDeletesExactlyTheRangeInOneRecord) {
  // Keys at both edges of ["c", "m"), and the same keys in another table.
  const key_list keys = {
      "a", "b", "b\xff", "c", std::string("c\0", 2), "c1", "l\xff\xff", "m", std::string("m\0", 2),
      "z"};
  put_all(table::history, keys);
  put_all(table::queue, keys);

  const storage_stats before = store_.stats();
  write_batch erase;
  erase.erase_range(table::history, "c", "m");
  write(erase);
  EXPECT_EQ(store_.stats().records - before.records, 1u);
  EXPECT_EQ(all_keys(table::history),
            (key_list{"a", "b", "b\xff", "m", std::string("m\0", 2), "z"}));
  EXPECT_EQ(all_keys(table::queue), keys);

  // batches() shows the range as written: one op, its end engaged.
  const write_batch recorded = store_.batches().back();
  ASSERT_EQ(recorded.ops.size(), 1u);
  EXPECT_EQ(recorded.ops[0].where, table::history);
  EXPECT_EQ(recorded.ops[0].key, "c");
  EXPECT_EQ(recorded.ops[0].value, std::nullopt);
  EXPECT_EQ(recorded.ops[0].range_end, "m");
}

TEST_F(MemoryStorageTest, EraseRangeAppliesInBatchOrder) {
  put_all(table::history, {"k1"});
  write_batch batch;
  batch.put(table::history, "k2", "written before the erase");
  batch.erase_range(table::history, "k", "l");
  batch.put(table::history, "k3", "written after it");
  write(batch);
  EXPECT_EQ(store_.records(table::history),
            (std::map<std::string, std::string>{{"k3", "written after it"}}));
}

TEST_F(MemoryStorageTest, AnEraseRangeThatEndsBeforeItBeginsWritesNothing) {
  put_all(table::history, {"a", "b"});
  write_batch backwards;
  backwards.put(table::history, "c", "3");
  backwards.erase_range(table::history, "b", "a");
  auto written = store_.write(backwards);
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().kind, error_kind::internal);
  EXPECT_EQ(store_.stats().failures, 1u);
  EXPECT_EQ(store_.batches().size(), 1u);  // only the first
  EXPECT_EQ(all_keys(table::history), (key_list{"a", "b"}));

  write_batch empty_range;  // begin == end: nothing to delete, and not an error
  empty_range.erase_range(table::history, "a", "a");
  write(empty_range);
  EXPECT_EQ(all_keys(table::history), (key_list{"a", "b"}));
}

TEST_F(MemoryStorageTest, ScanRangeVisitsTheBoundsInEitherOrder) {
  put_all(table::history, {"a", "b", "c", "d", "e"});
  put_all(table::queue, {"b2"});

  constexpr auto up = scan_order::ascending;
  constexpr auto down = scan_order::descending;
  const table h = table::history;
  EXPECT_EQ(scan_range(h, "", "", up), (key_list{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(scan_range(h, "", "", down), (key_list{"e", "d", "c", "b", "a"}));
  EXPECT_EQ(scan_range(h, "b", "d", up), (key_list{"b", "c"}));  // lower in, upper out
  EXPECT_EQ(scan_range(h, "b", "d", down), (key_list{"c", "b"}));
  EXPECT_EQ(scan_range(h, "bb", "dd", up), (key_list{"c", "d"}));  // bounds between keys
  EXPECT_EQ(scan_range(h, "bb", "dd", down), (key_list{"d", "c"}));
  EXPECT_EQ(scan_range(h, "c", "", up), (key_list{"c", "d", "e"}));  // to the end
  EXPECT_EQ(scan_range(h, "c", "", down), (key_list{"e", "d", "c"}));
  EXPECT_EQ(scan_range(h, "", "c", up), (key_list{"a", "b"}));
  EXPECT_EQ(scan_range(h, "", "c", down), (key_list{"b", "a"}));
  EXPECT_EQ(scan_range(h, "", "", up, 2), (key_list{"a", "b"}));
  EXPECT_EQ(scan_range(h, "", "", down, 2), (key_list{"e", "d"}));
  EXPECT_EQ(scan_range(h, "b", "e", down, 1), (key_list{"d"}));
  for (scan_order order : {up, down}) {
    EXPECT_EQ(scan_range(h, "c", "c", order), key_list{});
    EXPECT_EQ(scan_range(h, "d", "b", order), key_list{});
    EXPECT_EQ(scan_range(h, "bb", "bc", order), key_list{});
    EXPECT_EQ(scan_range(h, "f", "", order), key_list{});
    EXPECT_EQ(scan_range(table::meta, "", "", order), key_list{});
  }
  std::vector<std::pair<std::string, std::string>> seen;
  ASSERT_TRUE(store_.scan_range(h, "d", "", down, [&](std::string_view k, std::string_view v) {
    seen.emplace_back(k, v);
    return true;
  }));
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, std::string>>{{"e", "value of e"},
                                                                    {"d", "value of d"}}));
}

TEST_F(MemoryStorageTest, ScanRangeComparesKeysAsUnsignedBytes) {
  const key_list keys = {std::string("\x00\x01", 2), "\x7f", "\x80", "\xff\x00"};
  put_all(table::history, keys);
  EXPECT_EQ(scan_range(table::history, "\x01", "\xff", scan_order::descending),
            (key_list{"\x80", "\x7f"}));
  EXPECT_EQ(scan_range(table::history, "\x80", "", scan_order::ascending),
            (key_list{"\x80", "\xff\x00"}));
}

TEST_F(MemoryStorageTest, AVisitorMayCallTheStore) {
  put_all(table::history, {"a", "b"});
  key_list copied;
  ASSERT_TRUE(store_.scan_range(table::history, "", "", scan_order::descending,
                                [&](std::string_view k, std::string_view v) {
                                  write_batch batch;
                                  batch.put(table::queue, std::string(k), std::string(v));
                                  EXPECT_TRUE(store_.write(batch));
                                  copied.emplace_back(k);
                                  return true;
                                }));
  EXPECT_EQ(copied, (key_list{"b", "a"}));
  EXPECT_EQ(all_keys(table::queue), (key_list{"a", "b"}));
}

TEST_F(MemoryStorageTest, SizeIsTheKeyAndValueBytesAndReclaimChangesNothing) {
  EXPECT_EQ(store_.size(table::history).bytes, 0u);
  EXPECT_EQ(store_.size(table::history).keys, 0u);
  write_batch batch;
  batch.put(table::history, "k1", "12345");
  batch.put(table::history, "k2", "");
  batch.put(table::history, "x", "abc");
  batch.put(table::queue, "other", "table");
  write(batch);
  EXPECT_EQ(store_.size(table::history).bytes, 2u + 5u + 2u + 0u + 1u + 3u);
  EXPECT_EQ(store_.size(table::history).keys, 3u);

  write_batch erase;
  erase.erase_range(table::history, "k", "l");
  write(erase);
  EXPECT_EQ(store_.size(table::history).bytes, 4u);  // freed at once
  EXPECT_EQ(store_.size(table::history).keys, 1u);

  ASSERT_TRUE(store_.reclaim(table::history, "k", "l", nullptr));
  ASSERT_TRUE(store_.reclaim(table::history, "", "", nullptr));
  EXPECT_EQ(all_keys(table::history), key_list{"x"});
  EXPECT_EQ(store_.size(table::queue).keys, 1u);
}

}  // namespace
}  // namespace hookd
