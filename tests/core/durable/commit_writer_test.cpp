#include "core/durable/commit_writer.hpp"

#include "support/memory_storage.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace hookd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// What happened, in order, across all mutations of a test.
class event_log {
 public:
  void add(std::string e) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(e));
  }
  std::vector<std::string> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> events_;
};

enum class behaviour { accept, refuse_after_appending, throw_in_plan, accept_writing_nothing };

class fake_mutation final : public commit_mutation {
 public:
  fake_mutation(event_log& log, std::string name, behaviour b,
                std::function<void(result<void>)> done = {})
      : log_(log), name_(std::move(name)), behaviour_(b), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    log_.add("plan " + name_);
    switch (behaviour_) {
      case behaviour::accept:
        batch.put(table::meta, name_, "value of " + name_);
        return {};
      case behaviour::accept_writing_nothing:
        return {};
      case behaviour::refuse_after_appending:
        batch.put(table::meta, name_, "must not be written");
        return make_problem(error_kind::conflict, name_ + " refused");
      case behaviour::throw_in_plan:
        throw std::runtime_error("boom in " + name_);
    }
    return {};
  }
  void publish() override { log_.add("publish " + name_); }
  void complete(result<void> outcome) noexcept override {
    log_.add("complete " + name_ + " " +
             (outcome ? std::string("ok") : std::string(outcome.error().detail)));
    if (done_) done_(std::move(outcome));
  }

 private:
  event_log& log_;
  std::string name_;
  behaviour behaviour_;
  std::function<void(result<void>)> done_;
};

TEST(CommitWriter, OneGroupPlansInOrderWritesOncePublishesThenCompletes) {
  testing::memory_storage store;
  event_log log;
  commit_writer writer(store, [&log] { log.add("end of group"); });
  // Submitted before start(), so all four are queued when the writer first looks.
  writer.submit(std::make_unique<fake_mutation>(log, "a", behaviour::accept));
  writer.submit(std::make_unique<fake_mutation>(log, "b", behaviour::refuse_after_appending));
  writer.submit(std::make_unique<fake_mutation>(log, "c", behaviour::throw_in_plan));
  writer.submit(std::make_unique<fake_mutation>(log, "d", behaviour::accept));
  writer.start();
  writer.stop();

  EXPECT_THAT(log.events(),
              ElementsAre("plan a", "plan b", "plan c", "plan d", "publish a", "publish d",
                          "end of group", "complete a ok", "complete b b refused",
                          "complete c planning the change failed: boom in c", "complete d ok"));
  const auto batches = store.batches();
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches[0].ops.size(), 2u);  // b's record was dropped with its refusal
  EXPECT_EQ(batches[0].ops[0].key, "a");
  EXPECT_EQ(batches[0].ops[1].key, "d");
  const commit_stats s = writer.stats();
  EXPECT_EQ(s.groups, 1u);
  EXPECT_EQ(s.mutations, 2u);
  EXPECT_EQ(s.rejected, 2u);
  EXPECT_EQ(s.failed, 0u);
}

TEST(CommitWriter, FailedWritePublishesNothing) {
  testing::memory_storage store;
  store.fail_next_write();
  event_log log;
  commit_writer writer(store, [&log] { log.add("end of group"); });
  writer.submit(std::make_unique<fake_mutation>(log, "a", behaviour::accept));
  writer.submit(std::make_unique<fake_mutation>(log, "b", behaviour::refuse_after_appending));
  writer.submit(std::make_unique<fake_mutation>(log, "c", behaviour::accept_writing_nothing));
  writer.start();
  writer.stop();

  const auto events = log.events();
  ASSERT_EQ(events.size(), 7u);
  EXPECT_EQ(events[3], "end of group");
  EXPECT_THAT(events[4], HasSubstr("complete a The change could not be made durable"));
  EXPECT_THAT(events[4], HasSubstr("injected write failure"));
  EXPECT_EQ(events[5], "complete b b refused");
  EXPECT_THAT(events[6], HasSubstr("complete c The change could not be made durable"));
  EXPECT_TRUE(store.records(table::meta).empty());
  const commit_stats s = writer.stats();
  EXPECT_EQ(s.groups, 0u);
  EXPECT_EQ(s.failed, 2u);
  EXPECT_EQ(s.rejected, 1u);
}

TEST(CommitWriter, GroupThatWritesNothingSkipsStorage) {
  testing::memory_storage store;
  event_log log;
  commit_writer writer(store, [] {});
  writer.submit(std::make_unique<fake_mutation>(log, "a", behaviour::accept_writing_nothing));
  writer.submit(std::make_unique<fake_mutation>(log, "b", behaviour::refuse_after_appending));
  writer.start();
  writer.stop();
  EXPECT_EQ(store.stats().batches, 0u);
  EXPECT_EQ(writer.stats().groups, 0u);
  EXPECT_THAT(log.events(), ElementsAre("plan a", "plan b", "publish a", "complete a ok",
                                        "complete b b refused"));
}

TEST(CommitWriter, AfterStopSubmitCompletesInlineAsUnavailable) {
  testing::memory_storage store;
  event_log log;
  commit_writer writer(store, [] {});
  writer.start();
  writer.stop();
  writer.submit(std::make_unique<fake_mutation>(log, "late", behaviour::accept));
  ASSERT_EQ(log.events().size(), 1u);
  EXPECT_THAT(log.events()[0], HasSubstr("complete late"));
  EXPECT_THAT(log.events()[0], HasSubstr("shutting down"));
  EXPECT_EQ(store.stats().batches, 0u);
}

TEST(CommitWriter, StopWithoutStartCompletesQueuedAsUnavailable) {
  testing::memory_storage store;
  event_log log;
  result<void> outcome;
  {
    commit_writer writer(store, [] {});
    writer.submit(std::make_unique<fake_mutation>(log, "a", behaviour::accept,
                                                  [&](result<void> r) { outcome = r; }));
  }
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().kind, error_kind::unavailable);
  EXPECT_THAT(log.events(), ElementsAre(::testing::StartsWith("complete a")));
}

TEST(CommitWriter, CompletionMaySubmitAndMayStop) {
  testing::memory_storage store;
  event_log log;
  commit_writer writer(store, [] {});
  writer.start();
  std::promise<result<void>> second_done;
  // The first completion queues a follow-up (no lock is held while it runs), and the follow-up's
  // completion stops the writer from the writer thread itself (which must not self-join).
  writer.submit(std::make_unique<fake_mutation>(log, "first", behaviour::accept, [&](result<void>) {
    writer.submit(
        std::make_unique<fake_mutation>(log, "second", behaviour::accept, [&](result<void> r) {
          writer.stop();
          second_done.set_value(r);
        }));
  }));
  EXPECT_TRUE(second_done.get_future().get());
  writer.stop();  // joins the thread that stopped itself
  EXPECT_EQ(store.stats().batches, 2u);
  writer.submit(std::make_unique<fake_mutation>(log, "third", behaviour::accept));
  EXPECT_THAT(log.events().back(), HasSubstr("complete third hookd is shutting down"));
}

// ---- plan_ahead

// Holds the first write() of a storage (via memory_storage's hook) until released, and lets the
// test wait for things the writer thread logs meanwhile. Waits are bounded so that a writer that
// never gets there fails the test instead of hanging it.
class write_gate {
 public:
  void install(testing::memory_storage& store) {
    store.set_before_write([this] {
      std::unique_lock lock(mutex_);
      if (writes_++ != 0) return;
      entered_ = true;
      changed_.notify_all();
      changed_.wait(lock, [this] { return released_; });
    });
  }
  bool wait_entered() {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10), [this] { return entered_; });
  }
  void release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int writes_ = 0;
  bool entered_ = false, released_ = false;
};

bool wait_for_event(const event_log& log, const std::string& event) {
  for (int i = 0; i < 10000; ++i) {
    for (const auto& e : log.events()) {
      if (e == event) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

commit_writer_options planning_ahead(std::size_t max_groups = 16) {
  commit_writer_options o;
  o.plan_ahead = true;
  o.max_groups_planned_ahead = max_groups;
  return o;
}

TEST(CommitWriterPlanAhead, PlansTheNextGroupDuringAWriteButPublishesInOrderAfterEachWrite) {
  testing::memory_storage store;
  write_gate gate;
  gate.install(store);
  event_log log;
  commit_writer writer(
      store, [&log] { log.add("end of group"); }, planning_ahead());
  writer.start();
  writer.submit(std::make_unique<fake_mutation>(log, "a", behaviour::accept));
  ASSERT_TRUE(gate.wait_entered());
  // a's write is held: b is planned meanwhile, but nothing may be published or completed, and
  // b's write may not start before a's has returned.
  writer.submit(std::make_unique<fake_mutation>(log, "b", behaviour::accept));
  ASSERT_TRUE(wait_for_event(log, "plan b"));
  // ...and so is c, submitted later, into the same group as b.
  writer.submit(std::make_unique<fake_mutation>(log, "c", behaviour::refuse_after_appending));
  writer.submit(std::make_unique<fake_mutation>(log, "d", behaviour::accept));
  ASSERT_TRUE(wait_for_event(log, "plan d"));
  EXPECT_THAT(log.events(), ElementsAre("plan a", "plan b", "plan c", "plan d"));
  EXPECT_TRUE(store.batches().empty());
  EXPECT_EQ(store.stats().batches, 0u);
  gate.release();
  writer.stop();

  // end_of_group runs once, when no group is planned on top of the one that published.
  EXPECT_THAT(log.events(), ElementsAre("plan a", "plan b", "plan c", "plan d", "publish a",
                                        "complete a ok", "publish b", "publish d", "end of group",
                                        "complete b ok", "complete c c refused", "complete d ok"));
  const auto batches = store.batches();
  ASSERT_EQ(batches.size(), 2u);
  ASSERT_EQ(batches[0].ops.size(), 1u);
  EXPECT_EQ(batches[0].ops[0].key, "a");
  ASSERT_EQ(batches[1].ops.size(), 2u);  // c's record was dropped with its refusal
  EXPECT_EQ(batches[1].ops[0].key, "b");
  EXPECT_EQ(batches[1].ops[1].key, "d");
  const commit_stats s = writer.stats();
  EXPECT_EQ(s.groups, 2u);
  EXPECT_EQ(s.mutations, 3u);
  EXPECT_EQ(s.rejected, 1u);
}

TEST(CommitWriterPlanAhead, AFailedWriteFailsTheGroupPlannedOnItWithoutWritingIt) {
  testing::memory_storage store;
  store.fail_next_write();
  write_gate gate;
  gate.install(store);
  event_log log;
  commit_writer writer(
      store, [&log] { log.add("end of group"); }, planning_ahead());
  writer.start();
  writer.submit(std::make_unique<fake_mutation>(log, "a", behaviour::accept));
  ASSERT_TRUE(gate.wait_entered());
  writer.submit(std::make_unique<fake_mutation>(log, "b", behaviour::accept));
  ASSERT_TRUE(wait_for_event(log, "plan b"));
  gate.release();
  // Once the failure is reported, the writer goes on normally.
  ASSERT_TRUE(wait_for_event(log, "end of group"));
  std::promise<result<void>> d_done;
  writer.submit(std::make_unique<fake_mutation>(log, "d", behaviour::accept,
                                                [&](result<void> r) { d_done.set_value(r); }));
  EXPECT_TRUE(d_done.get_future().get());
  writer.stop();

  const auto events = log.events();
  ASSERT_EQ(events.size(), 9u);
  EXPECT_EQ(events[0], "plan a");
  EXPECT_EQ(events[1], "plan b");
  EXPECT_EQ(events[2], "end of group");  // nothing published before it
  EXPECT_THAT(events[3], HasSubstr("complete a The change could not be made durable"));
  // b was planned against a's change, which was never made: b is not written.
  EXPECT_THAT(events[4], HasSubstr("complete b The change was not made: an earlier change"));
  EXPECT_EQ(events[5], "plan d");
  EXPECT_EQ(events[6], "publish d");
  EXPECT_EQ(events[7], "end of group");
  EXPECT_EQ(events[8], "complete d ok");
  const auto batches = store.batches();
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches[0].ops.size(), 1u);
  EXPECT_EQ(batches[0].ops[0].key, "d");
  const commit_stats s = writer.stats();
  EXPECT_EQ(s.groups, 1u);
  EXPECT_EQ(s.failed, 2u);
}

TEST(CommitWriterPlanAhead, EndOfGroupRunsBeforeMorePlanningOnceTheBoundIsReached) {
  testing::memory_storage store;
  write_gate gate;
  gate.install(store);
  event_log log;
  commit_writer writer(
      store, [&log] { log.add("end of group"); }, planning_ahead(1));
  writer.start();
  writer.submit(std::make_unique<fake_mutation>(log, "a", behaviour::accept));
  ASSERT_TRUE(gate.wait_entered());
  writer.submit(std::make_unique<fake_mutation>(log, "b", behaviour::accept));
  gate.release();
  writer.stop();
  EXPECT_THAT(log.events(), ElementsAre("plan a", "publish a", "end of group", "complete a ok",
                                        "plan b", "publish b", "end of group", "complete b ok"));
}

TEST(CommitWriterPlanAhead, OneGroupBehavesAsWithoutPlanningAhead) {
  testing::memory_storage store;
  event_log log;
  commit_writer writer(
      store, [&log] { log.add("end of group"); }, planning_ahead());
  writer.submit(std::make_unique<fake_mutation>(log, "a", behaviour::accept));
  writer.submit(std::make_unique<fake_mutation>(log, "b", behaviour::refuse_after_appending));
  writer.submit(std::make_unique<fake_mutation>(log, "c", behaviour::accept_writing_nothing));
  writer.start();
  writer.stop();
  EXPECT_THAT(log.events(),
              ElementsAre("plan a", "plan b", "plan c", "publish a", "publish c", "end of group",
                          "complete a ok", "complete b b refused", "complete c ok"));
  ASSERT_EQ(store.batches().size(), 1u);
  EXPECT_EQ(store.batches()[0].ops.size(), 1u);
}

TEST(CommitWriterPlanAhead, GroupWritingNothingPlannedAheadCompletesAfterThePreviousGroup) {
  testing::memory_storage store;
  write_gate gate;
  gate.install(store);
  event_log log;
  commit_writer writer(
      store, [&log] { log.add("end of group"); }, planning_ahead());
  writer.start();
  writer.submit(std::make_unique<fake_mutation>(log, "a", behaviour::accept));
  ASSERT_TRUE(gate.wait_entered());
  writer.submit(std::make_unique<fake_mutation>(log, "b", behaviour::accept_writing_nothing));
  ASSERT_TRUE(wait_for_event(log, "plan b"));
  EXPECT_THAT(log.events(), ElementsAre("plan a", "plan b"));
  gate.release();
  writer.stop();
  EXPECT_THAT(log.events(), ElementsAre("plan a", "plan b", "publish a", "complete a ok",
                                        "publish b", "end of group", "complete b ok"));
  EXPECT_EQ(store.stats().batches, 1u);
}

TEST(CommitWriterPlanAhead, StopFinishesEverythingQueuedAndSubmitAfterStopIsRefused) {
  testing::memory_storage store;
  event_log log;
  std::atomic<int> ok{0};
  {
    commit_writer writer(
        store, [] {}, planning_ahead(2));
    writer.start();
    for (int i = 0; i < 200; ++i) {
      writer.submit(std::make_unique<fake_mutation>(log, "m" + std::to_string(i), behaviour::accept,
                                                    [&](result<void> r) {
                                                      if (r) ++ok;
                                                    }));
    }
    writer.stop();
    writer.submit(std::make_unique<fake_mutation>(log, "late", behaviour::accept));
    EXPECT_THAT(log.events().back(), HasSubstr("complete late hookd is shutting down"));
  }
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(store.records(table::meta).size(), 200u);
  // Publishes follow the submission order across all groups.
  int next = 0;
  for (const auto& e : log.events()) {
    if (e.rfind("publish ", 0) == 0) {
      EXPECT_EQ(e, "publish m" + std::to_string(next++));
    }
  }
  EXPECT_EQ(next, 200);
}

}  // namespace
}  // namespace hookd
