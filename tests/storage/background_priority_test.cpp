// RocksDB's flushes and compactions under SCHED_IDLE, and the guard that takes it back
// (docs/operations.md, "RocksDB's background work"): the policy of real threads as the kernel
// reports it (sched_getscheduler), first of threads that stand in for RocksDB's, then of
// RocksDB's own while a real database in a temp dir flushes.

#include "storage/background_priority.hpp"
#include "crash_workload.hpp"
#include "storage/rocksdb_storage.hpp"

#include <gtest/gtest.h>

#include <linux/capability.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <optional>
#include <random>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

namespace hookd {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

int policy_of(pid_t thread) {
  return ::sched_getscheduler(thread);
}

// Skips a test whose subject cannot exist here: without the right to leave SCHED_IDLE (no
// CAP_SYS_NICE, RLIMIT_NICE under 20) hookd lowers nothing, as the last test checks.
#define SKIP_UNLESS_RESTORABLE()                                                      \
  if (!background_priority::instance().can_restore()) {                               \
    GTEST_SKIP() << "this process may not leave SCHED_IDLE (RLIMIT_NICE < 20 and no " \
                    "CAP_SYS_NICE), so hookd lowers nothing";                         \
  }

// A thread in the place of one of RocksDB's: it begins a job with the given policy, then waits
// until finish() ends the job and the thread.
class job_thread {
 public:
  explicit job_thread(background_policy policy) {
    thread_ = std::thread([this, policy] {
      background_priority::instance().job_began(policy);
      tid_ = static_cast<pid_t>(::syscall(SYS_gettid));
      began_.release();
      go_.acquire();
      background_priority::instance().job_ended();
    });
    began_.acquire();
  }
  ~job_thread() { finish(); }
  job_thread(const job_thread&) = delete;
  job_thread& operator=(const job_thread&) = delete;

  pid_t tid() const { return tid_; }
  void finish() {
    if (!thread_.joinable()) return;
    go_.release();
    thread_.join();
  }

 private:
  std::binary_semaphore began_{0}, go_{0};
  std::thread thread_;
  pid_t tid_ = 0;
};

TEST(BackgroundPriority, AJobIsLoweredUntilItHasRunLongerThanTheBound) {
  SKIP_UNLESS_RESTORABLE();
  auto& priority = background_priority::instance();
  const auto before = priority.stats();
  job_thread job(background_policy::idle);
  EXPECT_EQ(policy_of(job.tid()), SCHED_IDLE);
  EXPECT_EQ(priority.stats().idle_jobs, before.idle_jobs + 1);

  priority.check(1h);  // a write while the job is young: nothing changes
  EXPECT_EQ(policy_of(job.tid()), SCHED_IDLE);
  std::this_thread::sleep_for(5ms);
  priority.check(1ms);  // a write once it is older than the bound
  EXPECT_EQ(policy_of(job.tid()), SCHED_OTHER);
  EXPECT_EQ(priority.stats().raised_waited, before.raised_waited + 1);

  priority.check(0ms);  // nothing lowered runs: nothing more to count
  EXPECT_EQ(priority.stats().raised_waited, before.raised_waited + 1);
}

TEST(BackgroundPriority, AFinishedJobLeavesNothingForTheBoundToRaise) {
  SKIP_UNLESS_RESTORABLE();
  auto& priority = background_priority::instance();
  const auto before = priority.stats();
  job_thread job(background_policy::idle);
  job.finish();
  std::this_thread::sleep_for(5ms);
  priority.check(1ms);
  EXPECT_EQ(priority.stats().raised_waited, before.raised_waited);
}

TEST(BackgroundPriority, AHoldRaisesWhatIsLoweredAndLowersNothingUntilReleased) {
  SKIP_UNLESS_RESTORABLE();
  auto& priority = background_priority::instance();
  const auto before = priority.stats();
  job_thread first(background_policy::idle);
  ASSERT_EQ(policy_of(first.tid()), SCHED_IDLE);

  priority.hold(/*stall=*/true);
  EXPECT_EQ(policy_of(first.tid()), SCHED_OTHER);
  EXPECT_EQ(priority.stats().raised_stalled, before.raised_stalled + 1);
  {
    job_thread during(background_policy::idle);
    EXPECT_EQ(policy_of(during.tid()), SCHED_OTHER);
    EXPECT_EQ(priority.stats().idle_jobs, before.idle_jobs + 1);
  }
  priority.release();

  job_thread after(background_policy::idle);
  EXPECT_EQ(policy_of(after.tid()), SCHED_IDLE);
  priority.hold(/*stall=*/false);  // a clean stop's or a backup's flush: not counted as a stall
  EXPECT_EQ(policy_of(after.tid()), SCHED_OTHER);
  EXPECT_EQ(priority.stats().raised_stalled, before.raised_stalled + 1);
  priority.release();
}

TEST(BackgroundPriority, AJobOfANormalDatabaseRunsAtNormalPriority) {
  SKIP_UNLESS_RESTORABLE();
  auto& priority = background_priority::instance();
  const auto before = priority.stats();
  job_thread job(background_policy::normal);
  EXPECT_EQ(policy_of(job.tid()), SCHED_OTHER);
  EXPECT_EQ(priority.stats().idle_jobs, before.idle_jobs);
}

// ---- RocksDB's own threads -------------------------------------------------------------------

using crash_workload::rocksdb_thread_policies;

int count_policy(int policy) {
  int n = 0;
  for (const auto& [tid, p] : rocksdb_thread_policies()) n += p == policy ? 1 : 0;
  return n;
}

class RocksdbBackgroundTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "hookd-background-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void open(background_policy policy) {
    rocksdb_options options;
    options.background = policy;
    options.background_bound = std::chrono::hours(1);  // only the events under test raise
    auto opened = open_rocksdb_storage((dir_ / "db").string(), options);
    ASSERT_TRUE(opened) << opened.error().detail;
    store_ = std::move(*opened);
  }

  // Writes more than a memtable of the meta table holds, so that RocksDB flushes it on its own.
  void write_past_a_memtable() {
    auto written = crash_workload::write_past_a_memtable(*store_);
    ASSERT_TRUE(written) << written.error().detail;
  }

  template <typename Done>
  static bool wait_until(Done done) {
    for (auto deadline = std::chrono::steady_clock::now() + 20s;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(10ms)) {
      if (done()) return true;
    }
    return done();
  }

  fs::path dir_;
  std::unique_ptr<storage> store_;
};

TEST_F(RocksdbBackgroundTest, AFlushRunsUnderTheIdlePolicyAndAStopPutsItsThreadBack) {
  SKIP_UNLESS_RESTORABLE();
  open(background_policy::idle);
  const auto before = store_->stats();
  write_past_a_memtable();
  ASSERT_TRUE(wait_until([&] {
    return store_->stats().background_idle_jobs > before.background_idle_jobs;
  })) << "no flush began lowered";
  EXPECT_GE(count_policy(SCHED_IDLE), 1) << "the flush's thread is not under SCHED_IDLE";

  store_.reset();  // a clean stop flushes at normal priority
  EXPECT_EQ(count_policy(SCHED_IDLE), 0);
}

TEST_F(RocksdbBackgroundTest, ABackupCheckpointPutsTheLoweredThreadsBack) {
  SKIP_UNLESS_RESTORABLE();
  open(background_policy::idle);
  const auto before = store_->stats();
  write_past_a_memtable();
  ASSERT_TRUE(wait_until(
      [&] { return store_->stats().background_idle_jobs > before.background_idle_jobs; }));
  ASSERT_GE(count_policy(SCHED_IDLE), 1);

  auto made = store_->checkpoint((dir_ / "copy").string());
  ASSERT_TRUE(made) << made.error().detail;
  EXPECT_EQ(count_policy(SCHED_IDLE), 0);
}

TEST_F(RocksdbBackgroundTest, WithTheNormalPolicyNoThreadIsLowered) {
  open(background_policy::normal);
  const auto before = store_->stats();
  write_past_a_memtable();
  // RocksDB flushed the memtable on its own once a table file is there (compact() would flush
  // too, but it holds the normal policy itself and so would prove nothing here).
  ASSERT_TRUE(wait_until([&] { return crash_workload::has_table_file(dir_ / "db"); }))
      << "RocksDB wrote no table file";
  EXPECT_EQ(count_policy(SCHED_IDLE), 0);
  EXPECT_EQ(store_->stats().background_idle_jobs, before.background_idle_jobs);
}

// A thread at normal priority that keeps one CPU busy until it goes: a lowered thread pinned to
// that CPU gets next to nothing of it, as on a core hookd keeps busy.
class core_hog {
 public:
  explicit core_hog(std::size_t cpu) {
    thread_ = std::thread([this, cpu] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      (void)::sched_setaffinity(0, sizeof set, &set);
      while (!stop_.load(std::memory_order_relaxed)) {
      }
    });
  }
  ~core_hog() {
    stop_ = true;
    thread_.join();
  }
  core_hog(const core_hog&) = delete;
  core_hog& operator=(const core_hog&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// RocksDB's threads, and with `this_thread_too` the calling one (the threads it starts from then
// on inherit it: the pool threads RocksDB adds for its jobs), pinned to the first CPU this thread
// may use, so that a core_hog there leaves the lowered jobs next to nothing. The calling thread
// gets its CPUs back when this goes.
class pinned_to_one_cpu {
 public:
  explicit pinned_to_one_cpu(bool this_thread_too) {
    if (::sched_getaffinity(0, sizeof before_, &before_) != 0) {
      ADD_FAILURE() << "sched_getaffinity failed";
      return;
    }
    while (!CPU_ISSET(cpu_, &before_)) ++cpu_;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu_, &one);
    for (const auto& [tid, policy] : rocksdb_thread_policies()) {
      EXPECT_EQ(::sched_setaffinity(tid, sizeof one, &one), 0) << "thread " << tid;
    }
    if (this_thread_too) {
      EXPECT_EQ(::sched_setaffinity(0, sizeof one, &one), 0);
      restore_ = true;
    }
  }
  ~pinned_to_one_cpu() {
    if (restore_) (void)::sched_setaffinity(0, sizeof before_, &before_);
  }
  pinned_to_one_cpu(const pinned_to_one_cpu&) = delete;
  pinned_to_one_cpu& operator=(const pinned_to_one_cpu&) = delete;

  [[nodiscard]] std::size_t cpu() const noexcept { return cpu_; }

 private:
  cpu_set_t before_{};
  std::size_t cpu_ = 0;
  bool restore_ = false;
};

TEST_F(RocksdbBackgroundTest, AStarvedFlushIsPutBackOnceTheNextMemtableIsHalfFull) {
  SKIP_UNLESS_RESTORABLE();
  open(background_policy::idle);  // the time bound is an hour: only the memtables can raise
  // RocksDB's threads and a hog on one CPU, so that a lowered flush cannot finish.
  const pinned_to_one_cpu pinned(false);
  const core_hog hog(pinned.cpu());
  const auto before = store_->stats();

  // 10 MiB into meta (8 MiB memtables): the first memtable is sealed and its flush begins, lowered.
  write_past_a_memtable();
  ASSERT_TRUE(wait_until(
      [&] { return store_->stats().background_idle_jobs > before.background_idle_jobs; }));
  EXPECT_EQ(store_->stats().background_raised_filling, before.background_raised_filling)
      << "put back while the next memtable was a quarter full";

  // The next memtable past half full, the writes 60 ms apart (memtables are looked at every
  // 50 ms at most): a write puts the flush back, and it finishes.
  const std::string value(64 << 10, 'w');
  for (int i = 0;
       i < 40 && store_->stats().background_raised_filling == before.background_raised_filling;
       ++i) {
    write_batch batch;
    batch.put(table::meta, "more" + std::to_string(i), value);
    auto written = store_->write(batch);
    ASSERT_TRUE(written) << written.error().detail;
    std::this_thread::sleep_for(60ms);
  }
  EXPECT_EQ(store_->stats().background_raised_filling, before.background_raised_filling + 1);
  EXPECT_EQ(store_->stats().background_raised_stalled, before.background_raised_stalled);
  EXPECT_TRUE(wait_until([&] { return crash_workload::has_table_file(dir_ / "db"); }))
      << "the flush did not finish once put back";
}

// The sweeper's reclaim when hookd stops: the compaction of a range can take minutes (a bucket
// of a month's retention is a sixteenth of the history), and lowered on a core another process
// keeps busy, longer. Told to stop, the reclaim ends soon, the space left for a later one, and
// nothing erased comes back.
TEST_F(RocksdbBackgroundTest, AReclaimToldToStopEndsBeforeItsCompaction) {
  SKIP_UNLESS_RESTORABLE();
  open(background_policy::idle);
  // 48 MiB in table files that each hold keys inside the range and outside it, so that the
  // reclaim must compact them rather than drop them: a put under "a" and one under "k" per
  // batch, the range [k, l) erased.
  // Values that do not compress, so that the table's size says what the compaction did.
  std::mt19937_64 random(7);
  std::string value(16 << 10, '\0');
  for (int i = 0; i < 1536; ++i) {
    for (char& c : value) c = static_cast<char>('a' + random() % 26);
    write_batch batch;
    char key[16];
    std::snprintf(key, sizeof key, "a%06d", i);
    batch.put(table::history, key, value);
    key[0] = 'k';
    batch.put(table::history, key, value);
    ASSERT_TRUE(store_->write(batch));
  }
  ASSERT_TRUE(store_->compact(table::history));  // into table files, at normal priority
  write_batch erase;
  erase.erase_range(table::history, "k", "l");
  ASSERT_TRUE(store_->write(erase));
  const std::uint64_t before = store_->size(table::history).bytes;

  // RocksDB's threads, and this one (so the reclaim's threads too), on one CPU beside a hog.
  const pinned_to_one_cpu pinned(true);
  std::optional<core_hog> hog(std::in_place, pinned.cpu());

  std::atomic<bool> stop{false};
  auto reclaimed = std::async(std::launch::async,
                              [&] { return store_->reclaim(table::history, "k", "l", &stop); });
  std::this_thread::sleep_for(100ms);
  stop = true;
  ASSERT_EQ(reclaimed.wait_for(10s), std::future_status::ready) << "the reclaim did not stop";
  EXPECT_TRUE(reclaimed.get());
  hog.reset();
  // Not compacted: the files are still there (a finished reclaim leaves half).
  EXPECT_GT(store_->size(table::history).bytes, before * 9 / 10)
      << "the compaction ran to its end: the reclaim did not stop (or was over before told)";

  store_.reset();  // a clean close after a stopped compaction
  open(background_policy::idle);
  std::size_t outside = 0, inside = 0;
  ASSERT_TRUE(store_->scan(table::history, "", [&](std::string_view key, std::string_view) {
    ++(key.starts_with("k") ? inside : outside);
    return true;
  }));
  EXPECT_EQ(outside, 1536u);
  EXPECT_EQ(inside, 0u) << "erased keys came back";
}

// What the probe answers in a child process with CAP_SYS_NICE dropped and a given RLIMIT_NICE:
// its exit status is 1 when may_leave_idle_policy() says yes, 0 when no, 2 when the child could
// not set itself up.
int probe_in_child(rlim_t nice_limit) {
  const pid_t child = ::fork();
  if (child == 0) {
    const rlimit limit{nice_limit, nice_limit};
    if (::setrlimit(RLIMIT_NICE, &limit) != 0) ::_exit(2);
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &header, data) != 0) ::_exit(2);
    data[CAP_TO_INDEX(CAP_SYS_NICE)].effective &= ~CAP_TO_MASK(CAP_SYS_NICE);
    data[CAP_TO_INDEX(CAP_SYS_NICE)].permitted &= ~CAP_TO_MASK(CAP_SYS_NICE);
    if (::syscall(SYS_capset, &header, data) != 0) ::_exit(2);
    ::_exit(may_leave_idle_policy() ? 1 : 0);
  }
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// Without CAP_SYS_NICE and with the default RLIMIT_NICE of 0, a thread may not leave SCHED_IDLE,
// so hookd lowers nothing.
TEST(BackgroundPriority, WithoutCapSysNiceOrRlimitNiceTheIdlePolicyCannotBeLeft) {
  if (!may_leave_idle_policy()) GTEST_SKIP() << "this process may not leave SCHED_IDLE at all";
  EXPECT_EQ(probe_in_child(0), 0) << "RLIMIT_NICE 0, no CAP_SYS_NICE";
}

// ...and an RLIMIT_NICE of 20, the shipped systemd unit's LimitNICE=+0, is what allows it.
TEST(BackgroundPriority, AnRlimitNiceOf20AllowsLeavingTheIdlePolicyWithoutCapSysNice) {
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NICE, &limit), 0);
  if (limit.rlim_max < 20) {
    // Raising a hard limit needs CAP_SYS_RESOURCE, which a container's root may lack (this
    // project's CI machines' does); systemd sets LimitNICE before hookd starts.
    GTEST_SKIP() << "RLIMIT_NICE's hard limit is " << limit.rlim_max << ", under 20";
  }
  EXPECT_EQ(probe_in_child(19), 0) << "RLIMIT_NICE 19 reaches nice 1, not 0";
  EXPECT_EQ(probe_in_child(20), 1) << "RLIMIT_NICE 20 (LimitNICE=+0) reaches nice 0";
}

// A process of RocksDB's storage, crash_child's "background" mode, that flushes and reports what
// was lowered: run with CAP_SYS_NICE out of its bounding set (so that not even root's exec gets
// it back) and RLIMIT_NICE 0 when `without_the_right`. Returns its line.
std::string run_background_child(const fs::path& db, bool without_the_right) {
  int out[2];
  if (::pipe(out) != 0) return "pipe failed";
  const pid_t child = ::fork();
  if (child == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::close(out[1]);
    if (without_the_right) {
      // Fails without CAP_SETPCAP, in a process that has no CAP_SYS_NICE to drop anyway.
      (void)::prctl(PR_CAPBSET_DROP, CAP_SYS_NICE, 0, 0, 0);
      const rlimit none{0, 0};
      if (::setrlimit(RLIMIT_NICE, &none) != 0) ::_exit(2);
    }
    const char* argv[] = {HOOKD_CRASH_CHILD, "background", db.c_str(), nullptr};
    ::execv(argv[0], const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(out[1]);
  std::string line;
  char c = 0;
  while (::read(out[0], &c, 1) == 1 && c != '\n') line.push_back(c);
  ::close(out[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  return line;
}

TEST_F(RocksdbBackgroundTest, AProcessThatMayNotTakeTheIdlePolicyBackLowersNothing) {
  EXPECT_EQ(run_background_child(dir_ / "without", /*without_the_right=*/true),
            "idle_jobs 0 idle_threads 0");
  if (!background_priority::instance().can_restore()) return;
  // The same child with this process's rights lowers its flush: the line above is no accident.
  const std::string with = run_background_child(dir_ / "with", /*without_the_right=*/false);
  EXPECT_TRUE(with.starts_with("idle_jobs ") && !with.starts_with("idle_jobs 0 ") &&
              !with.ends_with(" idle_threads 0"))
      << with;
}

}  // namespace
}  // namespace hookd
