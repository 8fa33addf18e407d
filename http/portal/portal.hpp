#pragma once
// The portal (docs/portal.md): a single-page app, compiled into the binary, served under /portal/.
// Public like /api/v1/openapi.yaml: the files hold no data; the page reaches the API with the
// session token it is opened with.

#include "http/server/router.hpp"

namespace hookd::http {

// GET /portal (a redirect to /portal/), /portal/, /portal/app.js and /portal/style.css.
void register_portal_routes(router& r);

}  // namespace hookd::http
