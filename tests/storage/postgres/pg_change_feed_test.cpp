// pg_change_feed against a private PostgreSQL server (tests/support/pg_cluster.hpp): two stores
// on one database, as two nodes; what one commits reaches the other's feed, also across a lost
// connection and a server restart.

#include "storage/postgres/pg_change_feed.hpp"
#include "storage/postgres/pg_catalog_store.hpp"
#include "tests/support/pg_cluster.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>

namespace hookd::pg {
namespace {

using hookd::testing::shared_pg_cluster;
using clock_type = std::chrono::steady_clock;

timestamp at(std::int64_t ms) {
  return timestamp(std::chrono::milliseconds(ms));
}

// What a feed called back with.
struct received {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::pair<catalog_change, clock_type::time_point>> changes;
  int failures = 0;
  int recoveries = 0;

  change_feed_options options(std::string uri, const aes256gcm_key& key, std::int64_t after) {
    change_feed_options o{std::move(uri), key, after, {}, {}};
    o.on_change = [this](catalog_change c, std::int64_t) {
      std::lock_guard l(mutex);
      changes.emplace_back(std::move(c), clock_type::now());
      changed.notify_all();
    };
    o.on_status = [this](const problem* failure) {
      std::lock_guard l(mutex);
      ++(failure != nullptr ? failures : recoveries);
      changed.notify_all();
    };
    return o;
  }

  // Waits (10 s at most) until `done` holds; false when it never did.
  template <class Pred>
  bool wait(Pred done) {
    std::unique_lock l(mutex);
    return changed.wait_for(l, std::chrono::seconds(10), [&] { return done(*this); });
  }

  // Whether a change received holds `what` (put or erase) of `id`. Called with `mutex` held.
  bool has(catalog_change::kind what, const object_id& id) const {
    for (const auto& [c, when] : changes) {
      for (const auto& op : c.ops) {
        if (op.what == what && std::visit([](const auto& p) { return p->id; }, op.value) == id) {
          return true;
        }
      }
    }
    return false;
  }
  // Waits until a change holding `what` of `id` arrived; the time it arrived, or nullopt.
  std::optional<clock_type::time_point> wait_for(catalog_change::kind what, const object_id& id) {
    std::unique_lock l(mutex);
    if (!changed.wait_for(l, std::chrono::seconds(10), [&] { return has(what, id); })) {
      return std::nullopt;
    }
    for (const auto& [c, when] : changes) {
      for (const auto& op : c.ops) {
        if (op.what == what && std::visit([](const auto& p) { return p->id; }, op.value) == id) {
          return when;
        }
      }
    }
    return std::nullopt;
  }
  // Waits until on_status reported `n` failures and then as many recoveries.
  bool wait_recovered(int n) {
    std::unique_lock l(mutex);
    return changed.wait_for(l, std::chrono::seconds(20),
                            [&] { return failures >= n && recoveries >= n; });
  }
};

constexpr auto put = catalog_change::kind::put;
constexpr auto erased = catalog_change::kind::erase;

class pg_change_feed_test : public ::testing::Test {
 protected:
  void SetUp() override {
    HOOKD_REQUIRE_PG();
    database_ = shared_pg_cluster()->create_database();
    uri_ = shared_pg_cluster()->uri(database_);
  }
  std::unique_ptr<pg_catalog_store> open_store() {
    auto s = pg_catalog_store::open(uri_, key_);
    if (!s) throw std::runtime_error(s.error().detail);
    return std::move(*s);
  }
  std::shared_ptr<const organization> make_org(std::string name) {
    auto o = std::make_shared<organization>();
    o->id = ids_.next();
    o->name = std::move(name);
    o->created_at = at(1'700'000'000'000);
    o->updated_at = at(1'700'000'000'000);
    return o;
  }
  void commit_org(pg_catalog_store& store, const std::shared_ptr<const organization>& o) {
    catalog_change c;
    c.put(o);
    auto r = store.commit(c);
    ASSERT_TRUE(r) << r.error().detail;
  }

  object_id_generator ids_;
  aes256gcm_key key_ = aes256gcm_key::generate();
  std::string database_;
  std::string uri_;
};

TEST_F(pg_change_feed_test, a_commit_on_one_node_reaches_the_other_nodes_feed) {
  auto a = open_store();
  auto b = open_store();
  auto before = make_org("before the feed");
  commit_org(*a, before);
  catalog_load_sink ignore{[](auto) {}, [](auto) {}, [](auto) {},
                           [](auto) {
                           }};
  ASSERT_TRUE(b->load(ignore, 1));
  EXPECT_GT(b->loaded_seq(), 0);

  received got;
  pg_change_feed feed(got.options(uri_, key_, b->loaded_seq()));

  std::vector<double> latencies_ms;
  std::shared_ptr<const organization> last;
  for (int i = 0; i < 20; ++i) {
    last = make_org("org " + std::to_string(i));
    commit_org(*a, last);
    const auto committed = clock_type::now();
    const auto arrived = got.wait_for(put, last->id);
    ASSERT_TRUE(arrived) << "change " << i << " never reached the feed";
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(*arrived - committed).count());
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  std::printf("change feed latency, commit on A to callback on B: median %.2f ms, max %.2f ms\n",
              latencies_ms[latencies_ms.size() / 2], latencies_ms.back());
  {
    std::lock_guard l(got.mutex);
    EXPECT_FALSE(got.has(put, before->id)) << "loaded before the feed started";
    // The version handed over is the row as committed, secrets opened.
    const auto& op = got.changes.back().first.ops.back();
    EXPECT_EQ(std::get<std::shared_ptr<const organization>>(op.value)->name, "org 19");
  }

  // An erase arrives as an erase carrying the id.
  catalog_change erase;
  erase.erase(last);
  ASSERT_TRUE(a->commit(erase));
  EXPECT_TRUE(got.wait_for(erased, last->id));
  const std::int64_t newest =
      std::stoll(shared_pg_cluster()->query_value(database_, "SELECT max(seq) FROM changes"));
  // The feed hands a change over, then moves its last seq past it: wait for the second.
  const auto until = clock_type::now() + std::chrono::seconds(10);
  while (feed.last_seq() != newest && clock_type::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(feed.last_seq(), newest);
}

TEST_F(pg_change_feed_test, a_webhook_arrives_with_its_secrets_opened) {
  auto a = open_store();
  received got;
  pg_change_feed feed(got.options(uri_, key_, 0));
  auto org = make_org("Acme");
  auto p = std::make_shared<project>();
  p->id = ids_.next();
  p->organization = org->id;
  p->name = "Shop";
  p->slug = "shop";
  auto w = std::make_shared<webhook>();
  w->id = ids_.next();
  w->organization = org->id;
  w->project = p->id;
  w->name = "orders";
  w->url = "https://receiver.example/";
  w->headers = {{"Authorization", "Bearer x"}};
  w->events = {"*"};
  w->secret = generate_webhook_secret();
  catalog_change c;
  c.put(org);
  c.put(std::shared_ptr<const project>(p));
  c.put(std::shared_ptr<const webhook>(w));
  ASSERT_TRUE(a->commit(c));
  ASSERT_TRUE(got.wait_for(put, w->id));
  std::lock_guard l(got.mutex);
  const auto& ops = got.changes.back().first.ops;
  ASSERT_EQ(ops.size(), 3u);
  // In the order of the change: organization, project, webhook.
  EXPECT_EQ(ops[0].value.index(), 0u);
  EXPECT_EQ(ops[1].value.index(), 1u);
  const auto& got_webhook = *std::get<std::shared_ptr<const webhook>>(ops[2].value);
  EXPECT_EQ(got_webhook.secret, w->secret);
  EXPECT_EQ(got_webhook.headers, w->headers);
}

TEST_F(pg_change_feed_test,
       a_terminated_listener_reconnects_and_catches_up_with_what_was_committed_meanwhile) {
  auto a = open_store();
  received got;
  pg_change_feed feed(got.options(uri_, key_, 0));
  auto first = make_org("first");
  commit_org(*a, first);
  ASSERT_TRUE(got.wait_for(put, first->id));

  // The listener's backend is terminated and, in the same transaction, an organization is written
  // with plain SQL: its notification goes out at commit, before the feed can have listened again,
  // so only the catch-up after the reconnect can find it.
  const std::string id = ids_.next().to_string();
  shared_pg_cluster()->execute(
      database_,
      "BEGIN;"
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
      " WHERE application_name = 'hookd-change-feed' AND datname = current_database();"
      "INSERT INTO organizations VALUES ('" +
          id +
          "', 'meanwhile', now(), now());"
          "INSERT INTO changes (entity, id) VALUES ('organization', '" +
          id +
          "');"
          "COMMIT");
  EXPECT_TRUE(got.wait_for(put, *object_id::parse(id))) << "not caught up after the reconnect";
  EXPECT_TRUE(got.wait_recovered(1));

  // And it listens again.
  auto after = make_org("after");
  commit_org(*a, after);
  EXPECT_TRUE(got.wait_for(put, after->id));
}

TEST_F(pg_change_feed_test, a_restarted_server_fails_commits_until_it_is_back_then_both_recover) {
  auto a = open_store();
  received got;
  pg_change_feed feed(got.options(uri_, key_, 0));
  auto first = make_org("first");
  commit_org(*a, first);
  ASSERT_TRUE(got.wait_for(put, first->id));

  shared_pg_cluster()->stop();
  catalog_change while_down;
  while_down.put(make_org("lost"));
  auto refused = a->commit(while_down);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, error_kind::storage_failure);
  {
    std::unique_lock l(got.mutex);
    EXPECT_TRUE(got.changed.wait_for(l, std::chrono::seconds(10), [&] { return got.failures > 0; }))
        << "the feed did not report the lost server";
  }

  shared_pg_cluster()->start();
  auto back = make_org("back");
  catalog_change c;
  c.put(back);
  auto r = a->commit(c);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_TRUE(got.wait_for(put, back->id));
  EXPECT_TRUE(got.wait_recovered(1));
  EXPECT_EQ(shared_pg_cluster()->query_value(
                database_, "SELECT count(*) FROM organizations WHERE name = 'lost'"),
            "0");
}

// A node's feed passes over the changes its own store committed (its index holds them, or a newer
// version) and hands it the others'.
TEST_F(pg_change_feed_test, a_nodes_own_commits_are_left_out_of_its_feed) {
  auto a = open_store();
  auto b = open_store();
  received got;
  auto options = got.options(uri_, key_, 0);
  options.own = [store = a.get()](std::int64_t seq) {
    return store->committed_here(seq);
  };
  pg_change_feed feed(std::move(options));
  auto mine = make_org("mine"), theirs = make_org("theirs");
  commit_org(*a, mine);
  commit_org(*b, theirs);
  ASSERT_TRUE(got.wait_for(put, theirs->id));
  std::lock_guard l(got.mutex);
  EXPECT_FALSE(got.has(put, mine->id));
  // A fresh database: "mine" is seq 1, "theirs" seq 2.
  EXPECT_TRUE(a->committed_here(1));
  EXPECT_FALSE(a->committed_here(2));
  EXPECT_FALSE(b->committed_here(1));
  a->forget_through(2);
  EXPECT_FALSE(a->committed_here(1));
}

// The server restarted while the store's connection sat idle: the next commit finds the broken
// connection at BEGIN, before anything of it was sent, connects again and lands, instead of
// failing once (a node reporting ready again would otherwise refuse its first write).
TEST_F(pg_change_feed_test, the_first_commit_after_a_restart_while_idle_lands) {
  auto a = open_store();
  commit_org(*a, make_org("before"));
  shared_pg_cluster()->stop();
  shared_pg_cluster()->start();
  catalog_change c;
  c.put(make_org("after"));
  auto r = a->commit(c);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(shared_pg_cluster()->query_value(
                database_, "SELECT count(*) FROM organizations WHERE name = 'after'"),
            "1");
}

}  // namespace
}  // namespace hookd::pg
