#include "core/durable/commit_writer.hpp"

#include "core/common/thread_name.hpp"

#include <exception>
#include <string>
#include <system_error>
#include <utility>

namespace hookd {

namespace {

problem unavailable_problem() {
  return make_problem(error_kind::unavailable, "hookd is shutting down; the change was not made.");
}

std::optional<problem> write_failure(result<void>& written) {
  if (written) return std::nullopt;
  return make_problem(error_kind::storage_failure,
                      "The change could not be made durable: " + written.error().detail);
}

}  // namespace

// A group after planning: its mutations, the batch of the accepted ones and each refusal.
template <class Batch>
struct basic_commit_writer<Batch>::planned_group {
  queue_type mutations;
  Batch batch;
  std::vector<std::optional<problem>> refusals;  // per mutation; empty optional: accepted
  std::uint64_t accepted = 0;
};

template <class Batch>
basic_commit_writer<Batch>::basic_commit_writer(write_function write,
                                                std::function<void()> end_of_group,
                                                commit_writer_options options)
    : write_(std::move(write)), end_of_group_(std::move(end_of_group)), options_(options) {}

template <class Batch>
basic_commit_writer<Batch>::~basic_commit_writer() {
  stop();
}

template <class Batch>
void basic_commit_writer<Batch>::start() {
  std::lock_guard stop_lock(stop_mutex_);
  std::lock_guard lock(mutex_);
  if (started_ || stopping_) return;
  started_ = true;
  thread_ = std::thread([this] {
    set_thread_name(options_.thread_name);
    if (options_.plan_ahead) {
      run_planning_ahead();
    } else {
      run();
    }
  });
}

template <class Batch>
void basic_commit_writer<Batch>::stop() {
  if (writer_id_.load() == std::this_thread::get_id()) {
    // Called from a completion: the writer cannot join itself. It ends by itself once the queue
    // is empty, and the next stop() from another thread (or the destructor) joins it.
    std::lock_guard lock(mutex_);
    stopping_ = true;
    return;
  }
  std::lock_guard stop_lock(stop_mutex_);
  queue_type never_run;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (!started_) never_run.swap(queue_);
  }
  wake_.notify_all();
  for (auto& m : never_run) m->complete(unavailable_problem());
  if (thread_.joinable()) thread_.join();
}

template <class Batch>
void basic_commit_writer<Batch>::submit(std::unique_ptr<mutation> m) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back(std::move(m));
      // Waking under the lock would make the writer wake only to block on it again.
    }
  }
  if (m) {
    m->complete(unavailable_problem());
    return;
  }
  wake_.notify_one();
}

template <class Batch>
commit_stats basic_commit_writer<Batch>::stats() const noexcept {
  return commit_stats{
      groups_.load(std::memory_order_relaxed), mutations_.load(std::memory_order_relaxed),
      rejected_.load(std::memory_order_relaxed), failed_.load(std::memory_order_relaxed)};
}

template <class Batch>
void basic_commit_writer<Batch>::run() {
  writer_id_.store(std::this_thread::get_id());
  queue_type group;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping, and everything queued has been committed
      group.swap(queue_);
    }
    commit_group(group);
    group.clear();
  }
}

template <class Batch>
typename basic_commit_writer<Batch>::planned_group basic_commit_writer<Batch>::plan_group(
    queue_type& group) {
  planned_group g;
  plan_into(g, group);
  return g;
}

template <class Batch>
void basic_commit_writer<Batch>::plan_into(planned_group& g, queue_type& more) {
  const std::size_t first = g.mutations.size();
  if (first == 0) {
    g.mutations.swap(more);
  } else {
    for (auto& m : more) g.mutations.push_back(std::move(m));
    more.clear();
  }
  g.refusals.resize(g.mutations.size());
  for (std::size_t i = first; i < g.mutations.size(); ++i) {
    const std::size_t mark = g.batch.ops.size();
    result<void> planned = make_problem(error_kind::internal, "the change was not planned");
    try {
      planned = g.mutations[i]->plan(g.batch);
    } catch (const std::exception& e) {
      planned = make_problem(error_kind::internal,
                             std::string("planning the change failed: ") + e.what());
    }
    if (planned) {
      ++g.accepted;
    } else {
      // A refused change contributes nothing.
      g.batch.ops.erase(g.batch.ops.begin() + static_cast<std::ptrdiff_t>(mark), g.batch.ops.end());
      g.refusals[i] = std::move(planned).error();
    }
  }
}

template <class Batch>
void basic_commit_writer<Batch>::publish_group(planned_group& g) {
  for (std::size_t i = 0; i < g.mutations.size(); ++i) {
    if (!g.refusals[i]) g.mutations[i]->publish();
  }
}

template <class Batch>
void basic_commit_writer<Batch>::count_group(const planned_group& g, bool failed) {
  if (!g.batch.empty()) {
    if (failed) {
      failed_.fetch_add(g.accepted, std::memory_order_relaxed);
    } else {
      groups_.fetch_add(1, std::memory_order_relaxed);
      mutations_.fetch_add(g.accepted, std::memory_order_relaxed);
    }
  }
  rejected_.fetch_add(g.mutations.size() - g.accepted, std::memory_order_relaxed);
}

template <class Batch>
void basic_commit_writer<Batch>::complete_group(planned_group& g,
                                                const std::optional<problem>& failure) {
  for (std::size_t i = 0; i < g.mutations.size(); ++i) {
    if (g.refusals[i]) {
      g.mutations[i]->complete(std::move(*g.refusals[i]));
    } else if (failure) {
      g.mutations[i]->complete(*failure);
    } else {
      g.mutations[i]->complete(result<void>{});
    }
  }
}

template <class Batch>
void basic_commit_writer<Batch>::commit_group(queue_type& group) {
  planned_group g = plan_group(group);
  std::optional<problem> failure;
  if (!g.batch.empty()) {
    result<void> written = write_(g.batch);
    failure = write_failure(written);
  }
  if (!failure) publish_group(g);
  end_of_group_();
  count_group(g, failure.has_value());
  complete_group(g, failure);
  group.swap(g.mutations);  // hands the (now completed) mutations back for the caller to clear
}

// Every mutation of a group planned on top of a group whose write failed: its plan rests on
// changes that were never made, so it is not written, and its refusals are no answer either.
template <class Batch>
void basic_commit_writer<Batch>::fail_planned_ahead(planned_group& g, const problem& failure) {
  failed_.fetch_add(g.mutations.size(), std::memory_order_relaxed);
  const problem why =
      make_problem(error_kind::storage_failure,
                   "The change was not made: an earlier change it was planned after failed (" +
                       failure.detail + ")");
  for (auto& m : g.mutations) m->complete(why);
}

template <class Batch>
void basic_commit_writer<Batch>::write_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    write_wake_.wait(lock, [this] { return write_job_ != nullptr || write_exit_; });
    if (write_job_ == nullptr) return;
    const Batch& batch = *std::exchange(write_job_, nullptr);
    lock.unlock();
    result<void> written = make_problem(error_kind::storage_failure, "the write did not run");
    try {
      written = write_(batch);
    } catch (const std::exception& e) {
      written = make_problem(error_kind::storage_failure, std::string("write failed: ") + e.what());
    }
    lock.lock();
    write_result_ = std::move(written);
    wake_.notify_one();
  }
}

// The loop with plan_ahead: `in_flight` is being written by write_loop(); `ahead` is planned
// on top of it (everything submitted until that write returns) and is written only once that
// write has succeeded. A group is started while another is in flight at most
// max_groups_planned_ahead times in a row; then the writer waits for the write, so that
// end_of_group runs.
template <class Batch>
void basic_commit_writer<Batch>::run_planning_ahead() {
  std::thread writes;
  try {
    writes = std::thread([this] {
      set_thread_name(std::string(options_.thread_name) + ":w");
      write_loop();
    });
  } catch (const std::system_error&) {
    run();  // no second thread to be had: commit one group at a time, as without plan_ahead
    return;
  }
  writer_id_.store(std::this_thread::get_id());
  std::optional<planned_group> in_flight, ahead;
  std::size_t chained = 0;  // groups planned since end_of_group last ran

  auto issue = [this](const planned_group& g) {
    {
      std::lock_guard lock(mutex_);
      write_job_ = &g.batch;
    }
    write_wake_.notify_one();
  };
  // A group that needs no write (every mutation refused or changing nothing) and has no group
  // in flight before it: it is done at once.
  auto finish_without_write = [this, &chained](planned_group& g) {
    publish_group(g);
    end_of_group_();
    chained = 0;
    count_group(g, false);
    complete_group(g, std::nullopt);
  };

  for (;;) {
    queue_type taken;
    std::optional<result<void>> written;
    {
      std::unique_lock lock(mutex_);
      // While a write is in flight, what is queued is planned into the group after it, which
      // stays open until that write returns: it holds as much as it would have without planning
      // ahead, but most of it is planned by the time its write can start.
      const auto may_plan = [&] {
        return !queue_.empty() &&
               (ahead || !in_flight || chained < options_.max_groups_planned_ahead);
      };
      wake_.wait(lock, [&] {
        return write_result_.has_value() || may_plan() || (!in_flight && stopping_);
      });
      if (write_result_) {
        written = std::move(write_result_);
        write_result_.reset();
      } else if (may_plan()) {
        taken.swap(queue_);
      } else {
        break;  // stopping, nothing queued and nothing in flight
      }
    }

    if (!taken.empty()) {
      if (ahead) {
        plan_into(*ahead, taken);
        continue;
      }
      planned_group g = plan_group(taken);
      ++chained;
      if (in_flight) {
        ahead = std::move(g);
      } else if (g.batch.empty()) {
        finish_without_write(g);
      } else {
        in_flight = std::move(g);
        issue(*in_flight);
      }
      continue;
    }

    // The write of `in_flight` has returned.
    std::optional<problem> failure = write_failure(*written);
    planned_group done = std::move(*in_flight);
    in_flight.reset();
    if (failure) {
      end_of_group_();
      chained = 0;
      count_group(done, true);
      complete_group(done, failure);
      if (ahead) {
        planned_group dropped = std::move(*ahead);
        ahead.reset();
        fail_planned_ahead(dropped, *failure);
      }
      continue;
    }
    if (ahead) {
      // What was queued while the result was on its way joins the group planned ahead, as it
      // would have joined the next group without planning ahead.
      queue_type late;
      {
        std::lock_guard lock(mutex_);
        late.swap(queue_);
      }
      if (!late.empty()) plan_into(*ahead, late);
    }
    publish_group(done);
    if (!ahead) {
      end_of_group_();
      chained = 0;
    } else if (!ahead->batch.empty()) {
      in_flight = std::move(*ahead);
      ahead.reset();
      issue(*in_flight);  // before the completions: the next fsync starts as early as it can
    }
    count_group(done, false);
    complete_group(done, std::nullopt);
    if (ahead) {  // planned ahead but writes nothing: its turn is now
      planned_group next = std::move(*ahead);
      ahead.reset();
      finish_without_write(next);
    }
  }

  {
    std::lock_guard lock(mutex_);
    write_exit_ = true;
  }
  write_wake_.notify_one();
  writes.join();
}

template class basic_commit_writer<write_batch>;
template class basic_commit_writer<catalog_change>;

}  // namespace hookd
