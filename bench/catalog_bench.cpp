// The catalog under load.
//
// Reads (find_webhook, list_webhooks) while 0, 1 or 2 writer threads change the catalog: each
// writer loops create (in a churn project) -> patch (a webhook the readers read) -> delete (the
// one it created), waiting for each completion. Readers are the benchmark threads (1 or 2). The
// storage is real RocksDB in a mkdtemp dir with sync OFF: reads never touch storage, and without
// fsync the writers publish as fast as the single writer thread can, which is the worst case for
// readers (most pointer swaps and list copies per second). 10 projects x 100 webhooks are read.
//
// Writes: create_webhook through group commit on real RocksDB WITH fsync (the production
// setting), at 1, 4, 16 and 64 writes kept in flight: every completion submits the next create at
// once, so the writer always finds whatever arrived during the previous fsync. One iteration is
// one acknowledged write; counters give writes per fsync (storage fsyncs and catalog commit
// groups over the timed part). One sync-off run at 16 in flight shows what fsync costs.
//
// Load: catalog::load() of 100 000 webhooks (1 000 projects of 100, sample_webhook's headers), the
// catalog's share of a restart, on 1 decoding thread and on the default (one per CPU).

#include "bench_stack.hpp"
#include "storage/data_dir.hpp"
#include "storage/rocksdb_storage.hpp"

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace hookd;

constexpr int kReadProjects = 10;
constexpr int kWebhooksPerProject = 100;
constexpr std::uint64_t kReaderSeed = 0x2545F4914F6CDD1D;

using bench::xorshift;

// The read set, built once and shared by every read benchmark.
struct read_fixture {
  bench::stack stack{/*sync=*/false};
  std::vector<object_id> projects;
  std::vector<object_id> webhooks;  // webhooks[i] belongs to projects[i / kWebhooksPerProject]
  object_id churn;                  // writers create and delete here

  read_fixture() {
    for (int p = 0; p < kReadProjects; ++p) {
      projects.push_back(stack.add_project("read-" + std::to_string(p)));
      for (int w = 0; w < kWebhooksPerProject; ++w) {
        webhooks.push_back(
            stack.add_webhook(projects.back(), bench::sample_webhook("hook " + std::to_string(w)))
                ->id);
      }
    }
    churn = stack.add_project("churn");
  }
};

read_fixture& reads() {
  static read_fixture f;
  return f;
}

// Background writers for the read benchmarks; stopped and joined by the destructor.
class writers {
 public:
  writers(read_fixture& f, int count) {
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([this, &f, i] { loop(f, static_cast<std::uint64_t>(i) + 1); });
    }
  }
  ~writers() {
    stop_.store(true);
    for (auto& t : threads_) t.join();
  }
  writers(const writers&) = delete;
  writers& operator=(const writers&) = delete;

  std::uint64_t operations() const noexcept { return operations_.load(); }

 private:
  void loop(read_fixture& f, std::uint64_t seed) {
    auto& cat = *f.stack.cat;
    xorshift rng{0x9E3779B97F4A7C15ull * seed};
    std::uint64_t round = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      auto created = f.stack.add_webhook(f.churn, bench::sample_webhook("churn"));

      const auto i = rng.next() % f.webhooks.size();
      webhook_patch patch;
      patch.name = "hook " + std::to_string(i) + " r" + std::to_string(++round);
      bench::wait_for<std::shared_ptr<const webhook>>([&](auto done) {
        cat.update_webhook(f.stack.org, f.projects[i / kWebhooksPerProject], f.webhooks[i],
                           std::move(patch), std::move(done));
      });

      bench::wait_for<void>([&](auto done) {
        cat.delete_webhook(f.stack.org, f.churn, created->id, std::move(done));
      });
      operations_.fetch_add(3, std::memory_order_relaxed);
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> operations_{0};
  std::vector<std::thread> threads_;
};

// Thread 0 owns the writers. Benchmark threads meet at a barrier when the timed loop starts
// and ends, so the writers run for the whole measured interval of every reader.
std::mutex writers_mutex;
std::unique_ptr<writers> active_writers;

void start_writers(benchmark::State& state, read_fixture& f) {
  if (state.thread_index() != 0) return;
  std::lock_guard lock(writers_mutex);
  active_writers = std::make_unique<writers>(f, static_cast<int>(state.range(0)));
}

void stop_writers(benchmark::State& state, double seconds) {
  if (state.thread_index() != 0) return;
  std::lock_guard lock(writers_mutex);
  const auto ops = active_writers->operations();
  active_writers.reset();
  state.counters["writer_ops_per_s"] = seconds > 0 ? static_cast<double>(ops) / seconds : 0.0;
}

void BM_find_webhook(benchmark::State& state) {
  auto& f = reads();
  start_writers(state, f);
  xorshift rng{kReaderSeed + static_cast<std::uint64_t>(state.thread_index())};
  const auto started = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto hook = f.stack.cat->find_webhook(f.webhooks[rng.next() % f.webhooks.size()]);
    benchmark::DoNotOptimize(hook);
  }
  stop_writers(state,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_find_webhook)
    ->ArgName("writers")
    ->DenseRange(0, 2)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

void BM_list_webhooks(benchmark::State& state) {
  auto& f = reads();
  start_writers(state, f);
  xorshift rng{kReaderSeed + static_cast<std::uint64_t>(state.thread_index())};
  const auto started = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto list = f.stack.cat->list_webhooks(f.projects[rng.next() % f.projects.size()]);
    benchmark::DoNotOptimize(list->size());
  }
  stop_writers(state,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_list_webhooks)
    ->ArgName("writers")
    ->DenseRange(0, 2)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

// Keeps `in_flight` creates outstanding: each completion (on the catalog's writer thread)
// counts itself and submits the next, until stop() is called. Creates rotate over `projects`.
class create_pump {
 public:
  create_pump(bench::stack& s, std::vector<object_id> projects, std::size_t in_flight)
      : stack_(s), projects_(std::move(projects)), in_flight_(in_flight) {}

  void start() {
    for (std::size_t i = 0; i < in_flight_; ++i) submit();
  }
  // Blocks until at least `n` creates have completed.
  void wait_completed(std::uint64_t n) {
    for (auto seen = completed_.load(); seen < n; seen = completed_.load()) completed_.wait(seen);
  }
  // Stops resubmitting and waits for the writes still in flight.
  void stop() {
    stopping_.store(true);
    for (auto n = outstanding_.load(); n != 0; n = outstanding_.load()) outstanding_.wait(n);
  }
  std::uint64_t failures() const noexcept { return failures_.load(); }

 private:
  void submit() {
    outstanding_.fetch_add(1);
    const auto n = submitted_.fetch_add(1);
    stack_.cat->create_webhook(stack_.org, projects_[n % projects_.size()],
                               bench::sample_webhook("bench write " + std::to_string(n)),
                               [this](result<std::shared_ptr<const webhook>> r) {
                                 if (!r) failures_.fetch_add(1);
                                 completed_.fetch_add(1);
                                 completed_.notify_all();
                                 if (!stopping_.load()) submit();
                                 outstanding_.fetch_sub(1);
                                 outstanding_.notify_all();
                               });
  }

  bench::stack& stack_;
  std::vector<object_id> projects_;
  std::size_t in_flight_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> submitted_{0};
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> outstanding_{0};
  std::atomic<std::uint64_t> failures_{0};
};

// Args: writes in flight, fsync on/off, projects the creates rotate over. With 256 projects each
// project's list stays small (as under the default limit of 100); with 1 the limit is lifted and
// one list grows through the run, which shows what the copy-on-write list costs per create.
void BM_create_group_commit(benchmark::State& state) {
  const auto in_flight = static_cast<std::size_t>(state.range(0));
  const bool sync = state.range(1) != 0;
  const auto project_count = static_cast<std::size_t>(state.range(2));
  bench::stack stack(sync, /*max_webhooks_per_project=*/100'000'000);
  create_pump pump(stack, stack.add_projects("w", project_count), in_flight);

  const auto store_before = stack.store->stats();
  const auto commits_before = stack.cat->stats();
  pump.start();
  std::uint64_t want = 0;
  for (auto _ : state) pump.wait_completed(++want);
  pump.stop();
  stack.cat->stop();  // joins the writer thread: no completion can still touch `pump`
  const auto store_after = stack.store->stats();
  const auto commits_after = stack.cat->stats();

  if (pump.failures() != 0) state.SkipWithError("some creates failed");
  const auto syncs = static_cast<double>(store_after.syncs - store_before.syncs);
  const auto batches = static_cast<double>(store_after.batches - store_before.batches);
  const auto mutations = static_cast<double>(commits_after.mutations - commits_before.mutations);
  const auto groups = static_cast<double>(commits_after.groups - commits_before.groups);
  state.counters["writes_per_fsync"] = syncs > 0 ? mutations / syncs : 0.0;
  state.counters["writes_per_batch"] = batches > 0 ? mutations / batches : 0.0;
  state.counters["writes_per_group"] = groups > 0 ? mutations / groups : 0.0;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_create_group_commit)
    ->ArgNames({"in_flight", "fsync", "projects"})
    ->Args({1, 1, 256})
    ->Args({4, 1, 256})
    ->Args({16, 1, 256})
    ->Args({64, 1, 256})
    ->Args({16, 0, 256})
    ->Args({16, 0, 1})
    ->MinTime(1.0)
    ->UseRealTime();

// The floor under every create: one storage write of a create's size (a ~400-byte record and an
// index entry), fsync'd, from one thread, without the catalog.
void BM_storage_write(benchmark::State& state) {
  const bool sync = state.range(0) != 0;
  bench::temp_dir dir;
  auto opened = open_rocksdb_storage((dir.path() / "db").string(), rocksdb_options{.sync = sync});
  if (!opened) {
    state.SkipWithError(opened.error().detail.c_str());
    return;
  }
  auto& store = **opened;
  const std::string value(400, 'v');
  std::uint64_t n = 0;
  for (auto _ : state) {
    write_batch batch;
    std::string key = "bench-" + std::to_string(++n);
    batch.put(table::webhooks, key, value);
    batch.put(table::index, "pw" + key, std::string{});
    auto r = store.write(batch);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_storage_write)->ArgName("fsync")->Arg(1)->Arg(0)->MinTime(1.0)->UseRealTime();

// Arg: load_threads (0: the default, one per CPU). One iteration is one load() into a fresh
// catalog over the stack's storage (its own catalog stays idle).
struct load_fixture {
  bench::stack stack{/*sync=*/false};
  load_fixture() {
    for (const object_id& p : stack.add_projects("load", 1000)) stack.add_webhooks(p, 100);
  }
};

void BM_load(benchmark::State& state) {
  static load_fixture data;  // built once for both runs
  bench::stack* loaded = &data.stack;
  auto key = load_or_create_master_key(loaded->options.settings.data_dir, std::nullopt);
  if (!key) {
    state.SkipWithError(key.error().detail.c_str());
    return;
  }
  std::size_t webhooks = 0;
  for (auto _ : state) {
    catalog fresh(
        *loaded->store,
        catalog_options{.master_key = *key, .load_threads = static_cast<unsigned>(state.range(0))});
    auto counts = fresh.load();
    if (!counts) {
      state.SkipWithError(counts.error().detail.c_str());
      return;
    }
    webhooks = counts->webhooks;
  }
  state.counters["webhooks"] = static_cast<double>(webhooks);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(webhooks));
}
BENCHMARK(BM_load)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(0)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
