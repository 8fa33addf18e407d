#include "http/api/api.hpp"
#include "http/api/app.hpp"

namespace hookd::http {
namespace {

// The API's own description, so that clients can fetch the document that matches this build.
// Public like /healthz: it describes the API and reveals no data.
asio::awaitable<response> get_openapi(request_context&) {
  response res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "application/yaml");
  res.body() = std::string(openapi_yaml());
  co_return res;
}

}  // namespace

void register_api_routes(router& r, app& a) {
  register_admin_routes(r, a);
  register_webhook_routes(r, a);
  register_event_routes(r, a);
  register_backup_routes(r, a);
  register_portal_session_routes(r, a);
  r.add(bhttp::verb::get, "/api/v1/openapi.yaml", get_openapi);
}

}  // namespace hookd::http
