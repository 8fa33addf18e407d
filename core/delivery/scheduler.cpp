#include "core/delivery/scheduler.hpp"

#include "core/delivery/delivery.hpp"  // kReason*

#include <algorithm>

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

// ---------------------------------------------------------------- scheduler

namespace {

// max_in_flight_per_organization in force: 0 is a quarter of the global cap, at least 1 (the
// reasons are in scheduler_options).
scheduler_options resolved(scheduler_options o) {
  if (o.max_in_flight_per_organization == 0) {
    o.max_in_flight_per_organization = std::max<std::size_t>(1, o.max_in_flight / 4);
  }
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
    }
  }
  const std::optional<object_id> organization = w.organization;
  if (w.held && !w.queue.empty()) {
    held_.insert(webhook);
  } else {
    held_.erase(webhook);
    w.held = false;  // nothing queued: nothing to hold; it is looked up afresh next time
    if (!w.queue.empty() && w.in_flight < options_.max_in_flight_per_webhook) {
      w.head = w.queue.begin()->first;
      organizations_[*organization].ready.emplace(*w.head, webhook);
    }
    if (w.queue.empty() && w.in_flight == 0) webhooks_.erase(it);
  }
  if (organization) refresh_organization(*organization);
}

void scheduler::enqueue(const object_id& delivery, const object_id& webhook, timestamp due) {
  if (const auto it = queued_.find(delivery); it != queued_.end()) {
    const object_id old_webhook = it->second.webhook;
    webhooks_[old_webhook].queue.erase({it->second.due, delivery});
    queued_.erase(it);
    if (old_webhook != webhook) refresh(old_webhook);
  }
  webhooks_[webhook].queue.emplace(due, delivery);
  queued_[delivery] = queued_entry{webhook, due};
  refresh(webhook);
}

void scheduler::schedule(const object_id& delivery, const object_id& webhook, timestamp due,
                         bool even_if_inactive) {
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
    enqueue(delivery, webhook, due);
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
  webhooks_[webhook].queue.erase({it->second.due, delivery});
  queued_.erase(it);
  refresh(webhook);
  return true;
}

void scheduler::drop_all(const object_id& webhook, std::vector<scheduled_job>& into) {
  const auto it = webhooks_.find(webhook);
  if (it == webhooks_.end()) return;
  for (const auto& [due, delivery] : it->second.queue) {
    into.push_back(scheduled_job{delivery, webhook, due});
    queued_.erase(delivery);
    unheld_.erase(delivery);
  }
  it->second.queue.clear();
  it->second.held = false;
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
        webhook_jobs& w = webhooks_[webhook];
        w.held = false;
        w.organization = info.organization;  // unknown yet when it was missing at first
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
    switch (lookup_(webhook).state) {
      case webhook_state::missing:
        drop_all(webhook, out.dropped);
        continue;
      case webhook_state::inactive:
        webhooks_[webhook].held = true;
        refresh(webhook);
        continue;
      case webhook_state::active:
        break;
    }
    webhook_jobs& w = webhooks_[webhook];
    const object_id organization = *w.organization;  // it is in heads_ under it
    const auto [due, delivery] = *w.queue.begin();
    w.queue.erase(w.queue.begin());
    ++w.in_flight;
    ++organizations_[organization].in_flight;
    queued_.erase(delivery);
    in_flight_[delivery] = in_flight_entry{webhook, organization, std::nullopt};
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
    in_flight_[delivery] = in_flight_entry{webhook, *w.organization, std::nullopt};
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
  std::function<void()> wake;
  {
    std::lock_guard lock(mutex_);
    const auto it = in_flight_.find(delivery);
    if (it == in_flight_.end() || it->second.sent) return;
    const std::optional<timestamp> before = earliest_ready();
    release_slots(it->second);
    ++recording_;
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
    in_flight_entry entry = it->second;
    in_flight_.erase(it);
    if (entry.sent) --recording_;
    release_slots(entry);
    if (entry.again) {
      enqueue(delivery, entry.webhook, *entry.again);
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

}  // namespace hookd
