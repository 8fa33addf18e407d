// Reads of delivery history with millions of finished deliveries on disk, and what a restart
// costs with and without them (docs/delivery.md).
//
//   page         delivery_log::list_deliveries of the project, 100 a page, newest first, from a
//                random cursor anywhere in the history (one thread): p50/p99/max per page
//   page_failed  the same with status=failed (one delivery in ten failed): a filtered page
//   page_webhook the same for one webhook's list (a tenth of the deliveries): its index entries,
//                then the records they name; history_bytes is the table's size on disk
//   by_id        find_delivery of a random finished delivery, with its attempt
//   restart      the stack (service) stopped and opened again over a data dir with the history,
//                and over one with the same catalog and none, alternately (A B A B ...): open
//                time, medians; their ratio
//   drop_bucket  retention's way to drop a bucket (a range delete, then files dropped whole and the
//                rest compacted) against a delete per record, on the same records: time, bytes left
//
// The history is made once per process through the delivery log itself (ingest, then one
// successful or failed attempt recorded per delivery, writes unsynced), so the records and keys
// are exactly hookd's. BENCH_HISTORY_DELIVERIES sets how many (default 2 000 000; ten webhooks,
// so a tenth of that many events); making 2 M takes a minute or two. BENCH_HISTORY_SETTLE (seconds,
// default 0) waits after making it, for the compactions it set off to end. Every figure is reported
// as a counter; Google Benchmark's own time column is the mean.

#include "bench_stack.hpp"

#include "core/common/completion.hpp"
#include "core/delivery/delivery_log.hpp"
#include "core/delivery/history_keys.hpp"
#include "storage/rocksdb_storage.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace hookd;
using steady = std::chrono::steady_clock;

constexpr std::size_t kWebhooks = 10;

std::size_t history_size() {
  const char* env = std::getenv("BENCH_HISTORY_DELIVERIES");
  return env != nullptr ? static_cast<std::size_t>(std::strtoull(env, nullptr, 10)) : 2'000'000;
}

// Counts completions of writes submitted without waiting for each; wait() blocks until `n` came.
class latch {
 public:
  void done(bool ok) {
    std::lock_guard lock(mutex_);
    ++count_;
    failures_ += ok ? 0 : 1;
    changed_.notify_all();
  }
  void wait(std::size_t n) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return count_ >= n; });
    if (failures_ != 0) throw std::runtime_error("history set-up: a write failed");
  }
  std::size_t count() {
    std::lock_guard lock(mutex_);
    return count_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t count_ = 0, failures_ = 0;
};

// A stack whose project holds `n` finished deliveries (kWebhooks per event), nine in ten
// succeeded; and a second stack with the same catalog and no history, for the restart.
struct history_fixture {
  bench::stack full{/*sync=*/false};
  bench::stack empty{/*sync=*/false};
  std::vector<object_id> ids;  // every finished delivery
  object_id webhook;           // one of the kWebhooks

  history_fixture() {
    full.add_webhooks(full.project, kWebhooks);
    empty.add_webhooks(empty.project, kWebhooks);
    // Every delivery of a batch is taken at once: no in-flight caps while the history is made.
    full.options.settings.max_inflight_deliveries = 1'000'000;
    full.options.settings.max_inflight_per_webhook = 1'000'000;
    full.options.settings.max_inflight_per_organization = 1'000'000;
    full.reopen();
    const std::size_t n = history_size();
    const std::size_t events = n / kWebhooks;
    delivery_engine& log = *full.deliveries;
    const std::string data =
        R"({"invoice":"in_1OaBcD2eFgHiJkLm","customer":"cus_9s8d7f6g","amount":4200,"currency":"eur","lines":[{"sku":"A-100","qty":2},{"sku":"B-7","qty":1}]})";
    const auto started = steady::now();
    constexpr std::size_t kBatch = 2'000;  // events ingested, then their deliveries finished
    ids.reserve(n);
    for (std::size_t first = 0; first < events; first += kBatch) {
      const std::size_t count = std::min(kBatch, events - first);
      latch ingested;
      for (std::size_t i = 0; i < count; ++i) {
        ingest_request r;
        r.token = full.org;
        r.organization = full.org;
        r.project = full.project;
        r.type = "invoice.paid";
        r.data = data;
        log.ingest(std::move(r),
                   [&ingested](result<ingest_result> done) { ingested.done(!!done); });
      }
      ingested.wait(count);
      const due_jobs due = log.jobs().take_due(log.now(), count * kWebhooks);
      latch recorded;
      for (const scheduled_job& job : due.ready) {
        const auto pending = log.find_pending(job.delivery);
        attempt a;
        a.number = 1;
        a.at = log.now();
        a.duration = std::chrono::milliseconds(38);
        const bool fail = job.delivery.binary().back() % 10 == 0;
        a.status_code = fail ? 410 : 200;
        a.response = fail ? "gone" : R"({"received":true})";
        ids.push_back(job.delivery);
        webhook = job.webhook;
        log.record_attempt(
            pending->record, std::move(a),
            fail ? attempt_decision::failed(kReasonGone) : attempt_decision::succeeded(),
            [&recorded](result<std::shared_ptr<const delivery>> done) { recorded.done(!!done); });
      }
      recorded.wait(due.ready.size());
    }
    std::fprintf(stderr, "history_bench: %zu finished deliveries made in %.1f s\n", ids.size(),
                 std::chrono::duration<double>(steady::now() - started).count());
    // As after a restart: the memtables flushed, nothing of the history in the block cache.
    full.reopen();
    // BENCH_HISTORY_SETTLE=S waits S seconds for the compactions that writing the history set off
    // (they run in the same process, so under `taskset -c 0` on the reader's core).
    if (const char* settle = std::getenv("BENCH_HISTORY_SETTLE")) {
      std::this_thread::sleep_for(std::chrono::seconds(std::strtoll(settle, nullptr, 10)));
    }
  }
};

history_fixture& fixture() {
  static history_fixture f;
  return f;
}

void report(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  const auto at = [&us](double q) {
    return us[std::min(us.size() - 1,
                       static_cast<std::size_t>(q * static_cast<double>(us.size())))];
  };
  state.counters["p50_us"] = at(0.50);
  state.counters["p99_us"] = at(0.99);
  state.counters["max_us"] = us.back();
  state.counters["history"] = static_cast<double>(fixture().ids.size());
}

void page(benchmark::State& state, bool failed_only, bool by_webhook = false) {
  history_fixture& f = fixture();
  const delivery_engine& log = *f.full.deliveries;
  bench::xorshift rng{0x9E3779B97F4A7C15ull};
  std::vector<double> us;
  us.reserve(100'000);
  std::size_t items = 0;
  for (auto _ : state) {
    delivery_query q;
    q.project = f.full.project;
    q.limit = 100;
    if (failed_only) q.statuses.add(delivery_status::failed);
    if (by_webhook) q.webhook = f.webhook;
    q.after = f.ids[rng.next() % f.ids.size()];
    const auto started = steady::now();
    auto result = log.list_deliveries(q);
    us.push_back(std::chrono::duration<double, std::micro>(steady::now() - started).count());
    if (!result) {
      state.SkipWithError(result.error().detail.c_str());
      return;
    }
    items += result->items.size();
    benchmark::DoNotOptimize(result);
  }
  state.counters["items_per_page"] =
      static_cast<double>(items) / static_cast<double>(std::max<std::size_t>(us.size(), 1));
  report(state, us);
}

void BM_page(benchmark::State& state) {
  page(state, false);
}
BENCHMARK(BM_page)->MinTime(3.0)->Unit(benchmark::kMicrosecond);

void BM_page_failed(benchmark::State& state) {
  page(state, true);
}
BENCHMARK(BM_page_failed)->MinTime(3.0)->Unit(benchmark::kMicrosecond);

void BM_page_webhook(benchmark::State& state) {
  page(state, false, true);
  state.counters["history_bytes"] =
      static_cast<double>(fixture().full.store->size(table::history).bytes);
}
BENCHMARK(BM_page_webhook)->MinTime(3.0)->Unit(benchmark::kMicrosecond);

void BM_by_id(benchmark::State& state) {
  history_fixture& f = fixture();
  const delivery_engine& log = *f.full.deliveries;
  bench::xorshift rng{0x2545F4914F6CDD1Dull};
  std::vector<double> us;
  us.reserve(1'000'000);
  for (auto _ : state) {
    const object_id& id = f.ids[rng.next() % f.ids.size()];
    const auto started = steady::now();
    auto found = log.find_delivery(f.full.project, id);
    us.push_back(std::chrono::duration<double, std::micro>(steady::now() - started).count());
    if (!found || !*found) {
      state.SkipWithError("a finished delivery was not found");
      return;
    }
    benchmark::DoNotOptimize(found);
  }
  report(state, us);
}
BENCHMARK(BM_by_id)->MinTime(3.0)->Unit(benchmark::kMicrosecond);

// Restart: the full and the empty stack reopened in turn (A B A B ...), 7 times each.
void BM_restart(benchmark::State& state) {
  history_fixture& f = fixture();
  std::vector<double> full_ms, empty_ms;
  for (auto _ : state) {
    for (int round = 0; round < 7; ++round) {
      for (bench::stack* s : {&f.full, &f.empty}) {
        s->svc.reset();
        const auto started = steady::now();
        s->open();
        (s == &f.full ? full_ms : empty_ms)
            .push_back(std::chrono::duration<double, std::milli>(steady::now() - started).count());
      }
    }
  }
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  state.counters["full_ms"] = median(full_ms);
  state.counters["empty_ms"] = median(empty_ms);
  state.counters["full_over_empty"] = median(full_ms) / median(empty_ms);
  state.counters["history"] = static_cast<double>(f.ids.size());
}
BENCHMARK(BM_restart)->Iterations(1)->Unit(benchmark::kMillisecond);

// Dropping a bucket of history, as retention does (one range delete, then reclaim: files dropped
// whole, the rest compacted), against what a delete per record would cost (one tombstone each,
// then the same compaction to get the space back). The same records, keyed like history's (one
// bucket, one project), in a fresh RocksDB store each time. Reported: time to drop (the deletes
// made durable and the space freed) and the bytes left on disk after.
void drop_bucket(benchmark::State& state, bool by_range) {
  const auto records = static_cast<std::size_t>(state.range(0));
  const std::string value(420, 'v');  // about a finished delivery's record, compressible like one
  double seconds = 0, left = 0;
  for (auto _ : state) {
    bench::temp_dir dir;
    auto opened =
        open_rocksdb_storage((dir.path() / "db").string(), rocksdb_options{.sync = false});
    if (!opened) {
      state.SkipWithError(opened.error().detail.c_str());
      return;
    }
    storage& store = **opened;
    const object_id project = object_id_generator().next();
    object_id_generator ids;
    std::vector<std::string> keys;
    keys.reserve(records);
    write_batch batch;
    for (std::size_t i = 0; i < records; ++i) {
      keys.push_back(finished_key(1'000'000, project, delivery_status::succeeded, ids.next()));
      batch.put(table::history, keys.back(), value);
      if (batch.ops.size() == 4096 || i + 1 == records) {
        (void)store.write(batch);
        batch.clear();
      }
    }
    (void)store.compact(table::history);  // on disk, as a day-old bucket would be
    const std::string begin = bucket_key(1'000'000), end = bucket_key(1'000'001);
    const auto started = steady::now();
    if (by_range) {
      batch.erase_range(table::history, begin, end);
      (void)store.write(batch);
      (void)store.reclaim(table::history, begin, end, nullptr);
    } else {
      for (const std::string& key : keys) {
        batch.erase(table::history, key);
        if (batch.ops.size() == 4096) {
          (void)store.write(batch);
          batch.clear();
        }
      }
      (void)store.write(batch);
      (void)store.compact(table::history);
    }
    seconds += std::chrono::duration<double>(steady::now() - started).count();
    left += static_cast<double>(store.size(table::history).bytes);
    batch.clear();
  }
  const auto n = static_cast<double>(state.iterations());
  state.counters["drop_ms"] = seconds / n * 1000.0;
  state.counters["bytes_left"] = left / n;
  state.counters["records"] = static_cast<double>(records);
}

void BM_drop_bucket_by_range(benchmark::State& state) {
  drop_bucket(state, true);
}
BENCHMARK(BM_drop_bucket_by_range)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

void BM_drop_bucket_one_by_one(benchmark::State& state) {
  drop_bucket(state, false);
}
BENCHMARK(BM_drop_bucket_one_by_one)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
