#pragma once
// What the request handlers share: the catalog, limits, readiness. One per server, built by
// tools/hookd.cpp; handlers only read it (the atomics are the exception).

#include "core/catalog/catalog.hpp"
#include "core/durable/backup.hpp"
#include "core/durable/storage.hpp"
#include "http/server/router.hpp"

#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace hookd {
class delivery_engine;
class endpoint_health;
}  // namespace hookd

namespace hookd::http {

class metrics;
class delivery_metrics;

struct app {
  catalog& cat;
  metrics& stats;
  std::size_t max_body_bytes = 64 * 1024;
  std::atomic<bool> ready{false};     // storage open and catalog loaded
  std::atomic<bool> draining{false};  // SIGTERM received: /readyz answers 503
  // Why a node that has started is not ready (cluster mode: "storage unreachable: ..."), which
  // /readyz's 503 says; null while it is starting.
  std::atomic<std::shared_ptr<const std::string>> not_ready;
  const storage* store = nullptr;  // for /metrics (write batches, fsyncs); may stay null
  // Events and deliveries (docs/openapi.yaml); while null, their routes answer 503.
  delivery_engine* deliveries = nullptr;
  // Where history reads run (they may wait on the disk): a small pool of its own, so that they
  // never hold up the threads that serve the catalog. Null with `deliveries`.
  boost::asio::thread_pool* history_readers = nullptr;
  const delivery_metrics* delivery_stats = nullptr;  // the dispatcher's, for /metrics; may be null
  // Webhooks' health (GET …/health, reactivation, /metrics); null: those answer 503 or are left
  // out.
  endpoint_health* health = nullptr;
  bool metrics_per_webhook = false;  // --metrics-per-webhook
  // POST /api/v1/backups: a copy of the data dir into a new directory (storage/backup.hpp).
  // Blocking: the handler runs it on `history_readers`. Empty: the route answers 503.
  std::function<result<backup_report>(const std::string& directory)> backup;
  // Portal sessions (docs/portal.md): the key that signs their tokens (derived from the master
  // key; empty: the route answers 503), the portal's origin from --public-url (empty: the
  // request's Host and the listener's scheme), and whether the listener serves HTTPS.
  std::string portal_key;
  std::string public_url;
  bool https = false;
};

// Registers the /api/v1 routes (admin, webhooks, openapi) on `r`; handlers capture `a` by
// reference, so `a` must outlive the server.
void register_api_routes(router& r, app& a);
// Registers /healthz, /readyz and /metrics.
void register_ops_routes(router& r, app& a);
// Registers /healthz and /readyz only: the main listener's, when /metrics has a listener of its
// own (--metrics-listen).
void register_health_routes(router& r, app& a);

}  // namespace hookd::http
