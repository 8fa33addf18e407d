#pragma once
// The single writer with group commit (in the manner of LMAX's batching consumer).
//
// Callers submit mutations; submit() only pushes onto a queue and never waits for I/O. One writer
// thread takes everything queued at once (a group) and, in queue order, asks each mutation to plan
// itself into one shared batch. A refused mutation contributes nothing. The batch is written with
// one call of the writer's write function (one storage.write, one fsync); when it is durable every
// accepted mutation publishes, in order, and only then do the completions run, again in order.
// When the write fails nothing is published and every accepted mutation completes with
// storage_failure.
//
// The batch type is a parameter: a write_batch of key-value records (commit_writer, written with
// storage::write), or the catalog's typed catalog_change (written with catalog_store::commit).
// It needs a vector `ops` (a refused mutation's ops are cut off again) and empty().
//
// Everything queued while one fsync runs goes into the next group, so under load the cost of an
// fsync is shared by all the changes that waited for it, and a lone change waits for no timer.
//
// Planning ahead (commit_writer_options::plan_ahead, off by default): while one group's write
// (its fsync) is in flight on a second thread, the writer thread already plans the next group
// as its mutations arrive (the group closes when that write returns, so it is as large as
// without planning ahead), so that planning is no longer between one fsync and the next. Only the
// planning overlaps: a group's write starts after the previous group's write has returned, groups
// publish in order, each only after its own write succeeded, and completions still follow their
// group's publish. What changes for the owner:
// - end_of_group runs only when no later group has been planned yet (at the latest after
//   max_groups_planned_ahead groups in a row, where the writer lets the pipeline drain), so the
//   overlay may span several groups: it must hold absolute values (what the state will be, as
//   the catalog's does), never deltas, so that entries of an already published group stay true.
// - when a write fails, the group planned on top of it is not written: each of its mutations
//   completes with storage_failure, after end_of_group, like the failed group's.
//
// Thread safety: submit(), stats() and stop() may be called from any thread. plan(), publish()
// and complete() run on the writer thread only (or on the caller of stop() when the writer was
// never started), never under a lock of this class. The write function runs on the writer thread,
// or with plan_ahead on the writer's own write thread, one write at a time.

#include "core/catalog/catalog.hpp"  // commit_stats
#include "core/catalog/catalog_store.hpp"
#include "core/common/error.hpp"
#include "core/durable/storage.hpp"

#include <atomic>
#include <concepts>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

namespace hookd {

// One logical change. Its methods are called on the writer thread, at most once each, in the
// order plan, publish (only if planned and durable), complete.
template <class Batch>
class basic_commit_mutation {
 public:
  virtual ~basic_commit_mutation() = default;
  // Decides the change against the published state plus what the earlier accepted mutations of
  // this group planned (an overlay the owner keeps and clears in end_of_group). On success it
  // appends its records to `batch` (possibly none: a change that changes nothing). On refusal it
  // returns the problem and must leave the overlay as it was; records it appended are dropped.
  virtual result<void> plan(Batch& batch) = 0;
  // The batch is durable: make the change visible to readers.
  virtual void publish() = 0;
  // Delivers the outcome: success after publish, or the refusal, storage_failure or unavailable.
  // Must not throw.
  virtual void complete(result<void> outcome) noexcept = 0;
};

struct commit_writer_options {
  bool plan_ahead = false;  // see "Planning ahead" above
  // With plan_ahead: groups planned in a row before end_of_group must run (bounds the overlay).
  std::size_t max_groups_planned_ahead = 16;
  // The writer thread's name (set_thread_name); with plan_ahead the thread that writes the planned
  // groups is named thread_name + ":w" (docs/operations.md, "Threads").
  std::string_view thread_name = "writer";
};

template <class Batch>
class basic_commit_writer {
 public:
  using mutation = basic_commit_mutation<Batch>;
  // Makes a batch durable, all or nothing; an error means nothing of it was stored.
  using write_function = std::function<result<void>(const Batch&)>;

  // `end_of_group` runs on the writer thread after each group has been written (or failed) and
  // published, before the completions: the owner clears its planning overlay there. With
  // options.plan_ahead it runs only when no later group has been planned (see above).
  basic_commit_writer(write_function write, std::function<void()> end_of_group,
                      commit_writer_options options = {});
  // Key-value batches written with store.write.
  basic_commit_writer(storage& store, std::function<void()> end_of_group,
                      commit_writer_options options = {}) requires std::same_as<Batch, write_batch>
      : basic_commit_writer([&store](const write_batch& b) { return store.write(b); },
                            std::move(end_of_group), options) {}
  ~basic_commit_writer();  // stop()
  basic_commit_writer(const basic_commit_writer&) = delete;
  basic_commit_writer& operator=(const basic_commit_writer&) = delete;

  void start();  // starts the writer thread; mutations submitted before start wait for it
  // Lets the writer finish everything queued (those complete normally), then joins it. When the
  // writer was never started, queued mutations complete with `unavailable`. Idempotent.
  void stop();

  // Queues `m`. After stop() it completes `m` inline with `unavailable` instead.
  void submit(std::unique_ptr<mutation> m);

  commit_stats stats() const noexcept;

 private:
  using queue_type = std::vector<std::unique_ptr<mutation>>;
  struct planned_group;
  void run();
  void run_planning_ahead();
  void write_loop();
  planned_group plan_group(queue_type& group);
  void plan_into(planned_group& g, queue_type& more);
  void publish_group(planned_group& g);
  void complete_group(planned_group& g, const std::optional<problem>& failure);
  void count_group(const planned_group& g, bool failed);
  void fail_planned_ahead(planned_group& g, const problem& failure);
  void commit_group(queue_type& group);

  write_function write_;
  std::function<void()> end_of_group_;
  const commit_writer_options options_;

  std::mutex stop_mutex_;  // serializes start() and stop() so that one caller joins
  std::mutex mutex_;
  std::condition_variable wake_;
  queue_type queue_;                          // guarded by mutex_
  bool stopping_ = false;                     // guarded by mutex_
  bool started_ = false;                      // guarded by mutex_
  std::thread thread_;                        // guarded by stop_mutex_
  std::atomic<std::thread::id> writer_id_{};  // set by the writer thread when it starts

  // plan_ahead: the write thread's hand-over, guarded by mutex_.
  std::condition_variable write_wake_;
  const Batch* write_job_ = nullptr;          // the batch to write next (owned by the writer)
  std::optional<result<void>> write_result_;  // the outcome of the last job, until taken
  bool write_exit_ = false;

  std::atomic<std::uint64_t> groups_{0}, mutations_{0}, rejected_{0}, failed_{0};
};

// Both are instantiated in commit_writer.cpp.
extern template class basic_commit_writer<write_batch>;
extern template class basic_commit_writer<catalog_change>;

using commit_mutation = basic_commit_mutation<write_batch>;
using commit_writer = basic_commit_writer<write_batch>;

}  // namespace hookd
