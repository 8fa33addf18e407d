#include "http/portal/portal.hpp"

#include "core/common/crypto.hpp"

#include <string>
#include <string_view>

namespace hookd::http {

// Generated from http/portal/assets (http/CMakeLists.txt).
std::string_view portal_asset_index_html() noexcept;
std::string_view portal_asset_app_js() noexcept;
std::string_view portal_asset_style_css() noexcept;

namespace {

// What every portal response carries (docs/portal.md, "Security"): no inline script or style, no
// other origin, no framing, no guessing of types.
constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

void secure(response& res) {
  res.set("Content-Security-Policy", kContentSecurityPolicy);
  res.set(bhttp::field::x_frame_options, "DENY");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
}

struct asset {
  std::string_view body;
  std::string_view content_type;
  std::string etag;  // a strong validator: the content's SHA-256, so a new build is a new ETag
};

asset make_asset(std::string_view body, std::string_view content_type) {
  const auto digest = sha256(body);
  const std::string hex =
      hex_encode({reinterpret_cast<const char*>(digest.data()), digest.size()}).substr(0, 32);
  return asset{body, content_type, "\"" + hex + "\""};
}

bool etag_matches(std::string_view if_none_match, std::string_view etag) noexcept {
  if (if_none_match == "*") return true;
  // A comma-separated list; weak forms compare equal too (RFC 9110 §13.1.2).
  while (!if_none_match.empty()) {
    const auto comma = if_none_match.find(',');
    std::string_view item = if_none_match.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (item == etag) return true;
    if (comma == std::string_view::npos) break;
    if_none_match.remove_prefix(comma + 1);
  }
  return false;
}

asio::awaitable<response> serve(const asset& file, request_context& ctx) {
  auto inm = ctx.req.find(bhttp::field::if_none_match);
  response res{bhttp::status::ok, 11};
  if (inm != ctx.req.end() && etag_matches(inm->value(), file.etag)) {
    res.result(bhttp::status::not_modified);
  } else {
    res.set(bhttp::field::content_type, file.content_type);
    res.body() = std::string(file.body);
  }
  res.set(bhttp::field::etag, file.etag);
  // Revalidated on every load (a 304 costs no body), so an upgraded hookd serves its own page.
  res.set(bhttp::field::cache_control, "no-cache");
  secure(res);
  co_return res;
}

asio::awaitable<response> redirect_to_portal(request_context&) {
  response res{bhttp::status::moved_permanently, 11};
  res.set(bhttp::field::location, "/portal/");
  secure(res);
  co_return res;
}

}  // namespace

void register_portal_routes(router& r) {
  // Built once; the handlers refer to them for the life of the process.
  static const asset index = make_asset(portal_asset_index_html(), "text/html; charset=utf-8");
  static const asset script = make_asset(portal_asset_app_js(), "text/javascript; charset=utf-8");
  static const asset style = make_asset(portal_asset_style_css(), "text/css; charset=utf-8");
  r.add(bhttp::verb::get, "/portal", redirect_to_portal);
  r.add(bhttp::verb::get, "/portal/", [](request_context& c) { return serve(index, c); });
  r.add(bhttp::verb::get, "/portal/index.html", [](request_context& c) { return serve(index, c); });
  r.add(bhttp::verb::get, "/portal/app.js", [](request_context& c) { return serve(script, c); });
  r.add(bhttp::verb::get, "/portal/style.css", [](request_context& c) { return serve(style, c); });
}

}  // namespace hookd::http
