#pragma once
// RocksDB's flush and compaction threads below hookd's own on a shared core (docs/operations.md,
// "RocksDB's background work"). No RocksDB here: rocksdb_storage.cpp's event listener reports
// the jobs and the write stalls, its write() asks check(); this keeps the threads' policy.
//
// A job begins on its RocksDB thread, which puts itself under SCHED_IDLE: a hookd thread that
// wakes then takes the core at once, instead of waiting out the job's turn (up to a 4 ms tick).
// Because an idle-policy thread gets almost nothing of a core that a normal thread wants, the
// policy is taken back (SCHED_OTHER for every thread lowered) when a write finds a job running
// longer than a bound or a family's memtable half full while the one before it waits for its
// flush, while RocksDB reports a write stall, and while hookd needs a flush done (a clean stop,
// a backup's checkpoint, a compaction it asked for). Taking it back is what an unprivileged
// process may not do without RLIMIT_NICE of 20 or more (systemd's LimitNICE=+0) or
// CAP_SYS_NICE: without that, nothing is lowered at all.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <vector>

#include <sys/types.h>

namespace hookd {

enum class background_policy : std::uint8_t {
  idle,    // lowered while they work, as above (when the policy can be taken back)
  normal,  // RocksDB's threads compete with hookd's as any thread does
};

// Whether this process may take a thread from SCHED_IDLE back to SCHED_OTHER, tried on a
// short-lived thread of its own: the kernel counts leaving SCHED_IDLE as raising a nice value from
// 20 back to the thread's own, which needs CAP_SYS_NICE or an RLIMIT_NICE that reaches it.
bool may_leave_idle_policy();

// Process-wide, as RocksDB's thread pools are (every database a process opens shares the default
// Env's threads). Thread safety: every member from any thread.
class background_priority {
 public:
  static background_priority& instance();

  // may_leave_idle_policy(), asked once.
  bool can_restore() const noexcept { return can_restore_; }

  // On the RocksDB thread that runs the job, as it begins and when it ends. `policy` is the one
  // its database was opened with.
  void job_began(background_policy policy);
  void job_ended();

  // On the write path: puts the lowered threads back when a job begun lowered has been running
  // longer than `bound`. One atomic load when no lowered job runs.
  void check(std::chrono::steady_clock::duration bound);

  // Whether a job begun lowered is running (one atomic load).
  bool lowered_job_running() const noexcept {
    return lowered_since_.load(std::memory_order_relaxed) != 0;
  }
  // Puts the lowered threads back now: the storage saw a memtable half full while the one before
  // it still waits for a lowered flush (counted in stats().raised_filling).
  void raise_filling();

  // While held, every lowered thread is back to normal and no job is lowered. `stall`: the hold
  // is a write stall (counted in stats().raised_stalled).
  void hold(bool stall);
  void release();

  struct counters {
    std::uint64_t idle_jobs = 0;       // jobs begun under SCHED_IDLE
    std::uint64_t raised_waited = 0;   // put back by check(): a job ran longer than the bound
    std::uint64_t raised_stalled = 0;  // put back because RocksDB stalled writes
    std::uint64_t raised_filling = 0;  // put back by raise_filling()
  };
  counters stats() const noexcept;

  background_priority(const background_priority&) = delete;
  background_priority& operator=(const background_priority&) = delete;

 private:
  background_priority();
  // Every lowered thread back to normal; counted in `reason` when there was one to put back.
  void raise_locked(std::atomic<std::uint64_t>* reason);

  const bool can_restore_;
  mutable std::mutex mutex_;
  std::vector<pid_t> lowered_;  // threads under SCHED_IDLE now; guarded by mutex_
  std::uint32_t running_ = 0;   // jobs begun and not ended; guarded by mutex_
  std::uint32_t holds_ = 0;     // guarded by mutex_
  // steady_clock ticks when the oldest job still running lowered began; 0: none runs lowered.
  std::atomic<std::int64_t> lowered_since_{0};
  std::atomic<std::uint64_t> idle_jobs_{0}, raised_waited_{0}, raised_stalled_{0},
      raised_filling_{0};
};

}  // namespace hookd
