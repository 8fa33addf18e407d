// Events and deliveries (docs/openapi.yaml):
//   POST /api/v1/organizations/{organizationId}/projects/{projectId}/events         events:write
//   GET  …/settings/webhooks/{webhookId}/deliveries?status=&limit=&after=           deliveries:read
//   GET  …/settings/webhooks/{webhookId}/deliveries/{deliveryId}                    deliveries:read
// Order of checks as for webhooks: token (401), path ids (400), organization access (403, the
// same whether or not it exists), scope (403), organization and project (404), then the request.
//
// A deleted webhook's deliveries stay readable: the catalog no longer knows the webhook, so the
// webhook id is accepted when its deliveries belong to an event of this project. That is how a
// client sees the deliveries that the delete cancelled ("webhook deleted").

#include "core/delivery/delivery_log.hpp"
#include "http/api/api.hpp"
#include "http/api/auth.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include <charconv>
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
  auto token = authenticate(a.cat, ctx.req);
  if (!token) return token.error();
  auto org = path_id(ctx, "organizationId");
  if (!org) return org.error();
  auto proj = path_id(ctx, "projectId");
  if (!proj) return proj.error();
  if (auto allowed = authorize(**token, needed, *org); !allowed) return allowed.error();
  if (!a.cat.find_organization(*org)) {
    return make_problem(error_kind::not_found, "Organization " + org->to_string() + " not found.");
  }
  auto found = a.cat.find_project(*proj);
  if (!found || found->organization != *org) {
    return make_problem(error_kind::not_found, "Project " + proj->to_string() + " not found.");
  }
  if (a.deliveries == nullptr) {
    return make_problem(error_kind::unavailable, "Event delivery is not running.");
  }
  return project_target{std::move(*token), *org, *proj};
}

problem webhook_not_found(const object_id& id) {
  return make_problem(error_kind::not_found, "Webhook " + id.to_string() + " not found.");
}

bool event_in_project(const delivery_log& log, const object_id& event_id,
                      const project_target& target) {
  const auto e = log.find_event(event_id);
  return e && e->project == target.project && e->organization == target.organization;
}

// The webhook id of the path, when the webhook is in the target project, or was and has been
// deleted (its deliveries' events are in the project).
result<object_id> resolve_webhook(app& a, const request_context& ctx,
                                  const project_target& target) {
  auto id = path_id(ctx, "webhookId");
  if (!id) return id.error();
  if (const auto hook = a.cat.find_webhook(*id)) {
    if (hook->project != target.project || hook->organization != target.organization) {
      return webhook_not_found(*id);
    }
    return *id;
  }
  const auto page = a.deliveries->list_deliveries(*id, delivery_query{std::nullopt, 1, {}});
  if (page && !page->items.empty() &&
      event_in_project(*a.deliveries, page->items.front()->event, target)) {
    return *id;
  }
  return webhook_not_found(*id);
}

// ---------------------------------------------------------------- ingest

constexpr std::string_view kIdempotencyHeader = "Idempotency-Key";

result<ingest_request> parse_ingest(const request& req, const boost::json::value& body) {
  if (!body.is_object()) {
    return validation_problem({{"body", "must be a JSON object"}},
                              "The request body must be a JSON object.");
  }
  const boost::json::object& obj = body.get_object();
  std::vector<field_error> errors;
  for (const auto& member : obj) {
    const std::string_view key(member.key().data(), member.key().size());
    if (key != "type" && key != "data" && key != "idempotencyKey") {
      errors.push_back({std::string(key), "unknown field"});
    }
  }

  ingest_request in;
  if (const auto* type = obj.if_contains("type"); type == nullptr) {
    errors.push_back({"type", "is required"});
  } else if (!type->is_string()) {
    errors.push_back({"type", "must be a string"});
  } else {
    in.type = std::string(type->get_string());
  }
  // Any JSON value, null included; only absence is an error.
  if (const auto* data = obj.if_contains("data"); data == nullptr) {
    errors.push_back({"data", "is required (any JSON value, null included)"});
  } else {
    in.data = boost::json::serialize(*data);
  }

  std::optional<std::string> from_body;
  if (const auto* key = obj.if_contains("idempotencyKey"); key != nullptr) {
    if (!key->is_string()) {
      errors.push_back({"idempotencyKey", "must be a string"});
    } else {
      from_body = std::string(key->get_string());
    }
  }
  std::optional<std::string> from_header;
  if (auto it = req.find(kIdempotencyHeader); it != req.end()) {
    from_header = std::string(it->value());
  }
  if (from_body && from_header && *from_body != *from_header) {
    errors.push_back({"idempotencyKey", "differs from the Idempotency-Key header; send one"});
  }
  in.idempotency_key = from_body ? std::move(from_body) : std::move(from_header);

  if (!errors.empty()) return validation_problem(std::move(errors));
  return in;
}

asio::awaitable<response> ingest_event(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::events_write);
  if (!target) co_return fail(ctx, target.error());
  auto body = read_json_body(ctx.req, a.max_body_bytes);
  if (!body) co_return fail(ctx, body.error());
  auto in = parse_ingest(ctx.req, *body);
  if (!in) co_return fail(ctx, in.error());
  in->token = target->token->id;
  in->organization = target->organization;
  in->project = target->project;

  delivery_log& log = *a.deliveries;
  auto accepted = co_await await_catalog<ingest_result>(
      [&](completion<ingest_result> done) { log.ingest(std::move(*in), std::move(done)); });
  if (!accepted) co_return fail(ctx, accepted.error());
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

// application/x-www-form-urlencoded decoding of one key or value: %XX and '+' for space.
// nullopt for a '%' not followed by two hex digits. (Boost.URL 1.81's decoded query views read
// past the end of a query that is a view into a larger buffer, so this stays local and small.)
std::optional<std::string> form_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
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

result<delivery_query> parse_delivery_query(std::string_view query) {
  delivery_query q;
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
      if (auto s = parse_delivery_status(value)) {
        q.status = *s;
      } else {
        errors.push_back({"status", "must be pending, succeeded or failed"});
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
    } else {
      // A typo such as ?stauts= must not silently list everything.
      errors.push_back({key, "unknown query parameter"});
    }
  }
  if (!errors.empty()) {
    return validation_problem(std::move(errors), "The query string is invalid.");
  }
  return q;
}

asio::awaitable<response> list_deliveries(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::deliveries_read);
  if (!target) co_return fail(ctx, target.error());
  auto webhook = resolve_webhook(a, ctx, *target);
  if (!webhook) co_return fail(ctx, webhook.error());
  auto query = parse_delivery_query(ctx.query);
  if (!query) co_return fail(ctx, query.error());
  auto page = a.deliveries->list_deliveries(*webhook, *query);
  if (!page) co_return fail(ctx, page.error());

  boost::json::array items;
  items.reserve(page->items.size());
  for (const auto& d : page->items) items.push_back(to_json(*d));
  boost::json::object out;
  out["data"] = std::move(items);
  out["next"] = page->next ? boost::json::value(page->next->to_string()) : nullptr;
  co_return json_response(bhttp::status::ok, out);
}

asio::awaitable<response> get_delivery(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::deliveries_read);
  if (!target) co_return fail(ctx, target.error());
  auto webhook = resolve_webhook(a, ctx, *target);
  if (!webhook) co_return fail(ctx, webhook.error());
  auto id = path_id(ctx, "deliveryId");
  if (!id) co_return fail(ctx, id.error());
  const auto found = a.deliveries->find_delivery(*id);
  if (!found || found->record->webhook != *webhook ||
      !event_in_project(*a.deliveries, found->record->event, *target)) {
    co_return fail(
        ctx, make_problem(error_kind::not_found, "Delivery " + id->to_string() + " not found."));
  }
  // The list's attempt count becomes the attempts themselves: "a delivery with its attempts".
  boost::json::object out = to_json(*found->record);
  boost::json::array attempts;
  attempts.reserve(found->attempts->size());
  for (const attempt& at : *found->attempts) attempts.push_back(to_json(at));
  out["attempts"] = std::move(attempts);
  co_return json_response(bhttp::status::ok, out);
}

}  // namespace

void register_event_routes(router& r, app& a) {
  using bhttp::verb;
  const std::string project = "/api/v1/organizations/{organizationId}/projects/{projectId}";
  const std::string deliveries = project + "/settings/webhooks/{webhookId}/deliveries";
  r.add(verb::post, project + "/events", [&a](request_context& c) { return ingest_event(a, c); });
  r.add(verb::get, deliveries, [&a](request_context& c) { return list_deliveries(a, c); });
  r.add(verb::get, deliveries + "/{deliveryId}",
        [&a](request_context& c) { return get_delivery(a, c); });
}

}  // namespace hookd::http
