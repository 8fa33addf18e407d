#pragma once
// Where the catalog keeps its entities: the port between the in-memory index (catalog.hpp) and a
// durable store. The catalog decides every change against its index and hands the store typed
// entities, never encoded records; each store maps them onto its own layout:
// - the embedded store (kv_catalog_store, core/catalog): records and index entries in the
//   key-value tables of core/durable/storage.hpp, as described in codec.hpp;
// - PostgreSQL (storage/postgres): rows of real tables with keys, foreign keys and unique
//   constraints (docs/cluster.md).
//
// A store seals what is secret (webhook secrets, custom header values, previous secrets) with the
// master key it was built with; the catalog only ever sees plain text in memory.

#include "core/catalog/entities.hpp"
#include "core/common/error.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <variant>
#include <vector>

namespace hookd {

// One group of catalog changes, in the order the catalog planned them. A store applies them in
// that order, all or none (one batch, one transaction). Order matters: a project deleted and a new
// one created with its slug in the same group, or a project's webhooks erased before the project.
struct catalog_change {
  enum class kind : std::uint8_t { put, erase };
  using entity = std::variant<std::shared_ptr<const organization>, std::shared_ptr<const project>,
                              std::shared_ptr<const api_token>, std::shared_ptr<const webhook>>;
  struct op {
    kind what = kind::put;
    // put: the new version (a create or a replacement of the same id). erase: the version being
    // erased, as the index held it, so that a store can find what it derived from it (a
    // project's slug, a token's digest, a webhook's project).
    entity value;
  };
  std::vector<op> ops;

  template <class T>
  void put(std::shared_ptr<const T> v) {
    ops.push_back({kind::put, entity{std::move(v)}});
  }
  template <class T>
  void erase(std::shared_ptr<const T> v) {
    ops.push_back({kind::erase, entity{std::move(v)}});
  }
  bool empty() const noexcept { return ops.empty(); }
  void clear() noexcept { ops.clear(); }
};

// What load() hands the catalog, one call per stored entity, in any order across kinds (the
// catalog checks references after the whole load). Calls may come from several threads at once
// (a store may decode in parallel); each callback must be thread-safe.
struct catalog_load_sink {
  std::function<void(std::shared_ptr<organization>)> organization;
  std::function<void(std::shared_ptr<project>)> project;
  std::function<void(std::shared_ptr<api_token>)> token;
  std::function<void(std::shared_ptr<webhook>)> webhook;
};

class catalog_store {
 public:
  virtual ~catalog_store() = default;
  // Makes `change` durable: every op or none. Called from the catalog's writer thread only, one
  // call at a time. An error means nothing of `change` was stored (error_kind::storage_failure
  // naming the cause).
  virtual result<void> commit(const catalog_change& change) = 0;
  // Start-up: hands every stored entity to `sink`, secrets opened. A record that does not decode,
  // or a secret that does not open with the master key, is an error naming what and where, never
  // skipped. `threads` as catalog_options::load_threads.
  virtual result<void> load(const catalog_load_sink& sink, unsigned threads) = 0;
};

}  // namespace hookd
