// The embedded catalog store (kv_catalog_store.hpp): commit() maps typed changes onto records
// and index entries; load() is the catalog's start-up read of them.
//
// Every change writes its entity and its index entries (codec.hpp) in one batch. load() reads the
// four entity tables, checks references (a project's organization, a webhook's project and
// organization) and then VERIFIES the index table against the records: a missing, extra or wrong
// "ps", "pw" or "td" entry fails the start with the key named, since it means the data was not
// written by this code or was damaged. The master key is checked by opening one sealed record
// (kMasterKeyCheckKey), and the webhooks' signing secrets stay sealed until first used.

#include "core/catalog/kv_catalog_store.hpp"

#include "core/catalog/codec.hpp"

#if defined(__linux__)
#include <sched.h>
#endif

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hookd {

namespace {

std::string id_key(const object_id& id) {
  return std::string(id.binary());
}

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
                                 std::vector<std::shared_ptr<T>>& out) {
  struct batch {
    std::string bytes;  // keys and values back to back
    struct record {
      std::size_t offset, key_size, value_size;
    };
    std::vector<record> records;
    std::vector<std::shared_ptr<T>> decoded;
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
      b.decoded.push_back(std::make_shared<T>(std::move(*decoded)));
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

// A "pw" index entry's key against the entry webhook `w` implies, in key order (project id, then
// webhook id, each compared by its bytes as object_id is): < 0 when w's entry comes first.
// `key` must be kProjectWebhookPrefix and 2 * 12 id bytes long (is_project_webhook_key).
int compare_project_webhook(const webhook& w, std::string_view key) noexcept {
  const char* rest = key.data() + kProjectWebhookPrefix.size();
  if (const int c = std::memcmp(w.project.bytes().data(), rest, object_id::kSize); c != 0) {
    return c;
  }
  return std::memcmp(w.id.bytes().data(), rest + object_id::kSize, object_id::kSize);
}
bool is_project_webhook_key(std::string_view key) noexcept {
  return key.size() == kProjectWebhookPrefix.size() + 2 * object_id::kSize;
}

// Before header values were sealed (see codec.hpp), records held them in plain text. The first
// start of a version that seals them rewrites every webhook with custom headers, in one batch
// with a mark in the meta table that it is done, and compacts the table so that the plain values
// leave the disk too; later starts see the mark and write nothing. Rewriting a record that is
// sealed already is harmless, so records need no sign of their own. A store without a single
// webhook gets the mark at once: whatever it holds later is written sealed. Without it, the
// first restart of every new data dir rewrote and compacted all its webhooks with headers, a
// long start with many of them and one that could fail on a nearly full disk (the compaction
// needs room for a copy of the table).
result<void> seal_plain_header_values(
    storage& store, const aes256gcm_key& master_key,
    const std::vector<std::vector<std::shared_ptr<webhook>>>& lists) {
  auto done = store.get(table::meta, kHeadersSealedKey);
  if (!done) return done.error();
  if (*done) return {};
  if (std::all_of(lists.begin(), lists.end(), [](const auto& list) { return list.empty(); })) {
    write_batch mark;
    mark.put(table::meta, std::string(kHeadersSealedKey), "1");
    return store.write(mark);
  }
  write_batch batch;
  for (const auto& list : lists) {
    for (const auto& w : list) {
      if (!w->headers.empty()) batch.put(table::webhooks, id_key(w->id), encode(*w, master_key));
    }
  }
  // No webhook has headers: nothing to rewrite, and no mark (a store that never had any costs no
  // write at start-up; the first load that finds some rewrites them once).
  if (batch.empty()) return {};
  batch.put(table::meta, std::string(kHeadersSealedKey), "1");
  if (auto written = store.write(batch); !written) return written.error();
  return store.compact(table::webhooks);
}

// The master key's check (kMasterKeyCheckKey): true when the meta table has it and it opens,
// false when it has none yet (a data directory written before there was one), a problem when it
// does not open, which fails the start as a webhook's secret that does not open used to.
result<bool> check_master_key(const storage& store, const aes256gcm_key& master_key) {
  auto check = store.get(table::meta, kMasterKeyCheckKey);
  if (!check) return check.error();
  if (!*check) return false;
  const std::optional<std::string> text = master_key.open(**check, kMasterKeyCheckKey);
  if (!text || *text != kMasterKeyCheckText) {
    return make_problem(error_kind::internal,
                        "Cannot load the meta record \"" + std::string(kMasterKeyCheckKey) +
                            "\": it does not open with the master key (a different master key "
                            "than the one this data was written with, or a damaged record)");
  }
  return true;
}

// Written once every webhook's secret has opened with the master key (the check it stands for
// from then on), or into a store that has none: start-up then opens no secret.
result<void> write_master_key_check(storage& store, const aes256gcm_key& master_key) {
  write_batch batch;
  batch.put(table::meta, std::string(kMasterKeyCheckKey),
            master_key.seal(kMasterKeyCheckText, kMasterKeyCheckKey));
  return store.write(batch);
}

}  // namespace

kv_catalog_store::kv_catalog_store(storage& store, aes256gcm_key master_key)
    : store_(store), master_key_(std::move(master_key)) {}

write_batch kv_catalog_store::batch_of(const catalog_change& change) const {
  write_batch batch;
  for (const catalog_change::op& op : change.ops) {
    const bool put = op.what == catalog_change::kind::put;
    std::visit(
        [&](const auto& entity) {
          using T = std::remove_const_t<typename std::decay_t<decltype(entity)>::element_type>;
          const T& e = *entity;
          if constexpr (std::is_same_v<T, organization>) {
            if (put) {
              batch.put(table::organizations, id_key(e.id), encode(e));
            } else {
              batch.erase(table::organizations, id_key(e.id));
            }
          } else if constexpr (std::is_same_v<T, project>) {
            if (put) {
              batch.put(table::projects, id_key(e.id), encode(e));
              batch.put(table::index, project_slug_key(e.organization, e.slug), id_key(e.id));
            } else {
              batch.erase(table::projects, id_key(e.id));
              batch.erase(table::index, project_slug_key(e.organization, e.slug));
            }
          } else if constexpr (std::is_same_v<T, api_token>) {
            if (put) {
              batch.put(table::tokens, id_key(e.id), encode(e));
              batch.put(table::index, token_digest_key(e.digest), id_key(e.id));
            } else {
              batch.erase(table::tokens, id_key(e.id));
              batch.erase(table::index, token_digest_key(e.digest));
            }
          } else {
            static_assert(std::is_same_v<T, webhook>);
            if (put) {
              batch.put(table::webhooks, id_key(e.id), encode(e, master_key_));
              batch.put(table::index, project_webhook_key(e.project, e.id), std::string{});
            } else {
              batch.erase(table::webhooks, id_key(e.id));
              batch.erase(table::index, project_webhook_key(e.project, e.id));
            }
          }
        },
        op.value);
  }
  return batch;
}

result<void> kv_catalog_store::commit(const catalog_change& change) {
  const write_batch batch = batch_of(change);
  if (batch.empty()) return {};
  if (auto written = store_.write(batch); !written) {
    return make_problem(error_kind::storage_failure, written.error().detail);
  }
  return {};
}

result<void> kv_catalog_store::load(const catalog_load_sink& sink, unsigned threads) {
  std::vector<std::shared_ptr<organization>> orgs;
  std::vector<std::shared_ptr<project>> project_records;
  std::vector<std::shared_ptr<api_token>> token_records;
  std::vector<std::shared_ptr<webhook>> webhook_records;

  auto loaded_orgs = load_table(
      store_, table::organizations, decode_organization,
      [&](organization o) { orgs.push_back(std::make_shared<organization>(std::move(o))); });
  if (!loaded_orgs) return loaded_orgs.error();
  auto loaded_projects = load_table(store_, table::projects, decode_project, [&](project p) {
    project_records.push_back(std::make_shared<project>(std::move(p)));
  });
  if (!loaded_projects) return loaded_projects.error();
  auto loaded_tokens = load_table(store_, table::tokens, decode_token, [&](api_token t) {
    token_records.push_back(std::make_shared<api_token>(std::move(t)));
  });
  if (!loaded_tokens) return loaded_tokens.error();
  // With the master key checked by its check record, the signing secrets stay sealed until
  // used (webhook_secret); without one, each is opened here, which checks the key the way it was
  // checked before there was a record, and the record is written below.
  const result<bool> key_checked = check_master_key(store_, master_key_);
  if (!key_checked) return key_checked.error();
  const auto key = std::make_shared<const aes256gcm_key>(master_key_);
  const auto decode_sealed = [&key, lazily = *key_checked](std::string_view k, std::string_view v) {
    return lazily ? decode_webhook_lazily(k, v, key) : decode_webhook(k, v, *key);
  };
  if (threads == 0) threads = std::min(usable_cpus(), 8u);
  auto loaded_webhooks =
      threads > 1
          ? load_table_parallel(store_, table::webhooks, threads, decode_sealed, webhook_records)
          : load_table(store_, table::webhooks, decode_sealed, [&](webhook w) {
              webhook_records.push_back(std::make_shared<webhook>(std::move(w)));
            });
  if (!loaded_webhooks) return loaded_webhooks.error();

  // References, and the index entries the records imply. The "ps" and "td" entries (one per
  // project or token) go into a map of expected entries. The "pw" entries, one per webhook, are
  // checked by a merge instead, which costs no string per webhook: the projects come from their
  // scan in id order and each one's webhooks, gathered from theirs, in id order too, which is the
  // key order of "pw" + project id + webhook id.
  std::unordered_map<object_id, std::shared_ptr<organization>> org_by_id;
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
  std::vector<std::vector<std::shared_ptr<webhook>>> webhooks_of(project_records.size());
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
    // Compared as raw bytes, without making ids: this runs once per webhook at start-up.
    const bool entry = is_project_webhook_key(k);
    const webhook* w = expected_webhook();
    if (entry) {
      for (; w != nullptr && compare_project_webhook(*w, k) < 0; w = expected_webhook()) {
        note_missing(*w);
        ++next;
      }
    }
    if (!entry || w == nullptr || compare_project_webhook(*w, k) != 0) {
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
    auto scanned = store_.scan(table::index, prefix, [&](std::string_view k, std::string_view v) {
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

  if (auto sealed = seal_plain_header_values(store_, master_key_, webhooks_of); !sealed) {
    return sealed.error();
  }
  if (!*key_checked) {
    if (auto written = write_master_key_check(store_, master_key_); !written) {
      return written.error();
    }
  }

  // Handed over, each released here as it goes, so that no entity is held twice for long.
  for (auto& o : orgs) sink.organization(std::move(o));
  orgs = {};
  for (auto& p : project_records) sink.project(std::move(p));
  project_records = {};
  for (auto& t : token_records) sink.token(std::move(t));
  token_records = {};
  for (auto& list : webhooks_of) {
    for (auto& w : list) sink.webhook(std::move(w));
    list = {};
  }
  return {};
}

}  // namespace hookd
