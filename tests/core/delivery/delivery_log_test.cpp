#include "core/delivery/delivery_log.hpp"

#include "support/memory_storage.hpp"
#include "support/test_util.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

namespace hookd {
namespace {

using testing::await;
using testing::collector;
using testing::write_gate;

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::HasSubstr;

constexpr std::int64_t kT0 = 1'700'000'000'000;

class DeliveryLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = cat_.load();
    ASSERT_TRUE(loaded) << loaded.error().detail;
    cat_.start();
    auto org = await<std::shared_ptr<const organization>>(
        [&](auto done) { cat_.create_organization({"Acme"}, std::move(done)); });
    ASSERT_TRUE(org);
    org_ = (*org)->id;
    project_ = make_project("shop");
    other_project_ = make_project("blog");
    open();
  }

  void TearDown() override {
    log_.reset();
    cat_.stop();
  }

  object_id make_project(const std::string& slug) {
    project_input in;
    in.name = "Project " + slug;
    in.slug = slug;
    auto p = await<std::shared_ptr<const project>>(
        [&](auto done) { cat_.create_project(org_, std::move(in), std::move(done)); });
    EXPECT_TRUE(p) << p.error().detail;
    return p ? (*p)->id : object_id{};
  }

  object_id make_webhook(std::vector<std::string> events, bool active = true,
                         std::optional<object_id> in_project = std::nullopt) {
    webhook_input in;
    in.name = "hook " + std::to_string(++webhook_count_);
    in.url = "https://example.com/" + std::to_string(webhook_count_);
    in.events = std::move(events);
    in.active = active;
    auto w = await<std::shared_ptr<const webhook>>([&](auto done) {
      cat_.create_webhook(org_, in_project.value_or(project_), std::move(in), std::move(done));
    });
    EXPECT_TRUE(w) << w.error().detail;
    return w ? (*w)->id : object_id{};
  }

  void set_active(const object_id& webhook_id, bool active) {
    webhook_patch patch;
    patch.active = active;
    auto w = await<std::shared_ptr<const webhook>>([&](auto done) {
      cat_.update_webhook(org_, project_, webhook_id, std::move(patch), std::move(done));
    });
    ASSERT_TRUE(w) << w.error().detail;
  }

  void delete_webhook(const object_id& webhook_id) {
    auto r = await<void>(
        [&](auto done) { cat_.delete_webhook(org_, project_, webhook_id, std::move(done)); });
    ASSERT_TRUE(r) << r.error().detail;
  }

  // (Re)opens the log over the same storage, as a restart would.
  void open(delivery_log_options options = {}) {
    log_.reset();
    log_ = std::make_unique<delivery_log>(store_, cat_, std::move(options),
                                          [this] { return timestamp{milliseconds{now_.load()}}; });
    auto loaded = log_->load();
    ASSERT_TRUE(loaded) << loaded.error().detail;
    log_->start();
  }

  result<delivery_log_counts> reopen_and_load() {
    log_.reset();
    log_ = std::make_unique<delivery_log>(store_, cat_, delivery_log_options{},
                                          [this] { return timestamp{milliseconds{now_.load()}}; });
    return log_->load();
  }

  ingest_request request(std::string type = "order.created", std::string data = R"({"n":1})",
                         std::optional<std::string> key = std::nullopt) {
    ingest_request r;
    r.token = token_;
    r.organization = org_;
    r.project = project_;
    r.type = std::move(type);
    r.data = std::move(data);
    r.idempotency_key = std::move(key);
    return r;
  }

  result<ingest_result> ingest(ingest_request r) {
    return await<ingest_result>([&](auto done) { log_->ingest(std::move(r), std::move(done)); });
  }

  ingest_result ingest_ok(ingest_request r) {
    auto out = ingest(std::move(r));
    EXPECT_TRUE(out) << out.error().detail;
    return out ? *out : ingest_result{};
  }

  result<std::shared_ptr<const delivery>> record(const object_id& delivery_id,
                                                 std::optional<int> status,
                                                 attempt_decision decision) {
    const auto current = log_->find_delivery(delivery_id);
    attempt a;
    a.number = current ? current->record->attempts + 1 : 1;
    a.at = now();
    a.duration = milliseconds{42};
    a.status_code = status;
    a.response = status ? "body " + std::to_string(*status) : "";
    if (!status) a.error = "connection refused";
    return await<std::shared_ptr<const delivery>>([&](auto done) {
      log_->record_attempt(delivery_id, std::move(a), std::move(decision), std::move(done));
    });
  }

  std::vector<std::shared_ptr<const delivery>> deliveries_of(
      const object_id& webhook, std::optional<delivery_status> status = std::nullopt) {
    delivery_query q;
    q.status = status;
    q.limit = kMaxDeliveryPage;
    auto page = log_->list_deliveries(webhook, q);
    EXPECT_TRUE(page);
    return page ? page->items : std::vector<std::shared_ptr<const delivery>>{};
  }

  std::shared_ptr<const delivery> only_delivery_of(const object_id& webhook) {
    auto list = deliveries_of(webhook);
    EXPECT_EQ(list.size(), 1u);
    return list.empty() ? nullptr : list.front();
  }

  // Holds the log's writer in the write of a throwaway event until the gate is released;
  // everything submitted meanwhile forms the next group.
  std::shared_ptr<write_gate> hold_writer() {
    auto gate = std::make_shared<write_gate>();
    store_.set_before_write([gate] { gate->hold(); });
    ingest_request r = request("unrelated.event");
    r.project = other_project_;  // no webhooks there: nothing else changes
    log_->ingest(std::move(r), [](result<ingest_result>) {});
    gate->wait_until_held();
    return gate;
  }

  timestamp now() const { return timestamp{milliseconds{now_.load()}}; }
  void advance(milliseconds d) { now_.fetch_add(d.count()); }

  testing::memory_storage store_;
  catalog cat_{store_, catalog_options{}};
  std::atomic<std::int64_t> now_{kT0};
  object_id org_, project_, other_project_;
  object_id token_ = object_id::parse("65a0f1c2aabbccddee0000dd").value();
  int webhook_count_ = 0;
  std::unique_ptr<delivery_log> log_;
};

// ---------------------------------------------------------------- ingest and fan-out

TEST_F(DeliveryLogTest, FansOutOnlyToActiveMatchingWebhooksOfTheProject) {
  const object_id exact = make_webhook({"order.created"});
  const object_id prefix = make_webhook({"invoice.paid", "order.*"});
  const object_id all = make_webhook({"*"});
  const object_id other_type = make_webhook({"invoice.paid", "order"});
  const object_id prefix_only_children = make_webhook({"order.created.*"});
  const object_id inactive = make_webhook({"order.created"}, /*active=*/false);
  const object_id elsewhere = make_webhook({"*"}, true, other_project_);

  const ingest_result r = ingest_ok(request("order.created", R"({"id":7})"));
  EXPECT_EQ(r.deliveries, 3u);
  EXPECT_EQ(r.type, "order.created");
  EXPECT_EQ(r.time, now());
  EXPECT_FALSE(r.replay);

  for (const object_id& w : {exact, prefix, all}) {
    const auto d = only_delivery_of(w);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->event, r.event);
    EXPECT_EQ(d->webhook, w);
    EXPECT_EQ(d->type, "order.created");
    EXPECT_EQ(d->status, delivery_status::pending);
    EXPECT_EQ(d->attempts, 0u);
    EXPECT_EQ(d->next_attempt_at, now());
    EXPECT_EQ(d->created_at, now());
  }
  for (const object_id& w : {other_type, prefix_only_children, inactive, elsewhere}) {
    EXPECT_TRUE(deliveries_of(w).empty());
  }

  const auto e = log_->find_event(r.event);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->organization, org_);
  EXPECT_EQ(e->project, project_);
  EXPECT_EQ(e->data, R"({"id":7})");
  EXPECT_EQ(e->time, now());
  EXPECT_EQ(log_->pending_count(), 3u);
  EXPECT_EQ(log_->counters().events, 1u);
  EXPECT_EQ(log_->counters().deliveries, 3u);

  // Every delivery is handed to the scheduler, due now.
  const due_jobs jobs = log_->jobs().take_due(now(), 100);
  std::set<object_id> webhooks;
  for (const auto& j : jobs.ready) {
    webhooks.insert(j.webhook);
    EXPECT_EQ(j.due, now());
  }
  EXPECT_EQ(webhooks, (std::set<object_id>{exact, prefix, all}));
}

TEST_F(DeliveryLogTest, AnEventWithoutSubscribersIsStillStored) {
  make_webhook({"invoice.paid"});
  const ingest_result r = ingest_ok(request("order.created"));
  EXPECT_EQ(r.deliveries, 0u);
  EXPECT_TRUE(log_->find_event(r.event));
  EXPECT_EQ(log_->jobs().next_due(), std::nullopt);
}

TEST_F(DeliveryLogTest, OneIngestIsOneBatch) {
  const object_id a = make_webhook({"order.created"});
  const object_id b = make_webhook({"*"});
  const object_id c = make_webhook({"order.*"});
  const std::size_t before = store_.batches().size();
  const ingest_result r = ingest_ok(request("order.created", R"({"n":1})", "key-1"));
  const auto batches = store_.batches();
  ASSERT_EQ(batches.size(), before + 1);
  std::map<table, int> per_table;
  for (const auto& op : batches.back().ops) {
    EXPECT_TRUE(op.value.has_value());
    ++per_table[op.where];
  }
  EXPECT_EQ(per_table[table::events], 1);
  EXPECT_EQ(per_table[table::deliveries], 3);
  EXPECT_EQ(per_table[table::index], 0);
  EXPECT_EQ(per_table[table::idempotency], 1);
  EXPECT_EQ(batches.back().ops.size(), 5u);

  EXPECT_EQ(store_.records(table::events).count(std::string(r.event.binary())), 1u);
  for (const object_id& w : {a, b, c}) {
    const auto d = only_delivery_of(w);
    ASSERT_TRUE(d);
    // The delivery record is the only record of a delivery: no "dw" index entry.
    EXPECT_EQ(store_.records(table::index).count(webhook_delivery_key(w, d->id)), 0u);
    EXPECT_EQ(store_.records(table::deliveries).count(std::string(d->id.binary())), 1u);
  }
  EXPECT_EQ(store_.records(table::idempotency).count(idempotency_key(token_, "key-1")), 1u);
}

TEST_F(DeliveryLogTest, RefusesBadInputBeforeWriting) {
  const std::size_t before = store_.batches().size();
  auto bad_type = ingest(request("Order Created"));
  ASSERT_FALSE(bad_type);
  EXPECT_EQ(bad_type.error().kind, error_kind::validation);
  ASSERT_EQ(bad_type.error().errors.size(), 1u);
  EXPECT_EQ(bad_type.error().errors[0].field, "type");

  auto bad_data = ingest(request("order.created", "{not json"));
  ASSERT_FALSE(bad_data);
  EXPECT_EQ(bad_data.error().errors.at(0).field, "data");

  auto empty_key = ingest(request("order.created", "{}", ""));
  ASSERT_FALSE(empty_key);
  EXPECT_EQ(empty_key.error().errors.at(0).field, "idempotencyKey");
  auto long_key = ingest(request("order.created", "{}", std::string(256, 'k')));
  ASSERT_FALSE(long_key);
  EXPECT_TRUE(ingest(request("order.created", "{}", std::string(255, 'k'))));

  ingest_request elsewhere = request();
  elsewhere.organization = other_project_;  // not an organization of that project
  auto not_found = ingest(std::move(elsewhere));
  ASSERT_FALSE(not_found);
  EXPECT_EQ(not_found.error().kind, error_kind::not_found);
  EXPECT_EQ(store_.batches().size(), before + 1);  // only the valid one
}

TEST_F(DeliveryLogTest, StorageFailurePublishesNothing) {
  const object_id w = make_webhook({"*"});
  store_.fail_next_write();
  auto r = ingest(request("order.created", "{}", "k"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, error_kind::storage_failure);
  EXPECT_TRUE(deliveries_of(w).empty());
  EXPECT_EQ(log_->pending_count(), 0u);
  EXPECT_EQ(log_->jobs().next_due(), std::nullopt);
  // The key was not consumed: the retry creates the event.
  const ingest_result again = ingest_ok(request("order.created", "{}", "k"));
  EXPECT_FALSE(again.replay);
  EXPECT_EQ(again.deliveries, 1u);
}

// ---------------------------------------------------------------- idempotency

TEST_F(DeliveryLogTest, SameKeySameBodyReplaysTheFirstAnswerAndWritesNothing) {
  make_webhook({"*"});
  const ingest_result first = ingest_ok(request("order.created", R"({"n":1})", "abc"));
  const std::size_t batches = store_.batches().size();
  advance(hours(23));
  make_webhook({"*"});  // a second subscriber now: the replay still says 1 delivery
  const std::size_t after_webhook = store_.batches().size();
  ASSERT_EQ(after_webhook, batches + 1);

  const ingest_result replay = ingest_ok(request("order.created", R"({"n":1})", "abc"));
  EXPECT_TRUE(replay.replay);
  EXPECT_EQ(replay.event, first.event);
  EXPECT_EQ(replay.type, first.type);
  EXPECT_EQ(replay.time, first.time);
  EXPECT_EQ(replay.deliveries, 1u);
  EXPECT_EQ(store_.batches().size(), after_webhook);
  EXPECT_EQ(log_->counts().events, 1u);
  EXPECT_EQ(log_->counters().replays, 1u);
}

TEST_F(DeliveryLogTest, SameKeyOtherBodyIsAConflict) {
  ingest_ok(request("order.created", R"({"n":1})", "abc"));
  auto other_data = ingest(request("order.created", R"({"n":2})", "abc"));
  ASSERT_FALSE(other_data);
  EXPECT_EQ(other_data.error().kind, error_kind::conflict);
  EXPECT_THAT(other_data.error().detail, HasSubstr("abc"));
  auto other_type = ingest(request("order.updated", R"({"n":1})", "abc"));
  ASSERT_FALSE(other_type);
  EXPECT_EQ(other_type.error().kind, error_kind::conflict);
  ingest_request other_project = request("order.created", R"({"n":1})", "abc");
  other_project.project = other_project_;
  auto moved = ingest(std::move(other_project));
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().kind, error_kind::conflict);
  EXPECT_EQ(log_->counts().events, 1u);
}

TEST_F(DeliveryLogTest, KeysAreScopedPerToken) {
  const ingest_result first = ingest_ok(request("order.created", "{}", "abc"));
  ingest_request other = request("order.created", "{}", "abc");
  other.token = object_id::parse("65a0f1c2aabbccddee0000ee").value();
  const ingest_result second = ingest_ok(std::move(other));
  EXPECT_FALSE(second.replay);
  EXPECT_NE(second.event, first.event);
}

TEST_F(DeliveryLogTest, AnExpiredKeyIsTreatedAsNew) {
  const ingest_result first = ingest_ok(request("order.created", R"({"n":1})", "abc"));
  advance(hours(24));
  EXPECT_TRUE(ingest_ok(request("order.created", R"({"n":1})", "abc")).replay);  // 24 h: still
  advance(milliseconds(1));
  // Past the TTL even another body is accepted, as a new event.
  const ingest_result fresh = ingest_ok(request("order.created", R"({"n":2})", "abc"));
  EXPECT_FALSE(fresh.replay);
  EXPECT_NE(fresh.event, first.event);
  // And the key now remembers the new answer.
  const ingest_result replay = ingest_ok(request("order.created", R"({"n":2})", "abc"));
  EXPECT_TRUE(replay.replay);
  EXPECT_EQ(replay.event, fresh.event);
}

TEST_F(DeliveryLogTest, ExpiredIdempotencyRecordsArePrunedByLaterIngests) {
  ingest_ok(request("order.created", "{}", "old-1"));
  ingest_ok(request("order.created", "{}", "old-2"));
  advance(hours(1));
  ingest_ok(request("order.created", "{}", "young"));
  EXPECT_EQ(store_.records(table::idempotency).size(), 3u);
  advance(hours(24) - minutes(30));  // old-* expired, young not
  ingest_ok(request("order.created", "{}"));
  const auto left = store_.records(table::idempotency);
  EXPECT_EQ(left.size(), 1u);
  EXPECT_EQ(left.count(idempotency_key(token_, "young")), 1u);
  EXPECT_EQ(log_->counts().idempotency_keys, 1u);
  // Survives a restart: the pruned keys are gone, the young one still replays.
  open();
  EXPECT_EQ(log_->counts().idempotency_keys, 1u);
  EXPECT_TRUE(ingest_ok(request("order.created", "{}", "young")).replay);
}

TEST_F(DeliveryLogTest, FiftyConcurrentIdenticalRequestsCreateOneEvent) {
  make_webhook({"*"});
  make_webhook({"order.*"});
  const auto gate = hold_writer();  // all fifty land in one group: the overlay must catch them
  constexpr std::size_t kRequests = 50;
  collector<ingest_result> results(kRequests);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      log_->ingest(request("order.created", R"({"n":1})", "same-key"), results.sink(i));
    });
  }
  for (auto& t : threads) t.join();
  gate->release();
  const auto out = results.wait();

  std::set<object_id> events;
  std::size_t fresh = 0;
  for (const auto& r : out) {
    ASSERT_TRUE(r) << r.error().detail;
    events.insert(r->event);
    EXPECT_EQ(r->deliveries, 2u);
    if (!r->replay) ++fresh;
  }
  EXPECT_EQ(events.size(), 1u);
  EXPECT_EQ(fresh, 1u);
  EXPECT_EQ(log_->counts().events, 2u);  // the unrelated event that held the writer, and this
  EXPECT_EQ(log_->counts().deliveries, 2u);
  EXPECT_EQ(store_.records(table::events).size(), 2u);
}

TEST_F(DeliveryLogTest, FiftyConcurrentIdenticalRequestsWithoutAGateCreateOneEvent) {
  make_webhook({"*"});
  constexpr std::size_t kRequests = 50;
  collector<ingest_result> results(kRequests);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      log_->ingest(request("order.created", R"({"n":1})", "same-key"), results.sink(i));
    });
  }
  for (auto& t : threads) t.join();
  std::set<object_id> events;
  for (const auto& r : results.wait()) {
    ASSERT_TRUE(r) << r.error().detail;
    events.insert(r->event);
  }
  EXPECT_EQ(events.size(), 1u);
  EXPECT_EQ(store_.records(table::events).size(), 1u);
}

// ---------------------------------------------------------------- attempts

TEST_F(DeliveryLogTest, SuccessEndsTheDeliveryAndReleasesTheSlot) {
  const object_id w = make_webhook({"*"});
  ingest_ok(request());
  const auto taken = log_->jobs().take_due(now(), 10);
  ASSERT_EQ(taken.ready.size(), 1u);
  const object_id id = taken.ready[0].delivery;
  EXPECT_EQ(log_->jobs().counts().in_flight, 1u);

  advance(seconds(1));
  auto r = record(id, 200, attempt_decision::succeeded());
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ((*r)->status, delivery_status::succeeded);
  EXPECT_EQ((*r)->attempts, 1u);
  EXPECT_EQ((*r)->next_attempt_at, std::nullopt);
  EXPECT_EQ((*r)->updated_at, now());
  EXPECT_EQ(log_->jobs().counts().in_flight, 0u);
  EXPECT_EQ(log_->jobs().counts().queued, 0u);
  EXPECT_EQ(log_->pending_count(), 0u);

  const auto detail = log_->find_delivery(id);
  ASSERT_TRUE(detail);
  ASSERT_EQ(detail->attempts->size(), 1u);
  EXPECT_EQ(detail->attempts->at(0).number, 1u);
  EXPECT_EQ(detail->attempts->at(0).status_code, 200);
  EXPECT_EQ(detail->attempts->at(0).response, "body 200");
  EXPECT_EQ(detail->attempts->at(0).duration, milliseconds{42});
  EXPECT_EQ(deliveries_of(w, delivery_status::succeeded).size(), 1u);
  EXPECT_TRUE(deliveries_of(w, delivery_status::pending).empty());
  EXPECT_EQ(store_.records(table::attempts).count(attempt_key(id, 1)), 1u);
  EXPECT_EQ(log_->counters().succeeded, 1u);
}

TEST_F(DeliveryLogTest, ARetryIsRescheduledAtItsTime) {
  make_webhook({"*"});
  ingest_ok(request());
  const object_id id = log_->jobs().take_due(now(), 10).ready.at(0).delivery;
  const attempt_decision d = log_->decide({500, std::nullopt}, 1, [] { return 0.5; });
  ASSERT_EQ(d.kind, decision_kind::retry);
  EXPECT_EQ(d.retry_at, now() + seconds(5));
  auto r = record(id, 500, d);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ((*r)->status, delivery_status::pending);
  EXPECT_EQ((*r)->attempts, 1u);
  EXPECT_EQ((*r)->next_attempt_at, now() + seconds(5));
  EXPECT_EQ(log_->jobs().next_due(), now() + seconds(5));
  EXPECT_TRUE(log_->jobs().take_due(now() + seconds(4), 10).ready.empty());
  const auto again = log_->jobs().take_due(now() + seconds(5), 10);
  ASSERT_EQ(again.ready.size(), 1u);
  EXPECT_EQ(again.ready[0].delivery, id);
  EXPECT_EQ(log_->counters().retries, 1u);
}

TEST_F(DeliveryLogTest, GoneAndExhaustionFailTheDelivery) {
  delivery_log_options options;
  options.retry = retry_policy({seconds(1)});  // two attempts in all
  open(options);
  make_webhook({"*"});
  make_webhook({"*"});
  ingest_ok(request());
  const auto taken = log_->jobs().take_due(now(), 10).ready;
  ASSERT_EQ(taken.size(), 2u);

  auto gone = record(taken[0].delivery, 410, log_->decide({410, std::nullopt}, 1));
  ASSERT_TRUE(gone);
  EXPECT_EQ((*gone)->status, delivery_status::failed);
  EXPECT_EQ((*gone)->reason, "410 Gone");

  auto first = record(taken[1].delivery, std::nullopt, log_->decide({std::nullopt, {}}, 1));
  ASSERT_TRUE(first);
  EXPECT_EQ((*first)->status, delivery_status::pending);
  advance(seconds(2));
  ASSERT_EQ(log_->jobs().take_due(now(), 10).ready.size(), 1u);
  auto last = record(taken[1].delivery, 502, log_->decide({502, std::nullopt}, 2));
  ASSERT_TRUE(last);
  EXPECT_EQ((*last)->status, delivery_status::failed);
  EXPECT_EQ((*last)->reason, "retries exhausted");
  EXPECT_EQ((*last)->attempts, 2u);
  EXPECT_EQ(log_->jobs().counts().queued + log_->jobs().counts().in_flight, 0u);
  EXPECT_EQ(log_->counters().failed, 2u);

  // Durable: a restart shows the same.
  open();
  const auto d = log_->find_delivery(taken[1].delivery);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->record->status, delivery_status::failed);
  EXPECT_EQ(d->record->reason, "retries exhausted");
  ASSERT_EQ(d->attempts->size(), 2u);
  EXPECT_EQ(d->attempts->at(0).status_code, std::nullopt);
  EXPECT_EQ(d->attempts->at(0).error, "connection refused");
  EXPECT_EQ(d->attempts->at(1).status_code, 502);
}

TEST_F(DeliveryLogTest, AttemptsMustBeRecordedInOrder) {
  make_webhook({"*"});
  ingest_ok(request());
  const object_id id = log_->jobs().take_due(now(), 10).ready.at(0).delivery;
  attempt a;
  a.number = 2;  // attempt 1 was never recorded
  auto r = await<std::shared_ptr<const delivery>>([&](auto done) {
    log_->record_attempt(id, a, attempt_decision::succeeded(), std::move(done));
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, error_kind::conflict);
  EXPECT_TRUE(store_.records(table::attempts).empty());

  auto unknown = await<std::shared_ptr<const delivery>>([&](auto done) {
    log_->record_attempt(object_id::parse("65a0f1c2aabbccddee000999").value(), a,
                         attempt_decision::succeeded(), std::move(done));
  });
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, error_kind::not_found);
}

TEST_F(DeliveryLogTest, AnUnrecordedOutcomeFreesTheSlotAndTriesAgainLater) {
  make_webhook({"*"});
  ingest_ok(request());
  const object_id id = log_->jobs().take_due(now(), 10).ready.at(0).delivery;
  store_.fail_next_write();
  auto r = record(id, 200, attempt_decision::succeeded());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, error_kind::storage_failure);
  EXPECT_EQ(log_->find_delivery(id)->record->status, delivery_status::pending);
  EXPECT_EQ(log_->find_delivery(id)->attempts->size(), 0u);
  EXPECT_EQ(log_->jobs().counts().in_flight, 0u);
  EXPECT_EQ(log_->jobs().next_due(), now() + seconds(5));  // unrecorded_retry_delay
}

// ---------------------------------------------------------------- restart

TEST_F(DeliveryLogTest, LoadRestoresPendingJobsWithTheirTimes) {
  const object_id w1 = make_webhook({"order.*"});
  const object_id w2 = make_webhook({"*"});
  const ingest_result e1 = ingest_ok(request("order.created", R"({"a":[1,2,3]})", "k1"));
  advance(seconds(3));
  ingest_ok(request("user.created"));
  const auto taken = log_->jobs().take_due(now(), 10).ready;
  ASSERT_EQ(taken.size(), 3u);
  // Attempt 1 of each: the first retries at a known time, the second succeeds, the third
  // stays in flight when the process "dies".
  const timestamp retry_at = now() + minutes(7);
  ASSERT_TRUE(record(taken[0].delivery, 503, attempt_decision::retry(retry_at)));
  ASSERT_TRUE(record(taken[1].delivery, 204, attempt_decision::succeeded()));
  const object_id in_flight = taken[2].delivery;
  const auto in_flight_due = log_->find_delivery(in_flight)->record->next_attempt_at;

  advance(hours(1));
  open();
  EXPECT_EQ(log_->counts().events, 2u);
  EXPECT_EQ(log_->counts().deliveries, 3u);
  EXPECT_EQ(log_->counts().pending, 2u);
  EXPECT_EQ(log_->counts().attempts, 2u);
  EXPECT_EQ(log_->counts().idempotency_keys, 1u);
  EXPECT_EQ(log_->pending_count(), 2u);

  // The pending jobs are back at their stored times; the in-flight one is simply due again.
  std::map<object_id, timestamp> due;
  for (const auto& j : log_->jobs().take_due(now(), 10).ready) due[j.delivery] = j.due;
  EXPECT_EQ(due.size(), 2u);
  EXPECT_EQ(due.at(taken[0].delivery), retry_at);
  EXPECT_EQ(due.at(in_flight), in_flight_due.value());

  const auto e = log_->find_event(e1.event);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, R"({"a":[1,2,3]})");
  EXPECT_EQ(deliveries_of(w1).size(), 1u);
  EXPECT_EQ(deliveries_of(w2).size(), 2u);
  EXPECT_EQ(log_->find_delivery(taken[1].delivery)->record->status, delivery_status::succeeded);
  EXPECT_EQ(log_->find_delivery(taken[0].delivery)->attempts->at(0).status_code, 503);
  // The idempotency record survived too.
  EXPECT_TRUE(ingest_ok(request("order.created", R"({"a":[1,2,3]})", "k1")).replay);
}

TEST_F(DeliveryLogTest, AnAttemptIsOneRecordAndItsStateSurvivesAReload) {
  const object_id w = make_webhook({"*"});
  ingest_ok(request());
  const auto d = only_delivery_of(w);
  ASSERT_TRUE(d);
  const std::string ingested = store_.records(table::deliveries).at(std::string(d->id.binary()));
  const timestamp retry_at = now() + seconds(5);
  advance(seconds(1));
  ASSERT_TRUE(record(d->id, 500, attempt_decision::retry(retry_at)));
  advance(seconds(1));
  auto last = record(d->id, 410, attempt_decision::failed(kReasonGone));
  ASSERT_TRUE(last) << last.error().detail;
  // Recording wrote the attempts only; the delivery's record is still the one ingest wrote.
  EXPECT_EQ(store_.records(table::deliveries).at(std::string(d->id.binary())), ingested);
  EXPECT_EQ(store_.records(table::attempts).size(), 2u);

  auto loaded = reopen_and_load();
  ASSERT_TRUE(loaded) << loaded.error().detail;
  const auto detail = log_->find_delivery(d->id);
  ASSERT_TRUE(detail);
  EXPECT_EQ(detail->record->status, delivery_status::failed);
  EXPECT_EQ(detail->record->attempts, 2u);
  EXPECT_EQ(detail->record->reason, std::string(kReasonGone));
  EXPECT_EQ(detail->record->next_attempt_at, std::nullopt);
  EXPECT_EQ(detail->record->updated_at, (*last)->updated_at);
  EXPECT_EQ(detail->record->created_at, d->created_at);
  ASSERT_EQ(detail->attempts->size(), 2u);
  EXPECT_EQ(detail->attempts->at(0).status_code, 500);
  EXPECT_EQ(detail->attempts->at(1).status_code, 410);
  EXPECT_EQ(deliveries_of(w, delivery_status::failed).size(), 1u);
  EXPECT_EQ(log_->pending_count(), 0u);
}

TEST_F(DeliveryLogTest, LoadsTheEarlierFormatWhereTheDeliveryWasRewrittenPerAttempt) {
  const object_id w = make_webhook({"*"});
  ingest_ok(request());
  const auto d = only_delivery_of(w);
  ASSERT_TRUE(d);
  // What an earlier hookd stored after one failed attempt: the attempt without state and the
  // delivery record rewritten with the count and the retry time.
  delivery old = *d;
  old.attempts = 1;
  old.next_attempt_at = now() + seconds(30);
  old.updated_at = now() + seconds(1);
  attempt a;
  a.number = 1;
  a.at = now();
  a.status_code = 503;
  a.response = "busy";
  store_.put_raw(table::deliveries, std::string(d->id.binary()), encode(old));
  store_.put_raw(table::attempts, attempt_key(d->id, 1), encode(a));

  auto loaded = reopen_and_load();
  ASSERT_TRUE(loaded) << loaded.error().detail;
  auto detail = log_->find_delivery(d->id);
  ASSERT_TRUE(detail);
  EXPECT_EQ(detail->record->status, delivery_status::pending);
  EXPECT_EQ(detail->record->attempts, 1u);
  EXPECT_EQ(detail->record->next_attempt_at, old.next_attempt_at);
  ASSERT_EQ(detail->attempts->size(), 1u);
  EXPECT_EQ(detail->attempts->at(0).response, "busy");

  // The next attempt is recorded in the new format on top of it, and both read back.
  log_->start();
  auto second = record(d->id, 200, attempt_decision::succeeded());
  ASSERT_TRUE(second) << second.error().detail;
  loaded = reopen_and_load();
  ASSERT_TRUE(loaded) << loaded.error().detail;
  detail = log_->find_delivery(d->id);
  ASSERT_TRUE(detail);
  EXPECT_EQ(detail->record->status, delivery_status::succeeded);
  EXPECT_EQ(detail->record->attempts, 2u);
  EXPECT_EQ(detail->attempts->size(), 2u);
}

TEST_F(DeliveryLogTest, LoadRefusesDamagedData) {
  const object_id w = make_webhook({"*"});
  ingest_ok(request());
  const auto d = only_delivery_of(w);
  ASSERT_TRUE(d);
  ASSERT_TRUE(record(d->id, 500, attempt_decision::retry(now() + seconds(5))));

  // An entry an earlier hookd wrote loads when it names the delivery under its webhook.
  store_.put_raw(table::index, webhook_delivery_key(w, d->id), "");
  auto earlier_index = reopen_and_load();
  ASSERT_TRUE(earlier_index) << earlier_index.error().detail;
  EXPECT_EQ(log_->list_deliveries(w, {})->items.size(), 1u);

  store_.put_raw(table::index, webhook_delivery_key(d->id, d->id), "");
  auto extra_index = reopen_and_load();
  ASSERT_FALSE(extra_index);
  EXPECT_THAT(extra_index.error().detail, HasSubstr("index"));
  store_.erase_raw(table::index, webhook_delivery_key(d->id, d->id));

  // A second attempt; then attempt 1 lost leaves a gap before attempt 2.
  ASSERT_TRUE(reopen_and_load());
  log_->start();
  ASSERT_TRUE(record(d->id, 500, attempt_decision::retry(now() + seconds(5))));
  const std::string attempt = store_.records(table::attempts).at(attempt_key(d->id, 1));
  store_.erase_raw(table::attempts, attempt_key(d->id, 1));
  auto lost_attempt = reopen_and_load();
  ASSERT_FALSE(lost_attempt);
  EXPECT_THAT(lost_attempt.error().detail, HasSubstr("attempts"));
  store_.put_raw(table::attempts, attempt_key(d->id, 1), attempt);

  // A delivery record that counts more attempts than are stored (written by cancel_webhook or
  // by an older hookd) is refused too.
  const std::string delivery_record =
      store_.records(table::deliveries).at(std::string(d->id.binary()));
  {
    delivery counted = *d;
    counted.attempts = 3;
    counted.status = delivery_status::failed;
    counted.next_attempt_at.reset();
    counted.reason = std::string(kReasonWebhookDeleted);
    store_.put_raw(table::deliveries, std::string(d->id.binary()), encode(counted));
  }
  auto too_few = reopen_and_load();
  ASSERT_FALSE(too_few);
  EXPECT_THAT(too_few.error().detail, HasSubstr("counts 3 attempts but 2 are stored"));

  // An attempt past the delivery record's count without the delivery's state (the old format
  // always rewrote the delivery with its attempt) cannot be placed.
  store_.put_raw(table::deliveries, std::string(d->id.binary()), delivery_record);
  hookd::attempt bare;
  bare.number = 2;
  bare.at = now();
  store_.put_raw(table::attempts, attempt_key(d->id, 2), encode(bare));
  auto stateless = reopen_and_load();
  ASSERT_FALSE(stateless);
  EXPECT_THAT(stateless.error().detail, HasSubstr("no delivery state"));

  store_.put_raw(table::deliveries, std::string(d->id.binary()), "{\"v\":1}");
  auto damaged = reopen_and_load();
  ASSERT_FALSE(damaged);
  EXPECT_THAT(damaged.error().detail, HasSubstr("deliveries"));
  EXPECT_THAT(damaged.error().detail, HasSubstr(d->id.to_string()));
}

// ---------------------------------------------------------------- lists

TEST_F(DeliveryLogTest, ListsNewestFirstWithCursorAndStatusFilter) {
  const object_id w = make_webhook({"*"});
  std::vector<object_id> ids;  // oldest first
  for (int i = 0; i < 25; ++i) {
    ingest_ok(request("order.created", "{\"i\":" + std::to_string(i) + "}"));
    advance(milliseconds(10));
  }
  for (const auto& d : deliveries_of(w)) ids.insert(ids.begin(), d->id);
  ASSERT_EQ(ids.size(), 25u);
  ASSERT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  // Every third delivery succeeds.
  for (std::size_t i = 0; i < ids.size(); i += 3) {
    ASSERT_TRUE(record(ids[i], 200, attempt_decision::succeeded()));
  }

  delivery_query q;
  q.limit = 10;
  std::vector<object_id> seen;
  std::vector<std::size_t> page_sizes;
  for (;;) {
    auto page = log_->list_deliveries(w, q);
    ASSERT_TRUE(page);
    page_sizes.push_back(page->items.size());
    for (const auto& d : page->items) seen.push_back(d->id);
    if (!page->next) break;
    EXPECT_EQ(*page->next, page->items.back()->id);
    q.after = page->next;
  }
  EXPECT_EQ(page_sizes, (std::vector<std::size_t>{10, 10, 5}));
  EXPECT_EQ(seen, std::vector<object_id>(ids.rbegin(), ids.rend()));

  // The default page size is 20.
  auto first = log_->list_deliveries(w, delivery_query{});
  ASSERT_TRUE(first);
  EXPECT_EQ(first->items.size(), 20u);
  EXPECT_EQ(first->next, ids[5]);

  // Status filter: the 9 succeeded ones, newest first, paged by 4.
  q = delivery_query{};
  q.status = delivery_status::succeeded;
  q.limit = 4;
  std::vector<object_id> succeeded;
  for (;;) {
    auto page = log_->list_deliveries(w, q);
    ASSERT_TRUE(page);
    for (const auto& d : page->items) {
      EXPECT_EQ(d->status, delivery_status::succeeded);
      succeeded.push_back(d->id);
    }
    if (!page->next) break;
    q.after = page->next;
  }
  std::vector<object_id> expected;
  for (std::size_t i = 0; i < ids.size(); i += 3) expected.push_back(ids[i]);
  std::reverse(expected.begin(), expected.end());
  EXPECT_EQ(succeeded, expected);

  // An exact last page has no next cursor.
  q = delivery_query{};
  q.status = delivery_status::pending;
  q.limit = 16;
  auto pending = log_->list_deliveries(w, q);
  ASSERT_TRUE(pending);
  EXPECT_EQ(pending->items.size(), 16u);
  EXPECT_EQ(pending->next, std::nullopt);

  // A cursor older than everything gives an empty page.
  q = delivery_query{};
  q.after = ids.front();
  EXPECT_TRUE(log_->list_deliveries(w, q)->items.empty());

  q = delivery_query{};
  q.limit = 0;
  auto zero = log_->list_deliveries(w, q);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().errors.at(0).field, "limit");
  q.limit = 101;
  EXPECT_FALSE(log_->list_deliveries(w, q));
  EXPECT_TRUE(
      log_->list_deliveries(object_id::parse("65a0f1c2aabbccddee000999").value(), delivery_query{})
          ->items.empty());
}

// ---------------------------------------------------------------- cancel

TEST_F(DeliveryLogTest, CancelWebhookFailsItsPendingDeliveriesDurably) {
  const object_id doomed = make_webhook({"*"});
  const object_id kept = make_webhook({"*"});
  ingest_ok(request());
  ingest_ok(request());
  const auto done_one = deliveries_of(doomed).back();  // the older one succeeds first
  ASSERT_EQ(log_->jobs().take_due(now(), 10).ready.size(), 4u);
  ASSERT_TRUE(record(done_one->id, 200, attempt_decision::succeeded()));

  delete_webhook(doomed);
  advance(seconds(9));
  auto n = await<std::size_t>([&](auto done) { log_->cancel_webhook(doomed, std::move(done)); });
  ASSERT_TRUE(n) << n.error().detail;
  EXPECT_EQ(*n, 1u);
  const auto failed = deliveries_of(doomed, delivery_status::failed);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]->reason, "webhook deleted");
  EXPECT_EQ(failed[0]->next_attempt_at, std::nullopt);
  EXPECT_EQ(failed[0]->updated_at, now());
  EXPECT_EQ(deliveries_of(doomed, delivery_status::succeeded).size(), 1u);
  EXPECT_EQ(deliveries_of(kept, delivery_status::pending).size(), 2u);
  EXPECT_EQ(log_->pending_count(), 2u);
  EXPECT_EQ(log_->counters().cancelled, 1u);

  // Its in-flight attempt comes back afterwards: recorded, but the delivery stays failed and
  // is not rescheduled.
  auto late = record(failed[0]->id, 500, attempt_decision::retry(now() + seconds(5)));
  ASSERT_TRUE(late) << late.error().detail;
  EXPECT_EQ((*late)->status, delivery_status::failed);
  EXPECT_EQ((*late)->attempts, 1u);
  EXPECT_EQ(log_->jobs().counts().in_flight, 2u);  // only the kept webhook's two
  EXPECT_EQ(log_->jobs().counts().queued, 0u);

  // A second cancel finds nothing; a restart still shows the failure.
  auto again =
      await<std::size_t>([&](auto done) { log_->cancel_webhook(doomed, std::move(done)); });
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u);
  open();
  EXPECT_EQ(log_->find_delivery(failed[0]->id)->record->reason, "webhook deleted");
  EXPECT_EQ(log_->jobs().counts().queued, 2u);
}

TEST_F(DeliveryLogTest, QueuedJobsOfADeletedWebhookAreDroppedThenCancelled) {
  const object_id w = make_webhook({"*"});
  ingest_ok(request());
  delete_webhook(w);
  const due_jobs taken = log_->jobs().take_due(now(), 10);
  EXPECT_TRUE(taken.ready.empty());
  ASSERT_EQ(taken.dropped.size(), 1u);
  EXPECT_EQ(taken.dropped[0].webhook, w);
  auto n = await<std::size_t>(
      [&](auto done) { log_->cancel_webhook(taken.dropped[0].webhook, std::move(done)); });
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(log_->pending_count(), 0u);
}

TEST_F(DeliveryLogTest, CancelInTheSameGroupAsTheIngestSeesItsDeliveries) {
  const object_id w = make_webhook({"order.*"});
  const auto gate = hold_writer();
  collector<ingest_result> ingested(1);
  collector<std::size_t> cancelled(1);
  log_->ingest(request("order.created"), ingested.sink(0));
  log_->cancel_webhook(w, cancelled.sink(0));
  gate->release();
  const auto i = ingested.wait();
  const auto c = cancelled.wait();
  ASSERT_TRUE(i[0]);
  ASSERT_TRUE(c[0]);
  EXPECT_EQ(i[0]->deliveries, 1u);
  EXPECT_EQ(*c[0], 1u);
  const auto d = only_delivery_of(w);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, delivery_status::failed);
  EXPECT_EQ(log_->jobs().counts().queued, 0u);
}

// ---------------------------------------------------------------- scheduling and metrics

TEST_F(DeliveryLogTest, RetriesOfADeactivatedWebhookAreHeldUntilItIsActiveAgain) {
  const object_id w = make_webhook({"*"});
  ingest_ok(request());
  set_active(w, false);
  EXPECT_TRUE(log_->jobs().take_due(now(), 10).ready.empty());
  EXPECT_EQ(log_->jobs().counts().held, 1u);
  set_active(w, true);
  EXPECT_EQ(log_->jobs().take_due(now(), 10).ready.size(), 1u);
}

TEST_F(DeliveryLogTest, OldestPendingAgeFollowsTheClock) {
  make_webhook({"*"});
  EXPECT_EQ(log_->oldest_pending_age(), std::nullopt);
  ingest_ok(request());
  advance(seconds(30));
  ingest_ok(request());
  advance(seconds(10));
  EXPECT_EQ(log_->oldest_pending_age(), seconds(40));
  EXPECT_EQ(log_->pending_count(), 2u);
}

}  // namespace
}  // namespace hookd
