#pragma once
// hookd-load's command line (agreed with bench/compare.sh in briefs/load-cli.md): the options,
// their defaults, and their parsing into `load_options`. A mistake is a `usage_error` that main
// prints as {"error": ..., "hint": ...} and exits 2 on.

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hookd::load {

constexpr std::string_view kHelp =
    R"(hookd-load: a load generator for hookd's API (keep-alive connections, closed or open loop).

Usage: hookd-load --url http://127.0.0.1:PORT --scenario NAME [options]

Scenarios:
  get        GET one webhook by id, round robin over the webhooks
  list       GET the webhook list of a project, round robin over the projects
  create     POST a webhook, round robin over the projects (mind hookd's per-project limit)
  patch      PATCH a webhook's name (a new name each time, so that every PATCH writes)
  delete     DELETE a webhook; when none is left, one is created first (not measured)
  mix        the operations above by --mix weights
  ingest     POST an event, round robin over the projects
  deliver    ingest events for webhooks that point at hookd-load's own receiver and measure the
             deliveries (hookd must run with --allow-private-targets). The summary's "deliver"
             has latency_us (intended send time -> delivery read), sent_to_received_us (event
             request written -> the kernel's receive time of its delivery: hookd's share,
             without this tool's own delays) and send_late_us (intended -> written)

Credentials (one of):
  --admin-token T        provision an organization, --projects projects, a token and --webhooks
                         webhooks per project; at the end revoke the token and delete the
                         organization with everything in it (unless --keep)
  --token T --organization ID --project ID
                         use existing ones; get/list/patch/delete/mix use the project's webhooks;
                         at the end delete the webhooks the run created that still exist
Load shape:
  --connections N        keep-alive connections (default 16), one request at a time each
  --duration SECONDS     measured time (default 10; decimals allowed)
  --requests N           stop after N measured requests instead (whichever comes first if both)
  --warmup SECONDS       unmeasured load first (default 0)
  --rate R               open loop: R requests/s in total on a fixed schedule; latency counts
                         from each request's intended send time. Without it: closed loop.
  --threads N            client threads (default 1)
  --timeout SECONDS      per request (default 10); a request over it counts as a timeout
Scenario options:
  --projects P           projects to provision (default 1)
  --webhooks W           webhooks per project (default 20; create: 0). With --token, only
                         deliver creates webhooks (W, pointing at its receiver)
  --mix get=90,list=5,create=2,patch=2,delete=1
  --target URL           url of the webhooks it creates (default https://hooks.example.com/hookd-load)
  --event-type TYPE      event type for ingest/deliver (default hookd.load.test)
  --drain SECONDS        deliver: wait up to this long for outstanding deliveries (default 10)
  --signing v1|v1a       deliver: how the webhooks it creates sign: HMAC-SHA256 (v1, default)
                         or Ed25519 (v1a, verified with the webhook's public key)
Output:
  --quiet                no progress lines on stderr
  --output FILE          write the summary there instead of stdout
  --keep                 leave what was provisioned (and print the token)
  --help                 this text

Progress: one JSON line a second on stderr. Summary: one JSON object on stdout.
Exit: 0 done (non-2xx answers are counted, not fatal), 1 the run could not be done, 2 bad usage.
)";

enum class scenario { get, list, create, patch, del, mix, ingest, deliver };

// The operations a request can be; `mix` draws one of the first five per request.
enum class op : std::uint8_t { get, list, create, patch, del, ingest };
constexpr std::size_t kOpCount = 6;
constexpr std::array<std::string_view, kOpCount> kOpNames = {"get",   "list",   "create",
                                                             "patch", "delete", "ingest"};

inline std::string_view to_string(scenario s) {
  constexpr std::array<std::string_view, 8> names = {"get",    "list", "create", "patch",
                                                     "delete", "mix",  "ingest", "deliver"};
  return names[static_cast<std::size_t>(s)];
}

struct usage_error {
  std::string message;
  std::string hint = "run hookd-load --help";
};

struct endpoint_url {
  std::string text;         // as given, for messages
  std::string host;         // for the resolver: name, IPv4, or IPv6 without brackets
  std::uint16_t port = 80;  // 80 when the URL has none
  std::string host_header;  // "host:port" as spelled in the URL
  std::string prefix;       // "" or "/x", prepended to every path
};

struct load_options {
  endpoint_url url;
  scenario kind = scenario::get;
  std::optional<std::string> admin_token;
  std::optional<std::string> token, organization, project;
  std::size_t connections = 16;
  std::optional<double> duration_s;  // default 10 unless --requests alone is given
  std::optional<std::uint64_t> requests;
  double warmup_s = 0;
  std::optional<double> rate;
  std::size_t threads = 1;
  double timeout_s = 10;  // long enough for an fsync'd write under heavy load
  std::size_t projects = 1;
  std::size_t webhooks = 20;
  std::array<unsigned, 5> mix = {90, 5, 2, 2, 1};  // get, list, create, patch, delete
  std::string target = "https://hooks.example.com/hookd-load";
  std::string event_type = "hookd.load.test";
  double drain_s = 10;
  std::string signing = "v1";  // the webhooks' `signing`
  bool quiet = false;
  std::optional<std::string> output;
  bool keep = false;
  bool help = false;

  bool provisioning() const { return admin_token.has_value(); }
};

inline bool is_object_id(std::string_view s) {
  if (s.size() != 24) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

inline std::optional<std::uint64_t> parse_count(std::string_view s, std::uint64_t max) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

// A plain decimal such as "10", "0.5" or "2.25" (no exponent, no sign), at most `max`.
inline std::optional<double> parse_decimal(std::string_view s, double max) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  double whole = 0, scale = 1;
  bool dot = false, digit = false;
  for (char c : s) {
    if (c == '.' && !dot) {
      dot = true;
    } else if (c >= '0' && c <= '9') {
      digit = true;
      if (dot) {
        scale /= 10;
        whole += scale * (c - '0');
      } else {
        whole = whole * 10 + (c - '0');
      }
    } else {
      return std::nullopt;
    }
  }
  if (!digit || !std::isfinite(whole) || whole > max) return std::nullopt;
  return whole;
}

inline endpoint_url parse_url(std::string_view text) {
  auto parsed = boost::urls::parse_uri(text);
  const std::string hint = "give hookd's address, such as --url http://127.0.0.1:8080";
  if (!parsed) throw usage_error{"--url: '" + std::string(text) + "' is not a URL", hint};
  const boost::urls::url_view u = *parsed;
  if (u.scheme() != "http") {
    throw usage_error{"--url: only http:// is supported, got '" + std::string(text) + "'",
                      "point hookd-load at hookd's own listener (plain HTTP)"};
  }
  if (u.has_userinfo() || u.has_query() || u.has_fragment() || u.host().empty()) {
    throw usage_error{
        "--url: expected http://HOST[:PORT][/prefix], got '" + std::string(text) + "'", hint};
  }
  endpoint_url out;
  out.text = std::string(text);
  out.host = u.host_type() == boost::urls::host_type::ipv6 ? u.host_ipv6_address().to_string()
                                                           : std::string(u.host());
  if (u.has_port()) {
    if (u.port().empty() || u.port_number() == 0) {
      throw usage_error{"--url: bad port in '" + std::string(text) + "'", hint};
    }
    out.port = u.port_number();
  }
  out.host_header = std::string(u.encoded_host_and_port());
  out.prefix = std::string(u.encoded_path());
  while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
  return out;
}

// "get=90,list=5,create=2,patch=2,delete=1"; unnamed operations weigh 0.
inline std::array<unsigned, 5> parse_mix(std::string_view text) {
  std::array<unsigned, 5> weights{};
  unsigned total = 0;
  const auto bad = [&](const std::string& why) {
    return usage_error{"--mix: " + why,
                       "write NAME=WEIGHT pairs, such as --mix get=90,list=5,create=2,patch=2,"
                       "delete=1"};
  };
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) throw bad("'" + std::string(item) + "' has no '='");
    const std::string_view name = item.substr(0, eq);
    const auto weight = parse_count(item.substr(eq + 1), 1'000'000);
    if (!weight) throw bad("'" + std::string(item) + "' needs a whole-number weight");
    std::size_t index = 5;
    for (std::size_t i = 0; i < 5; ++i) {
      if (kOpNames[i] == name) index = i;
    }
    if (index == 5) throw bad("unknown operation '" + std::string(name) + "'");
    weights[index] = static_cast<unsigned>(*weight);
    total += weights[index];
  }
  if (total == 0) throw bad("the weights add up to 0");
  return weights;
}

inline load_options parse_options(int argc, char** argv) {
  load_options o;
  std::optional<std::string> url;
  std::optional<std::string> kind;
  std::optional<std::size_t> webhooks;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) throw usage_error{std::string(arg) + " needs a value"};
      return argv[++i];
    };
    const auto count = [&](std::uint64_t min, std::uint64_t max) {
      const std::string_view v = value();
      const auto n = parse_count(v, max);
      if (!n || *n < min) {
        throw usage_error{std::string(arg) + ": expected a whole number from " +
                          std::to_string(min) + " to " + std::to_string(max) + ", got '" +
                          std::string(v) + "'"};
      }
      return *n;
    };
    const auto decimal = [&](bool allow_zero, double max, std::string_view unit) {
      const std::string_view v = value();
      const auto s = parse_decimal(v, max);
      if (!s || (!allow_zero && *s <= 0)) {
        throw usage_error{std::string(arg) + ": expected " +
                          (allow_zero ? "0 or more " : "a positive number of ") +
                          std::string(unit) + " such as 2.5, got '" + std::string(v) + "'"};
      }
      return *s;
    };
    const auto seconds = [&](bool allow_zero, double max) {
      return decimal(allow_zero, max, "seconds");
    };
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      return o;
    } else if (arg == "--url") {
      url = std::string(value());
    } else if (arg == "--scenario") {
      kind = std::string(value());
    } else if (arg == "--admin-token") {
      o.admin_token = std::string(value());
    } else if (arg == "--token") {
      o.token = std::string(value());
    } else if (arg == "--organization") {
      o.organization = std::string(value());
    } else if (arg == "--project") {
      o.project = std::string(value());
    } else if (arg == "--connections") {
      o.connections = static_cast<std::size_t>(count(1, 10'000));
    } else if (arg == "--duration") {
      o.duration_s = seconds(false, 1e7);
    } else if (arg == "--requests") {
      o.requests = count(1, 1'000'000'000'000);
    } else if (arg == "--warmup") {
      o.warmup_s = seconds(true, 1e6);
    } else if (arg == "--rate") {
      o.rate = decimal(false, 1e8, "requests per second");
    } else if (arg == "--threads") {
      o.threads = static_cast<std::size_t>(count(1, 256));
    } else if (arg == "--timeout") {
      o.timeout_s = seconds(false, 3600);
    } else if (arg == "--projects") {
      o.projects = static_cast<std::size_t>(count(1, 1'000'000));
    } else if (arg == "--webhooks") {
      webhooks = static_cast<std::size_t>(count(0, 100'000));
    } else if (arg == "--mix") {
      o.mix = parse_mix(value());
    } else if (arg == "--target") {
      o.target = std::string(value());
    } else if (arg == "--event-type") {
      o.event_type = std::string(value());
    } else if (arg == "--signing") {
      o.signing = std::string(value());
      if (o.signing != "v1" && o.signing != "v1a") {
        throw usage_error{"--signing: expected v1 or v1a, got '" + o.signing + "'"};
      }
    } else if (arg == "--drain") {
      o.drain_s = seconds(true, 1e6);
    } else if (arg == "--quiet") {
      o.quiet = true;
    } else if (arg == "--output") {
      o.output = std::string(value());
    } else if (arg == "--keep") {
      o.keep = true;
    } else {
      throw usage_error{"unknown option '" + std::string(arg) + "'"};
    }
  }

  if (!url) throw usage_error{"--url is required", "such as --url http://127.0.0.1:8080"};
  o.url = parse_url(*url);
  if (!kind) {
    throw usage_error{"--scenario is required",
                      "one of get, list, create, patch, delete, mix, ingest, deliver"};
  }
  bool known = false;
  for (auto s : {scenario::get, scenario::list, scenario::create, scenario::patch, scenario::del,
                 scenario::mix, scenario::ingest, scenario::deliver}) {
    if (to_string(s) == *kind) {
      o.kind = s;
      known = true;
    }
  }
  if (!known) {
    throw usage_error{"unknown scenario '" + *kind + "'",
                      "one of get, list, create, patch, delete, mix, ingest, deliver"};
  }

  const bool existing = o.token || o.organization || o.project;
  if (o.admin_token && existing) {
    throw usage_error{"--admin-token excludes --token, --organization and --project",
                      "either let hookd-load provision (--admin-token) or name existing ones"};
  }
  if (!o.admin_token && !existing) {
    throw usage_error{"credentials are required",
                      "give --admin-token T, or --token T --organization ID --project ID"};
  }
  if (existing) {
    if (!o.token || !o.organization || !o.project) {
      throw usage_error{"--token needs --organization and --project (and they need --token)"};
    }
    if (!is_object_id(*o.organization) || !is_object_id(*o.project)) {
      throw usage_error{"--organization and --project expect 24-hex-digit ids"};
    }
    if (o.projects != 1) {
      throw usage_error{"--projects applies to --admin-token only",
                        "with --token, the load goes to the one --project"};
    }
  }
  o.webhooks = webhooks.value_or(o.kind == scenario::create ? 0 : 20);
  if (o.kind == scenario::deliver && o.webhooks == 0) {
    throw usage_error{"deliver needs --webhooks of at least 1"};
  }
  if (!o.duration_s && !o.requests) o.duration_s = 10;
  if (o.threads > o.connections) {
    throw usage_error{"--threads is larger than --connections",
                      "each thread drives its share of the connections"};
  }
  return o;
}

}  // namespace hookd::load
