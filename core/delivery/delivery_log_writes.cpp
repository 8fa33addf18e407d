// The delivery log's mutations: ingest, record_attempt, cancel_webhook and the retention sweep.
// Each plans one part of a group's write_batch against the published state plus the overlay
// (delivery_log_impl.hpp), then publishes to memory and the scheduler once the batch is durable.

#include "core/catalog/codec.hpp"  // printable_key
#include "core/delivery/delivery_log_impl.hpp"
#include "core/delivery/fan_out.hpp"
#include "core/delivery/trace_context.hpp"

#include <algorithm>
#include <utility>

namespace hookd {

namespace {

using impl = delivery_log::impl;
using pending_entry = impl::pending_entry;

// Idempotency records past their window erased by one sweep, at most: keeps one batch bounded
// (the rest go with the next sweep; ingests prune a few too).
constexpr std::size_t kIdempotencyPerSweep = 100'000;

ingest_result answer_of(const idempotency_record& rec, bool replay) {
  return ingest_result{rec.event, rec.type, rec.time, rec.deliveries, replay};
}

}  // namespace

// Sets a bucket's count of finished deliveries in `batch`: one put per bucket and group, whatever
// the number of mutations of the group that change it (the first adds the op, the others update
// its value), so that a group of 64 finished deliveries writes the count once, not 64 times.
void put_bucket_count(impl& log, write_batch& batch, std::uint32_t bucket, std::uint64_t count) {
  log.overlay.bucket_counts[bucket] = count;
  log.overlay.dropped_buckets.erase(bucket);
  std::string key = bucket_count_key(bucket);
  // The op must still be there and be this count's: a refused mutation's ops are cut off the
  // batch (commit_writer), and another op may have taken its place since.
  if (const auto it = log.overlay.bucket_count_ops.find(bucket);
      it != log.overlay.bucket_count_ops.end() && it->second < batch.ops.size() &&
      batch.ops[it->second].where == table::meta && batch.ops[it->second].key == key &&
      batch.ops[it->second].value) {
    batch.ops[it->second].value = std::to_string(count);
    return;
  }
  log.overlay.bucket_count_ops[bucket] = batch.ops.size();
  batch.put(table::meta, std::move(key), std::to_string(count));
}

// A finished delivery's two history records (by project and by webhook) and one more in its
// bucket's count, in `batch`; returns the bucket and its count after this one.
std::pair<std::uint32_t, std::uint64_t> put_finished(impl& log, write_batch& batch,
                                                     const delivery& d) {
  const std::uint32_t bucket = log.bucket_of(d);
  std::string value = encode(d);
  batch.put(table::history, finished_key(bucket, d.project, d.status, d.id), value);
  batch.put(table::history, by_webhook_key(bucket, d.project, d.webhook, d.status, d.id),
            std::move(value));
  const std::uint64_t count = log.current_bucket_count(bucket) + 1;
  put_bucket_count(log, batch, bucket, count);
  return {bucket, count};
}

namespace {

// ---------------------------------------------------------------- ingest

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

    // The request's fingerprint (a SHA-256 over its data) only where an idempotency key will
    // compare it: most events come without one.
    std::optional<std::string> key;
    sha256_digest hash{};
    if (request_.idempotency_key) {
      hash = ingest_fingerprint(request_);
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
    e->subject = request_.subject;
    e->ordering_key = request_.ordering_key;
    e->traceparent = request_.traceparent ? *request_.traceparent : new_traceparent();

    std::vector<std::shared_ptr<delivery>> created;
    const std::shared_ptr<const webhook_list> hooks = log_.cat.list_webhooks(request_.project);
    for (const std::shared_ptr<const webhook>& w :
         fan_out(*hooks, e->type, e->data, request_.parsed_data.get())) {
      auto d = std::make_shared<delivery>();
      d->id = log_.ids.next(unix_seconds(now));
      d->event = e->id;
      d->webhook = w->id;
      d->project = e->project;
      d->type = e->type;
      d->status = delivery_status::pending;
      d->next_attempt_at = now;
      d->created_at = d->updated_at = now;
      d->ordering_key = e->ordering_key;
      batch.put(table::queue, std::string(d->id.binary()), encode(*d));
      e->deliveries.push_back({d->id, w->id});
      created.push_back(std::move(d));
    }
    batch.put(table::history, event_key(log_.bucket_of(now), e->project, e->id), encode(*e));
    if (e->subject) {
      batch.put(table::history, subject_key(log_.bucket_of(now), e->project, *e->subject, e->id),
                std::string());
    }
    std::shared_ptr<const event> sent = std::move(e);
    for (auto& d : created) {
      pending_entry entry{std::move(d), sent, request_.received, {}};
      log_.overlay.deliveries[entry.record->id] = entry;
      created_.push_back(std::move(entry));
    }
    result_ = ingest_result{sent->id, sent->type, sent->time,
                            static_cast<std::uint32_t>(created_.size()), false};

    if (key) {
      idempotency_record rec;
      rec.body_hash = hash;
      rec.event = result_.event;
      rec.type = result_.type;
      rec.time = result_.time;
      rec.deliveries = result_.deliveries;
      rec.created_at = now;
      batch.put(table::idempotency, *key, encode(rec));
      log_.overlay.idempotency[*key] = rec;
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
    result_.committed = std::chrono::steady_clock::now();  // the batch is durable
    for (pending_entry& entry : created_) entry.committed = result_.committed;
    {
      std::unique_lock lock(log_.mutex);
      for (const pending_entry& entry : created_) log_.install_locked(entry);
    }
    log_.n_events.fetch_add(1, std::memory_order_relaxed);
    log_.n_deliveries.fetch_add(created_.size(), std::memory_order_relaxed);
    for (const pending_entry& entry : created_) {
      const delivery& d = *entry.record;
      log_.schedule_job(d, *d.next_attempt_at);
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
      if (log_.overlay.idempotency.contains(it->second)) continue;  // this group decided it
      batch.erase(table::idempotency, it->second);
      log_.overlay.idempotency[it->second] = std::nullopt;
      pruned_.emplace_back(it->second, it->first);
      --budget;
    }
  }

  impl& log_;
  ingest_request request_;
  completion<ingest_result> done_;
  ingest_result result_;
  std::vector<pending_entry> created_;
  std::optional<std::pair<std::string, idempotency_record>> record_;
  std::vector<std::pair<std::string, timestamp>> pruned_;
};

// ---------------------------------------------------------------- record_attempt

class record_attempt_op final : public commit_mutation {
 public:
  record_attempt_op(impl& log, std::shared_ptr<const delivery> attempted, attempt a,
                    attempt_decision decision, completion<std::shared_ptr<const delivery>> done)
      : log_(log),
        attempted_(std::move(attempted)),
        attempt_(std::move(a)),
        decision_(std::move(decision)),
        done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    const object_id& id = attempted_->id;
    const std::optional<pending_entry> current = log_.current_pending(id);
    if (!current) return plan_after_finish(batch);
    const delivery& old = *current->record;
    if (auto in_order = check_number(old); !in_order) return in_order;
    if (decision_.kind == decision_kind::retry && !decision_.retry_at) {
      return make_problem(error_kind::internal, "A retry decision needs its time.");
    }
    if (current->record != attempted_ && old.next_attempt_at &&
        decision_.kind != decision_kind::succeeded && decision_.reason != kReasonGone &&
        (!decision_.retry_at || *old.next_attempt_at < *decision_.retry_at)) {
      // Redelivered while this attempt was in flight (docs/delivery.md, "Redelivery and
      // recovery"): the redelivery's own attempt is still to come, when it asked for it.
      decision_ = attempt_decision::retry(*old.next_attempt_at);
    }
    auto d = std::make_shared<delivery>(old);
    d->attempts = attempt_.number;
    d->updated_at = log_.clock();
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
    const std::uint32_t bucket = log_.bucket_of(*d);
    batch.put(table::history, attempt_key(bucket, d->project, id, attempt_.number),
              encode(attempt_));
    if (d->status == delivery_status::pending) {
      // Still to do: the queue record carries its new state and time.
      batch.put(table::queue, std::string(id.binary()), encode(*d));
      log_.overlay.deliveries[id] = pending_entry{d, current->source_event};
    } else {
      // Done: out of the queue, into history, out of memory.
      batch.erase(table::queue, std::string(id.binary()));
      count_ = put_finished(log_, batch, *d);
      log_.overlay.deliveries[id] = std::nullopt;
    }
    result_ = d;
    event_ = current->source_event;
    was_pending_ = true;
    return {};
  }

  void publish() override {
    log_.n_attempts.fetch_add(1, std::memory_order_relaxed);
    if (!was_pending_) {
      log_.sched.done(attempted_->id);  // the slot its attempt held
      return;
    }
    const delivery& d = *result_;
    {
      std::unique_lock lock(log_.mutex);
      if (d.status == delivery_status::pending) {
        log_.install_locked(pending_entry{result_, event_});
      } else {
        log_.remove_locked(d.id);
      }
    }
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
    if (count_) log_.set_bucket_count(count_->first, count_->second);
    if (d.status == delivery_status::pending) {
      // Queued again while still in flight (schedule, then done), so that the line of its
      // ordering key never sees it finished in between (docs/delivery.md, "Ordering").
      log_.schedule_job(d, *d.next_attempt_at);
      log_.sched.done(d.id);
    } else {
      log_.sched.done(d.id);
      (void)log_.sched.cancel(d.id);  // a job queued by mistake must not attempt it again
    }
  }

  void complete(result<void> outcome) noexcept override {
    if (!outcome) log_.requeue_unrecorded(attempted_->id);
    deliver(done_, std::move(outcome), std::move(result_));
  }

 private:
  result<void> check_number(const delivery& d) const {
    if (attempt_.number == d.attempts + 1) return {};
    return make_problem(error_kind::conflict,
                        "Delivery " + d.id.to_string() + " has " + std::to_string(d.attempts) +
                            " attempts; attempt " + std::to_string(attempt_.number) +
                            " cannot be recorded next.");
  }

  // The delivery finished while this attempt was in flight (its webhook was deleted, which failed
  // it): the attempt is still recorded and counted, the status stays. Rare, so reading the
  // finished record here, on the writer thread, costs nothing that matters.
  result<void> plan_after_finish(write_batch& batch) {
    const delivery& a = *attempted_;
    const std::uint32_t bucket = log_.bucket_of(a);
    auto stored = log_.read_finished(bucket, a.project, a.id);
    if (!stored) return stored.error();
    if (!*stored) {
      return make_problem(error_kind::not_found,
                          "Delivery " + a.id.to_string() + " does not exist.");
    }
    if (auto in_order = check_number(**stored); !in_order) return in_order;
    auto d = std::make_shared<delivery>(std::move(**stored));
    d->attempts = attempt_.number;
    d->updated_at = std::max(d->updated_at, log_.clock());
    batch.put(table::history, attempt_key(bucket, d->project, d->id, attempt_.number),
              encode(attempt_));
    const std::string value = encode(*d);
    batch.put(table::history, finished_key(bucket, d->project, d->status, d->id), value);
    batch.put(table::history, by_webhook_key(bucket, d->project, d->webhook, d->status, d->id),
              value);
    result_ = d;
    return {};
  }

  impl& log_;
  std::shared_ptr<const delivery> attempted_;
  attempt attempt_;
  attempt_decision decision_;
  completion<std::shared_ptr<const delivery>> done_;
  std::shared_ptr<const delivery> result_;
  std::shared_ptr<const event> event_;  // what a still-pending delivery keeps sending
  std::optional<std::pair<std::uint32_t, std::uint64_t>> count_;
  bool was_pending_ = false;
};

// ---------------------------------------------------------------- cancel_webhook

class cancel_webhook_op final : public commit_mutation {
 public:
  cancel_webhook_op(impl& log, object_id webhook, completion<std::size_t> done)
      : log_(log), webhook_(webhook), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    // The pending deliveries as this group sees them: the published ones not changed in this
    // group, and those this group created or changed.
    std::vector<pending_entry> targets;
    {
      std::shared_lock lock(log_.mutex);
      if (const auto it = log_.pending_by_webhook.find(webhook_);
          it != log_.pending_by_webhook.end()) {
        it->second.for_each([&](const object_id& id) {
          if (!log_.overlay.deliveries.contains(id)) targets.push_back(log_.pending.at(id));
          return true;
        });
      }
    }
    for (const auto& [id, entry] : log_.overlay.deliveries) {
      if (entry && entry->record->webhook == webhook_) targets.push_back(*entry);
    }
    const timestamp now = log_.clock();
    for (const pending_entry& old : targets) {
      delivery d = *old.record;
      d.status = delivery_status::failed;
      d.next_attempt_at.reset();
      d.reason = std::string(kReasonWebhookDeleted);
      d.updated_at = now;
      batch.erase(table::queue, std::string(d.id.binary()));
      counts_.push_back(put_finished(log_, batch, d));
      log_.overlay.deliveries[d.id] = std::nullopt;
      cancelled_.push_back(d.id);
    }
    return {};
  }

  void publish() override {
    {
      std::unique_lock lock(log_.mutex);
      for (const object_id& id : cancelled_) log_.remove_locked(id);
    }
    for (const auto& [bucket, count] : counts_) log_.set_bucket_count(bucket, count);
    for (const object_id& id : cancelled_) log_.sched.cancel(id);
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
  std::vector<object_id> cancelled_;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> counts_;
};

// ---------------------------------------------------------------- erase_subject

// Every event of one subject in one project, with its deliveries and their attempts. The events
// are found through the subject's index, one range scan per bucket (these reads run on the
// writer, as erasure is rare and a subject has few events); each costs point deletes (the event,
// its index entry, each finished delivery's two records) and one range (each delivery's attempts).
class erase_subject_op final : public commit_mutation {
 public:
  erase_subject_op(impl& log, object_id project, std::string subject, completion<std::size_t> done)
      : log_(log), project_(project), subject_(std::move(subject)), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    const timestamp now = log_.clock();
    std::uint32_t oldest = log_.bucket_of(now - log_.options.retention);
    {
      std::shared_lock lock(log_.mutex);
      if (const auto it = log_.pending_by_project.find(project_);
          it != log_.pending_by_project.end()) {
        it->second.for_each([&](const object_id& id) {
          oldest = std::min(oldest, log_.bucket_of(*log_.pending.at(id).record));
          return true;
        });
      }
    }
    // First every read (a failure refuses the mutation with nothing changed), then the changes.
    std::vector<found_event> found;
    for (std::optional<std::uint32_t> bucket = log_.bucket_of(now); bucket && *bucket >= oldest;
         bucket = log_.buckets.previous(*bucket)) {
      if (auto read = find_in_bucket(*bucket, found); !read) return read;
    }
    for (const found_event& f : found) erase(batch, f);
    return {};
  }

  void publish() override {
    {
      std::unique_lock lock(log_.mutex);
      for (const object_id& id : cancelled_) log_.remove_locked(id);
    }
    for (const object_id& id : cancelled_) log_.sched.cancel(id);
    for (const auto& [bucket, count] : counts_) log_.set_bucket_count(bucket, count);
    log_.n_deleted.fetch_add(cancelled_.size(), std::memory_order_relaxed);
    log_.n_erased_events.fetch_add(events_, std::memory_order_relaxed);
  }

  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), events_);
  }

 private:
  // One event of the subject, and what became of each of its deliveries.
  struct found_event {
    std::uint32_t bucket = 0;
    object_id id;
    bool stored = false;  // false: only its index entry is left
    struct target {
      fanout_entry delivery;
      bool pending = false;
      std::optional<delivery_status> finished;
    };
    std::vector<target> deliveries;
  };

  result<void> find_in_bucket(std::uint32_t bucket, std::vector<found_event>& found) const {
    const std::string prefix = subject_prefix(bucket, project_, subject_);
    std::vector<object_id> events;
    auto scanned = log_.store.scan_range(
        table::history, prefix, prefix_end(prefix), scan_order::ascending,
        [&events](std::string_view key, std::string_view) {
          if (auto id = object_id::from_binary(key.substr(key.size() - object_id::kSize))) {
            events.push_back(*id);
          }
          return true;
        });
    if (!scanned) return scanned;
    for (const object_id& id : events) {
      found_event f{bucket, id, false, {}};
      const std::string key = event_key(bucket, project_, id);
      auto value = log_.store.get(table::history, key);
      if (!value) return value.error();
      if (*value) {  // else erased already, or dropped by retention: only the index entry
        auto e = decode_event(id.binary(), **value);
        if (!e) {
          return make_problem(error_kind::internal,
                              "history record " + hex_encode(key) + ": " + e.error().detail);
        }
        f.stored = true;
        for (const fanout_entry& d : e->deliveries) {
          found_event::target t{d, log_.current_pending(d.delivery).has_value(), std::nullopt};
          if (!t.pending) {
            auto finished = log_.read_finished(bucket, project_, d.delivery);
            if (!finished) return finished.error();
            if (*finished) t.finished = (*finished)->status;
          }
          f.deliveries.push_back(t);
        }
      }
      found.push_back(std::move(f));
    }
    return {};
  }

  // Each event: a few point deletes and one range per delivery (its attempts).
  void erase(write_batch& batch, const found_event& f) {
    const std::uint32_t bucket = f.bucket;
    batch.erase(table::history, subject_key(bucket, project_, subject_, f.id));
    ++events_;
    if (!f.stored) return;
    batch.erase(table::history, event_key(bucket, project_, f.id));
    for (const found_event::target& t : f.deliveries) {
      const object_id& id = t.delivery.delivery;
      if (t.pending) {
        batch.erase(table::queue, std::string(id.binary()));
        log_.overlay.deliveries[id] = std::nullopt;
        cancelled_.push_back(id);
      } else if (t.finished) {
        batch.erase(table::history, finished_key(bucket, project_, *t.finished, id));
        batch.erase(table::history,
                    by_webhook_key(bucket, project_, t.delivery.webhook, *t.finished, id));
        const std::uint64_t count = log_.current_bucket_count(bucket);
        const std::uint64_t left = count > 0 ? count - 1 : 0;
        put_bucket_count(log_, batch, bucket, left);
        counts_.emplace_back(bucket, left);
      }
      const std::string attempts = attempt_prefix(bucket, project_, id);
      batch.erase_range(table::history, attempts, prefix_end(attempts));
    }
  }

  impl& log_;
  object_id project_;
  std::string subject_;
  completion<std::size_t> done_;
  std::size_t events_ = 0;
  std::vector<object_id> cancelled_;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> counts_;
};

// ---------------------------------------------------------------- delete_project

// A deleted project: its pending deliveries leave the queue, memory and the scheduler (point
// deletes: as many as there is pending work), and its history goes with one range per bucket
// that can hold it, from the oldest (the window's, or an older one a pending delivery of it still
// uses) to the newest.
class delete_project_op final : public commit_mutation {
 public:
  delete_project_op(impl& log, object_id project, completion<std::size_t> done)
      : log_(log), project_(project), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    const timestamp now = log_.clock();
    std::uint32_t oldest = log_.bucket_of(now - log_.options.retention);
    const auto cancel = [&](const pending_entry& entry) {
      const delivery& d = *entry.record;
      batch.erase(table::queue, std::string(d.id.binary()));
      log_.overlay.deliveries[d.id] = std::nullopt;
      cancelled_.push_back(d.id);
      oldest = std::min(oldest, log_.bucket_of(d));
    };
    {
      std::shared_lock lock(log_.mutex);
      if (const auto it = log_.pending_by_project.find(project_);
          it != log_.pending_by_project.end()) {
        it->second.for_each([&](const object_id& id) {
          if (!log_.overlay.deliveries.contains(id)) cancel(log_.pending.at(id));
          return true;
        });
      }
    }
    for (const auto& [id, entry] : log_.overlay.deliveries) {
      if (entry && entry->record->project == project_) cancel(*entry);
    }
    for (std::optional<std::uint32_t> bucket = log_.bucket_of(now); bucket && *bucket >= oldest;
         bucket = log_.buckets.previous(*bucket)) {
      const std::string prefix = history_prefix(*bucket, project_);
      batch.erase_range(table::history, prefix, prefix_end(prefix));
      ++ranges_;
    }
    return {};
  }

  void publish() override {
    {
      std::unique_lock lock(log_.mutex);
      for (const object_id& id : cancelled_) log_.remove_locked(id);
    }
    for (const object_id& id : cancelled_) log_.sched.cancel(id);
    log_.n_deleted.fetch_add(cancelled_.size(), std::memory_order_relaxed);
  }

  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), cancelled_.size());
  }

 private:
  impl& log_;
  object_id project_;
  completion<std::size_t> done_;
  std::vector<object_id> cancelled_;
  std::size_t ranges_ = 0;
};

// ---------------------------------------------------------------- sweep

// Retention: every bucket that ended before now - retention goes, with a handful of range
// deletes. What a pending delivery older than the window still needs (its event, its earlier
// attempts) is stepped around: the ranges stop before those keys and go on after them, so a
// pending delivery is never dropped, and the cost stays one range per kept record, not one delete
// per dropped one.
class sweep_op final : public commit_mutation {
 public:
  sweep_op(impl& log, completion<sweep_result> done) : log_(log), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    const timestamp now = log_.clock();
    result_.cutoff_bucket = log_.bucket_of(now - log_.options.retention);
    const std::uint32_t cutoff = result_.cutoff_bucket;

    // The keys to step around, as [begin, end) ranges.
    std::vector<std::pair<std::string, std::string>> keep;
    const auto pin = [&](const pending_entry& entry) {
      const delivery& d = *entry.record;
      const std::uint32_t bucket = log_.bucket_of(d);
      if (bucket >= cutoff) return;
      std::string event = event_key(bucket, d.project, d.event);
      std::string event_end = event + '\0';
      keep.emplace_back(std::move(event), std::move(event_end));
      std::string attempts = attempt_prefix(bucket, d.project, d.id);
      std::string attempts_end = prefix_end(attempts);
      keep.emplace_back(std::move(attempts), std::move(attempts_end));
      ++result_.pinned;
    };
    {
      std::shared_lock lock(log_.mutex);
      log_.pending_by_age.for_each([&](const std::pair<timestamp, object_id>& entry) {
        const auto& [created, id] = entry;
        if (log_.bucket_of(created) >= cutoff) return false;  // oldest first: the rest are newer
        if (!log_.overlay.deliveries.contains(id)) pin(log_.pending.at(id));
        return true;
      });
    }
    for (const auto& [id, entry] : log_.overlay.deliveries) {
      if (entry) pin(*entry);
    }
    std::sort(keep.begin(), keep.end());
    std::string from;  // "" is before every key
    const std::string to = bucket_key(cutoff);
    const auto erase = [&](const std::string& begin, const std::string& end) {
      batch.erase_range(table::history, begin, end);
      result_.erased.emplace_back(begin, end);
    };
    for (const auto& [begin, end] : keep) {
      if (begin >= to) break;
      if (from < begin) erase(from, begin);
      from = std::max(from, end);
    }
    if (from < to) erase(from, to);

    // The counts of the dropped buckets: what expired.
    std::set<std::uint32_t> counted;
    for (const auto& [bucket, count] : log_.bucket_counts) {
      if (bucket < cutoff) counted.insert(bucket);
    }
    for (const auto& [bucket, count] : log_.overlay.bucket_counts) {
      if (bucket < cutoff) counted.insert(bucket);
    }
    for (const std::uint32_t bucket : counted) {
      result_.expired_deliveries += log_.current_bucket_count(bucket);
      batch.erase(table::meta, bucket_count_key(bucket));
      log_.overlay.bucket_count_ops.erase(bucket);  // a later put in this group adds its own op
      log_.overlay.bucket_counts.erase(bucket);
      log_.overlay.dropped_buckets.insert(bucket);
      dropped_.push_back(bucket);
    }

    // Idempotency keys past their window leave disk and memory.
    for (auto it = log_.idempotency_by_age.begin();
         it != log_.idempotency_by_age.end() && pruned_.size() < kIdempotencyPerSweep; ++it) {
      if (now - it->first <= log_.options.idempotency_ttl) break;
      if (log_.overlay.idempotency.contains(it->second)) continue;
      batch.erase(table::idempotency, it->second);
      log_.overlay.idempotency[it->second] = std::nullopt;
      pruned_.emplace_back(it->second, it->first);
    }
    result_.expired_idempotency = pruned_.size();
    return {};
  }

  void publish() override {
    for (const std::uint32_t bucket : dropped_) log_.set_bucket_count(bucket, 0);
    for (const auto& [key, created_at] : pruned_) {
      if (const auto it = log_.idempotency.find(key);
          it != log_.idempotency.end() && it->second.created_at == created_at) {
        log_.forget_idempotency(key);
      }
    }
    log_.n_expired.fetch_add(result_.expired_deliveries, std::memory_order_relaxed);
    log_.n_sweeps.fetch_add(1, std::memory_order_relaxed);
  }

  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), std::move(result_));
  }

 private:
  impl& log_;
  completion<sweep_result> done_;
  sweep_result result_;
  std::vector<std::uint32_t> dropped_;
  std::vector<std::pair<std::string, timestamp>> pruned_;
};

// ---------------------------------------------------------------- write_meta

// One meta record, riding with whatever else the group writes.
class write_meta_op final : public commit_mutation {
 public:
  write_meta_op(std::string key, std::optional<std::string> value, completion<void> done)
      : key_(std::move(key)), value_(std::move(value)), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    if (value_) {
      batch.put(table::meta, key_, *value_);
    } else {
      batch.erase(table::meta, key_);
    }
    return {};
  }
  void publish() override {}
  void complete(result<void> outcome) noexcept override { done_(std::move(outcome)); }

 private:
  std::string key_;
  std::optional<std::string> value_;
  completion<void> done_;
};

}  // namespace

// ---------------------------------------------------------------- entry points

void delivery_log::write_meta(std::string key, std::optional<std::string> value,
                              completion<void> done) {
  impl_->writer.submit(
      std::make_unique<write_meta_op>(std::move(key), std::move(value), std::move(done)));
}

void delivery_log::ingest(ingest_request request, completion<ingest_result> done) {
  // The request was validated by parse_ingest (ingest_input.hpp); these guard the log's own
  // invariants against a caller that skipped it.
  if (request.type.empty() ||
      (request.idempotency_key && (request.idempotency_key->empty() ||
                                   request.idempotency_key->size() > kMaxIdempotencyKeyBytes))) {
    done(make_problem(error_kind::internal, "An ingest request that was not validated."));
    return;
  }
  impl_->writer.submit(std::make_unique<ingest_op>(*impl_, std::move(request), std::move(done)));
}

void delivery_log::record_attempt(std::shared_ptr<const delivery> attempted, attempt a,
                                  attempt_decision decision,
                                  completion<std::shared_ptr<const delivery>> done) {
  impl_->writer.submit(std::make_unique<record_attempt_op>(
      *impl_, std::move(attempted), std::move(a), std::move(decision), std::move(done)));
}

void delivery_log::cancel_webhook(object_id webhook, completion<std::size_t> done) {
  impl_->writer.submit(std::make_unique<cancel_webhook_op>(*impl_, webhook, std::move(done)));
}

void delivery_log::erase_subject(object_id project, std::string subject,
                                 completion<std::size_t> done) {
  impl_->writer.submit(
      std::make_unique<erase_subject_op>(*impl_, project, std::move(subject), std::move(done)));
}

void delivery_log::delete_project(object_id project, completion<std::size_t> done) {
  impl_->writer.submit(impl_->make_delete_project(project, std::move(done)));
}

std::unique_ptr<commit_mutation> delivery_log::impl::make_delete_project(
    object_id project, completion<std::size_t> done) {
  return std::make_unique<delete_project_op>(*this, project, std::move(done));
}

void delivery_log::sweep(completion<sweep_result> done) {
  impl_->writer.submit(impl_->make_sweep(std::move(done)));
}

result<void> delivery_log::reclaim_history(const sweep_result& swept) {
  return impl_->reclaim(swept, nullptr);
}

std::unique_ptr<commit_mutation> delivery_log::impl::make_sweep(completion<sweep_result> done) {
  return std::make_unique<sweep_op>(*this, std::move(done));
}

result<void> delivery_log::impl::reclaim(const sweep_result& swept, std::atomic<bool>* stop) {
  impl& i = *this;
  // Range by range: a file that holds a record kept for a pending delivery lies across two
  // ranges and is compacted, never dropped whole.
  for (const auto& [begin, end] : swept.erased) {
    if (auto freed = i.store.reclaim(table::history, begin, end, stop); !freed) return freed;
    if (stop != nullptr && stop->load()) return {};
  }
  // The oldest bucket left: the first key of the table (range-deleted keys are not seen).
  std::int64_t oldest = -1;
  auto scanned = i.store.scan_range(table::history, "", "", scan_order::ascending,
                                    [&oldest](std::string_view key, std::string_view) {
                                      oldest = bucket_of_key(key);
                                      return false;
                                    });
  if (!scanned) return scanned;
  i.oldest_bucket.store(oldest, std::memory_order_relaxed);
  return {};
}

}  // namespace hookd
