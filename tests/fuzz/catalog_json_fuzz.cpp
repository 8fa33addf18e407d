// The settings API's request bodies: every input is read as the handlers read a body
// (read_json_body: size, depth, JSON) and then given to every validator of the catalog's inputs:
// organization, project, token, webhook, webhook patch, secret rotation, and a payload filter on
// its own. What a validator accepts must also survive storage: it is encoded as the catalog would
// store it and decoded again, and must come back unchanged (the process aborts otherwise); an
// accepted filter must likewise read back from its own JSON.

#include "core/catalog/codec.hpp"
#include "core/catalog/validation.hpp"
#include "core/delivery/event_filter.hpp"
#include "fuzz/fuzz_input.hpp"
#include "http/api/api.hpp"

#include <cstdio>
#include <cstdlib>

namespace {

using namespace hookd;

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "catalog_json_fuzz: %s\n", what);
  std::abort();
}

const object_id kOrg = *object_id::parse("65a0c0ffee00000000000001");
const object_id kProject = *object_id::parse("65a0c0ffee00000000000002");
const object_id kId = *object_id::parse("65a0c0ffee00000000000003");
const timestamp kTime{std::chrono::milliseconds(1'780'000'000'000)};

const aes256gcm_key& master_key() {
  static const aes256gcm_key key = *aes256gcm_key::from_bytes(std::string(32, 'k'));
  return key;
}

void round_trip(const organization_input& in) {
  organization o{kId, in.name, kTime, kTime};
  auto back = decode_organization(kId.binary(), encode(o));
  if (!back || back->name != o.name) bug("an accepted organization does not read back");
}

void round_trip(const project_input& in) {
  project p{kId, kOrg, in.name, in.slug, in.description, in.status, in.app_icon_url, kTime, kTime};
  auto back = decode_project(kId.binary(), encode(p));
  if (!back || back->name != p.name || back->slug != p.slug || back->description != p.description ||
      back->status != p.status || back->app_icon_url != p.app_icon_url) {
    bug("an accepted project does not read back");
  }
}

void round_trip(const token_input& in) {
  api_token t;
  t.id = kId;
  t.name = in.name;
  t.organizations = in.organizations;
  t.scopes = in.scopes;
  t.digest = sha256("hkd_token");
  t.created_at = kTime;
  auto back = decode_token(kId.binary(), encode(t));
  if (!back || back->name != t.name || back->organizations != t.organizations ||
      !(back->scopes == t.scopes)) {
    bug("an accepted token does not read back");
  }
}

void round_trip(const webhook_input& in) {
  webhook w;
  w.id = kId;
  w.organization = kOrg;
  w.project = kProject;
  w.name = in.name;
  w.url = in.url;
  w.headers = in.headers;
  w.active = in.active;
  w.events = in.events;
  w.rate_limit = in.rate_limit;
  w.signing = in.signing;
  w.filter = in.filter;
  w.secret = in.signing == signing_scheme::v1 ? "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                                              : generate_webhook_secret(signing_scheme::v1a);
  w.created_at = w.updated_at = kTime;
  auto back = decode_webhook(kId.binary(), encode(w, master_key()), master_key());
  if (!back) bug("an accepted webhook does not decode");
  const bool same_filter = (back->filter == nullptr) == (w.filter == nullptr) &&
                           (w.filter == nullptr || *back->filter == *w.filter);
  if (back->name != w.name || back->url != w.url || back->headers != w.headers ||
      back->active != w.active || back->events != w.events || back->rate_limit != w.rate_limit ||
      back->signing != w.signing || back->secret != w.secret || !same_filter) {
    bug("an accepted webhook reads back changed");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto req = fuzz::json_request(fuzz::as_text(data, size));
  auto body = http::read_json_body(req, 64 * 1024);
  if (!body) return 0;

  if (auto in = parse_organization_input(*body)) round_trip(*in);
  if (auto in = parse_project_input(*body)) round_trip(*in);
  if (auto in = parse_token_input(*body)) round_trip(*in);
  if (auto in = parse_webhook_input(*body)) round_trip(*in);
  (void)parse_webhook_patch(*body);
  (void)parse_secret_rotation(*body);

  std::vector<field_error> errors;
  if (auto filter = event_filter::parse(*body, errors)) {
    std::vector<field_error> again;
    auto back = event_filter::parse(boost::json::value(filter->to_json()), again);
    if (!back || !(*back == *filter)) bug("an accepted filter does not read back from its JSON");
    (void)filter->matches("order.created", *body);
  }
  return 0;
}
