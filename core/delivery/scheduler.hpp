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
//
// Flow control per webhook (docs/delivery.md, "Flow control"): sent() carries what the attempt
// met, and the scheduler adapts the webhook's concurrency (AIMD), pauses the whole webhook on a
// Retry-After, and spaces its attempts by its rateLimit (a token bucket). Deliveries that carry an
// ordering key go one at a time per (webhook, key), in ingest order (docs/delivery.md,
// "Ordering"). All of it is decided here, under the one mutex, with `now` from the caller.

#include "core/common/clock.hpp"
#include "core/common/id_map.hpp"
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
  // The longest a Retry-After on a 429 or 503 pauses a whole webhook (docs/delivery.md, "Flow
  // control"). Default 1 h: a receiver may ask for a long break, but a typo of a day in its header
  // must not silence the webhook for that long; the delivery's own retry honours the header within
  // its schedule step anyway.
  std::chrono::milliseconds max_pause{3'600'000};
};

// A webhook's rateLimit (attempts per second) lets this many attempts go at once after a quiet
// spell: a tenth of a second's worth, at least 1 (docs/delivery.md, "Flow control"). So in any
// one second a receiver gets at most rate + burst_of(rate) attempts.
[[nodiscard]] std::uint32_t burst_of(std::uint32_t rate) noexcept;

// Whether an attempt's outcome asks the webhook to slow down (the AIMD decrease): 429, 502, 503,
// 504, or no response within the delivery timeout.
[[nodiscard]] bool is_congestion(std::optional<int> status_code, bool timed_out) noexcept;

enum class webhook_state { active, inactive, missing };

// What the scheduler needs to know of a webhook. A webhook's organization never changes, so the
// scheduler keeps it while the webhook has jobs queued or in flight.
struct webhook_info {
  webhook_state state = webhook_state::missing;
  object_id organization;                     // meaningful unless missing
  std::optional<std::uint32_t> rate_limit{};  // attempts per second; nullopt: no limit
};

// Where a delivery stands among the deliveries of its webhook with the same ordering key: they are
// attempted one at a time, in (created, delivery id) order, which is ingest order.
struct ordering {
  std::string key;
  timestamp created{};
};

// What an attempt met at the receiver, for flow control.
struct sent_report {
  attempt_response response;  // status code (nullopt: none) and Retry-After
  bool timed_out = false;     // no response within the delivery timeout
  timestamp now{};            // when the exchange ended
};

// A webhook's flow control state, for health reports.
struct webhook_flow {
  std::size_t limit = 0;      // attempts it may have in flight now (AIMD), 1..per-webhook cap
  std::size_t in_flight = 0;  // taken and not yet sent()
  std::optional<timestamp> paused_until;  // a Retry-After pause, while it lasts or last lasted
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
// Flow control: each webhook's concurrency limit starts at the per-webhook cap (a healthy receiver
// sees what it saw before flow control), grows by one after `limit` successes in a row of the
// current limit, and halves (at least 1) on a congestion outcome (is_congestion), once per round:
// attempts taken before the last halving do not halve it again. A 429 or 503 with a Retry-After
// pauses the whole webhook until then (clamped to max_pause). A webhook with a rate limit takes
// a token per attempt from a bucket of burst_of(rate) tokens refilled at `rate` per second.
// A paused or rate-limited webhook sits in its organization's ready set under the time it may go
// again, so next_due() and take_due() honour it like a due time. Ordering keys: of the queued
// deliveries of one (webhook, key), only the first in ingest order is in the webhook's queue, and
// only while none of them is in flight (taken and not yet done()); the others are parked until it
// is done() without being queued again (succeeded or failed for good).
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
  // flight is queued when its done() comes (never handed out twice at once): so to retry a job
  // that is in flight, call schedule() before done(), and its ordering key's line never moves on
  // in between. `order` puts it in the line of its ordering key (ignored for one in flight or
  // already queued, which keep theirs).
  // `even_if_inactive` (a test ping, docs/delivery.md "Test pings"): the job goes out while its
  // webhook is inactive, when the webhook's other jobs are held; it still counts against the
  // global cap. The mark stays with the delivery until it leaves the scheduler (cancel, or done()
  // with nothing to queue again).
  void schedule(const object_id& delivery, const object_id& webhook, timestamp due,
                const std::optional<ordering>& order = std::nullopt, bool even_if_inactive = false);
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
  // call are ignored. With a report, its outcome moves the webhook's flow control (see above).
  void sent(const object_id& delivery);
  void sent(const object_id& delivery, const sent_report& report);

  // Releases the in-flight slot of a job taken by take_due. Unknown ids are ignored. Unless
  // schedule() queued it again meanwhile, the delivery is finished as far as its ordering key is
  // concerned: the next of its line may go.
  void done(const object_id& delivery);

  scheduler_counts counts() const;
  // A webhook's flow control state; one the scheduler does not know is at the cap, unpaused.
  webhook_flow flow(const object_id& webhook) const;
  const scheduler_options& options() const noexcept { return options_; }

 private:
  using job_key = std::pair<timestamp, object_id>;      // (due, delivery id)
  using head_key = std::pair<timestamp, object_id>;     // (earliest due, webhook)
  using line_member = std::pair<timestamp, object_id>;  // (created, delivery id)
  // The known deliveries of one (webhook, ordering key), finished ones excepted.
  struct key_line {
    std::set<line_member> members;  // in ingest order; the first is the only one that may go
    bool in_flight = false;         // the first is taken and not yet done()
  };
  struct webhook_jobs {
    std::set<job_key> queue;  // jobs free to go when their time and a slot come (not parked)
    std::size_t in_flight = 0;
    bool held = false;
    std::optional<object_id> organization;  // from the lookup, once it found the webhook
    std::optional<timestamp> head;  // the time under which it sits in its organization's ready
    // Flow control.
    std::size_t limit = 0;      // AIMD: attempts in flight allowed now
    std::size_t successes = 0;  // successes since the limit last moved
    std::uint64_t round = 0;    // bumped by every decrease
    std::optional<timestamp> paused_until;
    std::optional<std::uint32_t> rate;
    double tokens = 0;  // the rate limit's bucket, as of `refilled`
    timestamp refilled{};
    std::unordered_map<std::string, key_line> lines;  // by ordering key
  };
  struct organization_slots {
    std::size_t in_flight = 0;     // taken and neither sent() nor done()
    std::set<head_key> ready;      // its ready webhooks; blocked by this cap alone when at it
    std::optional<head_key> head;  // its entry in heads_, if it has one
  };
  struct queued_entry {
    object_id webhook;
    timestamp due{};
    std::optional<ordering> order{};
    bool parked = false;  // waiting behind an earlier delivery of its ordering key
  };
  struct in_flight_entry {
    object_id webhook;
    object_id organization;
    std::optional<timestamp> again;  // schedule() came while in flight: queue at done()
    bool sent = false;  // sent() came: no longer counted against its webhook's and org's caps
    std::optional<ordering> order{};
    std::uint64_t round = 0;  // its webhook's round when taken
  };

  // Gives the job's per-webhook and per-organization slots back (once); the caller holds mutex_.
  void release_slots(in_flight_entry& entry);
  void end_exchange(const object_id& delivery, const sent_report* outcome);  // both sent()s

  void enqueue(const object_id& delivery, const object_id& webhook, timestamp due,
               std::optional<ordering> order);
  webhook_jobs& jobs_of(const object_id& webhook);  // creates it at the cap
  // Its place in the ready sets: the first due job, or later while paused or out of tokens.
  timestamp ready_at(const webhook_jobs& w) const;
  bool flow_at_rest(const webhook_jobs& w) const;  // nothing to remember once it is idle
  void set_rate(webhook_jobs& w, std::optional<std::uint32_t> rate);
  void take_token(webhook_jobs& w, timestamp now);
  void report(webhook_jobs& w, const in_flight_entry& entry, const sent_report& r);
  // Ordering keys: parks a queued delivery / lets the first of a line go when nothing of it is in
  // flight / removes a delivery from its line.
  void park(webhook_jobs& w, const object_id& delivery);
  void settle(webhook_jobs& w, const std::string& key);
  void leave_line(webhook_jobs& w, const ordering& order, const object_id& delivery);
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
  id_map<queued_entry> queued_;
  id_map<in_flight_entry> in_flight_;
  std::set<object_id> unheld_;  // deliveries scheduled even_if_inactive (test pings: a few)
  std::optional<timestamp> last_take_;
  std::size_t recording_ = 0;  // in_flight_ entries with sent set
};

}  // namespace hookd
