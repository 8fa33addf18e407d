// hookctl: hookd's admin and webhooks API from the shell. Each command becomes one HTTP request;
// the server's JSON goes to stdout on one line, so that scripts can pipe it to jq.
//
// Exit status: 0 on a 2xx answer, 1 on an HTTP error (the problem+json body goes to stderr),
// 2 on a usage error (one line on stderr), 3 when hookd cannot be reached (one line on stderr
// saying what to check). Global options come before the command, because `webhook create` has
// its own --url.

#include "hookd/version.hpp"
#include "http/cli/cli_client.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace {

namespace json = boost::json;
namespace http = hookd::http;
using hookd::http::bhttp::verb;

constexpr int kExitOk = 0;
constexpr int kExitHttpError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;
constexpr std::string_view kDefaultUrl = "http://127.0.0.1:8080";

// A mistake on the command line; main prints `message` as one line and exits 2.
struct usage_error {
  std::string message;
};

// ---------------------------------------------------------------- command table

struct option_spec {
  std::string_view name;     // "--name"
  std::string_view metavar;  // "N"; empty for a flag
  bool required = false;
  bool repeatable = false;
  std::string_view help;
};

struct parsed_args {
  std::vector<std::string> positionals;
  std::map<std::string, std::vector<std::string>, std::less<>> values;  // flags hold one ""

  bool has(std::string_view name) const { return values.find(name) != values.end(); }
  const std::string* one(std::string_view name) const {
    auto it = values.find(name);
    return it == values.end() ? nullptr : &it->second.front();
  }
  const std::vector<std::string>& all(std::string_view name) const {
    static const std::vector<std::string> none;
    auto it = values.find(name);
    return it == values.end() ? none : it->second;
  }
};

struct planned_request {
  verb method = verb::get;
  std::string target;
  std::optional<json::value> body;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond Authorization
};

struct command_spec {
  std::string_view group;  // "webhook"
  std::string_view name;   // "create"
  std::vector<std::string_view> positionals;
  std::string_view summary;  // one line for the command lists
  std::string_view details;  // a paragraph for the command's --help
  std::vector<option_spec> options;
  planned_request (*plan)(const parsed_args&);
};

std::string segment(std::string_view raw) {
  return http::encode_path_segment(raw);
}

std::string org_path(const parsed_args& a) {
  return "/api/v1/organizations/" + segment(a.positionals.at(0));
}
std::string webhooks_path(const parsed_args& a) {
  return org_path(a) + "/projects/" + segment(a.positionals.at(1)) + "/settings/webhooks";
}
std::string webhook_path(const parsed_args& a) {
  return webhooks_path(a) + "/" + segment(a.positionals.at(2));
}

json::array string_array(const std::vector<std::string>& values) {
  json::array out;
  for (const auto& v : values) {
    out.emplace_back(v);
  }
  return out;
}

// "--header 'X-Team: payments'" values become a JSON object in the order given.
json::object header_object(const std::vector<std::string>& values) {
  json::object out;
  for (const auto& v : values) {
    auto colon = v.find(':');
    if (colon == std::string::npos) {
      throw usage_error{"--header: expected 'Name: value', got '" + v + "'"};
    }
    auto trim = [](std::string_view s) {
      while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
      while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
      return s;
    };
    std::string_view name = trim(std::string_view(v).substr(0, colon));
    std::string_view value = trim(std::string_view(v).substr(colon + 1));
    if (name.empty()) {
      throw usage_error{"--header: the header name is empty in '" + v + "'"};
    }
    if (out.contains(name)) {
      throw usage_error{"--header: '" + std::string(name) + "' is given twice"};
    }
    out.emplace(name, value);
  }
  return out;
}

bool parse_bool_option(std::string_view option, const std::string& value) {
  if (value == "true") return true;
  if (value == "false") return false;
  throw usage_error{std::string(option) + ": expected true or false, got '" + value + "'"};
}

// --rate-limit: a whole number of attempts per second (the server checks the range), or, where
// `none_allowed`, "none" for no limit (JSON null).
json::value parse_rate_limit(const std::string& value, bool none_allowed) {
  if (none_allowed && value == "none") return nullptr;
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc() || end != value.data() + value.size()) {
    throw usage_error{"--rate-limit: expected a whole number of attempts per second" +
                      std::string(none_allowed ? " or none" : "") + ", got '" + value + "'"};
  }
  return n;
}

planned_request plan_org_create(const parsed_args& a) {
  return {verb::post, "/api/v1/organizations", json::object{{"name", a.positionals.at(0)}}};
}
planned_request plan_org_list(const parsed_args&) {
  return {verb::get, "/api/v1/organizations", std::nullopt};
}
planned_request plan_org_get(const parsed_args& a) {
  return {verb::get, org_path(a), std::nullopt};
}
planned_request plan_org_delete(const parsed_args& a) {
  return {verb::delete_, org_path(a), std::nullopt};
}

planned_request plan_project_create(const parsed_args& a) {
  json::object body{{"name", *a.one("--name")}, {"slug", *a.one("--slug")}};
  if (auto* d = a.one("--description")) body["description"] = *d;
  if (auto* s = a.one("--status")) body["status"] = *s;
  if (auto* u = a.one("--app-icon-url")) body["appIconUrl"] = *u;
  return {verb::post, org_path(a) + "/projects", std::move(body)};
}
planned_request plan_project_list(const parsed_args& a) {
  return {verb::get, org_path(a) + "/projects", std::nullopt};
}
planned_request plan_project_get(const parsed_args& a) {
  return {verb::get, org_path(a) + "/projects/" + segment(a.positionals.at(1)), std::nullopt};
}
planned_request plan_project_delete(const parsed_args& a) {
  return {verb::delete_, org_path(a) + "/projects/" + segment(a.positionals.at(1)), std::nullopt};
}

planned_request plan_token_create(const parsed_args& a) {
  json::object body{{"name", *a.one("--name")},
                    {"organizations", string_array(a.all("--org"))},
                    {"scopes", string_array(a.all("--scope"))}};
  return {verb::post, "/api/v1/tokens", std::move(body)};
}
planned_request plan_token_list(const parsed_args&) {
  return {verb::get, "/api/v1/tokens", std::nullopt};
}
planned_request plan_token_get(const parsed_args& a) {
  return {verb::get, "/api/v1/tokens/" + segment(a.positionals.at(0)), std::nullopt};
}
planned_request plan_token_revoke(const parsed_args& a) {
  return {verb::delete_, "/api/v1/tokens/" + segment(a.positionals.at(0)), std::nullopt};
}

// "--filter '{"data.country":"TR"}'": the JSON text as the request's `filter` (null clears it).
json::value filter_option(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) throw usage_error{"--filter: not JSON (" + ec.message() + "): " + text};
  return v;
}

planned_request plan_webhook_create(const parsed_args& a) {
  json::object body{{"name", *a.one("--name")},
                    {"url", *a.one("--url")},
                    {"events", string_array(a.all("--event"))}};
  if (a.has("--header")) body["headers"] = header_object(a.all("--header"));
  if (a.has("--inactive")) body["active"] = false;
  if (auto* r = a.one("--rate-limit")) body["rateLimit"] = parse_rate_limit(*r, false);
  if (auto* s = a.one("--signing")) body["signing"] = *s;
  if (auto* f = a.one("--filter")) body["filter"] = filter_option(*f);
  return {verb::post, webhooks_path(a), std::move(body)};
}
planned_request plan_webhook_list(const parsed_args& a) {
  return {verb::get, webhooks_path(a), std::nullopt};
}
planned_request plan_webhook_get(const parsed_args& a) {
  return {verb::get, webhook_path(a), std::nullopt};
}
planned_request plan_webhook_update(const parsed_args& a) {
  if (a.has("--header") && a.has("--clear-headers")) {
    throw usage_error{"--header and --clear-headers exclude each other"};
  }
  json::object body;
  if (auto* n = a.one("--name")) body["name"] = *n;
  if (auto* u = a.one("--url")) body["url"] = *u;
  if (a.has("--event")) body["events"] = string_array(a.all("--event"));
  if (a.has("--header")) body["headers"] = header_object(a.all("--header"));
  if (a.has("--clear-headers")) body["headers"] = json::object{};
  if (auto* v = a.one("--active")) body["active"] = parse_bool_option("--active", *v);
  if (auto* r = a.one("--rate-limit")) body["rateLimit"] = parse_rate_limit(*r, true);
  if (auto* s = a.one("--signing")) body["signing"] = *s;
  if (auto* f = a.one("--filter")) body["filter"] = filter_option(*f);
  if (body.empty()) {
    throw usage_error{
        "nothing to update: give --name, --url, --event, --header, --clear-headers, --active, "
        "--rate-limit, --signing or --filter"};
  }
  return {verb::patch, webhook_path(a), std::move(body)};
}
planned_request plan_webhook_delete(const parsed_args& a) {
  return {verb::delete_, webhook_path(a), std::nullopt};
}
planned_request plan_webhook_secret(const parsed_args& a) {
  return {verb::get, webhook_path(a) + "/secret", std::nullopt};
}
planned_request plan_webhook_rotate(const parsed_args& a) {
  json::object body;
  if (auto* s = a.one("--secret")) body["secret"] = *s;
  return {verb::post, webhook_path(a) + "/secret/rotate", std::move(body)};
}

planned_request plan_webhook_health(const parsed_args& a) {
  return {verb::get, webhook_path(a) + "/health", std::nullopt};
}

planned_request plan_webhook_test(const parsed_args& a) {
  return {verb::post, webhook_path(a) + "/test", std::nullopt, {}};
}
planned_request plan_webhook_recover(const parsed_args& a) {
  json::object body{{"since", *a.one("--since")}};
  if (auto* u = a.one("--until")) body["until"] = *u;
  return {verb::post, webhook_path(a) + "/recover", std::move(body), {}};
}

planned_request plan_event_send(const parsed_args& a) {
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 32;
  json::value data = json::parse(*a.one("--data"), ec, {}, opts);
  if (ec) {
    throw usage_error{"--data: not valid JSON (" + ec.message() +
                      "); quote it for the shell, e.g. --data '{\"id\":1}' or --data null"};
  }
  json::object body{{"type", *a.one("--type")}, {"data", std::move(data)}};
  if (auto* k = a.one("--idempotency-key")) body["idempotencyKey"] = *k;
  if (auto* s = a.one("--subject")) body["subject"] = *s;
  planned_request out{verb::post,
                      org_path(a) + "/projects/" + segment(a.positionals.at(1)) + "/events",
                      std::move(body),
                      {}};
  if (auto* t = a.one("--traceparent")) out.headers.emplace_back("traceparent", *t);
  return out;
}

std::string deliveries_path(const parsed_args& a) {
  return webhook_path(a) + "/deliveries";
}
planned_request plan_delivery_list(const parsed_args& a) {
  std::string query;
  for (auto [option, name] : {std::pair{"--status", "status"}, std::pair{"--limit", "limit"},
                              std::pair{"--after", "after"}}) {
    if (auto* v = a.one(option)) {
      query += (query.empty() ? "?" : "&") + std::string(name) + "=" + segment(*v);
    }
  }
  return {verb::get, deliveries_path(a) + query, std::nullopt, {}};
}
planned_request plan_delivery_get(const parsed_args& a) {
  return {verb::get, deliveries_path(a) + "/" + segment(a.positionals.at(3)), std::nullopt, {}};
}
planned_request plan_delivery_redeliver(const parsed_args& a) {
  return {verb::post,
          deliveries_path(a) + "/" + segment(a.positionals.at(3)) + "/redeliver",
          std::nullopt,
          {}};
}

// POST …/portal-sessions (docs/portal.md): prints {url, token, expiresAt}.
planned_request plan_portal_open(const parsed_args& a) {
  json::object body;
  if (auto* e = a.one("--expires-in")) {
    // Whole seconds go as a number, anything else ("30m") as the duration string hookd parses.
    const bool digits = !e->empty() && std::all_of(e->begin(), e->end(),
                                                   [](char c) { return c >= '0' && c <= '9'; });
    if (digits && e->size() < 10) {
      body["expiresIn"] = std::stoll(*e);
    } else {
      body["expiresIn"] = *e;
    }
  }
  return {verb::post,
          org_path(a) + "/projects/" + segment(a.positionals.at(1)) + "/portal-sessions",
          std::move(body),
          {}};
}

const std::vector<command_spec>& commands() {
  static const std::vector<command_spec> table = {
      {"org",
       "create",
       {"NAME"},
       "create an organization",
       "Creates an organization named NAME (2..100 characters) and prints it.",
       {},
       plan_org_create},
      {"org",
       "list",
       {},
       "list organizations, oldest first",
       "Prints every organization.",
       {},
       plan_org_list},
      {"org",
       "get",
       {"ORG"},
       "show one organization",
       "Prints the organization with id ORG.",
       {},
       plan_org_get},
      {"org",
       "delete",
       {"ORG"},
       "delete an organization with its projects",
       "Deletes organization ORG with its projects, their webhooks and their deliveries (pending "
       "ones are never attempted), and removes it from every API token's organizations. Prints "
       "nothing on success.",
       {},
       plan_org_delete},

      {"project",
       "create",
       {"ORG"},
       "create a project in an organization",
       "Creates a project in organization ORG and prints it. The slug must be unique within the "
       "organization (a taken slug is a 409).",
       {{"--name", "N", true, false, "2..100 characters"},
        {"--slug", "S", true, false, "^[a-z0-9-]{2,100}$"},
        {"--description", "D", false, false, "at most 255 characters"},
        {"--status", "STATUS", false, false, "draft (default), active or archived"},
        {"--app-icon-url", "U", false, false, "an absolute http(s) URL"}},
       plan_project_create},
      {"project",
       "list",
       {"ORG"},
       "list the projects of an organization",
       "Prints the projects of organization ORG.",
       {},
       plan_project_list},
      {"project",
       "get",
       {"ORG", "ID"},
       "show one project",
       "Prints project ID of organization ORG.",
       {},
       plan_project_get},
      {"project",
       "delete",
       {"ORG", "ID"},
       "delete a project with its webhooks",
       "Deletes project ID of organization ORG with its webhooks and their deliveries (pending "
       "ones are never attempted); its slug can be used again. Prints nothing on success.",
       {},
       plan_project_delete},

      {"token",
       "create",
       {},
       "create an API token",
       "Creates an API token and prints it with its secret `token`, which is shown only this "
       "once. Scopes: admin, webhooks:read, webhooks:write, events:write, deliveries:read, "
       "deliveries:write. An admin token reaches every organization; any other token only the "
       "organizations given with --org.",
       {{"--name", "N", true, false, "2..100 characters"},
        {"--org", "ID", false, true, "an organization the token may use (repeatable)"},
        {"--scope", "S", true, true, "a scope (repeatable)"}},
       plan_token_create},
      {"token",
       "list",
       {},
       "list API tokens (never their secrets)",
       "Prints every API token.",
       {},
       plan_token_list},
      {"token",
       "get",
       {"ID"},
       "show one API token (never its secret)",
       "Prints token ID without its secret.",
       {},
       plan_token_get},
      {"token",
       "revoke",
       {"ID"},
       "revoke an API token",
       "Deletes token ID; it fails at once. Prints nothing on success.",
       {},
       plan_token_revoke},

      {"webhook",
       "create",
       {"ORG", "PROJECT"},
       "create a webhook",
       "Creates a webhook in project PROJECT of organization ORG and prints it with its signing "
       "`secret`. Events are dotted names (order.created), prefix wildcards (order.*) or *.",
       {{"--name", "N", true, false, "2..100 characters"},
        {"--url", "U", true, false, "absolute http(s) URL the deliveries go to"},
        {"--event", "E", true, true, "an event type or pattern (repeatable, 1..100)"},
        {"--header", "'K: V'", false, true, "a custom header sent with each delivery (repeatable)"},
        {"--inactive", "", false, false, "create it inactive (default: active)"},
        {"--rate-limit", "N", false, false,
         "at most N delivery attempts per second, 1..10000 (default: no limit)"},
        {"--signing", "v1|v1a", false, false, "HMAC-SHA256 (v1, default) or Ed25519 (v1a)"},
        {"--filter", "JSON", false, false,
         "only events with these values, e.g. '{\"data.country\":\"TR\"}'"}},
       plan_webhook_create},
      {"webhook",
       "list",
       {"ORG", "PROJECT"},
       "list the webhooks of a project",
       "Prints the webhooks of project PROJECT, oldest first, without their secrets.",
       {},
       plan_webhook_list},
      {"webhook",
       "get",
       {"ORG", "PROJECT", "ID"},
       "show one webhook",
       "Prints webhook ID without its secret.",
       {},
       plan_webhook_get},
      {"webhook",
       "update",
       {"ORG", "PROJECT", "ID"},
       "change a webhook",
       "Changes only the fields given and prints the webhook. --event and --header replace the "
       "whole list of events or headers.",
       {{"--name", "N", false, false, "2..100 characters"},
        {"--url", "U", false, false, "absolute http(s) URL"},
        {"--event", "E", false, true, "replaces the events (repeatable)"},
        {"--header", "'K: V'", false, true, "replaces the custom headers (repeatable)"},
        {"--clear-headers", "", false, false, "removes every custom header"},
        {"--active", "true|false", false, false, "activates or deactivates it"},
        {"--rate-limit", "N|none", false, false,
         "at most N delivery attempts per second (1..10000); none removes the limit"},
        {"--signing", "v1|v1a", false, false,
         "switches the scheme: a new secret of that kind; the old one signs through the grace"},
        {"--filter", "JSON", false, false, "replaces the payload filter; null removes it"}},
       plan_webhook_update},
      {"webhook",
       "delete",
       {"ORG", "PROJECT", "ID"},
       "delete a webhook",
       "Deletes webhook ID. Prints nothing on success.",
       {},
       plan_webhook_delete},
      {"webhook",
       "secret",
       {"ORG", "PROJECT", "ID"},
       "show a webhook's signing secret",
       "Prints {\"secret\": \"whsec_...\"} for webhook ID ({\"secret\": \"whsk_...\", "
       "\"publicKey\": \"whpk_...\"} for a v1a webhook).",
       {},
       plan_webhook_secret},
      {"webhook",
       "rotate",
       {"ORG", "PROJECT", "ID"},
       "rotate a webhook's signing secret",
       "Gives webhook ID a new signing secret (of its scheme) and prints it like `webhook "
       "secret`. The old secret keeps signing next to it for hookd's --secret-grace (24 h by "
       "default), so receivers can switch without losing a delivery.",
       {{"--secret", "S", false, false,
         "use S (whsec_ + base64 of 24..64 bytes; whsk_ + base64 of a 32-byte seed for v1a) "
         "instead of a generated one"}},
       plan_webhook_rotate},
      {"webhook",
       "health",
       {"ORG", "PROJECT", "ID"},
       "show a webhook's health",
       "Prints the health of webhook ID: state (healthy, degraded, failing or disabled), last "
       "success and failure, consecutive failures, pending, paused and in-flight deliveries, "
       "concurrency, and the last hour's success rate and latency percentiles.",
       {},
       plan_webhook_health},
      {"webhook",
       "test",
       {"ORG", "PROJECT", "ID"},
       "send a test ping to a webhook",
       "Sends a webhook.ping event with data {\"webhookId\": ID} to webhook ID alone, even when it "
       "is inactive, signed like any delivery, and prints the delivery. Follow it with "
       "`hookctl delivery get ORG PROJECT ID DELIVERY`.",
       {},
       plan_webhook_test},
      {"webhook",
       "recover",
       {"ORG", "PROJECT", "ID"},
       "redeliver a webhook's failed deliveries of a time window",
       "Puts every failed delivery of webhook ID created from --since up to --until (default: now) "
       "back to pending, each under its own id with a fresh retry schedule, and prints "
       "{\"deliveries\": N}. Times are RFC 3339, e.g. 2026-12-01T00:00:00Z.",
       {{"--since", "TIME", true, false, "the start of the window (included)"},
        {"--until", "TIME", false, false, "the end of the window (excluded; default now)"}},
       plan_webhook_recover},

      {"event",
       "send",
       {"ORG", "PROJECT"},
       "send an event to a project's webhooks",
       "Sends an event to every active webhook of project PROJECT whose events match --type, and "
       "prints {\"_id\", \"type\", \"timestamp\", \"deliveries\": N} once it is durable. "
       "See its deliveries with `hookctl delivery list ORG PROJECT WEBHOOK`.",
       {{"--type", "T", true, false, "the event type, a dotted name such as order.created"},
        {"--data", "JSON", true, false, "the event's data, any JSON value"},
        {"--idempotency-key", "K", false, false,
         "sending the same key and body again creates "
         "nothing and prints the first answer"},
        {"--subject", "S", false, false, "whom the event is about, for erasure"},
        {"--traceparent", "TP", false, false, "a W3C traceparent its deliveries continue"}},
       plan_event_send},

      {"delivery",
       "list",
       {"ORG", "PROJECT", "WEBHOOK"},
       "list a webhook's deliveries, newest first",
       "Prints {\"data\": [...], \"next\": ID|null}; pass `next` as --after for the next page.",
       {{"--status", "S", false, false,
         "pending, paused, succeeded or failed, or a comma-separated list"},
        {"--limit", "N", false, false, "1..100 per page (default 20)"},
        {"--after", "ID", false, false, "the `next` of the previous page"}},
       plan_delivery_list},
      {"delivery",
       "get",
       {"ORG", "PROJECT", "WEBHOOK", "ID"},
       "show one delivery with its attempts",
       "Prints delivery ID of webhook WEBHOOK with its attempts, oldest first.",
       {},
       plan_delivery_get},
      {"delivery",
       "redeliver",
       {"ORG", "PROJECT", "WEBHOOK", "ID"},
       "send a delivery again",
       "Puts delivery ID back to pending, due now, with a fresh retry schedule and the same "
       "webhook-id, and prints it. Its earlier attempts stay listed; see them with "
       "`hookctl delivery get ORG PROJECT WEBHOOK ID`.",
       {},
       plan_delivery_redeliver},

      {"portal",
       "open",
       {"ORG", "PROJECT"},
       "open the webhooks portal for a project",
       "Asks for a portal session for project PROJECT of organization ORG and prints "
       "{\"url\", \"token\", \"expiresAt\"}: `url` opens the portal already signed in, for that "
       "one "
       "project, until expiresAt (an hour by default). Needs webhooks:write.",
       {{"--expires-in", "D", false, false, "seconds (1..86400) or a duration such as 30m"}},
       plan_portal_open},
  };
  return table;
}

// ---------------------------------------------------------------- help

constexpr std::string_view kGlobalOptions =
    "global options (before the command):\n"
    "  --url URL          hookd's base URL (env HOOKD_URL, default http://127.0.0.1:8080);\n"
    "                     https verifies the certificate against the system CA store\n"
    "                     (SSL_CERT_FILE / SSL_CERT_DIR override it)\n"
    "  --cacert FILE      trust the CA certificates in this PEM file instead of the system\n"
    "                     store, e.g. a private CA's (env HOOKD_CACERT)\n"
    "  --token TOKEN      API token (env HOOKD_TOKEN)\n"
    "  --token-file FILE  read the token from FILE, e.g. ./data/admin-token\n"
    "  -h, --help         this help; `hookctl GROUP --help` and `hookctl GROUP COMMAND --help`\n"
    "                     describe one group or command\n"
    "  --version          print the version\n";

constexpr std::string_view kExitCodes =
    "Output: the server's JSON on one line on stdout (nothing for 204 No Content).\n"
    "Exit status: 0 success; 1 HTTP error (problem+json on stderr); 2 usage error;\n"
    "3 hookd unreachable.\n";

std::string synopsis(const command_spec& c) {
  std::string out = "hookctl " + std::string(c.group) + " " + std::string(c.name);
  for (auto p : c.positionals) {
    out += " " + std::string(p);
  }
  for (const auto& o : c.options) {
    std::string item = std::string(o.name);
    if (!o.metavar.empty()) item += " " + std::string(o.metavar);
    if (o.repeatable) item += "...";
    out += o.required ? " " + item : " [" + item + "]";
  }
  return out;
}

std::string global_help() {
  std::string out = "usage: hookctl [global options] COMMAND [ARGS]\n\ncommands:\n";
  for (const auto& c : commands()) {
    out += "  " + synopsis(c) + "\n      " + std::string(c.summary) + "\n";
  }
  out += "  hookctl health\n      check GET /healthz and GET /readyz (no token needed)\n";
  out +=
      "  hookctl backup DIR\n      write a backup of hookd's data dir into the new directory DIR "
      "(admin)\n\n";
  out += kGlobalOptions;
  out += "\n";
  out += kExitCodes;
  return out;
}

std::string group_help(std::string_view group) {
  std::string out = "usage: hookctl [global options] " + std::string(group) + " COMMAND\n\n";
  for (const auto& c : commands()) {
    if (c.group == group) {
      out += "  " + synopsis(c) + "\n      " + std::string(c.summary) + "\n";
    }
  }
  out += "\nSee `hookctl " + std::string(group) + " COMMAND --help` for one command.\n";
  return out;
}

// Breaks `text` into lines of at most `width` columns at spaces.
std::string wrap(std::string_view text, std::size_t width) {
  std::string out, line;
  while (!text.empty()) {
    auto space = text.find(' ');
    std::string_view word = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      out += line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + std::string(word);
  }
  return out + line + "\n";
}

std::string command_help(const command_spec& c) {
  std::string out = "usage: hookctl [global options] " + synopsis(c).substr(8) + "\n\n";
  out += wrap(c.details, 80);
  if (!c.options.empty()) {
    out += "\noptions:\n";
    for (const auto& o : c.options) {
      std::string left = std::string(o.name);
      if (!o.metavar.empty()) left += " " + std::string(o.metavar);
      left.resize(std::max<std::size_t>(left.size() + 2, 22), ' ');
      out += "  " + left + std::string(o.help) + (o.required ? " (required)" : "") + "\n";
    }
  }
  out += "\n";
  out += kExitCodes;
  return out;
}

constexpr std::string_view kHealthHelp =
    "usage: hookctl [global options] health\n\n"
    "GET /healthz and GET /readyz; prints {\"healthy\":BOOL,\"ready\":BOOL}.\n"
    "Exit status: 0 when both answer 200, 1 otherwise, 3 when hookd is unreachable.\n";

constexpr std::string_view kBackupHelp =
    "usage: hookctl [global options] backup DIR\n\n"
    "Asks hookd (POST /api/v1/backups) to write a consistent copy of its data dir into DIR, on\n"
    "hookd's host, while it keeps serving: the database, master.key and admin-token, private\n"
    "(0700/0600). DIR must not exist; its parent must. A relative DIR is made absolute from\n"
    "hookctl's working directory, which is right when hookctl runs on hookd's host. hookd can\n"
    "start from DIR as its --data-dir. Prints what was written (directory, sequence, bytes,\n"
    "files, linked, masterKey, adminTokenFile, durationMs). Needs an admin token. Waits up to\n"
    "10 minutes for the answer (a copy to another file system copies the whole database).\n\n"
    "Exit status: 0 success; 1 HTTP error (problem+json on stderr); 2 usage error;\n"
    "3 hookd unreachable.\n";

planned_request plan_backup(const std::string& dir) {
  std::error_code ec;
  std::filesystem::path path(dir);
  if (path.is_relative()) path = std::filesystem::absolute(path, ec);
  if (ec) throw usage_error{"hookctl backup: cannot make " + dir + " absolute: " + ec.message()};
  return {verb::post, "/api/v1/backups", json::object{{"directory", path.string()}}, {}};
}

// ---------------------------------------------------------------- argument parsing

bool is_help(std::string_view arg) {
  return arg == "-h" || arg == "--help";
}

// Splits "--name=value" into ("--name", "value"); `value` is nullopt without '='.
std::pair<std::string_view, std::optional<std::string_view>> split_option(std::string_view arg) {
  auto eq = arg.find('=');
  if (eq == std::string_view::npos) return {arg, std::nullopt};
  return {arg.substr(0, eq), arg.substr(eq + 1)};
}

parsed_args parse_command_args(const command_spec& c, std::span<const std::string> args) {
  const std::string where = "hookctl " + std::string(c.group) + " " + std::string(c.name);
  const std::string see = " (see " + where + " --help)";
  parsed_args out;
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (options_done || arg.size() < 2 || arg.front() != '-') {
      out.positionals.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    auto [name, inline_value] = split_option(arg);
    auto spec = std::find_if(c.options.begin(), c.options.end(),
                             [n = name](const option_spec& o) { return o.name == n; });
    if (spec == c.options.end()) {
      throw usage_error{where + ": unknown option " + std::string(name) + see};
    }
    std::string value;
    if (spec->metavar.empty()) {
      if (inline_value) {
        throw usage_error{where + ": " + std::string(name) + " takes no value" + see};
      }
    } else if (inline_value) {
      value = std::string(*inline_value);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      throw usage_error{where + ": " + std::string(name) + " needs a value " +
                        std::string(spec->metavar) + see};
    }
    auto& slot = out.values[std::string(name)];
    if (!slot.empty() && !spec->repeatable) {
      throw usage_error{where + ": " + std::string(name) + " is given more than once" + see};
    }
    slot.push_back(std::move(value));
  }
  if (out.positionals.size() != c.positionals.size()) {
    std::string expected;
    for (auto p : c.positionals) expected += (expected.empty() ? "" : " ") + std::string(p);
    throw usage_error{where + ": expected " +
                      (expected.empty() ? std::string("no arguments") : expected) + ", got " +
                      std::to_string(out.positionals.size()) + " argument(s)" + see};
  }
  for (const auto& o : c.options) {
    if (o.required && !out.has(o.name)) {
      throw usage_error{where + ": " + std::string(o.name) + " is required" + see};
    }
  }
  return out;
}

struct global_options {
  std::optional<std::string> url, token, token_file, cacert;
};

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::string trim_token(std::string_view raw, std::string_view from) {
  while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.back()))) raw.remove_suffix(1);
  while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.front())))
    raw.remove_prefix(1);
  if (raw.empty()) throw usage_error{std::string(from) + " is empty"};
  for (char ch : raw) {
    auto u = static_cast<unsigned char>(ch);
    if (u < 0x20 || u == 0x7f) {
      throw usage_error{std::string(from) + " contains control characters"};
    }
  }
  return std::string(raw);
}

std::string read_token_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    throw usage_error{"--token-file " + path + ": " + std::strerror(errno)};
  }
  std::string content;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && content.size() < 64 * 1024) {
    content.append(buf, n);
  }
  std::fclose(f);
  return trim_token(content, "--token-file " + path);
}

// ---------------------------------------------------------------- running requests

// Re-serializes a JSON body compactly; nullopt when it is not JSON.
std::optional<std::string> compact_json(std::string_view body) {
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 64;
  json::value v = json::parse(body, ec, {}, opts);
  if (ec) return std::nullopt;
  return json::serialize(v);
}

std::string first_line(std::string_view text) {
  auto nl = text.find_first_of("\r\n");
  std::string out(text.substr(0, std::min<std::size_t>(nl, 200)));
  return out;
}

void print_unreachable(const http::client_failure& f, const std::string& url) {
  std::string hint;
  switch (f.where) {
    case http::client_failure::stage::resolve:
      hint = "check the host name in --url / HOOKD_URL (" + url + ")";
      break;
    case http::client_failure::stage::tls:
      hint = "check the server certificate and the system CA store (SSL_CERT_FILE), and that " +
             url + " really speaks https";
      break;
    case http::client_failure::stage::connect:
    case http::client_failure::stage::exchange:
      hint = "check that hookd is running and that --url / HOOKD_URL (" + url + ") points at it";
      break;
  }
  std::cerr << "hookctl: " << f.what << "; " << hint << "\n";
}

void print_http_error(const http::client_response& r) {
  if (auto compact = compact_json(r.body)) {
    std::cerr << *compact << "\n";
  } else {
    std::cerr << "hookctl: HTTP " << r.status;
    if (!r.body.empty()) std::cerr << ": " << first_line(r.body);
    std::cerr << "\n";
  }
}

int run_request(http::sync_client& client, const std::string& url,
                const std::vector<std::pair<std::string, std::string>>& auth,
                const planned_request& plan) {
  std::string body = plan.body ? json::serialize(*plan.body) : std::string();
  std::vector<std::pair<std::string, std::string>> headers = auth;
  headers.insert(headers.end(), plan.headers.begin(), plan.headers.end());
  auto outcome = client.send(plan.method, plan.target, body, headers);
  if (auto* failure = std::get_if<http::client_failure>(&outcome)) {
    print_unreachable(*failure, url);
    return kExitUnreachable;
  }
  const auto& r = std::get<http::client_response>(outcome);
  if (r.status < 200 || r.status > 299) {
    print_http_error(r);
    return kExitHttpError;
  }
  if (!r.body.empty()) {
    auto compact = compact_json(r.body);
    std::cout << (compact ? *compact : r.body) << "\n";
  }
  return kExitOk;
}

int run_health(http::sync_client& client, const std::string& url) {
  bool healthy = false, ready = false;
  std::vector<http::client_response> failed;
  for (auto [path, flag] : {std::pair{"/healthz", &healthy}, std::pair{"/readyz", &ready}}) {
    auto outcome = client.send(verb::get, path);
    if (auto* failure = std::get_if<http::client_failure>(&outcome)) {
      print_unreachable(*failure, url);
      return kExitUnreachable;
    }
    auto& r = std::get<http::client_response>(outcome);
    *flag = r.status == 200;
    if (!*flag) failed.push_back(std::move(r));
  }
  std::cout << json::serialize(json::object{{"healthy", healthy}, {"ready", ready}}) << "\n";
  for (const auto& r : failed) print_http_error(r);
  return healthy && ready ? kExitOk : kExitHttpError;
}

int run(std::span<const std::string> args) {
  global_options g;
  std::size_t i = 0;
  for (; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg.empty() || arg.front() != '-') break;
    if (is_help(arg)) {
      std::cout << global_help();
      return kExitOk;
    }
    if (arg == "--version") {
      std::cout << "hookctl " << hookd::kVersion << "\n";
      return kExitOk;
    }
    auto [name, inline_value] = split_option(arg);
    std::optional<std::string>* slot = name == "--url"          ? &g.url
                                       : name == "--token"      ? &g.token
                                       : name == "--token-file" ? &g.token_file
                                       : name == "--cacert"     ? &g.cacert
                                                                : nullptr;
    if (slot == nullptr) {
      throw usage_error{"hookctl: unknown option " + std::string(name) +
                        " (global options come before the command; see hookctl --help)"};
    }
    if (inline_value) {
      *slot = std::string(*inline_value);
    } else if (i + 1 < args.size()) {
      *slot = args[++i];
    } else {
      throw usage_error{"hookctl: " + std::string(name) + " needs a value (see hookctl --help)"};
    }
  }
  if (i == args.size()) {
    throw usage_error{"hookctl: missing command (see hookctl --help)"};
  }

  std::string group = args[i++];
  if (group == "help") {  // `hookctl help webhook create` == `hookctl webhook create --help`
    if (i == args.size()) {
      std::cout << global_help();
      return kExitOk;
    }
    std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
    rest.emplace_back("--help");
    return run(rest);
  }

  const command_spec* command = nullptr;
  std::optional<planned_request> plan;
  if (group == "backup") {
    auto rest = args.subspan(i);
    if (!rest.empty() && is_help(rest.front())) {
      std::cout << kBackupHelp;
      return kExitOk;
    }
    if (rest.size() != 1 || rest.front().empty() || rest.front().front() == '-') {
      throw usage_error{"hookctl backup: expected one argument, DIR (see hookctl backup --help)"};
    }
    plan = plan_backup(rest.front());
  } else if (group == "health") {
    if (i < args.size() && is_help(args[i])) {
      std::cout << kHealthHelp;
      return kExitOk;
    }
    if (i < args.size()) {
      throw usage_error{"hookctl health: unexpected argument '" + args[i] +
                        "' (see hookctl health --help)"};
    }
  } else {
    bool known_group = std::any_of(commands().begin(), commands().end(),
                                   [&](const command_spec& c) { return c.group == group; });
    if (!known_group) {
      throw usage_error{"hookctl: unknown command '" + group + "' (see hookctl --help)"};
    }
    if (i == args.size() || is_help(args[i])) {
      if (i < args.size()) {
        std::cout << group_help(group);
        return kExitOk;
      }
      throw usage_error{"hookctl " + group + ": missing command (see hookctl " + group +
                        " --help)"};
    }
    const std::string& name = args[i++];
    for (const auto& c : commands()) {
      if (c.group == group && c.name == name) command = &c;
    }
    if (command == nullptr) {
      throw usage_error{"hookctl " + group + ": unknown command '" + name + "' (see hookctl " +
                        group + " --help)"};
    }
    auto rest = args.subspan(i);
    if (std::any_of(rest.begin(), std::find(rest.begin(), rest.end(), "--"),
                    [](const std::string& a) { return is_help(a); })) {
      std::cout << command_help(*command);
      return kExitOk;
    }
  }

  // Parse before anything goes out: a usage error never sends a request.
  if (command != nullptr) {
    plan = command->plan(parse_command_args(*command, args.subspan(i)));
  }

  // Precedence: flags, then the environment, then the default.
  std::string url = g.url ? *g.url : env("HOOKD_URL").value_or(std::string(kDefaultUrl));
  auto where = http::parse_base_url(url);
  if (auto* message = std::get_if<std::string>(&where)) {
    throw usage_error{"hookctl: --url: " + *message};
  }
  if (g.token && g.token_file) {
    throw usage_error{"hookctl: give --token or --token-file, not both"};
  }
  std::optional<std::string> token;
  if (g.token) {
    token = trim_token(*g.token, "--token");
  } else if (g.token_file) {
    token = read_token_file(*g.token_file);
  } else if (auto from_env = env("HOOKD_TOKEN")) {
    token = trim_token(*from_env, "HOOKD_TOKEN");
  }

  // A backup across file systems copies the whole database before hookd answers.
  const std::chrono::milliseconds timeout =
      group == "backup" ? std::chrono::milliseconds(std::chrono::minutes(10))
                        : std::chrono::milliseconds(std::chrono::seconds(30));
  http::sync_client client(std::get<http::base_url>(std::move(where)), timeout);
  if (auto cacert = g.cacert ? g.cacert : env("HOOKD_CACERT")) client.set_ca_file(*cacert);
  if (!plan) {
    return run_health(client, url);
  }
  std::vector<std::pair<std::string, std::string>> auth;
  if (token) auth.emplace_back("Authorization", "Bearer " + *token);
  return run_request(client, url, auth, *plan);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return run(args);
  } catch (const usage_error& e) {
    std::cerr << e.message << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {  // not expected: the client reports failures as values
    std::cerr << "hookctl: internal error: " << e.what() << "\n";
    return kExitHttpError;
  }
}
