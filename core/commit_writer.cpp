#include "core/commit_writer.hpp"

#include <exception>
#include <utility>

namespace hookd {

namespace {

problem unavailable_problem() {
  return make_problem(error_kind::unavailable, "hookd is shutting down; the change was not made.");
}

}  // namespace

commit_writer::commit_writer(storage& store, std::function<void()> end_of_group)
    : store_(store), end_of_group_(std::move(end_of_group)) {}

commit_writer::~commit_writer() {
  stop();
}

void commit_writer::start() {
  std::lock_guard stop_lock(stop_mutex_);
  std::lock_guard lock(mutex_);
  if (started_ || stopping_) return;
  started_ = true;
  thread_ = std::thread([this] { run(); });
}

void commit_writer::stop() {
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

void commit_writer::submit(std::unique_ptr<commit_mutation> m) {
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

commit_stats commit_writer::stats() const noexcept {
  return commit_stats{
      groups_.load(std::memory_order_relaxed), mutations_.load(std::memory_order_relaxed),
      rejected_.load(std::memory_order_relaxed), failed_.load(std::memory_order_relaxed)};
}

void commit_writer::run() {
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

void commit_writer::commit_group(queue_type& group) {
  write_batch batch;
  std::vector<std::optional<problem>> refusals(group.size());
  std::uint64_t accepted = 0;
  for (std::size_t i = 0; i < group.size(); ++i) {
    const std::size_t mark = batch.ops.size();
    result<void> planned = make_problem(error_kind::internal, "the change was not planned");
    try {
      planned = group[i]->plan(batch);
    } catch (const std::exception& e) {
      planned = make_problem(error_kind::internal,
                             std::string("planning the change failed: ") + e.what());
    }
    if (planned) {
      ++accepted;
    } else {
      batch.ops.resize(mark);  // a refused change contributes nothing
      refusals[i] = std::move(planned).error();
    }
  }

  std::optional<problem> failure;
  if (!batch.empty()) {
    result<void> written = store_.write(batch);
    if (!written) {
      failure = make_problem(error_kind::storage_failure,
                             "The change could not be made durable: " + written.error().detail);
    }
  }
  if (!failure) {
    for (std::size_t i = 0; i < group.size(); ++i) {
      if (!refusals[i]) group[i]->publish();
    }
  }
  end_of_group_();

  if (!batch.empty()) {
    if (failure) {
      failed_.fetch_add(accepted, std::memory_order_relaxed);
    } else {
      groups_.fetch_add(1, std::memory_order_relaxed);
      mutations_.fetch_add(accepted, std::memory_order_relaxed);
    }
  }
  rejected_.fetch_add(group.size() - accepted, std::memory_order_relaxed);

  for (std::size_t i = 0; i < group.size(); ++i) {
    if (refusals[i]) {
      group[i]->complete(std::move(*refusals[i]));
    } else if (failure) {
      group[i]->complete(*failure);
    } else {
      group[i]->complete(result<void>{});
    }
  }
}

}  // namespace hookd
