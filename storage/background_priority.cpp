// See background_priority.hpp.
//
// RocksDB's own Env::LowerThreadPoolCPUPriority would put its pools under SCHED_IDLE too, but
// only ever lowers: nothing there takes the policy back when the jobs fall behind.

#include "storage/background_priority.hpp"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

namespace hookd {
namespace {

pid_t this_thread_id() noexcept {
  return static_cast<pid_t>(::syscall(SYS_gettid));
}

bool set_policy(pid_t thread, int policy) noexcept {
  const sched_param param{};  // priority 0: the only one SCHED_OTHER and SCHED_IDLE take
  return ::sched_setscheduler(thread, policy, &param) == 0;
}

std::int64_t now_ticks() noexcept {
  // Never 0 in practice (the steady clock counts from boot), which lowered_since_ uses for none.
  return std::chrono::steady_clock::now().time_since_epoch().count();
}

}  // namespace

bool may_leave_idle_policy() {
  // On a thread that exists only for this, so that no thread that matters is left idle.
  bool restored = false;
  std::thread([&restored] {
    if (set_policy(0, SCHED_IDLE)) restored = set_policy(0, SCHED_OTHER);
  }).join();
  return restored;
}

background_priority& background_priority::instance() {
  static background_priority the_instance;
  return the_instance;
}

background_priority::background_priority() : can_restore_(may_leave_idle_policy()) {}

void background_priority::job_began(background_policy policy) {
  const pid_t self = this_thread_id();
  std::lock_guard lock(mutex_);
  ++running_;
  const auto found = std::find(lowered_.begin(), lowered_.end(), self);
  if (policy != background_policy::idle || !can_restore_ || holds_ > 0) {
    // Another database's job, or one while held, on a thread an earlier job lowered.
    if (found != lowered_.end() && set_policy(0, SCHED_OTHER)) lowered_.erase(found);
    return;
  }
  if (found == lowered_.end()) {
    if (!set_policy(0, SCHED_IDLE)) return;
    lowered_.push_back(self);
  }
  idle_jobs_.fetch_add(1, std::memory_order_relaxed);
  if (lowered_since_.load(std::memory_order_relaxed) == 0) {
    lowered_since_.store(now_ticks(), std::memory_order_relaxed);
  }
}

void background_priority::job_ended() {
  std::lock_guard lock(mutex_);
  // A job whose end RocksDB never reports (a failed flush) leaves running_ high: the bound then
  // applies from the next lowered job's start without a pause, which only raises sooner.
  if (running_ > 0 && --running_ == 0) lowered_since_.store(0, std::memory_order_relaxed);
}

void background_priority::check(std::chrono::steady_clock::duration bound) {
  const std::int64_t since = lowered_since_.load(std::memory_order_relaxed);
  if (since == 0 || now_ticks() - since < bound.count()) return;
  std::lock_guard lock(mutex_);
  if (lowered_since_.load(std::memory_order_relaxed) == 0) return;  // raised meanwhile
  raise_locked(&raised_waited_);
}

void background_priority::raise_filling() {
  std::lock_guard lock(mutex_);
  raise_locked(&raised_filling_);
}

void background_priority::hold(bool stall) {
  std::lock_guard lock(mutex_);
  raise_locked(holds_++ == 0 && stall ? &raised_stalled_ : nullptr);
}

void background_priority::release() {
  std::lock_guard lock(mutex_);
  if (holds_ > 0) --holds_;
}

void background_priority::raise_locked(std::atomic<std::uint64_t>* reason) {
  if (reason != nullptr && !lowered_.empty()) reason->fetch_add(1, std::memory_order_relaxed);
  // A thread that cannot be put back (it should not happen once the probe passed) is dropped from
  // the list all the same: retrying at every write would not help it.
  for (const pid_t thread : lowered_) (void)set_policy(thread, SCHED_OTHER);
  lowered_.clear();
  lowered_since_.store(0, std::memory_order_relaxed);
}

background_priority::counters background_priority::stats() const noexcept {
  return {idle_jobs_.load(std::memory_order_relaxed),
          raised_waited_.load(std::memory_order_relaxed),
          raised_stalled_.load(std::memory_order_relaxed),
          raised_filling_.load(std::memory_order_relaxed)};
}

}  // namespace hookd
