#include "core/common/object_id.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <unordered_set>
#include <vector>

namespace hookd {
namespace {

TEST(ObjectId, ParsesTwentyFourHexDigitsInEitherCase) {
  const auto lower = object_id::parse("65a1b2c3d4e5f60718293a4b");
  const auto upper = object_id::parse("65A1B2C3D4E5F60718293A4B");
  ASSERT_TRUE(lower.has_value());
  ASSERT_TRUE(upper.has_value());
  EXPECT_EQ(*lower, *upper);
  EXPECT_EQ(upper->to_string(), "65a1b2c3d4e5f60718293a4b");
  EXPECT_EQ(lower->bytes()[0], 0x65);
  EXPECT_EQ(lower->bytes()[11], 0x4b);
}

TEST(ObjectId, RejectsWrongLengthAndNonHex) {
  EXPECT_FALSE(object_id::parse(""));
  EXPECT_FALSE(object_id::parse("65a1b2c3d4e5f60718293a4"));    // 23
  EXPECT_FALSE(object_id::parse("65a1b2c3d4e5f60718293a4b0"));  // 25
  EXPECT_FALSE(object_id::parse("65a1b2c3d4e5f60718293a4g"));
  EXPECT_FALSE(object_id::parse("65a1b2c3d4e5f60718293a4 "));
  EXPECT_FALSE(object_id::parse(" 65a1b2c3d4e5f60718293a4"));
  EXPECT_FALSE(object_id::parse("0x5a1b2c3d4e5f60718293a4b"));
  EXPECT_FALSE(object_id::parse(std::string_view("65a1b2c3d4e5f60718293a4\0", 24)));
}

TEST(ObjectId, BinaryRoundTripAndLength) {
  const auto id = *object_id::parse("000102030405060708090a0b");
  const auto back = object_id::from_binary(id.binary());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, id);
  EXPECT_FALSE(object_id::from_binary(id.binary().substr(0, 11)));
  EXPECT_FALSE(object_id::from_binary(std::string(13, 'x')));
}

TEST(ObjectId, AppendToAddsWithoutClobbering) {
  const auto id = *object_id::parse("abcdefABCDEF000000000001");
  std::string out = "/webhooks/";
  id.append_to(out);
  EXPECT_EQ(out, "/webhooks/abcdefabcdef000000000001");
}

TEST(ObjectId, SecondsAreTheBigEndianPrefix) {
  EXPECT_EQ(object_id::parse("6929a4e0ffffffffffffffff")->seconds(), 0x6929a4e0u);
  object_id_generator gen;
  EXPECT_EQ(gen.next(1'764'468'000u).seconds(), 1'764'468'000u);
}

TEST(ObjectId, BinaryOrderMatchesHexOrderAndTime) {
  object_id_generator gen;
  const auto earlier = gen.next(1000);
  const auto later = gen.next(1001);
  EXPECT_LT(earlier, later);
  EXPECT_LT(earlier.binary(), later.binary());
  EXPECT_LT(earlier.to_string(), later.to_string());
}

// The comparisons are word compares; they must order and match exactly as the 12 bytes do (as
// unsigned bytes, first byte first), which is what RocksDB keys and the hex form sort by. Every
// pair of ids that differ in one byte, with that byte's values on both sides of 0x80, and
// random pairs.
TEST(ObjectId, ComparisonsAreTheBytesOrder) {
  const auto check = [](const object_id& a, const object_id& b) {
    const auto& x = a.bytes();
    const auto& y = b.bytes();
    const bool less = std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end());
    const bool greater = std::lexicographical_compare(y.begin(), y.end(), x.begin(), x.end());
    EXPECT_EQ(a < b, less) << a.to_string() << " " << b.to_string();
    EXPECT_EQ(a > b, greater) << a.to_string() << " " << b.to_string();
    EXPECT_EQ(a == b, !less && !greater) << a.to_string() << " " << b.to_string();
    EXPECT_EQ(a < b, a.binary() < b.binary());
    EXPECT_EQ(a < b, a.to_string() < b.to_string());
  };
  object_id::bytes_type base{};
  for (std::size_t i = 0; i < base.size(); ++i) base[i] = static_cast<std::uint8_t>(0x40 + i);
  for (std::size_t i = 0; i < base.size(); ++i) {
    for (const int v : {0x00, 0x3f, 0x7f, 0x80, 0xc0, 0xff}) {
      object_id::bytes_type changed = base;
      changed[i] = static_cast<std::uint8_t>(v);
      check(object_id(base), object_id(changed));
      check(object_id(changed), object_id(base));
      // A later byte never outweighs an earlier one.
      object_id::bytes_type later = changed;
      if (i + 1 < later.size()) later[i + 1] = static_cast<std::uint8_t>(~later[i + 1]);
      check(object_id(later), object_id(base));
    }
  }
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  const auto next_byte = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::uint8_t>(state >> 56);
  };
  for (int n = 0; n < 2000; ++n) {
    object_id::bytes_type a{};
    object_id::bytes_type b{};
    for (auto& byte : a) byte = next_byte();
    b = a;
    b[static_cast<std::size_t>(n) % b.size()] = next_byte();  // often one byte apart
    if (n % 3 == 0) {
      for (auto& byte : b) byte = next_byte();
    }
    check(object_id(a), object_id(b));
  }
  constexpr object_id nil{};
  static_assert(nil == object_id{});
  static_assert(!(nil < object_id{}));
}

TEST(ObjectId, NilIsAllZeros) {
  EXPECT_TRUE(object_id{}.is_nil());
  EXPECT_EQ(object_id{}.to_string(), std::string(24, '0'));
  object_id_generator gen;
  EXPECT_FALSE(gen.next().is_nil());
}

TEST(ObjectIdGenerator, RandomPartIsFixedPerGeneratorAndCounterIncrements) {
  object_id_generator gen;
  const auto a = gen.next(42);
  const auto b = gen.next(42);
  EXPECT_TRUE(std::equal(a.bytes().begin() + 4, a.bytes().begin() + 9, b.bytes().begin() + 4));
  auto counter = [](const object_id& id) {
    return (std::uint32_t{id.bytes()[9]} << 16) | (std::uint32_t{id.bytes()[10]} << 8) |
           id.bytes()[11];
  };
  EXPECT_EQ(counter(b), (counter(a) + 1) & 0xFFFFFFu);
}

TEST(ObjectIdGenerator, TwoGeneratorsDifferInTheRandomPart) {
  // Two generators model two processes (or a restart): the counter may overlap, the random
  // bytes must not. 40 random bits collide with probability 2^-40.
  object_id_generator first;
  object_id_generator second;
  const auto a = first.next(7);
  const auto b = second.next(7);
  EXPECT_FALSE(std::equal(a.bytes().begin() + 4, a.bytes().begin() + 9, b.bytes().begin() + 4));
  EXPECT_NE(a, b);
}

TEST(ObjectIdGenerator, UniqueAcrossFourThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100'000;
  object_id_generator gen;
  std::vector<std::vector<object_id>> produced(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&gen, &out = produced[static_cast<std::size_t>(t)]] {
      out.reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) out.push_back(gen.next());
    });
  }
  for (auto& th : threads) th.join();

  std::unordered_set<object_id> all;
  all.reserve(kThreads * kPerThread);
  for (const auto& ids : produced) {
    for (const auto& id : ids) EXPECT_TRUE(all.insert(id).second) << id.to_string();
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kPerThread));
}

TEST(ObjectIdGenerator, IdsWithinOneThreadAndSecondIncrease) {
  object_id_generator gen;
  std::vector<object_id> ids;
  for (int i = 0; i < 1000; ++i) ids.push_back(gen.next(5000));
  // The counter starts at a random value and may wrap once; apart from that single wrap
  // the sequence is strictly increasing.
  int descents = 0;
  for (std::size_t i = 1; i < ids.size(); ++i) descents += ids[i] < ids[i - 1] ? 1 : 0;
  EXPECT_LE(descents, 1);
}

TEST(ObjectIdHash, EqualIdsHashEqualAndStdHashWorks) {
  const auto a = *object_id::parse("65a1b2c3d4e5f60718293a4b");
  const auto b = *object_id::parse("65A1B2C3D4E5F60718293A4B");
  EXPECT_EQ(object_id_hash{}(a), object_id_hash{}(b));
  EXPECT_EQ(std::hash<object_id>{}(a), object_id_hash{}(a));
  const auto c = *object_id::parse("65a1b2c3d4e5f60718293a4c");
  EXPECT_NE(object_id_hash{}(a), object_id_hash{}(c));
}

// Ids of one generator differ mostly in the counter's low bits (and the seconds); a table that
// masks the hash's low bits, or takes the middle ones, must still see them spread. Of 4 096
// consecutive ids hashed into 4 096 buckets, a uniform hash fills ~63 % (1 - 1/e); a hash that
// left the counter out of those bits would fill one or a handful.
std::size_t buckets_filled(const std::vector<object_id>& ids, unsigned shift) {
  std::unordered_set<std::size_t> buckets;
  for (const object_id& id : ids) buckets.insert((object_id_hash{}(id) >> shift) & 0xFFF);
  return buckets.size();
}

TEST(ObjectIdHash, ConsecutiveIdsSpreadOverLowAndMiddleBits) {
  object_id_generator gen;
  std::vector<object_id> same_second;
  for (int i = 0; i < 4096; ++i) same_second.push_back(gen.next(1'700'000'000));
  for (unsigned shift : {0U, 16U, 40U, 52U}) {
    EXPECT_GT(buckets_filled(same_second, shift), 2400U) << "bits from " << shift;
  }
  // The same counter and random bytes in 4 096 consecutive seconds: the seconds alone spread too.
  std::vector<object_id> by_second;
  const object_id base = gen.next(1'700'000'000);
  for (std::uint32_t s = 0; s < 4096; ++s) {
    object_id::bytes_type b = base.bytes();
    const std::uint32_t t = 1'700'000'000 + s;
    b[0] = static_cast<std::uint8_t>(t >> 24);
    b[1] = static_cast<std::uint8_t>(t >> 16);
    b[2] = static_cast<std::uint8_t>(t >> 8);
    b[3] = static_cast<std::uint8_t>(t);
    by_second.emplace_back(b);
  }
  for (unsigned shift : {0U, 16U, 40U, 52U}) {
    EXPECT_GT(buckets_filled(by_second, shift), 2400U) << "bits from " << shift;
  }
  // The first ids of 4 096 generators (other processes: their random bytes and counter starts).
  std::vector<object_id> by_process;
  for (int p = 0; p < 4096; ++p) by_process.push_back(object_id_generator{}.next(1'700'000'000));
  for (unsigned shift : {0U, 16U, 40U, 52U}) {
    EXPECT_GT(buckets_filled(by_process, shift), 2400U) << "bits from " << shift;
  }
}

}  // namespace
}  // namespace hookd
