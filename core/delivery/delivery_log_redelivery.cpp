// The delivery log's mutations that send again (docs/delivery.md, "Redelivery and recovery" and
// "Test pings"): redeliver one delivery, recover a webhook's failed deliveries of a time window
// batch by batch, and send a test ping. Each plans into its group's write_batch against the
// published state plus the overlay, like the mutations of delivery_log_writes.cpp.

#include "core/delivery/delivery_log_impl.hpp"
#include "core/delivery/trace_context.hpp"

#include <algorithm>
#include <utility>

namespace hookd {

namespace {

using impl = delivery_log::impl;
using pending_entry = impl::pending_entry;

problem delivery_not_found(const object_id& id) {
  return make_problem(error_kind::not_found, "Delivery " + id.to_string() + " not found.");
}

// What one mutation brings back to pending, and the bucket counts it lowers.
struct reopened {
  std::vector<pending_entry> entries;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> counts;

  void publish(impl& log) const {
    {
      std::unique_lock lock(log.mutex);
      for (const pending_entry& entry : entries) log.install_locked(entry);
    }
    for (const auto& [bucket, count] : counts) log.set_bucket_count(bucket, count);
    for (const pending_entry& entry : entries) {
      const delivery& d = *entry.record;
      log.schedule_job(d, *d.next_attempt_at);
    }
  }
};

// The delivery as a redelivery leaves it: pending, due `now`, with a retry schedule that starts
// after the attempts made so far.
std::shared_ptr<delivery> due_again(const delivery& old, timestamp now) {
  auto d = std::make_shared<delivery>(old);
  d->status = delivery_status::pending;
  d->next_attempt_at = now;
  d->reason.reset();
  d->updated_at = now;
  d->schedule_start = old.attempts;
  return d;
}

// A pending delivery redelivered: due now, its schedule starting afresh; same event in memory.
void plan_pending(impl& log, write_batch& batch, const pending_entry& current, timestamp now,
                  reopened& out) {
  pending_entry entry{due_again(*current.record, now), current.source_event};
  batch.put(table::queue, std::string(entry.record->id.binary()), encode(*entry.record));
  log.overlay.deliveries[entry.record->id] = entry;
  out.entries.push_back(std::move(entry));
}

// The event a finished delivery sends: shared with a pending delivery of the same event when
// memory has one (one copy per event, docs/delivery.md), else read from history.
result<std::shared_ptr<const event>> source_event_of(impl& log, const delivery& d) {
  const std::uint32_t bucket = log.bucket_of(d);
  const std::string key = event_key(bucket, d.project, d.event);
  auto value = log.store.get(table::history, key);
  if (!value) return value.error();
  if (!*value) {
    return make_problem(error_kind::internal, "Delivery " + d.id.to_string() + ": its event " +
                                                  d.event.to_string() + " is missing.");
  }
  auto decoded = decode_event(d.event.binary(), **value);
  if (!decoded) {
    return make_problem(error_kind::internal,
                        "history record " + hex_encode(key) + ": " + decoded.error().detail);
  }
  for (const fanout_entry& sibling : decoded->deliveries) {
    if (sibling.delivery == d.id) continue;
    if (auto p = log.current_pending(sibling.delivery); p && p->source_event) {
      return p->source_event;
    }
  }
  return std::shared_ptr<const event>(std::make_shared<const event>(std::move(*decoded)));
}

// A finished delivery back to pending, with the event it sends (source_event_of): its two
// history records go and its bucket counts one less, its queue record comes, due now, and its
// event comes back to memory. One batch, so a crash leaves it either finished or pending, never
// neither. Changes only the batch and the overlay: every read that can fail comes before.
void plan_finished(impl& log, write_batch& batch, const delivery& old,
                   std::shared_ptr<const event> source, timestamp now, reopened& out) {
  const std::uint32_t bucket = log.bucket_of(old);
  batch.erase(table::history, finished_key(bucket, old.project, old.status, old.id));
  batch.erase(table::history, by_webhook_key(bucket, old.project, old.webhook, old.status, old.id));
  const std::uint64_t count = log.current_bucket_count(bucket);
  const std::uint64_t left = count > 0 ? count - 1 : 0;
  put_bucket_count(log, batch, bucket, left);
  out.counts.emplace_back(bucket, left);
  pending_entry entry{due_again(old, now), std::move(source)};
  batch.put(table::queue, std::string(old.id.binary()), encode(*entry.record));
  log.overlay.deliveries[old.id] = entry;
  out.entries.push_back(std::move(entry));
}

// ---------------------------------------------------------------- redeliver

class redeliver_op final : public commit_mutation {
 public:
  redeliver_op(impl& log, object_id project, object_id webhook, object_id id,
               completion<std::shared_ptr<const delivery>> done)
      : log_(log), project_(project), webhook_(webhook), id_(id), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    const timestamp now = log_.clock();
    if (const auto current = log_.current_pending(id_)) {
      if (current->record->project != project_ || current->record->webhook != webhook_) {
        return delivery_not_found(id_);
      }
      plan_pending(log_, batch, *current, now, reopened_);
      return {};
    }
    if (log_.overlay.deliveries.contains(id_)) {
      // Finished (or erased) by an earlier mutation of this group: its records are not in
      // storage yet.
      return make_problem(
          error_kind::conflict,
          "Delivery " + id_.to_string() + " changed while it was redelivered; try again.");
    }
    auto finished = log_.read_finished(log_.buckets.start_of(id_.seconds()), project_, id_);
    if (!finished) return finished.error();
    if (!*finished || (*finished)->webhook != webhook_ ||
        (*finished)->created_at < log_.retention_cutoff()) {
      return delivery_not_found(id_);
    }
    auto source = source_event_of(log_, **finished);
    if (!source) return source.error();
    plan_finished(log_, batch, **finished, std::move(*source), now, reopened_);
    return {};
  }

  void publish() override { reopened_.publish(log_); }

  void complete(result<void> outcome) noexcept override {
    std::shared_ptr<const delivery> redelivered;
    if (!reopened_.entries.empty()) redelivered = reopened_.entries.front().record;
    deliver(done_, std::move(outcome), std::move(redelivered));
  }

 private:
  impl& log_;
  object_id project_, webhook_, id_;
  completion<std::shared_ptr<const delivery>> done_;
  reopened reopened_;
};

// ---------------------------------------------------------------- recover

// One recovery, shared by its batches: where the next batch starts and how many came back.
struct recovery {
  impl& log;
  object_id project, webhook;
  timestamp since{}, until{};
  completion<std::size_t> done;
  std::uint32_t bucket = 0;          // the bucket the next batch scans first
  std::optional<std::string> after;  // in that bucket, only keys above this one
  std::size_t total = 0;
};

// Up to kRecoverBatch failed deliveries of the webhook created in [since, until), oldest first,
// from where the previous batch stopped; the last batch completes the recovery, the others submit
// the next one once they are durable.
class recover_batch_op final : public commit_mutation {
 public:
  explicit recover_batch_op(std::shared_ptr<recovery> r) : r_(std::move(r)) {}

  result<void> plan(write_batch& batch) override {
    impl& log = r_->log;
    const timestamp now = log.clock();
    const timestamp earliest = std::max(r_->since, log.retention_cutoff());
    const std::uint32_t last_bucket = log.bucket_of(r_->until);
    std::vector<delivery> found;
    std::optional<problem> failure;
    // Within a bucket, keys sort by id, and an id starts with its creation second (big-endian).
    const std::uint32_t first_second = unix_seconds(earliest);
    const std::uint32_t last_second = unix_seconds(r_->until);
    while (found.size() < delivery_log::kRecoverBatch && !failure) {
      const std::string prefix =
          by_webhook_prefix(r_->bucket, r_->project, r_->webhook, delivery_status::failed);
      std::string lower = prefix;
      append_be32(lower, first_second);
      if (r_->after) lower = std::max(lower, *r_->after + '\0');
      auto scanned = log.store.scan_range(
          table::history, lower, prefix_end(prefix), scan_order::ascending,
          [&](std::string_view key, std::string_view value) {
            r_->after = std::string(key);
            const auto id = object_id::from_binary(key.substr(key.size() - object_id::kSize));
            if (!id || id->seconds() > last_second) {
              r_->after = prefix_end(prefix);  // past the window: this bucket is done
              return false;
            }
            auto d = decode_delivery(id->binary(), value);
            if (!d) {
              failure = make_problem(error_kind::internal,
                                     "history record " + hex_encode(key) + ": " + d.error().detail);
              return false;
            }
            // Pending again, or changed by an earlier mutation of this group: not failed now.
            if (d->created_at >= earliest && d->created_at < r_->until &&
                !log.overlay.deliveries.contains(*id) && !log.current_pending(*id)) {
              found.push_back(std::move(*d));
            }
            return found.size() < delivery_log::kRecoverBatch;
          });
      if (!scanned) return scanned.error();
      if (failure || found.size() >= delivery_log::kRecoverBatch) break;
      // This bucket is done: the next one, unless it was the last.
      const std::uint32_t next = log.buckets.end_of(r_->bucket);
      if (r_->bucket >= last_bucket || next <= r_->bucket) {
        finished_ = true;
        break;
      }
      r_->bucket = next;
      r_->after.reset();
    }
    if (failure) return *failure;
    // Every read first (a failure refuses the batch with nothing changed), then the changes.
    std::vector<std::shared_ptr<const event>> sources;
    sources.reserve(found.size());
    for (const delivery& d : found) {
      auto source = source_event_of(log, d);
      if (!source) return source.error();
      sources.push_back(std::move(*source));
    }
    for (std::size_t i = 0; i < found.size(); ++i) {
      plan_finished(log, batch, found[i], std::move(sources[i]), now, reopened_);
    }
    return {};
  }

  void publish() override { reopened_.publish(r_->log); }

  void complete(result<void> outcome) noexcept override {
    if (!outcome) {
      r_->done(std::move(outcome).error());
      return;
    }
    r_->total += reopened_.entries.size();
    if (finished_) {
      r_->done(r_->total);
      return;
    }
    r_->log.writer.submit(std::make_unique<recover_batch_op>(r_));
  }

 private:
  std::shared_ptr<recovery> r_;
  reopened reopened_;
  bool finished_ = false;
};

// ---------------------------------------------------------------- test pings

class send_test_op final : public commit_mutation {
 public:
  send_test_op(impl& log, object_id organization, object_id project, object_id webhook,
               completion<std::shared_ptr<const delivery>> done)
      : log_(log),
        organization_(organization),
        project_(project),
        webhook_(webhook),
        done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    const auto hook = log_.cat.find_webhook(webhook_);
    if (!hook || hook->project != project_ || hook->organization != organization_) {
      return make_problem(error_kind::not_found, "Webhook " + webhook_.to_string() + " not found.");
    }
    const timestamp now = log_.clock();
    auto e = std::make_shared<event>();
    e->id = log_.ids.next(unix_seconds(now));
    e->organization = organization_;
    e->project = project_;
    e->type = std::string(kTestEventType);
    e->data = "{\"webhookId\":\"" + webhook_.to_string() + "\"}";
    e->time = now;
    e->traceparent = new_traceparent();

    auto d = std::make_shared<delivery>();
    d->id = log_.ids.next(unix_seconds(now));
    d->event = e->id;
    d->webhook = webhook_;
    d->project = project_;
    d->type = e->type;
    d->status = delivery_status::pending;
    d->next_attempt_at = now;
    d->created_at = d->updated_at = now;
    d->test = true;
    e->deliveries.push_back({d->id, webhook_});
    batch.put(table::queue, std::string(d->id.binary()), encode(*d));
    batch.put(table::history, event_key(log_.bucket_of(now), project_, e->id), encode(*e));
    entry_ = pending_entry{std::move(d), std::move(e)};
    log_.overlay.deliveries[entry_.record->id] = entry_;
    return {};
  }

  void publish() override {
    {
      std::unique_lock lock(log_.mutex);
      log_.install_locked(entry_);
    }
    log_.n_events.fetch_add(1, std::memory_order_relaxed);
    log_.n_deliveries.fetch_add(1, std::memory_order_relaxed);
    const delivery& d = *entry_.record;
    log_.sched.schedule(d.id, d.webhook, *d.next_attempt_at, std::nullopt, true);
  }

  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), std::shared_ptr<const delivery>(entry_.record));
  }

 private:
  impl& log_;
  object_id organization_, project_, webhook_;
  completion<std::shared_ptr<const delivery>> done_;
  pending_entry entry_;
};

}  // namespace

// ---------------------------------------------------------------- entry points

void delivery_log::redeliver(object_id project, object_id webhook, object_id id,
                             completion<std::shared_ptr<const delivery>> done) {
  impl_->writer.submit(
      std::make_unique<redeliver_op>(*impl_, project, webhook, id, std::move(done)));
}

void delivery_log::recover(object_id project, object_id webhook, timestamp since,
                           std::optional<timestamp> until, completion<std::size_t> done) {
  auto r = std::make_shared<recovery>(
      recovery{*impl_, project, webhook, since, until.value_or(impl_->clock()), std::move(done)});
  const timestamp earliest = std::max(r->since, impl_->retention_cutoff());
  if (r->until <= earliest) {
    r->done(std::size_t{0});
    return;
  }
  r->bucket = impl_->bucket_of(earliest);
  impl_->writer.submit(std::make_unique<recover_batch_op>(std::move(r)));
}

void delivery_log::send_test(object_id organization, object_id project, object_id webhook,
                             completion<std::shared_ptr<const delivery>> done) {
  impl_->writer.submit(
      std::make_unique<send_test_op>(*impl_, organization, project, webhook, std::move(done)));
}

}  // namespace hookd
