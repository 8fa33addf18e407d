#include "core/delivery/endpoint_health.hpp"

#include "core/delivery/delivery_engine.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <bit>
#include <cmath>

namespace hookd {

namespace json = boost::json;

namespace {

std::int64_t to_ms(timestamp t) {
  return t.time_since_epoch().count();
}

std::optional<timestamp> time_field(const json::object& o, std::string_view name, bool& ok) {
  const json::value* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_int64()) {
    ok = false;
    return std::nullopt;
  }
  return timestamp{std::chrono::milliseconds{v->as_int64()}};
}

json::value time_or_null(const std::optional<timestamp>& t) {
  return t ? json::value(format_rfc3339(*t)) : json::value(nullptr);
}

// A slot's minute: whole minutes since the epoch (before it: -1, never a live slot).
std::int64_t minute_of(timestamp t) {
  return std::max<std::int64_t>(-1, to_ms(t) / 60'000);
}

}  // namespace

// ---------------------------------------------------------------- streak record

std::string failure_streak_key(const object_id& webhook) {
  std::string key(kFailureStreakPrefix);
  key.append(webhook.binary());
  return key;
}

std::string encode(const failure_streak& s) {
  json::object o;
  o["v"] = 1;
  o["failures"] = s.failures;
  if (s.first_failure_at) o["firstFailureAt"] = to_ms(*s.first_failure_at);
  if (s.last_failure_at) o["lastFailureAt"] = to_ms(*s.last_failure_at);
  if (s.last_success_at) o["lastSuccessAt"] = to_ms(*s.last_success_at);
  return json::serialize(o);
}

result<failure_streak> decode_failure_streak(std::string_view value) {
  boost::system::error_code ec;
  const json::value v = json::parse(value, ec);
  if (ec || !v.is_object()) {
    return make_problem(error_kind::internal, "a failure streak that is not a JSON object");
  }
  const json::object& o = v.as_object();
  failure_streak s;
  bool ok = true;
  if (const json::value* n = o.if_contains("failures"); n && n->is_int64() && n->as_int64() >= 0) {
    s.failures = static_cast<std::uint64_t>(n->as_int64());
  } else if (n && n->is_uint64()) {
    s.failures = n->as_uint64();
  } else {
    ok = false;
  }
  s.first_failure_at = time_field(o, "firstFailureAt", ok);
  s.last_failure_at = time_field(o, "lastFailureAt", ok);
  s.last_success_at = time_field(o, "lastSuccessAt", ok);
  if (!ok || (s.failures > 0) != s.first_failure_at.has_value()) {
    return make_problem(error_kind::internal, "a failure streak with a missing or bad field");
  }
  return s;
}

bool should_disable(const failure_streak& s, timestamp now, const health_options& o) noexcept {
  return s.failures >= o.min_failures && s.first_failure_at &&
         now - *s.first_failure_at >= o.disable_after;
}

// ---------------------------------------------------------------- hour_window

std::size_t hour_window::bucket_of(std::uint64_t ms) noexcept {
  if (ms < 4) return static_cast<std::size_t>(ms);
  const auto power = static_cast<unsigned>(std::bit_width(ms)) - 1;  // >= 2
  const std::size_t index = 4 + std::size_t{power - 2} * 4 + ((ms >> (power - 2)) & 3u);
  return std::min(index, kLatencyBuckets - 1);
}

std::uint64_t hour_window::highest_in_bucket(std::size_t bucket) noexcept {
  if (bucket < 4) return bucket;
  const std::size_t power = (bucket - 4) / 4 + 2;
  const std::uint64_t sub = (bucket - 4) % 4;
  return ((4 + sub + 1) << (power - 2)) - 1;
}

void hour_window::record(timestamp at, bool succeeded,
                         std::optional<std::chrono::milliseconds> latency) {
  const std::int64_t minute = minute_of(at);
  if (minute < 0) return;
  slot& s = slots_[static_cast<std::size_t>(minute) % kSlots];
  if (s.minute != minute) {
    if (s.minute > minute) return;  // an older minute than the slot's: out of the window already
    s = slot{};
    s.minute = minute;
  }
  ++(succeeded ? s.successes : s.failures);
  if (!latency) return;
  const auto ms = static_cast<std::uint64_t>(std::max<std::int64_t>(0, latency->count()));
  std::uint16_t& count = s.latency[bucket_of(ms)];
  if (count == UINT16_MAX) {
    // Keep the shape, lose a little resolution: every bucket of the slot halves (a non-zero one
    // stays non-zero).
    for (std::uint16_t& c : s.latency) c = static_cast<std::uint16_t>((c + 1) / 2);
  }
  ++count;
}

namespace {

// The latency below which a share q of a histogram's samples lie (`samples` > 0).
std::uint64_t at_rank(const std::array<std::uint64_t, hour_window::kLatencyBuckets>& latency,
                      std::uint64_t samples, double q) {
  const auto rank = std::clamp<std::uint64_t>(
      static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(samples))), 1, samples);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < hour_window::kLatencyBuckets; ++i) {
    seen += latency[i];
    if (seen >= rank) return hour_window::highest_in_bucket(i);
  }
  return hour_window::highest_in_bucket(hour_window::kLatencyBuckets - 1);
}

}  // namespace

window_summary hour_window::summary(timestamp now) const {
  window_summary out;
  const std::int64_t current = minute_of(now);
  std::array<std::uint64_t, kLatencyBuckets> latency{};
  std::uint64_t samples = 0;
  for (const slot& s : slots_) {
    if (s.minute < 0 || s.minute > current || current - s.minute >= std::int64_t{kSlots}) continue;
    if (s.successes + s.failures == 0) continue;
    out.successes += s.successes;
    out.failures += s.failures;
    std::array<std::uint64_t, kLatencyBuckets> minute_latency{};
    std::uint64_t minute_samples = 0;
    for (std::size_t i = 0; i < kLatencyBuckets; ++i) {
      minute_latency[i] = s.latency[i];
      minute_samples += s.latency[i];
      latency[i] += s.latency[i];
    }
    samples += minute_samples;
    minute_summary m;
    m.at = timestamp(std::chrono::minutes(s.minute));
    m.successes = s.successes;
    m.failures = s.failures;
    if (minute_samples > 0) m.p50_ms = at_rank(minute_latency, minute_samples, 0.5);
    out.minutes.push_back(m);
  }
  std::sort(out.minutes.begin(), out.minutes.end(),
            [](const minute_summary& a, const minute_summary& b) { return a.at < b.at; });
  if (samples == 0) return out;
  out.p50_ms = at_rank(latency, samples, 0.5);
  out.p99_ms = at_rank(latency, samples, 0.99);
  return out;
}

// ---------------------------------------------------------------- health_tracker

health_tracker::health_tracker(health_options options) : options_(options) {}

void health_tracker::restore(const object_id& webhook, failure_streak s) {
  std::lock_guard lock(mutex_);
  state& st = webhooks_[webhook];
  st.streak = std::move(s);
  st.stored = true;
}

health_step health_tracker::record(const object_id& webhook, const attempt_report& r) {
  std::lock_guard lock(mutex_);
  state& st = webhooks_[webhook];
  if (!st.window) st.window = std::make_unique<hour_window>();
  std::optional<std::chrono::milliseconds> latency;
  if (r.status_code) latency = r.duration;
  st.window->record(r.at, r.succeeded, latency);

  webhook_series& c = st.counters;
  ++(r.succeeded ? c.succeeded : c.failed);
  const double seconds = static_cast<double>(r.duration.count()) / 1000.0;
  const auto bound =
      std::lower_bound(kWebhookLatencyBounds.begin(), kWebhookLatencyBounds.end(), seconds);
  ++c.latency[static_cast<std::size_t>(bound - kWebhookLatencyBounds.begin())];
  c.latency_ms_sum += static_cast<std::uint64_t>(std::max<std::int64_t>(0, r.duration.count()));

  failure_streak& s = st.streak;
  bool boundary = false;  // the streak starts, ends or crosses min_failures
  health_step step;
  if (r.succeeded) {
    boundary = s.failures > 0;
    s.failures = 0;
    s.first_failure_at.reset();
    s.last_success_at = r.at;
  } else {
    if (s.failures == 0) {
      boundary = true;
      s.first_failure_at = r.at;
    }
    ++s.failures;
    boundary = boundary || s.failures == options_.min_failures;
    s.last_failure_at = r.at;
    if (r.status_code == 410) {
      step.disable = kDisabledGone;
    } else if (should_disable(s, r.at, options_)) {
      step.disable = kDisabledFailing;
    }
  }
  if (boundary || step.disable || !st.written_at ||
      r.at - *st.written_at >= options_.persist_every) {
    step.persist = s;
    st.written_at = r.at;
    st.stored = true;
  }
  return step;
}

bool health_tracker::reset(const object_id& webhook) {
  std::lock_guard lock(mutex_);
  const auto it = webhooks_.find(webhook);
  if (it == webhooks_.end()) return false;
  state& st = it->second;
  // The last success is history worth keeping; the failures are forgiven.
  st.streak.failures = 0;
  st.streak.first_failure_at.reset();
  st.streak.last_failure_at.reset();
  st.written_at.reset();
  const bool stored = st.stored;
  st.stored = false;
  return stored;
}

void health_tracker::forget(const object_id& webhook) {
  std::lock_guard lock(mutex_);
  webhooks_.erase(webhook);
}

health_tracker::snapshot health_tracker::get(const object_id& webhook, timestamp now) const {
  std::lock_guard lock(mutex_);
  snapshot out;
  if (const auto it = webhooks_.find(webhook); it != webhooks_.end()) {
    out.streak = it->second.streak;
    if (it->second.window) out.hour = it->second.window->summary(now);
  }
  return out;
}

std::vector<std::pair<object_id, webhook_series>> health_tracker::series() const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<object_id, webhook_series>> out;
  out.reserve(webhooks_.size());
  for (const auto& [id, st] : webhooks_) {
    if (st.window) out.emplace_back(id, st.counters);  // only webhooks attempted since the start
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

std::size_t health_tracker::tracked() const {
  std::lock_guard lock(mutex_);
  return webhooks_.size();
}

std::size_t health_tracker::bytes_per_webhook() noexcept {
  // The entry (key, state and the node's next pointer and cached hash), its bucket pointer, the
  // window.
  return sizeof(std::pair<const object_id, state>) + 3 * sizeof(void*) + sizeof(hour_window);
}

// ---------------------------------------------------------------- report

std::string_view health_state(bool active, const failure_streak& s, const window_summary& hour) {
  if (!active) return "disabled";
  if (s.failures > 0 && hour.successes == 0) return "failing";
  if (s.failures > 0 || hour.failures > 0) return "degraded";
  return "healthy";
}

json::object to_json(const health_report& r) {
  json::object o;
  o["state"] = r.state;
  o["lastSuccessAt"] = time_or_null(r.streak.last_success_at);
  o["lastFailureAt"] = time_or_null(r.streak.last_failure_at);
  o["consecutiveFailures"] = r.streak.failures;
  o["pending"] = r.pending;
  o["paused"] = r.paused;
  o["inFlight"] = r.in_flight;
  o["concurrency"] = r.concurrency;
  const std::uint64_t attempts = r.hour.successes + r.hour.failures;
  o["successRate1h"] =
      attempts == 0
          ? json::value(nullptr)
          : json::value(static_cast<double>(r.hour.successes) / static_cast<double>(attempts));
  o["latencyP50Ms1h"] = r.hour.p50_ms ? json::value(*r.hour.p50_ms) : json::value(nullptr);
  o["latencyP99Ms1h"] = r.hour.p99_ms ? json::value(*r.hour.p99_ms) : json::value(nullptr);
  json::array minutes;
  minutes.reserve(r.hour.minutes.size());
  for (const minute_summary& m : r.hour.minutes) {
    json::object one;
    one["at"] = format_rfc3339(m.at);
    one["successes"] = m.successes;
    one["failures"] = m.failures;
    one["latencyP50Ms"] = m.p50_ms ? json::value(*m.p50_ms) : json::value(nullptr);
    minutes.push_back(std::move(one));
  }
  o["minutes1h"] = std::move(minutes);
  return o;
}

// ---------------------------------------------------------------- endpoint_health

endpoint_health::endpoint_health(catalog& cat, delivery_engine& log, health_options options)
    : cat_(cat), log_(log), tracker_(options) {}

result<std::size_t> endpoint_health::load(storage& store) {
  std::size_t kept = 0;
  write_batch orphans;
  std::optional<problem> failure;
  auto scanned = store.scan(
      table::meta, kFailureStreakPrefix, [&](std::string_view key, std::string_view value) {
        const auto id = object_id::from_binary(key.substr(kFailureStreakPrefix.size()));
        if (!id || key.size() != kFailureStreakPrefix.size() + object_id::kSize) {
          failure = make_problem(error_kind::internal,
                                 "meta record " + hex_encode(key) + ": not a failure streak key");
          return false;
        }
        if (!cat_.find_webhook(*id)) {
          orphans.erase(table::meta, std::string(key));  // its webhook was deleted
          return true;
        }
        auto s = decode_failure_streak(value);
        if (!s) {
          failure = make_problem(error_kind::internal,
                                 "meta record " + hex_encode(key) + ": " + s.error().detail);
          return false;
        }
        tracker_.restore(*id, std::move(*s));
        ++kept;
        return true;
      });
  if (!scanned) return scanned.error();
  if (failure) return *failure;
  if (!orphans.empty()) {
    if (auto written = store.write(orphans); !written) return written.error();
  }
  return kept;
}

void endpoint_health::save(const object_id& webhook, std::optional<std::string> value) {
  // Best effort: a streak record that fails to be written is written with a later attempt (or the
  // streak restarts from what the disk has, which only delays an auto-disable).
  log_.write_meta(failure_streak_key(webhook), std::move(value), [](result<void>) {});
}

void endpoint_health::attempted(const webhook& hook, const attempt_report& r) {
  const health_step step = tracker_.record(hook.id, r);
  if (step.persist) save(hook.id, encode(*step.persist));
  if (step.disable) disable(hook, *step.disable, r.at);
}

bool endpoint_health::disabling(const object_id& webhook) const {
  std::lock_guard lock(disabling_mutex_);
  return disabling_.contains(webhook);
}

void endpoint_health::disable(const webhook& hook, std::string_view reason, timestamp at) {
  if (!hook.active) return;
  {
    std::lock_guard lock(disabling_mutex_);
    ++disabling_[hook.id];
  }
  delivery_engine* log = &log_;
  cat_.disable_webhook(
      hook.id, std::string(reason), at,
      [this, log, org = hook.organization, project = hook.project, id = hook.id,
       why = std::string(reason)](result<std::shared_ptr<const webhook>> changed) {
        {
          std::lock_guard lock(disabling_mutex_);
          if (const auto it = disabling_.find(id); it != disabling_.end() && --it->second == 0) {
            disabling_.erase(it);
          }
        }
        // Null: it was inactive already (by hand, or another attempt disabled it first).
        if (!changed || !*changed) return;
        ingest_request in;
        in.organization = org;
        in.project = project;
        in.type = std::string(kWebhookDisabledEvent);
        in.data = json::serialize(json::object{{"webhookId", id.to_string()}, {"reason", why}});
        log->ingest(std::move(in), [](result<ingest_result>) {});
      });
}

void endpoint_health::reactivated(const object_id& webhook) {
  if (tracker_.reset(webhook)) save(webhook, std::nullopt);
}

void endpoint_health::deleted(const object_id& webhook) {
  tracker_.forget(webhook);
  save(webhook, std::nullopt);
}

health_report endpoint_health::report(const webhook& hook) const {
  const timestamp now = log_.now();
  const health_tracker::snapshot snap = tracker_.get(hook.id, now);
  health_report r;
  r.streak = snap.streak;
  r.hour = snap.hour;
  r.state = health_state(hook.active, r.streak, r.hour);
  const std::size_t pending = log_.pending_count(hook.id);
  (hook.active ? r.pending : r.paused) = pending;
  const webhook_flow flow = log_.jobs().flow(hook.id);
  r.in_flight = flow.in_flight;
  r.concurrency = flow.limit;
  return r;
}

}  // namespace hookd
