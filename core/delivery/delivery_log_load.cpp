// Start-up: the one-time migration of a store written before the history layout, then the
// pending work. See delivery_log.hpp.

#include "core/catalog/codec.hpp"  // printable_key
#include "core/delivery/delivery_log_impl.hpp"

#include <algorithm>
#include <charconv>
#include <set>

namespace hookd {

namespace {

using impl = delivery_log::impl;

problem load_error(table t, std::string_view key, const std::string& detail) {
  return make_problem(error_kind::internal, "Cannot load the " + std::string(table_name(t)) +
                                                " table: record " + printable_key(key) + ": " +
                                                detail);
}

// Puts written per batch by the migration: large enough to go fast, small enough that one batch
// stays a few megabytes.
constexpr std::size_t kMigrationBatchOps = 4096;

// The end of a whole table of id-keyed records (12 or 16 bytes): no such key reaches it.
const std::string kTableEnd(32, '\xFF');

}  // namespace

// Before the history layout, every event, delivery and attempt lived in the events, deliveries
// and attempts tables, keyed by id, and start-up read all of them. This reads them once more (as
// that version did, with its checks), writes the same records under the history layout (pending
// deliveries to the queue, finished ones and every event and attempt to history), and in a last
// batch marks the layout and deletes the old tables' contents. A crash before that last batch
// leaves the old tables whole: the next start migrates again, writing the same records.
result<void> delivery_log::impl::migrate_earlier_layout() {
  std::optional<problem> failure;
  const auto fail = [&failure](problem p) {
    if (!failure) failure = std::move(p);
    return false;
  };

  std::unordered_map<object_id, event> events;
  auto scanned = store.scan(table::events, {}, [&](std::string_view key, std::string_view value) {
    auto e = decode_event(key, value);
    if (!e) return fail(load_error(table::events, key, e.error().detail));
    events.emplace(e->id, std::move(*e));
    return true;
  });
  if (!scanned) return scanned.error();
  if (failure) return *failure;

  std::map<object_id, delivery> deliveries;  // id order: an event's fan-out comes out in order
  scanned = store.scan(table::deliveries, {}, [&](std::string_view key, std::string_view value) {
    auto d = decode_delivery(key, value);
    if (!d) return fail(load_error(table::deliveries, key, d.error().detail));
    const auto e = events.find(d->event);
    if (e == events.end()) {
      return fail(load_error(table::deliveries, key,
                             "its event " + d->event.to_string() + " does not exist"));
    }
    d->project = e->second.project;
    deliveries.emplace(d->id, std::move(*d));
    return true;
  });
  if (!scanned) return scanned.error();
  if (failure) return *failure;

  write_batch batch;
  const auto flush = [&](bool force) -> result<void> {
    if (batch.ops.size() < kMigrationBatchOps && !(force && !batch.empty())) return {};
    auto written = store.write(batch);
    batch.clear();
    return written;
  };

  std::unordered_map<object_id, std::uint32_t> attempts_seen;
  scanned = store.scan(table::attempts, {}, [&](std::string_view key, std::string_view value) {
    auto a = decode_stored_attempt(key, value);
    if (!a) return fail(load_error(table::attempts, key, a.error().detail));
    const auto d = deliveries.find(a->delivery);
    if (d == deliveries.end()) {
      return fail(load_error(table::attempts, key,
                             "its delivery " + a->delivery.to_string() + " does not exist"));
    }
    std::uint32_t& seen = attempts_seen[a->delivery];
    // Keys sort by delivery id, then by big-endian number: attempts arrive 1, 2, 3...
    if (a->value.number != seen + 1) {
      return fail(load_error(table::attempts, key,
                             "attempt " + std::to_string(a->value.number) +
                                 " does not follow the delivery's recorded attempts"));
    }
    seen = a->value.number;
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
    const delivery& owner = d->second;
    batch.put(table::history,
              attempt_key(bucket_of(owner), owner.project, owner.id, a->value.number),
              encode(a->value));
    if (auto flushed = flush(false); !flushed) return fail(flushed.error());
    return true;
  });
  if (!scanned) return scanned.error();
  if (failure) return *failure;

  std::map<std::uint32_t, std::uint64_t> counts;
  for (auto& [id, d] : deliveries) {
    const auto n = attempts_seen.find(id);
    if ((n == attempts_seen.end() ? 0u : n->second) != d.attempts) {
      return load_error(table::deliveries, id.binary(),
                        "the delivery counts " + std::to_string(d.attempts) +
                            " attempts but another number are stored");
    }
    events.at(d.event).deliveries.push_back({d.id, d.webhook});
    if (d.status == delivery_status::pending) {
      batch.put(table::queue, std::string(id.binary()), encode(d));
    } else {
      const std::uint32_t bucket = bucket_of(d);
      const std::string value = encode(d);
      batch.put(table::history, finished_key(bucket, d.project, d.status, id), value);
      batch.put(table::history, by_webhook_key(bucket, d.project, d.webhook, d.status, id), value);
      ++counts[bucket];
    }
    if (auto flushed = flush(false); !flushed) return flushed.error();
  }
  for (const auto& [id, e] : events) {
    batch.put(table::history, event_key(bucket_of(e.time), e.project, id), encode(e));
    if (auto flushed = flush(false); !flushed) return flushed.error();
  }
  if (auto flushed = flush(true); !flushed) return flushed.error();

  // The last batch: the counts, the mark, and the old tables emptied (a range each).
  for (const auto& [bucket, count] : counts) {
    batch.put(table::meta, bucket_count_key(bucket), std::to_string(count));
  }
  batch.put(table::meta, std::string(kDeliveryLayoutKey), std::string(kDeliveryLayoutVersion));
  for (const table t : {table::events, table::deliveries, table::attempts}) {
    batch.erase_range(t, "", kTableEnd);
  }
  batch.erase_range(table::index, std::string(kWebhookDeliveryPrefix),
                    prefix_end(kWebhookDeliveryPrefix));
  if (auto written = store.write(batch); !written) return written.error();
  // Best effort: the next compaction frees it anyway.
  for (const table t : {table::events, table::deliveries, table::attempts}) {
    (void)store.reclaim(t, "", kTableEnd, nullptr);
  }
  return {};
}

result<delivery_log_counts> delivery_log::impl::load() {
  if (loaded) {
    return make_problem(error_kind::internal,
                        "delivery_log::load() must be called once, before start()");
  }
  const timestamp now = clock();

  // The buckets: as stored, with a new epoch when --retention asks for another width.
  auto stored_plan = store.get(table::meta, kBucketPlanKey);
  if (!stored_plan) return stored_plan.error();
  if (*stored_plan) {
    auto plan = bucket_plan::decode(**stored_plan);
    if (!plan) return plan.error();
    buckets = std::move(*plan);
  } else {
    buckets = bucket_plan(bucket_plan::width_for(options.retention));
  }
  // Records of this second or earlier keep the epoch they were written under.
  if (buckets.adopt(unix_seconds(now) + 1, bucket_plan::width_for(options.retention)) ||
      !*stored_plan) {
    write_batch batch;
    batch.put(table::meta, std::string(kBucketPlanKey), buckets.encode());
    if (auto written = store.write(batch); !written) return written.error();
  }

  auto layout = store.get(table::meta, kDeliveryLayoutKey);
  if (!layout) return layout.error();
  if (!*layout) {
    if (auto migrated = migrate_earlier_layout(); !migrated) return migrated.error();
  } else if (**layout != kDeliveryLayoutVersion) {
    return make_problem(error_kind::internal,
                        "The delivery log was written by a newer hookd (layout " + **layout +
                            "); this one reads layout " + std::string(kDeliveryLayoutVersion) +
                            ". Run the newer version, or restore a backup taken before it ran.");
  }

  std::optional<problem> failure;
  const auto fail = [&failure](problem p) {
    if (!failure) failure = std::move(p);
    return false;
  };

  auto scanned = store.scan(
      table::meta, kBucketCountPrefix, [&](std::string_view key, std::string_view value) {
        std::uint64_t count = 0;
        const auto r = std::from_chars(value.data(), value.data() + value.size(), count);
        if (key.size() != kBucketCountPrefix.size() + kBucketBytes || r.ec != std::errc() ||
            r.ptr != value.data() + value.size()) {
          return fail(load_error(table::meta, key, "not a bucket count"));
        }
        set_bucket_count(read_be32(key.substr(kBucketCountPrefix.size())), count);
        return true;
      });
  if (!scanned) return scanned.error();
  if (failure) return *failure;

  // Pending work: the queue, and the event each delivery sends (shared by its deliveries).
  std::vector<std::shared_ptr<delivery>> queued;
  scanned = store.scan(table::queue, {}, [&](std::string_view key, std::string_view value) {
    auto d = decode_delivery(key, value);
    if (!d) return fail(load_error(table::queue, key, d.error().detail));
    if (d->status != delivery_status::pending || d->project.is_nil()) {
      return fail(load_error(table::queue, key, "not a pending delivery of a project"));
    }
    queued.push_back(std::make_shared<delivery>(std::move(*d)));
    return true;
  });
  if (!scanned) return scanned.error();
  if (failure) return *failure;

  std::unordered_map<object_id, std::shared_ptr<const event>> events;
  std::set<object_id> orphaned;  // projects the catalog no longer has
  {
    std::unique_lock lock(mutex);
    for (const auto& d : queued) {
      if (!cat.find_project(d->project)) orphaned.insert(d->project);
      auto& e = events[d->event];
      if (!e) {
        const std::string key = event_key(bucket_of(*d), d->project, d->event);
        auto value = store.get(table::history, key);
        if (!value) return value.error();
        if (!*value) {
          return load_error(table::queue, d->id.binary(),
                            "its event " + d->event.to_string() + " does not exist");
        }
        auto decoded = decode_event(d->event.binary(), **value);
        if (!decoded) return load_error(table::history, key, decoded.error().detail);
        e = std::make_shared<const event>(std::move(*decoded));
      }
      install_locked(pending_entry{d, e});
    }
  }

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

  std::int64_t oldest = -1;
  scanned = store.scan_range(table::history, "", "", scan_order::ascending,
                             [&oldest](std::string_view key, std::string_view) {
                               oldest = bucket_of_key(key);
                               return false;
                             });
  if (!scanned) return scanned.error();
  oldest_bucket.store(oldest, std::memory_order_relaxed);

  loaded = true;
  // The oldest pending delivery of each ordering key is the first of its line again.
  for (const auto& d : queued) schedule_job(*d, *d->next_attempt_at);
  // A project deleted from the catalog whose deliveries were not yet (the process stopped in
  // between): its deletion is finished first thing once the writer starts.
  for (const object_id& project : orphaned) {
    writer.submit(make_delete_project(project, [](result<std::size_t>) {}));
  }
  delivery_log_counts counts;
  counts.events = events.size();
  counts.pending = queued.size();
  counts.idempotency_keys = idempotency.size();
  counts.history_deliveries = history_deliveries.load(std::memory_order_relaxed);
  return counts;
}

}  // namespace hookd
