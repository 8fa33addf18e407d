#pragma once
// The composition root: hookd's whole stack built from one configuration, in one place.
//
// open() acquires the listeners (binds them, or adopts sockets systemd passed) and checks what
// needs no disk, so that a start that cannot go on leaves no data dir behind; then it makes the
// data dir private, opens RocksDB, loads the master key, loads the catalog,
// makes sure an admin token exists, loads the delivery log (which queues every pending delivery),
// builds the dispatcher, the routes and the servers on those listeners. start() serves; stop()
// (or the destructor) takes it down in the reverse order: listeners, dispatcher, delivery log,
// catalog, storage. tools/hookd.cpp, the test fixtures and the benchmarks all build this object,
// so what they run is what ships; only the values of the configuration differ.
//
// Thread safety: open(), start(), drain() and stop() from one controlling thread; the accessors
// return objects that document their own thread safety.

#include "core/catalog/catalog.hpp"
#include "core/config/config.hpp"
#include "core/delivery/delivery_engine.hpp"
#include "http/api/app.hpp"
#include "http/outbound/dispatcher.hpp"
#include "http/server/metrics.hpp"
#include "http/server/server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace hookd {

// Where the service's JSON log lines go (one object per line). Empty: stderr.
using log_sink = std::function<void(const boost::json::object& line)>;

// A listening socket passed by a supervisor (systemd's socket activation): the descriptor and the
// name the socket unit gives it (FileDescriptorName=, by default the unit's name).
struct passed_socket {
  int fd = -1;
  std::string name;
};

// The name of a passed socket that serves what --metrics-listen serves.
inline constexpr std::string_view kMetricsSocketName = "metrics";

struct service_options {
  config settings;  // what hookd's command line, environment and config file say
  // HOOKD_MASTER_KEY: base64 or hex of 32 bytes; nullopt reads or creates <data-dir>/master.key.
  std::optional<std::string> master_key;
  // HOOKD_ADMIN_TOKEN: becomes the admin token on the first start (at least kMinAdminTokenChars);
  // nullopt generates one into <data-dir>/admin-token. Ignored once an admin token exists.
  std::optional<std::string> admin_token;
  log_sink log;
  // Sockets systemd passed (docs/operations.md, "Socket activation"): the one named
  // kMetricsSocketName serves /metrics and the probes as --metrics-listen does; another one (at
  // most one) is the main listener. A listener without a passed socket is bound from --listen or
  // --metrics-listen. open() takes the descriptors over: it closes those it does not serve.
  std::vector<passed_socket> passed_sockets;
  // Called at start() and then every keepalive_interval from the main listener's event loop, until
  // stop() ends that loop (http::server::every): hookd sends systemd's WATCHDOG=1 from it, so that
  // a loop that stops running handlers stops the pings. Empty: never.
  std::function<void()> keepalive;
  std::chrono::microseconds keepalive_interval{0};
};

// The shortest HOOKD_ADMIN_TOKEN accepted: 32 characters, what `openssl rand -base64 32` gives
// with room to spare (44), so that a chosen admin token is no easier to guess than a generated one.
inline constexpr std::size_t kMinAdminTokenChars = 32;

// Why open() failed: the one-line message for stderr and the exit code hookd uses for it
// (1 start-up failure, 2 bad configuration).
struct service_failure {
  int exit_code = 1;
  std::string message;
};

class service {
 public:
  // Everything built and loaded, the listeners bound; nothing served until start().
  static std::variant<std::unique_ptr<service>, service_failure> open(service_options options);

  ~service();  // stop()
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  // Accepts connections, starts delivering, and reports ready (/readyz 200).
  void start();
  // /readyz answers 503 from now on; requests are still served (SIGTERM's first step).
  void drain();
  // SIGHUP: applies what can change while running from `fresh` (the configuration read again):
  // the TLS certificate and key, read again from the files `fresh` names, for new connections.
  // A file that fails to load is logged and the running certificate kept; nothing here stops the
  // service. Returns the names of what was reloaded, for the reload log line.
  std::vector<std::string> reload(const config& fresh);
  // Stops the listeners (in-flight requests get the drain timeout), then the dispatcher (attempts
  // in flight get the delivery timeout; one cut short is attempted again after the next start),
  // the delivery log and the catalog (queued writes are committed), and closes the storage.
  // Idempotent.
  void stop();

  // The bound addresses (the real ports when the configuration said 0).
  [[nodiscard]] const boost::asio::ip::tcp::endpoint& endpoint() const noexcept;
  [[nodiscard]] const std::optional<boost::asio::ip::tcp::endpoint>& metrics_endpoint()
      const noexcept;
  [[nodiscard]] const std::filesystem::path& data_dir() const noexcept;
  [[nodiscard]] const std::filesystem::path& admin_token_file() const noexcept;

  catalog& cat() noexcept;
  delivery_engine& deliveries() noexcept;
  http::dispatcher& dispatch() noexcept;
  endpoint_health& health() noexcept;
  storage& store() noexcept;
  http::app& shared() noexcept;

  struct parts;

 private:
  explicit service(std::unique_ptr<parts> p);
  std::unique_ptr<parts> parts_;
};

}  // namespace hookd
