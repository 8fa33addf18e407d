// POST /api/v1/organizations/{organizationId}/projects/{projectId}/portal-sessions
// (docs/portal.md, docs/openapi.yaml): a signed, stateless token for that one project and the URL
// that opens the portal with it. Order of checks as for the webhooks API: token (401), path ids
// (400), organization and scope (403), organization and project (404), body (415/400).

#include "core/common/clock.hpp"
#include "http/api/api.hpp"
#include "http/api/auth.hpp"
#include "http/api/portal_token.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <string>

namespace hookd::http {
namespace {

problem expires_in_problem(std::string message) {
  return problem{error_kind::validation,
                 "The field 'expiresIn' is not valid.",
                 {{"expiresIn", std::move(message)}}};
}

constexpr std::string_view kExpiresInRule =
    "must be a whole number of seconds from 1 to 86400, or a duration such as \"30m\" (at most "
    "24h)";

// The session's lifetime from the body: {} or no body at all is the default hour.
result<std::chrono::seconds> read_lifetime(const app& a, const request& req) {
  if (req.body().empty()) return kPortalDefaultLifetime;
  auto body = read_json_body(req, a.max_body_bytes);
  if (!body) return body.error();
  if (!body->is_object()) {
    return problem{error_kind::validation, "The request body must be a JSON object.", {}};
  }
  std::chrono::seconds lifetime = kPortalDefaultLifetime;
  problem unknown{error_kind::validation, "The request body has unknown fields.", {}};
  for (const auto& field : body->get_object()) {
    if (field.key() != "expiresIn") {
      unknown.errors.push_back({std::string(field.key()), "unknown field"});
      continue;
    }
    const auto& v = field.value();
    if (v.is_int64()) {
      const auto n = v.get_int64();
      if (n < 1 || n > kPortalMaxLifetime.count()) {
        return expires_in_problem(std::string(kExpiresInRule));
      }
      lifetime = std::chrono::seconds(n);
    } else if (v.is_string()) {
      const auto d = parse_duration(v.get_string());
      if (!d || *d < std::chrono::seconds(1) || *d > kPortalMaxLifetime) {
        return expires_in_problem(std::string(kExpiresInRule));
      }
      lifetime = std::chrono::duration_cast<std::chrono::seconds>(*d);
    } else {
      return expires_in_problem(std::string(kExpiresInRule));
    }
  }
  if (!unknown.errors.empty()) return unknown;
  return lifetime;
}

bool is_host_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == ':' || c == '[' || c == ']' || c == '_';
}

// Where the portal is: --public-url, else the scheme of this listener and the request's Host.
result<std::string> portal_origin(const app& a, const request& req) {
  if (!a.public_url.empty()) return a.public_url;
  auto host = req.find(bhttp::field::host);
  const std::string_view value =
      host == req.end() ? std::string_view{} : std::string_view(host->value());
  bool valid = !value.empty();
  for (char c : value) valid = valid && is_host_char(c);
  if (!valid) {
    return make_problem(error_kind::validation,
                        "The request's Host header cannot make the portal's address; set "
                        "--public-url (docs/operations.md).");
  }
  return std::string(a.https ? "https://" : "http://") + std::string(value);
}

asio::awaitable<response> create_portal_session(app& a, request_context& ctx) {
  auto token = authenticate(a, ctx.req);
  if (!token) co_return fail(ctx, token.error());
  auto org = path_id(ctx, "organizationId");
  if (!org) co_return fail(ctx, org.error());
  auto proj = path_id(ctx, "projectId");
  if (!proj) co_return fail(ctx, proj.error());
  if (auto allowed = authorize(**token, scope::webhooks_write, *org); !allowed) {
    co_return fail(ctx, allowed.error());
  }
  // A session never opens another: its lifetime would have no end.
  if ((*token)->project) {
    co_return fail(
        ctx, make_problem(error_kind::forbidden, "A portal session cannot open portal sessions."));
  }
  if (!a.cat.find_organization(*org)) {
    co_return fail(ctx, make_problem(error_kind::not_found,
                                     "Organization " + org->to_string() + " not found."));
  }
  auto found = a.cat.find_project(*proj);
  if (!found || found->organization != *org) {
    co_return fail(
        ctx, make_problem(error_kind::not_found, "Project " + proj->to_string() + " not found."));
  }
  auto lifetime = read_lifetime(a, ctx.req);
  if (!lifetime) co_return fail(ctx, lifetime.error());
  if (a.portal_key.empty()) {
    co_return fail(ctx, make_problem(error_kind::unavailable, "Portal sessions are not running."));
  }
  auto origin = portal_origin(a, ctx.req);
  if (!origin) co_return fail(ctx, origin.error());

  const portal_claims claims{
      *org, *proj, now_ms() + std::chrono::duration_cast<std::chrono::milliseconds>(*lifetime)};
  std::string session = mint_portal_token(a.portal_key, claims);
  // The token travels in the fragment, which browsers never send to a server; the page takes it
  // out of the address bar at load (docs/portal.md).
  std::string url = *origin + "/portal/#token=" + session + "&organization=" + org->to_string() +
                    "&project=" + proj->to_string();
  boost::json::object out;
  out["url"] = url;
  out["token"] = session;
  out["expiresAt"] = format_rfc3339(claims.expires_at);
  out["organization"] = org->to_string();
  out["project"] = proj->to_string();
  co_return created_response(url, out);
}

}  // namespace

void register_portal_session_routes(router& r, app& a) {
  r.add(bhttp::verb::post,
        "/api/v1/organizations/{organizationId}/projects/{projectId}/portal-sessions",
        [&a](request_context& c) { return create_portal_session(a, c); });
}

}  // namespace hookd::http
