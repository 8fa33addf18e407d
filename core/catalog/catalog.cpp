// The catalog: reader indexes, the writer's planning, and start-up loading.
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
//
// Writes go through commit_writer (one thread, group commit; see commit_writer.hpp). Each write
// call packs its input into a mutation. On the writer thread the mutation plans itself against
// the published state plus `pending`, a writer-private overlay of what the earlier accepted
// mutations of the same group will publish, so mutations of one group behave exactly as if run
// one after another (two creates see each other's slug, the per-project limit counts both,
// patch-after-create and delete-after-create find the new webhook). Planning computes every new
// object and every new list snapshot; publishing, after the batch is durable, only installs them
// in order. The overlay is cleared after every group, whether it committed or failed.
//
// The writer also keeps `slugs` (organization + slug -> project id), which only it reads.
//
// Storage: every change writes its entity and its index entries (codec.hpp) in one batch.
// load() reads the four entity tables, checks references (a project's organization, a webhook's
// project and organization), rebuilds the in-memory indexes and then VERIFIES the index table
// against them: a missing, extra or wrong "ps", "pw" or "td" entry fails the start with the key
// named, since it means the data was not written by this code or was damaged.

#include "core/catalog/catalog.hpp"

#include "core/catalog/codec.hpp"
#include "core/common/ascii.hpp"
#include "core/durable/commit_writer.hpp"

#if defined(__linux__)
#include <sched.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace hookd {

namespace {

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

template <class T>
std::shared_ptr<const snapshot_list<T>> with_added(const snapshot_list<T>* base,
                                                   std::shared_ptr<const T> item) {
  auto next = std::make_shared<snapshot_list<T>>();
  next->reserve((base ? base->size() : 0) + 1);
  if (base) next->assign(base->begin(), base->end());
  next->insert(std::upper_bound(next->begin(), next->end(), item, older<T>), std::move(item));
  return next;
}

template <class T>
std::shared_ptr<const snapshot_list<T>> with_replaced(const snapshot_list<T>& base,
                                                      const std::shared_ptr<const T>& item) {
  auto next = std::make_shared<snapshot_list<T>>(base);
  for (auto& p : *next) {
    if (p->id == item->id) p = item;  // createdAt never changes, so the position holds
  }
  return next;
}

template <class T>
std::shared_ptr<const snapshot_list<T>> without(const snapshot_list<T>& base, const object_id& id) {
  auto next = std::make_shared<snapshot_list<T>>();
  next->reserve(base.size());
  for (const auto& p : base) {
    if (p->id != id) next->push_back(p);
  }
  return next;
}

const std::shared_ptr<const webhook_list>& empty_webhook_list() {
  static const std::shared_ptr<const webhook_list> empty = std::make_shared<webhook_list>();
  return empty;
}

template <class T>
void sort_oldest_first(snapshot_list<T>& list) {
  std::sort(list.begin(), list.end(), older<T>);
}

std::string id_key(const object_id& id) {
  return std::string(id.binary());
}

problem not_found(std::string what) {
  return make_problem(error_kind::not_found, std::move(what));
}

std::uint32_t unix_seconds(timestamp t) {
  return static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
}

}  // namespace

// ---------------------------------------------------------------- impl

struct catalog::impl {
  impl(storage& s, catalog_options o)
      // Planning ahead: the next group is planned while the current one is being fsync'd. The
      // overlay (`pending`) holds whole values, which is what that mode requires.
      : store(s),
        options(std::move(o)),
        writer(
            s, [this] { pending.clear(); }, commit_writer_options{.plan_ahead = true}) {}

  storage& store;
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
    std::set<std::pair<object_id, std::string>> slugs;
    std::shared_ptr<const organization_list> organizations_list;
    std::shared_ptr<const token_list> tokens_list;

    void clear() { *this = overlay{}; }
  } pending;

  bool loaded = false;
  bool started = false;

  // Declared last: destroyed first, so the writer thread is gone before the state it uses.
  commit_writer writer;

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
    return pending.slugs.contains(key) || slugs.contains(key);
  }

  object_id new_id(timestamp now) { return ids.next(unix_seconds(now)); }

  result<catalog_counts> load();
  result<void> seal_plain_header_values(const std::vector<webhook_list>& lists);
};

namespace {

// ---------------------------------------------------------------- mutations

template <class T>
void deliver(const completion<T>& done, result<void> outcome, T value) noexcept {
  if (outcome) {
    done(std::move(value));
  } else {
    done(std::move(outcome).error());
  }
}

using impl = catalog::impl;

class create_organization_op final : public commit_mutation {
 public:
  create_organization_op(impl& c, organization_input in,
                         completion<std::shared_ptr<const organization>> done)
      : c_(c), in_(std::move(in)), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    const timestamp now = now_ms();
    auto org = std::make_shared<organization>();
    org->id = c_.new_id(now);
    org->name = std::move(in_.name);
    org->created_at = org->updated_at = now;
    created_ = org;
    batch.put(table::organizations, id_key(org->id), encode(*org));
    list_ = with_added(c_.current_organization_list().get(), created_);
    c_.pending.organizations[org->id] = created_;
    c_.pending.organizations_list = list_;
    return {};
  }
  void publish() override {
    (void)c_.organizations.put(created_->id, created_);
    (void)c_.all_organizations.exchange(list_);
    c_.organization_count.fetch_add(1);
  }
  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), std::move(created_));
  }

 private:
  impl& c_;
  organization_input in_;
  completion<std::shared_ptr<const organization>> done_;
  std::shared_ptr<const organization> created_;
  std::shared_ptr<const organization_list> list_;
};

class create_project_op final : public commit_mutation {
 public:
  create_project_op(impl& c, object_id org, project_input in,
                    completion<std::shared_ptr<const project>> done)
      : c_(c), org_(org), in_(std::move(in)), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    if (!c_.current_organization(org_)) {
      return not_found("Organization " + org_.to_string() + " does not exist.");
    }
    if (c_.slug_taken(org_, in_.slug)) {
      return make_problem(error_kind::conflict, "The slug \"" + in_.slug +
                                                    "\" is already used by another project of "
                                                    "this organization.");
    }
    const timestamp now = now_ms();
    auto p = std::make_shared<project>();
    p->id = c_.new_id(now);
    p->organization = org_;
    p->name = std::move(in_.name);
    p->slug = std::move(in_.slug);
    p->description = std::move(in_.description);
    p->status = in_.status;
    p->app_icon_url = std::move(in_.app_icon_url);
    p->created_at = p->updated_at = now;
    created_ = p;
    batch.put(table::projects, id_key(p->id), encode(*p));
    batch.put(table::index, project_slug_key(org_, p->slug), id_key(p->id));
    list_ = with_added(c_.current_project_list(org_).get(), created_);
    c_.pending.projects[p->id] = created_;
    c_.pending.slugs.emplace(org_, p->slug);
    c_.pending.project_lists[org_] = list_;
    return {};
  }
  void publish() override {
    (void)c_.projects.put(created_->id, created_);
    c_.slugs.emplace(std::make_pair(org_, created_->slug), created_->id);
    (void)c_.projects_by_organization.put(org_, list_);
    c_.project_count.fetch_add(1);
  }
  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), std::move(created_));
  }

 private:
  impl& c_;
  object_id org_;
  project_input in_;
  completion<std::shared_ptr<const project>> done_;
  std::shared_ptr<const project> created_;
  std::shared_ptr<const project_list> list_;
};

class create_token_op final : public commit_mutation {
 public:
  create_token_op(impl& c, token_input in, std::string secret, completion<created_token> done)
      : c_(c), in_(std::move(in)), secret_(std::move(secret)), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    std::vector<field_error> errors;
    for (std::size_t i = 0; i < in_.organizations.size(); ++i) {
      if (!c_.current_organization(in_.organizations[i])) {
        errors.push_back({"organizations[" + std::to_string(i) + "]",
                          "Organization " + in_.organizations[i].to_string() + " does not exist."});
      }
    }
    if (!errors.empty()) return validation_problem(std::move(errors));
    const sha256_digest digest = sha256(secret_);
    if (c_.current_token_by_digest(digest)) {
      // Only a chosen secret (the admin bootstrap) can collide; two tokens must not share one.
      return make_problem(error_kind::conflict, "A token with this secret already exists.");
    }
    const timestamp now = now_ms();
    auto t = std::make_shared<api_token>();
    t->id = c_.new_id(now);
    t->name = std::move(in_.name);
    t->organizations = std::move(in_.organizations);
    t->scopes = in_.scopes;
    t->digest = digest;
    t->created_at = now;
    created_ = t;
    batch.put(table::tokens, id_key(t->id), encode(*t));
    batch.put(table::index, token_digest_key(digest), id_key(t->id));
    list_ = with_added(c_.current_token_list().get(), created_);
    c_.pending.tokens[t->id] = created_;
    c_.pending.tokens_by_digest[digest] = created_;
    c_.pending.tokens_list = list_;
    return {};
  }
  void publish() override {
    (void)c_.tokens.put(created_->id, created_);
    (void)c_.tokens_by_digest.put(created_->digest, created_);
    (void)c_.all_tokens.exchange(list_);
    c_.token_count.fetch_add(1);
    if (created_->scopes.has(scope::admin)) c_.admin_token_count.fetch_add(1);
  }
  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), created_token{std::move(created_), std::move(secret_)});
  }

 private:
  impl& c_;
  token_input in_;
  std::string secret_;
  completion<created_token> done_;
  std::shared_ptr<const api_token> created_;
  std::shared_ptr<const token_list> list_;
};

class delete_token_op final : public commit_mutation {
 public:
  delete_token_op(impl& c, object_id id, completion<void> done)
      : c_(c), id_(id), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    deleted_ = c_.current_token(id_);
    if (!deleted_) return not_found("Token " + id_.to_string() + " does not exist.");
    batch.erase(table::tokens, id_key(id_));
    batch.erase(table::index, token_digest_key(deleted_->digest));
    list_ = without(*c_.current_token_list(), id_);
    c_.pending.tokens[id_] = nullptr;
    c_.pending.tokens_by_digest[deleted_->digest] = nullptr;
    c_.pending.tokens_list = list_;
    return {};
  }
  void publish() override {
    // The digest goes first: from here on the token no longer authenticates.
    (void)c_.tokens_by_digest.erase(deleted_->digest);
    (void)c_.tokens.erase(id_);
    (void)c_.all_tokens.exchange(list_);
    c_.token_count.fetch_sub(1);
    if (deleted_->scopes.has(scope::admin)) c_.admin_token_count.fetch_sub(1);
  }
  void complete(result<void> outcome) noexcept override { done_(std::move(outcome)); }

 private:
  impl& c_;
  object_id id_;
  completion<void> done_;
  std::shared_ptr<const api_token> deleted_;
  std::shared_ptr<const token_list> list_;
};

// The webhook `id` of `project` in `org`, or not_found. A webhook of another project or
// organization is reported exactly like one that does not exist.
result<std::shared_ptr<const webhook>> webhook_in(const impl& c, const object_id& org,
                                                  const object_id& project_id,
                                                  const object_id& id) {
  auto w = c.current_webhook(id);
  if (!w || w->organization != org || w->project != project_id) {
    return not_found("Webhook " + id.to_string() + " does not exist in project " +
                     project_id.to_string() + ".");
  }
  return w;
}

class create_webhook_op final : public commit_mutation {
 public:
  create_webhook_op(impl& c, object_id org, object_id project_id, webhook_input in,
                    std::string secret, completion<std::shared_ptr<const webhook>> done)
      : c_(c),
        org_(org),
        project_(project_id),
        in_(std::move(in)),
        secret_(std::move(secret)),
        done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    if (!c_.current_organization(org_)) {
      return not_found("Organization " + org_.to_string() + " does not exist.");
    }
    const auto p = c_.current_project(project_);
    if (!p || p->organization != org_) {
      return not_found("Project " + project_.to_string() + " does not exist in organization " +
                       org_.to_string() + ".");
    }
    const auto list = c_.current_webhook_list(project_);
    const std::size_t limit = c_.options.max_webhooks_per_project;
    if (list->size() >= limit) {
      return make_problem(error_kind::limit_reached,
                          "The project already has " + std::to_string(list->size()) +
                              " webhooks; at most " + std::to_string(limit) + " are allowed.");
    }
    const timestamp now = now_ms();
    auto w = std::make_shared<webhook>();
    w->id = c_.new_id(now);
    w->organization = org_;
    w->project = project_;
    w->name = std::move(in_.name);
    w->url = std::move(in_.url);
    w->headers = std::move(in_.headers);
    w->active = in_.active;
    w->events = std::move(in_.events);
    w->secret = std::move(secret_);
    w->created_at = w->updated_at = now;
    created_ = w;
    batch.put(table::webhooks, id_key(w->id), encode(*w, c_.options.master_key));
    batch.put(table::index, project_webhook_key(project_, w->id), std::string{});
    list_ = with_added(list.get(), created_);
    c_.pending.webhooks[w->id] = created_;
    c_.pending.webhook_lists[project_] = list_;
    return {};
  }
  void publish() override {
    (void)c_.webhooks.put(created_->id, created_);
    (void)c_.webhooks_by_project.put(project_, list_);
    c_.webhook_count.fetch_add(1);
  }
  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), std::move(created_));
  }

 private:
  impl& c_;
  object_id org_, project_;
  webhook_input in_;
  std::string secret_;
  completion<std::shared_ptr<const webhook>> done_;
  std::shared_ptr<const webhook> created_;
  std::shared_ptr<const webhook_list> list_;
};

// A header a PATCH sends with kMaskedHeaderValue keeps the value stored under the same name
// (compared case-insensitively), so that a client that only ever saw masked values can send a
// webhook back unchanged. A mask under a name the webhook does not have is a validation error.
result<void> keep_masked_values(std::vector<header_entry>& next,
                                const std::vector<header_entry>& stored) {
  std::vector<field_error> errors;
  for (header_entry& h : next) {
    if (h.value != kMaskedHeaderValue) continue;
    const auto same = std::find_if(stored.begin(), stored.end(), [&h](const header_entry& s) {
      return ascii_iequals(s.name, h.name);
    });
    if (same == stored.end()) {
      errors.push_back({"headers." + h.name,
                        "is the mask \"" + std::string(kMaskedHeaderValue) +
                            "\", but the webhook has no header of that name whose value it could "
                            "keep; send the real value"});
    } else {
      h.value = same->value;
    }
  }
  if (!errors.empty()) return validation_problem(std::move(errors));
  return {};
}

class update_webhook_op final : public commit_mutation {
 public:
  update_webhook_op(impl& c, object_id org, object_id project_id, object_id id, webhook_patch patch,
                    completion<std::shared_ptr<const webhook>> done)
      : c_(c),
        org_(org),
        project_(project_id),
        id_(id),
        patch_(std::move(patch)),
        done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    auto found = webhook_in(c_, org_, project_, id_);
    if (!found) return found.error();
    const std::shared_ptr<const webhook>& old = *found;
    if (patch_.headers) {
      if (auto kept = keep_masked_values(*patch_.headers, old->headers); !kept) {
        return kept.error();
      }
    }

    webhook next = *old;
    bool changed = false;
    auto apply = [&changed](auto& field, auto& patched) {
      if (patched && field != *patched) {
        field = std::move(*patched);
        changed = true;
      }
    };
    apply(next.name, patch_.name);
    apply(next.url, patch_.url);
    apply(next.headers, patch_.headers);
    apply(next.active, patch_.active);
    apply(next.events, patch_.events);
    if (!changed) {
      result_ = old;  // nothing to write, nothing to publish, updatedAt stays
      return {};
    }
    if (next.active && !old->active) {
      // The client switched it back on: whatever disabled it no longer applies.
      next.disabled_reason.reset();
      next.disabled_at.reset();
    }
    // Strictly later than before, so that a client comparing updatedAt always sees the change.
    next.updated_at = std::max(now_ms(), old->updated_at + std::chrono::milliseconds{1});
    auto w = std::make_shared<const webhook>(std::move(next));
    result_ = w;
    updated_ = w;
    batch.put(table::webhooks, id_key(id_), encode(*w, c_.options.master_key));
    list_ = with_replaced(*c_.current_webhook_list(project_), updated_);
    c_.pending.webhooks[id_] = updated_;
    c_.pending.webhook_lists[project_] = list_;
    return {};
  }
  void publish() override {
    if (!updated_) return;
    (void)c_.webhooks.put(id_, updated_);
    (void)c_.webhooks_by_project.put(project_, list_);
  }
  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), std::move(result_));
  }

 private:
  impl& c_;
  object_id org_, project_, id_;
  webhook_patch patch_;
  completion<std::shared_ptr<const webhook>> done_;
  std::shared_ptr<const webhook> result_;   // what the caller gets
  std::shared_ptr<const webhook> updated_;  // what is published; null when nothing changed
  std::shared_ptr<const webhook_list> list_;
};

class delete_webhook_op final : public commit_mutation {
 public:
  delete_webhook_op(impl& c, object_id org, object_id project_id, object_id id,
                    completion<void> done)
      : c_(c), org_(org), project_(project_id), id_(id), done_(std::move(done)) {}

  result<void> plan(write_batch& batch) override {
    auto found = webhook_in(c_, org_, project_, id_);
    if (!found) return found.error();
    batch.erase(table::webhooks, id_key(id_));
    batch.erase(table::index, project_webhook_key(project_, id_));
    list_ = without(*c_.current_webhook_list(project_), id_);
    c_.pending.webhooks[id_] = nullptr;
    c_.pending.webhook_lists[project_] = list_;
    return {};
  }
  void publish() override {
    // Out of the list first, so a reader walking the list never finds a webhook gone by id.
    (void)c_.webhooks_by_project.put(project_, list_);
    (void)c_.webhooks.erase(id_);
    c_.webhook_count.fetch_sub(1);
  }
  void complete(result<void> outcome) noexcept override { done_(std::move(outcome)); }

 private:
  impl& c_;
  object_id org_, project_, id_;
  completion<void> done_;
  std::shared_ptr<const webhook_list> list_;
};

}  // namespace

// ---------------------------------------------------------------- load

namespace {

problem record_problem(table t, std::string_view key, std::string_view what) {
  return make_problem(error_kind::internal, "Cannot load the " + std::string(table_name(t)) +
                                                " record " + printable_key(key) + ": " +
                                                std::string(what));
}

// Decodes every record of `t` with `decode`, handing each entity to `take`. Stops at the first
// record that does not decode.
template <class Decode, class Take>
result<void> load_table(const storage& store, table t, Decode decode, Take take) {
  std::optional<problem> failure;
  result<void> scanned = store.scan(t, {}, [&](std::string_view key, std::string_view value) {
    auto decoded = decode(key, value);
    if (!decoded) {
      failure = record_problem(t, key, decoded.error().detail);
      return false;
    }
    take(std::move(*decoded));
    return true;
  });
  if (!scanned) {
    return make_problem(scanned.error().kind, "Cannot read the " + std::string(table_name(t)) +
                                                  " table: " + scanned.error().detail);
  }
  if (failure) return *failure;
  return {};
}

// CPUs this process may run on: its affinity mask where the platform tells (a process pinned
// with taskset gets no use from more threads), else the hardware's.
unsigned usable_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    if (const int n = CPU_COUNT(&set); n > 0) return static_cast<unsigned>(n);
  }
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

// load_table on several threads, for the one big table: this thread scans and hands out batches
// of copied records; `threads - 1` others decode them, and so does this one whenever enough
// batches wait already. The outcome is load_table's exactly: every entity in key order, or the
// problem of the first record in key order that does not decode (each batch stops at its first
// failure, and every batch before a failing one is decoded whole, so the earliest is known).
template <class T, class Decode>
result<void> load_table_parallel(const storage& store, table t, unsigned threads, Decode decode,
                                 std::vector<std::shared_ptr<const T>>& out) {
  struct batch {
    std::string bytes;  // keys and values back to back
    struct record {
      std::size_t offset, key_size, value_size;
    };
    std::vector<record> records;
    std::vector<std::shared_ptr<const T>> decoded;
    std::optional<problem> failure;
  };
  constexpr std::size_t kBatchRecords = 512;
  constexpr std::size_t kBatchBytes = 256 * 1024;  // 512 webhook records of ~400 bytes
  const std::size_t max_waiting = 2 * std::size_t{threads};

  std::vector<std::unique_ptr<batch>> batches;  // key order
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<batch*> waiting;
  std::vector<std::string> spare_buffers;
  bool closed = false;
  std::atomic<bool> failed{false};

  const auto run = [&](batch& b) {
    b.decoded.reserve(b.records.size());
    for (const auto& r : b.records) {
      const std::string_view key(b.bytes.data() + r.offset, r.key_size);
      const std::string_view value(b.bytes.data() + r.offset + r.key_size, r.value_size);
      auto decoded = decode(key, value);
      if (!decoded) {
        b.failure = record_problem(t, key, decoded.error().detail);
        failed.store(true, std::memory_order_relaxed);
        break;
      }
      b.decoded.push_back(std::make_shared<const T>(std::move(*decoded)));
    }
    // The copies are done with; their buffer goes back for a later batch. Reused rather than
    // freed, the buffers do not leave holes between the entities that stay (which cost ~300 bytes
    // of RSS per webhook when each batch had its own).
    b.records = {};
    b.bytes.clear();
    std::lock_guard lock(mutex);
    spare_buffers.push_back(std::move(b.bytes));
  };
  const auto work = [&] {
    for (;;) {
      batch* b = nullptr;
      {
        std::unique_lock lock(mutex);
        ready.wait(lock, [&] { return closed || !waiting.empty(); });
        if (waiting.empty()) return;
        b = waiting.front();
        waiting.pop_front();
      }
      run(*b);
    }
  };
  const auto hand_out = [&](std::unique_ptr<batch> b) {
    batch& mine = *batches.emplace_back(std::move(b));
    {
      std::lock_guard lock(mutex);
      if (waiting.size() < max_waiting) {
        waiting.push_back(&mine);
        ready.notify_one();
        return;
      }
    }
    run(mine);  // the decoders are behind: help instead of queueing more copies
  };

  result<void> scanned;
  {
    std::vector<std::jthread> decoders;
    decoders.reserve(threads - 1);
    // Destroyed before the decoders are joined, on every way out of this block.
    struct closer {
      std::mutex& mutex;
      std::condition_variable& ready;
      bool& closed;
      ~closer() {
        {
          std::lock_guard lock(mutex);
          closed = true;
        }
        ready.notify_all();
      }
    } close_when_done{mutex, ready, closed};
    for (unsigned i = 1; i < threads; ++i) {
      try {
        decoders.emplace_back(work);
      } catch (const std::system_error&) {
        break;  // no more threads to be had: this one decodes whatever they cannot take
      }
    }
    const auto new_batch = [&] {
      auto b = std::make_unique<batch>();
      {
        std::lock_guard lock(mutex);
        if (!spare_buffers.empty()) {
          b->bytes = std::move(spare_buffers.back());
          spare_buffers.pop_back();
        }
      }
      if (b->bytes.capacity() == 0) b->bytes.reserve(kBatchBytes);
      b->records.reserve(kBatchRecords);
      return b;
    };
    auto current = new_batch();
    scanned = store.scan(t, {}, [&](std::string_view key, std::string_view value) {
      current->records.push_back({current->bytes.size(), key.size(), value.size()});
      current->bytes.append(key).append(value);
      if (current->records.size() == kBatchRecords) {
        hand_out(std::move(current));
        current = new_batch();
      }
      return !failed.load(std::memory_order_relaxed);
    });
    if (!current->records.empty()) hand_out(std::move(current));
    // Decode what still waits alongside the decoders (all of it, should none have started).
    for (;;) {
      batch* b = nullptr;
      {
        std::lock_guard lock(mutex);
        if (waiting.empty()) break;
        b = waiting.front();
        waiting.pop_front();
      }
      run(*b);
    }
  }  // closed: the decoders finish what is waiting and are joined

  // A record that does not decode ends the sequential scan where it is, before anything the
  // scan read or failed to read after it; so it comes first.
  for (const auto& b : batches) {
    if (b->failure) return *b->failure;
  }
  if (!scanned) {
    return make_problem(scanned.error().kind, "Cannot read the " + std::string(table_name(t)) +
                                                  " table: " + scanned.error().detail);
  }
  std::size_t total = 0;
  for (const auto& b : batches) total += b->decoded.size();
  out.reserve(total);
  for (auto& b : batches) {
    std::move(b->decoded.begin(), b->decoded.end(), std::back_inserter(out));
    b.reset();
  }
  return {};
}

// A "pw" index entry, project id then webhook id: ordered like its key (object_id compares its
// bytes), so expected entries and a scan of the "pw" prefix can be merged.
struct project_webhook_pair {
  object_id project, webhook;
  friend auto operator<=>(const project_webhook_pair&, const project_webhook_pair&) = default;
};

std::optional<project_webhook_pair> parse_project_webhook_key(std::string_view key) {
  if (key.size() != kProjectWebhookPrefix.size() + 2 * object_id::kSize) return std::nullopt;
  const auto project_id = object_id::from_binary(key.substr(2, object_id::kSize));
  const auto webhook_id = object_id::from_binary(key.substr(2 + object_id::kSize));
  if (!project_id || !webhook_id) return std::nullopt;
  return project_webhook_pair{*project_id, *webhook_id};
}

}  // namespace

// Before header values were sealed (see codec.hpp), records held them in plain text. The first
// start of a version that seals them rewrites every webhook with custom headers, in one batch
// with a mark in the meta table that it is done, and compacts the table so that the plain values
// leave the disk too; later starts see the mark and write nothing. Rewriting a record that is
// sealed already is harmless, so records need no sign of their own.
result<void> catalog::impl::seal_plain_header_values(const std::vector<webhook_list>& lists) {
  auto done = store.get(table::meta, kHeadersSealedKey);
  if (!done) return done.error();
  if (*done) return {};
  write_batch batch;
  for (const webhook_list& list : lists) {
    for (const auto& w : list) {
      if (!w->headers.empty())
        batch.put(table::webhooks, id_key(w->id), encode(*w, options.master_key));
    }
  }
  // No webhook has headers: nothing to rewrite, and no mark (a store that never had any costs no
  // write at start-up; the first load that finds some rewrites them once).
  if (batch.empty()) return {};
  batch.put(table::meta, std::string(kHeadersSealedKey), "1");
  if (auto written = store.write(batch); !written) return written.error();
  return store.compact(table::webhooks);
}

result<catalog_counts> catalog::impl::load() {
  if (loaded || started) {
    return make_problem(error_kind::internal,
                        "catalog::load() must be called once, before start()");
  }

  std::vector<std::shared_ptr<const organization>> orgs;
  std::vector<std::shared_ptr<const project>> project_records;
  std::vector<std::shared_ptr<const api_token>> token_records;
  std::vector<std::shared_ptr<const webhook>> webhook_records;

  auto loaded_orgs = load_table(
      store, table::organizations, decode_organization,
      [&](organization o) { orgs.push_back(std::make_shared<const organization>(std::move(o))); });
  if (!loaded_orgs) return loaded_orgs.error();
  auto loaded_projects = load_table(store, table::projects, decode_project, [&](project p) {
    project_records.push_back(std::make_shared<const project>(std::move(p)));
  });
  if (!loaded_projects) return loaded_projects.error();
  auto loaded_tokens = load_table(store, table::tokens, decode_token, [&](api_token t) {
    token_records.push_back(std::make_shared<const api_token>(std::move(t)));
  });
  if (!loaded_tokens) return loaded_tokens.error();
  const aes256gcm_key& key = options.master_key;
  const auto decode_sealed = [&key](std::string_view k, std::string_view v) {
    return decode_webhook(k, v, key);
  };
  const unsigned threads =
      options.load_threads != 0 ? options.load_threads : std::min(usable_cpus(), 8u);
  auto loaded_webhooks =
      threads > 1
          ? load_table_parallel(store, table::webhooks, threads, decode_sealed, webhook_records)
          : load_table(store, table::webhooks, decode_sealed, [&](webhook w) {
              webhook_records.push_back(std::make_shared<const webhook>(std::move(w)));
            });
  if (!loaded_webhooks) return loaded_webhooks.error();

  // References, and the index entries the records imply. The "ps" and "td" entries (one per
  // project or token) go into a map of expected entries. The "pw" entries, one per webhook, are
  // checked by a merge instead, which costs no string per webhook: the projects come from their
  // scan in id order and each one's webhooks, gathered from theirs, in id order too, which is the
  // key order of "pw" + project id + webhook id.
  std::unordered_map<object_id, std::shared_ptr<const organization>> org_by_id;
  org_by_id.reserve(orgs.size());
  for (const auto& o : orgs) org_by_id.emplace(o->id, o);
  std::unordered_map<object_id, std::size_t> project_slot;  // index in project_records
  project_slot.reserve(project_records.size());
  std::map<std::string, std::string> expected_index;
  for (std::size_t i = 0; i < project_records.size(); ++i) {
    const project& p = *project_records[i];
    if (!org_by_id.contains(p.organization)) {
      return record_problem(table::projects, p.id.binary(),
                            "its organization " + p.organization.to_string() + " does not exist");
    }
    auto [it, fresh] =
        expected_index.emplace(project_slug_key(p.organization, p.slug), id_key(p.id));
    if (!fresh) {
      const auto other = object_id::from_binary(it->second);
      return record_problem(table::projects, p.id.binary(),
                            "its slug \"" + p.slug + "\" is also used by project " +
                                (other ? other->to_string() : std::string("?")));
    }
    project_slot.emplace(p.id, i);
  }
  for (const auto& t : token_records) {
    if (!expected_index.emplace(token_digest_key(t->digest), id_key(t->id)).second) {
      return record_problem(table::tokens, t->id.binary(), "another token has the same digest");
    }
  }
  // Each project's webhooks, sized by a first pass so that every list is allocated once.
  std::vector<std::uint32_t> slot_of_webhook(webhook_records.size());
  std::vector<webhook_list> webhooks_of(project_records.size());
  {
    std::vector<std::size_t> sizes(project_records.size());
    for (std::size_t i = 0; i < webhook_records.size(); ++i) {
      const webhook& w = *webhook_records[i];
      const auto p = project_slot.find(w.project);
      if (p == project_slot.end() || project_records[p->second]->organization != w.organization) {
        return record_problem(table::webhooks, w.id.binary(),
                              "its project " + w.project.to_string() +
                                  " does not exist in organization " + w.organization.to_string());
      }
      slot_of_webhook[i] = static_cast<std::uint32_t>(p->second);
      ++sizes[p->second];
    }
    for (std::size_t slot = 0; slot < sizes.size(); ++slot) webhooks_of[slot].reserve(sizes[slot]);
  }
  for (std::size_t i = 0; i < webhook_records.size(); ++i) {
    webhooks_of[slot_of_webhook[i]].push_back(std::move(webhook_records[i]));
  }
  const std::size_t webhook_total = webhook_records.size();
  webhook_records = {};
  slot_of_webhook = {};

  // The index table must say exactly what the records imply (for the prefixes the catalog owns).
  std::optional<problem> index_failure;
  std::size_t slot = 0, next = 0;  // the merge position: webhooks_of[slot][next]
  std::size_t missing_webhook_entries = 0;
  std::optional<std::string> first_missing_webhook_entry;
  // The next expected "pw" entry's webhook, or null past the last one.
  const auto expected_webhook = [&]() -> const webhook* {
    while (slot < webhooks_of.size() && next == webhooks_of[slot].size()) {
      ++slot;
      next = 0;
    }
    return slot < webhooks_of.size() ? webhooks_of[slot][next].get() : nullptr;
  };
  const auto note_missing = [&](const webhook& w) {
    if (missing_webhook_entries++ == 0) {
      first_missing_webhook_entry = project_webhook_key(w.project, w.id);
    }
  };
  const auto check_project_webhook = [&](std::string_view k, std::string_view v) {
    const std::optional<project_webhook_pair> entry = parse_project_webhook_key(k);
    const webhook* w = expected_webhook();
    if (entry) {
      for (; w != nullptr && project_webhook_pair{w->project, w->id} < *entry;
           w = expected_webhook()) {
        note_missing(*w);
        ++next;
      }
    }
    if (!entry || w == nullptr || project_webhook_pair{w->project, w->id} != *entry) {
      index_failure = record_problem(table::index, k, "no record refers to this entry");
      return false;
    }
    if (!v.empty()) {
      index_failure = record_problem(table::index, k, "it points at another record");
      return false;
    }
    ++next;
    return true;
  };
  const auto check_mapped = [&](std::string_view k, std::string_view v) {
    const auto it = expected_index.find(std::string(k));
    if (it == expected_index.end()) {
      index_failure = record_problem(table::index, k, "no record refers to this entry");
      return false;
    }
    if (it->second != v) {
      index_failure = record_problem(table::index, k, "it points at another record");
      return false;
    }
    expected_index.erase(it);
    return true;
  };
  for (std::string_view prefix : {kProjectSlugPrefix, kProjectWebhookPrefix, kTokenDigestPrefix}) {
    const bool webhook_entries = prefix == kProjectWebhookPrefix;
    auto scanned = store.scan(table::index, prefix, [&](std::string_view k, std::string_view v) {
      return webhook_entries ? check_project_webhook(k, v) : check_mapped(k, v);
    });
    if (!scanned) {
      return make_problem(scanned.error().kind,
                          "Cannot read the index table: " + scanned.error().detail);
    }
    if (index_failure) return *index_failure;
  }
  for (const webhook* w = expected_webhook(); w != nullptr; w = expected_webhook()) {
    note_missing(*w);
    ++next;
  }
  if (const std::size_t missing = expected_index.size() + missing_webhook_entries; missing > 0) {
    // The first missing entry in key order, as the index table would list it.
    std::string first = first_missing_webhook_entry.value_or(std::string{});
    if (!expected_index.empty() &&
        (!first_missing_webhook_entry || expected_index.begin()->first < first)) {
      first = expected_index.begin()->first;
    }
    return make_problem(error_kind::internal, "Cannot load the index table: the entry " +
                                                  printable_key(first) + " is missing (and " +
                                                  std::to_string(missing - 1) +
                                                  " more); the data directory is damaged");
  }

  // Publish. Nothing reads yet, but the same structures serve from here on.
  sort_oldest_first(orgs);
  sort_oldest_first(project_records);
  sort_oldest_first(token_records);

  organizations.reserve(orgs.size());
  for (const auto& o : orgs) (void)organizations.put(o->id, o);
  (void)all_organizations.exchange(std::make_shared<const organization_list>(orgs));

  projects.reserve(project_records.size());
  std::unordered_map<object_id, project_list> projects_of;
  for (const auto& p : project_records) {
    (void)projects.put(p->id, p);
    slugs.emplace(std::make_pair(p->organization, p->slug), p->id);
    projects_of[p->organization].push_back(p);
  }
  projects_by_organization.reserve(projects_of.size());
  for (auto& [org, list] : projects_of) {
    (void)projects_by_organization.put(org, std::make_shared<const project_list>(std::move(list)));
  }

  std::size_t admins = 0;
  tokens.reserve(token_records.size());
  tokens_by_digest.reserve(token_records.size());
  for (const auto& t : token_records) {
    (void)tokens.put(t->id, t);
    (void)tokens_by_digest.put(t->digest, t);
    if (t->scopes.has(scope::admin)) ++admins;
  }
  (void)all_tokens.exchange(std::make_shared<const token_list>(token_records));

  if (auto sealed = seal_plain_header_values(webhooks_of); !sealed) return sealed.error();

  // Published in the order every list is kept in, oldest first.
  webhooks.reserve(webhook_total);
  webhooks_by_project.reserve(project_records.size());
  for (webhook_list& list : webhooks_of) {
    if (list.empty()) continue;
    const object_id project_id = list.front()->project;
    for (const auto& w : list) (void)webhooks.put(w->id, w);
    sort_oldest_first(list);
    (void)webhooks_by_project.put(project_id,
                                  std::make_shared<const webhook_list>(std::move(list)));
  }

  organization_count = orgs.size();
  project_count = project_records.size();
  token_count = token_records.size();
  webhook_count = webhook_total;
  admin_token_count = admins;
  loaded = true;
  return catalog_counts{orgs.size(), project_records.size(), token_records.size(), webhook_total};
}

// ---------------------------------------------------------------- catalog

catalog::catalog(storage& store, catalog_options options)
    : impl_(std::make_unique<impl>(store, std::move(options))) {}

catalog::~catalog() {
  stop();
}

result<catalog_counts> catalog::load() {
  return impl_->load();
}

void catalog::start() {
  impl_->started = true;
  impl_->writer.start();
}

void catalog::stop() {
  impl_->writer.stop();
}

std::shared_ptr<const organization> catalog::find_organization(const object_id& id) const {
  return impl_->organizations.find(id);
}

std::vector<std::shared_ptr<const organization>> catalog::list_organizations() const {
  const auto list = impl_->all_organizations.load();
  return list ? *list : std::vector<std::shared_ptr<const organization>>{};
}

std::shared_ptr<const project> catalog::find_project(const object_id& id) const {
  return impl_->projects.find(id);
}

std::vector<std::shared_ptr<const project>> catalog::list_projects(const object_id& org) const {
  const auto list = impl_->projects_by_organization.find(org);
  return list ? *list : std::vector<std::shared_ptr<const project>>{};
}

std::shared_ptr<const api_token> catalog::find_token(const object_id& id) const {
  return impl_->tokens.find(id);
}

std::shared_ptr<const api_token> catalog::find_token_by_digest(const sha256_digest& digest) const {
  return impl_->tokens_by_digest.find(digest);
}

std::vector<std::shared_ptr<const api_token>> catalog::list_tokens() const {
  const auto list = impl_->all_tokens.load();
  return list ? *list : std::vector<std::shared_ptr<const api_token>>{};
}

std::shared_ptr<const webhook> catalog::find_webhook(const object_id& id) const {
  return impl_->webhooks.find(id);
}

std::shared_ptr<const webhook_list> catalog::list_webhooks(const object_id& project_id) const {
  auto list = impl_->webhooks_by_project.find(project_id);
  return list ? list : empty_webhook_list();
}

catalog_counts catalog::counts() const {
  return catalog_counts{impl_->organization_count.load(), impl_->project_count.load(),
                        impl_->token_count.load(), impl_->webhook_count.load()};
}

commit_stats catalog::stats() const {
  return impl_->writer.stats();
}

bool catalog::has_admin_token() const {
  return impl_->admin_token_count.load() > 0;
}

void catalog::create_organization(organization_input in,
                                  completion<std::shared_ptr<const organization>> done) {
  impl_->writer.submit(
      std::make_unique<create_organization_op>(*impl_, std::move(in), std::move(done)));
}

void catalog::create_project(object_id org, project_input in,
                             completion<std::shared_ptr<const project>> done) {
  impl_->writer.submit(
      std::make_unique<create_project_op>(*impl_, org, std::move(in), std::move(done)));
}

void catalog::create_token(token_input in, std::optional<std::string> secret,
                           completion<created_token> done) {
  // The random string is made here, on the caller's thread, to keep the writer's path short.
  std::string token = secret ? std::move(*secret) : generate_api_token();
  impl_->writer.submit(
      std::make_unique<create_token_op>(*impl_, std::move(in), std::move(token), std::move(done)));
}

void catalog::delete_token(object_id id, completion<void> done) {
  impl_->writer.submit(std::make_unique<delete_token_op>(*impl_, id, std::move(done)));
}

void catalog::create_webhook(object_id org, object_id project_id, webhook_input in,
                             completion<std::shared_ptr<const webhook>> done) {
  impl_->writer.submit(std::make_unique<create_webhook_op>(
      *impl_, org, project_id, std::move(in), generate_webhook_secret(), std::move(done)));
}

void catalog::update_webhook(object_id org, object_id project_id, object_id id, webhook_patch patch,
                             completion<std::shared_ptr<const webhook>> done) {
  impl_->writer.submit(std::make_unique<update_webhook_op>(*impl_, org, project_id, id,
                                                           std::move(patch), std::move(done)));
}

void catalog::delete_webhook(object_id org, object_id project_id, object_id id,
                             completion<void> done) {
  impl_->writer.submit(
      std::make_unique<delete_webhook_op>(*impl_, org, project_id, id, std::move(done)));
}

}  // namespace hookd
