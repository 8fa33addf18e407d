#include "core/delivery/delivery_log.hpp"

#include "core/delivery/delivery_log_impl.hpp"  // meta keys, for the migration and damage tests
#include "core/delivery/history_keys.hpp"
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
    auto org = wait_for<std::shared_ptr<const organization>>(
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
    auto p = wait_for<std::shared_ptr<const project>>(
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
    auto w = wait_for<std::shared_ptr<const webhook>>([&](auto done) {
      cat_.create_webhook(org_, in_project.value_or(project_), std::move(in), std::move(done));
    });
    EXPECT_TRUE(w) << w.error().detail;
    return w ? (*w)->id : object_id{};
  }

  void set_active(const object_id& webhook_id, bool active) {
    webhook_patch patch;
    patch.active = active;
    auto w = wait_for<std::shared_ptr<const webhook>>([&](auto done) {
      cat_.update_webhook(org_, project_, webhook_id, std::move(patch), std::move(done));
    });
    ASSERT_TRUE(w) << w.error().detail;
  }

  void delete_webhook(const object_id& webhook_id) {
    auto r = wait_for<void>(
        [&](auto done) { cat_.delete_webhook(org_, project_, webhook_id, std::move(done)); });
    ASSERT_TRUE(r) << r.error().detail;
  }

  // Tests sweep by hand: no sweeper thread unless a test asks for one.
  // The scheduler's caps are its own tests' business: here a test may take every due job at once.
  static delivery_log_options manual(delivery_log_options o = {}) {
    o.automatic_sweeps = false;
    o.scheduling.max_in_flight = 100'000;
    o.scheduling.max_in_flight_per_webhook = 100'000;
    o.scheduling.max_in_flight_per_organization = 100'000;
    return o;
  }

  // The sweeper thread running every 20 ms over a 16 s retention, and one delivery that succeeded
  // and whose bucket is then a minute past it: the next sweep drops it and reclaims its range.
  void start_sweeper_with_an_expired_delivery() {
    delivery_log_options options = manual();
    options.automatic_sweeps = true;
    options.retention = std::chrono::seconds(16);
    options.sweep_interval = std::chrono::milliseconds(20);
    open(options);
    make_webhook({"*"});
    ingest_ok(request());
    ASSERT_TRUE(record(log_->jobs().take_due(now(), 10).ready.at(0).delivery, 200,
                       attempt_decision::succeeded()));
    advance(std::chrono::minutes(1));
  }

  // (Re)opens the log over the same storage, as a restart would.
  void open(delivery_log_options options = manual()) {
    options_ = options;
    auto loaded = reopen_and_load(options);
    ASSERT_TRUE(loaded) << loaded.error().detail;
    log_->start();
  }

  result<delivery_log_counts> reopen_and_load(
      std::optional<delivery_log_options> options = std::nullopt) {
    log_.reset();
    log_ = std::make_unique<delivery_log>(store_, cat_, options.value_or(options_),
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
    return wait_for<ingest_result>([&](auto done) { log_->ingest(std::move(r), std::move(done)); });
  }

  ingest_result ingest_ok(ingest_request r) {
    auto out = ingest(std::move(r));
    EXPECT_TRUE(out) << out.error().detail;
    return out ? *out : ingest_result{};
  }

  // Records the next attempt of `attempted` (the delivery as the attempt found it).
  result<std::shared_ptr<const delivery>> record_on(std::shared_ptr<const delivery> attempted,
                                                    std::optional<int> status,
                                                    attempt_decision decision) {
    attempt a;
    a.number = attempted->attempts + 1;
    a.at = now();
    a.duration = milliseconds{42};
    a.status_code = status;
    a.response = status ? "body " + std::to_string(*status) : "";
    if (!status) a.error = "connection refused";
    return wait_for<std::shared_ptr<const delivery>>([&](auto done) {
      log_->record_attempt(std::move(attempted), std::move(a), std::move(decision),
                           std::move(done));
    });
  }

  // The same for a pending delivery, as the dispatcher finds it.
  result<std::shared_ptr<const delivery>> record(const object_id& delivery_id,
                                                 std::optional<int> status,
                                                 attempt_decision decision) {
    const auto pending = log_->find_pending(delivery_id);
    EXPECT_TRUE(pending) << delivery_id.to_string() << " is not pending";
    if (!pending) return make_problem(error_kind::not_found, "not pending");
    return record_on(pending->record, status, std::move(decision));
  }

  std::optional<delivery_detail> detail_of(const object_id& id,
                                           std::optional<object_id> project = std::nullopt) {
    auto found = log_->find_delivery(project.value_or(project_), id);
    EXPECT_TRUE(found) << found.error().detail;
    return found ? *found : std::nullopt;
  }

  std::optional<event_detail> event_of(const object_id& id) {
    auto found = log_->find_event(project_, id);
    EXPECT_TRUE(found) << found.error().detail;
    return found ? *found : std::nullopt;
  }

  // Every page of `q` in turn, newest first.
  std::vector<std::shared_ptr<const delivery>> all_pages(delivery_query q) {
    std::vector<std::shared_ptr<const delivery>> out;
    for (;;) {
      auto page = log_->list_deliveries(q);
      EXPECT_TRUE(page) << page.error().detail;
      if (!page) break;
      out.insert(out.end(), page->items.begin(), page->items.end());
      if (!page->next) break;
      EXPECT_EQ(*page->next, page->items.back()->id);
      q.after = page->next;
    }
    return out;
  }

  delivery_query query(std::optional<object_id> webhook = std::nullopt,
                       std::initializer_list<delivery_status> statuses = {}) {
    delivery_query q;
    q.project = project_;
    q.webhook = webhook;
    for (const delivery_status s : statuses) q.statuses.add(s);
    q.limit = kMaxDeliveryPage;
    return q;
  }

  std::vector<std::shared_ptr<const delivery>> deliveries_of(
      const object_id& webhook, std::optional<delivery_status> status = std::nullopt) {
    delivery_query q = query(webhook);
    if (status) q.statuses.add(*status);
    return all_pages(q);
  }

  std::shared_ptr<const delivery> only_delivery_of(const object_id& webhook) {
    auto list = deliveries_of(webhook);
    EXPECT_EQ(list.size(), 1u);
    return list.empty() ? nullptr : list.front();
  }

  // History records of one kind ('e', 'a', 'd', 'w'), whatever the bucket or project.
  std::size_t history_records(history_kind kind) const {
    std::size_t n = 0;
    for (const auto& [key, value] : store_.records(table::history)) {
      n += key.size() > kHistoryPrefixBytes && key[kHistoryPrefixBytes] == static_cast<char>(kind)
               ? 1u
               : 0u;
    }
    return n;
  }

  result<sweep_result> sweep() {
    return wait_for<sweep_result>([&](auto done) { log_->sweep(std::move(done)); });
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
  delivery_log_options options_ = manual();
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
    EXPECT_EQ(d->project, project_);
    EXPECT_EQ(d->type, "order.created");
    EXPECT_EQ(d->status, delivery_status::pending);
    EXPECT_EQ(d->attempts, 0u);
    EXPECT_EQ(d->next_attempt_at, now());
    EXPECT_EQ(d->created_at, now());
    // What the dispatcher sends: the event, shared by its deliveries.
    const auto pending = log_->find_pending(d->id);
    ASSERT_TRUE(pending);
    EXPECT_EQ(pending->source_event->data, R"({"id":7})");
  }
  for (const object_id& w : {other_type, prefix_only_children, inactive, elsewhere}) {
    EXPECT_TRUE(deliveries_of(w).empty());
  }

  const auto e = event_of(r.event);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->record.organization, org_);
  EXPECT_EQ(e->record.project, project_);
  EXPECT_EQ(e->record.data, R"({"id":7})");
  EXPECT_EQ(e->record.time, now());
  ASSERT_EQ(e->deliveries.size(), 3u);
  std::set<object_id> fanned;
  for (const auto& entry : e->deliveries) {
    fanned.insert(entry.webhook);
    EXPECT_EQ(entry.status, delivery_status::pending);
  }
  EXPECT_EQ(fanned, (std::set<object_id>{exact, prefix, all}));
  EXPECT_EQ(log_->pending_count(), 3u);
  EXPECT_EQ(log_->counts().events, 1u);  // one event in memory, shared by its three deliveries
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

TEST_F(DeliveryLogTest, AnEventWithoutSubscribersIsStoredButNotKeptInMemory) {
  make_webhook({"invoice.paid"});
  const ingest_result r = ingest_ok(request("order.created"));
  EXPECT_EQ(r.deliveries, 0u);
  const auto e = event_of(r.event);
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->deliveries.empty());
  EXPECT_EQ(log_->counts().events, 0u);
  EXPECT_EQ(log_->jobs().next_due(), std::nullopt);
  // Another project's id does not find it.
  EXPECT_FALSE(log_->find_event(other_project_, r.event).value());
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
  EXPECT_EQ(per_table[table::history], 1);  // the event
  EXPECT_EQ(per_table[table::queue], 3);    // its pending deliveries
  EXPECT_EQ(per_table[table::idempotency], 1);
  EXPECT_EQ(batches.back().ops.size(), 5u);

  EXPECT_EQ(history_records(history_kind::event), 1u);
  for (const object_id& w : {a, b, c}) {
    const auto d = only_delivery_of(w);
    ASSERT_TRUE(d);
    EXPECT_EQ(store_.records(table::queue).count(std::string(d->id.binary())), 1u);
  }
  EXPECT_EQ(store_.records(table::idempotency).count(idempotency_key(token_, "key-1")), 1u);
  (void)r;
}

TEST_F(DeliveryLogTest, AProjectOfAnotherOrganizationIsNotFoundAndWritesNothing) {
  const std::size_t before = store_.batches().size();
  ingest_request elsewhere = request();
  elsewhere.organization = other_project_;  // not an organization of that project
  auto not_found = ingest(std::move(elsewhere));
  ASSERT_FALSE(not_found);
  EXPECT_EQ(not_found.error().kind, error_kind::not_found);
  // A request that skipped validation is refused before it is queued.
  auto unchecked = ingest(request("order.created", "{}", ""));
  ASSERT_FALSE(unchecked);
  EXPECT_EQ(unchecked.error().kind, error_kind::internal);
  EXPECT_EQ(store_.batches().size(), before);
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
  EXPECT_EQ(log_->counters().events, 1u);
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
  EXPECT_EQ(log_->counters().events, 1u);
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

TEST_F(DeliveryLogTest, ASweepErasesExpiredIdempotencyKeysWithoutAnyIngest) {
  ingest_ok(request("order.created", "{}", "a"));
  ingest_ok(request("order.created", "{}", "b"));
  advance(hours(24) + milliseconds(1));
  ASSERT_EQ(log_->counts().idempotency_keys, 2u);
  auto swept = sweep();
  ASSERT_TRUE(swept) << swept.error().detail;
  EXPECT_EQ(swept->expired_idempotency, 2u);
  EXPECT_TRUE(store_.records(table::idempotency).empty());
  EXPECT_EQ(log_->counts().idempotency_keys, 0u);
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
  EXPECT_EQ(log_->counters().events, 2u);  // the unrelated event that held the writer, and this
  EXPECT_EQ(log_->counters().deliveries, 2u);
  EXPECT_EQ(history_records(history_kind::event), 2u);
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
  EXPECT_EQ(history_records(history_kind::event), 1u);
}

// ---------------------------------------------------------------- attempts

TEST_F(DeliveryLogTest, SuccessMovesTheDeliveryFromMemoryAndQueueToHistory) {
  const object_id w = make_webhook({"*"});
  const ingest_result e = ingest_ok(request());
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

  // Memory holds nothing of it any more; storage holds it in history only.
  EXPECT_EQ(log_->pending_count(), 0u);
  EXPECT_EQ(log_->counts().events, 0u);
  EXPECT_FALSE(log_->find_pending(id));
  EXPECT_TRUE(store_.records(table::queue).empty());
  EXPECT_EQ(history_records(history_kind::finished), 1u);
  EXPECT_EQ(history_records(history_kind::by_webhook), 1u);
  EXPECT_EQ(history_records(history_kind::attempt), 1u);
  EXPECT_EQ(log_->counts().history_deliveries, 1u);

  const auto detail = detail_of(id);
  ASSERT_TRUE(detail);
  EXPECT_EQ(detail->record->status, delivery_status::succeeded);
  ASSERT_EQ(detail->attempts.size(), 1u);
  EXPECT_EQ(detail->attempts.at(0).number, 1u);
  EXPECT_EQ(detail->attempts.at(0).status_code, 200);
  EXPECT_EQ(detail->attempts.at(0).response, "body 200");
  EXPECT_EQ(detail->attempts.at(0).duration, milliseconds{42});
  EXPECT_EQ(deliveries_of(w, delivery_status::succeeded).size(), 1u);
  EXPECT_TRUE(deliveries_of(w, delivery_status::pending).empty());
  EXPECT_EQ(event_of(e.event)->deliveries.at(0).status, delivery_status::succeeded);
  EXPECT_EQ(log_->counters().succeeded, 1u);
  // Not readable through another project.
  EXPECT_FALSE(detail_of(id, other_project_));
}

TEST_F(DeliveryLogTest, AGroupOfFinishedDeliveriesWritesItsBucketCountOnce) {
  make_webhook({"*"});
  for (int i = 0; i < 10; ++i) ingest_ok(request());
  const auto jobs = log_->jobs().take_due(now(), 100).ready;
  ASSERT_EQ(jobs.size(), 10u);
  const auto gate = hold_writer();
  collector<std::shared_ptr<const delivery>> recorded(jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    attempt a;
    a.number = 1;
    a.at = now();
    a.status_code = 200;
    log_->record_attempt(log_->find_pending(jobs[i].delivery)->record, a,
                         attempt_decision::succeeded(), recorded.sink(i));
  }
  gate->release();
  for (const auto& r : recorded.wait()) ASSERT_TRUE(r) << r.error().detail;
  const auto written = store_.batches();
  std::size_t meta_ops = 0, finished = 0;
  for (const auto& op : written.back().ops) {
    meta_ops += op.where == table::meta ? 1u : 0u;
    finished +=
        op.where == table::history && op.value && op.key[kHistoryPrefixBytes] == 'd' ? 1u : 0u;
  }
  ASSERT_EQ(finished, 10u);  // the ten in one group
  EXPECT_EQ(meta_ops, 1u);
  EXPECT_EQ(log_->counts().history_deliveries, 10u);
  open();
  EXPECT_EQ(log_->counts().history_deliveries, 10u);
}

TEST_F(DeliveryLogTest, ARetryRewritesTheQueueRecordAndIsRescheduledAtItsTime) {
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
  // Still pending: in memory with its event, its queue record says attempt 1 and the new time.
  const auto pending = log_->find_pending(id);
  ASSERT_TRUE(pending);
  EXPECT_TRUE(pending->source_event);
  auto queued =
      decode_delivery(id.binary(), store_.records(table::queue).at(std::string(id.binary())));
  ASSERT_TRUE(queued);
  EXPECT_EQ(queued->attempts, 1u);
  EXPECT_EQ(queued->next_attempt_at, now() + seconds(5));
  EXPECT_EQ(detail_of(id)->attempts.size(), 1u);
}

TEST_F(DeliveryLogTest, GoneAndExhaustionFailTheDelivery) {
  delivery_log_options options = manual();
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
  open(options);
  const auto d = detail_of(taken[1].delivery);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->record->status, delivery_status::failed);
  EXPECT_EQ(d->record->reason, "retries exhausted");
  ASSERT_EQ(d->attempts.size(), 2u);
  EXPECT_EQ(d->attempts.at(0).status_code, std::nullopt);
  EXPECT_EQ(d->attempts.at(0).error, "connection refused");
  EXPECT_EQ(d->attempts.at(1).status_code, 502);
  EXPECT_EQ(log_->counts().history_deliveries, 2u);
}

TEST_F(DeliveryLogTest, AttemptsMustBeRecordedInOrder) {
  make_webhook({"*"});
  ingest_ok(request());
  const object_id id = log_->jobs().take_due(now(), 10).ready.at(0).delivery;
  const auto pending = log_->find_pending(id);
  ASSERT_TRUE(pending);
  attempt a;
  a.number = 2;  // attempt 1 was never recorded
  auto r = wait_for<std::shared_ptr<const delivery>>([&](auto done) {
    log_->record_attempt(pending->record, a, attempt_decision::succeeded(), std::move(done));
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, error_kind::conflict);
  EXPECT_EQ(history_records(history_kind::attempt), 0u);

  delivery unknown = *pending->record;
  unknown.id = object_id::parse("65a0f1c2aabbccddee000999").value();
  auto missing = wait_for<std::shared_ptr<const delivery>>([&](auto done) {
    log_->record_attempt(std::make_shared<const delivery>(unknown), a,
                         attempt_decision::succeeded(), std::move(done));
  });
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, error_kind::not_found);
}

TEST_F(DeliveryLogTest, AnUnrecordedOutcomeFreesTheSlotAndTriesAgainLater) {
  make_webhook({"*"});
  ingest_ok(request());
  const object_id id = log_->jobs().take_due(now(), 10).ready.at(0).delivery;
  store_.fail_next_write();
  auto r = record(id, 200, attempt_decision::succeeded());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, error_kind::storage_failure);
  EXPECT_EQ(detail_of(id)->record->status, delivery_status::pending);
  EXPECT_EQ(detail_of(id)->attempts.size(), 0u);
  EXPECT_TRUE(log_->find_pending(id));
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
  const auto in_flight_due = log_->find_pending(in_flight)->record->next_attempt_at;

  advance(hours(1));
  open();
  EXPECT_EQ(log_->counts().pending, 2u);
  EXPECT_EQ(log_->counts().idempotency_keys, 1u);
  EXPECT_EQ(log_->counts().history_deliveries, 1u);
  EXPECT_EQ(log_->pending_count(), 2u);

  // The pending jobs are back at their stored times; the in-flight one is simply due again.
  std::map<object_id, timestamp> due;
  for (const auto& j : log_->jobs().take_due(now(), 10).ready) due[j.delivery] = j.due;
  EXPECT_EQ(due.size(), 2u);
  EXPECT_EQ(due.at(taken[0].delivery), retry_at);
  EXPECT_EQ(due.at(in_flight), in_flight_due.value());
  // With their events, to send.
  for (const auto& [id, at] : due) EXPECT_TRUE(log_->find_pending(id)->source_event);

  const auto e = event_of(e1.event);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->record.data, R"({"a":[1,2,3]})");
  EXPECT_EQ(deliveries_of(w1).size(), 1u);
  EXPECT_EQ(deliveries_of(w2).size(), 2u);
  EXPECT_EQ(detail_of(taken[1].delivery)->record->status, delivery_status::succeeded);
  EXPECT_EQ(detail_of(taken[0].delivery)->attempts.at(0).status_code, 503);
  // The idempotency record survived too.
  EXPECT_TRUE(ingest_ok(request("order.created", R"({"a":[1,2,3]})", "k1")).replay);
}

TEST_F(DeliveryLogTest, AnOrderingKeyIsStoredOnEveryDeliveryAndItsLineIsRebuiltAtLoad) {
  make_webhook({"*"});
  const auto keyed = [&](std::string key) {
    ingest_request r = request();
    r.ordering_key = std::move(key);
    return ingest_ok(std::move(r));
  };
  const ingest_result first = keyed("customer-1");
  advance(milliseconds(1));
  keyed("customer-1");
  advance(milliseconds(1));
  keyed("customer-1");
  ingest_ok(request());  // no key: goes in parallel
  const object_id head = event_of(first.event)->deliveries.at(0).delivery;
  EXPECT_EQ(log_->find_pending(head)->record->ordering_key, "customer-1");
  EXPECT_EQ(event_of(first.event)->record.ordering_key, "customer-1");

  // One of the key at a time (the oldest), and the unkeyed one.
  auto taken = log_->jobs().take_due(now(), 10).ready;
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_TRUE(taken[0].delivery == head || taken[1].delivery == head);
  const object_id unkeyed = taken[0].delivery == head ? taken[1].delivery : taken[0].delivery;
  // The head is retried (recorded, queued again): the others of its key still wait, also after
  // a restart, where the line is rebuilt from the queue table.
  ASSERT_TRUE(record(head, 503, attempt_decision::retry(now() + seconds(10))));
  EXPECT_TRUE(log_->jobs().take_due(now(), 10).ready.empty());
  open();
  // The unkeyed one was in flight when the process "died": due again; nothing of the key.
  const auto after_restart = log_->jobs().take_due(now(), 10).ready;
  ASSERT_EQ(after_restart.size(), 1u);
  EXPECT_EQ(after_restart[0].delivery, unkeyed);
  advance(seconds(10));
  taken = log_->jobs().take_due(now(), 10).ready;
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].delivery, head);
}

TEST_F(DeliveryLogTest, TheOrderingKeyIsPartOfTheIdempotencyFingerprint) {
  const auto with = [&](std::optional<std::string> subject, std::optional<std::string> key) {
    ingest_request r = request("order.created", R"({"n":1})", "idem");
    r.subject = std::move(subject);
    r.ordering_key = std::move(key);
    return ingest(std::move(r));
  };
  ASSERT_TRUE(with(std::nullopt, "foo"));
  EXPECT_TRUE(with(std::nullopt, "foo")->replay);
  for (auto [subject, key] :
       std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>>{
           {std::nullopt, "bar"},
           {std::nullopt, std::nullopt},
           {"foo", std::nullopt},
           {"foo", "foo"}}) {
    auto other = with(subject, key);
    ASSERT_FALSE(other) << subject.value_or("-") << " / " << key.value_or("-");
    EXPECT_EQ(other.error().kind, error_kind::conflict);
  }
}

TEST_F(DeliveryLogTest, StartUpReadsPendingWorkOnlyNeverTheHistory) {
  const object_id w = make_webhook({"*"});
  for (int i = 0; i < 30; ++i) ingest_ok(request());
  for (const auto& j : log_->jobs().take_due(now(), 100).ready) {
    ASSERT_TRUE(record(j.delivery, 200, attempt_decision::succeeded()));
  }
  ingest_ok(request());  // one still pending
  // Damage every finished delivery's history record: a start-up that read history would fail.
  const auto history = store_.records(table::history);
  std::size_t damaged = 0;
  for (const auto& [key, value] : history) {
    if (key[kHistoryPrefixBytes] == static_cast<char>(history_kind::finished)) {
      store_.put_raw(table::history, key, "{\"v\":1}");
      ++damaged;
    }
  }
  ASSERT_EQ(damaged, 30u);
  auto loaded = reopen_and_load();
  ASSERT_TRUE(loaded) << loaded.error().detail;
  EXPECT_EQ(loaded->pending, 1u);
  EXPECT_EQ(loaded->events, 1u);
  EXPECT_EQ(loaded->history_deliveries, 30u);  // counted from the meta table, not by a scan
  // A read of a damaged record says which.
  const auto finished = deliveries_of(w, delivery_status::pending);
  ASSERT_EQ(finished.size(), 1u);
  delivery_query q = query(std::nullopt, {delivery_status::succeeded});
  auto page = log_->list_deliveries(q);
  ASSERT_FALSE(page);
  EXPECT_THAT(page.error().detail, HasSubstr("history"));
}

TEST_F(DeliveryLogTest, LoadRefusesDamagedPendingWork) {
  const object_id w = make_webhook({"*"});
  const ingest_result e = ingest_ok(request());
  const auto d = only_delivery_of(w);
  ASSERT_TRUE(d);
  const std::string key(d->id.binary());
  const std::string record = store_.records(table::queue).at(key);

  store_.put_raw(table::queue, key, "{\"v\":1}");
  auto damaged = reopen_and_load();
  ASSERT_FALSE(damaged);
  EXPECT_THAT(damaged.error().detail, HasSubstr("queue"));
  EXPECT_THAT(damaged.error().detail, HasSubstr(d->id.to_string()));
  store_.put_raw(table::queue, key, record);

  // A pending delivery whose event is gone cannot be sent.
  const std::string event_key_bytes =
      event_key(bucket_plan(bucket_plan::width_for(options_.retention)).start_of(e.event.seconds()),
                project_, e.event);
  const std::string event_record = store_.records(table::history).at(event_key_bytes);
  store_.erase_raw(table::history, event_key_bytes);
  auto orphan = reopen_and_load();
  ASSERT_FALSE(orphan);
  EXPECT_THAT(orphan.error().detail, HasSubstr("its event " + e.event.to_string()));
  store_.put_raw(table::history, event_key_bytes, event_record);

  store_.put_raw(table::meta, std::string(kBucketPlanKey), "[[5,1]]");
  auto plan = reopen_and_load();
  ASSERT_FALSE(plan);
  EXPECT_THAT(plan.error().detail, HasSubstr("bucket plan"));
}

// ---------------------------------------------------------------- the earlier layout

// What a hookd before the history layout stored: events, deliveries and attempts by id, the
// delivery's state in its latest attempt. The first load migrates it, once.
class EarlierLayoutTest : public DeliveryLogTest {
 protected:
  struct old_delivery {
    delivery d;
    std::vector<std::pair<attempt, std::optional<delivery>>> attempts;  // with state: after
  };

  void plant(const event& e, const std::vector<old_delivery>& deliveries) {
    store_.put_raw(table::events, std::string(e.id.binary()), encode(e));
    for (const old_delivery& od : deliveries) {
      delivery as_ingested = od.d;  // the record keeps what ingest wrote
      as_ingested.project = object_id{};
      as_ingested.attempts = 0;
      as_ingested.status = delivery_status::pending;
      as_ingested.next_attempt_at = e.time;
      as_ingested.updated_at = e.time;
      as_ingested.reason.reset();
      store_.put_raw(table::deliveries, std::string(od.d.id.binary()), encode(as_ingested));
      for (const auto& [a, after] : od.attempts) {
        store_.put_raw(table::attempts, legacy_attempt_key(od.d.id, a.number),
                       after ? encode(a, *after) : encode(a));
      }
    }
  }

  // An event of the project as that version stored it, ingested now.
  event old_event(std::string data) {
    event e;
    e.id = ids_.next(static_cast<std::uint32_t>(kT0 / 1000));
    e.organization = org_;
    e.project = project_;
    e.type = "order.created";
    e.data = std::move(data);
    e.time = now();
    return e;
  }
  // A delivery of `e` to `webhook`, pending with no attempt.
  old_delivery old_delivery_of(const event& e, const object_id& webhook) {
    old_delivery d;
    d.d.id = ids_.next(static_cast<std::uint32_t>(kT0 / 1000));
    d.d.event = e.id;
    d.d.webhook = webhook;
    d.d.type = e.type;
    d.d.created_at = now();
    return d;
  }

  object_id_generator ids_;
};

TEST_F(EarlierLayoutTest, TheFirstLoadMigratesEveryRecordAndDeletesTheOldTables) {
  const object_id w1 = make_webhook({"*"});
  const object_id w2 = make_webhook({"*"});
  const event e = old_event(R"({"n":42})");
  old_delivery done = old_delivery_of(e, w1);  // succeeded at its second attempt
  {
    attempt a1;
    a1.number = 1;
    a1.at = now();
    a1.status_code = 500;
    delivery after1 = done.d;
    after1.attempts = 1;
    after1.status = delivery_status::pending;
    after1.next_attempt_at = now() + seconds(5);
    after1.updated_at = now();
    attempt a2 = a1;
    a2.number = 2;
    a2.status_code = 200;
    delivery after2 = after1;
    after2.attempts = 2;
    after2.status = delivery_status::succeeded;
    after2.next_attempt_at.reset();
    after2.updated_at = now() + seconds(6);
    done.attempts = {{a1, after1}, {a2, after2}};
  }
  old_delivery waiting = old_delivery_of(e, w2);  // one failed attempt, retry due later
  {
    attempt a1;
    a1.number = 1;
    a1.at = now();
    a1.error = "connection refused";
    delivery after1 = waiting.d;
    after1.attempts = 1;
    after1.status = delivery_status::pending;
    after1.next_attempt_at = now() + minutes(5);
    after1.updated_at = now();
    waiting.attempts = {{a1, after1}};
  }
  plant(e, {done, waiting});
  store_.put_raw(table::index, webhook_delivery_key(w1, done.d.id), "");  // a still older entry
  store_.erase_raw(table::meta, std::string(kDeliveryLayoutKey));

  auto loaded = reopen_and_load();
  ASSERT_TRUE(loaded) << loaded.error().detail;
  log_->start();
  EXPECT_EQ(loaded->pending, 1u);
  EXPECT_EQ(loaded->history_deliveries, 1u);
  EXPECT_TRUE(store_.records(table::events).empty());
  EXPECT_TRUE(store_.records(table::deliveries).empty());
  EXPECT_TRUE(store_.records(table::attempts).empty());
  EXPECT_TRUE(store_.records(table::index).empty() ||
              store_.records(table::index).begin()->first.substr(0, 2) != "dw");
  EXPECT_EQ(store_.records(table::meta).at(std::string(kDeliveryLayoutKey)), "2");

  const auto migrated_done = detail_of(done.d.id);
  ASSERT_TRUE(migrated_done);
  EXPECT_EQ(migrated_done->record->status, delivery_status::succeeded);
  EXPECT_EQ(migrated_done->record->attempts, 2u);
  EXPECT_EQ(migrated_done->record->project, project_);
  ASSERT_EQ(migrated_done->attempts.size(), 2u);
  EXPECT_EQ(migrated_done->attempts[1].status_code, 200);

  const auto pending = log_->find_pending(waiting.d.id);
  ASSERT_TRUE(pending);
  EXPECT_EQ(pending->record->attempts, 1u);
  EXPECT_EQ(pending->record->next_attempt_at, now() + minutes(5));
  EXPECT_EQ(pending->source_event->data, R"({"n":42})");
  EXPECT_EQ(detail_of(waiting.d.id)->attempts.at(0).error, "connection refused");
  const auto due = log_->jobs().take_due(now() + minutes(5), 10).ready;
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].delivery, waiting.d.id);

  const auto ev = event_of(e.id);
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->deliveries.size(), 2u);
  EXPECT_EQ(deliveries_of(w1).size(), 1u);
  EXPECT_EQ(deliveries_of(w2).size(), 1u);

  // Migrated once: the next load writes nothing.
  const std::size_t batches = store_.batches().size();
  ASSERT_TRUE(reopen_and_load());
  EXPECT_EQ(store_.batches().size(), batches);
}

TEST_F(EarlierLayoutTest, AMigrationCutShortIsDoneAgainFromTheOldTables) {
  const object_id w = make_webhook({"*"});
  const event e = old_event("1");
  old_delivery d = old_delivery_of(e, w);
  plant(e, {d});
  store_.erase_raw(table::meta, std::string(kDeliveryLayoutKey));

  // The records are written, then the last batch (mark, old tables emptied) fails.
  std::atomic<int> writes{0};
  store_.set_before_write([&] {
    if (++writes == 2) store_.fail_next_write();
  });
  auto cut = reopen_and_load();
  ASSERT_FALSE(cut);
  store_.set_before_write({});
  EXPECT_EQ(store_.records(table::events).size(), 1u);  // still whole

  auto loaded = reopen_and_load();
  ASSERT_TRUE(loaded) << loaded.error().detail;
  EXPECT_EQ(loaded->pending, 1u);
  EXPECT_EQ(store_.records(table::queue).size(), 1u);
  EXPECT_EQ(history_records(history_kind::event), 1u);
  EXPECT_TRUE(store_.records(table::events).empty());
}

TEST_F(EarlierLayoutTest, DamagedOldRecordsAreRefusedNamingThem) {
  const object_id w = make_webhook({"*"});
  const event e = old_event("1");
  old_delivery d = old_delivery_of(e, w);
  attempt bare;  // past the delivery record's count, without the delivery's state
  bare.number = 1;
  bare.at = now();
  d.attempts = {{bare, std::nullopt}};
  plant(e, {d});
  store_.erase_raw(table::meta, std::string(kDeliveryLayoutKey));
  auto stateless = reopen_and_load();
  ASSERT_FALSE(stateless);
  EXPECT_THAT(stateless.error().detail, HasSubstr("no delivery state"));

  store_.erase_raw(table::attempts, legacy_attempt_key(d.d.id, 1));
  store_.put_raw(table::deliveries, std::string(d.d.id.binary()), "{\"v\":1}");
  auto damaged = reopen_and_load();
  ASSERT_FALSE(damaged);
  EXPECT_THAT(damaged.error().detail, HasSubstr("deliveries"));
  EXPECT_THAT(damaged.error().detail, HasSubstr(d.d.id.to_string()));
}

// ---------------------------------------------------------------- lists

TEST_F(DeliveryLogTest, ListsNewestFirstWithCursorAndStatusFilters) {
  const object_id w = make_webhook({"*"});
  std::vector<object_id> ids;  // oldest first
  for (int i = 0; i < 25; ++i) {
    ingest_ok(request("order.created", "{\"i\":" + std::to_string(i) + "}"));
    advance(milliseconds(10));
  }
  for (const auto& d : deliveries_of(w)) ids.insert(ids.begin(), d->id);
  ASSERT_EQ(ids.size(), 25u);
  ASSERT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  // Every third delivery succeeds, every fifth (of the rest) fails.
  std::set<object_id> succeeded_ids, failed_ids;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i % 3 == 0) {
      ASSERT_TRUE(record(ids[i], 200, attempt_decision::succeeded()));
      succeeded_ids.insert(ids[i]);
    } else if (i % 5 == 0) {
      ASSERT_TRUE(record(ids[i], 410, attempt_decision::failed(kReasonGone)));
      failed_ids.insert(ids[i]);
    }
  }

  // All of them, in pages of 10: pending (memory) and finished (history) merged.
  delivery_query q = query(w);
  q.limit = 10;
  std::vector<object_id> seen;
  std::vector<std::size_t> page_sizes;
  for (;;) {
    auto page = log_->list_deliveries(q);
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
  q = query(w);
  q.limit = 20;
  auto first = log_->list_deliveries(q);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->items.size(), 20u);
  EXPECT_EQ(first->next, ids[5]);

  // One status, paged by 4.
  q = query(w, {delivery_status::succeeded});
  q.limit = 4;
  std::vector<object_id> succeeded;
  for (const auto& d : all_pages(q)) {
    EXPECT_EQ(d->status, delivery_status::succeeded);
    succeeded.push_back(d->id);
  }
  EXPECT_EQ(succeeded, std::vector<object_id>(succeeded_ids.rbegin(), succeeded_ids.rend()));

  // Two statuses: "what has not been delivered", newest first.
  q = query(w, {delivery_status::pending, delivery_status::failed});
  q.limit = 3;
  std::vector<object_id> undelivered;
  for (const auto& d : all_pages(q)) undelivered.push_back(d->id);
  std::vector<object_id> expected;
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    if (!succeeded_ids.contains(*it)) expected.push_back(*it);
  }
  EXPECT_EQ(undelivered, expected);

  // An exact last page has no next cursor.
  q = query(w, {delivery_status::pending});
  q.limit = static_cast<std::size_t>(ids.size() - succeeded_ids.size() - failed_ids.size());
  auto pending = log_->list_deliveries(q);
  ASSERT_TRUE(pending);
  EXPECT_EQ(pending->items.size(), q.limit);
  EXPECT_EQ(pending->next, std::nullopt);

  // A cursor older than everything gives an empty page.
  q = query(w);
  q.after = ids.front();
  EXPECT_TRUE(log_->list_deliveries(q)->items.empty());

  q = query(w);
  q.limit = 0;
  auto zero = log_->list_deliveries(q);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().errors.at(0).field, "limit");
  q.limit = 101;
  EXPECT_FALSE(log_->list_deliveries(q));
  EXPECT_TRUE(all_pages(query(object_id::parse("65a0f1c2aabbccddee000999").value())).empty());
}

TEST_F(DeliveryLogTest, ADeliveryFinishingWhileAPageIsReadIsListedOnceFinished) {
  const object_id w = make_webhook({"*"});
  ingest_ok(request());
  const object_id id = log_->jobs().take_due(now(), 10).ready.at(0).delivery;
  // The page reads memory (pending), then history: the delivery finishes in between.
  store_.set_before_scan_range(
      [&] { ASSERT_TRUE(record(id, 200, attempt_decision::succeeded())); });
  const auto page = log_->list_deliveries(query(w));
  ASSERT_TRUE(page) << page.error().detail;
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0]->status, delivery_status::succeeded);
  EXPECT_EQ(page->next, std::nullopt);
}

TEST_F(DeliveryLogTest, TheProjectListSpansItsWebhooksAndFiltersByTypeAndTime) {
  const object_id orders = make_webhook({"order.*"});
  const object_id all = make_webhook({"*"});
  const object_id elsewhere = make_webhook({"*"}, true, other_project_);
  const timestamp start = now();
  ingest_ok(request("order.created"));  // orders + all
  advance(seconds(2));
  const timestamp middle = now();
  ingest_ok(request("user.created"));  // all
  advance(seconds(2));
  ingest_ok(request("order.paid"));  // orders + all
  ingest_request there = request("order.created");
  there.project = other_project_;
  ingest_ok(std::move(there));

  const auto everything = all_pages(query());
  ASSERT_EQ(everything.size(), 5u);
  for (const auto& d : everything) EXPECT_EQ(d->project, project_);
  EXPECT_TRUE(std::is_sorted(everything.begin(), everything.end(),
                             [](const auto& a, const auto& b) { return a->id > b->id; }));

  delivery_query q = query();
  q.event_type = "order.created";
  EXPECT_EQ(all_pages(q).size(), 2u);
  q = query(all);
  q.event_type = "user.created";
  EXPECT_EQ(all_pages(q).size(), 1u);
  q = query();
  q.since = middle;
  EXPECT_EQ(all_pages(q).size(), 3u);
  q.until = middle + seconds(1);
  EXPECT_EQ(all_pages(q).size(), 1u);
  q = query();
  q.until = middle;
  const auto before = all_pages(q);
  ASSERT_EQ(before.size(), 2u);
  for (const auto& d : before) EXPECT_EQ(d->created_at, start);
  EXPECT_EQ(all_pages(query(orders)).size(), 2u);
  EXPECT_TRUE(all_pages(query(elsewhere)).empty());  // a webhook of another project
}

TEST_F(DeliveryLogTest, TimeBoundsOfFinishedDeliveriesHoldToTheMillisecond) {
  // since/until narrow the history scan to whole seconds of the ids; the createdAt check must
  // settle the rest, at either side of a second boundary.
  const object_id w = make_webhook({"*"});
  advance(std::chrono::milliseconds(1000 - now().time_since_epoch().count() % 1000));  // x.000
  std::vector<timestamp> created;
  for (const int step : {100, 300, 500, 250, 1000, 1, 998}) {  // .100 .400 .900 1.150 2.150 ...
    advance(std::chrono::milliseconds(step));
    created.push_back(now());
    ingest_ok(request());
    const auto due = log_->jobs().take_due(now(), 10).ready;
    ASSERT_EQ(due.size(), 1u);
    ASSERT_TRUE(record(due[0].delivery, 200, attempt_decision::succeeded()));
  }
  const auto count_between = [&](std::optional<timestamp> since, std::optional<timestamp> until) {
    return static_cast<std::size_t>(std::count_if(created.begin(), created.end(), [&](timestamp t) {
      return (!since || t >= *since) && (!until || t < *until);
    }));
  };
  for (const timestamp& edge : created) {
    for (const auto shift : {-1, 0, 1}) {
      const timestamp at = edge + std::chrono::milliseconds(shift);
      delivery_query q = query(w);
      q.until = at;
      EXPECT_EQ(all_pages(q).size(), count_between(std::nullopt, at)) << "until " << shift;
      q = query(w);
      q.since = at;
      EXPECT_EQ(all_pages(q).size(), count_between(at, std::nullopt)) << "since " << shift;
      q = query();
      q.since = created.front() + std::chrono::milliseconds(shift);
      q.until = at;
      EXPECT_EQ(all_pages(q).size(), count_between(q.since, at)) << "both " << shift;
    }
  }
}

TEST_F(DeliveryLogTest, PagesCrossHistoryBucketsNewestFirst) {
  // A 16 s retention makes 1 s buckets: 40 finished deliveries over 8 seconds fill 8 of them.
  delivery_log_options options = manual();
  options.retention = seconds(16);
  open(options);
  const object_id w = make_webhook({"*"});
  std::vector<object_id> ids;
  for (int second = 0; second < 8; ++second) {
    for (int i = 0; i < 5; ++i) ingest_ok(request());
    for (const auto& j : log_->jobs().take_due(now(), 100).ready) {
      ASSERT_TRUE(record(j.delivery, 200, attempt_decision::succeeded()));
      ids.push_back(j.delivery);
    }
    advance(seconds(1));
  }
  std::sort(ids.begin(), ids.end(), std::greater<>());
  ASSERT_EQ(ids.size(), 40u);
  std::set<std::uint32_t> buckets;
  for (const auto& [key, value] : store_.records(table::history))
    buckets.insert(bucket_of_key(key));
  EXPECT_EQ(buckets.size(), 8u);

  for (const std::size_t limit : {1u, 3u, 7u, 100u}) {
    delivery_query q = query(w, {delivery_status::succeeded});
    q.limit = limit;
    std::vector<object_id> seen;
    for (const auto& d : all_pages(q)) seen.push_back(d->id);
    EXPECT_EQ(seen, ids) << "limit " << limit;
  }
}

// ---------------------------------------------------------------- retention

TEST_F(DeliveryLogTest, RetentionHidesOldHistoryAtOnceAndASweepDropsItsBuckets) {
  delivery_log_options options = manual();
  options.retention = seconds(160);  // 10 s buckets
  open(options);
  const object_id w = make_webhook({"*"});
  const ingest_result old_event = ingest_ok(request());
  const object_id old_id = log_->jobs().take_due(now(), 10).ready.at(0).delivery;
  ASSERT_TRUE(record(old_id, 200, attempt_decision::succeeded()));
  advance(seconds(100));
  const ingest_result young_event = ingest_ok(request());
  const object_id young_id = log_->jobs().take_due(now(), 10).ready.at(0).delivery;
  ASSERT_TRUE(record(young_id, 200, attempt_decision::succeeded()));
  const std::size_t records_before = store_.records(table::history).size();

  // 160 s after the first event, exactly: still there.
  advance(seconds(60));
  EXPECT_TRUE(detail_of(old_id));
  EXPECT_EQ(deliveries_of(w).size(), 2u);
  // A millisecond later it is gone from every read, before any sweep.
  advance(milliseconds(1));
  EXPECT_FALSE(detail_of(old_id));
  EXPECT_FALSE(event_of(old_event.event));
  const auto listed = deliveries_of(w);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]->id, young_id);
  EXPECT_EQ(store_.records(table::history).size(), records_before);

  // The sweep drops the old bucket with range deletes, not one delete per record.
  advance(seconds(10));  // the old bucket has ended before now - retention
  const std::size_t batches = store_.batches().size();
  auto swept = sweep();
  ASSERT_TRUE(swept) << swept.error().detail;
  EXPECT_EQ(swept->expired_deliveries, 1u);
  EXPECT_EQ(swept->pinned, 0u);
  ASSERT_EQ(store_.batches().size(), batches + 1);
  std::size_t ranges = 0, point_deletes = 0;
  const auto written = store_.batches();
  for (const auto& op : written.back().ops) {
    if (op.where != table::history) continue;
    EXPECT_FALSE(op.value);
    ranges += op.range_end ? 1u : 0u;
    point_deletes += op.range_end ? 0u : 1u;
  }
  EXPECT_EQ(ranges, 1u);
  EXPECT_EQ(point_deletes, 0u);
  // What is left is the young event's: its event, attempt and two finished records.
  EXPECT_EQ(store_.records(table::history).size(), 4u);
  EXPECT_TRUE(detail_of(young_id));
  EXPECT_TRUE(event_of(young_event.event));
  EXPECT_EQ(log_->counters().expired, 1u);
  EXPECT_EQ(log_->counts().history_deliveries, 1u);
  ASSERT_TRUE(log_->reclaim_history(*swept));
  EXPECT_LT(*log_->history().oldest_age, seconds(160));

  // The counts survive a restart.
  open(options);
  EXPECT_EQ(log_->counts().history_deliveries, 1u);
}

TEST_F(DeliveryLogTest, ASweepCostsTheSameRangesHoweverManyRecordsItDrops) {
  delivery_log_options options = manual();
  options.retention = seconds(16);  // 1 s buckets
  open(options);
  make_webhook({"*"});
  make_webhook({"*"});
  for (int second = 0; second < 5; ++second) {
    for (int i = 0; i < 40; ++i) ingest_ok(request());
    for (const auto& j : log_->jobs().take_due(now(), 1000).ready) {
      ASSERT_TRUE(record(j.delivery, 200, attempt_decision::succeeded()));
    }
    advance(seconds(1));
  }
  ASSERT_EQ(log_->counts().history_deliveries, 400u);
  advance(seconds(30));
  auto swept = sweep();
  ASSERT_TRUE(swept);
  EXPECT_EQ(swept->expired_deliveries, 400u);
  std::size_t history_ops = 0;
  const auto written = store_.batches();
  for (const auto& op : written.back().ops) history_ops += op.where == table::history;
  EXPECT_EQ(history_ops, 1u);  // 2 000 records, one range
  EXPECT_TRUE(store_.records(table::history).empty());
  EXPECT_EQ(log_->counts().history_deliveries, 0u);
}

TEST_F(DeliveryLogTest, ASweepKeepsWhatPendingDeliveriesOlderThanTheWindowNeed) {
  delivery_log_options options = manual();
  options.retention = seconds(16);  // 1 s buckets
  open(options);
  const object_id w = make_webhook({"*"});
  const ingest_result kept_event = ingest_ok(request("order.created", R"({"keep":true})"));
  ingest_ok(request("order.created", R"({"keep":false})"));
  const auto jobs = log_->jobs().take_due(now(), 10).ready;
  ASSERT_EQ(jobs.size(), 2u);
  object_id waiting, finished;
  for (const auto& j : jobs) {
    (log_->find_pending(j.delivery)->record->event == kept_event.event ? waiting : finished) =
        j.delivery;
  }
  ASSERT_TRUE(record(waiting, 503, attempt_decision::retry(now() + hours(1))));
  ASSERT_TRUE(record(finished, 200, attempt_decision::succeeded()));

  advance(minutes(5));
  auto swept = sweep();
  ASSERT_TRUE(swept) << swept.error().detail;
  EXPECT_EQ(swept->pinned, 1u);
  EXPECT_EQ(swept->expired_deliveries, 1u);
  // The finished one is gone; the waiting one keeps its event and its attempt.
  EXPECT_FALSE(detail_of(finished));
  const auto d = detail_of(waiting);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->record->status, delivery_status::pending);
  ASSERT_EQ(d->attempts.size(), 1u);
  EXPECT_EQ(d->attempts[0].status_code, 503);
  EXPECT_EQ(history_records(history_kind::event), 1u);
  EXPECT_EQ(history_records(history_kind::attempt), 1u);
  EXPECT_EQ(all_pages(query(w)).size(), 1u);  // pending work is never hidden by retention
  // It survives a restart, with its event to send.
  open(options);
  ASSERT_TRUE(log_->find_pending(waiting));
  EXPECT_EQ(log_->find_pending(waiting)->source_event->data, R"({"keep":true})");

  // Once it finishes, the next sweep drops it with the rest.
  ASSERT_TRUE(record(waiting, 200, attempt_decision::succeeded()));
  swept = sweep();
  ASSERT_TRUE(swept);
  EXPECT_EQ(swept->pinned, 0u);
  EXPECT_EQ(swept->expired_deliveries, 1u);
  EXPECT_TRUE(store_.records(table::history).empty());
}

TEST_F(DeliveryLogTest, AChangedRetentionStartsANewBucketEpochAndKeepsOldRecordsReadable) {
  delivery_log_options options = manual();
  options.retention = hours(16);  // 1 h buckets
  open(options);
  const object_id w = make_webhook({"*"});
  ingest_ok(request());
  const object_id first = log_->jobs().take_due(now(), 10).ready.at(0).delivery;
  ASSERT_TRUE(record(first, 200, attempt_decision::succeeded()));
  advance(seconds(10));

  options.retention = minutes(16);  // 1 min buckets from now on
  open(options);
  const auto plan =
      bucket_plan::decode(store_.records(table::meta).at(std::string(kBucketPlanKey)));
  ASSERT_TRUE(plan);
  ASSERT_GE(plan->epochs().size(), 2u);
  EXPECT_EQ(plan->epochs().back().width, 60u);
  EXPECT_GT(plan->epochs().back().from, unix_seconds(now()));  // this second keeps its bucket
  ingest_ok(request());
  const object_id second = log_->jobs().take_due(now(), 10).ready.at(0).delivery;
  ASSERT_TRUE(record(second, 200, attempt_decision::succeeded()));
  EXPECT_TRUE(detail_of(first));
  EXPECT_TRUE(detail_of(second));
  EXPECT_EQ(deliveries_of(w).size(), 2u);
}

TEST_F(DeliveryLogTest, TheSweeperThreadSweepsOnItsOwn) {
  start_sweeper_with_an_expired_delivery();
  // The writer counts what a sweep dropped, then the sweep itself: wait for both.
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while ((log_->counters().expired == 0 || log_->counters().sweeps == 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(log_->counters().expired, 1u);
  EXPECT_GE(log_->counters().sweeps, 1u);
  EXPECT_EQ(log_->counters().sweep_failures, 0u);
}

// A stop finds the sweeper freeing a dropped range's space (on RocksDB a compaction that can take
// minutes): it tells the reclaim to end, and does not wait for it to run its course.
TEST_F(DeliveryLogTest, AStopTellsTheSweepsReclaimToEnd) {
  std::atomic<bool> entered{false}, told{false};
  store_.set_on_reclaim([&](std::atomic<bool>* stop) {
    entered = true;
    const auto bound = std::chrono::steady_clock::now() + seconds(20);
    while (stop != nullptr && !stop->load() && std::chrono::steady_clock::now() < bound) {
      std::this_thread::sleep_for(milliseconds(5));
    }
    told = stop != nullptr && stop->load();
  });
  start_sweeper_with_an_expired_delivery();
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (!entered && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_TRUE(entered) << "no reclaim began";
  const auto stop_began = std::chrono::steady_clock::now();
  log_->stop();
  EXPECT_TRUE(told) << "the reclaim was not told to stop";
  EXPECT_LT(std::chrono::steady_clock::now() - stop_began, seconds(10));
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
  const auto in_flight = log_->find_pending(deliveries_of(doomed).front()->id);
  ASSERT_TRUE(in_flight);

  delete_webhook(doomed);
  advance(seconds(9));
  auto n = wait_for<std::size_t>([&](auto done) { log_->cancel_webhook(doomed, std::move(done)); });
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
  auto late = record_on(in_flight->record, 500, attempt_decision::retry(now() + seconds(5)));
  ASSERT_TRUE(late) << late.error().detail;
  EXPECT_EQ((*late)->status, delivery_status::failed);
  EXPECT_EQ((*late)->attempts, 1u);
  EXPECT_EQ(detail_of(failed[0]->id)->attempts.size(), 1u);
  EXPECT_EQ(detail_of(failed[0]->id)->record->attempts, 1u);
  EXPECT_EQ(log_->jobs().counts().in_flight, 2u);  // only the kept webhook's two
  EXPECT_EQ(log_->jobs().counts().queued, 0u);

  // A second cancel finds nothing; a restart still shows the failure.
  auto again =
      wait_for<std::size_t>([&](auto done) { log_->cancel_webhook(doomed, std::move(done)); });
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u);
  open();
  EXPECT_EQ(detail_of(failed[0]->id)->record->reason, "webhook deleted");
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
  auto n = wait_for<std::size_t>(
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
  EXPECT_EQ(log_->pending_count(), 0u);
  EXPECT_TRUE(store_.records(table::queue).empty());
}

// ---------------------------------------------------------------- erasing a subject

TEST_F(DeliveryLogTest, ErasingASubjectRemovesItsEventsDeliveriesAndAttemptsEverywhere) {
  delivery_log_options options = manual();
  options.retention = seconds(160);  // 10 s buckets: the subject's events span several
  open(options);
  const object_id ok = make_webhook({"*"});
  const object_id slow = make_webhook({"*"});
  const auto with_subject = [&](std::optional<std::string> subject) {
    ingest_request r = request();
    r.subject = std::move(subject);
    return ingest_ok(std::move(r));
  };
  std::vector<object_id> erased_events, kept_events;
  for (int round = 0; round < 3; ++round) {
    erased_events.push_back(with_subject("user-1").event);
    kept_events.push_back(with_subject("user-2").event);
    kept_events.push_back(with_subject(std::nullopt).event);
    // The first webhook's deliveries succeed; the second's stay pending (a retry an hour out).
    for (const auto& j : log_->jobs().take_due(now(), 100).ready) {
      ASSERT_TRUE(record(j.delivery, j.webhook == ok ? 200 : 503,
                         j.webhook == ok ? attempt_decision::succeeded()
                                         : attempt_decision::retry(now() + hours(1))));
    }
    advance(seconds(25));
  }
  ASSERT_EQ(log_->pending_count(), 9u);
  EXPECT_EQ(event_of(erased_events[0])->record.subject, "user-1");
  const std::uint64_t history_before = log_->counts().history_deliveries;

  auto erased = wait_for<std::size_t>(
      [&](auto done) { log_->erase_subject(project_, "user-1", std::move(done)); });
  ASSERT_TRUE(erased) << erased.error().detail;
  EXPECT_EQ(*erased, 3u);

  std::set<object_id> gone_deliveries;
  for (const object_id& e : erased_events) EXPECT_FALSE(log_->find_event(project_, e).value());
  for (const object_id& e : kept_events) EXPECT_TRUE(event_of(e));
  for (const auto& d : all_pages(query())) {
    EXPECT_TRUE(std::find(erased_events.begin(), erased_events.end(), d->event) ==
                erased_events.end());
  }
  EXPECT_EQ(all_pages(query()).size(), 12u);  // 6 events x 2 webhooks left
  EXPECT_EQ(log_->pending_count(), 6u);       // the three pending of user-1 cancelled
  EXPECT_EQ(log_->counters().deleted, 3u);
  EXPECT_EQ(log_->counters().erased_events, 3u);
  EXPECT_EQ(log_->counts().history_deliveries, history_before - 3);
  // Storage holds nothing that names an erased event or its subject any more.
  for (const auto& [key, value] : store_.records(table::history)) {
    for (const object_id& e : erased_events) {
      EXPECT_EQ(key.find(e.binary()), std::string::npos);
      EXPECT_EQ(value.find(e.to_string()), std::string::npos);
    }
    EXPECT_EQ(key.find("user-1"), std::string::npos);
  }
  for (const auto& [key, value] : store_.records(table::queue)) {
    for (const object_id& e : erased_events)
      EXPECT_EQ(value.find(e.to_string()), std::string::npos);
  }
  // A second erasure finds nothing; the other subject is whole.
  EXPECT_EQ(*wait_for<std::size_t>(
                [&](auto done) { log_->erase_subject(project_, "user-1", std::move(done)); }),
            0u);
  EXPECT_EQ(*wait_for<std::size_t>(
                [&](auto done) { log_->erase_subject(other_project_, "user-2", std::move(done)); }),
            0u);  // another project's subject of the same name is another subject
  EXPECT_EQ(event_of(kept_events[0])->record.subject, "user-2");
  (void)slow;
}

// ---------------------------------------------------------------- deleting a project

TEST_F(DeliveryLogTest, DeletingAProjectDropsItsPendingWorkAndItsHistoryByRanges) {
  delivery_log_options options = manual();
  options.retention = seconds(160);  // 10 s buckets: the history spans several
  open(options);
  const object_id doomed = make_webhook({"*"});
  const object_id kept = make_webhook({"*"}, true, other_project_);
  for (int i = 0; i < 3; ++i) {
    ingest_ok(request());
    ingest_request there = request();
    there.project = other_project_;
    ingest_ok(std::move(there));
    for (const auto& j : log_->jobs().take_due(now(), 100).ready) {
      ASSERT_TRUE(record(j.delivery, 200, attempt_decision::succeeded()));
    }
    advance(seconds(30));
  }
  const ingest_result waiting = ingest_ok(request());  // still pending in the doomed project
  ingest_request there = request();
  there.project = other_project_;
  ingest_ok(std::move(there));
  const std::size_t kept_records_before = [&] {
    std::size_t n = 0;
    for (const auto& [key, value] : store_.records(table::history)) {
      n += key.substr(kBucketBytes, object_id::kSize) == other_project_.binary();
    }
    return n;
  }();

  auto cancelled =
      wait_for<std::size_t>([&](auto done) { log_->delete_project(project_, std::move(done)); });
  ASSERT_TRUE(cancelled) << cancelled.error().detail;
  EXPECT_EQ(*cancelled, 1u);
  // Nothing of the project is left: not in memory, not on the scheduler, not in storage.
  EXPECT_TRUE(all_pages(query()).empty());
  EXPECT_FALSE(log_->find_event(project_, waiting.event).value());
  EXPECT_EQ(log_->counts().pending, 1u);  // the other project's
  for (const auto& j : log_->jobs().take_due(now(), 100).ready) {
    EXPECT_NE(log_->find_pending(j.delivery)->record->project, project_);
  }
  EXPECT_EQ(store_.records(table::queue).size(), 1u);
  for (const auto& [key, value] : store_.records(table::history)) {
    EXPECT_NE(key.substr(kBucketBytes, object_id::kSize), project_.binary());
  }
  // By ranges: the batch deletes history with range tombstones only, one per bucket.
  const auto written = store_.batches();
  std::size_t history_ops = 0;
  for (const auto& op : written.back().ops) {
    if (op.where != table::history) continue;
    EXPECT_TRUE(op.range_end.has_value());
    ++history_ops;
  }
  EXPECT_GE(history_ops, 10u);  // 160 s of 10 s buckets, and the one of now
  EXPECT_LE(history_ops, 20u);
  // The other project is untouched.
  std::size_t kept_records = 0;
  for (const auto& [key, value] : store_.records(table::history)) {
    kept_records += key.substr(kBucketBytes, object_id::kSize) == other_project_.binary();
  }
  EXPECT_EQ(kept_records, kept_records_before);
  delivery_query theirs = query(kept);
  theirs.project = other_project_;
  EXPECT_EQ(all_pages(theirs).size(), 4u);
  EXPECT_EQ(log_->counters().deleted, 1u);
  (void)doomed;
}

TEST_F(DeliveryLogTest, AStartFinishesTheDeletionOfAProjectTheCatalogNoLongerHas) {
  make_webhook({"*"});
  ingest_ok(request());
  ASSERT_EQ(log_->pending_count(), 1u);
  log_.reset();
  // The catalog deleted the project, then the process stopped before the log did its part: a
  // catalog without the project, over its own store, stands for that one.
  testing::memory_storage other_store;
  catalog without(other_store, catalog_options{});
  ASSERT_TRUE(without.load());
  without.start();
  log_ = std::make_unique<delivery_log>(store_, without, options_,
                                        [this] { return timestamp{milliseconds{now_.load()}}; });
  auto reloaded = log_->load();
  ASSERT_TRUE(reloaded) << reloaded.error().detail;
  log_->start();
  // The writer takes the delivery out of memory, then counts it: wait for both.
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while ((log_->pending_count() != 0 || log_->counters().deleted == 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_EQ(log_->pending_count(), 0u);
  EXPECT_TRUE(store_.records(table::queue).empty());
  EXPECT_EQ(log_->counters().deleted, 1u);
  log_.reset();
  without.stop();
}

// ---------------------------------------------------------------- sending again

TEST_F(DeliveryLogTest, ARedeliveredDeliveryIsPendingAgainInOneBatchWithAFreshSchedule) {
  const object_id w = make_webhook({"*"});
  const ingest_result e = ingest_ok(request("order.created", R"({"n":7})"));
  const object_id id = log_->jobs().take_due(now(), 10).ready.at(0).delivery;
  ASSERT_TRUE(record(id, 200, attempt_decision::succeeded()));
  ASSERT_EQ(log_->counts().history_deliveries, 1u);

  advance(minutes(3));
  const std::size_t batches_before = store_.batches().size();
  auto again = wait_for<std::shared_ptr<const delivery>>(
      [&](auto done) { log_->redeliver(project_, w, id, std::move(done)); });
  ASSERT_TRUE(again) << again.error().detail;
  EXPECT_EQ(store_.batches().size(), batches_before + 1);  // one durable write
  EXPECT_EQ((*again)->id, id);
  EXPECT_EQ((*again)->status, delivery_status::pending);
  EXPECT_EQ((*again)->attempts, 1u);
  EXPECT_EQ((*again)->schedule_start, 1u);
  EXPECT_EQ((*again)->next_attempt_at, now());
  EXPECT_EQ((*again)->reason, std::nullopt);
  // Out of history, into the queue and memory with its event, on the scheduler.
  EXPECT_EQ(history_records(history_kind::finished), 0u);
  EXPECT_EQ(history_records(history_kind::by_webhook), 0u);
  EXPECT_EQ(history_records(history_kind::attempt), 1u);  // its attempt stays
  EXPECT_EQ(log_->counts().history_deliveries, 0u);
  EXPECT_EQ(store_.records(table::queue).size(), 1u);
  ASSERT_TRUE(log_->find_pending(id));
  EXPECT_EQ(log_->find_pending(id)->source_event->data, R"({"n":7})");
  EXPECT_EQ(event_of(e.event)->deliveries.at(0).status, delivery_status::pending);

  // A restart finds it pending, with its event, due at once.
  advance(seconds(1));
  open();
  ASSERT_TRUE(log_->find_pending(id));
  EXPECT_EQ(log_->find_pending(id)->source_event->data, R"({"n":7})");
  const auto due = log_->jobs().take_due(now(), 10).ready;
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].delivery, id);

  // Attempt 2 is the first of the new schedule: its retry waits the first step (5 s), and the
  // attempts are numbered on.
  const auto pending = log_->find_pending(id);
  EXPECT_EQ(schedule_position(*pending->record, 2), 1u);
  const attempt_decision d =
      log_->decide({500, std::nullopt}, schedule_position(*pending->record, 2), [] { return 0.5; });
  EXPECT_EQ(d.retry_at, now() + seconds(5));
  ASSERT_TRUE(record(id, 500, d));
  const auto detail = detail_of(id);
  ASSERT_TRUE(detail);
  ASSERT_EQ(detail->attempts.size(), 2u);
  EXPECT_EQ(detail->attempts[0].status_code, 200);
  EXPECT_EQ(detail->attempts[1].status_code, 500);
  EXPECT_EQ(detail->record->attempts, 2u);
  EXPECT_EQ(detail->record->schedule_start, 1u);
}

TEST_F(DeliveryLogTest, ARedeliveryOfAFailedOneSharesTheEventOfAPendingSibling) {
  const object_id a = make_webhook({"*"});
  const object_id b = make_webhook({"*"});
  ingest_ok(request());
  object_id of_a, of_b;
  for (const auto& j : log_->jobs().take_due(now(), 10).ready) {
    (j.webhook == a ? of_a : of_b) = j.delivery;
  }
  ASSERT_TRUE(record(of_a, 410, attempt_decision::failed(kReasonGone)));
  ASSERT_TRUE(record(of_b, 500, attempt_decision::retry(now() + hours(1))));
  auto again = wait_for<std::shared_ptr<const delivery>>(
      [&](auto done) { log_->redeliver(project_, a, of_a, std::move(done)); });
  ASSERT_TRUE(again) << again.error().detail;
  EXPECT_EQ(log_->find_pending(of_a)->source_event, log_->find_pending(of_b)->source_event);
  EXPECT_EQ(log_->counts().events, 1u);
  (void)b;
}

TEST_F(DeliveryLogTest, RedeliveringUnknownOtherOrExpiredDeliveriesIsNotFound) {
  delivery_log_options options = manual();
  options.retention = hours(16);
  open(options);
  const object_id w = make_webhook({"*"});
  const object_id other = make_webhook({"*"});
  ingest_ok(request());
  const auto jobs = log_->jobs().take_due(now(), 10).ready;
  ASSERT_EQ(jobs.size(), 2u);
  const object_id id = jobs[0].webhook == w ? jobs[0].delivery : jobs[1].delivery;
  ASSERT_TRUE(record(id, 200, attempt_decision::succeeded()));
  const auto redeliver = [&](const object_id& project, const object_id& webhook,
                             const object_id& delivery_id) {
    return wait_for<std::shared_ptr<const delivery>>(
        [&](auto done) { log_->redeliver(project, webhook, delivery_id, std::move(done)); });
  };
  for (const auto& r :
       {redeliver(project_, w, object_id::parse("65a0f1c2aabbccddee000999").value()),
        redeliver(project_, other, id), redeliver(other_project_, w, id)}) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, error_kind::not_found);
  }
  advance(hours(17));
  auto expired = redeliver(project_, w, id);
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().kind, error_kind::not_found);
  EXPECT_TRUE(store_.records(table::queue).size() == 1u);  // only the other webhook's
}

TEST_F(DeliveryLogTest, RedeliveringAPendingOneMakesItDueNowAndAnAttemptInFlightIsFollowedAtOnce) {
  const object_id w = make_webhook({"*"});
  ingest_ok(request());
  const object_id id = log_->jobs().take_due(now(), 10).ready.at(0).delivery;
  ASSERT_TRUE(record(id, 500, attempt_decision::retry(now() + hours(2))));
  ASSERT_TRUE(log_->jobs().take_due(now(), 10).ready.empty());

  auto due_now = wait_for<std::shared_ptr<const delivery>>(
      [&](auto done) { log_->redeliver(project_, w, id, std::move(done)); });
  ASSERT_TRUE(due_now) << due_now.error().detail;
  EXPECT_EQ((*due_now)->next_attempt_at, now());
  EXPECT_EQ((*due_now)->schedule_start, 1u);
  ASSERT_EQ(log_->jobs().take_due(now(), 10).ready.size(), 1u);

  // Attempt 2 is in flight (taken with the record as it was) when another redelivery comes: its
  // failure, which its decision would make wait hours, is followed at once.
  const auto in_flight = log_->find_pending(id)->record;
  advance(seconds(1));
  auto again = wait_for<std::shared_ptr<const delivery>>(
      [&](auto done) { log_->redeliver(project_, w, id, std::move(done)); });
  ASSERT_TRUE(again);
  advance(seconds(1));
  auto after = record_on(in_flight, 503, attempt_decision::retry(now() + hours(5)));
  ASSERT_TRUE(after) << after.error().detail;
  EXPECT_EQ((*after)->attempts, 2u);
  EXPECT_EQ((*after)->next_attempt_at, (*again)->next_attempt_at);
  EXPECT_EQ(log_->jobs().take_due(now(), 10).ready.size(), 1u);
  // An attempt that ran out the schedule it was taken under is not the end either.
  const auto third = log_->find_pending(id)->record;
  ASSERT_TRUE(wait_for<std::shared_ptr<const delivery>>(
      [&](auto done) { log_->redeliver(project_, w, id, std::move(done)); }));
  auto exhausted = record_on(third, 500, attempt_decision::failed(kReasonExhausted));
  ASSERT_TRUE(exhausted);
  EXPECT_EQ((*exhausted)->status, delivery_status::pending);
  // But a success, or a 410, is final.
  EXPECT_EQ(log_->jobs().take_due(now(), 10).ready.size(), 1u);
  const auto fourth = log_->find_pending(id)->record;
  ASSERT_TRUE(wait_for<std::shared_ptr<const delivery>>(
      [&](auto done) { log_->redeliver(project_, w, id, std::move(done)); }));
  auto done = record_on(fourth, 200, attempt_decision::succeeded());
  ASSERT_TRUE(done);
  EXPECT_EQ((*done)->status, delivery_status::succeeded);
}

TEST_F(DeliveryLogTest, RecoverRedeliversExactlyTheFailedDeliveriesOfTheWindowInBatches) {
  const object_id w = make_webhook({"*"});
  const object_id other = make_webhook({"*"});
  // Failed before, inside and after the window; inside also some that succeeded or still wait,
  // and the other webhook's failures.
  const auto fail_all = [&](int n, std::optional<int> succeed_every) {
    for (int i = 0; i < n; ++i) ingest_ok(request());
    int k = 0;
    for (const auto& j : log_->jobs().take_due(now(), 100'000).ready) {
      const bool ok = j.webhook == w && succeed_every && ++k % *succeed_every == 0;
      EXPECT_TRUE(
          record(j.delivery, ok ? 200 : 410,
                 ok ? attempt_decision::succeeded() : attempt_decision::failed(kReasonGone)));
    }
  };
  fail_all(3, std::nullopt);
  advance(seconds(10));
  const timestamp since = now();
  const std::size_t inside = delivery_log::kRecoverBatch + 40;
  fail_all(static_cast<int>(inside + inside / 9), 10);  // every tenth of w's succeeds
  ingest_ok(request());                                 // pending, not failed
  for (const auto& j : log_->jobs().take_due(now(), 10).ready) {
    ASSERT_TRUE(record(j.delivery, 500, attempt_decision::retry(now() + hours(5))));
  }
  advance(seconds(10));
  const timestamp until = now();
  advance(seconds(1));
  fail_all(2, std::nullopt);
  const auto failed_of_w = [&] {
    return deliveries_of(w, delivery_status::failed).size();
  };
  const std::size_t failed_inside = failed_of_w() - 5;
  const std::size_t other_failed = deliveries_of(other, delivery_status::failed).size();
  ASSERT_GT(failed_inside, delivery_log::kRecoverBatch);

  const std::size_t batches_before = store_.batches().size();
  auto recovered = wait_for<std::size_t>(
      [&](auto done) { log_->recover(project_, w, since, until, std::move(done)); });
  ASSERT_TRUE(recovered) << recovered.error().detail;
  EXPECT_EQ(*recovered, failed_inside);
  EXPECT_EQ(store_.batches().size(), batches_before + 2);  // 256, then the rest
  EXPECT_EQ(failed_of_w(), 5u);                            // the three before and two after
  for (const auto& d : deliveries_of(w, delivery_status::failed)) {
    EXPECT_TRUE(d->created_at < since || d->created_at >= until);
  }
  EXPECT_EQ(deliveries_of(other, delivery_status::failed).size(), other_failed);
  EXPECT_EQ(deliveries_of(w, delivery_status::pending).size(), failed_inside + 1);

  // Durable: after a restart they are still pending, and a second recovery finds nothing.
  open();
  EXPECT_EQ(deliveries_of(w, delivery_status::pending).size(), failed_inside + 1);
  auto again = wait_for<std::size_t>(
      [&](auto done) { log_->recover(project_, w, since, std::nullopt, std::move(done)); });
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u);
}

TEST_F(DeliveryLogTest, ATestPingGoesToItsWebhookAloneEvenWhenInactive) {
  const object_id quiet = make_webhook({"order.created"}, false);
  const object_id loud = make_webhook({"*"});
  ingest_ok(request());  // to `loud` only
  const auto loud_jobs = log_->jobs().take_due(now(), 10).ready;
  ASSERT_EQ(loud_jobs.size(), 1u);
  ASSERT_TRUE(record(loud_jobs[0].delivery, 200, attempt_decision::succeeded()));

  auto ping = wait_for<std::shared_ptr<const delivery>>(
      [&](auto done) { log_->send_test(org_, project_, quiet, std::move(done)); });
  ASSERT_TRUE(ping) << ping.error().detail;
  EXPECT_TRUE((*ping)->test);
  EXPECT_EQ((*ping)->type, "webhook.ping");
  EXPECT_EQ((*ping)->webhook, quiet);
  const auto pending = log_->find_pending((*ping)->id);
  ASSERT_TRUE(pending);
  EXPECT_EQ(pending->source_event->data, "{\"webhookId\":\"" + quiet.to_string() + "\"}");
  ASSERT_TRUE(pending->source_event->traceparent);
  const auto e = event_of((*ping)->event);
  ASSERT_TRUE(e);
  ASSERT_EQ(e->deliveries.size(), 1u);  // no fan-out
  EXPECT_EQ(e->deliveries[0].webhook, quiet);

  // It goes out although `quiet` is inactive; a restart keeps it a test.
  open();
  const auto due = log_->jobs().take_due(now(), 10).ready;
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].delivery, (*ping)->id);
  EXPECT_TRUE(log_->find_pending((*ping)->id)->record->test);

  for (const object_id& wrong : {loud, object_id::parse("65a0f1c2aabbccddee000999").value()}) {
    auto refused = wait_for<std::shared_ptr<const delivery>>(
        [&](auto done) { log_->send_test(org_, other_project_, wrong, std::move(done)); });
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().kind, error_kind::not_found);
  }
}

TEST_F(DeliveryLogTest, AnEventKeepsTheTraceItCameWithOrStartsOne) {
  make_webhook({"*"});
  ingest_request with = request();
  with.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const ingest_result a = ingest_ok(with);
  const ingest_result b = ingest_ok(request());
  EXPECT_EQ(event_of(a.event)->record.traceparent, with.traceparent);
  const auto started = event_of(b.event)->record.traceparent;
  ASSERT_TRUE(started);
  EXPECT_EQ(started->size(), 55u);
  EXPECT_NE(*started, *with.traceparent);
  open();  // kept with the pending work
  for (const auto& j : log_->jobs().take_due(now(), 10).ready) {
    EXPECT_TRUE(log_->find_pending(j.delivery)->source_event->traceparent);
  }
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

TEST_F(DeliveryLogTest, PendingDeliveriesOfAnInactiveWebhookAreListedAsPaused) {
  const object_id w = make_webhook({"*"});
  const object_id other = make_webhook({"*"});
  ingest_ok(request());
  ingest_ok(request());
  set_active(w, false);
  delivery_query paused = query(w);
  paused.statuses.add_paused();
  const auto listed = all_pages(paused);
  ASSERT_EQ(listed.size(), 2u);
  for (const auto& d : listed) EXPECT_TRUE(log_->is_paused(*d));
  EXPECT_TRUE(deliveries_of(w, delivery_status::pending).empty());
  EXPECT_EQ(deliveries_of(w).size(), 2u);  // no filter: everything
  // The project's list: the other webhook's are pending, not paused.
  delivery_query project_paused = query();
  project_paused.statuses.add_paused();
  EXPECT_EQ(all_pages(project_paused).size(), 2u);
  EXPECT_EQ(all_pages(query(std::nullopt, {delivery_status::pending})).size(), 2u);
  EXPECT_EQ(log_->pending_count(w), 2u);
  EXPECT_EQ(log_->pending_count(other), 2u);

  set_active(w, true);
  EXPECT_TRUE(all_pages(paused).empty());
  EXPECT_EQ(deliveries_of(w, delivery_status::pending).size(), 2u);
}

TEST_F(DeliveryLogTest, AResumedWebhookSendsItsPausedDeliveriesAtOnceOldestFirst) {
  const object_id w = make_webhook({"*"});
  for (int i = 0; i < 3; ++i) ingest_ok(request());
  const auto oldest_first = [&] {
    auto list = deliveries_of(w);
    std::reverse(list.begin(), list.end());
    return list;
  };
  // Each first attempt fails; the retries are due later and later in the reverse order of
  // creation, then the webhook is switched off.
  const auto created = oldest_first();
  ASSERT_EQ(created.size(), 3u);
  EXPECT_EQ(log_->jobs().take_due(now(), 10).ready.size(), 3u);
  for (std::size_t i = 0; i < created.size(); ++i) {
    const auto retry_at = now() + hours(3 - static_cast<int>(i));
    ASSERT_TRUE(record(created[i]->id, 500, attempt_decision::retry(retry_at)));
  }
  set_active(w, false);
  EXPECT_TRUE(log_->jobs().take_due(now() + hours(5), 10).ready.empty());  // held

  // Resumed before the catalog has it active (as the API does): still held until then.
  log_->resume_webhook(w);
  EXPECT_TRUE(log_->jobs().take_due(now(), 10).ready.empty());
  set_active(w, true);
  const auto due = log_->jobs().take_due(now(), 10).ready;
  ASSERT_EQ(due.size(), 3u);  // now, not at their retry times
  for (std::size_t i = 0; i < due.size(); ++i) EXPECT_EQ(due[i].delivery, created[i]->id);
}

TEST_F(DeliveryLogTest, WriteMetaPutsAndErasesAMetaRecord) {
  const auto write = [&](std::optional<std::string> value) {
    return wait_for<void>([&](completion<void> done) {
      log_->write_meta("wh-test", std::move(value), std::move(done));
    });
  };
  ASSERT_TRUE(write("one"));
  auto stored = store_.get(table::meta, "wh-test");
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, std::optional<std::string>("one"));
  ASSERT_TRUE(write(std::nullopt));
  stored = store_.get(table::meta, "wh-test");
  ASSERT_TRUE(stored);
  EXPECT_FALSE(*stored);
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
