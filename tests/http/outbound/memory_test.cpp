// Memory follows the pending work, not the delivered traffic (docs/delivery.md): once deliveries
// have succeeded, what they cost in memory is small. A generous bound here, so that the test fails
// on a regression (before the history layout, each finished delivery kept about 930 bytes of RSS)
// and not on allocator noise; bench/soak.sh measures the resident set over a long run.
//
// What is measured is the heap in use (glibc's mallinfo2: bytes allocated and not freed), after
// the memtables are flushed. A short run's RSS is dominated by the memtables filling up (RocksDB
// caps them at 64 MiB in all, and malloc keeps what a flushed one gave back for the next one): the
// soak shows that as a plateau, but in a few seconds it would be most of the growth.

#include "support/delivery_fixture.hpp"

#include <gtest/gtest.h>

#include <malloc.h>

namespace hookd::test {
namespace {

// Bytes the heap holds for the program: small and large (mmap'd) blocks in use.
std::size_t heap_in_use() {
  const struct mallinfo2 info = ::mallinfo2();
  return info.uordblks + info.hblkhd;
}

TEST(Memory, FinishedDeliveriesLeaveAlmostNothingInMemory) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizers hold freed memory back (quarantine, shadow): RSS says nothing here";
#endif
  receiver sink;
  sink.forget_requests();  // the test's own receiver must not be what grows
  delivery_stack stack;
  const std::string org = stack.create_organization("Acme");
  const std::string proj = stack.create_project(org, "shop");
  constexpr int kWebhooks = 4;
  for (int i = 0; i < kWebhooks; ++i) {
    stack.create_webhook(org, proj,
                         {{"name", "Hook " + std::to_string(i)},
                          {"url", sink.url("/ok")},
                          {"events", json::array{"*"}}});
  }
  const auto deliver = [&](int events) {
    const std::uint64_t before = stack.log().counters().succeeded;
    for (int i = 0; i < events; ++i) {
      auto r = stack.ingest(org, proj,
                            {{"type", "order.created"},
                             {"data", {{"id", i}, {"customer", "cus_9s8d7f6g"}, {"total", 4200}}}});
      ASSERT_EQ(r.status, 202u) << r.body;
    }
    const std::uint64_t expected = before + static_cast<std::uint64_t>(events) * kWebhooks;
    ASSERT_TRUE(eventually([&] { return stack.log().counters().succeeded == expected; }, 120s));
    // Memtables out to files, as they would be in a long run (their size is bounded anyway).
    ASSERT_TRUE(stack.store().compact(table::history));
    ASSERT_TRUE(stack.store().compact(table::queue));
  };

  deliver(500);  // warm-up: pools, caches, connections, the first memtables
  const std::size_t heap_before = heap_in_use();
  constexpr int kEvents = 2500;
  deliver(kEvents);
  const std::size_t heap_after = heap_in_use();
  const double per_delivery =
      (static_cast<double>(heap_after) - static_cast<double>(heap_before)) / (kEvents * kWebhooks);
  RecordProperty("heap_bytes_per_finished_delivery", std::to_string(per_delivery));
  std::cout << "heap in use " << heap_before / 1024 << " KiB -> " << heap_after / 1024
            << " KiB over " << kEvents * kWebhooks << " deliveries: " << per_delivery
            << " bytes each\n";
  EXPECT_EQ(stack.log().counts().pending, 0u);
  EXPECT_EQ(stack.log().counts().events, 0u);  // no event kept for a finished delivery
  EXPECT_LT(per_delivery, 300.0);
}

}  // namespace
}  // namespace hookd::test
