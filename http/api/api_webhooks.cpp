// The webhooks API (docs/openapi.yaml) under
// /api/v1/organizations/{organizationId}/projects/{projectId}/settings/webhooks.
// Order of checks: token (401), path ids (400), organization access (403, the same whether or not
// the organization exists), scope (403), organization and project (404), body (415/400), then
// the catalog. A webhook of another project is a 404, like an unknown one.

#include "core/catalog/entities.hpp"
#include "core/catalog/validation.hpp"
#include "core/delivery/delivery_engine.hpp"
#include "core/delivery/endpoint_health.hpp"
#include "core/delivery/signing.hpp"
#include "http/api/api.hpp"
#include "http/api/auth.hpp"

#include <optional>
#include <string>

namespace hookd::http {
namespace {

using webhook_ptr = std::shared_ptr<const webhook>;

// The organization and project a request addresses, after every access check has passed.
struct project_target {
  object_id organization;
  object_id project;
  std::optional<object_id> webhook;  // engaged on .../webhooks/{webhookId} routes
  // What the token sees of custom header values: they often carry the receiver's credentials, so
  // only a token that may change the webhook sees them (docs/operations.md, "Security model").
  header_values values = header_values::masked;
};

std::string webhooks_path(const object_id& org, const object_id& proj) {
  return "/api/v1/organizations/" + org.to_string() + "/projects/" + proj.to_string() +
         "/settings/webhooks";
}

result<project_target> resolve(app& a, const request_context& ctx, scope needed,
                               bool with_webhook) {
  auto token = authenticate(a, ctx.req);
  if (!token) return token.error();

  project_target target;
  auto org = path_id(ctx, "organizationId");
  if (!org) return org.error();
  target.organization = *org;
  auto proj = path_id(ctx, "projectId");
  if (!proj) return proj.error();
  target.project = *proj;
  if (with_webhook) {
    auto hook = path_id(ctx, "webhookId");
    if (!hook) return hook.error();
    target.webhook = *hook;
  }

  if (auto allowed = authorize(**token, needed, target.organization); !allowed) {
    return allowed.error();
  }
  if (auto allowed = authorize_project(**token, target.project); !allowed) return allowed.error();
  if ((*token)->scopes.allows(scope::webhooks_write)) target.values = header_values::shown;
  if (!a.cat.find_organization(target.organization)) {
    return make_problem(error_kind::not_found,
                        "Organization " + target.organization.to_string() + " not found.");
  }
  auto found = a.cat.find_project(target.project);
  if (!found || found->organization != target.organization) {
    return make_problem(error_kind::not_found,
                        "Project " + target.project.to_string() + " not found.");
  }
  return target;
}

problem webhook_not_found(const object_id& id) {
  return make_problem(error_kind::not_found, "Webhook " + id.to_string() + " not found.");
}

// The webhook of the target, or a 404 when it is unknown or belongs to another project.
result<webhook_ptr> find_in_project(app& a, const project_target& target) {
  auto hook = a.cat.find_webhook(*target.webhook);
  if (!hook || hook->project != target.project || hook->organization != target.organization) {
    return webhook_not_found(*target.webhook);
  }
  return hook;
}

// What …/secret and …/secret/rotate answer: {secret}, and for a v1a webhook its publicKey
// (docs/delivery.md, "Signing").
boost::json::object secret_json(const webhook& hook) {
  boost::json::object out;
  out["secret"] = hook.secret.value();
  if (auto public_key = signing_public_key(hook.secret.value()))
    out["publicKey"] = std::move(*public_key);
  return out;
}

asio::awaitable<response> list_webhooks(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::webhooks_read, false);
  if (!target) co_return fail(ctx, target.error());
  // Each webhook's JSON text is cached with it; the list is those texts joined.
  auto hooks = a.cat.list_webhooks(target->project);
  std::size_t size = 2;
  for (const auto& hook : *hooks) size += to_json_text(*hook, target->values).size() + 1;
  std::string out;
  out.reserve(size);
  out.push_back('[');
  for (const auto& hook : *hooks) {
    if (out.size() > 1) out.push_back(',');
    out += to_json_text(*hook, target->values);
  }
  out.push_back(']');
  co_return json_response(bhttp::status::ok, std::move(out));
}

asio::awaitable<response> create_webhook(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::webhooks_write, false);
  if (!target) co_return fail(ctx, target.error());
  auto body = read_json_body(ctx.req, a.max_body_bytes);
  if (!body) co_return fail(ctx, body.error());
  auto input = parse_webhook_input(*body);
  if (!input) co_return fail(ctx, input.error());

  auto created = co_await await_catalog<webhook_ptr>([&](completion<webhook_ptr> done) {
    a.cat.create_webhook(target->organization, target->project, std::move(*input), std::move(done));
  });
  if (!created) co_return fail(ctx, created.error());
  const webhook& hook = **created;
  // The only response besides .../secret that carries the signing secret.
  boost::json::object out = to_json(hook);
  boost::json::object secret = secret_json(hook);
  for (auto& member : secret) out[member.key()] = std::move(member.value());
  co_return created_response(
      webhooks_path(target->organization, target->project) + "/" + hook.id.to_string(), out);
}

asio::awaitable<response> get_webhook(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::webhooks_read, true);
  if (!target) co_return fail(ctx, target.error());
  auto hook = find_in_project(a, *target);
  if (!hook) co_return fail(ctx, hook.error());
  co_return json_response(bhttp::status::ok, to_json_text(**hook, target->values));
}

// The signing secret lets its holder forge deliveries, so reading it takes the scope that may
// change the webhook (docs/operations.md, "Security model").
asio::awaitable<response> get_webhook_secret(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::webhooks_write, true);
  if (!target) co_return fail(ctx, target.error());
  auto hook = find_in_project(a, *target);
  if (!hook) co_return fail(ctx, hook.error());
  co_return json_response(bhttp::status::ok, secret_json(**hook));
}

// POST …/secret/rotate {secret?}: the body is optional (none, or {}: hookd makes the secret). The
// catalog finds the webhook (a 404 like the other routes) and checks a chosen secret's form.
asio::awaitable<response> rotate_webhook_secret(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::webhooks_write, true);
  if (!target) co_return fail(ctx, target.error());
  secret_rotation_input input;
  if (!ctx.req.body().empty()) {
    auto body = read_json_body(ctx.req, a.max_body_bytes);
    if (!body) co_return fail(ctx, body.error());
    auto parsed = parse_secret_rotation(*body);
    if (!parsed) co_return fail(ctx, parsed.error());
    input = std::move(*parsed);
  }
  auto rotated = co_await await_catalog<webhook_ptr>([&](completion<webhook_ptr> done) {
    a.cat.rotate_webhook_secret(target->organization, target->project, *target->webhook,
                                std::move(input.secret), std::move(done));
  });
  if (!rotated) co_return fail(ctx, rotated.error());
  co_return json_response(bhttp::status::ok, secret_json(**rotated));
}

asio::awaitable<response> update_webhook(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::webhooks_write, true);
  if (!target) co_return fail(ctx, target.error());
  auto body = read_json_body(ctx.req, a.max_body_bytes);
  if (!body) co_return fail(ctx, body.error());
  auto patch = parse_webhook_patch(*body);
  if (!patch) co_return fail(ctx, patch.error());

  const webhook_ptr before = a.cat.find_webhook(*target->webhook);
  const bool switching_on = before && !before->active && patch->active.value_or(false);
  if (switching_on && a.deliveries != nullptr) {
    // Its paused backlog becomes due now, oldest first (docs/delivery.md, "Paused deliveries").
    // Before the catalog has it active, so that none goes at its older time ahead of the others;
    // while it is inactive, they stay held whatever their time (also should the update fail).
    a.deliveries->resume_webhook(*target->webhook);
  }
  auto updated = co_await await_catalog<webhook_ptr>([&](completion<webhook_ptr> done) {
    a.cat.update_webhook(target->organization, target->project, *target->webhook, std::move(*patch),
                         std::move(done));
  });
  if (!updated) co_return fail(ctx, updated.error());
  if (switching_on && (*updated)->active && a.health != nullptr) {
    a.health->reactivated(*target->webhook);  // its failure streak starts afresh
  }
  co_return json_response(bhttp::status::ok, to_json_text(**updated));
}

asio::awaitable<response> delete_webhook(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::webhooks_write, true);
  if (!target) co_return fail(ctx, target.error());
  auto deleted = co_await await_catalog<void>([&](completion<void> done) {
    a.cat.delete_webhook(target->organization, target->project, *target->webhook, std::move(done));
  });
  if (!deleted) co_return fail(ctx, deleted.error());
  if (a.health != nullptr) a.health->deleted(*target->webhook);
  if (a.deliveries != nullptr) {
    // Its pending deliveries fail with "webhook deleted". Should this write fail, the webhook is
    // gone all the same, and the dispatcher cancels them when the scheduler drops their jobs.
    (void)co_await await_catalog<std::size_t>([&](completion<std::size_t> done) {
      a.deliveries->cancel_webhook(*target->webhook, std::move(done));
    });
  }
  co_return empty_response(bhttp::status::no_content);
}

// GET …/webhooks/{webhookId}/health (docs/delivery.md, "Endpoint health").
asio::awaitable<response> get_webhook_health(app& a, request_context& ctx) {
  auto target = resolve(a, ctx, scope::webhooks_read, true);
  if (!target) co_return fail(ctx, target.error());
  auto hook = find_in_project(a, *target);
  if (!hook) co_return fail(ctx, hook.error());
  if (a.health == nullptr) {
    co_return fail(ctx, make_problem(error_kind::unavailable, "Event delivery is not running."));
  }
  co_return json_response(bhttp::status::ok, to_json(a.health->report(**hook)));
}

}  // namespace

void register_webhook_routes(router& r, app& a) {
  using bhttp::verb;
  const std::string hooks =
      "/api/v1/organizations/{organizationId}/projects/{projectId}/settings/webhooks";
  const std::string hook = hooks + "/{webhookId}";

  // The lambdas only forward; the coroutines get `a` and the context as parameters.
  r.add(verb::get, hooks, [&a](request_context& c) { return list_webhooks(a, c); });
  r.add(verb::post, hooks, [&a](request_context& c) { return create_webhook(a, c); });
  r.add(verb::get, hook, [&a](request_context& c) { return get_webhook(a, c); });
  r.add(verb::patch, hook, [&a](request_context& c) { return update_webhook(a, c); });
  r.add(verb::delete_, hook, [&a](request_context& c) { return delete_webhook(a, c); });
  r.add(verb::get, hook + "/secret", [&a](request_context& c) { return get_webhook_secret(a, c); });
  r.add(verb::post, hook + "/secret/rotate",
        [&a](request_context& c) { return rotate_webhook_secret(a, c); });
  r.add(verb::get, hook + "/health", [&a](request_context& c) { return get_webhook_health(a, c); });
}

}  // namespace hookd::http
