// The delivery side: what it costs to sign, match, fan out, record and send one delivery.
//
//   signer     webhook_signer::create / sign / verify over the body a receiver gets (~500 B and
//              4 KiB of invoice-like JSON, wrapped by delivery_body); per attempt as the
//              dispatcher signs (for_webhook + sign), v1 (HMAC) against v1a (Ed25519), with one
//              secret and with a rotation's previous secret in its grace
//   match      any_matches() of an event type against sample_webhook()'s three patterns; the
//              fan-out's decision over 100 webhooks without filters and with payload filters
//              (data as the API parsed it, or parsed from its text)
//   ingest     delivery_log::ingest of one event that fans out to 1, 10 or 100 webhooks of one
//              project (a real catalog and log on RocksDB in a mkdtemp dir), from 1 or 16
//              threads that each keep one ingest in flight, with fsync (group commit) and without
//   attempt    delivery_log::record_attempt of a successful first attempt, fsync'd, 1 or 16 in
//              flight
//   scheduler  one retry round trip (take_due, done, schedule) and moving a queued job, with 10k
//              jobs queued over 100 webhooks; next_due()
//   index      one pending delivery in and one out of an index of N (4: a healthy webhook; 100k:
//              a backlog), the newest in and the oldest out, in std::set and in lazy_sorted_set
//   request    the signed outbound request for one delivery, as the dispatcher builds it, and the
//              bytes delivery_client::send would write for it
//
// No dispatcher runs: the deliveries the ingest benchmarks create stay pending (in memory, on
// disk and on the scheduler) until the run ends, so ingest is measured with a growing backlog, as
// when receivers are slow. The write benchmarks use blocking threads (one write in flight each):
// Google Benchmark holds all threads at a barrier when the timed loop starts and when it ends, so
// thread 0 builds the shared stack before its loop and tears it down after.

#include "bench_stack.hpp"

#include "core/common/completion.hpp"
#include "core/common/lazy_sorted_set.hpp"
#include "core/delivery/delivery.hpp"
#include "core/delivery/delivery_log.hpp"
#include "core/delivery/event_filter.hpp"
#include "core/delivery/event_match.hpp"
#include "core/delivery/scheduler.hpp"
#include "core/delivery/signing.hpp"
#include "hookd/version.hpp"
#include "http/outbound/delivery_client.hpp"
#include "http/outbound/dispatcher.hpp"

#include <benchmark/benchmark.h>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace {

using namespace hookd;
using namespace std::chrono_literals;
namespace http = hookd::http;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

constexpr timestamp kEventTime{std::chrono::milliseconds{1'718'000'000'000}};
constexpr std::int64_t kUnixSeconds = 1'718'000'000;

// Invoice-like event data whose body as a receiver gets it (delivery_body) is `body_bytes` long:
// line items while more than one fits, then a memo that fills the rest.
std::string invoice_data(std::size_t body_bytes) {
  boost::json::object data{
      {"id", "in_1PJx4kLkdIwHu7ixYbq2Q9Zt"},
      {"object", "invoice"},
      {"customer", "cus_Q3nE8Zk1aBcDeF"},
      {"currency", "eur"},
      {"amount_due", 4200},
      {"amount_paid", 4200},
      {"status", "paid"},
      {"hosted_invoice_url", "https://invoice.example.com/i/acct_1Nv0FGQ9RKHgCVdK/test_YWNjdF8x"},
      {"lines", boost::json::array{}}};
  auto& lines = data["lines"].as_array();
  event e;
  e.type = "invoice.paid";
  e.time = kEventTime;
  constexpr std::size_t kMemoOverhead = std::string_view(R"(,"memo":"")").size();
  for (;;) {
    e.data = boost::json::serialize(data);
    const std::size_t size = delivery_body(e).size();
    if (size + kMemoOverhead >= body_bytes) return e.data;
    if (body_bytes - size < 300) {
      const std::string_view filler = "Thank you for your business. ";
      std::string memo;
      while (memo.size() < body_bytes - size - kMemoOverhead) memo += filler;
      memo.resize(body_bytes - size - kMemoOverhead);
      data["memo"] = memo;
      continue;
    }
    lines.push_back(
        boost::json::object{{"id", "il_1PJx4kLkdIwHu7ix" + std::to_string(lines.size())},
                            {"description", "Pro plan (monthly), per seat"},
                            {"amount", 1400},
                            {"quantity", 3},
                            {"period_end", 1'720'592'000}});
  }
}

std::string delivery_body_of(const std::string& data) {
  event e;
  e.type = "invoice.paid";
  e.time = kEventTime;
  e.data = data;
  return delivery_body(e);
}

// ---------------------------------------------------------------- signer

struct signing_inputs {
  std::string secret = generate_webhook_secret();
  webhook_signer signer = webhook_signer::create(secret).value();
  std::string id = object_id_generator().next().to_string();  // the delivery id, webhook-id
  std::string body;
};

// HMAC-SHA256 of "{id}.{seconds}.{body}" and its base64: what every attempt pays once per secret.
void BM_sign(benchmark::State& state) {
  signing_inputs in;
  in.body = delivery_body_of(invoice_data(static_cast<std::size_t>(state.range(0))));
  for (auto _ : state) {
    auto signature = in.signer.sign(in.id, kUnixSeconds, in.body);
    benchmark::DoNotOptimize(signature);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(in.body.size()));
  state.counters["body_bytes"] = static_cast<double>(in.body.size());
}
BENCHMARK(BM_sign)->ArgName("body")->Arg(500)->Arg(4096)->MinTime(0.2);

// A receiver's check of the three headers (timestamp, then the constant-time comparison).
void BM_verify(benchmark::State& state) {
  signing_inputs in;
  in.body = delivery_body_of(invoice_data(static_cast<std::size_t>(state.range(0))));
  const std::string signature = in.signer.sign(in.id, kUnixSeconds, in.body);
  const std::string seconds = std::to_string(kUnixSeconds);
  if (!in.signer.verify(in.id, seconds, in.body, signature, kUnixSeconds)) {
    state.SkipWithError("the signature does not verify");
    return;
  }
  for (auto _ : state) {
    auto verdict = in.signer.verify(in.id, seconds, in.body, signature, kUnixSeconds);
    benchmark::DoNotOptimize(verdict);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(in.body.size()));
  state.counters["body_bytes"] = static_cast<double>(in.body.size());
}
BENCHMARK(BM_verify)->ArgName("body")->Arg(500)->Arg(4096)->MinTime(0.2);

// Decoding "whsec_..." into a signer: the dispatcher does it for every attempt.
void BM_signer_create(benchmark::State& state) {
  const std::string secret = generate_webhook_secret();
  for (auto _ : state) {
    auto signer = webhook_signer::create(secret);
    benchmark::DoNotOptimize(signer);
  }
}
BENCHMARK(BM_signer_create)->MinTime(0.2);

// The signature of one attempt as the dispatcher makes it: the signer from the webhook for the
// attempt's time (decoding its secrets; for v1a building the Ed25519 key from its seed), then
// the header. Args: scheme (0 v1, 1 v1a), previous secrets in their grace (0 or 1).
void BM_attempt_signature(benchmark::State& state) {
  const auto scheme = state.range(0) == 0 ? signing_scheme::v1 : signing_scheme::v1a;
  webhook hook;
  hook.signing = scheme;
  hook.secret = generate_webhook_secret(scheme);
  if (state.range(1) != 0) {
    hook.previous_secrets.push_back({generate_webhook_secret(scheme), kEventTime + 24h});
  }
  const std::string id = object_id_generator().next().to_string();
  const std::string body = delivery_body_of(invoice_data(500));
  for (auto _ : state) {
    auto signer = webhook_signer::for_webhook(hook, kEventTime);
    auto header = signer->sign(id, kUnixSeconds, body);
    benchmark::DoNotOptimize(header);
  }
  state.SetLabel(std::string(to_string(scheme)) +
                 (hook.previous_secrets.empty() ? "" : ", during a rotation"));
}
BENCHMARK(BM_attempt_signature)
    ->ArgNames({"v1a", "rotated"})
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->MinTime(0.2);

// The same with 4096 different webhooks taken in turn, more than the signer's per-thread cache of
// Ed25519 keys holds (1024): every v1a attempt derives its key from the seed again, as when
// attempts go round many more v1a webhooks than that. Arg: scheme (0 v1, 1 v1a).
void BM_attempt_signature_uncached(benchmark::State& state) {
  const auto scheme = state.range(0) == 0 ? signing_scheme::v1 : signing_scheme::v1a;
  std::vector<webhook> hooks(4096);
  for (webhook& hook : hooks) {
    hook.signing = scheme;
    hook.secret = generate_webhook_secret(scheme);
  }
  const std::string id = object_id_generator().next().to_string();
  const std::string body = delivery_body_of(invoice_data(500));
  std::size_t next = 0;
  for (auto _ : state) {
    auto signer = webhook_signer::for_webhook(hooks[next], kEventTime);
    next = (next + 1) % hooks.size();
    auto header = signer->sign(id, kUnixSeconds, body);
    benchmark::DoNotOptimize(header);
  }
  state.SetLabel(std::string(to_string(scheme)));
}
BENCHMARK(BM_attempt_signature_uncached)->ArgName("v1a")->DenseRange(0, 1)->MinTime(0.2);

// A v1a receiver's check of one signature with the public key (Ed25519 verify).
void BM_verify_v1a(benchmark::State& state) {
  const auto key = ed25519_key::generate();
  const auto signer = webhook_signer::create("whsk_" + base64_encode(key.seed())).value();
  const auto receiver = webhook_signer::create("whpk_" + base64_encode(key.public_key())).value();
  const std::string id = object_id_generator().next().to_string();
  const std::string body = delivery_body_of(invoice_data(500));
  const std::string signature = signer.sign(id, kUnixSeconds, body);
  const std::string seconds = std::to_string(kUnixSeconds);
  if (!receiver.verify(id, seconds, body, signature, kUnixSeconds)) {
    state.SkipWithError("the signature does not verify");
    return;
  }
  for (auto _ : state) {
    auto verdict = receiver.verify(id, seconds, body, signature, kUnixSeconds);
    benchmark::DoNotOptimize(verdict);
  }
}
BENCHMARK(BM_verify_v1a)->MinTime(0.2);

// ---------------------------------------------------------------- matching

// One webhook's filter at fan-out: "invoice.paid", "invoice.payment_failed", "customer.*".
// case 0: an exact match on the first pattern; 1: a prefix-wildcard match on the third;
// 2: no match, so every pattern is tried.
void BM_event_match(benchmark::State& state) {
  static constexpr std::array<std::string_view, 3> kTypes{
      "invoice.paid", "customer.subscription.updated", "charge.refunded"};
  static constexpr std::array<std::string_view, 3> kLabels{"exact, first pattern",
                                                           "wildcard, third pattern", "no match"};
  const auto which = static_cast<std::size_t>(state.range(0));
  const std::vector<std::string> patterns = bench::sample_webhook("match").events;
  const std::string type(kTypes[which]);
  for (auto _ : state) {
    bool matched = any_matches(patterns, type);
    benchmark::DoNotOptimize(matched);
  }
  if (any_matches(patterns, type) != (which != 2)) state.SkipWithError("unexpected match result");
  state.SetLabel(std::string(kLabels[which]));
}
BENCHMARK(BM_event_match)->ArgName("case")->DenseRange(0, 2)->MinTime(0.2);

// The fan-out's decision for one event over 100 webhooks that all match its type, as
// delivery_log's ingest makes it (docs/delivery.md, "Filtering by payload"). Case 0: no webhook
// has a filter; 1: every webhook has a two-path filter the event matches, its data as the API
// parsed it; 2: the same with the data parsed from its text (what an ingest without the parsed
// body pays, once per event).
void BM_fanout_filter(benchmark::State& state) {
  static constexpr std::array<std::string_view, 3> kLabels{
      "no filters", "filters, parsed data handed over", "filters, data parsed from text"};
  const auto which = static_cast<std::size_t>(state.range(0));
  const std::string data_text = invoice_data(500);
  const boost::json::value parsed = boost::json::parse(data_text);
  std::vector<field_error> errors;
  const auto filter = event_filter::parse(
      boost::json::parse(R"({"data.currency":"eur","data.amount_due":4200})"), errors);
  std::vector<std::shared_ptr<const webhook>> hooks;
  for (int i = 0; i < 100; ++i) {
    auto w = std::make_shared<webhook>();
    w->events = bench::sample_webhook("fan-out").events;
    if (which != 0) w->filter = filter;
    hooks.push_back(std::move(w));
  }
  const std::string type = "invoice.paid";
  std::size_t matched = 0;
  for (auto _ : state) {
    filter_data data(data_text, which == 1 ? &parsed : nullptr);
    matched = 0;
    for (const auto& w : hooks) {
      if (!w->active || !any_matches(w->events, type)) continue;
      if (w->filter && !w->filter->matches(type, data.get())) continue;
      ++matched;
    }
    benchmark::DoNotOptimize(matched);
  }
  if (matched != hooks.size()) state.SkipWithError("a webhook did not match");
  state.SetLabel(std::string(kLabels[which]));
}
BENCHMARK(BM_fanout_filter)->ArgName("case")->DenseRange(0, 2)->MinTime(0.2);

// ---------------------------------------------------------------- the delivery log

// The stack with `webhooks` sample webhooks in its project; its delivery log is started.
struct log_stack {
  log_stack(bool sync, std::size_t webhooks)
      : stack(sync), hooks(stack.add_webhooks(stack.project, webhooks)), log(*stack.deliveries) {}
  log_stack(const log_stack&) = delete;
  log_stack& operator=(const log_stack&) = delete;

  ingest_request request(const std::string& data) const {
    ingest_request r;
    r.token = token;
    r.organization = stack.org;
    r.project = stack.project;
    r.type = "invoice.paid";  // every sample webhook listens to it
    r.data = data;
    return r;
  }

  bench::stack stack;
  std::vector<std::shared_ptr<const webhook>> hooks;
  delivery_engine& log;  // the stack's, started; no dispatcher takes its jobs
  object_id token = object_id_generator().next();  // only scopes idempotency keys; none are sent
};

// Built by thread 0 before its timed loop, read by every thread inside theirs, reset by thread 0
// after it (see the barriers in the file comment).
std::unique_ptr<log_stack> shared_log;

// Commit groups and fsyncs over the timed part, read by thread 0 only.
struct commit_window {
  storage_stats store{};
  commit_stats commits{};

  static commit_window read(const log_stack& s) { return {s.stack.store->stats(), s.log.stats()}; }

  static void report(benchmark::State& state, const commit_window& before,
                     const commit_window& after) {
    const auto groups = static_cast<double>(after.commits.groups - before.commits.groups);
    const auto mutations = static_cast<double>(after.commits.mutations - before.commits.mutations);
    const auto syncs = static_cast<double>(after.store.syncs - before.store.syncs);
    state.counters["writes_per_group"] = groups > 0 ? mutations / groups : 0.0;
    state.counters["writes_per_fsync"] = syncs > 0 ? mutations / syncs : 0.0;
  }
};

// One ingest per iteration: validation, the fan-out over the project's webhooks, one batch with
// the event and its deliveries, (fsync), publishing to the index and the scheduler, completion.
// Args: matching webhooks, fsync on/off; threads = ingests in flight.
void BM_ingest(benchmark::State& state) {
  const auto fanout = static_cast<std::size_t>(state.range(0));
  const bool sync = state.range(1) != 0;
  commit_window before;
  if (state.thread_index() == 0) {
    shared_log = std::make_unique<log_stack>(sync, fanout);
    before = commit_window::read(*shared_log);
  }
  const std::string data = invoice_data(500);
  std::uint64_t deliveries = 0;
  std::uint64_t failures = 0;
  for (auto _ : state) {
    log_stack& s = *shared_log;
    auto r = wait_for<ingest_result>(
        [&](completion<ingest_result> done) { s.log.ingest(s.request(data), std::move(done)); });
    if (r && r->deliveries == fanout) {
      deliveries += r->deliveries;
    } else {
      ++failures;
    }
  }
  if (failures != 0) state.SkipWithError("an ingest failed or did not reach every webhook");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["deliveries"] =
      benchmark::Counter(static_cast<double>(deliveries), benchmark::Counter::kIsRate);
  if (state.thread_index() == 0) {
    commit_window::report(state, before, commit_window::read(*shared_log));
    shared_log.reset();
  }
}
BENCHMARK(BM_ingest)
    ->ArgNames({"webhooks", "fsync"})
    ->ArgsProduct({{1, 10, 100}, {1, 0}})
    ->Threads(1)
    ->Threads(16)
    ->MinTime(0.3)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

// Deliveries for the attempt benchmark: 200 events x 100 webhooks, ingested concurrently.
constexpr std::size_t kAttemptEvents = 200;
constexpr std::size_t kAttemptWebhooks = 100;

std::vector<object_id> make_pending_deliveries(log_stack& s) {
  const std::string data = invoice_data(500);
  std::vector<std::promise<result<ingest_result>>> done(kAttemptEvents);
  for (auto& d : done) {
    s.log.ingest(s.request(data), [&d](result<ingest_result> r) { d.set_value(std::move(r)); });
  }
  for (auto& d : done) {
    if (!d.get_future().get()) throw std::runtime_error("set-up ingest failed");
  }
  std::vector<object_id> ids;
  for (const auto& hook : s.hooks) {
    delivery_query query;
    query.project = s.stack.project;
    query.webhook = hook->id;
    query.limit = kMaxDeliveryPage;
    for (;;) {
      auto page = s.log.list_deliveries(query).value();
      for (const auto& d : page.items) ids.push_back(d->id);
      if (!page.next) break;
      query.after = page.next;
    }
  }
  if (ids.size() != kAttemptEvents * kAttemptWebhooks) {
    throw std::runtime_error("set-up created an unexpected number of deliveries");
  }
  return ids;
}

std::vector<object_id> attempt_targets;
std::atomic<std::uint64_t> next_attempt{0};

// One record_attempt per iteration: a 503 answer after 120 ms, decided `retry` an hour later: the
// attempt and the rescheduled delivery (its queue record) in one batch, fsync'd, published, the
// scheduler told. Iterations take the 20k pending deliveries in turn, going round with the next
// attempt number (each stays pending). Threads = attempts in flight.
void BM_record_attempt(benchmark::State& state) {
  commit_window before;
  if (state.thread_index() == 0) {
    shared_log = std::make_unique<log_stack>(/*sync=*/true, kAttemptWebhooks);
    attempt_targets = make_pending_deliveries(*shared_log);
    next_attempt.store(0);
    before = commit_window::read(*shared_log);
  }
  std::uint64_t failures = 0;
  for (auto _ : state) {
    log_stack& s = *shared_log;
    const auto i = next_attempt.fetch_add(1);
    const auto target = s.log.find_pending(attempt_targets[i % attempt_targets.size()]);
    if (!target) {
      ++failures;
      continue;
    }
    attempt a;
    a.number = target->record->attempts + 1;
    a.at = s.log.now();
    a.duration = 120ms;
    a.status_code = 503;
    a.response = R"({"error":"busy"})";
    auto r = wait_for<std::shared_ptr<const delivery>>(
        [&](completion<std::shared_ptr<const delivery>> done) {
          s.log.record_attempt(target->record, std::move(a),
                               attempt_decision::retry(s.log.now() + std::chrono::hours(1)),
                               std::move(done));
        });
    if (!r) ++failures;
  }
  if (failures != 0) state.SkipWithError("record_attempt failed");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  if (state.thread_index() == 0) {
    commit_window::report(state, before, commit_window::read(*shared_log));
    shared_log.reset();
  }
}
BENCHMARK(BM_record_attempt)
    ->Threads(1)
    ->Threads(16)
    ->MinTime(0.3)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

// ---------------------------------------------------------------- scheduler

constexpr std::size_t kQueuedJobs = 10'000;

using bench::xorshift;
constexpr std::size_t kSchedulerWebhooks = 100;

// 10k jobs queued over 100 active webhooks of one organization, due one millisecond apart; `now`
// is past all of them and past every time the benchmarks move a job to.
struct scheduler_fixture {
  scheduler jobs{[](const object_id&) {
    return webhook_info{webhook_state::active, object_id{}};  // one organization: the nil id
  }};
  std::vector<scheduled_job> queued;
  timestamp now = kEventTime + std::chrono::hours(24 * 365);

  scheduler_fixture() {
    jobs.set_wake([] {});
    object_id_generator ids;
    std::vector<object_id> hooks;
    for (std::size_t i = 0; i < kSchedulerWebhooks; ++i) hooks.push_back(ids.next());
    for (std::size_t i = 0; i < kQueuedJobs; ++i) {
      queued.push_back({ids.next(), hooks[i % kSchedulerWebhooks],
                        kEventTime + std::chrono::milliseconds(static_cast<std::int64_t>(i))});
      jobs.schedule(queued.back().delivery, queued.back().webhook, queued.back().due);
    }
  }
};

// A retry's round trip through the scheduler, per job: take_due(now, batch) hands out the
// earliest jobs, done() releases each slot and schedule() queues it again behind the others
// (what record_attempt does for a retry), so 10k stay queued. Args: jobs per take_due (the
// dispatcher takes up to 64).
void BM_scheduler_cycle(benchmark::State& state) {
  scheduler_fixture f;
  const auto batch = static_cast<std::size_t>(state.range(0));
  std::int64_t later = static_cast<std::int64_t>(kQueuedJobs);
  std::uint64_t short_batches = 0;
  for (auto _ : state) {
    auto due = f.jobs.take_due(f.now, batch);
    if (due.ready.size() != batch) ++short_batches;
    for (const auto& job : due.ready) {
      f.jobs.done(job.delivery);
      f.jobs.schedule(job.delivery, job.webhook, kEventTime + std::chrono::milliseconds(++later));
    }
  }
  if (short_batches != 0) state.SkipWithError("take_due handed out fewer jobs than asked");
  if (f.jobs.counts().queued != kQueuedJobs) state.SkipWithError("the queue did not stay at 10k");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}
BENCHMARK(BM_scheduler_cycle)->ArgName("batch")->Arg(1)->Arg(64)->MinTime(0.2);

// schedule() of a job that is queued already: moved to a new due time (remove and re-insert in
// its webhook's queue and, when it was the head, in the heads set).
void BM_scheduler_reschedule(benchmark::State& state) {
  scheduler_fixture f;
  xorshift rng{0x2545F4914F6CDD1D};
  std::int64_t later = static_cast<std::int64_t>(kQueuedJobs);
  for (auto _ : state) {
    const auto& job = f.queued[rng.next() % kQueuedJobs];
    f.jobs.schedule(job.delivery, job.webhook, kEventTime + std::chrono::milliseconds(++later));
  }
  if (f.jobs.counts().queued != kQueuedJobs) state.SkipWithError("the queue did not stay at 10k");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_scheduler_reschedule)->MinTime(0.2);

// What the dispatcher's loop asks before it sleeps.
void BM_scheduler_next_due(benchmark::State& state) {
  scheduler_fixture f;
  for (auto _ : state) {
    auto next = f.jobs.next_due();
    benchmark::DoNotOptimize(next);
  }
}
BENCHMARK(BM_scheduler_next_due)->MinTime(0.2);

// ---------------------------------------------------------------- the pending indexes
// The delivery log keeps its pending deliveries' ids by webhook, by project and by age. Per
// iteration: the newest id in, the oldest out, so the index stays at N (Arg). std::set was the
// index before lazy_sorted_set (bench/README.md, "the pending indexes without a node per key").

template <class Index>
void insert_id(Index& index, const object_id& id) {
  if constexpr (std::is_same_v<Index, std::set<object_id>>) {
    index.emplace_hint(index.end(), id);  // as the delivery log did
  } else {
    index.insert(id);
  }
}

template <class Index>
void BM_pending_index(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  object_id_generator ids;
  std::vector<object_id> live;  // in creation order
  Index index;
  for (std::size_t i = 0; i < n; ++i) {
    live.push_back(ids.next());
    insert_id(index, live.back());
  }
  std::size_t oldest = 0;
  for (auto _ : state) {
    live.push_back(ids.next());
    insert_id(index, live.back());
    index.erase(live[oldest++]);
  }
  if (index.size() != n) state.SkipWithError("the index did not stay at its size");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_pending_index<std::set<object_id>>)->ArgName("n")->Arg(4)->Arg(100'000)->MinTime(0.2);
BENCHMARK(BM_pending_index<lazy_sorted_set<object_id>>)
    ->ArgName("n")
    ->Arg(4)
    ->Arg(100'000)
    ->MinTime(0.2);

// ---------------------------------------------------------------- the outbound request

// What delivery_client::send does with an outbound_request before writing it, approximated with
// public pieces: its URL parsing (parse_target) and its header filters are file-local in
// delivery_client.cpp, so this parses with Boost.URL and inserts every header unchecked. Then the
// bytes, serialized into `out` (send() hands the same buffers to the socket or TLS stream).
std::size_t request_bytes(http::outbound_request outbound, std::string& out) {
  auto url = boost::urls::parse_uri(outbound.url).value();
  std::string target(url.encoded_path());
  if (target.empty()) target = "/";
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, target, 11};
  req.set(bhttp::field::host, std::string_view(url.encoded_host()));
  for (const header_entry& h : outbound.headers) req.insert(h.name, h.value);
  req.body() = std::move(outbound.body);
  req.prepare_payload();
  out.clear();
  bhttp::request_serializer<bhttp::string_body> sr{req};
  beast::error_code ec;
  do {
    sr.next(ec, [&](beast::error_code&, const auto& buffers) {
      std::size_t n = 0;
      for (const auto b : beast::buffers_range_ref(buffers)) {
        out.append(static_cast<const char*>(b.data()), b.size());
        n += b.size();
      }
      sr.consume(n);
    });
  } while (!ec && !sr.is_done());
  return out.size();
}

// One pending delivery of a ~500-byte event to a sample webhook (sync off: set-up only).
struct request_fixture {
  log_stack s{/*sync=*/false, 1};
  object_id delivery_id;
  object_id webhook_id;
  std::string user_agent = std::string("hookd/") + std::string(kVersion);

  request_fixture() {
    auto r = wait_for<ingest_result>([&](completion<ingest_result> done) {
      s.log.ingest(s.request(invoice_data(500)), std::move(done));
    });
    if (!r || r->deliveries != 1) throw std::runtime_error("set-up ingest failed");
    webhook_id = s.hooks.front()->id;
    delivery_query query;
    query.project = s.stack.project;
    query.webhook = webhook_id;
    delivery_id = s.log.list_deliveries(query).value().items.front()->id;
  }

  // The dispatcher's attempt_job up to the send: look up the delivery, its webhook and its event,
  // make the signer, build the body and the signed request.
  http::outbound_request build() const {
    const auto pending = s.log.find_pending(delivery_id);
    const auto hook = s.stack.cat->find_webhook(webhook_id);
    const auto signer = webhook_signer::create(hook->secret.value()).value();
    const std::int64_t unix_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(s.log.now().time_since_epoch()).count();
    // The whole request, fixed part included: the dispatcher prepares the fixed part (URL,
    // content-type, user-agent, custom headers) once per webhook (delivery_client::prepare), so
    // this is what an attempt costs without that template, the upper bound.
    const std::string id = pending->record->id.to_string();
    http::outbound_request req;
    req.url = hook->url;
    req.headers.reserve(hook->headers.size() + 5);
    req.headers.push_back({"content-type", "application/json"});
    req.headers.push_back({"user-agent", user_agent});
    for (const header_entry& h : hook->headers) req.headers.push_back(h);
    req.body = delivery_body(*pending->source_event);
    req.headers.push_back({"webhook-id", id});
    req.headers.push_back({"webhook-timestamp", std::to_string(unix_seconds)});
    req.headers.push_back({"webhook-signature", signer.sign(id, unix_seconds, req.body)});
    return req;
  }
};

request_fixture& requests() {
  static request_fixture f;
  return f;
}

// From the delivery id to the signed outbound_request (lookups, signer, body, headers, HMAC).
void BM_delivery_request(benchmark::State& state) {
  const auto& f = requests();
  for (auto _ : state) {
    auto req = f.build();
    benchmark::DoNotOptimize(req);
  }
  state.counters["body_bytes"] = static_cast<double>(f.build().body.size());
}
BENCHMARK(BM_delivery_request)->MinTime(0.2);

// The same, then the HTTP/1.1 request bytes (before TLS).
void BM_delivery_request_bytes(benchmark::State& state) {
  const auto& f = requests();
  std::string out;
  for (auto _ : state) {
    auto n = request_bytes(f.build(), out);
    benchmark::DoNotOptimize(n);
  }
  state.counters["request_bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_delivery_request_bytes)->MinTime(0.2);

}  // namespace

BENCHMARK_MAIN();
