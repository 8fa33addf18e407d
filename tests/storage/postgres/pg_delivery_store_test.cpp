// pg_delivery_store against a private PostgreSQL server (tests/support/pg_cluster.hpp), a fresh
// database per test. Stores with different node names stand for the nodes of a cluster.

#include "storage/postgres/pg_delivery_store.hpp"
#include "storage/postgres/migrations.hpp"
#include "tests/support/pg_cluster.hpp"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

namespace hookd::pg {
namespace {

using hookd::testing::shared_pg_cluster;
using namespace std::chrono_literals;

constexpr std::int64_t kDayMs = 24LL * 3600 * 1000;
// 2026-12-06 12:00:00 UTC
constexpr std::int64_t kNoon = 1796558400000;

timestamp at(std::int64_t ms) {
  return timestamp(std::chrono::milliseconds(ms));
}

class pg_delivery_store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    HOOKD_REQUIRE_PG();
    database_ = shared_pg_cluster()->create_database();
    uri_ = shared_pg_cluster()->uri(database_);
  }

  // A store as node `node`, on the test's clock.
  std::unique_ptr<pg_delivery_store> node(const std::string& name,
                                          std::chrono::milliseconds lease = 30s,
                                          std::chrono::milliseconds retention = 0ms) {
    return node_on(name, now_, lease, retention);
  }
  // A store as node `node`, on a clock of its own (unix ms).
  std::unique_ptr<pg_delivery_store> node_on(const std::string& name,
                                             std::atomic<std::int64_t>& clock,
                                             std::chrono::milliseconds lease = 30s,
                                             std::chrono::milliseconds retention = 0ms) {
    delivery_store_options o;
    o.uri = uri_;
    o.node = name;
    o.lease = lease;
    o.retention = retention;
    o.clock = [&clock] {
      return at(clock.load());
    };
    auto s = pg_delivery_store::open(std::move(o));
    if (!s) throw std::runtime_error(s.error().detail);
    return std::move(*s);
  }

  std::string value(const std::string& sql) {
    return shared_pg_cluster()->query_value(database_, sql);
  }

  // An event of `project` fanned out to `webhooks`, new ids.
  ingest_item item(const std::vector<object_id>& webhooks, std::string type = "order.created",
                   std::optional<std::string> subject = std::nullopt) {
    ingest_item i;
    i.record.id = ids_.next();
    i.record.organization = organization_;
    i.record.project = project_;
    i.record.type = std::move(type);
    i.record.data = R"({"n":1,"s":"it's \"quoted\""})";
    i.record.time = at(now_.load());
    i.record.subject = std::move(subject);
    for (const object_id& w : webhooks) i.record.deliveries.push_back({ids_.next(), w});
    return i;
  }
  ingest_item keyed(const std::string& key, std::string_view body, object_id token) {
    ingest_item i = item({webhook_});
    i.key = ingest_item::idempotency{token, key, sha256(body)};
    return i;
  }

  // `a` ingests `key` in a transaction left open, so `b`'s ingest of the same key must wait for
  // it; `a` then ends it with `ending`: after COMMIT `b` replays a's event, after ROLLBACK it
  // creates its own.
  void expect_waits_then_replays_or_creates(pg_delivery_store& a, pg_delivery_store& b,
                                            const std::string& key, object_id token,
                                            std::string_view ending) {
    SCOPED_TRACE(key);
    ingest_item from_a = keyed(key, "body", token);
    ingest_item from_b = keyed(key, "body", token);
    ASSERT_TRUE(a.native().exec("BEGIN"));
    auto held = a.ingest({from_a});
    ASSERT_TRUE(held) << held.error().detail;
    std::atomic<bool> returned{false};
    result<std::vector<ingest_answer>> second = problem{};
    std::thread waiting([&] {
      second = b.ingest({from_b});
      returned = true;
    });
    std::this_thread::sleep_for(300ms);
    EXPECT_FALSE(returned.load()) << "b waits on a's uncommitted key";
    ASSERT_TRUE(a.native().exec(ending));
    waiting.join();
    ASSERT_TRUE(second) << second.error().detail;
    const bool committed = ending == "COMMIT";
    EXPECT_EQ(second->front().outcome,
              committed ? ingest_outcome::replay : ingest_outcome::created);
    EXPECT_EQ(second->front().event, committed ? from_a.record.id : from_b.record.id);
  }

  // `a` ingests `in_a` and `b` ingests `in_b` at the same moment (two threads released together).
  static std::pair<result<std::vector<ingest_answer>>, result<std::vector<ingest_answer>>>
  ingest_at_once(pg_delivery_store& a, const std::vector<ingest_item>& in_a, pg_delivery_store& b,
                 const std::vector<ingest_item>& in_b) {
    result<std::vector<ingest_answer>> ra = problem{};
    result<std::vector<ingest_answer>> rb = problem{};
    std::atomic<int> ready{0};
    auto run = [&ready](pg_delivery_store& store, const std::vector<ingest_item>& in,
                        result<std::vector<ingest_answer>>& out) {
      ++ready;
      while (ready.load() < 2) {
      }
      out = store.ingest(in);
    };
    std::thread ta(run, std::ref(a), std::cref(in_a), std::ref(ra));
    std::thread tb(run, std::ref(b), std::cref(in_b), std::ref(rb));
    ta.join();
    tb.join();
    return {std::move(ra), std::move(rb)};
  }

  static std::vector<object_id> delivery_ids(const std::vector<ingest_item>& group) {
    std::vector<object_id> out;
    for (const auto& i : group) {
      for (const auto& d : i.record.deliveries) out.push_back(d.delivery);
    }
    return out;
  }

  static attempt_record failed_attempt(const delivery& d, timestamp when, timestamp retry_at) {
    attempt_record r;
    r.delivery = d.id;
    r.value.number = d.attempts + 1;
    r.value.at = when;
    r.value.duration = 12ms;
    r.value.status_code = 503;
    r.value.response = "busy";
    r.after.status = delivery_status::pending;
    r.after.next_attempt_at = retry_at;
    r.after.updated_at = when;
    return r;
  }
  static attempt_record succeeded_attempt(const delivery& d, timestamp when) {
    attempt_record r;
    r.delivery = d.id;
    r.value.number = d.attempts + 1;
    r.value.at = when;
    r.value.duration = 7ms;
    r.value.status_code = 200;
    r.value.response = "ok";
    r.after.status = delivery_status::succeeded;
    r.after.updated_at = when;
    return r;
  }

  std::string database_;
  std::string uri_;
  std::atomic<std::int64_t> now_{kNoon};
  object_id_generator ids_;
  object_id organization_ = ids_.next();
  object_id project_ = ids_.next();
  object_id webhook_ = ids_.next();
  object_id other_webhook_ = ids_.next();
};

TEST_F(pg_delivery_store_test, an_ingested_group_is_readable_back_with_its_deliveries_leased) {
  auto a = node("a");
  std::vector<ingest_item> group{item({webhook_, other_webhook_}), item({webhook_}), item({})};
  group[1].record.ordering_key = "customer-7";
  group[1].record.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  auto answers = a->ingest(group);
  ASSERT_TRUE(answers) << answers.error().detail;
  ASSERT_EQ(answers->size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*answers)[i].outcome, ingest_outcome::created);
    EXPECT_EQ((*answers)[i].event, group[i].record.id);
  }
  EXPECT_EQ(value("SELECT count(*) FROM events"), "3");
  EXPECT_EQ(value("SELECT count(*) FROM deliveries WHERE lease_owner = 'a'"
                  " AND lease_until > now() + interval '25 seconds'"),
            "3");

  auto e = a->find_event(project_, group[0].record.id);
  ASSERT_TRUE(e) << e.error().detail;
  ASSERT_TRUE(*e);
  EXPECT_EQ((*e)->record.data, group[0].record.data);
  EXPECT_EQ((*e)->record.time, group[0].record.time);
  ASSERT_EQ((*e)->deliveries.size(), 2u);
  EXPECT_EQ((*e)->deliveries[0].webhook, webhook_);
  EXPECT_EQ((*e)->deliveries[1].webhook, other_webhook_);
  EXPECT_EQ((*e)->deliveries[0].status, delivery_status::pending);
  auto ordered = a->find_event(project_, group[1].record.id);
  ASSERT_TRUE(ordered && *ordered);
  EXPECT_EQ((*ordered)->record.ordering_key, "customer-7");
  EXPECT_EQ((*ordered)->record.traceparent, group[1].record.traceparent);
  // Another project does not see it.
  auto elsewhere = a->find_event(ids_.next(), group[0].record.id);
  ASSERT_TRUE(elsewhere);
  EXPECT_FALSE(*elsewhere);

  auto d = a->find_delivery(project_, group[1].record.deliveries[0].delivery);
  ASSERT_TRUE(d) << d.error().detail;
  ASSERT_TRUE(*d);
  EXPECT_EQ((*d)->record->status, delivery_status::pending);
  EXPECT_EQ((*d)->record->next_attempt_at, at(kNoon));
  EXPECT_EQ((*d)->record->ordering_key, "customer-7");
  EXPECT_EQ((*d)->record->type, "order.created");
  EXPECT_TRUE((*d)->attempts.empty());
}

TEST_F(pg_delivery_store_test, one_key_taken_by_two_nodes_at_once_makes_one_event) {
  auto a = node("a");
  auto b = node("b");
  const object_id token = ids_.next();
  for (int round = 0; round < 20; ++round) {
    const std::string key = "key-" + std::to_string(round);
    ingest_item from_a = keyed(key, "body", token);
    ingest_item from_b = keyed(key, "body", token);
    auto [ra, rb] = ingest_at_once(*a, {from_a}, *b, {from_b});
    ASSERT_TRUE(ra) << ra.error().detail;
    ASSERT_TRUE(rb) << rb.error().detail;
    const ingest_answer& x = ra->front();
    const ingest_answer& y = rb->front();
    EXPECT_EQ((x.outcome == ingest_outcome::created) + (y.outcome == ingest_outcome::created), 1)
        << "round " << round;
    EXPECT_EQ((x.outcome == ingest_outcome::replay) + (y.outcome == ingest_outcome::replay), 1);
    EXPECT_EQ(x.event, y.event) << "the replay answers with the first event";
  }
  EXPECT_EQ(value("SELECT count(*) FROM events"), "20");
  EXPECT_EQ(value("SELECT count(*) FROM deliveries"), "20");

  // Another fingerprint under a used key: conflict, nothing written.
  auto other = b->ingest({keyed("key-0", "another body", token)});
  ASSERT_TRUE(other);
  EXPECT_EQ(other->front().outcome, ingest_outcome::conflict);
  // The same key twice in one group: the second replays the first; a third with another body
  // conflicts.
  std::vector<ingest_item> group{keyed("fresh", "body", token), keyed("fresh", "body", token),
                                 keyed("fresh", "other", token)};
  auto in_group = a->ingest(group);
  ASSERT_TRUE(in_group) << in_group.error().detail;
  EXPECT_EQ((*in_group)[0].outcome, ingest_outcome::created);
  EXPECT_EQ((*in_group)[1].outcome, ingest_outcome::replay);
  EXPECT_EQ((*in_group)[1].event, group[0].record.id);
  EXPECT_EQ((*in_group)[2].outcome, ingest_outcome::conflict);
  EXPECT_EQ(value("SELECT count(*) FROM events"), "21");
  // Another token's key of the same name is its own.
  auto other_token = a->ingest({keyed("fresh", "body", ids_.next())});
  ASSERT_TRUE(other_token);
  EXPECT_EQ(other_token->front().outcome, ingest_outcome::created);
}

TEST_F(pg_delivery_store_test, a_key_held_by_an_uncommitted_ingest_waits_and_then_replays_or_wins) {
  auto a = node("a");
  auto b = node("b");
  const object_id token = ids_.next();
  // a's ingest stays uncommitted (an open transaction around it), so b's ingest of the same key
  // must wait for it: b replays when a commits, and creates when a rolls back.
  for (const char* ending : {"COMMIT", "ROLLBACK"}) {
    expect_waits_then_replays_or_creates(*a, *b, std::string("held-") + ending, token, ending);
  }
  EXPECT_EQ(value("SELECT count(*) FROM events"), "2");
  EXPECT_EQ(value("SELECT string_agg(key || ':' || event_id, ',' ORDER BY key) FROM"
                  " idempotency_keys"),
            "held-COMMIT:" + value("SELECT id FROM events ORDER BY id LIMIT 1") +
                ",held-ROLLBACK:" + value("SELECT id FROM events ORDER BY id DESC LIMIT 1"));
}

TEST_F(pg_delivery_store_test, an_expired_key_is_taken_over_by_the_next_request) {
  auto a = node("a");
  const object_id token = ids_.next();
  ingest_item first = keyed("k", "body", token);
  ASSERT_TRUE(a->ingest({first}));
  now_ += 25LL * 3600 * 1000;  // past the 24 h TTL
  ingest_item later = keyed("k", "another body", token);
  auto r = a->ingest({later});
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->front().outcome, ingest_outcome::created);
  // The expired row stays in its day's partition until that day is dropped; the new one answers.
  EXPECT_EQ(value("SELECT event_id FROM idempotency_keys ORDER BY created_at DESC LIMIT 1"),
            later.record.id.to_string());
  auto again = a->ingest({keyed("k", "another body", token)});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->front().outcome, ingest_outcome::replay);
  EXPECT_EQ(again->front().event, later.record.id);
}

// Keys live in day partitions; a key used just before midnight is in the old day's partition, a
// request just after it writes to the new day's. The key must still answer across the boundary,
// also when both requests run at once on two nodes (the second waits on the first's key lock,
// then sees its row).
TEST_F(pg_delivery_store_test, a_key_answers_across_the_midnight_between_two_day_partitions) {
  const std::int64_t midnight = kNoon + kDayMs / 2;  // 2026-12-07 00:00:00 UTC
  std::atomic<std::int64_t> before{midnight - 100};
  std::atomic<std::int64_t> after{midnight + 100};
  now_ = midnight - 100;
  auto a = node_on("a", before);
  auto b = node_on("b", after);
  const object_id token = ids_.next();

  // One after the other: the replay names the first event.
  ingest_item first = keyed("boundary", "body", token);
  ASSERT_TRUE(a->ingest({first}));
  auto replayed = b->ingest({keyed("boundary", "body", token)});
  ASSERT_TRUE(replayed) << replayed.error().detail;
  EXPECT_EQ(replayed->front().outcome, ingest_outcome::replay);
  EXPECT_EQ(replayed->front().event, first.record.id);
  auto conflict = b->ingest({keyed("boundary", "other body", token)});
  ASSERT_TRUE(conflict);
  EXPECT_EQ(conflict->front().outcome, ingest_outcome::conflict);
  EXPECT_EQ(value("SELECT string_agg(c.relname, ',') FROM idempotency_keys k"
                  " JOIN pg_class c ON c.oid = k.tableoid"),
            "idempotency_keys_20261206");

  // At once: a's key uncommitted in 2026-12-06's partition, b's request at 00:00:00.100 waits
  // for it and replays it when a commits, or creates when a rolls back.
  for (const char* ending : {"COMMIT", "ROLLBACK"}) {
    expect_waits_then_replays_or_creates(*a, *b, std::string("held-") + ending, token, ending);
  }
  // And racing freely, twenty keys: one event each, both answers name it.
  for (int round = 0; round < 20; ++round) {
    const std::string key = "race-" + std::to_string(round);
    ingest_item from_a = keyed(key, "body", token);
    ingest_item from_b = keyed(key, "body", token);
    auto [ra, rb] = ingest_at_once(*a, {from_a}, *b, {from_b});
    ASSERT_TRUE(ra) << ra.error().detail;
    ASSERT_TRUE(rb) << rb.error().detail;
    EXPECT_EQ(ra->front().event, rb->front().event) << key;
    EXPECT_EQ((ra->front().outcome == ingest_outcome::created) +
                  (rb->front().outcome == ingest_outcome::created),
              1)
        << key;
  }
  // first, held-COMMIT, held-ROLLBACK (b's), and one per race.
  EXPECT_EQ(value("SELECT count(*) FROM events"), "23");
  EXPECT_EQ(value("SELECT count(*) FROM idempotency_keys"), "23");
}

// Expiry drops a whole day partition of idempotency_keys once every key in it is past the TTL;
// an expired key is then new again, a live one in a younger partition still answers.
TEST_F(pg_delivery_store_test, expired_keys_go_with_their_day_partition) {
  auto a = node("a");
  const object_id token = ids_.next();
  ingest_item old = keyed("old", "body", token);
  ASSERT_TRUE(a->ingest({old}));        // 2026-12-06 12:00
  now_ = kNoon + kDayMs / 2 + 3600000;  // 2026-12-07 01:00
  ingest_item young = keyed("young", "body", token);
  ASSERT_TRUE(a->ingest({young}));
  EXPECT_EQ(value("SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM idempotency_keys k"
                  " JOIN pg_class c ON c.oid = k.tableoid"),
            "idempotency_keys_20261206,idempotency_keys_20261207");

  // 2026-12-07 12:00: "old" expired at 12:00 but its day ended only 12 h ago; nothing goes.
  now_ = kNoon + kDayMs;
  auto kept = a->drop_expired(std::chrono::milliseconds(30 * kDayMs));
  ASSERT_TRUE(kept) << kept.error().detail;
  EXPECT_TRUE(kept->dropped.empty());
  EXPECT_EQ(value("SELECT to_regclass('idempotency_keys_20261206') IS NOT NULL"), "t");

  // 2026-12-08 00:30: every key of 2026-12-06 is past the 24 h TTL: the partition goes whole.
  now_ = kNoon + kDayMs + kDayMs / 2 + 1800000;
  auto swept = a->drop_expired(std::chrono::milliseconds(30 * kDayMs));
  ASSERT_TRUE(swept) << swept.error().detail;
  EXPECT_EQ(swept->dropped, std::vector<std::string>{"idempotency_keys_20261206"});
  EXPECT_EQ(value("SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                  " WHERE i.inhparent = 'idempotency_keys'::regclass"
                  " AND c.relname = 'idempotency_keys_20261206'"),
            "0");
  EXPECT_EQ(value("SELECT to_regclass('idempotency_keys_20261206') IS NULL"), "t");
  EXPECT_EQ(value("SELECT count(*) FROM idempotency_keys"), "1");

  auto fresh = a->ingest({keyed("old", "another body", token)});
  ASSERT_TRUE(fresh) << fresh.error().detail;
  EXPECT_EQ(fresh->front().outcome, ingest_outcome::created);
  auto live = a->ingest({keyed("young", "body", token)});
  ASSERT_TRUE(live);
  EXPECT_EQ(live->front().outcome, ingest_outcome::replay);
  EXPECT_EQ(live->front().event, young.record.id);
}

TEST_F(pg_delivery_store_test, two_nodes_claiming_1000_due_deliveries_take_each_exactly_once) {
  auto ingester = node("ingester");
  std::vector<ingest_item> group;
  for (int i = 0; i < 500; ++i) group.push_back(item({webhook_, other_webhook_}));
  ASSERT_TRUE(ingester->ingest(group));
  // Released by the ingesting node, with the two webhooks: free for anyone.
  ASSERT_EQ(*ingester->release(delivery_ids(group)), 1000u);
  ASSERT_EQ(*ingester->release_webhooks({webhook_, other_webhook_}), 2u);

  auto a = node("a");
  auto b = node("b");
  std::vector<object_id> got_a;
  std::vector<object_id> got_b;
  std::atomic<bool> failed{false};
  std::atomic<int> ready{0};
  std::atomic<std::size_t> total{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  auto run = [&](pg_delivery_store& s, std::vector<object_id>& got) {
    // Both start together, and claim in small batches, so that their claims interleave.
    ++ready;
    while (ready.load() < 2) {
    }
    // Until both together have claimed all 1000 (a claim twice would leave one unclaimed, below).
    // An empty claim does not mean that nothing is left: a due delivery locked by the other
    // node's claim at that moment is skipped (SKIP LOCKED), even when that claim does not win
    // its webhook and lets it go when it commits; the node's next claim takes it.
    while (total.load() < 1000 && std::chrono::steady_clock::now() < deadline) {
      auto claimed = s.claim_due(10);
      if (!claimed) {
        failed = true;
        return;
      }
      if (claimed->empty()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      for (const auto& p : *claimed) {
        got.push_back(p.record->id);
        if (!p.source_event || p.source_event->id != p.record->event) failed = true;
      }
      total += claimed->size();
    }
  };
  std::thread ta([&] { run(*a, got_a); });
  std::thread tb([&] { run(*b, got_b); });
  ta.join();
  tb.join();
  ASSERT_FALSE(failed.load());
  std::set<object_id> all(got_a.begin(), got_a.end());
  all.insert(got_b.begin(), got_b.end());
  EXPECT_EQ(got_a.size() + got_b.size(), 1000u) << "no delivery claimed twice";
  EXPECT_EQ(all.size(), 1000u) << "every delivery claimed";
  std::printf("claims: node a %zu, node b %zu\n", got_a.size(), got_b.size());
  // Each webhook's deliveries went to one node: the one that holds the webhook.
  EXPECT_EQ(value("SELECT count(DISTINCT lease_owner) FROM deliveries WHERE webhook_id = '" +
                  webhook_.to_string() + "'"),
            "1");
  EXPECT_EQ(value("SELECT count(*) FROM deliveries d JOIN webhook_leases w"
                  " ON w.webhook_id = d.webhook_id WHERE d.lease_owner <> w.owner"),
            "0");
  EXPECT_EQ(value("SELECT count(*) FROM deliveries WHERE lease_owner = 'a'"),
            std::to_string(got_a.size()));
}

TEST_F(pg_delivery_store_test,
       a_lease_left_to_expire_is_taken_over_and_its_old_owner_cannot_record) {
  // Margins of 0.8 s and more around the 2 s lease, so that a stalled machine does not decide.
  auto a = node("a", 2000ms);
  auto b = node("b", 2000ms);
  std::vector<ingest_item> group{item({webhook_})};
  ASSERT_TRUE(a->ingest(group));
  // Leased to a at ingest: b finds nothing due.
  auto early = b->claim_due(10);
  ASSERT_TRUE(early);
  EXPECT_TRUE(early->empty());
  // a renews while alive...
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(a->renew(delivery_ids(group))->size(), 1u);
  EXPECT_EQ(a->renew_webhooks({webhook_})->size(), 1u);
  std::this_thread::sleep_for(1200ms);
  EXPECT_TRUE(b->claim_due(10)->empty()) << "a renewed lease holds";
  // ...then stops renewing: after the lease b takes the delivery.
  std::this_thread::sleep_for(2200ms);
  auto taken = b->claim_due(10);
  ASSERT_TRUE(taken) << taken.error().detail;
  ASSERT_EQ(taken->size(), 1u);
  const delivery& d = *taken->front().record;
  EXPECT_EQ(taken->front().source_event->data, group[0].record.data);

  // a's late attempt is refused, and so is its renewal.
  auto late = a->record_attempts({succeeded_attempt(d, at(kNoon))});
  ASSERT_TRUE(late) << late.error().detail;
  EXPECT_EQ(late->front(), record_outcome::lease_lost);
  EXPECT_TRUE(a->renew(delivery_ids(group))->empty());
  EXPECT_TRUE(a->renew_webhooks({webhook_})->empty()) << "the webhook is b's now";
  EXPECT_EQ(value("SELECT owner FROM webhook_leases"), "b");
  EXPECT_EQ(value("SELECT count(*) FROM attempts"), "0");
  // b's is recorded.
  auto recorded = b->record_attempts({succeeded_attempt(d, at(kNoon))});
  ASSERT_TRUE(recorded);
  EXPECT_EQ(recorded->front(), record_outcome::recorded);
  EXPECT_EQ(value("SELECT count(*) FROM attempts"), "1");
}

TEST_F(pg_delivery_store_test, a_record_racing_a_takeover_waits_and_then_loses_or_records) {
  // a's lease runs out at once; b's claim stays uncommitted (an open transaction around it), so
  // a's record must wait on the row: lease_lost when b commits, recorded when b rolls back.
  auto a = node("a", 1ms);
  auto b = node("b");
  for (const char* ending : {"COMMIT", "ROLLBACK"}) {
    // A webhook per round: after the first, b holds webhook_.
    std::vector<ingest_item> group{item({ids_.next()})};
    ASSERT_TRUE(a->ingest(group));
    std::this_thread::sleep_for(10ms);
    ASSERT_TRUE(b->native().exec("BEGIN"));
    auto taken = b->claim_due(10);
    ASSERT_TRUE(taken) << taken.error().detail;
    ASSERT_EQ(taken->size(), 1u);
    std::atomic<bool> returned{false};
    result<std::vector<record_outcome>> recorded = problem{};
    std::thread waiting([&] {
      recorded = a->record_attempts({succeeded_attempt(*taken->front().record, at(kNoon))});
      returned = true;
    });
    std::this_thread::sleep_for(300ms);
    EXPECT_FALSE(returned.load()) << "a waits on b's uncommitted claim";
    ASSERT_TRUE(b->native().exec(ending));
    waiting.join();
    ASSERT_TRUE(recorded) << recorded.error().detail;
    EXPECT_EQ(recorded->front(), std::string(ending) == "COMMIT" ? record_outcome::lease_lost
                                                                 : record_outcome::recorded)
        << ending;
  }
  EXPECT_EQ(value("SELECT count(*) FROM attempts"), "1") << "only the rolled-back round's";
  EXPECT_EQ(value("SELECT lease_owner FROM deliveries"), "b");
}

TEST_F(pg_delivery_store_test, attempts_reschedule_then_finish_a_delivery_into_history) {
  auto a = node("a");
  std::vector<ingest_item> group{item({webhook_}), item({webhook_})};
  ASSERT_TRUE(a->ingest(group));
  auto first = a->find_delivery(project_, group[0].record.deliveries[0].delivery);
  auto second = a->find_delivery(project_, group[1].record.deliveries[0].delivery);
  ASSERT_TRUE(first && *first && second && *second);
  const delivery d1 = *(*first)->record;
  const delivery d2 = *(*second)->record;

  // One batch: d1 fails and is retried in 5 s, d2 succeeds; a wrong number is a conflict.
  attempt_record wrong = succeeded_attempt(d1, at(kNoon));
  wrong.value.number = 3;
  auto conflict = a->record_attempts({wrong});
  ASSERT_TRUE(conflict) << conflict.error().detail;
  EXPECT_EQ(conflict->front(), record_outcome::conflict);
  auto batch = a->record_attempts({failed_attempt(d1, at(kNoon + 10), at(kNoon + 5000)),
                                   succeeded_attempt(d2, at(kNoon + 20))});
  ASSERT_TRUE(batch) << batch.error().detail;
  EXPECT_EQ((*batch)[0], record_outcome::recorded);
  EXPECT_EQ((*batch)[1], record_outcome::recorded);
  EXPECT_EQ(value("SELECT count(*) FROM deliveries"), "1");
  EXPECT_EQ(value("SELECT status || ':' || attempts FROM delivery_history"), "succeeded:1");
  EXPECT_EQ(value("SELECT lease_owner FROM deliveries"), "a")
      << "a retry stays with the node that holds its webhook";
  // Recording d2 again: it is not pending any more.
  auto again = a->record_attempts({succeeded_attempt(d2, at(kNoon + 30))});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->front(), record_outcome::not_pending);

  // When due, another node does not take it: a holds it (and its webhook) and attempts it.
  now_ += 5000;
  auto b = node("b");
  EXPECT_TRUE(b->claim_due(10)->empty());
  delivery retried = d1;
  retried.attempts = 1;
  auto done = a->record_attempts({succeeded_attempt(retried, at(kNoon + 5100))});
  ASSERT_TRUE(done);
  EXPECT_EQ(done->front(), record_outcome::recorded);

  auto detail = b->find_delivery(project_, d1.id);
  ASSERT_TRUE(detail && *detail);
  EXPECT_EQ((*detail)->record->status, delivery_status::succeeded);
  EXPECT_EQ((*detail)->record->attempts, 2u);
  EXPECT_FALSE((*detail)->record->next_attempt_at);
  EXPECT_EQ((*detail)->record->updated_at, at(kNoon + 5100));
  ASSERT_EQ((*detail)->attempts.size(), 2u);
  EXPECT_EQ((*detail)->attempts[0].number, 1u);
  EXPECT_EQ((*detail)->attempts[0].status_code, 503);
  EXPECT_EQ((*detail)->attempts[0].response, "busy");
  EXPECT_EQ((*detail)->attempts[0].duration, 12ms);
  EXPECT_EQ((*detail)->attempts[1].at, at(kNoon + 5100));
  auto e = b->find_event(project_, group[0].record.id);
  ASSERT_TRUE(e && *e);
  EXPECT_EQ((*e)->deliveries.at(0).status, delivery_status::succeeded);
}

// ---- webhook leases (docs/cluster.md, "Ordering and flow control across nodes")

TEST_F(pg_delivery_store_test, a_webhook_is_one_nodes_until_released_or_its_lease_expires) {
  auto a = node("a", 1500ms);
  auto b = node("b", 1500ms);
  auto listener = node("listener");
  ASSERT_TRUE(listener->native().exec("LISTEN hookd_deliveries"));

  // a's ingest takes the webhook and is leased its delivery.
  std::vector<ingest_item> first{item({webhook_})};
  lease_news news_a;
  ASSERT_TRUE(a->ingest(first, &news_a));
  ASSERT_EQ(news_a.held.size(), 1u);
  EXPECT_EQ(news_a.held[0].webhook, webhook_);
  EXPECT_TRUE(news_a.not_leased.empty());
  EXPECT_EQ(
      value("SELECT owner FROM webhook_leases WHERE webhook_id = '" + webhook_.to_string() + "'"),
      "a");

  // b's ingest of the same webhook is not leased to b, and tells the other nodes at commit.
  std::vector<ingest_item> second{item({webhook_})};
  lease_news news_b;
  ASSERT_TRUE(b->ingest(second, &news_b));
  EXPECT_TRUE(news_b.held.empty());
  EXPECT_EQ(news_b.not_leased, delivery_ids(second));
  EXPECT_EQ(value("SELECT count(*) FROM deliveries WHERE lease_owner IS NULL"), "1");
  PGconn* raw = listener->native().native();
  ASSERT_EQ(PQconsumeInput(raw), 1);
  PGnotify* n = PQnotifies(raw);
  ASSERT_NE(n, nullptr) << "NOTIFY hookd_deliveries at b's commit";
  EXPECT_EQ(std::string(n->extra), webhook_.to_string());
  PQfreemem(n);

  // Only a claims it.
  EXPECT_TRUE(b->claim_due(10)->empty());
  auto claimed = a->claim_due(10);
  ASSERT_TRUE(claimed) << claimed.error().detail;
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ(claimed->front().record->id, delivery_ids(second)[0]);

  // Not released while a holds deliveries of it; released after them (a node stopping): b's
  // next ingest takes it.
  EXPECT_EQ(*a->release_webhooks({webhook_}), 0u);
  EXPECT_EQ(value("SELECT owner FROM webhook_leases"), "a");
  ASSERT_EQ(*a->release({delivery_ids(first)[0], delivery_ids(second)[0]}), 2u);
  EXPECT_EQ(*a->release_webhooks({webhook_}), 1u);
  EXPECT_EQ(*a->release_webhooks({webhook_}), 0u) << "not a's any more";
  lease_news taken;
  ASSERT_TRUE(b->ingest({item({webhook_})}, &taken));
  ASSERT_EQ(taken.held.size(), 1u);
  EXPECT_TRUE(taken.not_leased.empty());

  // b renews while alive; a's claim does not take it...
  std::this_thread::sleep_for(900ms);
  EXPECT_EQ(b->renew_webhooks({webhook_})->size(), 1u);
  std::this_thread::sleep_for(900ms);
  lease_news refused;
  ASSERT_TRUE(a->ingest({item({webhook_})}, &refused));
  EXPECT_TRUE(refused.held.empty()) << "a renewed lease holds";
  // ...then b stops renewing (a dead node): after the lease a takes the webhook.
  std::this_thread::sleep_for(1800ms);
  lease_news after;
  ASSERT_TRUE(a->ingest({item({webhook_})}, &after));
  ASSERT_EQ(after.held.size(), 1u);
  EXPECT_TRUE(b->renew_webhooks({webhook_})->empty());
  EXPECT_EQ(value("SELECT owner FROM webhook_leases"), "a");
}

TEST_F(pg_delivery_store_test, a_keyed_delivery_waits_for_an_earlier_one_of_its_key_to_be_claimed) {
  auto a = node("a");
  auto b = node("b");
  ASSERT_TRUE(a->ingest({item({webhook_})}));  // a holds the webhook
  auto keyed = [&](const std::string& key) {
    ingest_item i = item({webhook_});
    i.record.ordering_key = key;
    return i;
  };
  std::vector<ingest_item> on_b{keyed("customer-1")};
  ASSERT_TRUE(b->ingest(on_b));
  now_ += 1;
  // On a, the next of that key is not dispatched ahead of b's: both wait for a's claim.
  std::vector<ingest_item> on_a{keyed("customer-1"), keyed("customer-2")};
  lease_news news;
  ASSERT_TRUE(a->ingest(on_a, &news));
  EXPECT_EQ(news.not_leased, std::vector<object_id>{on_a[0].record.deliveries[0].delivery})
      << "customer-2 has nothing earlier: leased at once";
  auto claimed = a->claim_due(10);
  ASSERT_TRUE(claimed) << claimed.error().detail;
  ASSERT_EQ(claimed->size(), 2u);
  EXPECT_EQ((*claimed)[0].record->id, on_b[0].record.deliveries[0].delivery);
  EXPECT_EQ((*claimed)[1].record->id, on_a[0].record.deliveries[0].delivery);
}

TEST_F(pg_delivery_store_test,
       a_failure_streak_is_stored_with_the_lease_and_read_by_the_next_owner) {
  auto a = node("a");
  auto b = node("b");
  ASSERT_TRUE(a->ingest({item({webhook_})}));
  failure_streak s;
  s.failures = 12;
  s.first_failure_at = at(kNoon - 5000);
  s.last_failure_at = at(kNoon - 10);
  ASSERT_TRUE(a->save_streak(webhook_, s));
  EXPECT_EQ(value("SELECT failures FROM webhook_leases"), "12");
  auto stored = b->load_streaks();
  ASSERT_TRUE(stored) << stored.error().detail;
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ(stored->front().streak, s);

  ASSERT_EQ(a->native()
                .exec("UPDATE deliveries SET lease_owner = NULL, lease_until = NULL")
                .value()
                .affected(),
            1u);
  ASSERT_EQ(*a->release_webhooks({webhook_}), 1u);
  lease_news news;
  ASSERT_TRUE(b->ingest({item({webhook_})}, &news));
  ASSERT_EQ(news.held.size(), 1u);
  EXPECT_EQ(news.held[0].streak, s) << "the new owner reads the streak with the lease";

  ASSERT_TRUE(b->save_streak(webhook_, std::nullopt));
  EXPECT_TRUE(b->load_streaks()->empty());
  EXPECT_EQ(value("SELECT owner FROM webhook_leases"), "b") << "a streak write keeps the owner";
  // A deleted webhook's row goes with its deliveries.
  ASSERT_TRUE(b->cancel_webhook(webhook_));
  EXPECT_EQ(value("SELECT count(*) FROM webhook_leases"), "0");
}

TEST_F(pg_delivery_store_test, lists_page_newest_first_with_every_filter) {
  auto a = node("a");
  // 30 events: even ones to webhook_, odd ones to other_webhook_, every third of type
  // "order.paid", one second apart.
  std::vector<ingest_item> all;
  for (int i = 0; i < 30; ++i) {
    now_ = kNoon + i * 1000LL;
    ingest_item it =
        item({i % 2 == 0 ? webhook_ : other_webhook_}, i % 3 == 0 ? "order.paid" : "order.created");
    ASSERT_TRUE(a->ingest({it}));
    all.push_back(std::move(it));
  }
  // The first ten finish: 0..4 succeeded, 5..9 failed.
  for (int i = 0; i < 10; ++i) {
    auto d =
        a->find_delivery(project_, all[static_cast<std::size_t>(i)].record.deliveries[0].delivery);
    ASSERT_TRUE(d && *d);
    attempt_record r = succeeded_attempt(*(*d)->record, at(kNoon + 40000));
    if (i >= 5) {
      r.after.status = delivery_status::failed;
      r.after.reason = std::string(kReasonGone);
    }
    ASSERT_EQ(a->record_attempts({r})->front(), record_outcome::recorded);
  }
  auto ids_of = [](const delivery_page& p) {
    std::vector<object_id> out;
    for (const auto& d : p.items) out.push_back(d->id);
    return out;
  };
  auto expected = [&](auto keep) {
    std::vector<object_id> out;
    for (int i = 29; i >= 0; --i) {
      if (keep(i)) out.push_back(all[static_cast<std::size_t>(i)].record.deliveries[0].delivery);
    }
    return out;
  };

  // Pages of 7 across pending and finished: every delivery once, newest first.
  delivery_query q;
  q.project = project_;
  q.limit = 7;
  std::vector<object_id> seen;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = a->list_deliveries(q);
    ASSERT_TRUE(page) << page.error().detail;
    auto got = ids_of(*page);
    seen.insert(seen.end(), got.begin(), got.end());
    if (!page->next) break;
    q.after = page->next;
  }
  EXPECT_EQ(seen, expected([](int) { return true; }));

  delivery_query w;
  w.project = project_;
  w.limit = 100;
  w.webhook = other_webhook_;
  EXPECT_EQ(ids_of(*a->list_deliveries(w)), expected([](int i) { return i % 2 == 1; }));
  delivery_query failed;
  failed.project = project_;
  failed.statuses.add(delivery_status::failed);
  EXPECT_EQ(ids_of(*a->list_deliveries(failed)), expected([](int i) { return i >= 5 && i < 10; }));
  delivery_query pending_or_succeeded = failed;
  pending_or_succeeded.statuses = {};
  pending_or_succeeded.statuses.add(delivery_status::pending);
  pending_or_succeeded.statuses.add(delivery_status::succeeded);
  pending_or_succeeded.limit = 100;
  EXPECT_EQ(ids_of(*a->list_deliveries(pending_or_succeeded)),
            expected([](int i) { return i < 5 || i >= 10; }));
  delivery_query typed;
  typed.project = project_;
  typed.limit = 100;
  typed.event_type = "order.paid";
  EXPECT_EQ(ids_of(*a->list_deliveries(typed)), expected([](int i) { return i % 3 == 0; }));
  delivery_query window;
  window.project = project_;
  window.limit = 100;
  window.since = at(kNoon + 8000);
  window.until = at(kNoon + 12000);
  EXPECT_EQ(ids_of(*a->list_deliveries(window)), expected([](int i) { return i >= 8 && i < 12; }));
  delivery_query other_project;
  other_project.project = ids_.next();
  EXPECT_TRUE(a->list_deliveries(other_project)->items.empty());
  delivery_query too_many;
  too_many.project = project_;
  too_many.limit = 101;
  auto refused = a->list_deliveries(too_many);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, error_kind::validation);
}

TEST_F(pg_delivery_store_test, partitions_are_made_ahead_and_retention_drops_whole_old_days) {
  // Forty days ago: three events; one still pending at the sweep, one finished, one erased
  // with the rest of its day.
  now_ = kNoon - 40 * kDayMs;
  auto a = node("a");
  std::vector<ingest_item> old{item({webhook_}), item({webhook_})};
  ASSERT_TRUE(a->ingest(old));
  auto d = a->find_delivery(project_, old[1].record.deliveries[0].delivery);
  ASSERT_TRUE(d && *d);
  ASSERT_EQ(a->record_attempts({succeeded_attempt(*(*d)->record, at(now_.load()))})->front(),
            record_outcome::recorded);
  auto pinned = a->find_delivery(project_, old[0].record.deliveries[0].delivery);
  ASSERT_EQ(a->record_attempts(
                 {failed_attempt(*(*pinned)->record, at(now_.load()), at(now_.load() + 3600000))})
                ->front(),
            record_outcome::recorded);

  now_ = kNoon;
  ASSERT_TRUE(a->ensure_partitions());
  for (const char* table : {"events", "attempts", "delivery_history"}) {
    for (const char* day : {"20261206", "20261207", "20261208"}) {
      EXPECT_EQ(value("SELECT to_regclass('" + std::string(table) + "_" + day + "') IS NOT NULL"),
                "t")
          << table << "_" << day;
    }
  }
  std::vector<ingest_item> recent{item({webhook_})};
  ASSERT_TRUE(a->ingest(recent));

  auto swept = a->drop_expired(std::chrono::milliseconds(30 * kDayMs));
  ASSERT_TRUE(swept) << swept.error().detail;
  EXPECT_EQ(swept->pinned_events, 1u);
  // 2026-10-27's partitions (and the two days after, made ahead then) are gone.
  EXPECT_NE(std::find(swept->dropped.begin(), swept->dropped.end(), "events_20261027"),
            swept->dropped.end());
  EXPECT_NE(std::find(swept->dropped.begin(), swept->dropped.end(), "attempts_20261027"),
            swept->dropped.end());
  EXPECT_NE(std::find(swept->dropped.begin(), swept->dropped.end(), "delivery_history_20261027"),
            swept->dropped.end());
  EXPECT_EQ(value("SELECT to_regclass('events_20261027') IS NULL"), "t");
  EXPECT_EQ(value("SELECT to_regclass('events_20261206') IS NOT NULL"), "t");

  // The finished old delivery and its event are gone; the pending one kept its event and its
  // attempt (moved to today); the recent event stays.
  auto gone = a->find_delivery(project_, old[1].record.deliveries[0].delivery);
  ASSERT_TRUE(gone);
  EXPECT_FALSE(*gone);
  EXPECT_FALSE(*a->find_event(project_, old[1].record.id));
  auto kept = a->find_delivery(project_, old[0].record.deliveries[0].delivery);
  ASSERT_TRUE(kept && *kept);
  EXPECT_EQ((*kept)->attempts.size(), 1u);
  auto kept_event = a->find_event(project_, old[0].record.id);
  ASSERT_TRUE(kept_event && *kept_event);
  EXPECT_EQ((*kept_event)->record.data, old[0].record.data);
  EXPECT_TRUE(*a->find_event(project_, recent[0].record.id));
  EXPECT_EQ(value("SELECT count(*) FROM events"), "2");
  // And it is still claimable (given up by its node, as at a stop) and sends its event.
  ASSERT_EQ(*a->release({old[0].record.deliveries[0].delivery}), 1u);
  now_ = kNoon - 40 * kDayMs + 3600000;
  auto claimed = a->claim_due(10);
  ASSERT_TRUE(claimed);
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ(claimed->front().source_event->id, old[0].record.id);
}

// EXPLAIN ANALYZE of one of the store's statements with these parameters, the plan's lines
// joined.
std::string explain(connection& conn, const std::string& sql, const std::vector<param>& params) {
  auto r = conn.exec("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql, params);
  if (!r) return "EXPLAIN failed: " + r.error().detail;
  std::string out;
  for (int row = 0; row < r->size(); ++row) out.append(r->text(row, 0)).append("\n");
  return out;
}

// Day partitions of `table` (table_YYYYMMDD) the plan reads: scans of them that ran (pruned ones
// are left out of the plan or marked never executed).
int partitions_read(const std::string& plan, const std::string& table) {
  int n = 0;
  std::size_t line_start = 0;
  while (line_start < plan.size()) {
    const std::size_t end = plan.find('\n', line_start);
    const std::string line = plan.substr(line_start, end - line_start);
    line_start = end == std::string::npos ? plan.size() : end + 1;
    const auto on = line.find(" on " + table + "_");
    if (on == std::string::npos || line.find("never executed") != std::string::npos) continue;
    const std::string day = line.substr(on + 5 + table.size(), 8);
    if (day.size() == 8 &&
        std::all_of(day.begin(), day.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      ++n;
    }
  }
  return n;
}

std::vector<param> lookup_params(const object_id& id, const object_id& project,
                                 std::pair<timestamp, timestamp> window, timestamp visible = {}) {
  return {param::text(id.to_string()), param::text(project.to_string()),
          param::text(format_rfc3339(window.first)), param::text(format_rfc3339(window.second)),
          param::text(format_rfc3339(visible))};
}

// A node with 30 days' retention holds some 33 day partitions of each table; a lookup by id
// reads the one its id's second points at, not all of them.
TEST_F(pg_delivery_store_test, a_lookup_by_id_reads_one_day_partition_of_each_table) {
  auto a = node("a");
  value(
      "SELECT count(*) FROM (SELECT hookd_day_partition(p, d::date) FROM unnest(ARRAY['events',"
      " 'attempts', 'delivery_history']) AS p, generate_series(date '2026-11-06',"
      " date '2026-12-05', interval '1 day') AS d) made");
  ASSERT_EQ(value("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"), "33");

  // An event at noon, ids of the test clock's second; its delivery fails once, then succeeds.
  ingest_item it = item({webhook_});
  const std::uint32_t second = unix_seconds(at(now_.load()));
  it.record.id = ids_.next(second);
  it.record.deliveries[0].delivery = ids_.next(second);
  const object_id delivery_id = it.record.deliveries[0].delivery;
  ASSERT_TRUE(a->ingest({it}));
  auto pending = a->find_delivery(project_, delivery_id);
  ASSERT_TRUE(pending && *pending);
  ASSERT_EQ(
      a->record_attempts({failed_attempt(*(*pending)->record, at(kNoon + 10), at(kNoon + 20))})
          ->front(),
      record_outcome::recorded);
  now_ = kNoon + 20;  // the retry is due; a still holds it (and its webhook) and it succeeds
  delivery retried = *(*pending)->record;
  retried.attempts = 1;
  ASSERT_EQ(a->record_attempts({succeeded_attempt(retried, at(kNoon + 30))})->front(),
            record_outcome::recorded);

  auto conn = connection::open(uri_);
  ASSERT_TRUE(conn) << conn.error().detail;
  const auto window = pg_delivery_store::lookup_window(delivery_id, timestamp{});
  const std::string plan = explain(*conn, pg_delivery_store::find_delivery_sql(),
                                   lookup_params(delivery_id, project_, window));
  EXPECT_EQ(partitions_read(plan, "delivery_history"), 1) << plan;
  EXPECT_EQ(partitions_read(plan, "attempts"), 1) << plan;
  EXPECT_NE(plan.find("delivery_history_20261206"), std::string::npos) << plan;
  const std::string event_plan = explain(*conn, pg_delivery_store::find_event_sql(),
                                         lookup_params(it.record.id, project_, window));
  EXPECT_EQ(partitions_read(event_plan, "events"), 1) << event_plan;
  EXPECT_EQ(partitions_read(event_plan, "delivery_history"), 1) << event_plan;

  // And the lookups answer through that window.
  auto detail = a->find_delivery(project_, delivery_id);
  ASSERT_TRUE(detail && *detail);
  EXPECT_EQ((*detail)->record->status, delivery_status::succeeded);
  EXPECT_EQ((*detail)->attempts.size(), 2u);
  auto e = a->find_event(project_, it.record.id);
  ASSERT_TRUE(e && *e);
  ASSERT_EQ((*e)->deliveries.size(), 1u);
  EXPECT_EQ((*e)->deliveries[0].status, delivery_status::succeeded);
}

// Reads with a time window or an id lock (and plan) only the day partitions of delivery_history
// the window reaches: a list with `since`, recovery's failed_between and its redeliver (today's
// and the two days made ahead, empty: a window has no end in partition time), a redeliver by id
// (one). Counted from pg_locks inside a transaction on the store's connection: the locks a
// statement keeps until the end of its transaction.
TEST_F(pg_delivery_store_test, windowed_reads_and_redelivery_lock_only_the_days_they_reach) {
  auto a = node("a");
  value(
      "SELECT count(*) FROM (SELECT hookd_day_partition(p, d::date) FROM unnest(ARRAY['events',"
      " 'attempts', 'delivery_history']) AS p, generate_series(date '2026-11-06',"
      " date '2026-12-05', interval '1 day') AS d) made");
  ASSERT_EQ(
      value("SELECT count(*) FROM pg_inherits WHERE inhparent = 'delivery_history'::regclass"),
      "33");
  std::vector<ingest_item> group;
  for (int i = 0; i < 3; ++i) {
    ingest_item it = item({webhook_});
    const std::uint32_t second = unix_seconds(at(now_.load()));
    it.record.id = ids_.next(second);
    it.record.deliveries[0].delivery = ids_.next(second);
    group.push_back(std::move(it));
  }
  ASSERT_TRUE(a->ingest(group));
  std::vector<object_id> failed;
  for (const ingest_item& it : group) {
    auto d = a->find_delivery(project_, it.record.deliveries[0].delivery);
    ASSERT_TRUE(d && *d);
    attempt_record r = succeeded_attempt(*(*d)->record, at(now_.load()));
    r.value.status_code = 500;
    r.after.status = delivery_status::failed;
    ASSERT_EQ(a->record_attempts({r})->front(), record_outcome::recorded);
    failed.push_back(it.record.deliveries[0].delivery);
  }

  const std::string pid = [&] {
    auto r = a->native().exec("SELECT pg_backend_pid()");
    return r ? std::string(r->text(0, 0)) : std::string();
  }();
  ASSERT_FALSE(pid.empty());
  // The day partitions of delivery_history `run` locked, in a transaction rolled back after.
  const auto locked_days = [&](auto run) {
    EXPECT_TRUE(a->native().exec("BEGIN"));
    run();
    const std::string n = value(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        " WHERE l.pid = " +
        pid + " AND c.relname ~ '^delivery_history_[0-9]{8}$'");
    EXPECT_TRUE(a->native().exec("ROLLBACK"));
    return std::stoi(n);
  };
  const timestamp hour_ago = at(kNoon - 3600000);
  constexpr int kWindowDays = 3;  // 2026-12-06, and 12-07 and 12-08 made ahead

  delivery_query all;
  all.project = project_;
  EXPECT_EQ(locked_days([&] {
              auto page = a->list_deliveries(all);
              ASSERT_TRUE(page) << page.error().detail;
              EXPECT_EQ(page->items.size(), 3u);
            }),
            33)
      << "newest first with no window: every day (a cursor bounds nothing, see docs)";
  delivery_query recent = all;
  recent.since = hour_ago;
  recent.statuses.add(delivery_status::failed);
  EXPECT_EQ(locked_days([&] {
              auto page = a->list_deliveries(recent);
              ASSERT_TRUE(page) << page.error().detail;
              EXPECT_EQ(page->items.size(), 3u);
            }),
            kWindowDays);
  EXPECT_EQ(locked_days([&] {
              auto batch = a->failed_between(project_, webhook_, hour_ago, at(kNoon + 3600000), 10,
                                             std::nullopt);
              ASSERT_TRUE(batch) << batch.error().detail;
              EXPECT_EQ(batch->size(), 3u);
            }),
            kWindowDays);
  EXPECT_EQ(locked_days([&] {
              auto changed = a->redeliver(project_, webhook_, failed, hour_ago);
              ASSERT_TRUE(changed) << changed.error().detail;
              EXPECT_EQ(changed->size(), 3u);
            }),
            kWindowDays);
  EXPECT_EQ(locked_days([&] {
              auto changed = a->redeliver(project_, webhook_, {failed[0]});
              ASSERT_TRUE(changed) << changed.error().detail;
              EXPECT_EQ(changed->size(), 1u);
            }),
            1);
  // Committed this time: the delivery is back in the queue, and a redeliver of it again (now
  // pending: found in the queue, not in the history) still answers.
  auto back = a->redeliver(project_, webhook_, {failed[1]});
  ASSERT_TRUE(back);
  EXPECT_EQ(back->size(), 1u);
  EXPECT_EQ(value("SELECT count(*) FROM deliveries"), "1");
  auto again = a->redeliver(project_, webhook_, {failed[1]});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->size(), 1u);
}

// The partition is the day the ingest COMMITTED, not the day of the id's second: an event made at
// 23:59:59.9 and committed at 00:00:00.3 lives in the next day's partitions. The first look must
// find it there (a window keyed on the id's day alone would not).
TEST_F(pg_delivery_store_test, a_row_committed_just_after_midnight_is_found_by_the_first_look) {
  const std::int64_t midnight = kNoon + kDayMs / 2;  // 2026-12-07 00:00:00 UTC
  now_ = midnight + 300;
  auto a = node("a");
  ingest_item it = item({webhook_, other_webhook_});
  it.record.time = at(midnight - 100);
  const std::uint32_t second = unix_seconds(it.record.time);
  it.record.id = ids_.next(second);
  for (auto& f : it.record.deliveries) f.delivery = ids_.next(second);
  ASSERT_TRUE(a->ingest({it}));
  EXPECT_EQ(value("SELECT tableoid::regclass FROM events"), "events_20261207");
  // One delivery finishes (into delivery_history_20261207), the other stays pending.
  const object_id finished = it.record.deliveries[0].delivery;
  auto d = a->find_delivery(project_, finished);
  ASSERT_TRUE(d && *d);
  ASSERT_EQ(a->record_attempts({succeeded_attempt(*(*d)->record, at(midnight + 400))})->front(),
            record_outcome::recorded);
  EXPECT_EQ(value("SELECT tableoid::regclass FROM delivery_history"), "delivery_history_20261207");

  auto conn = connection::open(uri_);
  ASSERT_TRUE(conn) << conn.error().detail;
  const auto window = pg_delivery_store::lookup_window(finished, timestamp{});
  auto found =
      conn->exec(pg_delivery_store::find_delivery_sql(), lookup_params(finished, project_, window));
  ASSERT_TRUE(found) << found.error().detail;
  EXPECT_EQ(found->size(), 1) << "the first look missed a delivery committed after midnight";
  auto event_found = conn->exec(pg_delivery_store::find_event_sql(),
                                lookup_params(it.record.id, project_, window));
  ASSERT_TRUE(event_found) << event_found.error().detail;
  EXPECT_EQ(event_found->size(), 2) << "the first look missed an event committed after midnight";

  auto detail = a->find_delivery(project_, finished);
  ASSERT_TRUE(detail && *detail);
  EXPECT_EQ((*detail)->attempts.size(), 1u);
  auto e = a->find_event(project_, it.record.id);
  ASSERT_TRUE(e && *e);
  EXPECT_EQ((*e)->deliveries.size(), 2u);
}

// /metrics' history figures come from the catalog's statistics and file sizes: what is on disk
// and the oldest day holding rows, without reading a table.
TEST_F(pg_delivery_store_test, the_history_is_measured_from_its_day_partitions) {
  auto a = node("a");
  auto empty = a->measure_history();
  ASSERT_TRUE(empty) << empty.error().detail;
  EXPECT_FALSE(empty->oldest_day) << "no day holds rows yet";

  now_ = kNoon - kDayMs;
  ASSERT_TRUE(a->ensure_partitions());
  std::vector<ingest_item> group;
  for (int i = 0; i < 50; ++i) group.push_back(item({webhook_}));
  ASSERT_TRUE(a->ingest(group));
  now_ = kNoon;
  ASSERT_TRUE(a->ingest({item({webhook_})}));
  shared_pg_cluster()->execute(database_, "ANALYZE events");
  auto before_analyze = a->measure_history();
  ASSERT_TRUE(before_analyze);
  EXPECT_EQ(before_analyze->deliveries, 0u);

  // Three of the deliveries finish: delivery_history holds them once ANALYZE has counted.
  for (int i = 0; i < 3; ++i) {
    auto d = a->find_delivery(project_,
                              group[static_cast<std::size_t>(i)].record.deliveries[0].delivery);
    ASSERT_TRUE(d && *d);
    ASSERT_EQ(a->record_attempts({succeeded_attempt(*(*d)->record, at(now_.load()))})->front(),
              record_outcome::recorded);
  }
  shared_pg_cluster()->execute(database_, "ANALYZE delivery_history");

  auto measured = a->measure_history();
  ASSERT_TRUE(measured) << measured.error().detail;
  EXPECT_GT(measured->bytes, empty->bytes);
  const std::int64_t partitions_bytes = std::stoll(
      value("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c"
            " ON c.oid = i.inhrelid WHERE i.inhparent IN ('events'::regclass,"
            " 'attempts'::regclass, 'delivery_history'::regclass)"));
  EXPECT_EQ(measured->bytes, static_cast<std::uint64_t>(partitions_bytes));
  EXPECT_EQ(measured->rows, 54u) << "ANALYZE counted the 51 events and 3 finished deliveries";
  EXPECT_EQ(measured->deliveries, 3u) << "the finished deliveries alone";
  ASSERT_TRUE(measured->oldest_day);
  EXPECT_EQ(*measured->oldest_day, at(kNoon - kDayMs - kDayMs / 2)) << "2026-12-05 00:00 UTC";
}

// Retention drops a day's partitions only after the day has passed: until then reads answer for
// what is older than the retention as if it were gone already (as the embedded store does),
// except pending deliveries, which are kept however old.
TEST_F(pg_delivery_store_test, reads_hide_what_is_older_than_the_retention_before_its_day_drops) {
  now_ = kNoon - 2 * kDayMs;
  auto a = node("a", 30s, std::chrono::milliseconds(kDayMs));
  std::vector<ingest_item> old{item({webhook_}), item({webhook_})};
  ASSERT_TRUE(a->ingest(old));
  const object_id done_id = old[0].record.deliveries[0].delivery;
  const object_id pending_id = old[1].record.deliveries[0].delivery;
  auto d = a->find_delivery(project_, done_id);
  ASSERT_TRUE(d && *d);
  ASSERT_EQ(a->record_attempts({succeeded_attempt(*(*d)->record, at(now_.load() + 10))})->front(),
            record_outcome::recorded);
  // Within the retention, everything shows.
  now_ = kNoon - 2 * kDayMs + 3600000;
  EXPECT_TRUE(*a->find_delivery(project_, done_id));
  EXPECT_TRUE(*a->find_event(project_, old[0].record.id));

  // Two days later, past the one-day retention; no sweep has run, the rows are still there.
  now_ = kNoon;
  std::vector<ingest_item> recent{item({webhook_})};
  ASSERT_TRUE(a->ingest(recent));
  ASSERT_TRUE(a->record_attempts({succeeded_attempt(
      *(*a->find_delivery(project_, recent[0].record.deliveries[0].delivery))->record,
      at(kNoon + 10))}));
  EXPECT_EQ(value("SELECT count(*) FROM delivery_history"), "2");
  EXPECT_EQ(value("SELECT count(*) FROM events"), "3");

  auto gone = a->find_delivery(project_, done_id);
  ASSERT_TRUE(gone) << gone.error().detail;
  EXPECT_FALSE(*gone) << "a finished delivery older than the retention is still shown";
  EXPECT_FALSE(*a->find_event(project_, old[0].record.id));
  EXPECT_FALSE(*a->find_event(project_, old[1].record.id));
  auto kept = a->find_delivery(project_, pending_id);
  ASSERT_TRUE(kept && *kept) << "a pending delivery is kept however old";
  EXPECT_EQ((*kept)->record->status, delivery_status::pending);

  delivery_query q;
  q.project = project_;
  q.limit = 100;
  auto page = a->list_deliveries(q);
  ASSERT_TRUE(page) << page.error().detail;
  std::set<object_id> listed;
  for (const auto& listed_one : page->items) listed.insert(listed_one->id);
  EXPECT_EQ(listed, (std::set<object_id>{pending_id, recent[0].record.deliveries[0].delivery}));
  q.statuses.add(delivery_status::succeeded);
  page = a->list_deliveries(q);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0]->id, recent[0].record.deliveries[0].delivery);

  // A store without a retention shows everything.
  auto b = node("b");
  EXPECT_TRUE(*b->find_delivery(project_, done_id));
  EXPECT_TRUE(*b->find_event(project_, old[0].record.id));
}

TEST_F(pg_delivery_store_test, nodes_starting_together_on_an_empty_database_all_open) {
  // Each open migrates and creates the day partitions: four at once queue on the advisory locks
  // instead of failing on one another's CREATE TABLE.
  constexpr int kNodes = 4;
  std::vector<std::string> failures(kNodes);
  std::vector<std::thread> nodes;
  std::atomic<int> ready{0};
  for (int i = 0; i < kNodes; ++i) {
    nodes.emplace_back([&, i] {
      ++ready;
      while (ready.load() < kNodes) {
      }
      try {
        (void)node("n" + std::to_string(i));
      } catch (const std::exception& e) {
        failures[static_cast<std::size_t>(i)] = e.what();
      }
    });
  }
  for (auto& t : nodes) t.join();
  for (const auto& f : failures) EXPECT_EQ(f, "");
  EXPECT_EQ(value("SELECT count(*) FROM pg_inherits WHERE inhparent IN ('events'::regclass,"
                  " 'attempts'::regclass, 'delivery_history'::regclass)"),
            "9")
      << "three days of three tables";
}

TEST_F(pg_delivery_store_test, a_missing_days_partition_is_made_when_a_row_needs_it) {
  auto a = node("a");
  shared_pg_cluster()->execute(database_, "DROP TABLE events_20261206");
  auto r = a->ingest({item({webhook_})});
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(value("SELECT count(*) FROM events_20261206"), "1");
}

TEST_F(pg_delivery_store_test, cancel_erase_and_delete_are_set_based_and_complete) {
  auto a = node("a");
  std::vector<ingest_item> group{item({webhook_, other_webhook_}, "order.created", "user-1"),
                                 item({webhook_}, "order.created", "user-1"),
                                 item({other_webhook_}, "order.created", "user-2")};
  ASSERT_TRUE(a->ingest(group));
  // One attempt on user-1's first delivery, so that erasing has attempts to erase.
  auto d = a->find_delivery(project_, group[0].record.deliveries[0].delivery);
  ASSERT_EQ(
      a->record_attempts({failed_attempt(*(*d)->record, at(kNoon), at(kNoon + 1000))})->front(),
      record_outcome::recorded);

  // An attempt of other_webhook_'s is in flight while the webhook is deleted.
  auto in_flight = a->find_delivery(project_, group[2].record.deliveries[0].delivery);
  ASSERT_TRUE(in_flight && *in_flight);
  auto cancelled = a->cancel_webhook(other_webhook_);
  ASSERT_TRUE(cancelled) << cancelled.error().detail;
  EXPECT_EQ(*cancelled, 2u);
  auto landed = a->record_attempts({succeeded_attempt(*(*in_flight)->record, at(kNoon + 5))});
  ASSERT_TRUE(landed) << landed.error().detail;
  EXPECT_EQ(landed->front(), record_outcome::recorded_late);
  auto c = a->find_delivery(project_, group[2].record.deliveries[0].delivery);
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->record->status, delivery_status::failed);
  EXPECT_EQ((*c)->record->reason, std::string(kReasonWebhookDeleted));
  EXPECT_EQ((*c)->record->attempts, 1u) << "the late attempt counts";
  EXPECT_EQ((*c)->attempts.size(), 1u);
  EXPECT_EQ(value("SELECT count(*) FROM deliveries WHERE webhook_id = '" +
                  other_webhook_.to_string() + "'"),
            "0");

  auto erased = a->erase_subject(project_, "user-1");
  ASSERT_TRUE(erased) << erased.error().detail;
  EXPECT_EQ(*erased, 2u);
  EXPECT_FALSE(*a->find_event(project_, group[0].record.id));
  EXPECT_FALSE(*a->find_delivery(project_, group[0].record.deliveries[1].delivery));
  EXPECT_EQ(value("SELECT string_agg(delivery_id, ',') FROM attempts"),
            group[2].record.deliveries[0].delivery.to_string())
      << "user-1's attempt is erased, user-2's stays";
  EXPECT_EQ(value("SELECT count(*) FROM deliveries"), "0");
  EXPECT_TRUE(*a->find_event(project_, group[2].record.id)) << "user-2's event stays";

  // Another project's rows survive the project's deletion.
  const object_id kept_project = project_;
  project_ = ids_.next();
  std::vector<ingest_item> other{item({webhook_})};
  ASSERT_TRUE(a->ingest(other));
  auto deleted = a->delete_project(kept_project);
  ASSERT_TRUE(deleted) << deleted.error().detail;
  EXPECT_EQ(*deleted, 0u);
  EXPECT_EQ(value("SELECT count(*) FROM events"), "1");
  EXPECT_EQ(value("SELECT count(*) FROM delivery_history"), "0");
  EXPECT_EQ(value("SELECT count(*) FROM attempts"), "0");
  auto last = a->delete_project(project_);
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 1u);
  EXPECT_EQ(value("SELECT count(*) FROM events"), "0");
  EXPECT_EQ(value("SELECT count(*) FROM deliveries"), "0");
}

// Migration 4 moves the keys of version 3's table into day partitions of their own; they still
// answer (a live key replays, an expired one is new again).
TEST_F(pg_delivery_store_test, migration_4_moves_version_3_keys_into_day_partitions) {
  const object_id token = ids_.next();
  ingest_item first = keyed("live", "body", token);
  {
    auto c = connection::open(uri_);
    ASSERT_TRUE(c);
    ASSERT_TRUE(migrate(*c, embedded_migrations().first(3)));
    const auto row = [&](const std::string& key, const std::string& event, const char* created) {
      return "INSERT INTO idempotency_keys VALUES ('" + token.to_string() + "', '" + key +
             "', sha256('body'), '" + event + "', 'order.created', now(), 1, '" + created + "');";
    };
    ASSERT_TRUE(c->exec_script(row("live", first.record.id.to_string(), "2026-12-06 11:00:00+00") +
                               row("old", ids_.next().to_string(), "2026-12-04 11:00:00+00")));
  }
  auto a = node("a");  // applies migration 4
  EXPECT_EQ(value("SELECT string_agg(key || ':' || tableoid::regclass::text, ',' ORDER BY key)"
                  " FROM idempotency_keys"),
            "live:idempotency_keys_20261206,old:idempotency_keys_20261204");
  EXPECT_EQ(value("SELECT to_regclass('idempotency_keys_v3') IS NULL"), "t");
  auto live = a->ingest({keyed("live", "body", token)});
  ASSERT_TRUE(live) << live.error().detail;
  EXPECT_EQ(live->front().outcome, ingest_outcome::replay);
  EXPECT_EQ(live->front().event, first.record.id);
  auto old = a->ingest({keyed("old", "body", token)});
  ASSERT_TRUE(old) << old.error().detail;
  EXPECT_EQ(old->front().outcome, ingest_outcome::created);
}

TEST_F(pg_delivery_store_test, migration_2_moves_version_1_rows_out_of_the_default_partitions) {
  {
    auto c = connection::open(uri_);
    ASSERT_TRUE(c);
    ASSERT_TRUE(migrate(*c, embedded_migrations().first(1)));
    // Version 1 rows: an event and an attempt in the default partitions, a finished delivery
    // and a pending one in `deliveries`.
    ASSERT_TRUE(c->exec_script(
        "INSERT INTO events (id, organization_id, project_id, type, data, event_time, created_at)"
        " VALUES ('000000000000000000000001', '000000000000000000000002',"
        " '000000000000000000000003', 'order.created', '{}', now(), '2026-11-30 10:00:00+00');"
        "INSERT INTO deliveries (id, event_id, event_created_at, webhook_id, project_id, type,"
        " status, attempts, due_at, created_at, updated_at) VALUES"
        " ('000000000000000000000005', '000000000000000000000001', '2026-11-30 10:00:00+00',"
        " '000000000000000000000006', '000000000000000000000003', 'order.created', 'succeeded',"
        " 1, NULL, now(), now()),"
        " ('000000000000000000000007', '000000000000000000000001', '2026-11-30 10:00:00+00',"
        " '000000000000000000000008', '000000000000000000000003', 'order.created', 'pending', 0,"
        " now(), now(), now());"
        "INSERT INTO attempts (delivery_id, number, at, duration_ms, status_code, response,"
        " created_at) VALUES ('000000000000000000000005', 1, now(), 5, 200, 'ok',"
        " '2026-11-30 10:00:00+00')"));
  }
  auto a = node("a");  // applies migration 2
  EXPECT_EQ(value("SELECT to_regclass('events_default') IS NULL"), "t");
  EXPECT_EQ(value("SELECT tableoid::regclass::text FROM events"), "events_20261130");
  EXPECT_EQ(value("SELECT tableoid::regclass::text FROM attempts"), "attempts_20261130");
  EXPECT_EQ(value("SELECT tableoid::regclass::text || ':' || status FROM delivery_history"),
            "delivery_history_20261130:succeeded");
  EXPECT_EQ(value("SELECT id FROM deliveries"), "000000000000000000000007");
  const object_id project = *object_id::parse("000000000000000000000003");
  auto finished = a->find_delivery(project, *object_id::parse("000000000000000000000005"));
  ASSERT_TRUE(finished && *finished) << (finished ? "" : finished.error().detail);
  EXPECT_EQ((*finished)->record->status, delivery_status::succeeded);
  EXPECT_EQ((*finished)->attempts.size(), 1u);
}

TEST_F(pg_delivery_store_test, an_ingest_writes_no_lease_row_it_need_not_change) {
  auto a = node("a");
  auto b = node("b");
  const std::string where = " WHERE webhook_id = '" + webhook_.to_string() + "'";
  const std::string row = "FROM webhook_leases" + where;
  std::vector<ingest_item> first{item({webhook_})};
  ASSERT_TRUE(a->ingest(first));
  const std::string version = value("SELECT xmin::text " + row);

  // a holds the webhook with most of its lease left: its next ingest is leased the delivery and
  // returns the webhook as held, without writing the row (the renewal extends the lease).
  std::vector<ingest_item> second{item({webhook_})};
  lease_news kept;
  ASSERT_TRUE(a->ingest(second, &kept));
  ASSERT_EQ(kept.held.size(), 1u);
  EXPECT_EQ(kept.held[0].webhook, webhook_);
  EXPECT_TRUE(kept.not_leased.empty());
  EXPECT_EQ(value("SELECT xmin::text " + row), version);

  // Another node's ingest for it neither writes nor waits for the row: while a statement of a
  // holds the row (here a renewal left open), b's ingest commits, its delivery left to a.
  auto open = node("a-renewing");
  ASSERT_TRUE(open->native().exec("BEGIN"));
  ASSERT_TRUE(open->native().exec("UPDATE webhook_leases SET lease_until = lease_until" + where));
  ASSERT_TRUE(b->native().exec("SET statement_timeout = '3s'"));
  std::vector<ingest_item> third{item({webhook_})};
  lease_news elsewhere;
  auto ingested = b->ingest(third, &elsewhere);
  ASSERT_TRUE(ingested) << "b waited for a's row lock: " << ingested.error().detail;
  EXPECT_TRUE(elsewhere.held.empty());
  EXPECT_EQ(elsewhere.not_leased, delivery_ids(third));
  ASSERT_TRUE(open->native().exec("COMMIT"));

  // With less than half of its lease left, a's ingest extends it.
  ASSERT_TRUE(
      a->native().exec("UPDATE webhook_leases SET lease_until = now() + interval '5s'" + where));
  lease_news renewed;
  ASSERT_TRUE(a->ingest({item({webhook_})}, &renewed));
  ASSERT_EQ(renewed.held.size(), 1u);
  EXPECT_EQ(value("SELECT lease_until > now() + interval '25 seconds' " + row), "t");
  EXPECT_EQ(value("SELECT owner " + row), "a");
}

TEST_F(pg_delivery_store_test, an_ingest_racing_a_release_of_its_webhook_takes_it_again) {
  auto a = node("a");
  auto a_claimer = node("a");  // the same node's other connection
  const std::string where = " WHERE webhook_id = '" + webhook_.to_string() + "'";
  ASSERT_TRUE(a->ingest({item({webhook_})}));
  // The claimer gives the webhook up (idle), not committed yet, while the writer ingests for it:
  // the ingest waits for the release and then takes the webhook again, so that the delivery it
  // leases to a is of a webhook a holds.
  ASSERT_TRUE(a_claimer->native().exec("BEGIN"));
  ASSERT_TRUE(a_claimer->native().exec(
      "UPDATE webhook_leases SET owner = NULL, lease_until = NULL" + where));
  std::vector<ingest_item> during{item({webhook_})};
  lease_news news;
  std::thread writer([&] { ASSERT_TRUE(a->ingest(during, &news)); });
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(a_claimer->native().exec("COMMIT"));
  writer.join();
  ASSERT_EQ(news.held.size(), 1u);
  EXPECT_TRUE(news.not_leased.empty());
  EXPECT_EQ(value("SELECT owner FROM webhook_leases" + where), "a");
  EXPECT_EQ(value("SELECT lease_owner FROM deliveries WHERE id = '" +
                  delivery_ids(during)[0].to_string() + "'"),
            "a");
}

}  // namespace
}  // namespace hookd::pg
