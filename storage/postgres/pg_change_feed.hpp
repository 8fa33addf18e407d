#pragma once
// How a node learns of the catalog changes other nodes commit (docs/cluster.md, "The change
// feed"). A thread of its own, with a connection of its own, LISTENs on hookd_changes; at start,
// on every notification and after every reconnect it reads the `changes` rows past the last seq
// it saw, re-reads those entities by id (in one snapshot) and calls back with one catalog_change:
// a put with the current row of each entity that has one, an erase (carrying only the id) for
// each that has none any more, in the order of their latest change. A lost connection is
// reported through the status callback and retried, every 100 ms growing to every 2 s, until it
// is back; what was committed meanwhile is read on reconnect.

#include "core/catalog/catalog_store.hpp"
#include "core/common/crypto.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace hookd::pg {

struct change_feed_options {
  std::string uri;
  aes256gcm_key master_key;
  // Changes up to this seq are known already (pg_catalog_store::loaded_seq()).
  std::int64_t after_seq = 0;
  // Optional: true for a seq this node committed itself (pg_catalog_store::committed_here). An
  // entity whose latest change in a batch is one of those is left out of the batch: the row read
  // is the node's own version (or one a later change replaces, which a later batch brings).
  std::function<bool(std::int64_t seq)> own;
  // Called on the feed's thread with each batch of changes and the last seq it covers (the batch
  // may hold no op when every change in it was the node's own).
  std::function<void(catalog_change, std::int64_t last_seq)> on_change;
  // Called on the feed's thread when the feed loses its connection or cannot read (with the
  // storage_failure), and with null once it is connected and caught up again.
  std::function<void(const problem* failure)> on_status;
};

class pg_change_feed {
 public:
  explicit pg_change_feed(change_feed_options options);
  pg_change_feed(const pg_change_feed&) = delete;
  pg_change_feed& operator=(const pg_change_feed&) = delete;
  ~pg_change_feed();  // stops the thread and waits for it

  // The last seq handed to on_change (or after_seq).
  std::int64_t last_seq() const noexcept { return last_seq_.load(std::memory_order_acquire); }

 private:
  void run();

  change_feed_options options_;
  std::atomic<std::int64_t> last_seq_;
  std::atomic<bool> stopping_{false};
  int wake_[2] = {-1, -1};  // a pipe that ends the thread's wait
  std::thread thread_;
};

}  // namespace hookd::pg
