// pg_delivery_log, a node's delivery engine on PostgreSQL, against a private PostgreSQL server
// (tests/support/pg_cluster.hpp), a fresh database per test. Engines with different node names
// on one database stand for the nodes of a cluster; the scheduler is driven by hand, as the
// dispatcher drives it.

#include "storage/postgres/pg_delivery_log.hpp"

#include "core/common/completion.hpp"
#include "core/delivery/endpoint_health.hpp"
#include "support/memory_storage.hpp"
#include "tests/support/pg_cluster.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace hookd::pg {
namespace {

using hookd::testing::shared_pg_cluster;
using namespace std::chrono_literals;

class pg_delivery_log_test : public ::testing::Test {
 protected:
  void SetUp() override {
    HOOKD_REQUIRE_PG();
    database_ = shared_pg_cluster()->create_database();
    uri_ = shared_pg_cluster()->uri(database_);
    ASSERT_TRUE(cat_.load());
    cat_.start();
    auto org = wait_for<std::shared_ptr<const organization>>(
        [&](auto done) { cat_.create_organization({"Acme"}, std::move(done)); });
    ASSERT_TRUE(org);
    org_ = (*org)->id;
    project_input in;
    in.name = "Shop";
    in.slug = "shop";
    auto p = wait_for<std::shared_ptr<const project>>(
        [&](auto done) { cat_.create_project(org_, std::move(in), std::move(done)); });
    ASSERT_TRUE(p);
    project_ = (*p)->id;
  }

  void TearDown() override { cat_.stop(); }

  object_id make_webhook(std::vector<std::string> events, bool active = true) {
    webhook_input in;
    in.name = "hook " + std::to_string(++webhooks_);
    in.url = "https://example.com/" + std::to_string(webhooks_);
    in.events = std::move(events);
    in.active = active;
    auto w = wait_for<std::shared_ptr<const webhook>>(
        [&](auto done) { cat_.create_webhook(org_, project_, std::move(in), std::move(done)); });
    EXPECT_TRUE(w) << w.error().detail;
    return w ? (*w)->id : object_id{};
  }

  // An engine as node `name`, loaded and started. The scheduler's caps are its own tests'
  // business: here a test may take every due job at once.
  std::unique_ptr<pg_delivery_log> node(const std::string& name,
                                        std::chrono::milliseconds lease = 30s,
                                        std::chrono::milliseconds claim_interval = 50ms) {
    pg_delivery_log_options o;
    o.store.uri = uri_;
    o.store.node = name;
    o.store.lease = lease;
    o.log.scheduling.max_in_flight = 100'000;
    o.log.scheduling.max_in_flight_per_webhook = 100'000;
    o.log.scheduling.max_in_flight_per_organization = 100'000;
    o.claim_interval = claim_interval;
    o.finish_deleted_projects = finish_deleted_projects_;
    auto engine = std::make_unique<pg_delivery_log>(cat_, std::move(o));
    auto loaded = engine->load();
    if (!loaded) throw std::runtime_error(loaded.error().detail);
    engine->start();
    return engine;
  }

  ingest_request request(std::string type = "order.created") {
    ingest_request r;
    r.token = token_;
    r.organization = org_;
    r.project = project_;
    r.type = std::move(type);
    r.data = R"({"n":1})";
    return r;
  }

  static result<ingest_result> ingest(pg_delivery_log& e, ingest_request r) {
    return wait_for<ingest_result>([&](auto done) { e.ingest(std::move(r), std::move(done)); });
  }

  // Takes every due job of `e`'s scheduler and records `status` for each; returns the ids
  // recorded (those the store accepted).
  static std::vector<object_id> attempt_due(pg_delivery_log& e, int status,
                                            timestamp retry_at = timestamp{}) {
    std::vector<object_id> recorded;
    const due_jobs due = e.jobs().take_due(e.now(), 100'000);
    for (const scheduled_job& job : due.ready) {
      const auto held = e.find_pending(job.delivery);
      if (!held) {
        e.jobs().done(job.delivery);
        continue;
      }
      attempt a;
      a.number = held->record->attempts + 1;
      a.at = e.now();
      a.status_code = status;
      const attempt_decision decision =
          status < 300 ? attempt_decision::succeeded() : attempt_decision::retry(retry_at);
      e.jobs().sent(job.delivery);
      auto r = wait_for<std::shared_ptr<const delivery>>(
          [&](auto done) { e.record_attempt(held->record, a, decision, std::move(done)); });
      if (r) recorded.push_back(job.delivery);
    }
    return recorded;
  }

  std::string value(const std::string& sql) {
    return shared_pg_cluster()->query_value(database_, sql);
  }

  std::string database_;
  std::string uri_;
  hookd::testing::memory_storage store_;
  catalog cat_{store_, catalog_options{}};
  object_id org_, project_;
  object_id token_ = object_id::parse("65a0f1c2aabbccddee0000dd").value();
  int webhooks_ = 0;
  // The catalog is in memory here: the database's `projects` table stays empty.
  bool finish_deleted_projects_ = false;
};

TEST_F(pg_delivery_log_test, an_ingest_holds_its_deliveries_on_the_scheduler_without_a_claim) {
  const object_id hook = make_webhook({"order.*"});
  make_webhook({"invoice.paid"});          // another type: no delivery
  make_webhook({"order.created"}, false);  // inactive: no delivery
  auto a = node("a");
  auto r = ingest(*a, request());
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->deliveries, 1u);
  EXPECT_FALSE(r->replay);
  EXPECT_EQ(a->pending_count(), 1u);
  const due_jobs due = a->jobs().take_due(a->now(), 10);
  ASSERT_EQ(due.ready.size(), 1u);
  EXPECT_EQ(due.ready[0].webhook, hook);
  const auto held = a->find_pending(due.ready[0].delivery);
  ASSERT_TRUE(held);
  EXPECT_EQ(held->source_event->id, r->event);
  EXPECT_EQ(value("SELECT lease_owner FROM deliveries"), "a");
  // The read API finds it in the database.
  auto detail = a->find_event(project_, r->event);
  ASSERT_TRUE(detail && *detail);
  EXPECT_EQ((*detail)->deliveries.size(), 1u);
}

// /metrics' history gauges on PostgreSQL: measured at each retention pass (the first at load),
// never by a query per scrape.
TEST_F(pg_delivery_log_test, the_history_figures_are_the_day_partitions_as_of_the_last_pass) {
  make_webhook({"order.*"});
  auto a = node("a");
  const history_stats empty = a->history();
  EXPECT_GT(empty.bytes, 0u) << "the empty day partitions' indexes have pages";
  EXPECT_FALSE(empty.oldest_age) << "no day holds rows";
  ASSERT_TRUE(ingest(*a, request()));
  EXPECT_FALSE(a->history().oldest_age) << "shown as of the last pass, not measured per call";

  auto b = node("b");  // its load runs a pass
  const history_stats h = b->history();
  EXPECT_GT(h.bytes, empty.bytes);
  ASSERT_TRUE(h.oldest_age);
  EXPECT_GE(*h.oldest_age, std::chrono::milliseconds::zero());
  EXPECT_LT(*h.oldest_age, std::chrono::hours(24)) << "today's partition is the oldest with rows";
  EXPECT_EQ(b->counts().history_deliveries, 0u) << "nothing finished yet";

  // hookd_history_deliveries: the finished deliveries as the statistics estimate them, as of
  // the last pass (a node's load runs one).
  ASSERT_EQ(attempt_due(*a, 200).size(), 1u);
  shared_pg_cluster()->execute(database_, "ANALYZE delivery_history");
  EXPECT_EQ(a->counts().history_deliveries, 0u) << "shown as of the last pass";
  auto c = node("c");
  EXPECT_EQ(c->counts().history_deliveries, 1u);
}

TEST_F(pg_delivery_log_test, an_idempotency_key_replays_its_first_answer_and_refuses_another_body) {
  make_webhook({"*"});
  auto a = node("a");
  auto first = request();
  first.idempotency_key = "k1";
  auto r1 = ingest(*a, first);
  ASSERT_TRUE(r1) << r1.error().detail;
  auto r2 = ingest(*a, first);
  ASSERT_TRUE(r2) << r2.error().detail;
  EXPECT_TRUE(r2->replay);
  EXPECT_EQ(r2->event, r1->event);
  EXPECT_EQ(a->pending_count(), 1u);  // the replay created nothing
  auto other = request();
  other.idempotency_key = "k1";
  other.data = R"({"n":2})";
  auto r3 = ingest(*a, other);
  ASSERT_FALSE(r3);
  EXPECT_EQ(r3.error().kind, error_kind::conflict);
  EXPECT_EQ(value("SELECT count(*) FROM events"), "1");
}

TEST_F(pg_delivery_log_test, a_success_finishes_and_a_retry_stays_with_the_webhooks_node) {
  make_webhook({"*"});
  auto a = node("a");
  ASSERT_TRUE(ingest(*a, request()));
  ASSERT_TRUE(ingest(*a, request()));
  const due_jobs due = a->jobs().take_due(a->now(), 10);
  ASSERT_EQ(due.ready.size(), 2u);
  const auto ok = *a->find_pending(due.ready[0].delivery);
  const auto busy = *a->find_pending(due.ready[1].delivery);

  attempt first;
  first.number = 1;
  first.at = a->now();
  first.status_code = 200;
  auto done = wait_for<std::shared_ptr<const delivery>>([&](auto cb) {
    a->record_attempt(ok.record, first, attempt_decision::succeeded(), std::move(cb));
  });
  ASSERT_TRUE(done) << done.error().detail;
  EXPECT_EQ((*done)->status, delivery_status::succeeded);
  EXPECT_FALSE(a->find_pending(ok.record->id));
  auto stored = a->find_delivery(project_, ok.record->id);
  ASSERT_TRUE(stored && *stored);
  EXPECT_EQ((*stored)->record->status, delivery_status::succeeded);
  EXPECT_EQ((*stored)->attempts.size(), 1u);

  // A retry one hour ahead: still this node's (it holds the webhook), in memory with its new
  // attempt count, its lease renewed in the database; nobody claims it.
  attempt failed = first;
  failed.status_code = 503;
  const timestamp later = a->now() + 1h;
  auto retried = wait_for<std::shared_ptr<const delivery>>([&](auto cb) {
    a->record_attempt(busy.record, failed, attempt_decision::retry(later), std::move(cb));
  });
  ASSERT_TRUE(retried) << retried.error().detail;
  EXPECT_EQ((*retried)->status, delivery_status::pending);
  const auto kept = a->find_pending(busy.record->id);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->record->attempts, 1u);
  EXPECT_EQ(kept->record->next_attempt_at, later);
  EXPECT_EQ(value("SELECT count(*) FROM deliveries WHERE lease_owner = 'a'"), "1");
  EXPECT_EQ(a->held_webhooks().size(), 1u);
  auto claimed = a->claim_now();
  ASSERT_TRUE(claimed);
  EXPECT_EQ(*claimed, 0u);

  // The same attempt number again is refused.
  auto again = wait_for<std::shared_ptr<const delivery>>([&](auto cb) {
    a->record_attempt(ok.record, first, attempt_decision::succeeded(), std::move(cb));
  });
  EXPECT_FALSE(again);
  const auto c = a->counters();
  EXPECT_EQ(c.attempts, 2u);
  EXPECT_EQ(c.succeeded, 1u);
  EXPECT_EQ(c.retries, 1u);
}

TEST_F(pg_delivery_log_test,
       two_nodes_ingesting_for_two_webhooks_leave_every_attempt_to_the_webhooks_node) {
  make_webhook({"*"});
  make_webhook({"order.*"});
  auto a = node("a");
  auto b = node("b");
  constexpr int kEvents = 500;  // two webhooks each: 1 000 deliveries
  std::vector<std::thread> producers;
  for (pg_delivery_log* e : {a.get(), b.get()}) {
    producers.emplace_back([this, e] {
      for (int i = 0; i < kEvents / 2; ++i) ASSERT_TRUE(ingest(*e, request()));
    });
  }
  for (auto& t : producers) t.join();

  // Every first attempt fails with a retry due at once. The node that took the webhooks (the
  // first ingest: every event goes to both) makes every attempt: the other node's ingests are
  // claimed by it, woken by NOTIFY, and the retries stay with it.
  std::mutex m;
  std::multiset<object_id> succeeded;
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (pg_delivery_log* e : {a.get(), b.get()}) {
    workers.emplace_back([&, e] {
      while (!stop) {
        const due_jobs due = e->jobs().take_due(e->now(), 100'000);
        for (const scheduled_job& job : due.ready) {
          const auto held = e->find_pending(job.delivery);
          if (!held) {
            e->jobs().done(job.delivery);
            continue;
          }
          attempt at;
          at.number = held->record->attempts + 1;
          at.at = e->now();
          const bool first = at.number == 1;
          at.status_code = first ? 503 : 200;
          e->jobs().sent(job.delivery);
          auto r = wait_for<std::shared_ptr<const delivery>>([&](auto done) {
            e->record_attempt(
                held->record, at,
                first ? attempt_decision::retry(e->now()) : attempt_decision::succeeded(),
                std::move(done));
          });
          if (r && !first) {
            std::lock_guard lock(m);
            succeeded.insert(job.delivery);
          }
        }
        std::this_thread::sleep_for(5ms);
      }
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(m);
      if (succeeded.size() >= 2u * kEvents) break;
    }
    std::this_thread::sleep_for(20ms);
  }
  stop = true;
  for (auto& t : workers) t.join();
  EXPECT_EQ(succeeded.size(), 2u * kEvents);
  EXPECT_EQ(std::set<object_id>(succeeded.begin(), succeeded.end()).size(), succeeded.size());
  EXPECT_EQ(value("SELECT count(*) FROM attempts"), std::to_string(4 * kEvents));
  EXPECT_EQ(value("SELECT count(*) FROM deliveries"), "0");
  // One node did all of the work.
  EXPECT_EQ(a->counters().succeeded + b->counters().succeeded, 2u * kEvents);
  EXPECT_EQ(std::min(a->counters().attempts, b->counters().attempts), 0u);
  EXPECT_EQ(value("SELECT count(DISTINCT owner) FROM webhook_leases"), "1");
}

TEST_F(pg_delivery_log_test,
       a_node_gone_without_stopping_leaves_its_jobs_to_another_after_the_lease) {
  make_webhook({"*"});
  auto a = node("a", 1s);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(ingest(*a, request()));
  a.reset();  // as kill -9: no release
  auto b = node("b", 1s);
  auto early = b->claim_now();
  ASSERT_TRUE(early);
  EXPECT_EQ(*early, 0u);  // a's leases still run
  std::this_thread::sleep_for(1500ms);
  (void)b->claim_now();  // the claimer may have taken them already
  EXPECT_EQ(b->pending_count(), 5u);
  EXPECT_EQ(attempt_due(*b, 200).size(), 5u);
  EXPECT_EQ(value("SELECT count(*) FROM deliveries"), "0");
}

TEST_F(pg_delivery_log_test, a_node_that_stops_releases_its_jobs_to_another_at_once) {
  make_webhook({"*"});
  auto a = node("a");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ingest(*a, request()));
  a->stop();
  EXPECT_EQ(a->pending_count(), 0u);
  auto b = node("b");  // load() claims what is due
  EXPECT_EQ(b->pending_count(), 3u);
  EXPECT_EQ(attempt_due(*b, 200).size(), 3u);
}

TEST_F(pg_delivery_log_test, a_node_that_lost_a_lease_cannot_record_and_lets_the_job_go) {
  make_webhook({"*"});
  // a's claimer sleeps for a minute: it never renews, as a node stalled past its lease.
  auto a = node("a", 1s, 60s);
  ASSERT_TRUE(ingest(*a, request()));
  const due_jobs due = a->jobs().take_due(a->now(), 10);
  ASSERT_EQ(due.ready.size(), 1u);
  const auto held = *a->find_pending(due.ready[0].delivery);
  std::this_thread::sleep_for(1300ms);
  auto b = node("b");  // load() claims the expired lease
  ASSERT_EQ(b->pending_count(), 1u);
  attempt at;
  at.number = 1;
  at.at = a->now();
  at.status_code = 200;
  a->jobs().sent(held.record->id);
  auto late = wait_for<std::shared_ptr<const delivery>>([&](auto done) {
    a->record_attempt(held.record, at, attempt_decision::succeeded(), std::move(done));
  });
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().kind, error_kind::conflict);
  EXPECT_FALSE(a->find_pending(held.record->id));  // out of a's memory and scheduler
  EXPECT_EQ(a->jobs().counts().in_flight, 0u);
  EXPECT_EQ(attempt_due(*b, 200).size(), 1u);
  EXPECT_EQ(value("SELECT count(*) FROM attempts"), "1");
}

TEST_F(pg_delivery_log_test, failure_streaks_are_shared_through_the_webhooks_lease) {
  const object_id hook = make_webhook({"*"});
  auto a = node("a");
  ASSERT_TRUE(ingest(*a, request()));  // a holds the webhook
  failure_streak s;
  s.failures = 11;
  s.first_failure_at = a->now() - 1h;
  s.last_failure_at = a->now();
  auto written = wait_for<void>(
      [&](auto done) { a->write_meta(failure_streak_key(hook), encode(s), std::move(done)); });
  ASSERT_TRUE(written) << written.error().detail;
  EXPECT_EQ(value("SELECT failures FROM webhook_leases"), "11");

  // Another node reads it at start...
  std::mutex m;
  std::vector<std::pair<object_id, failure_streak>> got_b;
  auto b = node("b");
  auto loaded = b->set_streak_sink([&](const object_id& id, const failure_streak& f) {
    std::lock_guard lock(m);
    got_b.emplace_back(id, f);
  });
  ASSERT_TRUE(loaded) << loaded.error().detail;
  EXPECT_EQ(*loaded, 1u);
  {
    std::lock_guard lock(m);
    ASSERT_EQ(got_b.size(), 1u);
    EXPECT_EQ(got_b[0].first, hook);
    EXPECT_EQ(got_b[0].second, s);
  }

  // ...and a client reactivating the webhook on b resets it for a, the holder, at once
  // (NOTIFY), not at a's next takeover; a's backlog of it (a retry an hour ahead) goes now.
  const due_jobs first = a->jobs().take_due(a->now(), 10);
  ASSERT_EQ(first.ready.size(), 1u);
  const auto held = *a->find_pending(first.ready[0].delivery);
  attempt failed;
  failed.number = 1;
  failed.at = a->now();
  failed.status_code = 503;
  a->jobs().sent(held.record->id);
  ASSERT_TRUE(wait_for<std::shared_ptr<const delivery>>([&](auto cb) {
    a->record_attempt(held.record, failed, attempt_decision::retry(a->now() + 1h), std::move(cb));
  }));
  EXPECT_TRUE(a->jobs().take_due(a->now(), 10).ready.empty()) << "not due for an hour";
  std::vector<failure_streak> got_a;
  ASSERT_TRUE(a->set_streak_sink([&](const object_id&, const failure_streak& f) {
    std::lock_guard lock(m);
    got_a.push_back(f);
  }));
  {
    std::lock_guard lock(m);
    got_a.clear();
  }
  ASSERT_TRUE(wait_for<void>(
      [&](auto done) { b->write_meta(failure_streak_key(hook), std::nullopt, std::move(done)); }));
  const auto until = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    {
      std::lock_guard lock(m);
      if (!got_a.empty()) break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), until) << "a was not told";
    std::this_thread::sleep_for(10ms);
  }
  {
    std::lock_guard lock(m);
    EXPECT_EQ(got_a.back(), failure_streak{});
  }
  const due_jobs resumed = a->jobs().take_due(a->now(), 10);
  ASSERT_EQ(resumed.ready.size(), 1u);
  EXPECT_EQ(resumed.ready[0].delivery, held.record->id);
}

TEST_F(pg_delivery_log_test, a_webhook_idle_for_twice_the_lease_is_given_up) {
  make_webhook({"*"});
  auto a = node("a", 300ms);
  ASSERT_TRUE(ingest(*a, request()));
  EXPECT_EQ(a->held_webhooks().size(), 1u);
  EXPECT_EQ(attempt_due(*a, 200).size(), 1u);
  // Renewed every 100 ms; given up once nothing of it was held for 600 ms. The claimer forgets it,
  // then frees its lease in the database: wait for both.
  const auto given_up = [&] {
    return a->held_webhooks().empty() && value("SELECT owner IS NULL FROM webhook_leases") == "t";
  };
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!given_up() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(a->held_webhooks().empty());
  EXPECT_EQ(value("SELECT owner IS NULL FROM webhook_leases"), "t");
  // The next node to ingest for it takes it.
  auto b = node("b");
  ASSERT_TRUE(ingest(*b, request()));
  EXPECT_EQ(b->held_webhooks().size(), 1u);
  EXPECT_EQ(b->pending_count(), 1u);
}

TEST_F(pg_delivery_log_test, cancel_erase_delete_and_test_pings) {
  const object_id hook = make_webhook({"*"});
  const object_id inactive = make_webhook({"*"}, false);
  auto a = node("a");
  auto subject = request();
  subject.subject = "user-1";
  ASSERT_TRUE(ingest(*a, subject));
  ASSERT_TRUE(ingest(*a, request()));
  EXPECT_EQ(a->pending_count(), 2u);

  auto erased = wait_for<std::size_t>(
      [&](auto done) { a->erase_subject(project_, "user-1", std::move(done)); });
  ASSERT_TRUE(erased) << erased.error().detail;
  EXPECT_EQ(*erased, 1u);
  EXPECT_EQ(a->pending_count(), 1u);

  auto cancelled =
      wait_for<std::size_t>([&](auto done) { a->cancel_webhook(hook, std::move(done)); });
  ASSERT_TRUE(cancelled) << cancelled.error().detail;
  EXPECT_EQ(*cancelled, 1u);
  EXPECT_EQ(a->pending_count(), 0u);
  EXPECT_TRUE(a->jobs().take_due(a->now(), 10).ready.empty());

  // A test ping goes to an inactive webhook too, and to it alone.
  auto ping = wait_for<std::shared_ptr<const delivery>>(
      [&](auto done) { a->send_test(org_, project_, inactive, std::move(done)); });
  ASSERT_TRUE(ping) << ping.error().detail;
  EXPECT_EQ((*ping)->webhook, inactive);
  EXPECT_TRUE((*ping)->test);
  const due_jobs due = a->jobs().take_due(a->now(), 10);
  ASSERT_EQ(due.ready.size(), 1u);
  EXPECT_EQ(due.ready[0].delivery, (*ping)->id);
  auto unknown = wait_for<std::shared_ptr<const delivery>>(
      [&](auto done) { a->send_test(org_, project_, object_id{}, std::move(done)); });
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, error_kind::not_found);

  auto deleted =
      wait_for<std::size_t>([&](auto done) { a->delete_project(project_, std::move(done)); });
  ASSERT_TRUE(deleted) << deleted.error().detail;
  EXPECT_EQ(*deleted, 1u);
  EXPECT_EQ(a->pending_count(), 0u);
}

TEST_F(pg_delivery_log_test, redeliver_and_recover_put_finished_deliveries_back_for_any_node) {
  const object_id hook = make_webhook({"*"});
  auto a = node("a");
  const timestamp start = a->now();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ingest(*a, request()));
  // All three fail for good (410).
  std::vector<object_id> failed;
  const due_jobs due = a->jobs().take_due(a->now(), 10);
  ASSERT_EQ(due.ready.size(), 3u);
  for (const scheduled_job& job : due.ready) {
    const auto held = *a->find_pending(job.delivery);
    attempt at;
    at.number = 1;
    at.at = a->now();
    at.status_code = 410;
    auto r = wait_for<std::shared_ptr<const delivery>>([&](auto done) {
      a->record_attempt(held.record, at, attempt_decision::failed(kReasonGone), std::move(done));
    });
    ASSERT_TRUE(r) << r.error().detail;
    failed.push_back(job.delivery);
  }
  EXPECT_EQ(value("SELECT count(*) FROM delivery_history WHERE status = 'failed'"), "3");

  auto again = wait_for<std::shared_ptr<const delivery>>(
      [&](auto done) { a->redeliver(project_, hook, failed[0], std::move(done)); });
  ASSERT_TRUE(again) << again.error().detail;
  EXPECT_EQ((*again)->status, delivery_status::pending);
  EXPECT_EQ((*again)->schedule_start, 1u);
  auto missing = wait_for<std::shared_ptr<const delivery>>(
      [&](auto done) { a->redeliver(project_, make_webhook({"*"}), failed[1], std::move(done)); });
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, error_kind::not_found);

  auto recovered = wait_for<std::size_t>(
      [&](auto done) { a->recover(project_, hook, start, std::nullopt, std::move(done)); });
  ASSERT_TRUE(recovered) << recovered.error().detail;
  EXPECT_EQ(*recovered, 2u);  // the two still failed
  EXPECT_EQ(value("SELECT count(*) FROM deliveries WHERE status = 'pending'"), "3");

  // Held by nobody: another node claims them and records attempt 2.
  a->stop();
  auto b = node("b");
  EXPECT_EQ(b->pending_count(), 3u);
  EXPECT_EQ(attempt_due(*b, 200).size(), 3u);
  EXPECT_EQ(value("SELECT count(*) FROM attempts WHERE number = 2"), "3");
}

TEST_F(pg_delivery_log_test, a_start_finishes_the_deletion_of_a_project_no_longer_in_the_database) {
  make_webhook({"*"});
  auto a = node("a");
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(ingest(*a, request()));
  a.reset();  // stopped before its delete_project
  // The database's `projects` table does not have the project (as after its deletion).
  finish_deleted_projects_ = true;
  auto b = node("b");
  EXPECT_EQ(b->counters().deleted, 2u);
  EXPECT_EQ(b->pending_count(), 0u);
  EXPECT_EQ(value("SELECT count(*) FROM deliveries"), "0");
  EXPECT_EQ(value("SELECT count(*) FROM events"), "0");
}

}  // namespace
}  // namespace hookd::pg
