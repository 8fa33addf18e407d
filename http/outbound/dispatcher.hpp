#pragma once
// The dispatcher: sends due deliveries to their receivers (docs/openapi.yaml) and records what
// happened.
//
// It drives the delivery log's scheduler. One loop coroutine sleeps on a steady_timer until
// scheduler::next_due() (bounded by max_sleep), woken early when the scheduler reports an earlier
// job (set_wake) or when an attempt finishes and frees a slot; it then takes the due jobs and
// spawns one attempt coroutine per job. An attempt looks up the delivery, its event and its
// webhook, builds the body (delivery_body), signs it with the webhook's secret for the attempt's
// unix seconds, sends it with the delivery_client, frees the webhook's slot at once
// (scheduler::sent: the next job of that webhook need not wait for this one's fsync), maps the
// result through decide(), and hands the attempt and the decision to
// delivery_log::record_attempt, which makes it durable (group commit with every other attempt
// and ingest queued meanwhile) and only then releases the job. The attempt coroutine ends with
// that hand-over; it does not wait for the write. Jobs the scheduler dropped (their webhook no
// longer exists) are cancelled with delivery_log::cancel_webhook.
//
// Threads: the dispatcher runs its own io_context on one thread of its own, so the client (which
// is not thread-safe), the timer and every attempt share that thread without a strand, and a slow
// receiver never competes with API requests for the server's threads. DNS runs on Asio's resolver
// thread and durable writes on the delivery log's writer thread; neither blocks this one.
//
// Shutdown: stop() stops taking jobs and waits for the attempts in flight, bounded by
// stop_timeout; every attempt coroutine is tracked by a counter that its completion handler
// decrements, none is detached and forgotten. An attempt cut short by the bound was never
// recorded, so after the next start it is simply attempted again (at least once delivery). The
// records of the attempts that ended are in the delivery log's queue: its stop() commits them.
//
// The request (docs/openapi.yaml): POST to the webhook's URL with content-type, user-agent and the
// webhook's custom headers, in that order, prepared once per version of the webhook
// (delivery_client::prepare; a webhook changed in the catalog is prepared again at its next
// attempt), then per attempt webhook-id (the delivery id), webhook-timestamp, webhook-signature
// over the three, and the event's child traceparent, which replaces a custom header of that name.
//
// Thread safety: start() and stop() from one controlling thread; stats() and in_flight() from any.

#include "core/catalog/catalog.hpp"
#include "core/delivery/delivery.hpp"
#include "core/delivery/delivery_engine.hpp"
#include "core/delivery/endpoint_health.hpp"
#include "core/delivery/signing.hpp"
#include "http/outbound/delivery_client.hpp"
#include "http/outbound/delivery_metrics.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace hookd::http {

struct dispatcher_options {
  // The outbound client: total_timeout is --delivery-timeout, allow_private_targets is
  // --allow-private-targets, user_agent should be "hookd/<version>". A non-zero
  // max_idle_per_origin is raised to the scheduler's max_in_flight: the webhooks of one receiver
  // share its origin, and a pool smaller than their attempts in flight would close a connection
  // after most attempts and open a new one for the next. A max_idle_total of 0 becomes that cap.
  client_options client{};
  // Jobs taken from the scheduler per take_due call. 64 keeps one pass of the loop short; the
  // loop goes round again at once while full batches keep coming.
  std::size_t batch = 64;
  // The longest the loop sleeps without looking at the scheduler again. 1 s bounds the effect of
  // a wall-clock step (next_due is wall-clock time, the timer is steady) at the cost of one cheap
  // take_due per second when idle.
  std::chrono::milliseconds max_sleep{1000};
  // How long stop() waits for attempts in flight. 0 (the default) means the client's
  // total_timeout plus 5 s: every send ends by its timeout, and the 5 s cover recording it.
  std::chrono::milliseconds stop_timeout{0};
  // Where every attempt's outcome is reported (docs/delivery.md, "Endpoint health"); null: nowhere
  // (no auto-disable). Must outlive the dispatcher.
  endpoint_health* health = nullptr;
};

class dispatcher {
 public:
  // `log` and `cat` must outlive the dispatcher. The client is built here, on the dispatcher's
  // own executor; it throws std::invalid_argument for a bad extra_ca_pem.
  dispatcher(delivery_engine& log, const catalog& cat, dispatcher_options options = {});
  // stop(). The completions it gives record_attempt hold nothing of the dispatcher's, so the
  // delivery log may run them after this.
  ~dispatcher();
  dispatcher(const dispatcher&) = delete;
  dispatcher& operator=(const dispatcher&) = delete;

  // Starts the thread and the loop. Call after delivery_log::load() and start(). Once.
  void start();
  // Stops taking jobs, waits for the attempts in flight (bounded), then joins the thread.
  // True when every attempt finished within the bound. Idempotent.
  bool stop();

  // Attempts running now.
  [[nodiscard]] std::size_t in_flight() const noexcept;
  [[nodiscard]] const delivery_metrics& stats() const noexcept;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace hookd::http
