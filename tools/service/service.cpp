#include "tools/service/service.hpp"

#include "core/catalog/entities.hpp"
#include "core/catalog/kv_catalog_store.hpp"
#include "core/common/completion.hpp"
#include "core/common/log.hpp"
#include "core/common/thread_name.hpp"
#include "core/delivery/delivery_log.hpp"
#include "hookd/version.hpp"
#include "http/api/portal_token.hpp"
#include "http/portal/portal.hpp"
#include "storage/backup.hpp"
#include "storage/data_dir.hpp"
#include "storage/postgres/pg_catalog_store.hpp"
#include "storage/postgres/pg_change_feed.hpp"
#include "storage/postgres/pg_delivery_log.hpp"
#include "storage/rocksdb_storage.hpp"

#include <boost/json/serialize.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>

namespace hookd {

namespace {

using steady = std::chrono::steady_clock;

// Connections the --metrics-listen listener serves at once: scrapers and probes need a handful,
// and a scan of that port holds no more descriptors than this.
constexpr std::size_t kOpsMaxConnections = 64;

// The history readers' pool threads (docs/operations.md, "Threads"), named history-0..N-1: each
// takes one naming task and waits there until every thread has one, so that no thread takes two.
// Asio's thread_pool has no hook of its own for its threads' start. (A mutex and a condition
// variable rather than std::latch: with libstdc++ 12's latch, a start in a loop of 30 left a
// pool thread in latch::wait after every thread and the caller had arrived, and hookd hung at
// its stop.)
void name_pool_threads(boost::asio::thread_pool& pool, int threads) {
  std::mutex mutex;
  std::condition_variable changed;
  int arrived = 0;  // tasks that have named their thread
  int left = 0;     // tasks that have seen every thread named, and returned
  for (int i = 0; i < threads; ++i) {
    boost::asio::post(pool, [&, i] {
      set_thread_name("history-" + std::to_string(i));
      std::unique_lock lock(mutex);
      ++arrived;
      changed.notify_all();
      changed.wait(lock, [&] { return arrived == threads; });
      ++left;
      changed.notify_all();
    });
  }
  std::unique_lock lock(mutex);
  changed.wait(lock, [&] { return left == threads; });
}

std::int64_t ms_since(steady::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start).count();
}

std::string url_of(const boost::asio::ip::tcp::endpoint& ep, bool tls = false) {
  const auto host = ep.address().to_string();
  return (tls ? "https://" : "http://") + (ep.address().is_v6() ? "[" + host + "]" : host) + ":" +
         std::to_string(ep.port());
}

service_failure start_failure(std::string message) {
  return service_failure{1, std::move(message)};
}

// A HOOKD_ADMIN_TOKEN that would become the admin token must have kMinAdminTokenChars (exit 2).
std::optional<service_failure> check_admin_token(const std::optional<std::string>& token) {
  if (!token || token->empty() || token->size() >= kMinAdminTokenChars) return std::nullopt;
  return service_failure{2, "HOOKD_ADMIN_TOKEN is " + std::to_string(token->size()) +
                                " characters; an admin token needs at least " +
                                std::to_string(kMinAdminTokenChars) +
                                ": make one with `openssl rand -base64 32`"};
}

// The sockets hookd serves, before any server exists.
struct listeners {
  std::optional<http::listen_socket> main;
  std::optional<http::listen_socket> metrics;  // --metrics-listen, or the passed "metrics" socket
  bool activated = false;                      // at least one came from systemd
};

// Adopts the passed sockets (docs/operations.md, "Socket activation") and binds the listeners
// none was passed for. A passed socket hookd cannot serve is a mistake in the socket unit (exit
// 2: a restart does not fix it); a bind that fails (a port in use) is a start-up failure (exit 1).
std::variant<listeners, service_failure> acquire_listeners(
    const config& cfg, const std::vector<passed_socket>& passed) {
  listeners out;
  std::optional<service_failure> failure;
  std::vector<std::string> main_names, metrics_names;
  for (const auto& socket : passed) {
    auto adopted = http::listen_socket::adopt(socket.fd);
    if (!adopted) {
      ::close(socket.fd);
      if (!failure) {
        failure = service_failure{
            2, "systemd passed the socket " + socket.name + " (descriptor " +
                   std::to_string(socket.fd) +
                   "), which hookd cannot serve: " + adopted.error().detail +
                   "; hookd serves TCP sockets (ListenStream=HOST:PORT in the socket unit)"};
      }
      continue;
    }
    out.activated = true;
    const bool metrics = socket.name == kMetricsSocketName;
    auto& slot = metrics ? out.metrics : out.main;
    (metrics ? metrics_names : main_names).push_back(socket.name);
    if (!slot) slot = std::move(*adopted);  // a second one is refused below
  }
  if (failure) return std::move(*failure);
  for (const auto* names : {&main_names, &metrics_names}) {
    if (names->size() <= 1) continue;
    std::string list;
    for (const auto& name : *names) list += (list.empty() ? "" : ", ") + name;
    return service_failure{
        2, "systemd passed " + std::to_string(names->size()) + " sockets for one listener (" +
               list +
               "); hookd serves one main socket and one named metrics: give the socket unit one "
               "ListenStream= ([::]:PORT serves IPv4 and IPv6), and a metrics socket its own "
               "unit with FileDescriptorName=metrics"};
  }
  if (!out.main) {
    auto bound = http::listen_socket::bind(cfg.listen_host, cfg.listen_port);
    if (!bound) return start_failure(bound.error().detail);
    out.main = std::move(*bound);
  }
  if (!out.metrics && cfg.metrics_listen) {
    auto bound = http::listen_socket::bind(cfg.metrics_listen->host, cfg.metrics_listen->port);
    if (!bound) return start_failure(bound.error().detail);
    out.metrics = std::move(*bound);
  }
  return out;
}

// This node's name as the owner of the deliveries it leases: host:pid, unique per running node.
std::string node_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host[0] != '\0' ? host : "hookd") + ":" + std::to_string(::getpid());
}

// The order in which a change the feed reports is applied (catalog::apply_remote): erases first,
// children before parents (webhooks, tokens, projects, organizations), then puts, parents before
// children. The feed hands its entities in the order of their latest change, and an entity whose
// parent changed after it comes before the parent (a project created, then its organization
// renamed); the rows come from one snapshot, so this order always finds every parent.
catalog_change in_apply_order(catalog_change change) {
  auto rank = [](const catalog_change::op& op) {
    const auto kind = static_cast<int>(op.value.index());  // organization, project, token, webhook
    static constexpr int kEraseRank[] = {3, 2, 1, 0};
    return op.what == catalog_change::kind::erase ? kEraseRank[kind] : 4 + kind;
  };
  std::stable_sort(change.ops.begin(), change.ops.end(),
                   [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  return change;
}

}  // namespace

struct service::parts {
  explicit parts(service_options o)
      : options(std::move(o)),
        log(options.log ? options.log : log_sink(log_line)),
        data_dir(options.settings.data_dir),
        token_file(data_dir / "admin-token") {}

  // Destroyed in reverse: the listeners first, the storage last.
  service_options options;
  log_sink log;
  std::filesystem::path data_dir;
  std::filesystem::path token_file;
  std::unique_ptr<storage> store;
  std::unique_ptr<catalog_store> cat_store;  // the catalog's entities, in `store` or PostgreSQL
  std::unique_ptr<catalog> cat;
  // --storage postgresql://…: what the other nodes change reaches `cat` through the feed
  // (docs/cluster.md, "Running a node on PostgreSQL"). Declared after `cat`, so that it stops
  // before the catalog does.
  std::unique_ptr<pg::pg_change_feed> feed;
  pg::pg_catalog_store* shared_catalog = nullptr;      // cat_store, when it is PostgreSQL's
  std::unique_ptr<pg::pg_catalog_store> resync_store;  // the feed's thread only: full re-reads
  std::mutex ready_mutex;
  bool serving = false;  // start() ran; under ready_mutex
  bool feed_ok = true;   // the feed is connected and every change it reported applied
  bool stale = false;    // a change could not be applied, not even after a re-read

  std::string feed_failure;                 // why the feed is not connected; under ready_mutex
  std::optional<aes256gcm_key> master_key;  // set in open()
  std::atomic<bool> stopping{false};        // stop() began: the feed's re-reads give up
  std::unique_ptr<delivery_engine> deliveries;
  std::unique_ptr<endpoint_health> health;  // fed by the dispatcher, read by the API
  std::unique_ptr<http::dispatcher> dispatch;
  // History reads (they may wait on the disk) run here, off the threads that serve the catalog.
  // Two threads: a page is one seek and a few hundred reads, and two keep one slow disk read from
  // holding up the next page.
  static constexpr int kHistoryReaders = 2;
  boost::asio::thread_pool readers{kHistoryReaders};
  http::metrics stats;
  std::unique_ptr<http::app> shared;
  http::router routes;
  http::router ops_routes;
  std::unique_ptr<http::server> server;
  std::unique_ptr<http::server> ops_server;  // --metrics-listen
  boost::asio::ip::tcp::endpoint endpoint;
  std::optional<boost::asio::ip::tcp::endpoint> ops_endpoint;
  bool socket_activated = false;  // a listener came from systemd
  bool started = false;
  bool stopped = false;

  std::optional<service_failure> bootstrap_admin();
  void start_feed(std::int64_t after_seq, const aes256gcm_key& key);
  void apply_from_feed(catalog_change change, std::int64_t last_seq);
  result<void> resync();
  void set_ready();
};

// /readyz: 200 once started, while the change feed is connected and applies what it reads
// (docs/operations.md, "Health and readiness").
void service::parts::set_ready() {
  std::lock_guard lock(ready_mutex);
  shared->ready = serving && feed_ok && !stale;
  std::shared_ptr<const std::string> why;
  if (serving && !feed_ok) {
    why = std::make_shared<const std::string>("storage unreachable: " + feed_failure);
  } else if (serving && stale) {
    why = std::make_shared<const std::string>(
        "catalog out of date: a change from another node could not be applied and re-reading the "
        "catalog failed; trying again");
  }
  shared->not_ready.store(std::move(why));
}

// Cluster mode: the catalog learns of the other nodes' changes from the feed, from the `seq` its
// load saw. Changes this node committed come back too and change nothing (apply_remote finds the
// version it holds).
void service::parts::start_feed(std::int64_t after_seq, const aes256gcm_key& key) {
  pg::change_feed_options feed_options;
  feed_options.uri = options.settings.storage;
  feed_options.master_key = key;
  feed_options.after_seq = after_seq;
  // The node's own changes are left out: its index holds them, or a newer version already (a
  // snapshot read just before a later local change would otherwise put an older one back).
  feed_options.own = [store = shared_catalog](std::int64_t seq) {
    return store->committed_here(seq);
  };
  feed_options.on_change = [this](catalog_change change, std::int64_t last_seq) {
    if (!change.empty()) apply_from_feed(std::move(change), last_seq);
    shared_catalog->forget_through(last_seq);
  };
  feed_options.on_status = [this](const problem* failure) {
    if (failure != nullptr) {
      log({{"level", "error"},
           {"event", "cluster_storage_unreachable"},
           {"detail", failure->detail},
           {"effect", "not ready; reads are served from memory, writes fail with 503"}});
    } else {
      log({{"level", "info"}, {"event", "cluster_storage_recovered"}});
    }
    {
      std::lock_guard lock(ready_mutex);
      feed_ok = failure == nullptr;
      feed_failure = failure != nullptr ? failure->detail : std::string();
    }
    set_ready();
  };
  feed = std::make_unique<pg::pg_change_feed>(std::move(feed_options));
}

// On the feed's thread: the change goes into the index, queued with the local writes (a second
// time when the local group it went with failed to commit). One that the index refuses (a parent
// it does not hold, a slug held by another project) makes the node re-read the whole catalog; while
// that fails the node is not ready and tries again, 100 ms growing to every 2 s, so that it never
// serves a catalog it knows to be stale as a ready node. The feed waits meanwhile: the changes
// after this one are read once it returns.
void service::parts::apply_from_feed(catalog_change change, std::int64_t last_seq) {
  const std::size_t ops = change.ops.size();
  change = in_apply_order(std::move(change));
  result<void> applied;
  for (int attempt = 0; attempt < 2; ++attempt) {
    applied = wait_for<void>([&](auto done) { cat->apply_remote(change, std::move(done)); });
    if (applied || applied.error().kind != error_kind::storage_failure) break;
  }
  if (applied) return;
  log({{"level", "warn"},
       {"event", "cluster_change_refused"},
       {"ops", ops},
       {"lastSeq", last_seq},
       {"detail", applied.error().detail},
       {"effect", "re-reading the catalog"}});
  const auto reread_started = steady::now();
  auto backoff = std::chrono::milliseconds(100);
  for (;;) {
    auto reread = resync();
    {
      std::lock_guard lock(ready_mutex);
      stale = !reread;
    }
    set_ready();
    if (reread) {
      log({{"event", "cluster_catalog_reread"}, {"ms", ms_since(reread_started)}});
      return;
    }
    log({{"level", "error"},
         {"event", "cluster_catalog_reread_failed"},
         {"detail", reread.error().detail},
         {"effect", "not ready; trying again"}});
    for (auto slept = std::chrono::milliseconds(0); slept < backoff;
         slept += std::chrono::milliseconds(50)) {
      if (stopping.load()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
}

// Reads the whole catalog from PostgreSQL and makes the index equal to it: a put of every row
// (one the index holds already changes nothing) and an erase of what the index held before the
// read and PostgreSQL no longer has. The index is listed before the read, so that an entity
// created here meanwhile is not taken for one deleted elsewhere.
result<void> service::parts::resync() {
  std::vector<catalog_change::op> held;
  for (const auto& org : cat->list_organizations()) {
    for (const auto& project : cat->list_projects(org->id)) {
      for (const auto& w : *cat->list_webhooks(project->id)) {
        held.push_back({catalog_change::kind::erase, w});
      }
      held.push_back({catalog_change::kind::erase, project});
    }
    held.push_back({catalog_change::kind::erase, org});
  }
  for (const auto& token : cat->list_tokens()) {
    held.push_back({catalog_change::kind::erase, token});
  }
  if (!resync_store) {
    auto opened = pg::pg_catalog_store::open(options.settings.storage, *master_key);
    if (!opened) return opened.error();
    resync_store = std::move(*opened);
  }
  std::mutex found_mutex;  // load's callbacks may run on several threads
  catalog_change rows;
  std::set<std::pair<std::size_t, object_id>> present;  // (kind, id)
  auto add = [&](auto entity) {
    std::lock_guard lock(found_mutex);
    catalog_change::entity as_entity =
        std::shared_ptr<const typename decltype(entity)::element_type>(std::move(entity));
    present.emplace(as_entity.index(), std::visit([](const auto& e) { return e->id; }, as_entity));
    rows.ops.push_back({catalog_change::kind::put, std::move(as_entity)});
  };
  catalog_load_sink sink{add, add, add, add};
  if (auto loaded = resync_store->load(sink, 1); !loaded) return loaded.error();
  catalog_change change;
  for (auto& op : held) {
    const auto id = std::visit([](const auto& e) { return e->id; }, op.value);
    if (!present.contains({op.value.index(), id})) change.ops.push_back(std::move(op));
  }
  for (auto& op : rows.ops) change.ops.push_back(std::move(op));
  return wait_for<void>(
      [&](auto done) { cat->apply_remote(in_apply_order(std::move(change)), std::move(done)); });
}

// The first start on an empty data dir creates the admin token: the given one when set (at
// least kMinAdminTokenChars, else exit 2), else a generated one, written to
// <data-dir>/admin-token (0600) and never logged: the log names the file. The file is written
// before the token is created, so a crash in between leaves no admin nobody can reach: the next
// start generates again and overwrites the file.
std::optional<service_failure> service::parts::bootstrap_admin() {
  // On PostgreSQL, nodes starting together on an empty database each loaded a catalog without an
  // admin token: one node at a time decides, from what the database holds (docs/cluster.md,
  // "Running a node on PostgreSQL"). The lock is held until this node's token is committed.
  std::optional<pg::admin_bootstrap_lock> cluster_lock;
  bool exists = cat->has_admin_token();
  if (!exists && shared_catalog != nullptr) {
    auto locked = pg::admin_bootstrap_lock::acquire(options.settings.storage);
    if (!locked) return start_failure("cannot check the admin token: " + locked.error().detail);
    cluster_lock.emplace(std::move(*locked));
    auto found = cluster_lock->admin_token_exists();
    if (!found) return start_failure("cannot check the admin token: " + found.error().detail);
    exists = *found;
  }
  if (exists) {
    boost::json::object line{{"event", "admin_token"}, {"source", "existing"}};
    line["file"] = std::filesystem::exists(token_file) ? boost::json::value(token_file.string())
                                                       : boost::json::value(nullptr);
    log(line);
    return std::nullopt;
  }

  if (auto failed = check_admin_token(options.admin_token)) return failed;
  std::optional<std::string> secret = options.admin_token;
  if (secret && secret->empty()) secret.reset();
  const bool generated = !secret;
  if (generated) {
    secret = generate_api_token();
    if (auto written = write_admin_token_file(data_dir, *secret); !written) {
      return start_failure("cannot write " + token_file.string() + ": " + written.error().detail);
    }
  }

  token_input in;
  in.name = "admin";
  in.scopes.add(scope::admin);
  const auto created = wait_for<created_token>(
      [&](auto done) { cat->create_token(std::move(in), secret, std::move(done)); });
  if (!created) {
    return start_failure("cannot create the admin token: " + created.error().detail);
  }

  boost::json::object line{{"event", "admin_token"}};
  if (generated) {
    line["source"] = "generated";
    line["file"] = token_file.string();  // the token itself stays out of logs and journals
  } else {
    line["source"] = "HOOKD_ADMIN_TOKEN";
  }
  log(line);
  return std::nullopt;
}

std::variant<std::unique_ptr<service>, service_failure> service::open(service_options options) {
  auto p = std::make_unique<parts>(std::move(options));
  const config& cfg = p->options.settings;

  // The TLS files first: a wrong path is a configuration error, found before anything is
  // created on disk.
  http::tls_context tls;
  if (!cfg.tls_cert.empty()) {
    auto loaded = http::make_tls_context(cfg.tls_cert, cfg.tls_key);
    if (!loaded) return service_failure{2, loaded.error().detail};
    tls = std::move(*loaded);
    boost::json::object line{{"event", "tls_certificate"}};
    for (const auto& [key, value] : http::describe_certificate(tls)) line[key] = value;
    p->log(line);
  }

  // First what needs no data dir, so that a start that fails here (a port in use, a passed socket
  // hookd cannot serve, a malformed HOOKD_MASTER_KEY, a short HOOKD_ADMIN_TOKEN on a first start)
  // creates nothing on disk.
  auto acquired = acquire_listeners(cfg, p->options.passed_sockets);
  if (auto* failed = std::get_if<service_failure>(&acquired)) return std::move(*failed);
  auto& sockets = std::get<listeners>(acquired);
  p->socket_activated = sockets.activated;
  const std::optional<std::string_view> master_env =
      p->options.master_key ? std::optional<std::string_view>(*p->options.master_key)
                            : std::nullopt;
  std::optional<aes256gcm_key> env_key;
  if (master_env) {
    auto parsed = load_or_create_master_key(p->data_dir, master_env);  // reads no file
    if (!parsed) return start_failure(parsed.error().detail);
    env_key = *parsed;
  }
  const bool on_postgresql = is_postgresql_uri(cfg.storage);
  if (on_postgresql && (!master_env || master_env->empty())) {
    // Every node seals and opens the catalog's secrets: they need the same key, which a
    // master.key generated into each node's data dir would not be.
    return service_failure{2,
                           "--storage postgresql://… needs HOOKD_MASTER_KEY, the same on every "
                           "node: the nodes seal and open the catalog's secrets with it "
                           "(docs/cluster.md, \"Running a node on PostgreSQL\")"};
  }
  std::error_code no_db;
  if (!std::filesystem::exists(p->data_dir / "db", no_db)) {
    // A first start: HOOKD_ADMIN_TOKEN, when set, is about to become the admin token.
    if (auto failed = check_admin_token(p->options.admin_token)) return std::move(*failed);
  }

  if (auto ok = ensure_data_dir(p->data_dir); !ok) return start_failure(ok.error().detail);
  rocksdb_options store_options{.sync = !cfg.unsafe_no_fsync};
  store_options.background =
      cfg.storage_background_idle ? background_policy::idle : background_policy::normal;
  // One line per transition (docs/operations.md, "Storage faults"); the detail names database
  // files, which is why it stays in the log and never reaches a client.
  store_options.on_health_change = [log = p->log](const storage_health_change& change) {
    if (change.degraded) {
      log({{"level", "error"},
           {"event", "storage_degraded"},
           {"detail", change.detail},
           {"effect", "writes fail with 503 storage-failure; reads are served"}});
    } else {
      log({{"level", "info"},
           {"event", "storage_recovered"},
           {"detail", change.detail},
           {"degradedMs", change.degraded_for.count()}});
    }
  };
  auto opened = open_rocksdb_storage((p->data_dir / "db").string(), store_options);
  if (!opened) return start_failure(opened.error().detail);
  p->store = std::move(*opened);
  if (cfg.storage_background_idle && !background_priority::instance().can_restore()) {
    p->log({{"level", "warn"},
            {"event", "storage_background_normal"},
            {"detail",
             "RocksDB's flushes and compactions run at normal priority, because this process "
             "may not put a thread back from SCHED_IDLE: allow it with RLIMIT_NICE 20 "
             "(systemd: LimitNICE=+0, as the shipped unit has; a shell: ulimit -e 20) or "
             "CAP_SYS_NICE, or pass --storage-background normal to silence this"}});
  }
  if (cfg.unsafe_no_fsync) {
    p->log({{"level", "warn"},
            {"event", "unsafe_no_fsync"},
            {"detail", "writes are not fsynced: a crash can lose acknowledged changes"}});
  }

  auto key = env_key ? result<aes256gcm_key>(*env_key)
                     : load_or_create_master_key(p->data_dir, std::nullopt);
  if (!key) return start_failure(key.error().detail);

  catalog_options cat_options;
  cat_options.max_webhooks_per_project = cfg.max_webhooks_per_project;
  cat_options.master_key = *key;
  cat_options.secret_grace = cfg.secret_grace;
  p->master_key = *key;
  if (on_postgresql) {
    // Connects and applies the pending migrations (docs/cluster.md, "Migrations").
    const auto connect_started = steady::now();
    auto pg_store = pg::pg_catalog_store::open(cfg.storage, *key);
    if (!pg_store) {
      return start_failure("cannot open the catalog in PostgreSQL: " + pg_store.error().detail);
    }
    p->shared_catalog = pg_store->get();
    p->cat_store = std::move(*pg_store);
    p->log({{"level", "info"},
            {"event", "cluster_storage"},
            {"catalog", "postgresql"},
            {"deliveries", "postgresql"},
            {"node", cfg.node_name.empty() ? node_name() : cfg.node_name},
            {"leaseMs", cfg.cluster_lease.count()},
            {"claimIntervalMs", cfg.cluster_claim_interval.count()},
            {"ms", ms_since(connect_started)},
            {"detail",
             "the catalog (organizations, projects, tokens, webhooks), events, deliveries "
             "and attempts are shared through PostgreSQL; each webhook is delivered by the one "
             "node holding its lease (docs/cluster.md, \"A node's deliveries\")"}});
  } else {
    p->cat_store = std::make_unique<kv_catalog_store>(*p->store, *key);
  }
  p->cat = std::make_unique<catalog>(*p->cat_store, cat_options);
  const auto cat_started = steady::now();
  const auto counts = p->cat->load();
  if (!counts) return start_failure("cannot load the catalog: " + counts.error().detail);
  p->log({{"event", "catalog_loaded"},
          {"organizations", counts->organizations},
          {"projects", counts->projects},
          {"tokens", counts->tokens},
          {"webhooks", counts->webhooks},
          {"ms", ms_since(cat_started)}});
  p->cat->start();
  if (auto failed = p->bootstrap_admin()) return std::move(*failed);

  // Events and deliveries: the log puts every pending delivery back on its scheduler.
  delivery_log_options log_options;
  log_options.retry = retry_policy(cfg.retry_schedule);
  log_options.scheduling.max_in_flight = cfg.max_inflight_deliveries;
  log_options.scheduling.max_in_flight_per_webhook = cfg.max_inflight_per_webhook;
  log_options.scheduling.max_in_flight_per_organization = cfg.max_inflight_per_organization;
  log_options.retention = cfg.retention;
  if (on_postgresql) {
    // Cluster mode: events, deliveries and attempts in PostgreSQL, shared by the nodes
    // (docs/cluster.md, "A node's deliveries"); this node holds what it ingests or claims.
    pg::pg_delivery_log_options pg_options;
    pg_options.log = log_options;
    pg_options.store.uri = cfg.storage;
    pg_options.store.node = cfg.node_name.empty() ? node_name() : cfg.node_name;
    pg_options.store.lease = cfg.cluster_lease;
    pg_options.claim_interval = cfg.cluster_claim_interval;
    p->deliveries = std::make_unique<pg::pg_delivery_log>(*p->cat, std::move(pg_options));
  } else {
    p->deliveries = std::make_unique<delivery_log>(*p->store, *p->cat, log_options);
  }
  const auto log_started = steady::now();
  const auto log_counts = p->deliveries->load();
  if (!log_counts) {
    return start_failure("cannot load the delivery log: " + log_counts.error().detail);
  }
  p->log({{"event", "deliveries_loaded"},
          {"pending", log_counts->pending},
          {"events", log_counts->events},
          {"idempotencyKeys", log_counts->idempotency_keys},
          {"historyDeliveries", log_counts->history_deliveries},
          {"ms", ms_since(log_started)}});
  p->deliveries->start();

  // Endpoint health: the failure streaks auto-disable follows survive restarts.
  health_options health_settings;
  health_settings.disable_after = cfg.disable_after;
  p->health = std::make_unique<endpoint_health>(*p->cat, *p->deliveries, health_settings);
  const auto streaks = p->health->load(*p->store);
  if (!streaks) return start_failure("cannot load endpoint health: " + streaks.error().detail);
  if (on_postgresql) {
    // The streaks are in PostgreSQL with the webhooks' leases (docs/cluster.md).
    auto& pg_log = static_cast<pg::pg_delivery_log&>(*p->deliveries);
    auto shared = pg_log.set_streak_sink(
        [h = p->health.get()](const object_id& id, const failure_streak& s) { h->restore(id, s); });
    if (!shared) return start_failure("cannot load endpoint health: " + shared.error().detail);
  }

  http::dispatcher_options dispatch_options;
  dispatch_options.client.total_timeout = cfg.delivery_timeout;
  dispatch_options.client.connect_timeout =
      std::min(dispatch_options.client.connect_timeout, cfg.delivery_timeout);
  dispatch_options.client.tls_handshake_timeout =
      std::min(dispatch_options.client.tls_handshake_timeout, cfg.delivery_timeout);
  dispatch_options.client.allow_private_targets = cfg.allow_private_targets;
  dispatch_options.client.user_agent = std::string("hookd/") + std::string(kVersion);
  dispatch_options.health = p->health.get();
  p->dispatch = std::make_unique<http::dispatcher>(*p->deliveries, *p->cat, dispatch_options);
  if (cfg.allow_private_targets) {
    p->log({{"level", "warn"},
            {"event", "allow_private_targets"},
            {"detail", "deliveries may go to loopback and private addresses"}});
  }

  p->shared = std::make_unique<http::app>(*p->cat, p->stats, cfg.max_body_bytes);
  p->shared->store = p->store.get();
  p->shared->deliveries = p->deliveries.get();
  name_pool_threads(p->readers, p->kHistoryReaders);
  p->shared->history_readers = &p->readers;
  p->shared->delivery_stats = &p->dispatch->stats();
  p->shared->health = p->health.get();
  p->shared->metrics_per_webhook = cfg.metrics_per_webhook;
  p->shared->portal_key = http::derive_portal_key(*key);
  p->shared->public_url = cfg.public_url;
  p->shared->https = !cfg.tls_cert.empty();
  p->shared->backup = [store = p->store.get(), data_dir = p->data_dir,
                       key_in_file = !p->options.master_key,
                       log = p->log](const std::string& directory) {
    auto made = take_backup(*store, data_dir, directory, key_in_file);
    if (made) {
      log({{"event", "backup"},
           {"directory", made->directory},
           {"sequence", made->sequence},
           {"bytes", made->bytes},
           {"files", made->files},
           {"linked", made->linked},
           {"ms", made->duration.count()}});
    }
    return made;
  };
  // With --metrics-listen (or a passed metrics socket), /metrics leaves the main listener (a 404
  // there, like any unknown path) for a second one that serves it with the probes, on one thread.
  if (sockets.metrics) {
    http::register_health_routes(p->routes, *p->shared);
  } else {
    http::register_ops_routes(p->routes, *p->shared);
  }
  http::register_api_routes(p->routes, *p->shared);
  http::register_portal_routes(p->routes);

  http::server_options server_options;
  server_options.host = cfg.listen_host;
  server_options.port = cfg.listen_port;
  server_options.threads = cfg.threads;
  server_options.max_connections = cfg.max_connections;
  server_options.max_body_bytes = cfg.max_body_bytes;
  server_options.header_timeout = cfg.header_timeout;
  server_options.idle_timeout = cfg.idle_timeout;
  server_options.drain_timeout = cfg.drain_timeout;
  server_options.tls = tls;
  server_options.rate_limit = cfg.rate_limit;
  server_options.access_log = cfg.access_log;
  server_options.trusted_proxies = cfg.trusted_proxies;
  p->server = std::make_unique<http::server>(server_options, p->routes, *p->shared);
  const auto bound = p->server->listen(std::move(*sockets.main));
  if (!bound) return start_failure(bound.error().detail);
  p->endpoint = *bound;

  if (sockets.metrics) {
    http::register_ops_routes(p->ops_routes, *p->shared);
    http::server_options ops_options = server_options;
    ops_options.threads = 1;
    ops_options.max_connections = kOpsMaxConnections;
    // Scrapers and probes on an internal address: plain HTTP, no API tokens to count.
    ops_options.tls = nullptr;
    ops_options.rate_limit = 0;
    p->ops_server = std::make_unique<http::server>(ops_options, p->ops_routes, *p->shared);
    const auto ops_bound = p->ops_server->listen(std::move(*sockets.metrics));
    if (!ops_bound) return start_failure(ops_bound.error().detail);
    p->ops_endpoint = *ops_bound;
  }
  // Last, once everything it touches exists; it starts from what the load saw, so that nothing
  // committed since is missed.
  if (p->shared_catalog != nullptr) p->start_feed(p->shared_catalog->loaded_seq(), *key);
  return std::unique_ptr<service>(new service(std::move(p)));
}

service::service(std::unique_ptr<parts> p) : parts_(std::move(p)) {}

service::~service() {
  stop();
}

void service::start() {
  parts& p = *parts_;
  if (p.started) return;
  p.started = true;
  if (p.options.keepalive && p.options.keepalive_interval.count() > 0) {
    p.server->every(p.options.keepalive_interval, p.options.keepalive);
  }
  p.server->start();
  if (p.ops_server) p.ops_server->start();
  p.dispatch->start();
  p.log({{"event", "listening"},
         {"address", url_of(p.endpoint, !p.options.settings.tls_cert.empty())},
         {"metricsAddress", p.ops_endpoint ? boost::json::value(url_of(*p.ops_endpoint))
                                           : boost::json::value(nullptr)},
         {"socketActivated", p.socket_activated},
         {"version", kVersion},
         {"dataDir", p.data_dir.string()},
         {"storage", p.feed ? "postgresql" : "rocksdb"},
         {"adminTokenFile", std::filesystem::exists(p.token_file)
                                ? boost::json::value(p.token_file.string())
                                : boost::json::value(nullptr)}});
  {
    std::lock_guard lock(p.ready_mutex);
    p.serving = true;
  }
  p.set_ready();
}

std::vector<std::string> service::reload(const config& fresh) {
  parts& p = *parts_;
  std::vector<std::string> reloaded;
  const config& running = p.options.settings;
  if (running.tls_cert.empty() != fresh.tls_cert.empty()) {
    p.log({{"level", "warn"},
           {"event", "reload_needs_restart"},
           {"option", "tls-cert"},
           {"detail", running.tls_cert.empty()
                          ? "HTTPS was not on at start: restart hookd to serve HTTPS"
                          : "HTTPS was on at start: restart hookd to serve plain HTTP"}});
    return reloaded;
  }
  if (fresh.tls_cert.empty()) return reloaded;
  auto loaded = http::make_tls_context(fresh.tls_cert, fresh.tls_key);
  if (!loaded) {
    p.log({{"level", "error"},
           {"event", "tls_reload_failed"},
           {"error", loaded.error().detail},
           {"detail", "the certificate loaded before stays in use"}});
    return reloaded;
  }
  boost::json::object line{{"event", "tls_certificate"}, {"reloaded", true}};
  for (const auto& [key, value] : http::describe_certificate(*loaded)) line[key] = value;
  p.server->set_tls_context(std::move(*loaded));
  p.log(line);
  reloaded.emplace_back("tls");
  return reloaded;
}

void service::drain() {
  parts_->shared->draining = true;
}

void service::stop() {
  parts& p = *parts_;
  if (p.stopped) return;
  p.stopped = true;
  p.shared->draining = true;
  p.server->stop();
  if (p.ops_server) p.ops_server->stop();
  // Attempts in flight finish (bounded by the delivery timeout); one cut short is attempted
  // again after the next start.
  if (!p.dispatch->stop()) {
    p.log({{"level", "warn"},
           {"event", "dispatcher_stop_timeout"},
           {"detail", "attempts still in flight were abandoned; they will be retried"}});
  }
  p.readers.join();      // reads still running finish; the servers that asked for them are gone
  p.deliveries->stop();  // commits queued writes
  p.stopping = true;
  p.feed.reset();  // before the catalog it applies changes to
  p.cat->stop();
  p.ops_server.reset();
  p.server.reset();
  p.dispatch.reset();
  p.health.reset();
  p.deliveries.reset();
  p.cat.reset();
  p.store.reset();  // closes RocksDB
  if (p.started) p.log({{"event", "stopped"}});
}

const boost::asio::ip::tcp::endpoint& service::endpoint() const noexcept {
  return parts_->endpoint;
}
const std::optional<boost::asio::ip::tcp::endpoint>& service::metrics_endpoint() const noexcept {
  return parts_->ops_endpoint;
}
const std::filesystem::path& service::data_dir() const noexcept {
  return parts_->data_dir;
}
const std::filesystem::path& service::admin_token_file() const noexcept {
  return parts_->token_file;
}
catalog& service::cat() noexcept {
  return *parts_->cat;
}
delivery_engine& service::deliveries() noexcept {
  return *parts_->deliveries;
}
http::dispatcher& service::dispatch() noexcept {
  return *parts_->dispatch;
}
endpoint_health& service::health() noexcept {
  return *parts_->health;
}
storage& service::store() noexcept {
  return *parts_->store;
}
http::app& service::shared() noexcept {
  return *parts_->shared;
}

}  // namespace hookd
