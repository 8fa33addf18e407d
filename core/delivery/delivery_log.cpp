// The delivery log: the in-memory index, the writer's mutations, and start-up loading.
// See delivery_log.hpp for the structure and its locking.
//
// Planning: every mutation plans against the published state plus `pending`, a writer-private
// overlay of what the earlier accepted mutations of the same group will publish (new or changed
// deliveries, idempotency records written or erased). So the mutations of one group behave as if
// run one after another: fifty ingests with the same token and key queued together create one
// event, and the other forty-nine see its record in the overlay and replay its answer; a cancel
// planned after an ingest of the same group fails the deliveries that ingest creates. The overlay
// is cleared after every group, committed or not.

#include "core/delivery/delivery_log.hpp"

#include "core/catalog/codec.hpp"  // printable_key
#include "core/catalog/validation.hpp"
#include "core/delivery/event_match.hpp"
#include "core/durable/commit_writer.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <set>
#include <shared_mutex>
#include <unordered_map>
#include <utility>

namespace hookd {

namespace {

// Data that nests deeper than this is refused at ingest; the HTTP layer's own bound is lower.
constexpr std::size_t kMaxDataDepth = 256;

std::uint32_t unix_seconds(timestamp t) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  return s < 0 ? 0u : static_cast<std::uint32_t>(s);
}

std::size_t status_index(delivery_status s) noexcept {
  return static_cast<std::size_t>(s);
}

const std::shared_ptr<const std::vector<attempt>>& no_attempts() {
  static const auto empty = std::make_shared<const std::vector<attempt>>();
  return empty;
}

// The request fingerprint an idempotency key is bound to: where the event goes and what it says.
sha256_digest fingerprint(const ingest_request& r) {
  std::string text;
  text.reserve(2 * object_id::kSize + r.type.size() + r.data.size() + 1);
  text.append(r.organization.binary()).append(r.project.binary()).append(r.type);
  text.push_back('\0');  // a type cannot contain NUL, so (type, data) splits one way only
  text.append(r.data);
  return sha256(text);
}

ingest_result answer_of(const idempotency_record& rec, bool replay) {
  return ingest_result{rec.event, rec.type, rec.time, rec.deliveries, replay};
}

template <class T>
void deliver(const completion<T>& done, result<void> outcome, T value) noexcept {
  if (outcome) {
    done(std::move(value));
  } else {
    done(std::move(outcome).error());
  }
}

}  // namespace

boost::json::object to_json(const ingest_result& r) {
  boost::json::object o;
  o["_id"] = r.event.to_string();
  o["type"] = r.type;
  o["timestamp"] = format_rfc3339(r.time);
  o["deliveries"] = r.deliveries;
  return o;
}

// ---------------------------------------------------------------- impl

struct delivery_log::impl {
  struct delivery_entry {
    std::shared_ptr<const delivery> record;
    std::shared_ptr<const std::vector<attempt>> attempts;
  };
  struct webhook_index {
    std::set<object_id> all;
    std::array<std::set<object_id>, 3> by_status;  // indexed by delivery_status
  };

  impl(storage& s, const catalog& c, delivery_log_options o, clock_function clk)
      : store(s),
        cat(c),
        options(std::move(o)),
        clock(clk ? std::move(clk) : clock_function(now_ms)),
        sched(
            [catalog_ptr = &c](const object_id& id) {
              const auto w = catalog_ptr->find_webhook(id);
              if (!w) return webhook_info{};
              return webhook_info{w->active ? webhook_state::active : webhook_state::inactive,
                                  w->organization};
            },
            options.scheduling),
        writer(s, [this] { pending.clear(); }) {}

  storage& store;
  const catalog& cat;
  const delivery_log_options options;
  const clock_function clock;
  object_id_generator ids;
  scheduler sched;

  // ---- published state: read by any thread under `mutex` (shared), written by the writer
  // thread (or load()) under `mutex` (exclusive).
  mutable std::shared_mutex mutex;
  std::unordered_map<object_id, std::shared_ptr<const event>> events;
  std::unordered_map<object_id, delivery_entry> deliveries;
  std::unordered_map<object_id, webhook_index> by_webhook;
  std::set<std::pair<timestamp, object_id>> pending_by_age;  // (createdAt, id)
  std::size_t attempt_count = 0;

  // ---- writer thread only (and load() before start): idempotency records by storage key.
  std::unordered_map<std::string, idempotency_record> idempotency;
  std::set<std::pair<timestamp, std::string>> idempotency_by_age;  // (createdAt, key)

  // What the accepted mutations of the current group will publish.
  struct overlay {
    std::unordered_map<object_id, delivery_entry> deliveries;
    // nullopt: erased in this group.
    std::unordered_map<std::string, std::optional<idempotency_record>> idempotency;
    void clear() { *this = overlay{}; }
  } pending;

  std::atomic<std::uint64_t> n_events{0}, n_deliveries{0}, n_replays{0}, n_attempts{0},
      n_retries{0}, n_succeeded{0}, n_failed{0}, n_cancelled{0};
  std::atomic<std::size_t> idempotency_size{0};  // idempotency.size(), for readers

  bool loaded = false;

  // Declared last: destroyed first, so the writer thread is gone before the state it uses.
  commit_writer writer;

  // ---- the state as the next mutation of the group sees it (writer thread)

  std::optional<delivery_entry> current_delivery(const object_id& id) const {
    if (const auto it = pending.deliveries.find(id); it != pending.deliveries.end()) {
      return it->second;
    }
    std::shared_lock lock(mutex);
    if (const auto it = deliveries.find(id); it != deliveries.end()) return it->second;
    return std::nullopt;
  }

  const idempotency_record* current_idempotency(const std::string& key) const {
    if (const auto it = pending.idempotency.find(key); it != pending.idempotency.end()) {
      return it->second ? &*it->second : nullptr;
    }
    const auto it = idempotency.find(key);
    return it == idempotency.end() ? nullptr : &it->second;
  }

  bool expired(const idempotency_record& rec, timestamp now) const {
    return now - rec.created_at > options.idempotency_ttl;
  }

  // ---- publishing (writer thread, or load())

  // Installs `entry` as the delivery's state and moves it between the status sets. Call with
  // `mutex` held exclusively.
  void install_locked(delivery_entry entry) {
    const delivery& d = *entry.record;
    webhook_index& idx = by_webhook[d.webhook];
    auto [it, inserted] = deliveries.try_emplace(d.id, entry);
    if (!inserted) {
      const delivery& old = *it->second.record;
      idx.by_status[status_index(old.status)].erase(d.id);
      if (old.status == delivery_status::pending) pending_by_age.erase({old.created_at, old.id});
      attempt_count -= it->second.attempts->size();
      it->second = std::move(entry);
    }
    idx.all.insert(d.id);
    idx.by_status[status_index(d.status)].insert(d.id);
    if (d.status == delivery_status::pending) pending_by_age.emplace(d.created_at, d.id);
    attempt_count += it->second.attempts->size();
  }

  void forget_idempotency(const std::string& key) {
    if (const auto it = idempotency.find(key); it != idempotency.end()) {
      idempotency_by_age.erase({it->second.created_at, key});
      idempotency.erase(it);
      idempotency_size.store(idempotency.size(), std::memory_order_relaxed);
    }
  }
  void remember_idempotency(const std::string& key, const idempotency_record& rec) {
    forget_idempotency(key);
    idempotency.emplace(key, rec);
    idempotency_by_age.emplace(rec.created_at, key);
    idempotency_size.store(idempotency.size(), std::memory_order_relaxed);
  }

  // An attempt whose outcome was not recorded: free its slot, and try a pending delivery again.
  void requeue_unrecorded(const object_id& id) {
    sched.done(id);
    std::shared_ptr<const delivery> d;
    {
      std::shared_lock lock(mutex);
      if (const auto it = deliveries.find(id); it != deliveries.end()) d = it->second.record;
    }
    if (d && d->status == delivery_status::pending) {
      sched.schedule(id, d->webhook, clock() + options.unrecorded_retry_delay);
    }
  }

  result<delivery_log_counts> load();
};

namespace {

using impl = delivery_log::impl;

// ---------------------------------------------------------------- mutations

class ingest_op final : public commit_mutation {
 public:
  ingest_op(impl& log, ingest_request request, completion<ingest_result> done)
      : log_(log), request_(std::move(request)), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    const std::shared_ptr<const project> p = log_.cat.find_project(request_.project);
    if (!p || p->organization != request_.organization) {
      return make_problem(error_kind::not_found,
                          "Project " + request_.project.to_string() + " does not exist.");
    }
    const timestamp now = log_.clock();
    const sha256_digest hash = fingerprint(request_);

    std::optional<std::string> key;
    if (request_.idempotency_key) {
      key = idempotency_key(request_.token, *request_.idempotency_key);
      if (const idempotency_record* seen = log_.current_idempotency(*key);
          seen != nullptr && !log_.expired(*seen, now)) {
        if (seen->body_hash != hash) {
          return make_problem(error_kind::conflict,
                              "The idempotency key \"" + *request_.idempotency_key +
                                  "\" was already used with another request body.");
        }
        result_ = answer_of(*seen, true);
        return {};  // a replay writes nothing
      }
    }

    prune_expired(batch, now);

    auto e = std::make_shared<event>();
    e->id = log_.ids.next(unix_seconds(now));
    e->organization = request_.organization;
    e->project = request_.project;
    e->type = request_.type;
    e->data = std::move(request_.data);
    e->time = now;
    batch.put(table::events, std::string(e->id.binary()), encode(*e));

    const std::shared_ptr<const webhook_list> hooks = log_.cat.list_webhooks(request_.project);
    for (const std::shared_ptr<const webhook>& w : *hooks) {
      if (!w->active || !any_matches(w->events, e->type)) continue;
      auto d = std::make_shared<delivery>();
      d->id = log_.ids.next(unix_seconds(now));
      d->event = e->id;
      d->webhook = w->id;
      d->type = e->type;
      d->status = delivery_status::pending;
      d->next_attempt_at = now;
      d->created_at = d->updated_at = now;
      // No "dw" index entry: the delivery record names its webhook, and load() builds the
      // per-webhook index from the deliveries.
      batch.put(table::deliveries, std::string(d->id.binary()), encode(*d));
      impl::delivery_entry entry{std::move(d), no_attempts()};
      log_.pending.deliveries[entry.record->id] = entry;
      created_.push_back(std::move(entry));
    }
    result_ =
        ingest_result{e->id, e->type, e->time, static_cast<std::uint32_t>(created_.size()), false};
    event_ = std::move(e);

    if (key) {
      idempotency_record rec;
      rec.body_hash = hash;
      rec.event = result_.event;
      rec.type = result_.type;
      rec.time = result_.time;
      rec.deliveries = result_.deliveries;
      rec.created_at = now;
      batch.put(table::idempotency, *key, encode(rec));
      log_.pending.idempotency[*key] = rec;
      record_ = std::make_pair(std::move(*key), std::move(rec));
    }
    return {};
  }

  void publish() override {
    for (const auto& [key, created_at] : pruned_) {
      // Only the record this mutation saw expire; a later one under the same key is newer.
      if (const auto it = log_.idempotency.find(key);
          it != log_.idempotency.end() && it->second.created_at == created_at) {
        log_.forget_idempotency(key);
      }
    }
    if (result_.replay) {
      log_.n_replays.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (record_) log_.remember_idempotency(record_->first, record_->second);
    {
      std::unique_lock lock(log_.mutex);
      log_.events.emplace(event_->id, event_);
      for (const impl::delivery_entry& entry : created_) log_.install_locked(entry);
    }
    log_.n_events.fetch_add(1, std::memory_order_relaxed);
    log_.n_deliveries.fetch_add(created_.size(), std::memory_order_relaxed);
    for (const impl::delivery_entry& entry : created_) {
      const delivery& d = *entry.record;
      log_.sched.schedule(d.id, d.webhook, *d.next_attempt_at);
    }
  }

  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), std::move(result_));
  }

 private:
  // Erases a few idempotency records older than the TTL, oldest first, in this batch.
  void prune_expired(write_batch& batch, timestamp now) {
    std::size_t budget = log_.options.idempotency_prune_per_ingest;
    for (auto it = log_.idempotency_by_age.begin();
         budget > 0 && it != log_.idempotency_by_age.end(); ++it) {
      if (now - it->first <= log_.options.idempotency_ttl) break;
      if (log_.pending.idempotency.contains(it->second)) continue;  // this group decided it
      batch.erase(table::idempotency, it->second);
      log_.pending.idempotency[it->second] = std::nullopt;
      pruned_.emplace_back(it->second, it->first);
      --budget;
    }
  }

  impl& log_;
  ingest_request request_;
  completion<ingest_result> done_;
  ingest_result result_;
  std::shared_ptr<const event> event_;
  std::vector<impl::delivery_entry> created_;
  std::optional<std::pair<std::string, idempotency_record>> record_;
  std::vector<std::pair<std::string, timestamp>> pruned_;
};

class record_attempt_op final : public commit_mutation {
 public:
  record_attempt_op(impl& log, object_id id, attempt a, attempt_decision decision,
                    completion<std::shared_ptr<const delivery>> done)
      : log_(log),
        id_(id),
        attempt_(std::move(a)),
        decision_(std::move(decision)),
        done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    const std::optional<impl::delivery_entry> current = log_.current_delivery(id_);
    if (!current) {
      return make_problem(error_kind::not_found,
                          "Delivery " + id_.to_string() + " does not exist.");
    }
    const delivery& old = *current->record;
    if (attempt_.number != old.attempts + 1) {
      return make_problem(error_kind::conflict,
                          "Delivery " + id_.to_string() + " has " + std::to_string(old.attempts) +
                              " attempts; attempt " + std::to_string(attempt_.number) +
                              " cannot be recorded next.");
    }
    if (decision_.kind == decision_kind::retry && !decision_.retry_at) {
      return make_problem(error_kind::internal, "A retry decision needs its time.");
    }
    const timestamp now = log_.clock();
    auto d = std::make_shared<delivery>(old);
    d->attempts = attempt_.number;
    d->updated_at = now;
    if (old.status == delivery_status::pending) {
      switch (decision_.kind) {
        case decision_kind::succeeded:
          d->status = delivery_status::succeeded;
          d->next_attempt_at.reset();
          break;
        case decision_kind::retry:
          d->next_attempt_at = *decision_.retry_at;
          break;
        case decision_kind::failed:
          d->status = delivery_status::failed;
          d->next_attempt_at.reset();
          d->reason = decision_.reason.value_or(std::string(kReasonExhausted));
          break;
      }
    }
    auto attempts = std::make_shared<std::vector<attempt>>(*current->attempts);
    attempts->push_back(attempt_);
    // One record: the attempt with the delivery's new state in it (load() applies it). The
    // delivery's own record stays as ingest wrote it.
    batch.put(table::attempts, attempt_key(id_, attempt_.number), encode(attempt_, *d));
    entry_ = impl::delivery_entry{d, std::move(attempts)};
    was_pending_ = old.status == delivery_status::pending;
    log_.pending.deliveries[id_] = entry_;
    return {};
  }

  void publish() override {
    {
      std::unique_lock lock(log_.mutex);
      log_.install_locked(entry_);
    }
    const delivery& d = *entry_.record;
    log_.n_attempts.fetch_add(1, std::memory_order_relaxed);
    if (was_pending_) {
      switch (d.status) {
        case delivery_status::pending:
          log_.n_retries.fetch_add(1, std::memory_order_relaxed);
          break;
        case delivery_status::succeeded:
          log_.n_succeeded.fetch_add(1, std::memory_order_relaxed);
          break;
        case delivery_status::failed:
          log_.n_failed.fetch_add(1, std::memory_order_relaxed);
          break;
      }
    }
    log_.sched.done(id_);
    if (d.status == delivery_status::pending) {
      log_.sched.schedule(id_, d.webhook, *d.next_attempt_at);
    } else {
      (void)log_.sched.cancel(id_);  // a job queued by mistake must not attempt it again
    }
  }

  void complete(result<void> outcome) noexcept override {
    if (!outcome) log_.requeue_unrecorded(id_);
    deliver(done_, std::move(outcome), std::move(entry_.record));
  }

 private:
  impl& log_;
  object_id id_;
  attempt attempt_;
  attempt_decision decision_;
  completion<std::shared_ptr<const delivery>> done_;
  impl::delivery_entry entry_;
  bool was_pending_ = false;
};

class cancel_webhook_op final : public commit_mutation {
 public:
  cancel_webhook_op(impl& log, object_id webhook, completion<std::size_t> done)
      : log_(log), webhook_(webhook), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    // The pending deliveries as this group sees them: the published ones not changed in this
    // group, and those this group created or changed.
    std::vector<impl::delivery_entry> targets;
    {
      std::shared_lock lock(log_.mutex);
      if (const auto it = log_.by_webhook.find(webhook_); it != log_.by_webhook.end()) {
        for (const object_id& id : it->second.by_status[status_index(delivery_status::pending)]) {
          if (!log_.pending.deliveries.contains(id)) targets.push_back(log_.deliveries.at(id));
        }
      }
    }
    for (const auto& [id, entry] : log_.pending.deliveries) {
      if (entry.record->webhook == webhook_ && entry.record->status == delivery_status::pending) {
        targets.push_back(entry);
      }
    }
    const timestamp now = log_.clock();
    for (const impl::delivery_entry& old : targets) {
      auto d = std::make_shared<delivery>(*old.record);
      d->status = delivery_status::failed;
      d->next_attempt_at.reset();
      d->reason = std::string(kReasonWebhookDeleted);
      d->updated_at = now;
      batch.put(table::deliveries, std::string(d->id.binary()), encode(*d));
      impl::delivery_entry entry{std::move(d), old.attempts};
      log_.pending.deliveries[entry.record->id] = entry;
      cancelled_.push_back(std::move(entry));
    }
    return {};
  }

  void publish() override {
    {
      std::unique_lock lock(log_.mutex);
      for (const impl::delivery_entry& entry : cancelled_) log_.install_locked(entry);
    }
    for (const impl::delivery_entry& entry : cancelled_) log_.sched.cancel(entry.record->id);
    log_.n_failed.fetch_add(cancelled_.size(), std::memory_order_relaxed);
    log_.n_cancelled.fetch_add(cancelled_.size(), std::memory_order_relaxed);
  }

  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), cancelled_.size());
  }

 private:
  impl& log_;
  object_id webhook_;
  completion<std::size_t> done_;
  std::vector<impl::delivery_entry> cancelled_;
};

// ---------------------------------------------------------------- load

problem load_error(table t, std::string_view key, const std::string& detail) {
  return make_problem(error_kind::internal, "Cannot load the " + std::string(table_name(t)) +
                                                " table: record " + printable_key(key) + ": " +
                                                detail);
}

}  // namespace

result<delivery_log_counts> delivery_log::impl::load() {
  if (loaded) {
    return make_problem(error_kind::internal,
                        "delivery_log::load() must be called once, before start()");
  }
  std::optional<problem> failure;
  const auto fail = [&failure](problem p) {
    if (!failure) failure = std::move(p);
    return false;
  };

  std::unique_lock lock(mutex);

  auto scanned = store.scan(table::events, {}, [&](std::string_view key, std::string_view value) {
    auto e = decode_event(key, value);
    if (!e) return fail(load_error(table::events, key, e.error().detail));
    events.emplace(e->id, std::make_shared<const event>(std::move(*e)));
    return true;
  });
  if (!scanned) return scanned.error();
  if (failure) return *failure;

  std::unordered_map<object_id, delivery> loaded_deliveries;
  scanned = store.scan(table::deliveries, {}, [&](std::string_view key, std::string_view value) {
    auto d = decode_delivery(key, value);
    if (!d) return fail(load_error(table::deliveries, key, d.error().detail));
    if (!events.contains(d->event)) {
      return fail(load_error(table::deliveries, key,
                             "its event " + d->event.to_string() + " does not exist"));
    }
    loaded_deliveries.emplace(d->id, std::move(*d));
    return true;
  });
  if (!scanned) return scanned.error();
  if (failure) return *failure;

  std::unordered_map<object_id, std::vector<attempt>> loaded_attempts;
  scanned = store.scan(table::attempts, {}, [&](std::string_view key, std::string_view value) {
    auto a = decode_stored_attempt(key, value);
    if (!a) return fail(load_error(table::attempts, key, a.error().detail));
    const auto d = loaded_deliveries.find(a->delivery);
    if (d == loaded_deliveries.end()) {
      return fail(load_error(table::attempts, key,
                             "its delivery " + a->delivery.to_string() + " does not exist"));
    }
    std::vector<attempt>& list = loaded_attempts[a->delivery];
    // Keys sort by delivery id, then by big-endian number: attempts arrive 1, 2, 3...
    if (a->value.number != list.size() + 1) {
      return fail(load_error(table::attempts, key,
                             "attempt " + std::to_string(a->value.number) +
                                 " does not follow the delivery's recorded attempts"));
    }
    // An attempt past the delivery record's count carries the delivery's state after it.
    if (a->value.number > d->second.attempts) {
      if (!a->state) {
        return fail(load_error(table::attempts, key,
                               "attempt " + std::to_string(a->value.number) +
                                   " is past the delivery's recorded attempts and has no "
                                   "delivery state"));
      }
      apply_state(d->second, a->value.number, *a->state);
    }
    list.push_back(std::move(a->value));
    return true;
  });
  if (!scanned) return scanned.error();
  if (failure) return *failure;

  for (auto& [id, d] : loaded_deliveries) {
    auto found = loaded_attempts.find(id);
    const std::size_t n = found == loaded_attempts.end() ? 0 : found->second.size();
    if (n != d.attempts) {
      return load_error(table::deliveries, id.binary(),
                        "the delivery counts " + std::to_string(d.attempts) + " attempts but " +
                            std::to_string(n) + " are stored");
    }
    auto attempts = found == loaded_attempts.end()
                        ? no_attempts()
                        : std::make_shared<const std::vector<attempt>>(std::move(found->second));
    install_locked(delivery_entry{std::make_shared<const delivery>(std::move(d)), attempts});
  }

  // "dw" index entries are no longer written (the per-webhook index is built from the delivery
  // records above); those an earlier hookd wrote must still name a delivery of their webhook.
  scanned =
      store.scan(table::index, kWebhookDeliveryPrefix, [&](std::string_view key, std::string_view) {
        const std::string_view rest = key.substr(kWebhookDeliveryPrefix.size());
        const auto webhook =
            object_id::from_binary(rest.substr(0, std::min(rest.size(), object_id::kSize)));
        const auto id = rest.size() == 2 * object_id::kSize
                            ? object_id::from_binary(rest.substr(object_id::kSize))
                            : std::nullopt;
        const auto d = id ? deliveries.find(*id) : deliveries.end();
        if (!webhook || d == deliveries.end() || d->second.record->webhook != *webhook) {
          return fail(load_error(table::index, key, "the entry names no delivery of that webhook"));
        }
        return true;
      });
  if (!scanned) return scanned.error();
  if (failure) return *failure;

  scanned = store.scan(table::idempotency, {}, [&](std::string_view key, std::string_view value) {
    if (key.size() <= object_id::kSize) {
      return fail(load_error(table::idempotency, key, "the key is not a token id and a key"));
    }
    auto rec = decode_idempotency(value);
    if (!rec) return fail(load_error(table::idempotency, key, rec.error().detail));
    remember_idempotency(std::string(key), *rec);
    return true;
  });
  if (!scanned) return scanned.error();
  if (failure) return *failure;

  loaded = true;
  delivery_log_counts counts{events.size(), deliveries.size(), pending_by_age.size(), attempt_count,
                             idempotency.size()};
  std::vector<std::shared_ptr<const delivery>> to_schedule;
  to_schedule.reserve(pending_by_age.size());
  for (const auto& [created, id] : pending_by_age) to_schedule.push_back(deliveries.at(id).record);
  lock.unlock();
  for (const auto& d : to_schedule) sched.schedule(d->id, d->webhook, *d->next_attempt_at);
  return counts;
}

// ---------------------------------------------------------------- delivery_log

delivery_log::delivery_log(storage& store, const catalog& cat, delivery_log_options options,
                           clock_function clock)
    : impl_(std::make_unique<impl>(store, cat, std::move(options), std::move(clock))) {}

delivery_log::~delivery_log() {
  impl_->writer.stop();
}

result<delivery_log_counts> delivery_log::load() {
  return impl_->load();
}
void delivery_log::start() {
  impl_->writer.start();
}
void delivery_log::stop() {
  impl_->writer.stop();
}

void delivery_log::ingest(ingest_request request, completion<ingest_result> done) {
  std::vector<field_error> errors;
  if (auto message = check_event_type(request.type)) errors.push_back({"type", *message});
  {
    boost::json::parse_options options;
    options.max_depth = kMaxDataDepth;
    boost::system::error_code ec;
    (void)boost::json::parse(request.data, ec, {}, options);
    if (ec) errors.push_back({"data", "must be a JSON value (" + ec.message() + ")"});
  }
  if (request.idempotency_key && (request.idempotency_key->empty() ||
                                  request.idempotency_key->size() > kMaxIdempotencyKeyBytes)) {
    errors.push_back({"idempotencyKey",
                      "must be 1 to " + std::to_string(kMaxIdempotencyKeyBytes) + " bytes long"});
  }
  if (!errors.empty()) {
    done(validation_problem(std::move(errors)));
    return;
  }
  impl_->writer.submit(std::make_unique<ingest_op>(*impl_, std::move(request), std::move(done)));
}

void delivery_log::record_attempt(object_id delivery_id, attempt a, attempt_decision decision,
                                  completion<std::shared_ptr<const delivery>> done) {
  impl_->writer.submit(std::make_unique<record_attempt_op>(*impl_, delivery_id, std::move(a),
                                                           std::move(decision), std::move(done)));
}

void delivery_log::cancel_webhook(object_id webhook, completion<std::size_t> done) {
  impl_->writer.submit(std::make_unique<cancel_webhook_op>(*impl_, webhook, std::move(done)));
}

attempt_decision delivery_log::decide(const attempt_response& response,
                                      std::uint32_t attempt_number,
                                      const random_source& random) const {
  return hookd::decide(response, attempt_number, impl_->options.retry, impl_->clock(), random);
}

std::shared_ptr<const event> delivery_log::find_event(const object_id& id) const {
  std::shared_lock lock(impl_->mutex);
  const auto it = impl_->events.find(id);
  return it == impl_->events.end() ? nullptr : it->second;
}

std::optional<delivery_detail> delivery_log::find_delivery(const object_id& id) const {
  std::shared_lock lock(impl_->mutex);
  const auto it = impl_->deliveries.find(id);
  if (it == impl_->deliveries.end()) return std::nullopt;
  return delivery_detail{it->second.record, it->second.attempts};
}

result<delivery_page> delivery_log::list_deliveries(const object_id& webhook,
                                                    const delivery_query& query) const {
  if (query.limit < 1 || query.limit > kMaxDeliveryPage) {
    return validation_problem(
        {{"limit", "must be an integer from 1 to " + std::to_string(kMaxDeliveryPage)}});
  }
  delivery_page page;
  std::shared_lock lock(impl_->mutex);
  const auto found = impl_->by_webhook.find(webhook);
  if (found == impl_->by_webhook.end()) return page;
  const std::set<object_id>& ids =
      query.status ? found->second.by_status[status_index(*query.status)] : found->second.all;
  // Everything before `it` is strictly older than the cursor.
  auto it = query.after ? ids.lower_bound(*query.after) : ids.end();
  page.items.reserve(std::min(query.limit, ids.size()));
  while (it != ids.begin() && page.items.size() < query.limit) {
    --it;
    page.items.push_back(impl_->deliveries.at(*it).record);
  }
  if (it != ids.begin() && !page.items.empty()) page.next = page.items.back()->id;
  return page;
}

std::size_t delivery_log::pending_count() const {
  std::shared_lock lock(impl_->mutex);
  return impl_->pending_by_age.size();
}

std::optional<std::chrono::milliseconds> delivery_log::oldest_pending_age() const {
  std::optional<timestamp> oldest;
  {
    std::shared_lock lock(impl_->mutex);
    if (impl_->pending_by_age.empty()) return std::nullopt;
    oldest = impl_->pending_by_age.begin()->first;
  }
  return std::max(impl_->clock() - *oldest, std::chrono::milliseconds::zero());
}

delivery_counters delivery_log::counters() const {
  const impl& i = *impl_;
  constexpr auto relaxed = std::memory_order_relaxed;
  return delivery_counters{i.n_events.load(relaxed),  i.n_deliveries.load(relaxed),
                           i.n_replays.load(relaxed), i.n_attempts.load(relaxed),
                           i.n_retries.load(relaxed), i.n_succeeded.load(relaxed),
                           i.n_failed.load(relaxed),  i.n_cancelled.load(relaxed)};
}

delivery_log_counts delivery_log::counts() const {
  std::shared_lock lock(impl_->mutex);
  return delivery_log_counts{impl_->events.size(), impl_->deliveries.size(),
                             impl_->pending_by_age.size(), impl_->attempt_count,
                             impl_->idempotency_size.load(std::memory_order_relaxed)};
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
timestamp delivery_log::now() const {
  return impl_->clock();
}

}  // namespace hookd
