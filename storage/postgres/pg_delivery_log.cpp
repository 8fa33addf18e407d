#include "storage/postgres/pg_delivery_log.hpp"

#include "core/common/clock.hpp"
#include "core/common/thread_name.hpp"
#include "core/delivery/delivery_log.hpp"  // kRecoverBatch
#include "core/delivery/fan_out.hpp"
#include "core/delivery/trace_context.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace hookd::pg {

namespace {

// Calls `done` and swallows what it throws: completions must not break the writer.
template <class T>
void finish(const completion<T>& done, result<T> r) noexcept {
  try {
    if (done) done(std::move(r));
  } catch (...) {
  }
}

problem unavailable_problem() {
  return make_problem(error_kind::unavailable, "The delivery engine is stopping.");
}

}  // namespace

struct pg_delivery_log::impl {
  // An ingest (or a test ping) waiting for the writer's next group.
  struct ingest_job {
    ingest_item item;
    std::vector<std::shared_ptr<delivery>> created;         // what the item creates, due now
    completion<ingest_result> done;                         // an ingest's answer, or
    completion<std::shared_ptr<const delivery>> ping_done;  // a test ping's
    std::chrono::steady_clock::time_point received{};       // ingest_request::received
  };
  struct record_job {
    std::shared_ptr<const delivery> attempted;
    attempt_record record;
    completion<std::shared_ptr<const delivery>> done;
  };
  // Anything else the writer runs with its store, in order; null store: the engine is stopping.
  using task = std::function<void(pg_delivery_store*)>;

  impl(const catalog& c, pg_delivery_log_options o, clock_function clk)
      : cat(c),
        options(std::move(o)),
        clock(clk ? std::move(clk) : clock_function(now_ms)),
        sched(
            [catalog_ptr = &c](const object_id& id) {
              const auto w = catalog_ptr->find_webhook(id);
              if (!w) return webhook_info{webhook_state::missing, {}};
              return webhook_info{w->active ? webhook_state::active : webhook_state::inactive,
                                  w->organization, w->rate_limit};
            },
            options.log.scheduling) {
    options.store.clock = clock;
    options.store.idempotency_ttl = options.log.idempotency_ttl;
    options.store.retention = options.log.retention;
    if (options.max_held == 0) options.max_held = 4 * sched.options().max_in_flight;
  }

  const catalog& cat;
  pg_delivery_log_options options;
  clock_function clock;
  scheduler sched;
  object_id_generator ids;

  std::unique_ptr<pg_delivery_store> writer_store;
  std::unique_ptr<pg_delivery_store> claimer_store;
  std::mutex claimer_mutex;  // guards claimer_store
  std::unique_ptr<pg_delivery_store> reader_store;
  mutable std::mutex reader_mutex;  // guards reader_store

  // The deliveries this node holds, with their events.
  mutable std::shared_mutex held_mutex;
  std::unordered_map<object_id, pending_delivery> held;

  // Node-local meta records (write_meta) other than failure streaks.
  std::mutex meta_mutex;
  std::unordered_map<std::string, std::string> meta;

  // The webhooks whose lease this node holds (docs/cluster.md, "Ordering and flow control
  // across nodes"), each with the last time it held a delivery of it: a webhook idle for twice
  // the lease is given up, so that ownership follows the load.
  using steady = std::chrono::steady_clock;
  std::mutex owned_mutex;
  std::unordered_map<object_id, steady::time_point> owned;
  // The failure streak this node stored last per webhook: a webhook taken back whose stored
  // streak is this one was nobody else's meanwhile, and its streak in memory is as new.
  std::unordered_map<object_id, failure_streak> streaks_written;
  streak_sink on_streak;  // endpoint health's restore (set_streak_sink)

  // The listener: NOTIFY hookd_deliveries from other nodes' ingests.
  std::thread listener;
  std::atomic<bool> listener_stopping{false};

  // The writer's queues.
  std::mutex queue_mutex;
  std::condition_variable queue_wake;
  std::vector<ingest_job> ingests;
  std::vector<record_job> records;
  std::vector<task> tasks;
  bool writer_stopping = false;
  std::thread writer;

  // The claimer.
  std::mutex claim_wake_mutex;
  std::condition_variable claim_wake;
  bool claimer_stopping = false;
  bool claim_soon = false;
  bool streaks_soon = false;  // another node stored the streak of a webhook this node holds
  std::thread claimer;

  std::atomic<std::uint64_t> n_events{0}, n_deliveries{0}, n_replays{0}, n_attempts{0},
      n_retries{0}, n_succeeded{0}, n_failed{0}, n_cancelled{0}, n_erased{0}, n_deleted{0},
      n_groups{0}, n_mutations{0}, n_rejected{0}, n_write_failed{0}, n_sweeps{0},
      n_sweep_failures{0};
  // measure_history() at the last sweep; oldest_day_ms -1: no day holds rows.
  std::atomic<std::uint64_t> history_bytes{0}, history_rows{0}, history_deliveries{0};
  std::atomic<std::int64_t> oldest_day_ms{-1};

  // ---- memory

  void hold(pending_delivery p) {
    const delivery& d = *p.record;
    {
      std::unique_lock lock(held_mutex);
      auto [it, inserted] = held.try_emplace(d.id, p);
      if (!inserted) {
        // Held already, and scheduled: unless this is a newer state of it (claimed again after
        // its retry was recorded, before the writer let the attempted one go).
        if (it->second.record->attempts >= d.attempts) return;
        it->second = std::move(p);
      }
    }
    std::optional<ordering> order;
    if (d.ordering_key) order = ordering{*d.ordering_key, d.created_at};
    sched.schedule(d.id, d.webhook, d.next_attempt_at.value_or(clock()), order, d.test);
  }

  // A retry recorded: the held job takes its new state and is queued for its next attempt.
  void keep_for_retry(const std::shared_ptr<delivery>& after) {
    {
      std::unique_lock lock(held_mutex);
      const auto it = held.find(after->id);
      if (it != held.end()) it->second.record = after;
    }
    std::optional<ordering> order;
    if (after->ordering_key) order = ordering{*after->ordering_key, after->created_at};
    sched.schedule(after->id, after->webhook, after->next_attempt_at.value_or(clock()), order,
                   after->test);
    sched.done(after->id);
  }

  // The attempt of `attempted` is over (recorded or refused): the job leaves memory and the
  // scheduler, unless the claimer already holds it again in a newer state (a retry due at once,
  // claimed between the record's commit and this): then it is queued again at done().
  void let_go(const delivery& attempted) {
    bool again = false;
    {
      std::unique_lock lock(held_mutex);
      if (const auto it = held.find(attempted.id); it != held.end()) {
        again = it->second.record->attempts > attempted.attempts;
        if (!again) held.erase(it);
      }
    }
    sched.done(attempted.id);
    if (!again) (void)sched.cancel(attempted.id);
  }

  template <class Pred>
  std::vector<object_id> let_go_if(Pred pred) {
    std::vector<object_id> gone;
    {
      std::unique_lock lock(held_mutex);
      for (auto it = held.begin(); it != held.end();) {
        if (pred(it->second)) {
          gone.push_back(it->first);
          it = held.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (const object_id& id : gone) (void)sched.cancel(id);
    return gone;
  }

  std::size_t held_count() const {
    std::shared_lock lock(held_mutex);
    return held.size();
  }

  std::vector<object_id> held_ids() const {
    std::shared_lock lock(held_mutex);
    std::vector<object_id> out;
    out.reserve(held.size());
    for (const auto& [id, p] : held) out.push_back(id);
    return out;
  }

  void wake_claimer() {
    {
      std::lock_guard lock(claim_wake_mutex);
      claim_soon = true;
    }
    claim_wake.notify_one();
  }

  // ---- webhook leases

  // `news.held` are this node's now: remembered, and the failure streak of one this node did not
  // hold goes to endpoint health unless it is the one this node stored last.
  void held_webhooks(const std::vector<webhook_held>& held_now) {
    std::vector<webhook_held> fresh;
    streak_sink sink;
    {
      std::lock_guard lock(owned_mutex);
      const auto now = steady::now();
      for (const webhook_held& h : held_now) {
        const bool taken = owned.insert_or_assign(h.webhook, now).second;
        if (!taken) continue;
        const auto mine = streaks_written.find(h.webhook);
        if (mine != streaks_written.end() && mine->second == h.streak) continue;
        streaks_written.insert_or_assign(h.webhook, h.streak);
        fresh.push_back(h);
      }
      sink = on_streak;
    }
    if (!sink) return;
    for (const webhook_held& h : fresh) {
      if (cat.find_webhook(h.webhook)) sink(h.webhook, h.streak);
    }
  }

  bool owns(const object_id& webhook) {
    std::lock_guard lock(owned_mutex);
    return owned.contains(webhook);
  }

  std::vector<object_id> owned_ids() {
    std::lock_guard lock(owned_mutex);
    std::vector<object_id> out;
    out.reserve(owned.size());
    for (const auto& [id, at] : owned) out.push_back(id);
    return out;
  }

  // Renews the webhook leases; those another node took meanwhile (this node was cut off longer
  // than the lease) leave, with their held deliveries; those idle for twice the lease are given
  // up. Runs on the claimer, with the claimer's store.
  result<void> renew_webhooks_once() {
    std::vector<object_id> mine = owned_ids();
    if (mine.empty()) return {};
    // Which owned webhooks have held deliveries now.
    std::unordered_set<object_id, object_id_hash> busy;
    {
      std::shared_lock lock(held_mutex);
      for (const auto& [id, p] : held) busy.insert(p.record->webhook);
    }
    const auto now = steady::now();
    std::vector<object_id> idle;
    {
      std::lock_guard lock(owned_mutex);
      for (auto& [id, at] : owned) {
        if (busy.contains(id)) {
          at = now;
        } else if (now - at >= 2 * options.store.lease) {
          idle.push_back(id);
        }
      }
      for (const object_id& id : idle) owned.erase(id);
    }
    std::unique_lock lock(claimer_mutex);
    if (!idle.empty()) {
      (void)claimer_store->release_webhooks(idle);
      // An ingest that leased this node a delivery of one meanwhile keeps it (the store releases
      // no webhook of which this node holds a delivery).
      std::unordered_set<object_id, object_id_hash> busy_now;
      {
        std::shared_lock held_lock(held_mutex);
        for (const auto& [id, p] : held) busy_now.insert(p.record->webhook);
      }
      std::lock_guard owned_lock(owned_mutex);
      for (const object_id& id : idle) {
        if (busy_now.contains(id)) owned.insert_or_assign(id, steady::now());
      }
    }
    std::erase_if(mine, [&](const object_id& id) {
      return std::find(idle.begin(), idle.end(), id) != idle.end();
    });
    auto kept = claimer_store->renew_webhooks(mine);
    lock.unlock();
    if (!kept) return kept.error();
    std::unordered_set<object_id, object_id_hash> still;
    std::vector<webhook_held> changed;  // stored by another node (a reactivation there)
    streak_sink sink;
    {
      std::lock_guard owned_lock(owned_mutex);
      for (const webhook_held& h : *kept) {
        still.insert(h.webhook);
        const auto it = streaks_written.find(h.webhook);
        if (it != streaks_written.end() && it->second == h.streak) continue;
        streaks_written.insert_or_assign(h.webhook, h.streak);
        changed.push_back(h);
      }
      sink = on_streak;
    }
    if (sink) {
      for (const webhook_held& h : changed) {
        if (cat.find_webhook(h.webhook)) sink(h.webhook, h.streak);
      }
    }
    std::vector<object_id> lost;
    for (const object_id& id : mine) {
      if (!still.contains(id)) lost.push_back(id);
    }
    if (lost.empty()) return {};
    {
      std::lock_guard owned_lock(owned_mutex);
      for (const object_id& id : lost) owned.erase(id);
    }
    const std::unordered_set<object_id, object_id_hash> gone_hooks(lost.begin(), lost.end());
    const std::vector<object_id> dropped = let_go_if(
        [&](const pending_delivery& p) { return gone_hooks.contains(p.record->webhook); });
    std::lock_guard again(claimer_mutex);
    (void)claimer_store->release(dropped);
    return {};
  }

  // Another node's ingest left deliveries of a webhook this node holds: claim them now.
  void run_listener() {
    const auto pause = std::chrono::milliseconds{100};
    while (!listener_stopping.load()) {
      auto opened = connection::open(options.store.uri);
      if (!opened || !opened->exec("LISTEN " + std::string(kDeliveriesChannel))) {
        std::this_thread::sleep_for(pause);
        continue;
      }
      PGconn* raw = opened->native();
      while (!listener_stopping.load()) {
        if (PQconsumeInput(raw) == 0) break;  // the connection broke: open another
        bool wake = false;
        while (PGnotify* n = PQnotifies(raw)) {
          std::string_view payload = n->extra;
          if (payload.starts_with(kStreakPayloadPrefix)) {
            // Another node reset the streak: a client switched the webhook back on there (or
            // deleted it). Its backlog here goes now, oldest first, as resume_webhook does.
            payload.remove_prefix(kStreakPayloadPrefix.size());
            if (const auto id = object_id::parse(payload); id && owns(*id)) {
              {
                std::lock_guard lock(claim_wake_mutex);
                streaks_soon = true;
              }
              wake = true;
              resume(*id);
            }
          } else if (payload == "*") {
            wake = true;
          } else {
            std::size_t at = 0;
            while (!wake && at < payload.size()) {
              std::size_t end = payload.find(',', at);
              if (end == std::string_view::npos) end = payload.size();
              if (const auto id = object_id::parse(payload.substr(at, end - at))) {
                wake = owns(*id);
              }
              at = end + 1;
            }
          }
          PQfreemem(n);
        }
        if (wake) wake_claimer();
        pollfd p{PQsocket(raw), POLLIN, 0};
        (void)::poll(&p, 1, static_cast<int>(pause.count()));
      }
    }
  }

  // The webhook's held deliveries due now: queued oldest first (ties go by delivery id).
  void resume(const object_id& webhook) {
    std::vector<std::shared_ptr<const delivery>> mine;
    {
      std::shared_lock lock(held_mutex);
      for (const auto& [id, p] : held) {
        if (p.record->webhook == webhook) mine.push_back(p.record);
      }
    }
    const timestamp now = clock();
    for (const auto& d : mine) sched.schedule(d->id, d->webhook, now);
  }

  // ---- the writer

  void submit(ingest_job job) {
    {
      std::lock_guard lock(queue_mutex);
      if (!writer_stopping) {
        ingests.push_back(std::move(job));
        queue_wake.notify_one();
        return;
      }
    }
    fail(job, unavailable_problem());
  }
  void submit(record_job job) {
    {
      std::lock_guard lock(queue_mutex);
      if (!writer_stopping) {
        records.push_back(std::move(job));
        queue_wake.notify_one();
        return;
      }
    }
    finish<std::shared_ptr<const delivery>>(job.done, unavailable_problem());
  }
  void submit(task t) {
    {
      std::lock_guard lock(queue_mutex);
      if (!writer_stopping) {
        tasks.push_back(std::move(t));
        queue_wake.notify_one();
        return;
      }
    }
    t(nullptr);
  }

  static void fail(ingest_job& job, const problem& p) {
    if (job.ping_done) finish<std::shared_ptr<const delivery>>(job.ping_done, p);
    if (job.done) finish<ingest_result>(job.done, p);
  }

  void run_writer() {
    for (;;) {
      std::vector<ingest_job> in;
      std::vector<record_job> rec;
      std::vector<task> ts;
      {
        std::unique_lock lock(queue_mutex);
        queue_wake.wait(lock, [&] {
          return writer_stopping || !ingests.empty() || !records.empty() || !tasks.empty();
        });
        if (ingests.empty() && records.empty() && tasks.empty()) return;  // stopping, drained
        in.swap(ingests);
        rec.swap(records);
        ts.swap(tasks);
      }
      if (!in.empty()) write_ingests(in);
      if (!rec.empty()) write_records(rec);
      for (task& t : ts) t(writer_store.get());
    }
  }

  void write_ingests(std::vector<ingest_job>& jobs) {
    std::vector<ingest_item> group;
    group.reserve(jobs.size());
    for (const ingest_job& j : jobs) group.push_back(j.item);
    n_groups.fetch_add(1, std::memory_order_relaxed);
    n_mutations.fetch_add(jobs.size(), std::memory_order_relaxed);
    lease_news news;
    auto answers = writer_store->ingest(group, &news);
    if (!answers) {
      n_write_failed.fetch_add(jobs.size(), std::memory_order_relaxed);
      for (ingest_job& j : jobs) fail(j, answers.error());
      return;
    }
    held_webhooks(news.held);
    const auto committed = std::chrono::steady_clock::now();  // the group is durable
    const std::unordered_set<object_id, object_id_hash> not_leased(news.not_leased.begin(),
                                                                   news.not_leased.end());
    bool claim_mine = false;  // deliveries of a webhook this node holds wait for a claim
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      ingest_job& j = jobs[i];
      const ingest_answer& a = (*answers)[i];
      switch (a.outcome) {
        case ingest_outcome::conflict:
          n_rejected.fetch_add(1, std::memory_order_relaxed);
          fail(j, make_problem(error_kind::conflict,
                               "The idempotency key \"" + (j.item.key ? j.item.key->key : "") +
                                   "\" was already used with another request body."));
          break;
        case ingest_outcome::replay:
          n_replays.fetch_add(1, std::memory_order_relaxed);
          finish<ingest_result>(j.done, ingest_result{a.event, a.type, a.time, a.deliveries, true});
          break;
        case ingest_outcome::created: {
          n_events.fetch_add(1, std::memory_order_relaxed);
          n_deliveries.fetch_add(j.created.size(), std::memory_order_relaxed);
          auto sent = std::make_shared<const event>(std::move(j.item.record));
          std::shared_ptr<const delivery> first;
          for (auto& d : j.created) {
            first = d;
            if (!not_leased.contains(d->id)) {
              hold(pending_delivery{d, sent, j.received, committed});
            } else if (owns(d->webhook)) {
              claim_mine = true;
            }
          }
          if (j.ping_done) {
            finish<std::shared_ptr<const delivery>>(j.ping_done, std::move(first));
          } else {
            finish<ingest_result>(
                j.done,
                ingest_result{sent->id, sent->type, sent->time,
                              static_cast<std::uint32_t>(j.created.size()), false, committed});
          }
          break;
        }
      }
    }
    if (claim_mine) wake_claimer();
  }

  void write_records(std::vector<record_job>& jobs) {
    std::vector<attempt_record> batch;
    batch.reserve(jobs.size());
    for (const record_job& j : jobs) batch.push_back(j.record);
    n_groups.fetch_add(1, std::memory_order_relaxed);
    n_mutations.fetch_add(jobs.size(), std::memory_order_relaxed);
    auto outcomes = writer_store->record_attempts(batch);
    if (!outcomes) {
      n_write_failed.fetch_add(jobs.size(), std::memory_order_relaxed);
      for (record_job& j : jobs) {
        // Not recorded: attempted again after a while, still this node's while its lease lasts.
        const delivery& d = *j.attempted;
        std::optional<ordering> order;
        if (d.ordering_key) order = ordering{*d.ordering_key, d.created_at};
        sched.schedule(d.id, d.webhook, clock() + options.log.unrecorded_retry_delay, order,
                       d.test);
        sched.done(d.id);
        finish<std::shared_ptr<const delivery>>(j.done, outcomes.error());
      }
      return;
    }
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      record_job& j = jobs[i];
      const object_id& id = j.record.delivery;
      auto after = std::make_shared<delivery>(*j.attempted);
      apply_state(*after, j.record.value.number, j.record.after);
      switch ((*outcomes)[i]) {
        case record_outcome::recorded:
          n_attempts.fetch_add(1, std::memory_order_relaxed);
          if (after->status == delivery_status::pending) {
            n_retries.fetch_add(1, std::memory_order_relaxed);
          } else if (after->status == delivery_status::succeeded) {
            n_succeeded.fetch_add(1, std::memory_order_relaxed);
          } else {
            n_failed.fetch_add(1, std::memory_order_relaxed);
          }
          if (after->status == delivery_status::pending) {
            // A retry stays with this node, which holds its webhook: queued again before done()
            // so that its ordering key's line does not move on (scheduler.hpp).
            keep_for_retry(after);
          } else {
            let_go(*j.attempted);
          }
          finish<std::shared_ptr<const delivery>>(j.done, std::shared_ptr<const delivery>(after));
          break;
        case record_outcome::recorded_late:
          n_attempts.fetch_add(1, std::memory_order_relaxed);
          let_go(*j.attempted);
          finish<std::shared_ptr<const delivery>>(j.done, std::shared_ptr<const delivery>(after));
          break;
        case record_outcome::lease_lost:
          let_go(*j.attempted);
          finish<std::shared_ptr<const delivery>>(
              j.done, make_problem(error_kind::conflict,
                                   "Delivery " + id.to_string() + " is held by another node."));
          break;
        case record_outcome::conflict:
          let_go(*j.attempted);
          finish<std::shared_ptr<const delivery>>(
              j.done,
              make_problem(error_kind::conflict,
                           "Attempt " + std::to_string(j.record.value.number) + " of delivery " +
                               id.to_string() + " is not its next attempt."));
          break;
        case record_outcome::not_pending:
          let_go(*j.attempted);
          finish<std::shared_ptr<const delivery>>(
              j.done, make_problem(error_kind::not_found,
                                   "Delivery " + id.to_string() + " is no longer pending."));
          break;
      }
    }
    if (held_count() == 0) wake_claimer();
  }

  // Deliveries made due now by redeliver or recover: one this node holds goes again at once;
  // the others are claimed by whichever node comes first (this one's claimer is woken).
  void redelivered(const std::vector<object_id>& changed, pg_delivery_store* /*store*/) {
    const timestamp now = clock();
    bool others = false;
    for (const object_id& id : changed) {
      std::shared_ptr<const delivery> d;
      {
        std::shared_lock lock(held_mutex);
        if (const auto it = held.find(id); it != held.end()) d = it->second.record;
      }
      if (d) {
        sched.schedule(d->id, d->webhook, now);
      } else {
        others = true;
      }
    }
    if (others) wake_claimer();
  }

  // ---- the claimer

  result<std::size_t> claim_once() {
    const std::size_t have = held_count();
    if (have >= options.max_held) return std::size_t{0};
    std::lock_guard lock(claimer_mutex);
    lease_news news;
    auto claimed = claimer_store->claim_due(options.max_held - have, &news);
    if (!claimed) return claimed.error();
    held_webhooks(news.held);
    for (pending_delivery& p : *claimed) hold(std::move(p));
    return claimed->size();
  }

  result<void> renew_once() {
    const std::vector<object_id> mine = held_ids();
    if (mine.empty()) return {};
    std::unique_lock lock(claimer_mutex);
    auto kept = claimer_store->renew(mine);
    lock.unlock();
    if (!kept) return kept.error();
    std::unordered_map<object_id, bool> still;
    for (const object_id& id : *kept) still.emplace(id, true);
    // Those another node took leave memory; an attempt of one in flight gets lease_lost.
    for (const object_id& id : mine) {
      if (!still.contains(id)) {
        {
          std::unique_lock held_lock(held_mutex);
          held.erase(id);
        }
        (void)sched.cancel(id);
      }
    }
    return {};
  }

  result<void> retention_once() {
    std::lock_guard lock(claimer_mutex);
    auto dropped = claimer_store->drop_expired(options.log.retention);
    if (!dropped) {
      n_sweep_failures.fetch_add(1, std::memory_order_relaxed);
      return dropped.error();
    }
    if (auto made = claimer_store->ensure_partitions(); !made) {
      n_sweep_failures.fetch_add(1, std::memory_order_relaxed);
      return made.error();
    }
    n_sweeps.fetch_add(1, std::memory_order_relaxed);
    // /metrics' history figures, as of this sweep (as the embedded store's oldest bucket is).
    if (auto size = claimer_store->measure_history(); size) {
      history_bytes.store(size->bytes, std::memory_order_relaxed);
      history_rows.store(size->rows, std::memory_order_relaxed);
      history_deliveries.store(size->deliveries, std::memory_order_relaxed);
      oldest_day_ms.store(size->oldest_day ? size->oldest_day->time_since_epoch().count() : -1,
                          std::memory_order_relaxed);
    }
    return {};
  }

  void run_claimer() {
    const auto renew_every =
        std::max<std::chrono::milliseconds>(options.store.lease / 3, std::chrono::milliseconds{10});
    auto last_renew = steady::now();
    auto last_retention = steady::now();
    for (;;) {
      {
        std::unique_lock lock(claim_wake_mutex);
        claim_wake.wait_for(lock, options.claim_interval,
                            [&] { return claimer_stopping || claim_soon; });
        if (claimer_stopping) return;
        claim_soon = false;
        if (streaks_soon) {
          streaks_soon = false;
          last_renew = {};  // renew (and read the streaks) in this round
        }
      }
      // Failures (the database restarting) are tried again at the next round.
      (void)claim_once();
      if (steady::now() - last_renew >= renew_every) {
        last_renew = steady::now();
        (void)renew_once();
        (void)renew_webhooks_once();
      }
      if (steady::now() - last_retention >= options.retention_interval) {
        last_retention = steady::now();
        (void)retention_once();
      }
    }
  }

  void stop_threads() {
    listener_stopping = true;
    if (listener.joinable()) listener.join();
    {
      std::lock_guard lock(claim_wake_mutex);
      claimer_stopping = true;
    }
    claim_wake.notify_all();
    if (claimer.joinable()) claimer.join();
    {
      std::lock_guard lock(queue_mutex);
      writer_stopping = true;
    }
    queue_wake.notify_all();
    if (writer.joinable()) writer.join();
    // Never started (or stopped meanwhile): what is queued is refused.
    std::vector<ingest_job> in;
    std::vector<record_job> rec;
    std::vector<task> ts;
    {
      std::lock_guard lock(queue_mutex);
      in.swap(ingests);
      rec.swap(records);
      ts.swap(tasks);
    }
    for (ingest_job& j : in) fail(j, unavailable_problem());
    for (record_job& j : rec) {
      finish<std::shared_ptr<const delivery>>(j.done, unavailable_problem());
    }
    for (task& t : ts) t(nullptr);
  }

  // A test ping's or an ingest's event, made now.
  event new_event(const object_id& organization, const object_id& project, std::string type,
                  std::string data, timestamp now) {
    event e;
    e.id = ids.next(unix_seconds(now));
    e.organization = organization;
    e.project = project;
    e.type = std::move(type);
    e.data = std::move(data);
    e.time = now;
    return e;
  }

  std::shared_ptr<delivery> new_delivery(const event& e, const object_id& webhook, bool test) {
    auto d = std::make_shared<delivery>();
    d->id = ids.next(unix_seconds(e.time));
    d->event = e.id;
    d->webhook = webhook;
    d->project = e.project;
    d->type = e.type;
    d->status = delivery_status::pending;
    d->next_attempt_at = e.time;
    d->created_at = d->updated_at = e.time;
    d->ordering_key = e.ordering_key;
    d->test = test;
    return d;
  }
};

// ---------------------------------------------------------------- pg_delivery_log

pg_delivery_log::pg_delivery_log(const catalog& cat, pg_delivery_log_options options,
                                 clock_function clock)
    : impl_(std::make_unique<impl>(cat, std::move(options), std::move(clock))) {}

pg_delivery_log::~pg_delivery_log() {
  impl_->stop_threads();
}

result<delivery_log_counts> pg_delivery_log::load() {
  for (auto* slot : {&impl_->writer_store, &impl_->claimer_store, &impl_->reader_store}) {
    auto opened = pg_delivery_store::open(impl_->options.store);
    if (!opened) return opened.error();
    *slot = std::move(*opened);
  }
  // A project deleted while the node removing its deliveries stopped: finish the job, so that
  // none of them is claimed (as the embedded log's load does).
  auto orphans = impl_->options.finish_deleted_projects
                     ? impl_->writer_store->orphaned_projects()
                     : result<std::vector<object_id>>(std::vector<object_id>{});
  if (!orphans) return orphans.error();
  for (const object_id& project : *orphans) {
    auto dropped = impl_->writer_store->delete_project(project);
    if (!dropped) return dropped.error();
    impl_->n_deleted.fetch_add(*dropped, std::memory_order_relaxed);
  }
  if (auto swept = impl_->retention_once(); !swept) return swept.error();
  if (auto claimed = impl_->claim_once(); !claimed) return claimed.error();
  return counts();
}

void pg_delivery_log::start() {
  if (!impl_->writer.joinable())
    impl_->writer = std::thread([i = impl_.get()] {
      set_thread_name("pg-writer");
      i->run_writer();
    });
  if (!impl_->claimer.joinable()) {
    impl_->claimer = std::thread([i = impl_.get()] {
      set_thread_name("pg-claimer");
      i->run_claimer();
    });
  }
  if (!impl_->listener.joinable()) {
    impl_->listener = std::thread([i = impl_.get()] {
      set_thread_name("pg-listener");
      i->run_listener();
    });
  }
}

void pg_delivery_log::stop() {
  impl_->stop_threads();
  // Another node takes what this one held at once, instead of after the lease.
  const std::vector<object_id> mine = impl_->held_ids();
  if (!mine.empty() && impl_->writer_store) (void)impl_->writer_store->release(mine);
  impl_->let_go_if([](const pending_delivery&) { return true; });
  // And the webhooks: another node takes them with their deliveries at its next claim.
  const std::vector<object_id> hooks = impl_->owned_ids();
  if (!hooks.empty() && impl_->writer_store) (void)impl_->writer_store->release_webhooks(hooks);
  std::lock_guard lock(impl_->owned_mutex);
  impl_->owned.clear();
}

void pg_delivery_log::ingest(ingest_request request, completion<ingest_result> done) {
  impl& m = *impl_;
  // Validated by parse_ingest (ingest_input.hpp); a guard against a caller that skipped it.
  if (request.type.empty() ||
      (request.idempotency_key && (request.idempotency_key->empty() ||
                                   request.idempotency_key->size() > kMaxIdempotencyKeyBytes))) {
    finish<ingest_result>(
        done, make_problem(error_kind::internal, "An ingest request that was not validated."));
    return;
  }
  const std::shared_ptr<const project> p = m.cat.find_project(request.project);
  if (!p || p->organization != request.organization) {
    finish<ingest_result>(
        done, make_problem(error_kind::not_found,
                           "Project " + request.project.to_string() + " does not exist."));
    return;
  }
  impl::ingest_job job;
  if (request.idempotency_key) {
    job.item.key = ingest_item::idempotency{request.token, *request.idempotency_key,
                                            ingest_fingerprint(request)};
  }
  const auto hooks = m.cat.list_webhooks(request.project);
  const auto chosen = fan_out(*hooks, request.type, request.data, request.parsed_data.get());
  event e = m.new_event(request.organization, request.project, std::move(request.type),
                        std::move(request.data), m.clock());
  e.subject = std::move(request.subject);
  e.ordering_key = std::move(request.ordering_key);
  e.traceparent = request.traceparent ? std::move(*request.traceparent) : new_traceparent();
  for (const auto& w : chosen) {
    auto d = m.new_delivery(e, w->id, false);
    e.deliveries.push_back({d->id, w->id});
    job.created.push_back(std::move(d));
  }
  job.item.record = std::move(e);
  job.done = std::move(done);
  job.received = request.received;
  m.submit(std::move(job));
}

void pg_delivery_log::record_attempt(std::shared_ptr<const delivery> attempted, attempt a,
                                     attempt_decision decision,
                                     completion<std::shared_ptr<const delivery>> done) {
  impl::record_job job;
  job.record.delivery = attempted->id;
  job.record.after.updated_at = impl_->clock();
  switch (decision.kind) {
    case decision_kind::succeeded:
      job.record.after.status = delivery_status::succeeded;
      break;
    case decision_kind::retry:
      job.record.after.status = delivery_status::pending;
      job.record.after.next_attempt_at = decision.retry_at.value_or(impl_->clock());
      break;
    case decision_kind::failed:
      job.record.after.status = delivery_status::failed;
      job.record.after.reason = decision.reason.value_or(std::string(kReasonExhausted));
      break;
  }
  job.record.value = std::move(a);
  job.attempted = std::move(attempted);
  job.done = std::move(done);
  impl_->submit(std::move(job));
}

void pg_delivery_log::cancel_webhook(object_id webhook, completion<std::size_t> done) {
  impl_->submit([m = impl_.get(), webhook, done = std::move(done)](pg_delivery_store* store) {
    if (store == nullptr) return finish<std::size_t>(done, unavailable_problem());
    auto n = store->cancel_webhook(webhook);
    if (n) {
      m->let_go_if([&](const pending_delivery& p) { return p.record->webhook == webhook; });
      m->n_failed.fetch_add(*n, std::memory_order_relaxed);
      m->n_cancelled.fetch_add(*n, std::memory_order_relaxed);
    }
    finish<std::size_t>(done, std::move(n));
  });
}

void pg_delivery_log::erase_subject(object_id project, std::string subject,
                                    completion<std::size_t> done) {
  impl_->submit([m = impl_.get(), project, subject = std::move(subject),
                 done = std::move(done)](pg_delivery_store* store) {
    if (store == nullptr) return finish<std::size_t>(done, unavailable_problem());
    auto n = store->erase_subject(project, subject);
    if (n) {
      m->let_go_if([&](const pending_delivery& p) {
        return p.source_event->project == project && p.source_event->subject == subject;
      });
      m->n_erased.fetch_add(*n, std::memory_order_relaxed);
    }
    finish<std::size_t>(done, std::move(n));
  });
}

void pg_delivery_log::delete_project(object_id project, completion<std::size_t> done) {
  impl_->submit([m = impl_.get(), project, done = std::move(done)](pg_delivery_store* store) {
    if (store == nullptr) return finish<std::size_t>(done, unavailable_problem());
    auto n = store->delete_project(project);
    if (n) {
      m->let_go_if([&](const pending_delivery& p) { return p.record->project == project; });
      m->n_deleted.fetch_add(*n, std::memory_order_relaxed);
    }
    finish<std::size_t>(done, std::move(n));
  });
}

void pg_delivery_log::redeliver(object_id project, object_id webhook, object_id id,
                                completion<std::shared_ptr<const delivery>> done) {
  impl_->submit([m = impl_.get(), project, webhook, id,
                 done = std::move(done)](pg_delivery_store* store) {
    if (store == nullptr) {
      return finish<std::shared_ptr<const delivery>>(done, unavailable_problem());
    }
    auto changed = store->redeliver(project, webhook, {id});
    if (!changed) return finish<std::shared_ptr<const delivery>>(done, changed.error());
    if (changed->empty()) {
      return finish<std::shared_ptr<const delivery>>(
          done, make_problem(error_kind::not_found, "Delivery " + id.to_string() + " not found."));
    }
    auto now = store->find_delivery(project, id);
    if (!now) return finish<std::shared_ptr<const delivery>>(done, now.error());
    if (!*now) {
      return finish<std::shared_ptr<const delivery>>(
          done, make_problem(error_kind::not_found, "Delivery " + id.to_string() + " not found."));
    }
    std::shared_ptr<const delivery> fresh = (*now)->record;
    m->redelivered({id}, store);
    finish<std::shared_ptr<const delivery>>(done, std::move(fresh));
  });
}

void pg_delivery_log::recover(object_id project, object_id webhook, timestamp since,
                              std::optional<timestamp> until, completion<std::size_t> done) {
  const timestamp end = until.value_or(impl_->clock());
  impl_->submit([m = impl_.get(), project, webhook, since, end,
                 done = std::move(done)](pg_delivery_store* store) {
    if (store == nullptr) return finish<std::size_t>(done, unavailable_problem());
    std::size_t total = 0;
    std::optional<object_id> after;
    for (;;) {
      auto batch =
          store->failed_between(project, webhook, since, end, delivery_log::kRecoverBatch, after);
      if (!batch) return finish<std::size_t>(done, batch.error());
      if (batch->empty()) break;
      auto changed = store->redeliver(project, webhook, *batch, since);
      if (!changed) return finish<std::size_t>(done, changed.error());
      total += changed->size();
      m->redelivered(*changed, store);
      if (batch->size() < delivery_log::kRecoverBatch) break;
      after = batch->back();
    }
    finish<std::size_t>(done, total);
  });
}

void pg_delivery_log::send_test(object_id organization, object_id project, object_id webhook,
                                completion<std::shared_ptr<const delivery>> done) {
  impl& m = *impl_;
  const auto hook = m.cat.find_webhook(webhook);
  if (!hook || hook->project != project || hook->organization != organization) {
    finish<std::shared_ptr<const delivery>>(
        done,
        make_problem(error_kind::not_found, "Webhook " + webhook.to_string() + " not found."));
    return;
  }
  impl::ingest_job job;
  event e = m.new_event(organization, project, std::string(kTestEventType),
                        "{\"webhookId\":\"" + webhook.to_string() + "\"}", m.clock());
  e.traceparent = new_traceparent();
  auto d = m.new_delivery(e, webhook, true);
  e.deliveries.push_back({d->id, webhook});
  job.created.push_back(std::move(d));
  job.item.record = std::move(e);
  job.item.test = true;
  job.ping_done = std::move(done);
  m.submit(std::move(job));
}

void pg_delivery_log::write_meta(std::string key, std::optional<std::string> value,
                                 completion<void> done) {
  // A failure streak goes to the webhook's row of webhook_leases, for the node that holds the
  // webhook next (docs/cluster.md); the rest stays in this node's memory.
  const std::string_view prefix = kFailureStreakPrefix;
  if (key.size() == prefix.size() + object_id::kSize && key.starts_with(prefix)) {
    const auto webhook = object_id::from_binary(std::string_view(key).substr(prefix.size()));
    std::optional<failure_streak> streak;
    if (value) {
      auto decoded = decode_failure_streak(*value);
      if (!decoded) return finish<void>(done, decoded.error());
      streak = std::move(*decoded);
    }
    if (webhook) {
      {
        // Before the write, so that a renewal reading it back meanwhile takes it for this node's.
        std::lock_guard lock(impl_->owned_mutex);
        impl_->streaks_written.insert_or_assign(*webhook, streak.value_or(failure_streak{}));
      }
      impl_->submit([id = *webhook, streak, done = std::move(done)](pg_delivery_store* store) {
        if (store == nullptr) return finish<void>(done, unavailable_problem());
        finish<void>(done, store->save_streak(id, streak));
      });
      return;
    }
  }
  {
    std::lock_guard lock(impl_->meta_mutex);
    if (value) {
      impl_->meta[std::move(key)] = std::move(*value);
    } else {
      impl_->meta.erase(key);
    }
  }
  finish<void>(done, result<void>{});
}

void pg_delivery_log::resume_webhook(const object_id& webhook) {
  impl_->resume(webhook);
}

attempt_decision pg_delivery_log::decide(const attempt_response& response,
                                         std::uint32_t attempt_number,
                                         const random_source& random) const {
  return hookd::decide(response, attempt_number, impl_->options.log.retry, impl_->clock(), random);
}

result<std::optional<delivery_detail>> pg_delivery_log::find_delivery(const object_id& project,
                                                                      const object_id& id) const {
  std::lock_guard lock(impl_->reader_mutex);
  if (!impl_->reader_store) return unavailable_problem();
  return impl_->reader_store->find_delivery(project, id);
}

result<delivery_page> pg_delivery_log::list_deliveries(const delivery_query& query) const {
  result<delivery_page> page = [&]() -> result<delivery_page> {
    std::lock_guard lock(impl_->reader_mutex);
    if (!impl_->reader_store) return unavailable_problem();
    return impl_->reader_store->list_deliveries(query);
  }();
  if (!page || query.statuses.empty()) return page;
  // The store lists pending ones for `paused` too: tell them apart by their webhooks now.
  std::erase_if(page->items, [&](const std::shared_ptr<const delivery>& d) {
    if (d->status != delivery_status::pending) return false;
    return is_paused(*d) ? !query.statuses.allows_paused()
                         : !query.statuses.allows(delivery_status::pending);
  });
  return page;
}

result<std::optional<event_detail>> pg_delivery_log::find_event(const object_id& project,
                                                                const object_id& id) const {
  std::lock_guard lock(impl_->reader_mutex);
  if (!impl_->reader_store) return unavailable_problem();
  return impl_->reader_store->find_event(project, id);
}

std::optional<pending_delivery> pg_delivery_log::find_pending(const object_id& id) const {
  std::shared_lock lock(impl_->held_mutex);
  const auto it = impl_->held.find(id);
  if (it == impl_->held.end()) return std::nullopt;
  return it->second;
}

std::size_t pg_delivery_log::pending_count() const {
  return impl_->held_count();
}

std::size_t pg_delivery_log::pending_count(const object_id& webhook) const {
  std::shared_lock lock(impl_->held_mutex);
  return static_cast<std::size_t>(
      std::count_if(impl_->held.begin(), impl_->held.end(),
                    [&](const auto& entry) { return entry.second.record->webhook == webhook; }));
}

bool pg_delivery_log::is_paused(const delivery& d) const {
  if (d.status != delivery_status::pending) return false;
  const auto hook = impl_->cat.find_webhook(d.webhook);
  return hook && !hook->active;
}

std::optional<std::chrono::milliseconds> pg_delivery_log::oldest_pending_age() const {
  std::optional<timestamp> oldest;
  {
    std::shared_lock lock(impl_->held_mutex);
    for (const auto& [id, p] : impl_->held) {
      if (!oldest || p.record->created_at < *oldest) oldest = p.record->created_at;
    }
  }
  if (!oldest) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(impl_->clock() - *oldest);
}

delivery_counters pg_delivery_log::counters() const {
  const impl& m = *impl_;
  delivery_counters c;
  c.events = m.n_events.load();
  c.deliveries = m.n_deliveries.load();
  c.replays = m.n_replays.load();
  c.attempts = m.n_attempts.load();
  c.retries = m.n_retries.load();
  c.succeeded = m.n_succeeded.load();
  c.failed = m.n_failed.load();
  c.cancelled = m.n_cancelled.load();
  c.erased_events = m.n_erased.load();
  c.deleted = m.n_deleted.load();
  c.sweeps = m.n_sweeps.load();
  c.sweep_failures = m.n_sweep_failures.load();
  return c;
}

delivery_log_counts pg_delivery_log::counts() const {
  delivery_log_counts c;
  std::shared_lock lock(impl_->held_mutex);
  c.pending = impl_->held.size();
  std::unordered_map<object_id, bool> events;
  for (const auto& [id, p] : impl_->held) events.emplace(p.record->event, true);
  c.events = events.size();
  // The cluster's, estimated from the catalog's statistics at the last retention pass.
  c.history_deliveries = impl_->history_deliveries.load(std::memory_order_relaxed);
  return c;
}

history_stats pg_delivery_log::history() const {
  history_stats h;
  h.bytes = impl_->history_bytes.load(std::memory_order_relaxed);
  h.keys = impl_->history_rows.load(std::memory_order_relaxed);
  if (const std::int64_t oldest = impl_->oldest_day_ms.load(std::memory_order_relaxed);
      oldest >= 0) {
    const timestamp start{std::chrono::milliseconds{oldest}};
    h.oldest_age = std::max(impl_->clock() - start, std::chrono::milliseconds::zero());
  }
  return h;
}

commit_stats pg_delivery_log::stats() const {
  commit_stats s;
  s.groups = impl_->n_groups.load();
  s.mutations = impl_->n_mutations.load();
  s.rejected = impl_->n_rejected.load();
  s.failed = impl_->n_write_failed.load();
  return s;
}

scheduler& pg_delivery_log::jobs() noexcept {
  return impl_->sched;
}
const retry_policy& pg_delivery_log::policy() const noexcept {
  return impl_->options.log.retry;
}
const delivery_log_options& pg_delivery_log::options() const noexcept {
  return impl_->options.log;
}
timestamp pg_delivery_log::now() const {
  return impl_->clock();
}

result<std::size_t> pg_delivery_log::set_streak_sink(streak_sink sink) {
  std::optional<problem> failure;
  std::size_t n = 0;
  {
    std::lock_guard store_lock(impl_->claimer_mutex);
    if (!impl_->claimer_store) return unavailable_problem();
    auto stored = impl_->claimer_store->load_streaks();
    if (!stored) return stored.error();
    std::lock_guard lock(impl_->owned_mutex);
    for (const webhook_held& h : *stored) {
      impl_->streaks_written.insert_or_assign(h.webhook, h.streak);
      if (sink && impl_->cat.find_webhook(h.webhook)) {
        sink(h.webhook, h.streak);
        ++n;
      }
    }
    impl_->on_streak = std::move(sink);
  }
  return n;
}

std::vector<object_id> pg_delivery_log::held_webhooks() const {
  std::lock_guard lock(impl_->owned_mutex);
  std::vector<object_id> out;
  for (const auto& [id, at] : impl_->owned) out.push_back(id);
  return out;
}

result<std::size_t> pg_delivery_log::claim_now() {
  if (auto renewed = impl_->renew_once(); !renewed) return renewed.error();
  return impl_->claim_once();
}

}  // namespace hookd::pg
