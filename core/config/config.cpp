// Configuration: one table of options drives the flags, the HOOKD_* environment twins, the
// config-file keys and --help, so the four can never disagree about names or value syntax.

#include "core/config/config.hpp"

#include "core/common/ascii.hpp"

#include "core/common/clock.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace hookd {

config::config()
    : retry_schedule{std::chrono::seconds(5), std::chrono::minutes(5), std::chrono::minutes(30),
                     std::chrono::hours(2),   std::chrono::hours(5),   std::chrono::hours(10),
                     std::chrono::hours(10)} {}

namespace {

using std::chrono::milliseconds;

// A value problem, phrased to follow "<where>: ": e.g. "expected a positive integer".
using apply_result = std::optional<std::string>;
using apply_fn = apply_result (*)(config&, std::string_view);

struct option_spec {
  std::string_view name;      // flag without "--", e.g. "data-dir"
  std::string_view metavar;   // "" for boolean flags
  std::string_view fallback;  // the default, as --help shows it
  std::string_view help;
  apply_fn apply;
  bool boolean = false;
};

constexpr std::uint64_t kMaxBodyCeiling = 1ull << 30;  // bodies are held in memory: 1 GiB at most

std::optional<std::uint64_t> parse_uint(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  std::uint64_t v = 0;
  const auto* end = text.data() + text.size();
  const auto r = std::from_chars(text.data(), end, v);
  if (r.ec != std::errc{} || r.ptr != end) return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(std::string_view text) noexcept {
  for (const auto t : {"1", "true", "yes", "on"}) {
    if (ascii_iequals(text, t)) return true;
  }
  for (const auto f : {"0", "false", "no", "off"}) {
    if (ascii_iequals(text, f)) return false;
  }
  return std::nullopt;
}

// "65536", "64k", "64KiB", "1m", "1MiB" (binary multiples; "kb"/"mb" are read the same way).
std::optional<std::uint64_t> parse_bytes(std::string_view text) noexcept {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const auto number = parse_uint(text.substr(0, digits));
  if (!number) return std::nullopt;
  const auto suffix = text.substr(digits);
  std::uint64_t unit = 0;
  if (suffix.empty() || ascii_iequals(suffix, "b")) {
    unit = 1;
  } else if (ascii_iequals(suffix, "k") || ascii_iequals(suffix, "kib") ||
             ascii_iequals(suffix, "kb")) {
    unit = 1024;
  } else if (ascii_iequals(suffix, "m") || ascii_iequals(suffix, "mib") ||
             ascii_iequals(suffix, "mb")) {
    unit = 1024 * 1024;
  } else {
    return std::nullopt;
  }
  if (*number > kMaxBodyCeiling / unit) return std::nullopt;
  return *number * unit;
}

bool host_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// "127.0.0.1:8080", "localhost:8080", "[::1]:8080". IPv6 needs brackets: "::1:8080" is
// ambiguous, so it is refused rather than guessed.
apply_result parse_listen_address(std::string_view v, listen_address& out) {
  constexpr auto kExpected = "expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080";
  std::string_view host, port;
  if (!v.empty() && v.front() == '[') {
    const auto close = v.find(']');
    if (close == std::string_view::npos || close + 1 >= v.size() || v[close + 1] != ':') {
      return kExpected;
    }
    host = v.substr(1, close - 1);
    port = v.substr(close + 2);
    if (host.find(':') == std::string_view::npos) return kExpected;
    for (const char ch : host) {
      const bool ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                      (ch >= 'A' && ch <= 'F') || ch == ':' || ch == '.';
      if (!ok) return kExpected;
    }
  } else {
    const auto colon = v.rfind(':');
    if (colon == std::string_view::npos) return kExpected;
    host = v.substr(0, colon);
    port = v.substr(colon + 1);
    if (host.empty() || !std::all_of(host.begin(), host.end(), host_char)) return kExpected;
  }
  const auto p = parse_uint(port);
  if (!p || *p > 65535) return kExpected;
  out.host = std::string(host);
  out.port = static_cast<std::uint16_t>(*p);
  return std::nullopt;
}

apply_result apply_listen(config& c, std::string_view v) {
  listen_address address;
  if (auto problem = parse_listen_address(v, address)) return problem;
  c.listen_host = std::move(address.host);
  c.listen_port = address.port;
  return std::nullopt;
}

// An empty value (a flag or a file; an empty HOOKD_METRICS_LISTEN counts as unset) turns the
// second listener off again.
apply_result apply_metrics_listen(config& c, std::string_view v) {
  if (v.empty()) {
    c.metrics_listen.reset();
    return std::nullopt;
  }
  listen_address address;
  if (auto problem = parse_listen_address(v, address)) return problem;
  c.metrics_listen = std::move(address);
  return std::nullopt;
}

// --public-url: "http(s)://host[:port]", one trailing '/' allowed and dropped.
apply_result apply_public_url(config& c, std::string_view v) {
  if (v.empty()) {
    c.public_url.clear();
    return std::nullopt;
  }
  if (v.ends_with('/')) v.remove_suffix(1);
  std::string_view rest;
  if (v.starts_with("http://")) {
    rest = v.substr(7);
  } else if (v.starts_with("https://")) {
    rest = v.substr(8);
  }
  const bool host_only = !rest.empty() && rest.find_first_of("/?#@ \t") == std::string_view::npos;
  if (!host_only) return "expected an http or https origin such as https://hooks.example.com";
  c.public_url = std::string(v);
  return std::nullopt;
}

template <class T, std::uint64_t Max>
apply_result set_count(T& out, std::string_view v) {
  const auto n = parse_uint(v);
  if (!n || *n == 0 || *n > Max) {
    return "expected a positive integer (at most " + std::to_string(Max) + ")";
  }
  out = static_cast<T>(*n);
  return std::nullopt;
}

apply_result set_duration(milliseconds& out, std::string_view v, bool allow_zero) {
  const auto d = parse_duration(v);
  if (!d || (!allow_zero && d->count() == 0)) {
    return allow_zero ? "expected a duration such as 30s, 5m, 2h or 5d"
                      : "expected a positive duration such as 30s, 5m, 2h or 5d";
  }
  out = *d;
  return std::nullopt;
}

apply_result set_bool(bool& out, std::string_view v) {
  const auto b = parse_bool(v);
  if (!b) return "expected true or false (also 1/0, yes/no)";
  out = *b;
  return std::nullopt;
}

// The single source of truth for option names, defaults and syntax.
const std::array kOptions = {
    option_spec{"listen", "HOST:PORT", "127.0.0.1:8080",
                "Address to listen on; IPv6 in brackets, e.g. [::1]:8080. Port 0 picks a free one.",
                apply_listen},
    option_spec{"metrics-listen", "HOST:PORT", "none",
                "A second address serving /metrics, /healthz and /readyz; the main one then "
                "answers /metrics with 404.",
                apply_metrics_listen},
    option_spec{"data-dir", "DIR", "./data",
                "Database, master.key and admin-token (mode 0700; refused when wider).",
                [](config& c, std::string_view v) -> apply_result {
                  if (v.empty()) return "expected a directory path";
                  c.data_dir = std::string(v);
                  return std::nullopt;
                }},
    option_spec{"storage", "rocksdb|URI", "rocksdb",
                "Where the catalog and the deliveries live: the embedded RocksDB in --data-dir, or "
                "a PostgreSQL database (postgresql://user@host:port/db) shared by a cluster's "
                "nodes.",
                [](config& c, std::string_view v) -> apply_result {
                  if (v == "rocksdb") {
                    c.storage.clear();
                    return std::nullopt;
                  }
                  if (!is_postgresql_uri(v)) {
                    return "expected rocksdb or a PostgreSQL URI such as "
                           "postgresql://hookd@db.internal:5432/hookd";
                  }
                  c.storage = std::string(v);
                  return std::nullopt;
                }},
    option_spec{"cluster-lease", "DURATION", "30s",
                "Cluster mode (--storage postgresql://) only: how long a node's claimed "
                "deliveries stay its own unless renewed; a dead node's go to the others after "
                "this. At least 3s.",
                [](config& c, std::string_view v) -> apply_result {
                  const auto d = parse_duration(v);
                  if (!d || *d < std::chrono::seconds(3)) {
                    return "expected a duration of at least 3s, such as 30s or 1m";
                  }
                  c.cluster_lease = *d;
                  return std::nullopt;
                }},
    option_spec{"cluster-claim-interval", "DURATION", "250ms",
                "Cluster mode only: how often a node looks for due deliveries no node holds "
                "(retries, a dead node's). At most a third of --cluster-lease.",
                [](config& c, std::string_view v) {
                  return set_duration(c.cluster_claim_interval, v, false);
                }},
    option_spec{"node-name", "NAME", "host:pid",
                "Cluster mode only: this node's name as owner of its leases and in its log; "
                "unique among running nodes.",
                [](config& c, std::string_view v) -> apply_result {
                  if (v.size() > 200 || std::any_of(v.begin(), v.end(), [](char ch) {
                        return static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f;
                      })) {
                    return "expected a name of at most 200 characters without spaces or control "
                           "characters, such as node-1";
                  }
                  c.node_name = std::string(v);  // empty: host:pid
                  return std::nullopt;
                }},
    option_spec{"threads", "N", "hardware threads", "Threads serving HTTP.",
                [](config& c, std::string_view v) {
                  return set_count<unsigned, 1024>(c.threads, v);
                }},
    option_spec{"max-connections", "N", "10000",
                "Inbound connections open at once; a new one beyond it gets a 503 and is closed.",
                [](config& c, std::string_view v) {
                  return set_count<std::size_t, 1'000'000>(c.max_connections, v);
                }},
    option_spec{"max-body", "BYTES", "64KiB",
                "Largest request body accepted (suffixes k/KiB, m/MiB); larger is a 413.",
                [](config& c, std::string_view v) -> apply_result {
                  const auto n = parse_bytes(v);
                  if (!n || *n == 0)
                    return "expected a size in bytes such as 65536, 64k or 1MiB (at most 1GiB)";
                  c.max_body_bytes = static_cast<std::size_t>(*n);
                  return std::nullopt;
                }},
    option_spec{"max-webhooks-per-project", "N", "100",
                "Webhooks a project may have; the next create is a 409.",
                [](config& c, std::string_view v) {
                  return set_count<std::size_t, 1'000'000>(c.max_webhooks_per_project, v);
                }},
    option_spec{"retry-schedule", "LIST", "5s,5m,30m,2h,5h,10h,10h",
                "Delays between delivery attempts (each with +-20% jitter), comma-separated.",
                [](config& c, std::string_view v) -> apply_result {
                  auto steps = parse_duration_list(v);
                  if (!steps)
                    return "expected comma-separated positive durations such as 5s,5m,30m";
                  c.retry_schedule = std::move(*steps);
                  return std::nullopt;
                }},
    option_spec{"delivery-timeout", "DURATION", "15s",
                "How long a webhook endpoint has to answer a delivery with a 2xx.",
                [](config& c, std::string_view v) {
                  return set_duration(c.delivery_timeout, v, false);
                }},
    option_spec{"disable-after", "DURATION", "5d",
                "A webhook failing without a single success this long is set inactive.",
                [](config& c, std::string_view v) {
                  return set_duration(c.disable_after, v, false);
                }},
    option_spec{"retention", "DURATION", "30d",
                "Events and finished deliveries older than this leave the API and the disk.",
                [](config& c, std::string_view v) {
                  return set_duration(c.retention, v, false);
                }},
    option_spec{"secret-grace", "DURATION", "24h",
                "How long the previous secret keeps signing after a rotation (0s: not at all).",
                [](config& c, std::string_view v) {
                  return set_duration(c.secret_grace, v, true);
                }},
    option_spec{
        "allow-private-targets", "", "false",
        "Allow webhook URLs resolving to loopback/private/reserved addresses (testing only).",
        [](config& c, std::string_view v) { return set_bool(c.allow_private_targets, v); }, true},
    option_spec{"header-timeout", "DURATION", "10s",
                "Time allowed to receive a request head, then its body, and to write a response.",
                [](config& c, std::string_view v) {
                  return set_duration(c.header_timeout, v, false);
                }},
    option_spec{"idle-timeout", "DURATION", "75s",
                "How long a keep-alive connection may wait for its next request.",
                [](config& c, std::string_view v) {
                  return set_duration(c.idle_timeout, v, false);
                }},
    option_spec{"drain-timeout", "DURATION", "10s",
                "On SIGTERM/SIGINT, how long in-flight requests get before connections are cut.",
                [](config& c, std::string_view v) {
                  return set_duration(c.drain_timeout, v, true);
                }},
    option_spec{"shutdown-delay", "DURATION", "5s",
                "On SIGTERM/SIGINT, keep serving this long with /readyz answering 503 before "
                "accepting stops, so that a load balancer takes the node out first; a second "
                "signal cuts it short.",
                [](config& c, std::string_view v) {
                  return set_duration(c.shutdown_delay, v, true);
                }},
    option_spec{"max-inflight-deliveries", "N", "256", "Delivery attempts running at once.",
                [](config& c, std::string_view v) {
                  return set_count<std::size_t, 1'000'000>(c.max_inflight_deliveries, v);
                }},
    option_spec{"max-inflight-per-webhook", "N", "4",
                "Delivery attempts running at once against one webhook.",
                [](config& c, std::string_view v) {
                  return set_count<std::size_t, 10'000>(c.max_inflight_per_webhook, v);
                }},
    option_spec{"max-inflight-per-organization", "N", "--max-inflight-deliveries / 4",
                "Delivery attempts running at once against one organization's webhooks.",
                [](config& c, std::string_view v) {
                  return set_count<std::size_t, 1'000'000>(c.max_inflight_per_organization, v);
                }},
    option_spec{"metrics-per-webhook", "", "false",
                "Add per-webhook series (attempts by outcome, latency) to /metrics: about 19 "
                "series per webhook.",
                [](config& c, std::string_view v) { return set_bool(c.metrics_per_webhook, v); },
                true},
    option_spec{"tls-cert", "FILE", "none",
                "PEM certificate chain: serve HTTPS (with --tls-key). SIGHUP reloads both files.",
                [](config& c, std::string_view v) -> apply_result {
                  c.tls_cert = std::string(v);
                  return std::nullopt;
                }},
    option_spec{"tls-key", "FILE", "none",
                "PEM private key of --tls-cert (unencrypted; keep it mode 0600).",
                [](config& c, std::string_view v) -> apply_result {
                  c.tls_key = std::string(v);
                  return std::nullopt;
                }},
    option_spec{"rate-limit", "N", "0 (off)",
                "API requests per second per token (burst 2N); beyond it a 429 with Retry-After. "
                "Requests without a token are not counted.",
                [](config& c, std::string_view v) -> apply_result {
                  const auto n = parse_uint(v);
                  if (!n || *n > 1'000'000) {
                    return "expected requests per second, 0 (off) to 1000000";
                  }
                  c.rate_limit = static_cast<std::uint32_t>(*n);
                  return std::nullopt;
                }},
    option_spec{"access-log", "", "false",
                "Log one JSON line per request (\"event\":\"access\") to the log's stream.",
                [](config& c, std::string_view v) { return set_bool(c.access_log, v); }, true},
    option_spec{"trusted-proxies", "LIST", "none",
                "Comma-separated addresses or CIDR networks (IPv4, IPv6) whose X-Forwarded-For "
                "the access log records.",
                [](config& c, std::string_view v) -> apply_result {
                  auto parsed = parse_ip_network_list(v);
                  if (auto* problem = std::get_if<std::string>(&parsed)) {
                    return "expected addresses or networks such as 10.0.0.0/8,::1: " + *problem;
                  }
                  c.trusted_proxies = std::move(std::get<std::vector<ip_network>>(parsed));
                  return std::nullopt;
                }},
    option_spec{"public-url", "URL", "from the request's Host",
                "Origin of the portal's session URLs (http or https, a host, no path), e.g. "
                "https://hooks.example.com.",
                apply_public_url},
    option_spec{"log-level", "LEVEL", "info",
                "debug, info, warn or error: lines below it are dropped. SIGHUP applies a change.",
                [](config& c, std::string_view v) -> apply_result {
                  const auto level = parse_log_level(v);
                  if (!level) return "expected debug, info, warn or error";
                  c.min_log_level = *level;
                  return std::nullopt;
                }},
    option_spec{"storage-background", "POLICY", "idle",
                "RocksDB's flushes and compactions: idle (they yield the core to hookd's threads, "
                "back to normal when they fall behind the writes) or normal.",
                [](config& c, std::string_view v) -> apply_result {
                  if (v != "idle" && v != "normal") return "expected idle or normal";
                  c.storage_background_idle = v == "idle";
                  return std::nullopt;
                }},
    option_spec{"unsafe-no-fsync", "", "false",
                "Do not fsync writes. Benchmarks only: a crash loses acknowledged writes.",
                [](config& c, std::string_view v) { return set_bool(c.unsafe_no_fsync, v); }, true},
    option_spec{"config", "FILE", "none",
                "TOML or JSON file with any of these options (keys as above, '-' or '_').",
                [](config& c, std::string_view v) -> apply_result {
                  if (v.empty()) return "expected a file path";
                  c.config_file = std::string(v);
                  return std::nullopt;
                }},
};

const option_spec* find_option(std::string_view name) noexcept {
  for (const auto& o : kOptions) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

std::string env_name(std::string_view option) {
  std::string out = "HOOKD_";
  for (const char c : option) {
    if (c == '-') {
      out += '_';
    } else if (c >= 'a' && c <= 'z') {
      out += static_cast<char>('A' + (c - 'a'));
    } else {
      out += c;
    }
  }
  return out;
}

// Values are quoted in messages on one line, whatever they contain.
std::string printable(std::string_view v) {
  std::string out;
  const std::size_t limit = 200;
  for (const char c : v.substr(0, limit)) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[(static_cast<unsigned char>(c) >> 4) & 0xF];
      out += kHex[static_cast<unsigned char>(c) & 0xF];
    } else {
      out += c;
    }
  }
  if (v.size() > limit) out += "...";
  return out;
}

std::string failure(std::string_view where, std::string_view what) {
  std::string out = "hookd: ";
  if (!where.empty()) out.append(where).append(": ");
  out.append(what).append(" (see hookd --help)");
  return out;
}

std::string bad_value(std::string_view where, std::string_view expected, std::string_view value) {
  std::string what(expected);
  // A connection string's password is never echoed (a --storage with a mistyped scheme).
  what.append(", got '").append(printable(redact_password(value))).append("'");
  return failure(where, what);
}

// ---- config files

// One key = value from a file, its value already in option syntax ("5s,5m" for a list).
struct file_entry {
  std::string key;  // normalized: '_' -> '-'
  std::string value;
  std::string where;  // "<file>:<line>: <key>" or "<file>: <key>", for messages
};

std::string normalize_key(std::string_view key) {
  std::string out(key);
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

// TOML through toml++ (a full TOML 1.0 parser): keys at the top level whose values are strings,
// integers, booleans, or arrays of strings for the one list option. Tables, floats and dates
// name no option, so they are refused with their line, never ignored.
std::variant<std::vector<file_entry>, std::string> read_toml(std::string_view text,
                                                             const std::string& file) {
  toml::table doc;
  try {
    doc = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    return failure(file + ":" + std::to_string(e.source().begin.line),
                   std::string(e.description()));
  }
  std::vector<file_entry> out;
  for (const auto& [k, node] : doc) {
    const auto key = normalize_key(k.str());
    const auto twin =
        std::find_if(out.begin(), out.end(), [&](const file_entry& e) { return e.key == key; });
    const auto where =
        file + ":" + std::to_string(node.source().begin.line) + ": " + printable(k.str());
    if (twin != out.end()) return failure(where, "given twice (" + twin->where + ")");
    std::string value;
    if (const auto* s = node.as_string()) {
      value = s->get();
    } else if (const auto* i = node.as_integer()) {
      if (i->get() < 0) return failure(where, "expected a value of zero or more");
      value = std::to_string(i->get());
    } else if (const auto* b = node.as_boolean()) {
      value = b->get() ? "true" : "false";
    } else if (const auto* a = node.as_array()) {
      if (key != "retry-schedule") return failure(where, "takes a single value, not an array");
      for (const auto& item : *a) {
        const auto* item_text = item.as_string();
        if (item_text == nullptr) return failure(where, "array elements must be strings");
        if (!value.empty()) value += ',';
        value += item_text->get();
      }
    } else if (node.is_table()) {
      return failure(where, "tables ([section]) are not supported; put keys at the top level");
    } else {
      return failure(where,
                     "unsupported value (use a \"string\", an integer, true/false or an array "
                     "of strings)");
    }
    out.push_back({key, std::move(value), where});
  }
  return out;
}

std::variant<std::vector<file_entry>, std::string> read_json(std::string_view text,
                                                             std::string_view file) {
  boost::system::error_code ec;
  boost::json::parse_options opts;
  opts.max_depth = 8;
  const auto doc = boost::json::parse(text, ec, {}, opts);
  if (ec) return failure(file, "not valid JSON: " + ec.message());
  if (!doc.is_object()) return failure(file, "expected a JSON object of options");
  std::vector<file_entry> out;
  for (const auto& [k, v] : doc.as_object()) {
    const auto key = normalize_key(k);
    const auto where = std::string(file) + ": " + std::string(k);
    std::string value;
    switch (v.kind()) {
      case boost::json::kind::string:
        value = std::string(v.get_string());
        break;
      case boost::json::kind::int64:
        value = std::to_string(v.get_int64());
        break;
      case boost::json::kind::uint64:
        value = std::to_string(v.get_uint64());
        break;
      case boost::json::kind::bool_:
        value = v.get_bool() ? "true" : "false";
        break;
      case boost::json::kind::array: {
        if (key != "retry-schedule") return failure(where, "takes a single value, not an array");
        for (const auto& item : v.get_array()) {
          if (!item.is_string()) return failure(where, "array elements must be strings");
          if (!value.empty()) value += ',';
          value += item.get_string();
        }
        break;
      }
      default:
        return failure(where, "unsupported value (use a string, an integer or a boolean)");
    }
    out.push_back({key, std::move(value), where});
  }
  return out;
}

std::optional<std::string> apply_file(config& c, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return failure("--config", "cannot read '" + printable(path) + "': " + std::strerror(errno));
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  const auto text = buf.str();

  const auto ends_with = [&](std::string_view suffix) {
    return path.size() >= suffix.size() &&
           ascii_iequals(std::string_view(path).substr(path.size() - suffix.size()), suffix);
  };
  bool json = false;
  if (ends_with(".json")) {
    json = true;
  } else if (!ends_with(".toml")) {
    const auto first = text.find_first_not_of(" \t\r\n");
    json = first != std::string::npos && text[first] == '{';
  }
  auto entries = json ? read_json(text, path) : read_toml(text, path);
  if (auto* err = std::get_if<std::string>(&entries)) return *err;

  for (const auto& e : std::get<std::vector<file_entry>>(entries)) {
    const auto* spec = find_option(e.key);
    if (spec == nullptr) return failure(e.where, "unknown key");
    if (spec->name == "config") return failure(e.where, "a config file cannot name another one");
    if (auto problem = spec->apply(c, e.value)) return bad_value(e.where, *problem, e.value);
  }
  return std::nullopt;
}

}  // namespace

std::variant<parsed_config, std::string> parse_config(std::span<const std::string> args,
                                                      const env_lookup& env) {
  // Pass 1: the flags' syntax, so that an unknown option fails before anything is read, and
  // --help/--version work whatever the environment holds.
  struct flag {
    const option_spec* spec;
    std::string value;
    std::string where;
  };
  std::vector<flag> flags;
  bool help = false, version = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      help = true;
      continue;
    }
    if (arg == "--version") {
      version = true;
      continue;
    }
    if (arg.size() < 3 || arg.substr(0, 2) != "--") {
      return failure({}, "unexpected argument '" + printable(arg) + "'");
    }
    const auto eq = arg.find('=');
    const auto name = arg.substr(2, eq == std::string_view::npos ? std::string_view::npos : eq - 2);
    const auto* spec = find_option(name);
    if (spec == nullptr) {
      if (name == "help" || name == "version") {
        return failure("--" + std::string(name), "takes no value");
      }
      return failure({}, "unknown option '--" + printable(name) + "'");
    }
    const auto where = "--" + std::string(spec->name);
    if (eq != std::string_view::npos) {
      flags.push_back({spec, std::string(arg.substr(eq + 1)), where});
    } else if (spec->boolean) {
      flags.push_back({spec, "true", where});
    } else if (i + 1 < args.size()) {
      flags.push_back({spec, args[++i], where});
    } else {
      return failure(where, "expected a value (" + std::string(spec->metavar) + ")");
    }
  }
  if (help) return parsed_config{config_action::help, config{}};
  if (version) return parsed_config{config_action::version, config{}};

  const auto from_env = [&](std::string_view option) -> std::optional<std::string> {
    if (!env) return std::nullopt;
    auto v = env(env_name(option));
    if (v && v->empty()) return std::nullopt;  // HOOKD_X= counts as unset
    return v;
  };

  parsed_config out;
  config& c = out.values;

  // The file path itself: flag over environment.
  std::optional<std::string> file;
  if (auto v = from_env("config")) file = std::move(v);
  for (const auto& f : flags) {
    if (f.spec->name == "config") file = f.value;
  }
  if (file) {
    if (file->empty()) return failure("--config", "expected a file path");
    c.config_file = *file;
    if (auto err = apply_file(c, *file)) return *err;
  }

  for (const auto& spec : kOptions) {
    if (spec.name == "config") continue;
    if (auto v = from_env(spec.name)) {
      if (auto problem = spec.apply(c, *v)) return bad_value(env_name(spec.name), *problem, *v);
    }
  }

  for (const auto& f : flags) {
    if (f.spec->name == "config") continue;
    if (auto problem = f.spec->apply(c, f.value)) return bad_value(f.where, *problem, f.value);
  }
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return failure(c.tls_cert.empty() ? "--tls-key" : "--tls-cert",
                   "needs " + std::string(c.tls_cert.empty() ? "--tls-cert" : "--tls-key") +
                       " too: HTTPS takes a certificate and its key (give both, or neither for "
                       "plain HTTP)");
  }
  // The claimer renews the leases on its rounds, every third of the lease at the latest: a
  // longer claim interval would let a live node's leases lapse between two renewals.
  if (c.cluster_claim_interval * 3 > c.cluster_lease) {
    return failure("--cluster-claim-interval", "must be at most a third of --cluster-lease (" +
                                                   std::to_string(c.cluster_lease.count()) +
                                                   "ms): leases are renewed on the claim rounds");
  }
  // The same address twice would fail to bind only at start-up, as a start-up failure (exit 1).
  if (c.metrics_listen && c.metrics_listen->port != 0 && c.metrics_listen->port == c.listen_port &&
      c.metrics_listen->host == c.listen_host) {
    return failure("--metrics-listen", "must differ from --listen (" + c.listen_host + ":" +
                                           std::to_string(c.listen_port) + ")");
  }
  return out;
}

bool is_postgresql_uri(std::string_view storage) noexcept {
  return storage.starts_with("postgresql://") || storage.starts_with("postgres://");
}

namespace {

// Where passwords sit in a connection string, as [begin, end) offsets: the userinfo's after its
// ':' (scheme://user:PASSWORD@host) and every password=VALUE (a URI's query or libpq's
// key=value form), whatever the scheme, so that a mistyped one is covered too.
std::vector<std::pair<std::size_t, std::size_t>> password_spans(std::string_view uri) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  if (const auto scheme = uri.find("://"); scheme != std::string_view::npos) {
    const std::size_t begin = scheme + 3;
    const std::size_t end = std::min(uri.find_first_of("/?#", begin), uri.size());
    const std::string_view authority = uri.substr(begin, end - begin);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
      if (const auto colon = authority.substr(0, at).find(':'); colon != std::string_view::npos) {
        out.emplace_back(begin + colon + 1, begin + at);
      }
    }
  }
  constexpr std::string_view kKey = "password=";
  for (std::size_t at = uri.find(kKey); at != std::string_view::npos; at = uri.find(kKey, at + 1)) {
    if (at != 0 && uri[at - 1] != '?' && uri[at - 1] != '&' && uri[at - 1] != ' ') continue;
    const std::size_t begin = at + kKey.size();
    out.emplace_back(begin, std::min(uri.find_first_of("& #", begin), uri.size()));
  }
  return out;
}

}  // namespace

std::string redact_password(std::string_view uri) {
  auto spans = password_spans(uri);
  std::sort(spans.begin(), spans.end());
  std::string out;
  std::size_t copied = 0;
  for (const auto& [begin, end] : spans) {
    if (begin < copied) continue;
    out.append(uri.substr(copied, begin - copied)).append("***");
    copied = end;
  }
  return out.append(uri.substr(copied));
}

std::string redact_password_in(std::string_view text, std::string_view uri) {
  std::string out(text);
  for (const auto& [begin, end] : password_spans(uri)) {
    const std::string_view secret = uri.substr(begin, end - begin);
    if (secret.empty()) continue;
    for (std::size_t at = out.find(secret); at != std::string::npos;
         at = out.find(secret, at + 3)) {
      out.replace(at, secret.size(), "***");
    }
  }
  return out;
}

std::string config_help() {
  std::string out =
      "Usage: hookd [OPTIONS]\n"
      "       hookd migrate --storage postgresql://... [--dry-run]   (cluster mode's schema;\n"
      "       see hookd migrate --help and docs/cluster.md)\n"
      "\n"
      "hookd is a self-hosted webhook service: it stores webhooks per project and delivers\n"
      "signed events to them with retries.\n"
      "\n"
      "Options (each also as an environment variable, and as a key in the --config file):\n";
  for (const auto& o : kOptions) {
    std::string left = "  --" + std::string(o.name);
    if (!o.metavar.empty()) left += " " + std::string(o.metavar);
    out += left;
    out += std::string(left.size() < 40 ? 40 - left.size() : 1, ' ');
    out += o.help;
    out += "\n";
    out += std::string(40, ' ');
    out += "env " + env_name(o.name) + ", default " + std::string(o.fallback) + "\n";
  }
  out +=
      "  --help                                Print this help and exit.\n"
      "  --version                             Print the version and exit.\n"
      "\n"
      "Values: --opt VALUE or --opt=VALUE. Durations: 250ms, 30s, 5m, 2h, 5d, or combined 1h30m.\n"
      "Booleans (flags, environment, files): true/false, 1/0, yes/no.\n"
      "Precedence, lowest first: defaults, config file, HOOKD_* environment, flags.\n"
      "Config files: .json (an object) or .toml (key = value lines), e.g.\n"
      "  data_dir = \"/var/lib/hookd\"\n"
      "  retry_schedule = [\"5s\", \"5m\", \"30m\"]\n"
      "\n"
      "Other environment: HOOKD_MASTER_KEY (base64 or hex of 32 bytes; else "
      "<data-dir>/master.key),\n"
      "HOOKD_ADMIN_TOKEN (the admin token on first start, at least 32 characters, e.g. from\n"
      "`openssl rand -base64 32`; else one is generated into <data-dir>/admin-token, mode 0600,\n"
      "and never logged).\n";
  return out;
}

}  // namespace hookd
