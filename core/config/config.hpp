#pragma once
// hookd's configuration: built-in defaults < config file (TOML or JSON, --config) < HOOKD_*
// environment < command-line flags. Pure: the environment comes in as a lookup function.

#include "core/common/ip_network.hpp"
#include "core/common/log.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace hookd {

struct listen_address {
  std::string host;
  std::uint16_t port = 0;
};

struct config {
  std::string listen_host = "127.0.0.1";  // --listen HOST:PORT, default 127.0.0.1:8080
  std::uint16_t listen_port = 8080;
  // --metrics-listen HOST:PORT: a second listener serving /metrics, /healthz and /readyz, and the
  // main one then answers /metrics with 404. None (the default): /metrics on the main listener,
  // like every ops route without a token, as before the option existed.
  std::optional<listen_address> metrics_listen;
  std::string data_dir = "./data";  // --data-dir
  // --storage: where the catalog lives. Empty (the default, also `rocksdb`): the embedded RocksDB
  // in data_dir. A postgresql:// or postgres:// URI (libpq's syntax): the catalog in that
  // PostgreSQL database, shared with the other nodes on it (docs/cluster.md); the delivery log
  // stays in data_dir for now.
  std::string storage;
  // Cluster mode only (--storage postgresql://; a RocksDB node has no leases and ignores them),
  // docs/cluster.md, "A node's deliveries":
  // --cluster-lease: how long the deliveries a node claimed or ingested stay its own unless it
  // renews them (every third of it). A dead node's deliveries go to the others after this plus
  // one claim interval. 30 s by default, 3 s at least.
  std::chrono::milliseconds cluster_lease{30'000};
  // --cluster-claim-interval: how often a node looks for due deliveries nobody holds (retries, a
  // dead node's). 250 ms by default; at most a third of the lease
  // (leases are renewed on the claim rounds).
  std::chrono::milliseconds cluster_claim_interval{250};
  // --node-name: this node as the owner of its leases and in its cluster_storage log line.
  // Empty (the default): host:pid. Must differ between running nodes.
  std::string node_name;
  unsigned threads = 0;  // --threads; 0 = hardware threads
  // --max-connections: inbound connections open at once; beyond it a new one gets a 503 and is
  // closed. 10000 stays well under the unit's LimitNOFILE=65536 (deploy/hookd.service), leaving
  // descriptors for RocksDB's files and for outbound deliveries.
  std::size_t max_connections = 10'000;
  std::size_t max_body_bytes = 64 * 1024;                 // --max-body
  std::size_t max_webhooks_per_project = 100;             // --max-webhooks-per-project
  std::vector<std::chrono::milliseconds> retry_schedule;  // --retry-schedule, default below
  std::chrono::milliseconds delivery_timeout{15'000};     // --delivery-timeout
  std::chrono::milliseconds disable_after{5LL * 24 * 3600 * 1000};  // --disable-after
  std::chrono::milliseconds secret_grace{24LL * 3600 * 1000};       // --secret-grace
  // --retention: events, finished deliveries and attempts older than this leave the API at once
  // and the disk within about a sixteenth of it (docs/delivery.md). 30 days by default.
  std::chrono::milliseconds retention{30LL * 24 * 3600 * 1000};
  bool allow_private_targets = false;                // --allow-private-targets
  std::chrono::milliseconds header_timeout{10'000};  // --header-timeout
  // --idle-timeout: how long a keep-alive connection may wait for its next request. 75 s, above
  // the 60 s that nginx and most load balancers keep an idle upstream connection, so that the
  // proxy closes first: when hookd closes a connection the proxy is about to reuse, the proxy's
  // request meets a closed socket, and a proxy does not retry a POST (docs/operations.md, "Behind
  // a load balancer").
  std::chrono::milliseconds idle_timeout{75'000};
  std::chrono::milliseconds drain_timeout{10'000};  // --drain-timeout
  // --shutdown-delay: on SIGTERM/SIGINT, how long hookd keeps serving with /readyz answering 503
  // before it stops accepting, so that a load balancer's health check takes it out of rotation
  // while it still answers. 5 s by default; a second signal cuts it short (Ctrl-C twice), and 0
  // suits a supervisor with no load balancer in front (docs/operations.md, "Behind a load
  // balancer").
  std::chrono::milliseconds shutdown_delay{5'000};
  std::size_t max_inflight_deliveries = 256;  // --max-inflight-deliveries
  std::size_t max_inflight_per_webhook = 4;   // --max-inflight-per-webhook
  // --max-inflight-per-organization; 0: a quarter of max_inflight_deliveries, at least 1
  std::size_t max_inflight_per_organization = 0;
  // --metrics-per-webhook: per-webhook series on /metrics. Off by default: their number grows
  // with the webhooks (docs/operations.md, "Per-webhook metrics").
  bool metrics_per_webhook = false;
  bool unsafe_no_fsync = false;  // --unsafe-no-fsync: benchmarks only; loses acknowledged writes
  // --storage-background: RocksDB's flush and compaction threads under SCHED_IDLE while they work
  // (true, "idle", the default) or as any thread ("normal"); docs/operations.md, "RocksDB's
  // background work". core/ knows no RocksDB, hence a flag here and the policy in storage/.
  bool storage_background_idle = true;
  // --tls-cert FILE and --tls-key FILE (both or neither): the listener serves HTTPS with this PEM
  // certificate chain and key; SIGHUP reads them again. Empty: plain HTTP, for a node behind a
  // TLS-terminating load balancer (docs/operations.md, "TLS").
  std::string tls_cert;
  std::string tls_key;
  // --rate-limit: API requests per second per token, with a burst of twice that; beyond it a 429.
  // 0 (the default): off, since a quota belongs to the deployment, not to the product.
  std::uint32_t rate_limit = 0;
  // --access-log: one JSON line per request (docs/operations.md, "Access log"). Off by default:
  // it costs a write per request.
  bool access_log = false;
  // --trusted-proxies: peers whose X-Forwarded-For the access log records. None by default: a
  // header any client can send proves nothing.
  std::vector<ip_network> trusted_proxies;
  // --public-url: the origin portal session URLs start with (docs/portal.md), e.g.
  // https://hooks.example.com, without a trailing '/'. Empty: the request's Host and the
  // listener's scheme.
  std::string public_url;
  log_level min_log_level = log_level::info;  // --log-level; SIGHUP applies a new value
  std::optional<std::string> config_file;     // --config

  config();  // fills retry_schedule with 5s,5m,30m,2h,5h,10h,10h
};

enum class config_action { run, help, version };
struct parsed_config {
  config_action action = config_action::run;
  config values;
};

using env_lookup = std::function<std::optional<std::string>(const std::string& name)>;

// args excludes argv[0]. On error, the one-line message for stderr (the caller exits 2), e.g.
// "hookd: --threads: expected a positive integer, got 'x' (see hookd --help)".
std::variant<parsed_config, std::string> parse_config(std::span<const std::string> args,
                                                      const env_lookup& env);
std::string config_help();  // every option with its environment twin and default

// True when --storage names a PostgreSQL database (postgresql:// or postgres://).
bool is_postgresql_uri(std::string_view storage) noexcept;

// `uri` with each password in it shown as "***": the userinfo's (postgresql://hookd:***@db/hookd)
// and any password=... parameter, whatever the scheme. Every message and log line that shows a
// --storage value shows it through this (docs/operations.md, the --storage option).
std::string redact_password(std::string_view uri);
// `text` (an error from the database client, say) with every occurrence of a password of `uri`
// replaced by "***".
std::string redact_password_in(std::string_view text, std::string_view uri);

}  // namespace hookd
