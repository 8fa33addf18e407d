#include "core/delivery/trace_context.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

namespace hookd {
namespace {

constexpr std::string_view kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

bool well_formed(std::string_view t) {
  return parse_traceparent(t).has_value() && t.size() == kTraceparentSize;
}

TEST(TraceContext, AValidVersion00HeaderIsKeptAsItIs) {
  EXPECT_EQ(parse_traceparent(kValid), std::string(kValid));
  EXPECT_EQ(parse_traceparent(std::string(" ") + std::string(kValid) + "\t"), std::string(kValid));
  // Other flags of version 00 are kept.
  EXPECT_EQ(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  EXPECT_EQ(trace_id_of(kValid), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(span_id_of(kValid), "00f067aa0ba902b7");
}

TEST(TraceContext, InvalidHeadersAreRefused) {
  for (std::string_view bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",      // no flags
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",  // 00 is exactly 55
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero parent id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // version ff
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // separator
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   // not hex
           "0-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",   // short version
           "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // later: '-' must follow
       }) {
    EXPECT_EQ(parse_traceparent(bad), std::nullopt) << bad;
  }
}

TEST(TraceContext, ALaterVersionIsReadAsVersion00WithItsSampledFlag) {
  EXPECT_EQ(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-extra"),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02"),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
}

TEST(TraceContext, AChildKeepsTheTraceAndFlagsWithAFreshSpan) {
  std::set<std::string> spans;
  for (int i = 0; i < 50; ++i) {
    const std::string child = child_traceparent(kValid);
    EXPECT_TRUE(well_formed(child)) << child;
    EXPECT_EQ(trace_id_of(child), trace_id_of(kValid));
    EXPECT_NE(span_id_of(child), span_id_of(kValid));
    EXPECT_EQ(child.substr(53), "01");
    spans.insert(std::string(span_id_of(child)));
  }
  EXPECT_EQ(spans.size(), 50u);  // 64 random bits each
  EXPECT_EQ(child_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").substr(53),
            "00");
}

TEST(TraceContext, ANewTraceIsValidSampledAndRandom) {
  const std::string a = new_traceparent(), b = new_traceparent();
  EXPECT_TRUE(well_formed(a)) << a;
  EXPECT_EQ(a.substr(53), "01");
  EXPECT_NE(trace_id_of(a), trace_id_of(b));
}

// Ids come from a per-thread buffer: many draws on several threads at once, across several
// refills of each buffer, never repeat, and every one is a well-formed, non-zero id.
TEST(TraceContext, IdsDrawnOnSeveralThreadsAreUniqueAndWellFormed) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;  // 40 000 bytes of span ids per thread: about ten refills
  std::vector<std::vector<std::string>> drawn(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&out = drawn[static_cast<std::size_t>(t)]] {
      for (int i = 0; i < kPerThread; ++i) {
        out.push_back(i % 2 == 0 ? child_traceparent(kValid) : new_traceparent());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::string> spans, traces;
  for (const auto& list : drawn) {
    for (const std::string& t : list) {
      ASSERT_TRUE(well_formed(t)) << t;
      EXPECT_NE(span_id_of(t), "0000000000000000");
      EXPECT_NE(trace_id_of(t), "00000000000000000000000000000000");
      EXPECT_TRUE(spans.insert(std::string(span_id_of(t))).second) << "repeated span " << t;
      if (trace_id_of(t) != trace_id_of(kValid)) {
        EXPECT_TRUE(traces.insert(std::string(trace_id_of(t))).second) << "repeated trace " << t;
      }
    }
  }
  EXPECT_EQ(spans.size(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(traces.size(), static_cast<std::size_t>(kThreads * kPerThread / 2));
}

}  // namespace
}  // namespace hookd
