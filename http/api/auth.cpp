#include "http/api/auth.hpp"

#include "core/common/crypto.hpp"
#include "http/api/portal_token.hpp"
#include "http/api/token_digest_cache.hpp"

#include <string>

namespace hookd::http {
namespace {

constexpr std::string_view kBearer = "bearer";

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view as_view(const sha256_digest& d) noexcept {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

problem unauthorized(std::string detail) {
  return make_problem(error_kind::unauthorized, std::move(detail));
}

}  // namespace

std::optional<std::string_view> extract_token(const request& req) noexcept {
  // One pass over the fields in arrival order, the first of each name counting (what find()
  // returns, without its case-insensitive walk of a tree per name).
  std::optional<std::string_view> authorization, access_token;
  for (const auto& f : req) {
    if (f.name() == bhttp::field::authorization) {
      if (!authorization) authorization = f.value();
    } else if (!access_token && beast::iequals(f.name_string(), "x-access-token")) {
      access_token = f.value();
    }
  }
  if (authorization) {
    std::string_view value = trim(*authorization);
    auto space = value.find_first_of(" \t");
    if (space == std::string_view::npos || !beast::iequals(value.substr(0, space), kBearer))
      return std::nullopt;
    std::string_view token = trim(value.substr(space + 1));
    if (token.empty()) return std::nullopt;
    return token;
  }
  if (access_token) {
    std::string_view token = trim(*access_token);
    if (token.empty()) return std::nullopt;
    return token;
  }
  return std::nullopt;
}

result<std::shared_ptr<const api_token>> authenticate(const catalog& cat, const request& req) {
  auto presented = extract_token(req);
  if (!presented) {
    return unauthorized(
        "An API token is required: send 'Authorization: Bearer <token>' or "
        "'x-access-token: <token>'.");
  }
  // Hashed through the thread's cache (http/api/token_digest_cache.hpp); only the digest is looked
  // up, so revocation still takes effect at once.
  token_digest_cache& digests = this_thread_token_digests();
  const sha256_digest& digest = digests.digest(*presented);
  auto token = cat.find_token_by_digest(digest);
  // The index lookup already matched; the constant-time comparison keeps the final decision
  // independent of how many leading bytes agree, whatever structure the index uses.
  if (!token || !constant_time_equal(as_view(token->digest), as_view(digest))) {
    digests.forget(*presented);  // an unknown or revoked token's text does not stay cached
    return unauthorized("The API token is unknown or has been revoked.");
  }
  return token;
}

result<std::shared_ptr<const api_token>> authenticate(const app& a, const request& req) {
  auto presented = extract_token(req);
  if (!presented || !presented->starts_with(kPortalTokenPrefix) || a.portal_key.empty()) {
    return authenticate(a.cat, req);
  }
  const auto check = verify_portal_token(a.portal_key, *presented, now_ms());
  if (check.state == portal_token_state::invalid) {
    return unauthorized("The portal session token is not valid.");
  }
  if (check.state == portal_token_state::expired) {
    return unauthorized("The portal session expired at " + format_rfc3339(check.claims.expires_at) +
                        "; open a new one.");
  }
  auto token = std::make_shared<api_token>();
  token->name = "portal session";
  token->organizations.push_back(check.claims.organization);
  token->project = check.claims.project;
  token->scopes.add(scope::webhooks_read);
  token->scopes.add(scope::webhooks_write);
  token->scopes.add(scope::deliveries_read);
  token->scopes.add(scope::deliveries_write);
  return std::shared_ptr<const api_token>(std::move(token));
}

result<void> authorize_project(const api_token& token, const object_id& project) {
  if (token.project && *token.project != project) {
    return make_problem(error_kind::forbidden,
                        "This portal session does not grant access to the project.");
  }
  return {};
}

result<void> authorize(const api_token& token, scope needed,
                       const std::optional<object_id>& organization) {
  if (organization && !token.can_access(*organization)) {
    // Fixed text, without the id: the answer must read the same for an organization that exists
    // and for one that does not.
    return make_problem(error_kind::forbidden,
                        "This token does not grant access to the organization.");
  }
  if (!token.scopes.allows(needed)) {
    return make_problem(error_kind::forbidden,
                        "This token lacks the scope '" + std::string(scope_name(needed)) + "'.");
  }
  return {};
}

}  // namespace hookd::http
