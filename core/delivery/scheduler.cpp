#include "core/delivery/scheduler.hpp"

#include "core/delivery/delivery.hpp"  // kReason*

#include <algorithm>
#include <cmath>

namespace hookd {

// ---------------------------------------------------------------- decide

attempt_decision decide(const attempt_response& response, std::uint32_t attempt_number,
                        const retry_policy& policy, timestamp now, const random_source& random) {
  std::optional<attempt_outcome> outcome;
  if (response.status_code) outcome = classify(*response.status_code);
  if (outcome == attempt_outcome::success) return attempt_decision::succeeded();
  if (outcome == attempt_outcome::gone) return attempt_decision::failed(kReasonGone);

  const std::optional<std::chrono::milliseconds> jittered =
      policy.delay_after(attempt_number, random);
  if (!jittered) return attempt_decision::failed(kReasonExhausted);
  std::chrono::milliseconds wait = *jittered;
  if (outcome == attempt_outcome::retry_after_honoured && response.retry_after) {
    if (const auto asked = parse_retry_after(*response.retry_after, now)) {
      // step_after is engaged whenever delay_after was.
      wait = clamp_retry_after(*asked, policy.step_after(attempt_number).value_or(*jittered));
    }
  }
  // Saturate instead of overflowing the time point on absurd schedules.
  const auto headroom = timestamp::max() - now;
  return attempt_decision::retry(wait >= headroom ? timestamp::max() : now + wait);
}

// ---------------------------------------------------------------- flow control

std::uint32_t burst_of(std::uint32_t rate) noexcept {
  return std::max<std::uint32_t>(1, rate / 10);
}

bool is_congestion(std::optional<int> status_code, bool timed_out) noexcept {
  if (timed_out) return true;
  if (!status_code) return false;
  const int s = *status_code;
  return s == 429 || s == 502 || s == 503 || s == 504;
}

// ---------------------------------------------------------------- scheduler

namespace {

// max_in_flight_per_organization in force: 0 is a quarter of the global cap, at least 1 (the
// reasons are in scheduler_options); a per-webhook cap of 0 is 1.
scheduler_options resolved(scheduler_options o) {
  if (o.max_in_flight_per_organization == 0) {
    o.max_in_flight_per_organization = std::max<std::size_t>(1, o.max_in_flight / 4);
  }
  o.max_in_flight_per_webhook = std::max<std::size_t>(1, o.max_in_flight_per_webhook);
  return o;
}

}  // namespace

scheduler::scheduler(webhook_lookup lookup, scheduler_options options)
    : lookup_(std::move(lookup)), options_(resolved(options)) {}

void scheduler::set_wake(std::function<void()> wake) {
  std::lock_guard lock(mutex_);
  wake_ = std::move(wake);
}

std::optional<timestamp> scheduler::earliest_ready() const {
  std::size_t total = in_flight_.size();
  if (heads_.empty() || total >= options_.max_in_flight) return std::nullopt;
  return heads_.begin()->first;
}

std::optional<timestamp> scheduler::next_due() const {
  std::lock_guard lock(mutex_);
  std::optional<timestamp> next = earliest_ready();
  if (!held_.empty() && last_take_ && in_flight_.size() < options_.max_in_flight) {
    const timestamp recheck = *last_take_ + options_.held_recheck;
    if (!next || recheck < *next) next = recheck;
  }
  return next;
}

scheduler::webhook_jobs& scheduler::jobs_of(const object_id& webhook) {
  const auto [it, created] = webhooks_.try_emplace(webhook);
  if (created) it->second.limit = options_.max_in_flight_per_webhook;
  return it->second;
}

timestamp scheduler::ready_at(const webhook_jobs& w) const {
  timestamp at = w.queue.begin()->first;
  if (w.paused_until && *w.paused_until > at) at = *w.paused_until;
  if (w.rate && w.tokens < 1.0) {
    // When the bucket holds a whole token again (rounded up to the millisecond).
    const double wait_ms = std::ceil((1.0 - w.tokens) * 1000.0 / *w.rate);
    const timestamp refill =
        w.refilled + std::chrono::milliseconds(static_cast<std::int64_t>(wait_ms));
    if (refill > at) at = refill;
  }
  return at;
}

bool scheduler::flow_at_rest(const webhook_jobs& w) const {
  if (w.limit < options_.max_in_flight_per_webhook) return false;
  if (!w.paused_until && !w.rate) return true;
  if (!last_take_) return false;
  if (w.paused_until && *w.paused_until > *last_take_) return false;
  if (w.rate) {
    // The bucket is full again by the latest time the scheduler has seen.
    const double ms = std::chrono::duration<double, std::milli>(*last_take_ - w.refilled).count();
    if (w.tokens + ms * *w.rate / 1000.0 < burst_of(*w.rate)) return false;
  }
  return true;
}

void scheduler::set_rate(webhook_jobs& w, std::optional<std::uint32_t> rate) {
  if (rate == w.rate) return;
  if (rate) {
    const double burst = burst_of(*rate);
    w.tokens = w.rate ? std::min(w.tokens, burst) : burst;  // a new limit starts full
  }
  w.rate = rate;
}

void scheduler::take_token(webhook_jobs& w, timestamp now) {
  if (!w.rate) return;
  const double ms = std::chrono::duration<double, std::milli>(now - w.refilled).count();
  if (ms > 0) {
    w.tokens = std::min<double>(burst_of(*w.rate), w.tokens + ms * *w.rate / 1000.0);
    w.refilled = now;
  }
  w.tokens -= 1.0;  // may dip below zero by a rounding: the next token comes that much later
}

void scheduler::report(webhook_jobs& w, const in_flight_entry& entry, const sent_report& r) {
  const std::optional<int>& status = r.response.status_code;
  if (is_congestion(status, r.timed_out)) {
    // Once per round: the attempts that were in flight together met the same congestion.
    if (entry.round == w.round) {
      w.limit = std::max<std::size_t>(1, w.limit / 2);
      ++w.round;
      w.successes = 0;
    }
  } else if (status && classify(*status) == attempt_outcome::success) {
    if (w.limit < options_.max_in_flight_per_webhook && ++w.successes >= w.limit) {
      ++w.limit;
      w.successes = 0;
    }
  }
  if (status && classify(*status) == attempt_outcome::retry_after_honoured &&
      r.response.retry_after) {
    if (const auto asked = parse_retry_after(*r.response.retry_after, r.now)) {
      const std::chrono::milliseconds wait = std::min(*asked, options_.max_pause);
      const timestamp until = r.now + wait;
      if (wait.count() > 0 && (!w.paused_until || *w.paused_until < until)) {
        w.paused_until = until;
      }
    }
  }
}

void scheduler::park(webhook_jobs& w, const object_id& delivery) {
  const auto q = queued_.find(delivery);
  if (q == queued_.end() || q->second.parked) return;
  w.queue.erase({q->second.due, delivery});
  q->second.parked = true;
}

void scheduler::settle(webhook_jobs& w, const std::string& key) {
  const auto it = w.lines.find(key);
  if (it == w.lines.end()) return;
  key_line& line = it->second;
  if (line.members.empty()) {
    if (!line.in_flight) w.lines.erase(it);
    return;
  }
  if (line.in_flight) return;
  const object_id first = line.members.begin()->second;
  if (const auto q = queued_.find(first); q != queued_.end() && q->second.parked) {
    q->second.parked = false;
    w.queue.emplace(q->second.due, first);
  }
}

void scheduler::leave_line(webhook_jobs& w, const ordering& order, const object_id& delivery) {
  const auto it = w.lines.find(order.key);
  if (it == w.lines.end()) return;
  it->second.members.erase({order.created, delivery});
  settle(w, order.key);
}

void scheduler::refresh_organization(const object_id& organization) {
  const auto it = organizations_.find(organization);
  if (it == organizations_.end()) return;
  organization_slots& o = it->second;
  if (o.head) {
    heads_.erase(*o.head);
    o.head.reset();
  }
  if (!o.ready.empty() && o.in_flight < options_.max_in_flight_per_organization) {
    o.head = *o.ready.begin();
    heads_.insert(*o.head);
  }
  if (o.ready.empty() && o.in_flight == 0) organizations_.erase(it);
}

void scheduler::refresh(const object_id& webhook) {
  const auto it = webhooks_.find(webhook);
  if (it == webhooks_.end()) return;
  webhook_jobs& w = it->second;
  if (w.head) {
    organizations_[*w.organization].ready.erase({*w.head, webhook});
    w.head.reset();
  }
  if (!w.organization && !w.held && !w.queue.empty()) {
    // Queued for the first time since it had nothing queued or in flight: its organization.
    const webhook_info info = lookup_(webhook);
    if (info.state == webhook_state::missing) {
      w.held = true;  // the next take_due drops its jobs
    } else {
      w.organization = info.organization;
      set_rate(w, info.rate_limit);
    }
  }
  const std::optional<object_id> organization = w.organization;
  if (w.held && !w.queue.empty()) {
    held_.insert(webhook);
  } else {
    held_.erase(webhook);
    w.held = false;  // nothing queued: nothing to hold; it is looked up afresh next time
    if (!w.queue.empty() && w.in_flight < w.limit) {
      w.head = ready_at(w);
      organizations_[*organization].ready.emplace(*w.head, webhook);
    }
    if (w.queue.empty() && w.in_flight == 0 && w.lines.empty() && flow_at_rest(w)) {
      webhooks_.erase(it);
    }
  }
  if (organization) refresh_organization(*organization);
}

void scheduler::enqueue(const object_id& delivery, const object_id& webhook, timestamp due,
                        std::optional<ordering> order) {
  if (const auto it = queued_.find(delivery); it != queued_.end()) {
    // Moved: it keeps its place in its line (a queued delivery's key does not change).
    const object_id old_webhook = it->second.webhook;
    webhook_jobs& old = jobs_of(old_webhook);
    if (!it->second.parked) old.queue.erase({it->second.due, delivery});
    std::optional<ordering> kept = std::move(it->second.order);
    queued_.erase(it);
    if (old_webhook != webhook) {
      if (kept) leave_line(old, *kept, delivery);
      refresh(old_webhook);
    } else if (kept) {
      order = std::move(kept);
    }
  }
  webhook_jobs& w = jobs_of(webhook);
  queued_entry q{webhook, due, order, false};
  if (!order) {
    w.queue.emplace_hint(w.queue.end(), due, delivery);  // new jobs are mostly the latest due
    queued_[delivery] = std::move(q);
  } else {
    key_line& line = w.lines[order->key];
    const line_member member{order->created, delivery};
    // An earlier delivery of the key (older than the line's first, which is queued but not yet
    // taken) goes first: the one it overtakes steps back.
    if (!line.in_flight && !line.members.empty() && member < *line.members.begin()) {
      park(w, line.members.begin()->second);
    }
    line.members.insert(member);
    q.parked = true;
    queued_[delivery] = std::move(q);
    settle(w, order->key);
  }
  refresh(webhook);
}

void scheduler::schedule(const object_id& delivery, const object_id& webhook, timestamp due,
                         const std::optional<ordering>& order, bool even_if_inactive) {
  std::function<void()> wake;
  {
    std::lock_guard lock(mutex_);
    if (even_if_inactive) {
      unheld_.insert(delivery);
      wake = wake_;  // its webhook may be held: the loop would not look before its recheck
    }
    if (const auto it = in_flight_.find(delivery); it != in_flight_.end()) {
      it->second.again = due;
      return;
    }
    const std::optional<timestamp> before = earliest_ready();
    enqueue(delivery, webhook, due, order);
    const std::optional<timestamp> after = earliest_ready();
    if (after && (!before || *after < *before)) wake = wake_;
  }
  if (wake) wake();
}

bool scheduler::cancel(const object_id& delivery) {
  std::lock_guard lock(mutex_);
  unheld_.erase(delivery);
  if (const auto it = in_flight_.find(delivery); it != in_flight_.end()) {
    it->second.again.reset();
    return true;
  }
  const auto it = queued_.find(delivery);
  if (it == queued_.end()) return false;
  const object_id webhook = it->second.webhook;
  webhook_jobs& w = jobs_of(webhook);
  if (!it->second.parked) w.queue.erase({it->second.due, delivery});
  const std::optional<ordering> order = std::move(it->second.order);
  queued_.erase(it);
  if (order) leave_line(w, *order, delivery);
  refresh(webhook);
  return true;
}

void scheduler::drop_all(const object_id& webhook, std::vector<scheduled_job>& into) {
  const auto it = webhooks_.find(webhook);
  if (it == webhooks_.end()) return;
  webhook_jobs& w = it->second;
  for (const auto& [due, delivery] : w.queue) into.push_back(scheduled_job{delivery, webhook, due});
  w.queue.clear();
  for (auto line = w.lines.begin(); line != w.lines.end();) {
    for (auto m = line->second.members.begin(); m != line->second.members.end();) {
      const object_id delivery = m->second;
      if (in_flight_.contains(delivery)) {
        ++m;
        continue;
      }
      if (const auto q = queued_.find(delivery); q != queued_.end() && q->second.parked) {
        into.push_back(scheduled_job{delivery, webhook, q->second.due});
      }
      m = line->second.members.erase(m);
    }
    if (line->second.members.empty() && !line->second.in_flight) {
      line = w.lines.erase(line);
    } else {
      ++line;
    }
  }
  for (const scheduled_job& job : into) {
    if (job.webhook != webhook) continue;
    queued_.erase(job.delivery);
    unheld_.erase(job.delivery);
  }
  w.held = false;
  // Its flow control state goes with it: a webhook that is gone has nothing to slow down.
  w.limit = options_.max_in_flight_per_webhook;
  w.paused_until.reset();
  w.rate.reset();
  refresh(webhook);
}

due_jobs scheduler::take_due(timestamp now, std::size_t max) {
  due_jobs out;
  std::lock_guard lock(mutex_);
  last_take_ = now;

  // Held webhooks first: those active again rejoin their organization, those deleted lose their
  // jobs.
  const std::vector<object_id> held(held_.begin(), held_.end());
  for (const object_id& webhook : held) {
    const webhook_info info = lookup_(webhook);
    switch (info.state) {
      case webhook_state::active: {
        webhook_jobs& w = jobs_of(webhook);
        w.held = false;
        w.organization = info.organization;  // unknown yet when it was missing at first
        set_rate(w, info.rate_limit);
        refresh(webhook);
        break;
      }
      case webhook_state::missing:
        drop_all(webhook, out.dropped);
        break;
      case webhook_state::inactive:
        break;
    }
  }

  while (out.ready.size() < max && in_flight_.size() < options_.max_in_flight && !heads_.empty() &&
         heads_.begin()->first <= now) {
    const object_id webhook = heads_.begin()->second;
    const webhook_info info = lookup_(webhook);
    switch (info.state) {
      case webhook_state::missing:
        drop_all(webhook, out.dropped);
        continue;
      case webhook_state::inactive:
        jobs_of(webhook).held = true;
        refresh(webhook);
        continue;
      case webhook_state::active:
        break;
    }
    webhook_jobs& w = jobs_of(webhook);
    if (info.rate_limit != w.rate) {
      // Its rate limit was changed: it may have to wait now.
      set_rate(w, info.rate_limit);
      if (ready_at(w) > now) {
        refresh(webhook);
        continue;
      }
    }
    const object_id organization = *w.organization;  // it is in heads_ under it
    const auto [due, delivery] = *w.queue.begin();
    w.queue.erase(w.queue.begin());
    ++w.in_flight;
    ++organizations_[organization].in_flight;
    take_token(w, now);
    in_flight_entry entry{webhook, organization, std::nullopt};
    entry.round = w.round;
    if (const auto q = queued_.find(delivery); q != queued_.end()) {
      entry.order = std::move(q->second.order);
      queued_.erase(q);
    }
    if (entry.order) w.lines[entry.order->key].in_flight = true;
    in_flight_[delivery] = std::move(entry);
    out.ready.push_back(scheduled_job{delivery, webhook, due});
    refresh(webhook);
  }
  take_unheld(now, max, out);
  return out;
}

void scheduler::take_unheld(timestamp now, std::size_t max, due_jobs& out) {
  std::vector<object_id> handed;
  for (const object_id& delivery : unheld_) {
    if (out.ready.size() >= max || in_flight_.size() >= options_.max_in_flight) break;
    const auto queued = queued_.find(delivery);
    if (queued == queued_.end() || queued->second.due > now) continue;
    const object_id webhook = queued->second.webhook;
    webhook_jobs& w = webhooks_[webhook];
    // Only a held webhook's: an active one's jobs go their usual way, in order.
    if (!w.held || !w.organization) continue;
    const timestamp due = queued->second.due;
    w.queue.erase({due, delivery});
    ++w.in_flight;
    ++organizations_[*w.organization].in_flight;
    in_flight_entry entry{webhook, *w.organization, std::nullopt};
    entry.round = w.round;
    in_flight_[delivery] = std::move(entry);
    queued_.erase(queued);
    out.ready.push_back(scheduled_job{delivery, webhook, due});
    handed.push_back(webhook);
  }
  for (const object_id& webhook : handed) refresh(webhook);
}

void scheduler::release_slots(in_flight_entry& entry) {
  if (entry.sent) return;
  entry.sent = true;
  if (const auto w = webhooks_.find(entry.webhook); w != webhooks_.end() && w->second.in_flight) {
    --w->second.in_flight;
  }
  if (const auto o = organizations_.find(entry.organization);
      o != organizations_.end() && o->second.in_flight) {
    --o->second.in_flight;
  }
}

void scheduler::sent(const object_id& delivery) {
  end_exchange(delivery, nullptr);
}

void scheduler::sent(const object_id& delivery, const sent_report& report) {
  end_exchange(delivery, &report);
}

void scheduler::end_exchange(const object_id& delivery, const sent_report* outcome) {
  std::function<void()> wake;
  {
    std::lock_guard lock(mutex_);
    const auto it = in_flight_.find(delivery);
    if (it == in_flight_.end() || it->second.sent) return;
    const std::optional<timestamp> before = earliest_ready();
    release_slots(it->second);
    ++recording_;
    if (const auto w = webhooks_.find(it->second.webhook); outcome && w != webhooks_.end()) {
      report(w->second, it->second, *outcome);
    }
    refresh(it->second.webhook);  // and its organization, under which it is in flight
    const std::optional<timestamp> after = earliest_ready();
    if (after && (!before || *after < *before)) wake = wake_;
  }
  if (wake) wake();
}

void scheduler::done(const object_id& delivery) {
  std::function<void()> wake;
  {
    std::lock_guard lock(mutex_);
    const auto it = in_flight_.find(delivery);
    if (it == in_flight_.end()) return;
    const std::optional<timestamp> before = earliest_ready();
    in_flight_entry entry = std::move(it->second);
    in_flight_.erase(it);
    if (entry.sent) --recording_;
    release_slots(entry);
    if (entry.order) {
      if (const auto w = webhooks_.find(entry.webhook); w != webhooks_.end()) {
        if (const auto line = w->second.lines.find(entry.order->key);
            line != w->second.lines.end()) {
          line->second.in_flight = false;
        }
        // Finished for good unless queued again: the next of its line may go.
        if (!entry.again) leave_line(w->second, *entry.order, delivery);
      }
    }
    if (entry.again) {
      enqueue(delivery, entry.webhook, *entry.again, std::move(entry.order));
    } else {
      unheld_.erase(delivery);  // it leaves the scheduler
      refresh(entry.webhook);
    }
    const std::optional<timestamp> after = earliest_ready();
    if (after && (!before || *after < *before)) wake = wake_;
  }
  if (wake) wake();
}

scheduler_counts scheduler::counts() const {
  std::lock_guard lock(mutex_);
  scheduler_counts c;
  c.queued = queued_.size();
  c.in_flight = in_flight_.size();
  c.recording = recording_;
  for (const object_id& webhook : held_) {
    if (const auto it = webhooks_.find(webhook); it != webhooks_.end()) {
      c.held += it->second.queue.size();
    }
  }
  for (const auto& [organization, o] : organizations_) {
    if (o.in_flight >= options_.max_in_flight_per_organization) ++c.organizations_at_cap;
  }
  return c;
}

webhook_flow scheduler::flow(const object_id& webhook) const {
  std::lock_guard lock(mutex_);
  webhook_flow f;
  f.limit = options_.max_in_flight_per_webhook;
  if (const auto it = webhooks_.find(webhook); it != webhooks_.end()) {
    f.limit = it->second.limit;
    f.in_flight = it->second.in_flight;
    f.paused_until = it->second.paused_until;
  }
  return f;
}

}  // namespace hookd
