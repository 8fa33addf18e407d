// Events and deliveries (docs/openapi.yaml):
//   POST /api/v1/organizations/{organizationId}/projects/{projectId}/events         events:write
//   GET  …/projects/{projectId}/events/{eventId}                                    deliveries:read
//   GET  …/projects/{projectId}/deliveries?status=&webhook=&eventType=&since=&until=&limit=&after=
//                                                                                   deliveries:read
//   GET  …/settings/webhooks/{webhookId}/deliveries?status=&…&limit=&after=         deliveries:read
//   GET  …/settings/webhooks/{webhookId}/deliveries/{deliveryId}                    deliveries:read
//   DELETE …/projects/{projectId}/subjects/{subject} deliveries:write
//   POST …/settings/webhooks/{webhookId}/deliveries/{deliveryId}/redeliver     deliveries:write
//   POST …/settings/webhooks/{webhookId}/recover {since, until?}               deliveries:write
//   POST …/settings/webhooks/{webhookId}/test                                  deliveries:write
// Order of checks as for webhooks: token (401), path ids (400), organization access (403, the
// same whether or not it exists), scope (403), organization and project (404), then the request.
//
// Reads of history go to storage and may wait on the disk, so they run on the reader pool
// (app::history_readers), never on the threads that serve the catalog's GETs
// (docs/delivery.md, "Reads").
//
// A deleted webhook's deliveries stay readable: the catalog no longer knows the webhook, so the
// webhook id is accepted when the project has deliveries of it. That is how a client sees the
// deliveries that the delete cancelled ("webhook deleted").

#include "core/catalog/validation.hpp"
#include "core/common/json_body.hpp"
#include "core/delivery/delivery_engine.hpp"
#include "core/delivery/ingest_input.hpp"
#include "core/delivery/recover_input.hpp"
#include "core/delivery/trace_context.hpp"
#include "http/api/api.hpp"
#include "http/api/auth.hpp"
#include "http/server/metrics.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <boost/json/array.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/serialize.hpp>

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <chrono>
#include <optional>
#include <string>

namespace hookd::http {
namespace {

struct project_target {
  std::shared_ptr<const api_token> token;
  object_id organization;
  object_id project;
};

result<project_target> resolve(app& a, const request_context& ctx, scope needed) {
  auto token = authenticate(a, ctx.req);
  if (!token) return token.error();
  auto org = path_id(ctx, "organizationId");
  if (!org) return org.error();
  auto proj = path_id(ctx, "projectId");
  if (!proj) return proj.error();
  if (auto allowed = authorize(**token, needed, *org); !allowed) return allowed.error();
  if (auto allowed = authorize_project(**token, *proj); !allowed) return allowed.error();
  if (!a.cat.find_organization(*org)) {
    return make_problem(error_kind::not_found, "Organization " + org->to_string() + " not found.");
  }
  auto found = a.cat.find_project(*proj);
  if (!found || found->organization != *org) {
    return make_problem(error_kind::not_found, "Project " + proj->to_string() + " not found.");
  }
  if (a.deliveries == nullptr || a.history_readers == nullptr) {
    return make_problem(error_kind::unavailable, "Event delivery is not running.");
  }
  return project_target{std::move(*token), *org, *proj};
}

problem webhook_not_found(const object_id& id) {
  return make_problem(error_kind::not_found, "Webhook " + id.to_string() + " not found.");
}

// The reader pool's threads run under SCHED_IDLE, below the threads that serve requests: where
// hookd has one core, a stream of history pages would otherwise take turns with the event loop
// and add milliseconds to every GET of the catalog. A SCHED_IDLE thread yields the core at once
// to a thread with work, and still gets a small share (about 0.3 %) when the core is saturated,
// so pages slow down under load but are never starved (docs/delivery.md, "Reads"). Once per
// thread; if the kernel refuses, the reads simply run at normal priority.
void lower_reader_priority() {
  thread_local const bool lowered = [] {
    sched_param param{};
    param.sched_priority = 0;
    return ::sched_setscheduler(static_cast<pid_t>(::syscall(SYS_gettid)), SCHED_IDLE, &param) == 0;
  }();
  (void)lowered;
}

// Runs `read` (a history read: storage, may wait on the disk) on the reader pool, and resumes
// the calling coroutine on its own executor with the result. Not a coroutine itself: `read` goes
// to the heap and the initiation holds it by value, so nothing refers to this call's parameters
// once it has returned the awaitable (the initiation runs later, at the co_await).
template <class T, class Read>
asio::awaitable<result<T>> read_history(app& a, Read read) {
  auto shared = std::make_shared<Read>(std::move(read));
  return await_catalog<T>([pool = a.history_readers, shared](completion<T> done) {
    asio::post(*pool, [shared, done = std::move(done)] {
      lower_reader_priority();
      done((*shared)());
    });
  });
}

// The history reads, as plain function objects. Each is built, and handed to read_history, in a
// statement of its own before the co_await: GCC 12 miscompiled a non-trivial temporary in the
// same full-expression as the co_await (a moved std::string kept pointing into the coroutine
// frame, and was freed from there).
struct list_read {
  const delivery_engine* log;
  delivery_query query;
  result<delivery_page> operator()() const { return log->list_deliveries(query); }
};
struct delivery_read {
  const delivery_engine* log;
  object_id project, id;
  result<std::optional<delivery_detail>> operator()() const {
    return log->find_delivery(project, id);
  }
};
struct event_read {
  const delivery_engine* log;
  object_id project, id;
  result<std::optional<event_detail>> operator()() const { return log->find_event(project, id); }
};

// The webhook id of the path, when the webhook is in the target project, or was and has been
// deleted (the project has deliveries of it).
asio::awaitable<result<object_id>> resolve_webhook(app& a, const request_context& ctx,
                                                   const project_target& target) {
  auto id = path_id(ctx, "webhookId");
  if (!id) co_return id.error();
  if (const auto hook = a.cat.find_webhook(*id)) {
    if (hook->project != target.project || hook->organization != target.organization) {
      co_return webhook_not_found(*id);
    }
    co_return *id;
  }
  delivery_query any;
  any.project = target.project;
  any.webhook = *id;
  any.limit = 1;
  auto reading = read_history<delivery_page>(a, list_read{a.deliveries, std::move(any)});
  auto page = co_await std::move(reading);
  if (!page) co_return page.error();
  if (page->items.empty()) co_return webhook_not_found(*id);
  co_return *id;
}

// ---------------------------------------------------------------- ingest

constexpr std::string_view kIdempotencyHeader = "Idempotency-Key";

// An event's body as parsed, in an arena of its own: the tree's nodes are carved out of one
// buffer (a larger body's spill into blocks the arena frees at once), and nothing of the tree
// is freed node by node. Its parts are read (parse_ingest's checks, the compact text of `data`,
// the webhooks' payload filters) and never copied out as JSON values, which would share the
// arena. One allocation holds the buffer, the arena and the tree.
struct ingest_body {
  std::array<unsigned char, 4096> buffer;
  boost::json::monotonic_resource arena{buffer.data(), buffer.size()};
  std::optional<boost::json::value> value;  // its storage is `arena`
};

asio::awaitable<response> ingest_event(app& a, request_context& ctx) {
  const auto received = std::chrono::steady_clock::now();  // the first stage's start
  auto target = resolve(a, ctx, scope::events_write);
  if (!target) co_return fail(ctx, target.error());
  auto parsed = std::make_shared<ingest_body>();
  auto body = read_json_body(ctx.req, a.max_body_bytes, boost::json::storage_ptr(&parsed->arena));
  if (!body) co_return fail(ctx, body.error());
  parsed->value.emplace(std::move(*body));  // moved with its storage: no copy
  std::optional<std::string_view> header;
  if (auto it = ctx.req.find(kIdempotencyHeader); it != ctx.req.end()) header = it->value();
  auto in = parse_ingest(*parsed->value, header);
  if (!in) co_return fail(ctx, in.error());
  in->token = target->token->id;
  in->organization = target->organization;
  in->project = target->project;
  in->received = received;
  // Webhooks' filters read `data` as parsed here, not parsed again (docs/delivery.md, "Filtering
  // by payload"): the request points into the body, which it keeps alive.
  if (const auto* data = parsed->value->get_object().if_contains("data")) {
    in->parsed_data = std::shared_ptr<const boost::json::value>(parsed, data);
  }
  // An invalid traceparent, or more than one, is ignored as W3C Trace Context says: the event
  // starts a trace of its own (docs/delivery.md, "Trace context").
  if (ctx.req.count(kTraceparentHeader) == 1) {
    in->traceparent = parse_traceparent(ctx.req.find(kTraceparentHeader)->value());
  }

  delivery_engine& log = *a.deliveries;
  auto accepted = co_await await_catalog<ingest_result>(
      [&](completion<ingest_result> done) { log.ingest(std::move(*in), std::move(done)); });
  if (!accepted) co_return fail(ctx, accepted.error());
  if (!accepted->replay) a.stats.record_ingest_commit(accepted->committed - received);
  response res = json_response(bhttp::status::accepted, to_json(*accepted));
  // Stripe's convention: tells a client that this is the first answer, replayed.
  if (accepted->replay) res.set("Idempotent-Replayed", "true");
  co_return res;
}

// ---------------------------------------------------------------- reads

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoding of a URL component; with `plus_is_space`, application/x-www-form-urlencoded (a
// query key or value: '+' is a space), without it a path segment ('+' stays '+'). nullopt for a
// '%' not followed by two hex digits. (Boost.URL 1.81's decoded query views read past the end of
// a query that is a view into a larger buffer, so this stays local and small.)
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else if (s[i] != '%') {
      out += s[i];
    } else {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    }
  }
  return out;
}

std::optional<std::string> form_decode(std::string_view s) {
  return percent_decode(s, true);
}

// `status` takes one status or a comma-separated list ("pending,failed": what is not yet
// delivered); `webhook` only on the project's list.
result<delivery_query> parse_delivery_query(std::string_view query, const project_target& target,
                                            bool webhook_param) {
  delivery_query q;
  q.project = target.project;
  std::vector<field_error> errors;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    const auto decoded_key = form_decode(pair.substr(0, eq));
    const auto decoded_value =
        form_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!decoded_key || !decoded_value) {
      return validation_problem({{"query", "has a malformed percent-encoding"}},
                                "The query string is malformed.");
    }
    const std::string& key = *decoded_key;
    const std::string& value = *decoded_value;
    if (key == "status") {
      // Every piece between commas must be a status: "pending," and ",failed" are refused.
      std::string_view rest = value;
      bool good = true;
      for (bool last = false; good && !last;) {
        const std::size_t comma = rest.find(',');
        last = comma == std::string_view::npos;
        if (auto s = parse_delivery_status(rest.substr(0, comma))) {
          q.statuses.add(*s);
        } else if (rest.substr(0, comma) == "paused") {
          q.statuses.add_paused();
        } else {
          good = false;
        }
        if (!last) rest = rest.substr(comma + 1);
      }
      if (!good) {
        errors.push_back(
            {"status",
             "must be pending, paused, succeeded or failed, or a comma-separated list of them"});
      }
    } else if (key == "limit") {
      std::size_t n = 0;
      const auto r = std::from_chars(value.data(), value.data() + value.size(), n);
      if (r.ec != std::errc() || r.ptr != value.data() + value.size() || n < 1 ||
          n > kMaxDeliveryPage) {
        errors.push_back(
            {"limit", "must be an integer from 1 to " + std::to_string(kMaxDeliveryPage)});
      } else {
        q.limit = n;
      }
    } else if (key == "after") {
      if (auto id = object_id::parse(value)) {
        q.after = *id;
      } else {
        errors.push_back({"after", "must be a delivery id (24 hexadecimal digits)"});
      }
    } else if (key == "webhook" && webhook_param) {
      if (auto id = object_id::parse(value)) {
        q.webhook = *id;
      } else {
        errors.push_back({"webhook", "must be a webhook id (24 hexadecimal digits)"});
      }
    } else if (key == "eventType") {
      if (auto message = check_event_type(value)) {
        errors.push_back({"eventType", std::move(*message)});
      } else {
        q.event_type = value;
      }
    } else if (key == "since" || key == "until") {
      if (auto t = parse_rfc3339(value)) {
        (key == "since" ? q.since : q.until) = *t;
      } else {
        errors.push_back({key, "must be an RFC 3339 time such as 2026-12-01T00:00:00Z"});
      }
    } else {
      // A typo such as ?stauts= must not silently list everything.
      errors.push_back({key, "unknown query parameter"});
    }
  }
  if (q.since && q.until && *q.until <= *q.since) {
    errors.push_back({"until", "must be later than since"});
  }
  if (!errors.empty()) {
    return validation_problem(std::move(errors), "The query string is invalid.");
  }
  return q;
}

// A delivery as the API shows it: a pending one whose webhook is inactive is `paused`, with no
// nextAttemptAt (docs/delivery.md, "Paused deliveries").
boost::json::object delivery_json(const delivery_engine& log, const delivery& d) {
  boost::json::object o = to_json(d);
  if (log.is_paused(d)) {
    o["status"] = "paused";
    o["nextAttemptAt"] = nullptr;
  }
  return o;
}

response page_response(const delivery_engine& log, const delivery_page& page) {
  boost::json::array items;
  items.reserve(page.items.size());
  for (const auto& d : page.items) items.push_back(delivery_json(log, *d));
  boost::json::object out;
  out["data"] = std::move(items);
  out["next"] = page.next ? boost::json::value(page.next->to_string()) : nullptr;
  return json_response(bhttp::status::ok, out);
}

// A webhook's list (`by_webhook`: the path names it) or the project's (`?webhook=` may).
asio::awaitable<response> list_deliveries(app& a, request_context& ctx, bool by_webhook) {
  auto target = resolve(a, ctx, scope::deliveries_read);
  if (!target) co_return fail(ctx, target.error());
  std::optional<object_id> webhook;
  if (by_webhook) {
    auto resolved = co_await resolve_webhook(a, ctx, *target);
    if (!resolved) co_return fail(ctx, resolved.error());
    webhook = *resolved;
  }
  auto query = parse_delivery_query(ctx.query, *target, !by_webhook);
  if (!query) co_return fail(ctx, query.error());
  if (webhook) query->webhook = webhook;
  auto reading = read_history<delivery_page>(a, list_read{a.deliveries, std::move(*query)});
  auto page = co_await std::move(reading);
  if (!page) co_return fail(ctx, page.error());
  co_return page_response(*a.deliveries, *page);
}

asio::awaitable<response> get_delivery(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::deliveries_read);
  if (!target) co_return fail(ctx, target.error());
  auto webhook = co_await resolve_webhook(a, ctx, *target);
  if (!webhook) co_return fail(ctx, webhook.error());
  auto id = path_id(ctx, "deliveryId");
  if (!id) co_return fail(ctx, id.error());
  auto reading = read_history<std::optional<delivery_detail>>(
      a, delivery_read{a.deliveries, target->project, *id});
  auto found = co_await std::move(reading);
  if (!found) co_return fail(ctx, found.error());
  if (!*found || (*found)->record->webhook != *webhook) {
    co_return fail(
        ctx, make_problem(error_kind::not_found, "Delivery " + id->to_string() + " not found."));
  }
  // The list's attempt count becomes the attempts themselves: "a delivery with its attempts".
  boost::json::object out = delivery_json(*a.deliveries, *(*found)->record);
  boost::json::array attempts;
  attempts.reserve((*found)->attempts.size());
  for (const attempt& at : (*found)->attempts) attempts.push_back(to_json(at));
  out["attempts"] = std::move(attempts);
  co_return json_response(bhttp::status::ok, out);
}

// A path segment with its %XX escapes decoded ('+' stays '+'); nullopt for a broken escape.
std::optional<std::string> path_decode(std::string_view s) {
  return percent_decode(s, false);
}

// DELETE …/subjects/{subject}: every event of the subject in the project, with its deliveries
// and attempts, gone from every read before the 202 (docs/delivery.md, "Erasing a subject").
asio::awaitable<response> erase_subject(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::deliveries_write);
  if (!target) co_return fail(ctx, target.error());
  const std::optional<std::string> subject = path_decode(ctx.params.get("subject"));
  const auto invalid = check_subject(subject ? std::optional<std::string_view>(*subject)
                                             : std::optional<std::string_view>("\x01"));
  if (invalid) {
    co_return fail(
        ctx, validation_problem({{"subject", subject ? *invalid : "has a malformed %-escape"}},
                                "The subject in the path is invalid."));
  }
  delivery_engine& log = *a.deliveries;
  auto erasing = await_catalog<std::size_t>([&](completion<std::size_t> done) {
    log.erase_subject(target->project, *subject, std::move(done));
  });
  auto erased = co_await std::move(erasing);
  if (!erased) co_return fail(ctx, erased.error());
  co_return json_response(bhttp::status::accepted,
                          boost::json::object{{"events", static_cast<std::uint64_t>(*erased)}});
}

asio::awaitable<response> get_event(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::deliveries_read);
  if (!target) co_return fail(ctx, target.error());
  auto id = path_id(ctx, "eventId");
  if (!id) co_return fail(ctx, id.error());
  auto reading =
      read_history<std::optional<event_detail>>(a, event_read{a.deliveries, target->project, *id});
  auto found = co_await std::move(reading);
  if (!found) co_return fail(ctx, found.error());
  if (!*found) {
    co_return fail(ctx,
                   make_problem(error_kind::not_found, "Event " + id->to_string() + " not found."));
  }
  boost::json::object out = to_json(**found);
  // A pending delivery of an inactive webhook reads `paused`, as in the delivery lists.
  for (boost::json::value& entry : out["deliveries"].as_array()) {
    boost::json::object& d = entry.as_object();
    if (!d["status"].is_string() || d["status"].as_string() != "pending") continue;
    const auto webhook = object_id::parse(d["webhook"].as_string());
    const auto hook = webhook ? a.cat.find_webhook(*webhook) : nullptr;
    if (hook && !hook->active) d["status"] = "paused";
  }
  co_return json_response(bhttp::status::ok, out);
}

// ---------------------------------------------------------------- sending again

// The webhook of the path, when it is in the target project now: only an existing webhook can be
// sent to (a deleted one's deliveries stay readable, but are not sent again).
result<object_id> webhook_to_send(app& a, const request_context& ctx,
                                  const project_target& target) {
  auto id = path_id(ctx, "webhookId");
  if (!id) return id.error();
  const auto hook = a.cat.find_webhook(*id);
  if (!hook || hook->project != target.project || hook->organization != target.organization) {
    return webhook_not_found(*id);
  }
  return *id;
}

// These routes take no body; one that is sent must be a JSON object without fields.
result<void> no_fields(const app& a, const request_context& ctx) {
  if (ctx.req.body().empty()) return {};
  auto body = read_json_body(ctx.req, a.max_body_bytes);
  if (!body) return body.error();
  if (!body->is_object()) {
    return not_a_json_object("must be a JSON object (or no body at all)");
  }
  std::vector<field_error> errors;
  reject_unknown_fields(body->get_object(), {}, errors);
  if (!errors.empty()) return validation_problem(std::move(errors));
  return {};
}

// POST …/deliveries/{deliveryId}/redeliver: pending again under the same id, due now, with a
// fresh retry schedule (docs/delivery.md, "Redelivery and recovery").
asio::awaitable<response> redeliver(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::deliveries_write);
  if (!target) co_return fail(ctx, target.error());
  auto webhook = webhook_to_send(a, ctx, *target);
  if (!webhook) co_return fail(ctx, webhook.error());
  auto id = path_id(ctx, "deliveryId");
  if (!id) co_return fail(ctx, id.error());
  if (auto empty = no_fields(a, ctx); !empty) co_return fail(ctx, empty.error());
  delivery_engine& log = *a.deliveries;
  auto redelivering = await_catalog<std::shared_ptr<const delivery>>(
      [&](completion<std::shared_ptr<const delivery>> done) {
        log.redeliver(target->project, *webhook, *id, std::move(done));
      });
  auto redelivered = co_await std::move(redelivering);
  if (!redelivered) co_return fail(ctx, redelivered.error());
  co_return json_response(bhttp::status::accepted, to_json(**redelivered));
}

// POST …/webhooks/{webhookId}/recover {since, until?}: every failed delivery of the webhook
// created in the window, redelivered; 202 {deliveries: N} once all of them are durable.
asio::awaitable<response> recover(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::deliveries_write);
  if (!target) co_return fail(ctx, target.error());
  auto webhook = webhook_to_send(a, ctx, *target);
  if (!webhook) co_return fail(ctx, webhook.error());
  auto body = read_json_body(ctx.req, a.max_body_bytes);
  if (!body) co_return fail(ctx, body.error());
  auto window = parse_recover(*body);
  if (!window) co_return fail(ctx, window.error());
  delivery_engine& log = *a.deliveries;
  auto recovering = await_catalog<std::size_t>([&](completion<std::size_t> done) {
    log.recover(target->project, *webhook, window->since, window->until, std::move(done));
  });
  auto recovered = co_await std::move(recovering);
  if (!recovered) co_return fail(ctx, recovered.error());
  co_return json_response(
      bhttp::status::accepted,
      boost::json::object{{"deliveries", static_cast<std::uint64_t>(*recovered)}});
}

// POST …/webhooks/{webhookId}/test: a webhook.ping event to that webhook alone, active or not
// (docs/delivery.md, "Test pings").
asio::awaitable<response> send_test(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::deliveries_write);
  if (!target) co_return fail(ctx, target.error());
  auto webhook = webhook_to_send(a, ctx, *target);
  if (!webhook) co_return fail(ctx, webhook.error());
  if (auto empty = no_fields(a, ctx); !empty) co_return fail(ctx, empty.error());
  delivery_engine& log = *a.deliveries;
  auto sending = await_catalog<std::shared_ptr<const delivery>>(
      [&](completion<std::shared_ptr<const delivery>> done) {
        log.send_test(target->organization, target->project, *webhook, std::move(done));
      });
  auto sent = co_await std::move(sending);
  if (!sent) co_return fail(ctx, sent.error());
  co_return json_response(bhttp::status::accepted, to_json(**sent));
}

}  // namespace

void register_event_routes(router& r, app& a) {
  using bhttp::verb;
  const std::string project = "/api/v1/organizations/{organizationId}/projects/{projectId}";
  const std::string deliveries = project + "/settings/webhooks/{webhookId}/deliveries";
  r.add(verb::post, project + "/events", [&a](request_context& c) { return ingest_event(a, c); });
  r.add(verb::get, project + "/events/{eventId}",
        [&a](request_context& c) { return get_event(a, c); });
  r.add(verb::delete_, project + "/subjects/{subject}",
        [&a](request_context& c) { return erase_subject(a, c); });
  r.add(verb::get, project + "/deliveries",
        [&a](request_context& c) { return list_deliveries(a, c, false); });
  r.add(verb::get, deliveries, [&a](request_context& c) { return list_deliveries(a, c, true); });
  r.add(verb::get, deliveries + "/{deliveryId}",
        [&a](request_context& c) { return get_delivery(a, c); });
  const std::string hook = project + "/settings/webhooks/{webhookId}";
  r.add(verb::post, deliveries + "/{deliveryId}/redeliver",
        [&a](request_context& c) { return redeliver(a, c); });
  r.add(verb::post, hook + "/recover", [&a](request_context& c) { return recover(a, c); });
  r.add(verb::post, hook + "/test", [&a](request_context& c) { return send_test(a, c); });
}

}  // namespace hookd::http
