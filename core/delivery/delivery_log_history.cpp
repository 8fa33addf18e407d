// Reads of history: a delivery with its attempts, pages of deliveries (pending ones from memory,
// finished ones from the history table, merged newest first) and an event with its deliveries.
// Every read is a few point gets or one range scan per bucket and status, so its cost follows the
// page, not the size of the history (docs/delivery.md, "History and retention").

#include "core/catalog/validation.hpp"
#include "core/delivery/delivery_log_impl.hpp"

#include <algorithm>

namespace hookd {

namespace {

using impl = delivery_log::impl;

constexpr std::array<delivery_status, 2> kFinished = {delivery_status::succeeded,
                                                      delivery_status::failed};

// The smallest id made at or after unix second `seconds`: an id's first four bytes are the second
// it was made, big-endian, and the log makes a delivery's id from the same clock reading as its
// createdAt, so every delivery created before second `seconds` sorts below this.
std::string first_id_of_second(std::uint32_t seconds) {
  std::string out(object_id::kSize, '\0');
  for (std::size_t b = 0; b < 4; ++b) {
    out[b] = static_cast<char>((seconds >> (8 * (3 - b))) & 0xffu);
  }
  return out;
}

// The unix second at or after `t`: deliveries created before `t` have ids of earlier seconds.
std::uint32_t ceil_seconds(timestamp t) {
  const auto ms = t.time_since_epoch().count();
  return static_cast<std::uint32_t>(ms / 1000 + (ms % 1000 != 0 ? 1 : 0));
}

// The id bytes at the end of a history key.
std::string_view trailing_id(std::string_view key) {
  return key.substr(key.size() - object_id::kSize);
}

problem read_error(std::string_view key, const std::string& detail) {
  return make_problem(error_kind::internal,
                      "Cannot read the history table: record " + hex_encode(key) + ": " + detail);
}

}  // namespace

result<std::vector<attempt>> delivery_log::impl::read_attempts(std::uint32_t bucket,
                                                               const object_id& project,
                                                               const object_id& delivery_id) const {
  std::vector<attempt> out;
  std::optional<problem> failure;
  const std::string prefix = attempt_prefix(bucket, project, delivery_id);
  auto scanned = store.scan_range(table::history, prefix, prefix_end(prefix), scan_order::ascending,
                                  [&](std::string_view key, std::string_view value) {
                                    // delivery id + number: the legacy attempt key shape, at the
                                    // end of the history key.
                                    auto a = decode_attempt(
                                        key.substr(key.size() - object_id::kSize - 4), value);
                                    if (!a) {
                                      failure = read_error(key, a.error().detail);
                                      return false;
                                    }
                                    out.push_back(std::move(a->second));
                                    return true;
                                  });
  if (!scanned) return scanned.error();
  if (failure) return *failure;
  return out;
}

result<std::optional<delivery>> delivery_log::impl::read_finished(std::uint32_t bucket,
                                                                  const object_id& project,
                                                                  const object_id& id) const {
  for (const delivery_status s : kFinished) {
    const std::string key = finished_key(bucket, project, s, id);
    auto value = store.get(table::history, key);
    if (!value) return value.error();
    if (!*value) continue;
    auto d = decode_delivery(id.binary(), **value);
    if (!d) return read_error(key, d.error().detail);
    return std::optional<delivery>(std::move(*d));
  }
  return std::optional<delivery>();
}

result<std::optional<delivery_detail>> delivery_log::find_delivery(const object_id& project,
                                                                   const object_id& id) const {
  const impl& i = *impl_;
  const std::uint32_t bucket = i.buckets.start_of(id.seconds());
  // Pending (memory), else finished (history). A delivery finishing between the two looks is
  // looked for in memory once more: it leaves memory only after its history records are durable.
  std::shared_ptr<const delivery> record;
  for (int look = 0; look < 2 && !record; ++look) {
    if (const auto p = i.find_pending(id)) {
      if (p->record->project != project) return std::optional<delivery_detail>();
      record = p->record;
      break;
    }
    auto finished = i.read_finished(bucket, project, id);
    if (!finished) return finished.error();
    if (*finished) record = std::make_shared<const delivery>(std::move(**finished));
  }
  if (!record) return std::optional<delivery_detail>();
  if (record->status != delivery_status::pending && record->created_at < i.retention_cutoff()) {
    return std::optional<delivery_detail>();
  }
  auto attempts = i.read_attempts(i.bucket_of(*record), project, id);
  if (!attempts) return attempts.error();
  return std::optional<delivery_detail>(delivery_detail{std::move(record), std::move(*attempts)});
}

result<delivery_page> delivery_log::list_deliveries(const delivery_query& q) const {
  if (q.limit < 1 || q.limit > kMaxDeliveryPage) {
    return validation_problem(
        {{"limit", "must be an integer from 1 to " + std::to_string(kMaxDeliveryPage)}});
  }
  const impl& i = *impl_;
  const timestamp now = i.clock();
  const timestamp cutoff = i.retention_cutoff();
  // One more than a page from each source tells whether another page follows.
  const std::size_t want = q.limit + 1;
  std::vector<std::shared_ptr<const delivery>> found;

  const auto wanted = [&q](const delivery& d, timestamp earliest) {
    return d.created_at >= earliest && (!q.since || d.created_at >= *q.since) &&
           (!q.until || d.created_at < *q.until) && (!q.event_type || d.type == *q.event_type);
  };

  // Pending: memory, newest first below the cursor. (Retention never hides pending work.)
  if (q.statuses.allows(delivery_status::pending) || q.statuses.allows_paused()) {
    std::shared_lock lock(i.mutex);
    const auto& index = q.webhook ? i.pending_by_webhook : i.pending_by_project;
    if (const auto it = index.find(q.webhook ? *q.webhook : q.project); it != index.end()) {
      std::size_t taken = 0;
      // Below the cursor and before `until` (ids of earlier seconds; createdAt settles the rest).
      std::optional<object_id> below = q.after;
      if (q.until) {
        const auto bound = object_id::from_binary(first_id_of_second(ceil_seconds(*q.until)));
        if (bound && (!below || *bound < *below)) below = bound;
      }
      it->second.for_each_below(below, [&](const object_id& id) {
        const auto& record = i.pending.at(id).record;
        if (record->project != q.project || !wanted(*record, timestamp{})) return true;
        // Paused (its webhook is inactive) and pending are listed apart.
        if (is_paused(*record) ? !q.statuses.allows_paused()
                               : !q.statuses.allows(delivery_status::pending)) {
          return true;
        }
        found.push_back(record);
        return ++taken < want;
      });
    }
  }

  // Finished: history, bucket by bucket from the newest that can hold a match to the oldest the
  // window keeps, one range scan per bucket and status.
  const timestamp earliest = std::max(cutoff, q.since.value_or(cutoff));
  timestamp latest = q.until.value_or(now);
  if (q.after) latest = std::min(latest, timestamp{std::chrono::seconds{q.after->seconds() + 1}});
  latest = std::min(latest, now);
  const std::uint32_t first_bucket = i.bucket_of(earliest);
  for (const delivery_status s : kFinished) {
    if (!q.statuses.allows(s) || latest < earliest) continue;
    std::size_t taken = 0;
    std::optional<problem> failure;
    for (std::optional<std::uint32_t> bucket = i.bucket_of(latest);
         bucket && *bucket >= first_bucket && taken < want; bucket = i.buckets.previous(*bucket)) {
      const std::string prefix = q.webhook ? by_webhook_prefix(*bucket, q.project, *q.webhook, s)
                                           : finished_prefix(*bucket, q.project, s);
      // Below the cursor: every id of an older bucket is, and the key order is the id order.
      // `until` and `since` (or the retention cutoff) bound the range the same way, to the second
      // (the createdAt check below settles the milliseconds), so a page deep in a long history
      // costs one seek, not a walk over everything newer than it.
      std::string upper = prefix_end(prefix);
      if (q.after) upper = std::min(upper, std::string(prefix).append(q.after->binary()));
      if (q.until) {
        upper =
            std::min(upper, std::string(prefix).append(first_id_of_second(ceil_seconds(*q.until))));
      }
      // From `since` or the retention cutoff, whichever is later, a second early: records
      // written before the history layout took their id a moment before their createdAt, which
      // may have fallen in the next second.
      const std::uint32_t from_second = std::max<std::uint32_t>(unix_seconds(earliest), 1) - 1;
      const std::string lower = std::max(
          std::string(prefix), std::string(prefix).append(first_id_of_second(from_second)));
      auto scanned =
          i.store.scan_range(table::history, lower, upper, scan_order::descending,
                             [&](std::string_view key, std::string_view value) {
                               auto d = decode_delivery(trailing_id(key), value);
                               if (!d) {
                                 failure = read_error(key, d.error().detail);
                                 return false;
                               }
                               if (wanted(*d, earliest)) {
                                 found.push_back(std::make_shared<const delivery>(std::move(*d)));
                                 ++taken;
                               }
                               return taken < want;
                             });
      if (!scanned) return scanned.error();
      if (failure) return *failure;
    }
  }

  // Each source gave its newest `want`: the newest `limit` of all of them are among those. A
  // delivery that finished between the look at memory and the look at history is in both: the
  // finished record, read last, is the one kept (memory is read first for that reason, so that
  // none is missed either).
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    if (a->id != b->id) return a->id > b->id;
    return a->status != delivery_status::pending && b->status == delivery_status::pending;
  });
  found.erase(std::unique(found.begin(), found.end(),
                          [](const auto& a, const auto& b) { return a->id == b->id; }),
              found.end());
  delivery_page page;
  if (found.size() > q.limit) {
    found.resize(q.limit);
    page.next = found.back()->id;
  }
  page.items = std::move(found);
  return page;
}

result<std::optional<event_detail>> delivery_log::find_event(const object_id& project,
                                                             const object_id& id) const {
  const impl& i = *impl_;
  const std::uint32_t bucket = i.buckets.start_of(id.seconds());
  const std::string key = event_key(bucket, project, id);
  auto value = i.store.get(table::history, key);
  if (!value) return value.error();
  if (!*value) return std::optional<event_detail>();
  auto e = decode_event(id.binary(), **value);
  if (!e) return read_error(key, e.error().detail);
  if (e->time < i.retention_cutoff()) return std::optional<event_detail>();

  event_detail out;
  out.deliveries.reserve(e->deliveries.size());
  for (const fanout_entry& f : e->deliveries) {
    event_detail::entry entry{f.delivery, f.webhook, delivery_status::pending};
    if (!i.find_pending(f.delivery)) {
      auto finished = i.read_finished(bucket, project, f.delivery);
      if (!finished) return finished.error();
      if (*finished) {
        entry.status = (*finished)->status;
      } else if (!i.find_pending(f.delivery)) {
        continue;  // neither pending nor in history: erased (or never durable)
      }
    }
    out.deliveries.push_back(entry);
  }
  out.record = std::move(*e);
  return std::optional<event_detail>(std::move(out));
}

}  // namespace hookd
