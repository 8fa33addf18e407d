#pragma once
// An ordered set for keys that mostly arrive in increasing order and leave roughly oldest first:
// the pending deliveries' indexes, by webhook, by project and by age (delivery ids and creation
// times grow with time). A sorted vector whose erased slots stay behind as tombstones until they
// outnumber the live ones, so that
// - an insertion in order is an append (one out of order, a binary search and a move of the slots
//   after it),
// - an erasure is a binary search and a flag,
// - both amortized O(log n) with no allocation per key,
// where a std::set allocates, frees and rebalances a node for each key (bench/README.md, "the
// pending indexes without a node per key"). boost::container::flat_set erases by moving every
// later slot, which an index that loses its oldest key first would pay in full on each erasure.
//
// Iteration visits live keys only, in order. Not thread-safe; no iterator is offered, so nothing
// can be held across a change.

#include <algorithm>
#include <cstddef>
#include <optional>
#include <vector>

namespace hookd {

template <class Key>
class lazy_sorted_set {
 public:
  // False when `key` is already in the set.
  bool insert(const Key& key) {
    if (slots_.empty() || slots_.back().key < key) {
      slots_.push_back({key, true});
      ++live_;
      return true;
    }
    const auto pos = lower_bound(slots_, key);
    const auto index = static_cast<std::size_t>(pos - slots_.begin());
    if (pos != slots_.end() && !(key < pos->key)) {
      if (pos->live) return false;
      pos->live = true;  // erased earlier, back now
    } else {
      slots_.insert(pos, {key, true});
    }
    head_ = std::min(head_, index);
    ++live_;
    return true;
  }

  // False when `key` is not in the set.
  bool erase(const Key& key) {
    const auto pos = lower_bound(slots_, key);
    if (pos == slots_.end() || key < pos->key || !pos->live) return false;
    pos->live = false;
    --live_;
    if (live_ == 0) {
      slots_.clear();
      head_ = 0;
    } else if (slots_.size() - live_ > std::max<std::size_t>(live_, kMinTombstones)) {
      // Each compaction at least halves the slots, so its cost is spread over as many erasures
      // as it removes.
      std::erase_if(slots_, [](const slot& s) { return !s.live; });
      head_ = 0;
    } else {
      while (!slots_[head_].live) ++head_;  // a live slot lies beyond: live_ > 0
    }
    return true;
  }

  [[nodiscard]] bool contains(const Key& key) const {
    const auto pos = lower_bound(slots_, key);
    return pos != slots_.end() && !(key < pos->key) && pos->live;
  }

  [[nodiscard]] std::size_t size() const noexcept { return live_; }
  [[nodiscard]] bool empty() const noexcept { return live_ == 0; }

  // The smallest key; nullopt when empty. O(1).
  [[nodiscard]] std::optional<Key> first() const {
    if (live_ == 0) return std::nullopt;
    return slots_[head_].key;
  }

  // Calls f(key) for each key in increasing order while f returns true.
  template <class F>
  void for_each(F&& f) const {
    for (auto pos = slots_.begin() + static_cast<std::ptrdiff_t>(head_); pos != slots_.end();
         ++pos) {
      if (pos->live && !f(pos->key)) return;
    }
  }

  // Calls f(key) for each key below `bound` (every key when nullopt), in decreasing order, while
  // f returns true.
  template <class F>
  void for_each_below(const std::optional<Key>& bound, F&& f) const {
    auto pos = bound ? lower_bound(slots_, *bound) : slots_.end();
    while (pos != slots_.begin()) {
      --pos;
      if (pos->live && !f(pos->key)) return;
    }
  }

  // Slots held, live or not (tests: the tombstones are bounded).
  [[nodiscard]] std::size_t capacity_used() const noexcept { return slots_.size(); }

 private:
  // Below this many tombstones a set is never compacted: a small set that loses and gains a key
  // in turn would otherwise compact on every other erasure.
  static constexpr std::size_t kMinTombstones = 16;

  struct slot {
    Key key;
    bool live;
  };

  // The first slot whose key is not below `key`, live or not (`slots` is slots_, const or not).
  template <class Slots>
  static auto lower_bound(Slots& slots, const Key& key) {
    return std::lower_bound(slots.begin(), slots.end(), key,
                            [](const slot& s, const Key& k) { return s.key < k; });
  }

  std::vector<slot> slots_;
  std::size_t live_ = 0;
  // The first live slot while the set is not empty (erasures of the smallest keys move it on).
  std::size_t head_ = 0;
};

}  // namespace hookd
