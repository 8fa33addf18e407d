#include "http/outbound/dispatcher.hpp"

#include "core/common/ascii.hpp"
#include "core/common/log.hpp"
#include "core/common/thread_name.hpp"
#include "core/delivery/delivery.hpp"
#include "core/delivery/signing.hpp"
#include "core/delivery/trace_context.hpp"
#include "hookd/version.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace hookd::http {

namespace {

using namespace std::chrono_literals;

// After an attempt ended by an exception before its outcome reached the log, the delivery is
// tried again this much later (the log does the same for outcomes it could not record).
constexpr std::chrono::milliseconds kUnrecordedRetryDelay = 5s;

// How soon a job of a webhook being disabled is looked at again: about an fsync of the catalog.
constexpr std::chrono::milliseconds kDisablingRecheck = 50ms;

// The scheduler's wake callback may be running on the log's writer thread while the dispatcher
// stops; it reaches the dispatcher only through this link, which stop() cuts under its mutex.
struct wake_link {
  std::mutex mutex;
  dispatcher::impl* target = nullptr;
};

// The client's keep-alive pool must hold as many connections per origin as attempts may run
// at once to it: all the webhooks of a receiver share its origin, each with its own in-flight
// cap, up to the global cap. With a smaller pool most attempts close their connection when they
// end and the next one opens a new one (a connect, an accept, a TIME_WAIT socket per attempt).
// Over all origins, idle connections are bounded by that cap too.
dispatcher_options with_pool_for(dispatcher_options o, delivery_engine& log) {
  const std::size_t cap = log.jobs().options().max_in_flight;
  if (o.client.max_idle_per_origin != 0) {
    o.client.max_idle_per_origin = std::max(o.client.max_idle_per_origin, cap);
  }
  if (o.client.max_idle_total == 0) o.client.max_idle_total = cap;
  return o;
}

}  // namespace

struct dispatcher::impl {
  impl(delivery_engine& l, const catalog& c, dispatcher_options o)
      : log(l),
        cat(c),
        options(with_pool_for(std::move(o), l)),
        user_agent(std::string("hookd/") + std::string(kVersion)),
        timer(ioc),
        deadline(ioc),
        client(std::make_unique<delivery_client>(ioc.get_executor(), options.client)),
        link(std::make_shared<wake_link>()) {
    if (options.batch == 0) options.batch = 1;
    if (options.stop_timeout <= 0ms) options.stop_timeout = options.client.total_timeout + 5s;
  }

  delivery_engine& log;
  const catalog& cat;
  dispatcher_options options;
  const std::string user_agent;
  delivery_metrics metrics;

  // Declared before what is bound to it, so that it is destroyed last.
  asio::io_context ioc{1};
  // The loop sleeps on `timer`, whose expiry is never: wake_loop cancels it. When it must look
  // again at the latest is `deadline`'s business, re-armed only when that moment moves earlier
  // (deadline_at: the moment armed, max when none is). Arming a timer that becomes the earliest
  // of the io_context makes Asio reprogram its timerfd (a system call); re-arming one timer at
  // every pass of the loop cost 2 to 3 of those per delivery at moderate rates (bench/README.md,
  // "Two hand-offs fewer per delivery").
  asio::steady_timer timer;
  asio::steady_timer deadline;
  std::chrono::steady_clock::time_point deadline_at = std::chrono::steady_clock::time_point::max();
  std::unique_ptr<delivery_client> client;
  std::shared_ptr<wake_link> link;
  std::thread thread;
  bool started = false;
  bool stopped = false;

  // The dispatcher thread only.
  bool stopping = false;
  bool woken = false;

  // Shared between the dispatcher thread and stop().
  std::mutex state_mutex;
  std::condition_variable state_changed;
  std::size_t attempts_running = 0;
  bool loop_running = false;
  std::atomic<std::size_t> attempts_gauge{0};

  // ---- on the dispatcher thread

  // The fixed part of a webhook's requests (delivery_client::prepare: its URL, content-type,
  // user-agent and custom headers, checked and written once), so that an attempt writes only
  // its own headers and the body. Built at a webhook's first attempt and again once the catalog
  // holds a newer version of it (a changed webhook is a new object); past the client's
  // max_cached_targets entries the map starts over (attempts in flight keep theirs).
  struct webhook_template {
    std::shared_ptr<const webhook> hook;  // the version it was built from
    std::shared_ptr<const prepared_request> request;
    // For an event with a trace (docs/delivery.md, "Trace context"): the same without the
    // webhook's custom traceparent header; null when it has none.
    std::shared_ptr<const prepared_request> without_traceparent;
    // Its signer (its secrets decoded, docs/delivery.md, "Signing") for attempts made in
    // [signer_from, signer_until): until a previous secret's grace ends, the keys stay the same.
    std::shared_ptr<const webhook_signer> signer;
    timestamp signer_from{};
    timestamp signer_until{};
  };
  std::unordered_map<object_id, webhook_template> templates;

  webhook_template& template_for(const std::shared_ptr<const webhook>& hook);
  // The signer of an attempt of `t`'s webhook made at `at` (webhook_signer::for_webhook), kept in
  // `t` while its keys stay the same.
  result<std::shared_ptr<const webhook_signer>> signer_for(webhook_template& t, timestamp at);

  void wake_loop() {
    woken = true;
    timer.cancel();
  }

  void spawn_loop();
  void spawn_attempt(const scheduled_job& job);

  void attempt_finished() {
    {
      std::lock_guard lock(state_mutex);
      --attempts_running;
    }
    attempts_gauge.fetch_sub(1, std::memory_order_relaxed);
    state_changed.notify_all();
    wake_loop();  // a slot is free: a job waiting for it may go now
  }

  // Fails the pending deliveries of a webhook that no longer exists. The outcome needs no
  // answer: if the write fails, the deliveries stay pending and are dropped again by the
  // scheduler after the next start.
  void cancel_webhook(const object_id& webhook) {
    log.cancel_webhook(webhook, [](result<std::size_t>) {});
  }

  // Frees the slot of a job that was not attempted, and puts it back at `due` when its delivery
  // is still pending.
  void release(const scheduled_job& job, timestamp due) {
    // Queued again while still in flight (schedule, then done): the line of its ordering key
    // does not move on in between (docs/delivery.md, "Ordering").
    if (const auto p = log.find_pending(job.delivery)) {
      log.jobs().schedule(job.delivery, job.webhook, due, std::nullopt, p->record->test);
    }
    log.jobs().done(job.delivery);
  }
};

namespace {

using impl = dispatcher::impl;
using steady_time = std::chrono::steady_clock::time_point;

// How long a job waited to be handed to the client (docs/operations.md, "Where a delivery's time
// goes"): a first attempt of an ingest of this process since its write became durable, any other
// since its due time (on the engine's wall clock, in milliseconds).
std::chrono::nanoseconds waited(const pending_delivery& p, std::uint32_t attempt_number,
                                timestamp due, const delivery_engine& log) {
  if (attempt_number == 1 && p.committed != steady_time{}) {
    return std::chrono::steady_clock::now() - p.committed;
  }
  return log.now() - due;
}

// How long ago a first attempt's event was accepted: since its ingest request was taken when this
// process ingested it, else since the event's time (on the engine's wall clock, in milliseconds:
// an event ingested by another node, or before a restart).
std::chrono::nanoseconds since_accepted(const pending_delivery& p, const event& e,
                                        const delivery_engine& log) {
  if (p.received != steady_time{}) return std::chrono::steady_clock::now() - p.received;
  return log.now() - e.time;
}

asio::awaitable<void> run_loop(impl& d) {
  scheduler& jobs = d.log.jobs();
  while (!d.stopping) {
    d.woken = false;
    due_jobs batch = jobs.take_due(d.log.now(), d.options.batch);

    std::unordered_set<object_id> gone;
    for (const scheduled_job& job : batch.dropped) gone.insert(job.webhook);
    for (const object_id& webhook : gone) d.cancel_webhook(webhook);
    for (const scheduled_job& job : batch.ready) d.spawn_attempt(job);

    if (batch.ready.size() >= d.options.batch) {
      // More may be due: go round again, after letting the attempts just spawned start.
      co_await asio::post(d.ioc, asio::use_awaitable);
      continue;
    }

    std::chrono::milliseconds wait = d.options.max_sleep;
    if (const auto next = jobs.next_due()) {
      wait = std::clamp<std::chrono::milliseconds>(*next - d.log.now(), 1ms, d.options.max_sleep);
    }
    if (d.woken || d.stopping) continue;
    // A deadline later than needed only costs a pass that finds nothing; one armed earlier than
    // `wait` stays (the loop looks again then, and sleeps anew).
    const steady_time look_again = std::chrono::steady_clock::now() + wait;
    if (look_again < d.deadline_at) {
      d.deadline_at = look_again;
      d.deadline.expires_at(look_again);
      d.deadline.async_wait([&d](const boost::system::error_code& ec) {
        if (ec) return;  // re-armed earlier, or the stop
        d.deadline_at = steady_time::max();
        d.wake_loop();
      });
    }
    d.timer.expires_at(steady_time::max());
    (void)co_await d.timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

// One attempt of one job. `handed_over` becomes true once record_attempt owns the job's slot.
asio::awaitable<void> attempt_job(impl& d, scheduled_job job, bool& handed_over) {
  const auto pending = d.log.find_pending(job.delivery);
  if (!pending) {
    d.log.jobs().done(job.delivery);  // finished or cancelled meanwhile: nothing to send
    co_return;
  }
  const delivery& record = *pending->record;
  const auto hook = d.cat.find_webhook(job.webhook);
  if (!hook) {
    d.log.jobs().done(job.delivery);
    d.cancel_webhook(job.webhook);  // deleted since take_due
    co_return;
  }
  if (!hook->active && !record.test) {  // a test ping goes out all the same
    d.release(job, job.due);  // deactivated since take_due: held like the rest of its jobs
    co_return;
  }
  if (d.options.health != nullptr && d.options.health->disabling(hook->id)) {
    // An attempt just decided to disable it (a 410, or the failure that ends its grace): the
    // catalog is writing that. Look again shortly; by then it is inactive and its jobs are held.
    d.release(job, d.log.now() + kDisablingRecheck);
    co_return;
  }

  attempt a;
  a.number = record.attempts + 1;
  a.at = d.log.now();
  attempt_response response;
  const std::shared_ptr<const event>& event = pending->source_event;
  impl::webhook_template& fixed = d.template_for(hook);
  // The webhook's secret and those still in their rotation grace at this attempt's time, each in
  // its scheme (docs/delivery.md, "Signing").
  const auto signer = d.signer_for(fixed, a.at);
  if (!event) {
    // load() verifies that every pending delivery has its event, so this is damage, not a race;
    // the attempt is recorded as an error so that the delivery runs out its schedule visibly.
    a.error = "the event " + record.event.to_string() + " is missing";
    d.metrics.record_attempt(std::nullopt, a.duration, false);
  } else if (!signer) {
    a.error = "cannot sign: " + signer.error().detail;
    d.metrics.record_attempt(std::nullopt, a.duration, false);
  } else {
    // The Standard Webhooks request (docs/openapi.yaml): the webhook's fixed part, then
    // webhook-id (the delivery id), webhook-timestamp, webhook-signature over the three, and the
    // child traceparent of the event's trace.
    const std::string body = delivery_body(*event);
    const std::int64_t unix_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(a.at.time_since_epoch()).count();
    const std::string id = record.id.to_string();
    std::array<char, 24> seconds_text{};
    const auto seconds_end =
        std::to_chars(seconds_text.data(), seconds_text.data() + seconds_text.size(), unix_seconds)
            .ptr;
    const std::string signature = (*signer)->sign(id, unix_seconds, body);
    std::string traceparent;
    std::array<header_ref, 4> more{
        {{"webhook-id", id},
         {"webhook-timestamp",
          std::string_view(seconds_text.data(),
                           static_cast<std::size_t>(seconds_end - seconds_text.data()))},
         {"webhook-signature", signature},
         {}}};
    std::size_t more_count = 3;
    std::shared_ptr<const prepared_request> request = fixed.request;
    if (event->traceparent) {
      // The event's trace, not a custom header of the same name.
      traceparent = child_traceparent(*event->traceparent);
      more[more_count++] = {kTraceparentHeader, traceparent};
      if (fixed.without_traceparent) request = fixed.without_traceparent;
    }
    d.metrics.record_dispatch_delay(waited(*pending, a.number, job.due, d.log));
    attempt_result sent = co_await d.client->send(
        std::move(request), std::span<const header_ref>(more.data(), more_count), body);
    a.duration = sent.duration;
    if (sent.has_response()) a.status_code = sent.status_code;
    a.response = response_excerpt(sent.body_prefix);
    if (!sent.error.empty()) a.error = std::move(sent.error);
    response.status_code = a.status_code;
    response.retry_after = std::move(sent.retry_after);
    // The receiver is done with this attempt: the webhook's next job may go out while this one
    // is being recorded (the delivery stays taken until record_attempt makes its outcome
    // durable), and what the receiver answered moves the webhook's flow control
    // (docs/delivery.md, "Flow control").
    d.log.jobs().sent(job.delivery, sent_report{response, sent.timed_out, d.log.now()});
    d.metrics.record_attempt(a.status_code, a.duration, sent.refused_by_guard);
    if (sent.exchange) d.metrics.record_exchange(a.status_code, *sent.exchange);
    if (a.number == 1) {
      d.metrics.record_first_attempt(since_accepted(*pending, *event, d.log));
    }
  }

  // The schedule counts from the last redelivery (docs/delivery.md, "Redelivery and recovery").
  attempt_decision decision = d.log.decide(response, schedule_position(record, a.number));
  if (d.options.health != nullptr) {
    // The receiver's health: its streak, its hour, and a 410 or a long failure disables it
    // (docs/delivery.md, "Endpoint health").
    d.options.health->attempted(*hook, attempt_report{decision.kind == decision_kind::succeeded,
                                                      a.status_code, a.duration, d.log.now()});
  }
  // The outcome is the delivery log's from here: its writer makes the attempt durable, then
  // frees the job's slot in the scheduler (or queues its retry). The attempt ends now rather than
  // waiting for that fsync, so the dispatcher's thread is not woken once more per delivery to
  // learn of it. The completion runs on the writer's thread, possibly after the dispatcher is
  // gone (stop() does not wait for it; the log's stop() commits queued writes), so it holds the
  // one counter it touches and nothing of the dispatcher's.
  handed_over = true;
  d.log.record_attempt(pending->record, std::move(a), std::move(decision),
                       [unrecorded = d.metrics.unrecorded_counter()](
                           result<std::shared_ptr<const delivery>> recorded) {
                         if (!recorded) unrecorded->fetch_add(1, std::memory_order_relaxed);
                       });
}

asio::awaitable<void> run_attempt(impl& d, scheduled_job job) {
  bool handed_over = false;
  try {
    co_await attempt_job(d, job, handed_over);
  } catch (const std::exception& e) {
    log_line({{"level", "error"},
              {"event", "attempt_failed"},
              {"delivery", job.delivery.to_string()},
              {"error", e.what()}});
    if (!handed_over) {
      d.metrics.record_unrecorded();
      d.release(job, d.log.now() + kUnrecordedRetryDelay);
    }
  }
}

}  // namespace

namespace {

// The headers every request of `hook` starts with: content-type, user-agent, then its custom
// headers in their order (the catalog refuses custom headers that would collide with these or
// with the per-attempt ones; docs/openapi.yaml), a custom traceparent left out when
// `drop_traceparent`.
std::vector<header_entry> fixed_headers(const std::string& user_agent, const webhook& hook,
                                        bool drop_traceparent) {
  std::vector<header_entry> headers;
  headers.reserve(hook.headers.size() + 2);
  headers.push_back({"content-type", "application/json"});
  headers.push_back({"user-agent", user_agent});
  for (const header_entry& h : hook.headers) {
    if (drop_traceparent && ascii_iequals(h.name, kTraceparentHeader)) continue;
    headers.push_back(h);
  }
  return headers;
}

}  // namespace

dispatcher::impl::webhook_template& dispatcher::impl::template_for(
    const std::shared_ptr<const webhook>& hook) {
  if (const auto it = templates.find(hook->id); it != templates.end() && it->second.hook == hook) {
    return it->second;
  }
  if (templates.size() >= std::max<std::size_t>(options.client.max_cached_targets, 1)) {
    templates.clear();
  }
  webhook_template made;
  made.hook = hook;
  made.request = client->prepare(hook->url, fixed_headers(user_agent, *hook, false));
  const bool has_traceparent =
      std::any_of(hook->headers.begin(), hook->headers.end(),
                  [](const header_entry& h) { return ascii_iequals(h.name, kTraceparentHeader); });
  if (has_traceparent) {
    made.without_traceparent = client->prepare(hook->url, fixed_headers(user_agent, *hook, true));
  }
  return templates.insert_or_assign(hook->id, std::move(made)).first->second;
}

result<std::shared_ptr<const webhook_signer>> dispatcher::impl::signer_for(webhook_template& t,
                                                                           timestamp at) {
  if (t.signer && at >= t.signer_from && at < t.signer_until) return t.signer;
  auto made = webhook_signer::for_webhook(*t.hook, at);
  if (!made) return made.error();
  t.signer = std::make_shared<const webhook_signer>(std::move(*made));
  t.signer_from = at;
  t.signer_until = webhook_signer::same_keys_until(*t.hook, at);
  return t.signer;
}

void dispatcher::impl::spawn_loop() {
  {
    std::lock_guard lock(state_mutex);
    loop_running = true;
  }
  asio::co_spawn(ioc, run_loop(*this), [this](std::exception_ptr error) {
    if (error && !stopping) {
      // Only resource exhaustion gets here; without the loop nothing would be delivered.
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        log_line({{"level", "error"},
                  {"event", "dispatcher_loop_failed"},
                  {"detail", "restarting the dispatcher loop"},
                  {"error", e.what()}});
      }
      spawn_loop();
      return;
    }
    {
      std::lock_guard lock(state_mutex);
      loop_running = false;
    }
    state_changed.notify_all();
  });
}

void dispatcher::impl::spawn_attempt(const scheduled_job& job) {
  {
    std::lock_guard lock(state_mutex);
    ++attempts_running;
  }
  attempts_gauge.fetch_add(1, std::memory_order_relaxed);
  asio::co_spawn(ioc, run_attempt(*this, job), [this](std::exception_ptr) { attempt_finished(); });
}

dispatcher::dispatcher(delivery_engine& log, const catalog& cat, dispatcher_options options)
    : impl_(std::make_unique<impl>(log, cat, std::move(options))) {}

dispatcher::~dispatcher() {
  stop();
}

void dispatcher::start() {
  impl& d = *impl_;
  if (d.started) return;
  d.started = true;
  d.link->target = &d;
  d.log.jobs().set_wake([link = d.link] {
    std::lock_guard lock(link->mutex);
    if (link->target == nullptr) return;
    impl* target = link->target;
    asio::post(target->ioc, [target] { target->wake_loop(); });
  });
  d.spawn_loop();
  d.thread = std::thread([&d] {
    set_thread_name("dispatcher");
    d.ioc.run();
  });
}

bool dispatcher::stop() {
  impl& d = *impl_;
  if (!d.started || d.stopped) return true;
  d.stopped = true;
  {
    std::lock_guard lock(d.link->mutex);
    d.link->target = nullptr;
  }
  asio::post(d.ioc, [&d] {
    d.stopping = true;
    d.timer.cancel();
    d.deadline.cancel();
  });

  bool finished = false;
  {
    std::unique_lock lock(d.state_mutex);
    finished = d.state_changed.wait_for(
        lock, d.options.stop_timeout, [&d] { return !d.loop_running && d.attempts_running == 0; });
  }
  // Anything still running was cut short by the bound; its frame is destroyed with the
  // io_context, after the client (see the member order).
  d.ioc.stop();
  d.thread.join();
  d.client->close_idle();
  return finished;
}

std::size_t dispatcher::in_flight() const noexcept {
  return impl_->attempts_gauge.load(std::memory_order_relaxed);
}

const delivery_metrics& dispatcher::stats() const noexcept {
  return impl_->metrics;
}

}  // namespace hookd::http
