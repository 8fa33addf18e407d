#pragma once
// The delivery scheduler: which pending deliveries a dispatcher should attempt now, and what the
// outcome of an attempt means for the delivery. No I/O, no threads of its own, no clock of its
// own: every decision takes `now` from the caller, so tests drive it with a fake clock.
//
// How a dispatcher drives it:
//   loop:
//     wait until next_due() (or until the wake callback fires, or a completion calls done())
//     auto batch = take_due(now, n)            // jobs to attempt, each holding an in-flight slot
//     for each batch.dropped job: its webhook is gone; cancel the delivery (delivery_log)
//     for each batch.ready job: attempt it; sent(); decide(); delivery_log::record_attempt(...)
//   sent() frees the job's per-webhook and per-organization slots as soon as the exchange with the
//   receiver is over, so the next job of that webhook goes out while this attempt's record waits
//   for its fsync;
//   record_attempt releases the job (done) and re-queues it when it is to be retried.

#include "core/common/clock.hpp"
#include "core/common/object_id.hpp"
#include "core/delivery/retry_policy.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hookd {

// ---------------------------------------------------------------- decide

// What one attempt produced, as far as the delivery's fate is concerned.
struct attempt_response {
  std::optional<int> status_code;  // nullopt: no response (refused, reset, timeout, DNS, TLS...)
  std::optional<std::string> retry_after;  // the Retry-After header, when the response had one
};

enum class decision_kind { succeeded, retry, failed };

struct attempt_decision {
  decision_kind kind = decision_kind::retry;
  std::optional<timestamp> retry_at;  // engaged exactly when kind == retry
  std::optional<std::string> reason;  // engaged exactly when kind == failed (kReason* strings)

  static attempt_decision succeeded() { return {decision_kind::succeeded, std::nullopt, {}}; }
  static attempt_decision retry(timestamp at) { return {decision_kind::retry, at, {}}; }
  static attempt_decision failed(std::string_view why) {
    return {decision_kind::failed, std::nullopt, std::string(why)};
  }
};

// The fate of a delivery after attempt number `attempt_number` (1-based) produced `response`:
// - 2xx: succeeded;
// - 410: failed "410 Gone", at once, whatever remains of the schedule;
// - anything else (no response, 3xx since redirects are not followed, 4xx, 5xx): retried after
//   policy.delay_after(attempt_number, random); for 429 and 503 a parseable Retry-After replaces
//   the jittered wait, clamped to [step, 2 × step] (clamp_retry_after);
// - when attempt_number was the last one the schedule allows: failed "retries exhausted".
// Pure: same inputs, same decision.
[[nodiscard]] attempt_decision decide(const attempt_response& response,
                                      std::uint32_t attempt_number, const retry_policy& policy,
                                      timestamp now, const random_source& random = uniform_random);

// ---------------------------------------------------------------- scheduler

struct scheduler_options {
  // Attempts in flight at once, over all webhooks (--max-inflight-deliveries), from take_due to
  // done(): being sent or being recorded. Default 256: enough to keep many slow receivers busy
  // without holding thousands of sockets and buffers.
  std::size_t max_in_flight = 256;
  // Attempts in flight at once to one webhook (--max-inflight-per-webhook), from take_due to sent()
  // (or done(), whichever comes first): requests the receiver has open at once. Default 4: a
  // receiver is not flooded by a backlog, and one slow receiver cannot take the global slots from
  // others.
  std::size_t max_in_flight_per_webhook = 4;
  // Attempts in flight at once to all the webhooks of one organization
  // (--max-inflight-per-organization), counted like the per-webhook cap: from take_due to sent()
  // or done(). Without it, one tenant's webhooks at receivers that stall every request for the
  // whole delivery timeout take every global slot, and all other organizations wait. Default 0:
  // a quarter of max_in_flight (64 of 256), at least 1. A stalled tenant leaves three quarters of
  // the slots to everyone else, and even three stalled tenants leave a quarter. An installation
  // with a single organization should raise it to max_in_flight (docs/operations.md, "Limits
  // between tenants"). options() reports the value in force.
  std::size_t max_in_flight_per_organization = 0;
  // While jobs are held for an inactive webhook, next_due() asks to be polled at least this often
  // so that they come out soon after the webhook is activated again. Default 1 s.
  std::chrono::milliseconds held_recheck{1000};
};

enum class webhook_state { active, inactive, missing };

// What the scheduler needs to know of a webhook. A webhook's organization never changes, so the
// scheduler keeps it while the webhook has jobs queued or in flight.
struct webhook_info {
  webhook_state state = webhook_state::missing;
  object_id organization;  // meaningful unless missing
};

// Looks a webhook up (e.g. in the catalog). Called with the scheduler's lock held, so it must not
// call back into the scheduler; it should be a quick in-memory lookup.
using webhook_lookup = std::function<webhook_info(const object_id& webhook)>;

struct scheduled_job {
  object_id delivery;
  object_id webhook;
  timestamp due{};
  friend bool operator==(const scheduled_job&, const scheduled_job&) = default;
};

struct due_jobs {
  std::vector<scheduled_job> ready;    // attempt these; each holds an in-flight slot until done()
  std::vector<scheduled_job> dropped;  // their webhook no longer exists; no longer scheduled
};

struct scheduler_counts {
  std::size_t queued = 0;                // waiting for their time or a slot (held ones included)
  std::size_t in_flight = 0;             // taken and not yet done() (recording ones included)
  std::size_t recording = 0;             // of those, sent() and not yet done()
  std::size_t held = 0;                  // queued jobs of inactive (or not found) webhooks
  std::size_t organizations_at_cap = 0;  // organizations with max_in_flight_per_organization taken
};

// Thread safety: every member may be called from any thread; one mutex guards the state, and
// the wake callback runs after it is released.
//
// Structure: jobs are grouped per webhook, each webhook's jobs in an ordered set keyed by
// (due, delivery id), and webhooks per organization. A webhook is ready when it has queued jobs,
// fewer than the per-webhook cap in flight, and is not held; each organization keeps its ready
// webhooks in an ordered set of (earliest due, webhook). A last ordered set, `heads`, holds the
// first of those for every organization below its cap. take_due pops from `heads`, so its cost is
// O(log n) per job handed out, however many jobs wait behind a saturated or inactive webhook or a
// saturated organization (a binary heap of all jobs would have to step over them on every call),
// and a slot freed in an organization puts back one entry. Ordered sets rather than heaps because
// jobs are also removed by id (cancel, reschedule). Ties on the due time go by webhook id, then by
// delivery id. Held webhooks sit in a set of their own and are looked up again on every take_due.
// A webhook is looked up when it is first queued, for its organization; one the lookup does not
// find is held, and the next take_due drops its jobs.
class scheduler {
 public:
  explicit scheduler(webhook_lookup lookup, scheduler_options options = {});
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  // Called (outside the lock) when schedule() makes the earliest ready time earlier than it was,
  // so that a dispatcher sleeping until next_due() re-arms its timer. Set it before use.
  void set_wake(std::function<void()> wake);

  // Queues a delivery, or moves it to `due` when it is queued already. A delivery that is in
  // flight is queued when its done() comes (never handed out twice at once).
  // `even_if_inactive` (a test ping, docs/delivery.md "Test pings"): the job goes out while its
  // webhook is inactive, when the webhook's other jobs are held; it still counts against the
  // global cap. The mark stays with the delivery until it leaves the scheduler (cancel, or done()
  // with nothing to queue again).
  void schedule(const object_id& delivery, const object_id& webhook, timestamp due,
                bool even_if_inactive = false);
  // Removes a queued delivery; one in flight simply is not re-queued. True when it was known.
  bool cancel(const object_id& delivery);

  // The earliest time at which take_due can hand out a job: the earliest due job of a webhook
  // with a free slot in an organization with a free slot, or sooner when jobs are held
  // (held_recheck after the last take_due). nullopt when nothing can come out until schedule(),
  // sent() or done() is called: nothing queued, the global cap reached, or every queued job's
  // webhook or organization at its cap.
  std::optional<timestamp> next_due() const;

  // Up to `max` jobs whose time has come (due <= now), earliest first, honouring the three caps.
  // Jobs of inactive webhooks stay queued (held); jobs of missing webhooks are removed and
  // returned in `dropped`.
  due_jobs take_due(timestamp now, std::size_t max);

  // The attempt of a job taken by take_due has finished talking to the receiver: its webhook's
  // and its organization's slots are free for their next jobs. The job itself stays taken (never
  // handed out twice, and counted against max_in_flight) until done(). Unknown ids and a second
  // call are ignored.
  void sent(const object_id& delivery);

  // Releases the in-flight slot of a job taken by take_due. Unknown ids are ignored.
  void done(const object_id& delivery);

  scheduler_counts counts() const;
  const scheduler_options& options() const noexcept { return options_; }

 private:
  using job_key = std::pair<timestamp, object_id>;   // (due, delivery id)
  using head_key = std::pair<timestamp, object_id>;  // (earliest due, webhook)
  struct webhook_jobs {
    std::set<job_key> queue;
    std::size_t in_flight = 0;
    bool held = false;
    std::optional<object_id> organization;  // from the lookup, once it found the webhook
    std::optional<timestamp> head;  // the due time under which it sits in its organization's ready
  };
  struct organization_slots {
    std::size_t in_flight = 0;     // taken and neither sent() nor done()
    std::set<head_key> ready;      // its ready webhooks; blocked by this cap alone when at it
    std::optional<head_key> head;  // its entry in heads_, if it has one
  };
  struct queued_entry {
    object_id webhook;
    timestamp due{};
  };
  struct in_flight_entry {
    object_id webhook;
    object_id organization;
    std::optional<timestamp> again;  // schedule() came while in flight: queue at done()
    bool sent = false;  // sent() came: no longer counted against its webhook's and org's caps
  };

  // Gives the job's per-webhook and per-organization slots back (once); the caller holds mutex_.
  void release_slots(in_flight_entry& entry);

  void enqueue(const object_id& delivery, const object_id& webhook, timestamp due);
  void refresh(const object_id& webhook);  // re-establishes its place: ready (and heads_) or held_
  void refresh_organization(const object_id& organization);  // re-establishes heads_ for it
  void drop_all(const object_id& webhook, std::vector<scheduled_job>& into);
  // Hands out the due jobs marked even_if_inactive whose webhook is held (inactive).
  void take_unheld(timestamp now, std::size_t max, due_jobs& out);
  std::optional<timestamp> earliest_ready() const;

  webhook_lookup lookup_;
  const scheduler_options options_;
  std::function<void()> wake_;

  mutable std::mutex mutex_;
  std::unordered_map<object_id, webhook_jobs> webhooks_;
  std::unordered_map<object_id, organization_slots> organizations_;
  std::set<head_key> heads_;  // the first ready webhook of each organization below its cap
  std::set<object_id> held_;
  std::unordered_map<object_id, queued_entry> queued_;
  std::unordered_map<object_id, in_flight_entry> in_flight_;
  std::set<object_id> unheld_;  // deliveries scheduled even_if_inactive (test pings: a few)
  std::optional<timestamp> last_take_;
  std::size_t recording_ = 0;  // in_flight_ entries with sent set
};

}  // namespace hookd
