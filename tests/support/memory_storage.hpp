#pragma once
// An in-memory `storage` for core tests, with fault injection.
//
// Why not RocksDB here: core tests link hookd_core only, which must not depend on RocksDB (the
// core is pure; see STYLE.md), and an in-memory store lets a test fail exactly the write it
// chooses, hold a write open, or read the raw bytes that were stored. The real RocksDB adapter
// has its own tests in tests/storage.
//
// Thread safety: all members may be called from any thread.

#include "core/durable/storage.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace hookd::testing {

class memory_storage final : public storage {
 public:
  // ---- fault injection and observation
  void fail_next_write() {
    std::lock_guard lock(mutex_);
    fail_next_ = true;
  }
  void fail_all_writes(bool on) {
    std::lock_guard lock(mutex_);
    fail_all_ = on;
  }
  // Each write() sleeps this long first, like an fsync.
  void set_write_delay(std::chrono::milliseconds d) {
    std::lock_guard lock(mutex_);
    delay_ = d;
  }
  // Runs at the start of each write(), outside the lock (e.g. to hold the writer in a write).
  // Runs at the start of each scan_range(), outside the lock, once per hook set (it clears
  // itself first): to change the store between two reads of one request.
  void set_before_scan_range(std::function<void()> hook) {
    std::lock_guard lock(mutex_);
    before_scan_range_ = std::move(hook);
  }
  void set_before_write(std::function<void()> hook) {
    std::lock_guard lock(mutex_);
    before_write_ = std::move(hook);
  }
  // Runs in each reclaim(), outside the lock, with its stop flag (to stand for a long one).
  void set_on_reclaim(std::function<void(std::atomic<bool>* stop)> hook) {
    std::lock_guard lock(mutex_);
    on_reclaim_ = std::move(hook);
  }
  // Sets or replaces a record outside any batch, to plant damaged data.
  void put_raw(table t, std::string key, std::string value) {
    std::lock_guard lock(mutex_);
    tables_[index(t)][std::move(key)] = std::move(value);
  }
  void erase_raw(table t, const std::string& key) {
    std::lock_guard lock(mutex_);
    tables_[index(t)].erase(key);
  }
  std::map<std::string, std::string> records(table t) const {
    std::lock_guard lock(mutex_);
    return tables_[index(t)];
  }
  // Every key and value of every table, concatenated: what a dump of the data dir would show.
  std::string dump() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& t : tables_) {
      for (const auto& [k, v] : t) {
        out.append(k).append("\n").append(v).append("\n");
      }
    }
    return out;
  }
  std::vector<write_batch> batches() const {  // every successful batch, in order
    std::lock_guard lock(mutex_);
    return history_;
  }

  // ---- storage
  result<void> write(const write_batch& batch) override {
    std::function<void()> hook;
    std::chrono::milliseconds delay{};
    {
      std::lock_guard lock(mutex_);
      hook = before_write_;
      delay = delay_;
    }
    if (hook) hook();
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    std::lock_guard lock(mutex_);
    if (fail_all_ || fail_next_) {
      fail_next_ = false;
      ++stats_.failures;
      return make_problem(error_kind::storage_failure, "injected write failure");
    }
    // Refused before anything is applied, as the RocksDB store does: the batch stays atomic.
    for (const auto& op : batch.ops) {
      if (index(op.where) >= tables_.size()) {
        ++stats_.failures;
        return make_problem(error_kind::internal, "write batch names an unknown table");
      }
      if (op.range_end && op.key > *op.range_end) {
        ++stats_.failures;
        return make_problem(error_kind::internal,
                            "write batch erases a range whose end comes before its beginning");
      }
    }
    for (const auto& op : batch.ops) {
      auto& t = tables_[index(op.where)];
      if (op.range_end) {
        t.erase(t.lower_bound(op.key), t.lower_bound(*op.range_end));
      } else if (op.value) {
        t[op.key] = *op.value;
      } else {
        t.erase(op.key);
      }
    }
    ++stats_.batches;
    ++stats_.syncs;
    stats_.records += batch.ops.size();
    history_.push_back(batch);
    return {};
  }

  result<void> scan(table t, std::string_view prefix, const scan_visitor& visit) const override {
    std::vector<std::pair<std::string, std::string>> matching;
    {
      std::lock_guard lock(mutex_);
      const auto& m = tables_[index(t)];
      for (auto it = m.lower_bound(std::string(prefix)); it != m.end(); ++it) {
        if (!std::string_view(it->first).starts_with(prefix)) break;
        matching.emplace_back(*it);
      }
    }
    for (const auto& [k, v] : matching) {
      if (!visit(k, v)) break;
    }
    return {};
  }

  // Copies the range out and visits it outside the lock, so that a visitor may call the store.
  result<void> scan_range(table t, std::string_view lower, std::string_view upper, scan_order order,
                          const scan_visitor& visit) const override {
    std::function<void()> hook;
    {
      std::lock_guard lock(mutex_);
      hook = std::move(before_scan_range_);
      before_scan_range_ = nullptr;
    }
    if (hook) hook();
    std::vector<std::pair<std::string, std::string>> matching;
    {
      std::lock_guard lock(mutex_);
      const auto& m = tables_[index(t)];
      const auto first = m.lower_bound(std::string(lower));
      const auto last = upper.empty() ? m.end() : m.lower_bound(std::string(upper));
      if (upper.empty() || lower < upper) matching.assign(first, last);
    }
    if (order == scan_order::descending) std::reverse(matching.begin(), matching.end());
    for (const auto& [k, v] : matching) {
      if (!visit(k, v)) break;
    }
    return {};
  }

  result<std::optional<std::string>> get(table t, std::string_view key) const override {
    std::lock_guard lock(mutex_);
    const auto& m = tables_[index(t)];
    const auto it = m.find(std::string(key));
    if (it == m.end()) return std::optional<std::string>{};
    return std::optional<std::string>{it->second};
  }

  storage_stats stats() const override {
    std::lock_guard lock(mutex_);
    return stats_;
  }

  // Exact, where RocksDB estimates: the bytes of the keys and values, and their number.
  table_size size(table t) const override {
    std::lock_guard lock(mutex_);
    table_size out;
    for (const auto& [k, v] : tables_[index(t)]) {
      out.bytes += k.size() + v.size();
      ++out.keys;
    }
    return out;
  }
  // An erase frees its memory at once: reclaim() only runs the hook; compact() is the default.
  result<void> reclaim(table t, std::string_view begin, std::string_view end,
                       std::atomic<bool>* stop) override {
    (void)t;
    (void)begin;
    (void)end;
    std::function<void(std::atomic<bool>*)> hook;
    {
      std::lock_guard lock(mutex_);
      hook = on_reclaim_;
    }
    if (hook) hook(stop);
    return {};
  }

 private:
  static std::size_t index(table t) { return static_cast<std::size_t>(t); }

  mutable std::mutex mutex_;
  std::array<std::map<std::string, std::string>, kTableCount> tables_;
  std::vector<write_batch> history_;
  storage_stats stats_;
  bool fail_next_ = false;
  bool fail_all_ = false;
  std::chrono::milliseconds delay_{};
  std::function<void()> before_write_;
  std::function<void(std::atomic<bool>*)> on_reclaim_;
  mutable std::function<void()> before_scan_range_;
};

}  // namespace hookd::testing
