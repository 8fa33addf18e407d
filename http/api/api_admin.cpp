// The admin API (docs/openapi.yaml): organizations, their projects, and API tokens. Every route
// needs the `admin` scope. Order of checks: token (401), path ids (400), scope (403), existence
// (404), body (415/400), then the catalog.

#include "core/catalog/entities.hpp"
#include "core/catalog/validation.hpp"
#include "core/delivery/delivery_engine.hpp"
#include "http/api/api.hpp"
#include "http/api/auth.hpp"

#include <boost/json/array.hpp>

#include <string>
#include <vector>

namespace hookd::http {
namespace {

using org_ptr = std::shared_ptr<const organization>;
using project_ptr = std::shared_ptr<const project>;

std::string organization_path(const object_id& org) {
  return "/api/v1/organizations/" + org.to_string();
}
std::string project_path(const object_id& org, const object_id& proj) {
  return organization_path(org) + "/projects/" + proj.to_string();
}

// The caller must hold `admin`.
result<void> require_admin(app& a, const request_context& ctx) {
  auto token = authenticate(a, ctx.req);
  if (!token) return token.error();
  return authorize(**token, scope::admin);
}

result<org_ptr> existing_organization(app& a, const object_id& id) {
  if (auto org = a.cat.find_organization(id)) return org;
  return make_problem(error_kind::not_found, "Organization " + id.to_string() + " not found.");
}

// The organization of the path, for an admin caller, in the documented order of checks.
result<org_ptr> admin_organization(app& a, const request_context& ctx) {
  auto token = authenticate(a, ctx.req);
  if (!token) return token.error();
  auto org = path_id(ctx, "organizationId");
  if (!org) return org.error();
  if (auto allowed = authorize(**token, scope::admin); !allowed) return allowed.error();
  return existing_organization(a, *org);
}

// The project of the path, likewise; a project of another organization is a 404.
result<project_ptr> admin_project(app& a, const request_context& ctx) {
  auto token = authenticate(a, ctx.req);
  if (!token) return token.error();
  auto org = path_id(ctx, "organizationId");
  if (!org) return org.error();
  auto proj_id = path_id(ctx, "projectId");
  if (!proj_id) return proj_id.error();
  if (auto allowed = authorize(**token, scope::admin); !allowed) return allowed.error();
  if (auto found = existing_organization(a, *org); !found) return found.error();
  auto proj = a.cat.find_project(*proj_id);
  if (!proj || proj->organization != *org) {
    return make_problem(error_kind::not_found, "Project " + proj_id->to_string() + " not found.");
  }
  return proj;
}

// The delivery side of deleting projects (docs/delivery.md, "Deleting"), once the catalog no
// longer has them, so that nothing new is ingested for them meanwhile. Should a write fail, the
// projects are gone all the same: their pending deliveries are never attempted (their webhooks
// are gone), and the next start finishes what is left in the queue.
asio::awaitable<void> delete_deliveries(app& a, std::vector<object_id> projects) {
  if (a.deliveries == nullptr) co_return;
  for (const object_id& p : projects) {
    (void)co_await await_catalog<std::size_t>(
        [&](completion<std::size_t> done) { a.deliveries->delete_project(p, std::move(done)); });
  }
}

// ---- organizations

asio::awaitable<response> create_organization(app& a, request_context& ctx) {
  if (auto ok = require_admin(a, ctx); !ok) co_return fail(ctx, ok.error());
  auto body = read_json_body(ctx.req, a.max_body_bytes);
  if (!body) co_return fail(ctx, body.error());
  auto input = parse_organization_input(*body);
  if (!input) co_return fail(ctx, input.error());

  auto created = co_await await_catalog<org_ptr>([&](completion<org_ptr> done) {
    a.cat.create_organization(std::move(*input), std::move(done));
  });
  if (!created) co_return fail(ctx, created.error());
  co_return created_response(organization_path((*created)->id), to_json(**created));
}

asio::awaitable<response> list_organizations(app& a, request_context& ctx) {
  if (auto ok = require_admin(a, ctx); !ok) co_return fail(ctx, ok.error());
  boost::json::array out;
  for (const auto& org : a.cat.list_organizations()) out.push_back(to_json(*org));
  co_return json_response(bhttp::status::ok, out);
}

asio::awaitable<response> get_organization(app& a, request_context& ctx) {
  auto org = admin_organization(a, ctx);
  if (!org) co_return fail(ctx, org.error());
  co_return json_response(bhttp::status::ok, to_json(**org));
}

// The 204 comes once the organization, its projects and their deliveries are gone.
asio::awaitable<response> delete_organization(app& a, request_context& ctx) {
  auto org = admin_organization(a, ctx);
  if (!org) co_return fail(ctx, org.error());
  const object_id org_id = (*org)->id;
  auto deleted =
      co_await await_catalog<std::vector<object_id>>([&](completion<std::vector<object_id>> done) {
        a.cat.delete_organization(org_id, std::move(done));
      });
  if (!deleted) co_return fail(ctx, deleted.error());
  co_await delete_deliveries(a, std::move(*deleted));
  co_return empty_response(bhttp::status::no_content);
}

// ---- projects

asio::awaitable<response> create_project(app& a, request_context& ctx) {
  auto org = admin_organization(a, ctx);
  if (!org) co_return fail(ctx, org.error());
  auto body = read_json_body(ctx.req, a.max_body_bytes);
  if (!body) co_return fail(ctx, body.error());
  auto input = parse_project_input(*body);
  if (!input) co_return fail(ctx, input.error());

  const object_id org_id = (*org)->id;
  auto created = co_await await_catalog<project_ptr>([&](completion<project_ptr> done) {
    a.cat.create_project(org_id, std::move(*input), std::move(done));
  });
  if (!created) co_return fail(ctx, created.error());
  co_return created_response(project_path(org_id, (*created)->id), to_json(**created));
}

asio::awaitable<response> list_projects(app& a, request_context& ctx) {
  auto org = admin_organization(a, ctx);
  if (!org) co_return fail(ctx, org.error());
  boost::json::array out;
  for (const auto& p : a.cat.list_projects((*org)->id)) out.push_back(to_json(*p));
  co_return json_response(bhttp::status::ok, out);
}

asio::awaitable<response> get_project(app& a, request_context& ctx) {
  auto proj = admin_project(a, ctx);
  if (!proj) co_return fail(ctx, proj.error());
  co_return json_response(bhttp::status::ok, to_json(**proj));
}

// The 204 comes once the project, its webhooks and its deliveries are gone.
asio::awaitable<response> delete_project(app& a, request_context& ctx) {
  auto proj = admin_project(a, ctx);
  if (!proj) co_return fail(ctx, proj.error());
  const object_id org_id = (*proj)->organization;
  const object_id proj_id = (*proj)->id;
  auto deleted = co_await await_catalog<void>(
      [&](completion<void> done) { a.cat.delete_project(org_id, proj_id, std::move(done)); });
  if (!deleted) co_return fail(ctx, deleted.error());
  // Built before the co_await: GCC 12 rejects a braced initializer inside an awaited call.
  std::vector<object_id> projects{proj_id};
  co_await delete_deliveries(a, std::move(projects));
  co_return empty_response(bhttp::status::no_content);
}

// ---- tokens

asio::awaitable<response> create_token(app& a, request_context& ctx) {
  if (auto ok = require_admin(a, ctx); !ok) co_return fail(ctx, ok.error());
  auto body = read_json_body(ctx.req, a.max_body_bytes);
  if (!body) co_return fail(ctx, body.error());
  auto input = parse_token_input(*body);
  if (!input) co_return fail(ctx, input.error());

  auto created = co_await await_catalog<created_token>([&](completion<created_token> done) {
    a.cat.create_token(std::move(*input), std::nullopt, std::move(done));
  });
  if (!created) co_return fail(ctx, created.error());

  // The token string is shown here once; only its digest is kept.
  boost::json::object out;
  for (const auto& field : to_json(*created->token)) {
    if (field.key() == "createdAt") out["token"] = created->secret;
    out[field.key()] = field.value();
  }
  if (!out.contains("token")) out["token"] = created->secret;
  co_return created_response("/api/v1/tokens/" + created->token->id.to_string(), out);
}

asio::awaitable<response> list_tokens(app& a, request_context& ctx) {
  if (auto ok = require_admin(a, ctx); !ok) co_return fail(ctx, ok.error());
  boost::json::array out;
  for (const auto& t : a.cat.list_tokens()) out.push_back(to_json(*t));
  co_return json_response(bhttp::status::ok, out);
}

// The 201 of POST /api/v1/tokens points here (Location), so that address resolves too.
asio::awaitable<response> get_token(app& a, request_context& ctx) {
  auto token = authenticate(a, ctx.req);
  if (!token) co_return fail(ctx, token.error());
  auto id = path_id(ctx, "tokenId");
  if (!id) co_return fail(ctx, id.error());
  if (auto allowed = authorize(**token, scope::admin); !allowed)
    co_return fail(ctx, allowed.error());
  auto found = a.cat.find_token(*id);
  if (!found) {
    co_return fail(ctx,
                   make_problem(error_kind::not_found, "Token " + id->to_string() + " not found."));
  }
  co_return json_response(bhttp::status::ok, to_json(*found));
}

asio::awaitable<response> delete_token(app& a, request_context& ctx) {
  auto token = authenticate(a, ctx.req);
  if (!token) co_return fail(ctx, token.error());
  auto id = path_id(ctx, "tokenId");
  if (!id) co_return fail(ctx, id.error());
  if (auto allowed = authorize(**token, scope::admin); !allowed)
    co_return fail(ctx, allowed.error());

  auto deleted = co_await await_catalog<void>(
      [&](completion<void> done) { a.cat.delete_token(*id, std::move(done)); });
  if (!deleted) co_return fail(ctx, deleted.error());
  co_return empty_response(bhttp::status::no_content);
}

}  // namespace

void register_admin_routes(router& r, app& a) {
  using bhttp::verb;
  const std::string orgs = "/api/v1/organizations";
  const std::string org = orgs + "/{organizationId}";
  const std::string projects = org + "/projects";
  const std::string tokens = "/api/v1/tokens";

  // The lambdas only forward: the coroutines take `a` and the context as parameters, so nothing
  // a coroutine uses lives in a lambda's captures.
  r.add(verb::post, orgs, [&a](request_context& c) { return create_organization(a, c); });
  r.add(verb::get, orgs, [&a](request_context& c) { return list_organizations(a, c); });
  r.add(verb::get, org, [&a](request_context& c) { return get_organization(a, c); });
  r.add(verb::delete_, org, [&a](request_context& c) { return delete_organization(a, c); });
  r.add(verb::post, projects, [&a](request_context& c) { return create_project(a, c); });
  r.add(verb::get, projects, [&a](request_context& c) { return list_projects(a, c); });
  r.add(verb::get, projects + "/{projectId}",
        [&a](request_context& c) { return get_project(a, c); });
  r.add(verb::delete_, projects + "/{projectId}",
        [&a](request_context& c) { return delete_project(a, c); });
  r.add(verb::post, tokens, [&a](request_context& c) { return create_token(a, c); });
  r.add(verb::get, tokens, [&a](request_context& c) { return list_tokens(a, c); });
  r.add(verb::get, tokens + "/{tokenId}", [&a](request_context& c) { return get_token(a, c); });
  r.add(verb::delete_, tokens + "/{tokenId}",
        [&a](request_context& c) { return delete_token(a, c); });
}

}  // namespace hookd::http
