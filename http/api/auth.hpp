#pragma once
// Who is calling and what may they do (docs/openapi.yaml). Tokens arrive as `Authorization: Bearer
// <t>` (scheme case-insensitive) or `x-access-token: <t>`; only their SHA-256 digest is looked up,
// and the stored digest is compared in constant time. Stateless functions: thread-safe.

#include "core/catalog/catalog.hpp"
#include "core/catalog/entities.hpp"
#include "core/catalog/scopes.hpp"
#include "core/common/error.hpp"
#include "core/common/object_id.hpp"
#include "http/api/app.hpp"
#include "http/server/types.hpp"

#include <memory>
#include <optional>
#include <string_view>

namespace hookd::http {

// The token string the request carries, or nullopt when it carries none (or an empty one).
// `Authorization` wins when both headers are present.
std::optional<std::string_view> extract_token(const request& req) noexcept;

// The live token behind the request; `unauthorized` when it is missing, unknown or revoked.
result<std::shared_ptr<const api_token>> authenticate(const catalog& cat, const request& req);
// The same, and a portal session token ("hkp_…", docs/portal.md) as a token of its one project
// with webhooks and deliveries read/write; an expired one is `unauthorized` saying so.
result<std::shared_ptr<const api_token>> authenticate(const app& a, const request& req);

// `forbidden` unless `token` may act on `organization` (when given) with `needed`. The
// organization is checked first, and its detail never depends on whether the organization
// exists, so a token cannot probe for other tenants. Admin tokens pass every check.
result<void> authorize(const api_token& token, scope needed,
                       const std::optional<object_id>& organization = std::nullopt);

// `forbidden` when `token` is limited to another project (a portal session); the same answer
// whether or not that project exists.
result<void> authorize_project(const api_token& token, const object_id& project);

}  // namespace hookd::http
