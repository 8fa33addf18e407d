#pragma once
// Internal to core/catalog: `struct catalog::impl` and what the three files of the catalog share,
// catalog.cpp (the index, the reads and the lifecycle), catalog_writes.cpp (the mutations) and
// catalog_load.cpp (start-up). Nothing outside core/catalog includes it, so the names it adds to
// namespace hookd are seen by these three files only.
//
// Readers never wait for writers (beyond a pointer copy):
// - Every entity is an immutable std::shared_ptr<const T>. A change builds a new object and
//   replaces the pointer; nobody ever writes into a published object, so a reader can never see
//   one half-updated, and what it holds stays valid after the catalog moves on.
// - Lookups by id (organizations, projects, tokens, tokens by SHA-256 digest, webhooks) are hash
//   maps split into 64 shards by id hash. Each shard has a std::shared_mutex held only to find and
//   copy one shared_ptr (readers, shared) or to swap one (the writer, exclusive): nanoseconds, and
//   readers of other shards are never touched. Replaced objects are released after the lock.
// - Lists (the webhooks of a project, the projects of an organization, all organizations, all
//   tokens) are immutable sorted vectors published as shared_ptr<const vector> snapshots and
//   replaced whole on every change (copy-on-write). A webhook list holds at most
//   max_webhooks_per_project pointers, so the copy is cheap; organizations, projects and tokens
//   change rarely. A reader gets a consistent list with one pointer copy. Lists are ordered oldest
//   first by (createdAt, id), the same order whether built live or by load().
// - Counts are atomics.
// Why not one big reader/writer lock: a writer holding it while it builds and fsyncs would stall
// every request; and an RCU-style scheme would need hazard pointers that std does not offer.
// shared_ptr copies are one atomic increment, and the lock hold time does not depend on I/O.

#include "core/catalog/catalog.hpp"
#include "core/catalog/catalog_store.hpp"
#include "core/common/clock.hpp"
#include "core/durable/commit_writer.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace hookd {

// ---------------------------------------------------------------- reader structures

// An open-addressing hash table (linear probing, backward-shift deletion) of key -> non-null
// shared_ptr: one array of slots, no node per entry. Start-up puts a million webhooks into these
// tables; a node-based map cost a malloc, a hash computed twice and a pointer chase per entry.
// Not thread-safe by itself: sharded_map guards each table with its shard's mutex.
template <class K, class V>
class flat_table {
 public:
  using value_ptr = std::shared_ptr<const V>;

  const value_ptr* find(const K& key, std::uint64_t hash) const noexcept {
    if (size_ == 0) return nullptr;
    for (std::size_t i = home(hash);; i = (i + 1) & mask_) {
      const slot& s = slots_[i];
      if (!s.value) return nullptr;
      if (s.key == key) return &s.value;
    }
  }

  // Stores `value` (non-null) under `key`; returns what was there (null if nothing).
  value_ptr put(const K& key, std::uint64_t hash, value_ptr value) {
    if ((size_ + 1) * 4 > capacity() * 3) grow(capacity() == 0 ? 8 : 2 * capacity());
    for (std::size_t i = home(hash);; i = (i + 1) & mask_) {
      slot& s = slots_[i];
      if (!s.value) {
        s.key = key;
        s.bits = bits(hash);
        s.value = std::move(value);
        ++size_;
        return nullptr;
      }
      if (s.key == key) {
        s.value.swap(value);
        return value;
      }
    }
  }

  value_ptr erase(const K& key, std::uint64_t hash) {
    if (size_ == 0) return nullptr;
    std::size_t i = home(hash);
    for (;; i = (i + 1) & mask_) {
      if (!slots_[i].value) return nullptr;
      if (slots_[i].key == key) break;
    }
    value_ptr old = std::move(slots_[i].value);
    --size_;
    // Backward shift: move later entries of the probe run into the hole when their home slot
    // is not cyclically in (hole, their slot], so that every entry stays reachable from home.
    for (std::size_t j = (i + 1) & mask_; slots_[j].value; j = (j + 1) & mask_) {
      const std::size_t h = slots_[j].bits & mask_;
      const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
      if (stays) continue;
      slots_[i].key = slots_[j].key;
      slots_[i].bits = slots_[j].bits;
      slots_[i].value = std::move(slots_[j].value);
      i = j;
    }
    return old;
  }

  // Room for `n` entries without growing.
  void reserve(std::size_t n) {
    std::size_t cap = 8;
    while (cap * 3 < n * 4) cap *= 2;
    if (cap > capacity()) grow(cap);
  }

 private:
  struct slot {
    K key{};
    std::uint32_t bits = 0;  // bits(hash): where the entry's probe run starts, for moves
    value_ptr value;         // null: empty slot
  };
  std::size_t capacity() const noexcept { return slots_ ? mask_ + 1 : 0; }
  // The multiplicative mix's middle bits: its top bits choose the shard (sharded_map).
  static std::uint32_t bits(std::uint64_t hash) noexcept {
    return static_cast<std::uint32_t>(hash >> 16);
  }
  std::size_t home(std::uint64_t hash) const noexcept { return bits(hash) & mask_; }
  void grow(std::size_t cap) {
    const std::size_t old_cap = capacity();
    auto old = std::move(slots_);
    slots_ = std::make_unique<slot[]>(cap);
    mask_ = cap - 1;
    for (std::size_t i = 0; i < old_cap; ++i) {
      if (!old[i].value) continue;
      for (std::size_t j = old[i].bits & mask_;; j = (j + 1) & mask_) {
        if (!slots_[j].value) {
          slots_[j] = std::move(old[i]);
          break;
        }
      }
    }
  }

  std::unique_ptr<slot[]> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

template <class K, class V, class Hash>
class sharded_map {
 public:
  std::shared_ptr<const V> find(const K& key) const {
    const std::uint64_t h = mix(key);
    const shard& s = shards_[shard_index(h)];
    std::shared_lock lock(s.mutex);
    const auto* found = s.table.find(key, h);
    return found ? *found : nullptr;
  }

  // Inserts or replaces (a null value erases). Returns the replaced value so that it is released
  // after the lock.
  [[nodiscard]] std::shared_ptr<const V> put(const K& key, std::shared_ptr<const V> value) {
    if (!value) return erase(key);
    const std::uint64_t h = mix(key);
    shard& s = shards_[shard_index(h)];
    std::lock_guard lock(s.mutex);
    return s.table.put(key, h, std::move(value));
  }

  // Sizes every shard for `total` entries, spread evenly by the hash with some margin, so that a
  // bulk fill (load()) does not rehash on the way.
  void reserve(std::size_t total) {
    const std::size_t per_shard = total / kShards + total / (4 * kShards) + 1;
    for (shard& s : shards_) {
      std::lock_guard lock(s.mutex);
      s.table.reserve(per_shard);
    }
  }

  [[nodiscard]] std::shared_ptr<const V> erase(const K& key) {
    const std::uint64_t h = mix(key);
    shard& s = shards_[shard_index(h)];
    std::lock_guard lock(s.mutex);
    return s.table.erase(key, h);
  }

 private:
  static constexpr std::size_t kShards = 64;
  struct alignas(64) shard {
    mutable std::shared_mutex mutex;
    flat_table<K, V> table;
  };
  // Fibonacci hashing: a multiplicative mix of Hash, whatever the quality of its low bits. Its
  // top 6 bits choose the shard, the bits below them the slot.
  static std::uint64_t mix(const K& key) noexcept {
    return static_cast<std::uint64_t>(Hash{}(key)) * 0x9E3779B97F4A7C15ull;
  }
  static std::size_t shard_index(std::uint64_t h) noexcept {
    return static_cast<std::size_t>(h >> 58);
  }
  std::array<shard, kShards> shards_;
};

// One shared_ptr<const T> that readers copy and the writer replaces.
template <class T>
class snapshot_cell {
 public:
  std::shared_ptr<const T> load() const {
    std::shared_lock lock(mutex_);
    return value_;
  }
  [[nodiscard]] std::shared_ptr<const T> exchange(std::shared_ptr<const T> value) {
    std::lock_guard lock(mutex_);
    value_.swap(value);
    return value;
  }

 private:
  mutable std::shared_mutex mutex_;
  std::shared_ptr<const T> value_;
};

struct digest_hash {
  std::size_t operator()(const sha256_digest& d) const noexcept {
    std::size_t h = 0;  // a digest is uniformly distributed already
    std::memcpy(&h, d.data(), sizeof h);
    return h;
  }
};

template <class T>
using snapshot_list = std::vector<std::shared_ptr<const T>>;
using organization_list = snapshot_list<organization>;
using project_list = snapshot_list<project>;
using token_list = snapshot_list<api_token>;

template <class T>
bool older(const std::shared_ptr<const T>& a, const std::shared_ptr<const T>& b) noexcept {
  return std::tie(a->created_at, a->id) < std::tie(b->created_at, b->id);
}

inline const std::shared_ptr<const webhook_list>& empty_webhook_list() {
  static const std::shared_ptr<const webhook_list> empty = std::make_shared<webhook_list>();
  return empty;
}

inline std::string id_key(const object_id& id) {
  return std::string(id.binary());
}

// ---------------------------------------------------------------- impl

// The catalog's mutations plan typed changes, which the writer commits with store.commit().
using catalog_mutation = basic_commit_mutation<catalog_change>;
using catalog_writer = basic_commit_writer<catalog_change>;

struct catalog::impl {
  // `owned`: the store when the catalog made it (catalog(storage&, ...)), else null.
  impl(catalog_store& s, std::unique_ptr<catalog_store> owned, catalog_options o)
      // Planning ahead: the next group is planned while the current one is being fsync'd. The
      // overlay (`pending`) holds whole values, which is what that mode requires.
      : owned_store(std::move(owned)),
        store(s),
        options(std::move(o)),
        writer(
            [this](const catalog_change& change) {
              auto committed = store.commit(change);
              if (committed) remember_erased(change);
              return committed;
            },
            [this] { pending.clear(); },
            commit_writer_options{.plan_ahead = true, .thread_name = "catalog"}) {}

  const std::unique_ptr<catalog_store> owned_store;
  catalog_store& store;
  const catalog_options options;
  object_id_generator ids;

  // ---- published state: read by any thread, written by the writer thread (or load()).
  sharded_map<object_id, organization, object_id_hash> organizations;
  sharded_map<object_id, project, object_id_hash> projects;
  sharded_map<object_id, api_token, object_id_hash> tokens;
  sharded_map<sha256_digest, api_token, digest_hash> tokens_by_digest;
  sharded_map<object_id, webhook, object_id_hash> webhooks;
  sharded_map<object_id, webhook_list, object_id_hash> webhooks_by_project;
  sharded_map<object_id, project_list, object_id_hash> projects_by_organization;
  snapshot_cell<organization_list> all_organizations;
  snapshot_cell<token_list> all_tokens;
  std::atomic<std::size_t> organization_count{0}, project_count{0}, token_count{0},
      webhook_count{0}, admin_token_count{0};

  // ---- writer thread only (and load(), before the writer starts).
  std::map<std::pair<object_id, std::string>, object_id> slugs;

  // What the accepted mutations of the current group will publish. A null pointer in a map is
  // "deleted in this group".
  struct overlay {
    std::unordered_map<object_id, std::shared_ptr<const organization>> organizations;
    std::unordered_map<object_id, std::shared_ptr<const project>> projects;
    std::unordered_map<object_id, std::shared_ptr<const api_token>> tokens;
    std::map<sha256_digest, std::shared_ptr<const api_token>> tokens_by_digest;
    std::unordered_map<object_id, std::shared_ptr<const webhook>> webhooks;
    std::unordered_map<object_id, std::shared_ptr<const webhook_list>> webhook_lists;
    std::unordered_map<object_id, std::shared_ptr<const project_list>> project_lists;
    // true: taken by a project created in this group; false: freed by one deleted in it.
    std::map<std::pair<object_id, std::string>, bool> slugs;
    std::shared_ptr<const organization_list> organizations_list;
    std::shared_ptr<const token_list> tokens_list;

    void clear() { *this = overlay{}; }
  } pending;

  bool loaded = false;
  bool started = false;

  // ---- ids erased, by this node or (apply_remote) by another: ids are never given out again, so
  // a put of one of them is an older version than what this node knows, e.g. a node's own change
  // read back from the shared store in a snapshot taken just before it deleted the entity. Added
  // after the store committed the erase (the write thread) or when apply_remote plans it; while a
  // local erase is in flight, the overlay's null entry says the same.
  std::mutex erased_mutex;
  std::unordered_set<object_id, object_id_hash> erased;  // guarded by erased_mutex

  void remember_erased(const catalog_change& change) {
    std::lock_guard lock(erased_mutex);
    for (const auto& op : change.ops) {
      if (op.what != catalog_change::kind::erase) continue;
      erased.insert(std::visit([](const auto& e) { return e->id; }, op.value));
    }
  }
  // An erase of `id` was committed or is planned in the group being built.
  template <class Map>
  bool erased_here(const Map& overlay_map, const object_id& id) {
    if (const auto it = overlay_map.find(id); it != overlay_map.end() && it->second == nullptr) {
      return true;
    }
    std::lock_guard lock(erased_mutex);
    return erased.contains(id);
  }

  // Declared last: destroyed first, so the writer thread is gone before the state it uses.
  catalog_writer writer;

  // ---- the state as the next mutation of the group sees it (writer thread)

  template <class Map, class Published>
  static auto current(const Map& overlay_map, const Published& published,
                      const typename Map::key_type& key) {
    if (const auto it = overlay_map.find(key); it != overlay_map.end()) return it->second;
    return published.find(key);
  }
  std::shared_ptr<const organization> current_organization(const object_id& id) const {
    return current(pending.organizations, organizations, id);
  }
  std::shared_ptr<const project> current_project(const object_id& id) const {
    return current(pending.projects, projects, id);
  }
  std::shared_ptr<const api_token> current_token(const object_id& id) const {
    return current(pending.tokens, tokens, id);
  }
  std::shared_ptr<const api_token> current_token_by_digest(const sha256_digest& d) const {
    return current(pending.tokens_by_digest, tokens_by_digest, d);
  }
  std::shared_ptr<const webhook> current_webhook(const object_id& id) const {
    return current(pending.webhooks, webhooks, id);
  }
  std::shared_ptr<const webhook_list> current_webhook_list(const object_id& project_id) const {
    auto list = current(pending.webhook_lists, webhooks_by_project, project_id);
    return list ? list : empty_webhook_list();
  }
  std::shared_ptr<const project_list> current_project_list(const object_id& org) const {
    return current(pending.project_lists, projects_by_organization, org);
  }
  std::shared_ptr<const organization_list> current_organization_list() const {
    return pending.organizations_list ? pending.organizations_list : all_organizations.load();
  }
  std::shared_ptr<const token_list> current_token_list() const {
    return pending.tokens_list ? pending.tokens_list : all_tokens.load();
  }
  bool slug_taken(const object_id& org, const std::string& slug) const {
    auto key = std::make_pair(org, slug);
    if (const auto it = pending.slugs.find(key); it != pending.slugs.end()) return it->second;
    return slugs.contains(key);
  }

  object_id new_id(timestamp now) { return ids.next(unix_seconds(now)); }

  // catalog_load.cpp
  result<catalog_counts> load();
};

}  // namespace hookd
