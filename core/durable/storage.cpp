#include "core/durable/storage.hpp"

namespace hookd {

std::string_view table_name(table t) noexcept {
  // These strings are RocksDB column family names on disk: never rename one.
  switch (t) {
    case table::meta:
      return "meta";
    case table::organizations:
      return "organizations";
    case table::projects:
      return "projects";
    case table::tokens:
      return "tokens";
    case table::webhooks:
      return "webhooks";
    case table::index:
      return "index";
    case table::events:
      return "events";
    case table::deliveries:
      return "deliveries";
    case table::attempts:
      return "attempts";
    case table::idempotency:
      return "idempotency";
    case table::queue:
      return "queue";
    case table::history:
      return "history";
  }
  return "unknown";
}

}  // namespace hookd
