// The delivery log: lifecycle, the public entry points and the reads of memory. See
// delivery_log.hpp for what it keeps where, and delivery_log_impl.hpp for its locking.

#include "core/delivery/delivery_log.hpp"

#include "core/catalog/validation.hpp"
#include "core/common/thread_name.hpp"
#include "core/delivery/delivery_log_impl.hpp"

#include <algorithm>
#include <future>

namespace hookd {

std::string bucket_count_key(std::uint32_t bucket) {
  std::string key(kBucketCountPrefix);
  append_be32(key, bucket);
  return key;
}

boost::json::object to_json(const ingest_result& r) {
  boost::json::object o;
  o["_id"] = r.event.to_string();
  o["type"] = r.type;
  o["timestamp"] = format_rfc3339(r.time);
  o["deliveries"] = r.deliveries;
  return o;
}

boost::json::object to_json(const event_detail& e) {
  boost::json::object o = to_json(e.record);
  boost::json::array list;
  list.reserve(e.deliveries.size());
  for (const event_detail::entry& d : e.deliveries) {
    list.push_back(boost::json::object{{"_id", d.delivery.to_string()},
                                       {"webhook", d.webhook.to_string()},
                                       {"status", to_string(d.status)}});
  }
  o["deliveries"] = std::move(list);
  return o;
}

// ---------------------------------------------------------------- impl

delivery_log::impl::impl(storage& s, const catalog& c, delivery_log_options o, clock_function clk)
    : store(s),
      cat(c),
      options(std::move(o)),
      clock(clk ? std::move(clk) : clock_function(now_ms)),
      sched(
          [catalog_ptr = &c](const object_id& id) {
            const auto w = catalog_ptr->find_webhook(id);
            if (!w) return webhook_info{webhook_state::missing, {}};
            return webhook_info{w->active ? webhook_state::active : webhook_state::inactive,
                                w->organization, w->rate_limit};
          },
          options.scheduling),
      buckets(bucket_plan::width_for(options.retention)),
      writer(
          s, [this] { overlay.clear(); }, commit_writer_options{.thread_name = "delivery-log"}) {}

std::optional<delivery_log::impl::pending_entry> delivery_log::impl::current_pending(
    const object_id& id) const {
  if (const auto it = overlay.deliveries.find(id); it != overlay.deliveries.end()) {
    return it->second;
  }
  std::shared_lock lock(mutex);
  if (const auto it = pending.find(id); it != pending.end()) return it->second;
  return std::nullopt;
}

const idempotency_record* delivery_log::impl::current_idempotency(const std::string& key) const {
  if (const auto it = overlay.idempotency.find(key); it != overlay.idempotency.end()) {
    return it->second ? &*it->second : nullptr;
  }
  const auto it = idempotency.find(key);
  return it == idempotency.end() ? nullptr : &it->second;
}

std::uint64_t delivery_log::impl::current_bucket_count(std::uint32_t bucket) const {
  if (const auto it = overlay.bucket_counts.find(bucket); it != overlay.bucket_counts.end()) {
    return it->second;
  }
  if (overlay.dropped_buckets.contains(bucket)) return 0;
  const auto it = bucket_counts.find(bucket);
  return it == bucket_counts.end() ? 0 : it->second;
}

void delivery_log::impl::install_locked(const pending_entry& entry) {
  const delivery& d = *entry.record;
  auto [it, inserted] = pending.try_emplace(d.id, entry);
  if (!inserted) {
    pending_by_age.erase({it->second.record->created_at, d.id});
    it->second = entry;
  } else {
    pending_by_webhook[d.webhook].insert(d.id);
    pending_by_project[d.project].insert(d.id);
    ++event_refs[d.event];
  }
  pending_by_age.insert({d.created_at, d.id});
}

void delivery_log::impl::remove_locked(const object_id& id) {
  const auto it = pending.find(id);
  if (it == pending.end()) return;
  const delivery& d = *it->second.record;
  pending_by_age.erase({d.created_at, id});
  const auto erase_from = [&id](auto& index, const object_id& key) {
    if (const auto found = index.find(key); found != index.end()) {
      found->second.erase(id);
      if (found->second.empty()) index.erase(found);
    }
  };
  erase_from(pending_by_webhook, d.webhook);
  erase_from(pending_by_project, d.project);
  if (const auto refs = event_refs.find(d.event); refs != event_refs.end() && --refs->second == 0) {
    event_refs.erase(refs);
  }
  pending.erase(it);  // the last reference to the event may go with it
}

void delivery_log::impl::forget_idempotency(const std::string& key) {
  if (const auto it = idempotency.find(key); it != idempotency.end()) {
    idempotency_by_age.erase({it->second.created_at, key});
    idempotency.erase(it);
    idempotency_size.store(idempotency.size(), std::memory_order_relaxed);
  }
}

void delivery_log::impl::remember_idempotency(const std::string& key,
                                              const idempotency_record& rec) {
  forget_idempotency(key);
  idempotency.emplace(key, rec);
  idempotency_by_age.emplace(rec.created_at, key);
  idempotency_size.store(idempotency.size(), std::memory_order_relaxed);
}

void delivery_log::impl::set_bucket_count(std::uint32_t bucket, std::uint64_t count) {
  std::uint64_t& slot = bucket_counts[bucket];
  const std::uint64_t before = slot;
  slot = count;
  if (count == 0) bucket_counts.erase(bucket);
  history_deliveries.fetch_add(count - before, std::memory_order_relaxed);  // modular: any sign
}

void delivery_log::impl::requeue_unrecorded(const object_id& id) {
  std::shared_ptr<const delivery> d;
  {
    std::shared_lock lock(mutex);
    if (const auto it = pending.find(id); it != pending.end()) d = it->second.record;
  }
  // Queued again before the slot is freed, so that its ordering key's line does not move on.
  if (d) schedule_job(*d, clock() + options.unrecorded_retry_delay);
  sched.done(id);
}

void delivery_log::impl::schedule_job(const delivery& d, timestamp due) {
  std::optional<ordering> order;
  if (d.ordering_key) order = ordering{*d.ordering_key, d.created_at};
  sched.schedule(d.id, d.webhook, due, order, d.test);
}

std::optional<pending_delivery> delivery_log::impl::find_pending(const object_id& id) const {
  std::shared_lock lock(mutex);
  const auto it = pending.find(id);
  if (it == pending.end()) return std::nullopt;
  return pending_delivery{it->second.record, it->second.source_event, it->second.received,
                          it->second.committed};
}

// ---------------------------------------------------------------- delivery_log

delivery_log::delivery_log(storage& store, const catalog& cat, delivery_log_options options,
                           clock_function clock)
    : impl_(std::make_unique<impl>(store, cat, std::move(options), std::move(clock))) {}

delivery_log::~delivery_log() {
  impl_->stop_sweeper();
  impl_->writer.stop();
}

result<delivery_log_counts> delivery_log::load() {
  return impl_->load();
}
void delivery_log::start() {
  impl_->writer.start();
  if (impl_->options.automatic_sweeps && !impl_->sweeper.joinable()) {
    impl_->sweeper = std::thread([i = impl_.get()] {
      set_thread_name("delivery-sweep");
      i->run_sweeps();
    });
  }
}
void delivery_log::stop() {
  impl_->stop_sweeper();
  impl_->writer.stop();
}

void delivery_log::impl::stop_sweeper() {
  {
    std::lock_guard lock(sweeper_mutex);
    sweeper_stopping = true;
  }
  sweeper_wake.notify_all();
  if (sweeper.joinable()) sweeper.join();
}

void delivery_log::impl::run_sweeps() {
  const std::chrono::milliseconds interval =
      options.sweep_interval > std::chrono::milliseconds::zero()
          ? options.sweep_interval
          : std::clamp<std::chrono::milliseconds>(
                std::chrono::seconds{buckets.epochs().back().width} / 4, std::chrono::seconds{1},
                std::chrono::minutes{1});
  for (;;) {
    {
      std::unique_lock lock(sweeper_mutex);
      if (sweeper_wake.wait_for(lock, interval, [this] { return sweeper_stopping.load(); })) return;
    }
    std::promise<result<sweep_result>> done;
    auto swept = done.get_future();
    writer.submit(make_sweep([&done](result<sweep_result> r) { done.set_value(std::move(r)); }));
    auto r = swept.get();
    if (!r) {
      n_sweep_failures.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (!reclaim(*r, &sweeper_stopping)) n_sweep_failures.fetch_add(1, std::memory_order_relaxed);
  }
}

attempt_decision delivery_log::decide(const attempt_response& response,
                                      std::uint32_t attempt_number,
                                      const random_source& random) const {
  return hookd::decide(response, attempt_number, impl_->options.retry, impl_->clock(), random);
}

std::optional<pending_delivery> delivery_log::find_pending(const object_id& id) const {
  return impl_->find_pending(id);
}

std::size_t delivery_log::pending_count() const {
  std::shared_lock lock(impl_->mutex);
  return impl_->pending.size();
}

std::size_t delivery_log::pending_count(const object_id& webhook) const {
  std::shared_lock lock(impl_->mutex);
  const auto it = impl_->pending_by_webhook.find(webhook);
  return it == impl_->pending_by_webhook.end() ? 0 : it->second.size();
}

bool delivery_log::is_paused(const delivery& d) const {
  if (d.status != delivery_status::pending) return false;
  const auto hook = impl_->cat.find_webhook(d.webhook);
  return hook && !hook->active;
}

void delivery_log::resume_webhook(const object_id& webhook) {
  std::vector<object_id> ids;
  {
    std::shared_lock lock(impl_->mutex);
    if (const auto it = impl_->pending_by_webhook.find(webhook);
        it != impl_->pending_by_webhook.end()) {
      ids.reserve(it->second.size());
      it->second.for_each([&ids](const object_id& id) {  // ids grow with time: oldest first
        ids.push_back(id);
        return true;
      });
    }
  }
  // One due time for all: the scheduler breaks the tie by delivery id, the creation order.
  const timestamp now = impl_->clock();
  for (const object_id& id : ids) impl_->sched.schedule(id, webhook, now);
}

std::optional<std::chrono::milliseconds> delivery_log::oldest_pending_age() const {
  std::optional<timestamp> oldest;
  {
    std::shared_lock lock(impl_->mutex);
    const auto first = impl_->pending_by_age.first();
    if (!first) return std::nullopt;
    oldest = first->first;
  }
  return std::max(impl_->clock() - *oldest, std::chrono::milliseconds::zero());
}

delivery_counters delivery_log::counters() const {
  const impl& i = *impl_;
  constexpr auto relaxed = std::memory_order_relaxed;
  delivery_counters c;
  c.events = i.n_events.load(relaxed);
  c.deliveries = i.n_deliveries.load(relaxed);
  c.replays = i.n_replays.load(relaxed);
  c.attempts = i.n_attempts.load(relaxed);
  c.retries = i.n_retries.load(relaxed);
  c.succeeded = i.n_succeeded.load(relaxed);
  c.failed = i.n_failed.load(relaxed);
  c.cancelled = i.n_cancelled.load(relaxed);
  c.deleted = i.n_deleted.load(relaxed);
  c.erased_events = i.n_erased_events.load(relaxed);
  c.expired = i.n_expired.load(relaxed);
  c.sweeps = i.n_sweeps.load(relaxed);
  c.sweep_failures = i.n_sweep_failures.load(relaxed);
  return c;
}

delivery_log_counts delivery_log::counts() const {
  delivery_log_counts c;
  {
    std::shared_lock lock(impl_->mutex);
    c.events = impl_->event_refs.size();
    c.pending = impl_->pending.size();
  }
  c.idempotency_keys = impl_->idempotency_size.load(std::memory_order_relaxed);
  c.history_deliveries = impl_->history_deliveries.load(std::memory_order_relaxed);
  return c;
}

history_stats delivery_log::history() const {
  history_stats h;
  const table_size size = impl_->store.size(table::history);
  h.bytes = size.bytes;
  h.keys = size.keys;
  if (const std::int64_t oldest = impl_->oldest_bucket.load(std::memory_order_relaxed);
      oldest >= 0) {
    const timestamp start{std::chrono::seconds{oldest}};
    h.oldest_age = std::max(impl_->clock() - start, std::chrono::milliseconds::zero());
  }
  return h;
}

commit_stats delivery_log::stats() const {
  return impl_->writer.stats();
}
scheduler& delivery_log::jobs() noexcept {
  return impl_->sched;
}
const retry_policy& delivery_log::policy() const noexcept {
  return impl_->options.retry;
}
const delivery_log_options& delivery_log::options() const noexcept {
  return impl_->options;
}
timestamp delivery_log::now() const {
  return impl_->clock();
}

}  // namespace hookd
