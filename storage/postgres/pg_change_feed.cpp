#include "storage/postgres/pg_change_feed.hpp"

#include "core/common/thread_name.hpp"
#include "storage/postgres/connection.hpp"
#include "storage/postgres/pg_catalog_store.hpp"

#include <libpq-fe.h>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hookd::pg {

namespace {

constexpr int kBatch = 1000;  // changes rows read per query

struct entity_key {
  std::string entity;
  std::string id;
  friend auto operator<=>(const entity_key&, const entity_key&) = default;
};

template <class T>
std::shared_ptr<const T> only_id(const std::string& id) {
  auto v = std::make_shared<T>();
  if (auto parsed = object_id::parse(id)) v->id = *parsed;
  return v;
}

// Reads the changes past `after` (at most kBatch) and the current rows of their entities, in one
// snapshot. nullopt when there are none.
result<std::optional<std::pair<catalog_change, std::int64_t>>> read_batch(
    connection& c, std::int64_t after, const aes256gcm_key& key,
    const std::function<bool(std::int64_t)>& own) {
  std::optional<std::pair<catalog_change, std::int64_t>> out;
  auto done = in_transaction(c, [&]() -> result<void> {
    // REPEATABLE READ: the entity rows as of the same moment as the changes rows.
    if (auto iso = c.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"); !iso) {
      return iso.error();
    }
    auto rows = c.exec("SELECT seq, entity, id FROM changes WHERE seq > $1 ORDER BY seq LIMIT " +
                           std::to_string(kBatch),
                       {param::text(std::to_string(after))});
    if (!rows) return rows.error();
    if (rows->size() == 0) return {};
    // Each entity once, at the position of its latest change.
    std::map<entity_key, std::int64_t> latest;
    std::int64_t last = after;
    for (int i = 0; i < rows->size(); ++i) {
      last = std::stoll(std::string(rows->text(i, 0)));
      latest[{std::string(rows->text(i, 1)), std::string(rows->text(i, 2))}] = last;
    }
    if (own) std::erase_if(latest, [&](const auto& entry) { return own(entry.second); });
    std::map<std::string, std::vector<std::string>> ids_by_entity;
    for (const auto& [k, seq] : latest) ids_by_entity[k.entity].push_back(k.id);
    std::map<entity_key, catalog_change::entity> found;
    catalog_load_sink sink{[&](std::shared_ptr<organization> v) {
                             found[{"organization", v->id.to_string()}] = v;
                           },
                           [&](std::shared_ptr<project> v) {
                             found[{"project", v->id.to_string()}] = v;
                           },
                           [&](std::shared_ptr<api_token> v) {
                             found[{"token", v->id.to_string()}] = v;
                           },
                           [&](std::shared_ptr<webhook> v) {
                             found[{"webhook", v->id.to_string()}] = v;
                           }};
    for (const auto& [entity, ids] : ids_by_entity) {
      if (auto read = read_entities(c, entity, ids, sink, key); !read) return read.error();
    }
    std::vector<std::pair<std::int64_t, entity_key>> order;
    for (const auto& [k, seq] : latest) order.emplace_back(seq, k);
    std::sort(order.begin(), order.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    catalog_change change;
    for (const auto& [seq, k] : order) {
      if (const auto it = found.find(k); it != found.end()) {
        change.ops.push_back({catalog_change::kind::put, it->second});
      } else if (k.entity == "organization") {
        change.erase(only_id<organization>(k.id));
      } else if (k.entity == "project") {
        change.erase(only_id<project>(k.id));
      } else if (k.entity == "token") {
        change.erase(only_id<api_token>(k.id));
      } else {
        change.erase(only_id<webhook>(k.id));
      }
    }
    out.emplace(std::move(change), last);
    return {};
  });
  if (!done) return done.error();
  return out;
}

}  // namespace

pg_change_feed::pg_change_feed(change_feed_options options)
    : options_(std::move(options)), last_seq_(options_.after_seq) {
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) wake_[0] = wake_[1] = -1;
  thread_ = std::thread([this] {
    set_thread_name("pg-feed");
    run();
  });
}

pg_change_feed::~pg_change_feed() {
  stopping_.store(true, std::memory_order_release);
  if (wake_[1] >= 0) (void)::write(wake_[1], "x", 1);
  if (thread_.joinable()) thread_.join();
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

void pg_change_feed::run() {
  using namespace std::chrono_literals;
  std::optional<connection> conn;
  auto backoff = 100ms;
  bool reported_down = false;
  // Sleeps up to `d` unless the destructor wakes the thread; false when stopping.
  auto pause = [&](std::chrono::milliseconds d) {
    pollfd p{wake_[0], POLLIN, 0};
    (void)::poll(&p, 1, static_cast<int>(d.count()));
    return !stopping_.load(std::memory_order_acquire);
  };
  // Reported once per outage.
  auto fail = [&](const problem& p) {
    conn.reset();
    if (!reported_down && options_.on_status) options_.on_status(&p);
    reported_down = true;
  };

  while (!stopping_.load(std::memory_order_acquire)) {
    if (!conn) {
      auto opened = connection::open(options_.uri);
      if (!opened) {
        fail(opened.error());
        if (!pause(backoff)) return;
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
        continue;
      }
      // The name tells the feed's session apart in pg_stat_activity.
      if (auto named = opened->exec("SET application_name = 'hookd-change-feed'"); !named) {
        fail(named.error());
        if (!pause(backoff)) return;
        continue;
      }
      if (auto listened = opened->exec("LISTEN hookd_changes"); !listened) {
        fail(listened.error());
        if (!pause(backoff)) return;
        continue;
      }
      opened->set_auto_reconnect(false);  // a new session would not be listening
      conn.emplace(std::move(*opened));
      backoff = 100ms;
    }
    // Catch up: everything past the last seq, in batches.
    bool caught_up = false;
    while (!caught_up && !stopping_.load(std::memory_order_acquire)) {
      auto batch = read_batch(*conn, last_seq_.load(std::memory_order_acquire), options_.master_key,
                              options_.own);
      if (!batch) {
        fail(batch.error());
        break;
      }
      if (!*batch) {
        caught_up = true;
        break;
      }
      auto [change, last] = std::move(**batch);
      if (options_.on_change) options_.on_change(std::move(change), last);
      last_seq_.store(last, std::memory_order_release);
    }
    if (!caught_up) {
      if (!conn && !pause(backoff)) return;
      continue;
    }
    if (reported_down) {
      reported_down = false;
      if (options_.on_status) options_.on_status(nullptr);
    }
    // Wait for a notification (or the destructor); the payload is only a hint: the next
    // catch-up reads from the last seq seen.
    PGconn* raw = conn->native();
    pollfd fds[2] = {{PQsocket(raw), POLLIN, 0}, {wake_[0], POLLIN, 0}};
    bool notified = false;
    while (!notified && !stopping_.load(std::memory_order_acquire)) {
      // Notifications that arrived during the catch-up's statements sit in libpq's buffer
      // already, where poll() does not see them: look there first.
      if (PQconsumeInput(raw) == 0) {
        fail(storage_problem("change feed", PQerrorMessage(raw)));
        break;
      }
      while (PGnotify* n = PQnotifies(raw)) {
        notified = true;
        PQfreemem(n);
      }
      if (!notified) (void)::poll(fds, 2, 1000);
    }
  }
}

}  // namespace hookd::pg
