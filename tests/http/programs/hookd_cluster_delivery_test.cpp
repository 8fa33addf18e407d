// Deliveries in cluster mode with real processes (docs/cluster.md, "A node's deliveries"): three
// hookd nodes on one private PostgreSQL (tests/support/pg_cluster.hpp) and a real receiver on
// 127.0.0.1 that counts requests by webhook-id (the delivery id). Events ingested on every node
// are each delivered once; a node killed with -9 while it holds leased deliveries leaves them to
// the others, which deliver every one of them once its leases run out (--cluster-lease). A webhook
// is delivered by one node at a time (docs/cluster.md, "Ordering and flow control across nodes"):
// its ordering keys and its in-flight cap hold for the cluster, not per node.

#include "support/hookd_cluster_nodes.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace hookd::test {
namespace {

namespace fs = std::filesystem;
using hookd::testing::shared_pg_cluster;

constexpr std::string_view kAdmin = "hkd_cluster-delivery-admin-token-0123456789abcdef";

class HookdClusterDeliveryTest : public hookd_cluster_nodes {
 protected:
  HookdClusterDeliveryTest() : hookd_cluster_nodes("hookd-cluster-delivery", kAdmin) {}

  // Retries 200 ms apart, so that a failed attempt comes back within the test.
  hookd_process& start_node(std::vector<std::string> more = {}) {
    std::string schedule = "200ms";
    for (int i = 1; i < 40; ++i) schedule += ",200ms";
    std::vector<std::string> options{"--allow-private-targets", "--retry-schedule", schedule,
                                     "--delivery-timeout", "5s"};
    options.insert(options.end(), more.begin(), more.end());
    return hookd_cluster_nodes::start_node(std::move(options));
  }

  static http_reply call(hookd_process& node, bhttp::verb verb, const std::string& target,
                         const json::object& body) {
    http_client client(node.endpoint());
    return client.request(
        verb, target, json::serialize(body),
        {{"Authorization", "Bearer " + std::string(kAdmin)}, {"Content-Type", "application/json"}});
  }

  // An organization, a project and a webhook to `url` made on node 1 and seen by every node.
  std::string make_webhook(const std::string& url, const std::string& type) {
    if (org_.empty()) {
      auto org = call(*nodes_[0], bhttp::verb::post, "/api/v1/organizations", {{"name", "Acme"}});
      EXPECT_EQ(org.status, 201u) << org.body;
      org_ = org.str("_id");
      auto project = call(*nodes_[0], bhttp::verb::post, test_server::projects_path(org_),
                          {{"name", "Shop"}, {"slug", "shop"}});
      EXPECT_EQ(project.status, 201u) << project.body;
      project_ = project.str("_id");
    }
    auto hook = call(*nodes_[0], bhttp::verb::post, test_server::webhooks_path(org_, project_),
                     {{"name", type}, {"url", url}, {"events", json::array{type}}});
    EXPECT_EQ(hook.status, 201u) << hook.body;
    const std::string id = hook.str("_id");
    // Every node fans out to it before the test ingests there.
    for (auto& node : nodes_) {
      const auto until = std::chrono::steady_clock::now() + 10s;
      while (std::chrono::steady_clock::now() < until) {
        http_client client(node->endpoint());
        auto r =
            client.request(bhttp::verb::get, test_server::webhooks_path(org_, project_) + "/" + id,
                           std::nullopt, {{"Authorization", "Bearer " + std::string(kAdmin)}});
        if (r.status == 200) break;
        std::this_thread::sleep_for(10ms);
      }
    }
    return id;
  }

  void ingest(hookd_process& node, const std::string& type, int n, int first = 0,
              const std::optional<std::string>& ordering_key = std::nullopt) {
    http_client client(node.endpoint());
    for (int i = first; i < first + n; ++i) {
      json::object body{{"type", type}, {"data", {{"n", i}}}};
      if (ordering_key) body["orderingKey"] = *ordering_key;
      auto r = client.request(bhttp::verb::post, delivery_stack::events_path(org_, project_),
                              json::serialize(body),
                              {{"Authorization", "Bearer " + std::string(kAdmin)},
                               {"Content-Type", "application/json"}});
      ASSERT_EQ(r.status, 202u) << r.body;
      ASSERT_EQ(r.json().at("deliveries").as_int64(), 1);
    }
  }

  // data.n of each request to `path`, in the order they came.
  static std::vector<std::int64_t> numbers(const receiver& sink, const std::string& path) {
    std::vector<std::int64_t> out;
    for (const auto& r : sink.requests(path))
      out.push_back(json::parse(r.body).at("data").at("n").as_int64());
    return out;
  }

  // Requests to `path` per webhook-id.
  static std::map<std::string, int> by_delivery(const receiver& sink, const std::string& path) {
    std::map<std::string, int> seen;
    for (const auto& r : sink.requests(path)) ++seen[r.header("webhook-id")];
    return seen;
  }

  template <class Condition>
  static bool wait_until(Condition done, std::chrono::seconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

  std::string org_, project_;
};

TEST_F(HookdClusterDeliveryTest, AThousandEventsOnThreeNodesAreEachDeliveredOnceByOneNode) {
  receiver sink;
  for (int i = 0; i < 3; ++i) start_node();
  make_webhook(sink.url("/orders"), "order.created");
  constexpr int kEvents = 1000;
  std::vector<std::thread> producers;
  for (int i = 0; i < 3; ++i) {
    producers.emplace_back([this, i] {
      ingest(*nodes_[static_cast<std::size_t>(i)], "order.created", i == 0 ? 334 : 333);
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(wait_until([&] { return sink.count("/orders") >= kEvents; }, 120s))
      << sink.count("/orders") << " requests";
  std::this_thread::sleep_for(500ms);  // a second attempt of any of them would arrive by now
  const auto seen = by_delivery(sink, "/orders");
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kEvents));
  for (const auto& [id, n] : seen)
    EXPECT_EQ(n, 1) << "delivery " << id << " was attempted " << n << " times";
  const auto succeeded = [&] {
    return shared_pg_cluster()->query_value(
        database(), "SELECT count(*) FROM delivery_history WHERE status = 'succeeded'");
  };
  // The receiver counts a request when it reads it; the node records the answer after: wait.
  EXPECT_TRUE(wait_until([&] { return succeeded() == std::to_string(kEvents); }, 60s));
  EXPECT_EQ(succeeded(), std::to_string(kEvents));
}

TEST_F(HookdClusterDeliveryTest, ANodeKilledWithLeasedDeliveriesLeavesThemToTheOthers) {
  receiver sink;
  // The receiver holds every request to /held: the node's attempts stay in flight and its
  // other deliveries wait on its scheduler, all leased to it.
  sink.set_default("/held", {200, {}, "ok", 0ms, true});
  // A 5 s lease instead of the default 30 s, each node under a name of its own.
  constexpr auto kLease = 5s;
  constexpr auto kClaimInterval = 250ms;
  for (int i = 1; i <= 3; ++i) {
    start_node({"--cluster-lease", "5s", "--cluster-claim-interval", "250ms", "--node-name",
                "node-" + std::to_string(i)});
  }
  make_webhook(sink.url("/held"), "invoice.paid");
  constexpr int kEvents = 20;
  ingest(*nodes_[2], "invoice.paid", kEvents);
  ASSERT_TRUE(wait_until([&] { return sink.held() > 0; }, 10s));
  const std::string db = database();
  EXPECT_EQ(shared_pg_cluster()->query_value(
                db, "SELECT string_agg(DISTINCT lease_owner, ',') FROM deliveries"),
            "node-3");
  // The lease is as given: it runs out about 5 s after the claim (renewed every third of it).
  const auto lease_left_ms = std::stol(shared_pg_cluster()->query_value(
      db,
      "SELECT ceil(extract(epoch FROM max(lease_until) - now()) * 1000)::bigint FROM "
      "deliveries"));
  EXPECT_GT(lease_left_ms, 0);
  EXPECT_LE(lease_left_ms, 5'000 + 1'000);

  const auto killed = std::chrono::steady_clock::now();
  nodes_[2]->child().signal(SIGKILL);
  ASSERT_EQ(nodes_[2]->child().wait_exit(), 128 + SIGKILL);
  sink.set_default("/held", {200, {}, "ok"});
  sink.release_held();

  // Nodes 1 and 2 take them once the leases run out: within the lease and a claim interval of
  // the kill, plus a generous margin for delivering 20 on a loaded machine. A correctness bound
  // (the default 30 s lease would break it), not a measurement.
  ASSERT_TRUE(wait_until([&] { return by_delivery(sink, "/held").size() >= kEvents; }, 90s))
      << by_delivery(sink, "/held").size() << " of " << kEvents << " deliveries arrived";
  const auto took = std::chrono::steady_clock::now() - killed;
  EXPECT_LT(took, kLease + kClaimInterval + 10s)
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
      << " ms from the kill to the last delivery";
  std::cout << "takeover: the last of " << kEvents << " deliveries "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
            << " ms after the kill (lease 5 s)\n";
  EXPECT_TRUE(wait_until(
      [&] {
        return shared_pg_cluster()->query_value(db, "SELECT count(*) FROM deliveries") == "0";
      },
      30s));
  EXPECT_EQ(shared_pg_cluster()->query_value(
                db, "SELECT count(*) FROM delivery_history WHERE status = 'succeeded'"),
            std::to_string(kEvents));
}

TEST_F(HookdClusterDeliveryTest, AnOrderingKeyHoldsForEventsIngestedOnEveryNodeAcrossARetry) {
  receiver sink;
  // The 6th request (the first attempt of event 5) fails: its retry must come before event 6.
  std::vector<scripted_reply> script(5, scripted_reply{});
  script.push_back({503, {}, "busy"});
  sink.script("/ordered", script);
  for (int i = 0; i < 3; ++i) start_node();
  make_webhook(sink.url("/ordered"), "order.created");
  constexpr int kEvents = 30;
  // One after another (each 202 before the next request), round-robin over the three nodes:
  // the key's order is the order of ingest, whichever node took each event.
  for (int i = 0; i < kEvents; ++i) {
    ingest(*nodes_[static_cast<std::size_t>(i % 3)], "order.created", 1, i, "customer-7");
  }
  ASSERT_TRUE(wait_until([&] { return sink.count("/ordered") >= kEvents + 1; }, 60s))
      << sink.count("/ordered") << " requests";
  std::this_thread::sleep_for(500ms);  // a request out of line would arrive by now
  std::vector<std::int64_t> expected;
  for (int i = 0; i < kEvents; ++i) {
    expected.push_back(i);
    if (i == 5) expected.push_back(5);  // the retry, before event 6
  }
  EXPECT_EQ(numbers(sink, "/ordered"), expected);
  EXPECT_EQ(sink.max_concurrent(), 1u) << "one delivery of a key at a time";
  // One node holds the webhook and made every attempt.
  EXPECT_EQ(shared_pg_cluster()->query_value(database(), "SELECT count(*) FROM webhook_leases"),
            "1");
}

TEST_F(HookdClusterDeliveryTest, AnInFlightCapOfOneHoldsForTheWebhookAcrossNodes) {
  receiver sink;
  // Slow answers, so that attempts would overlap if any node went on its own.
  sink.set_default("/capped", {200, {}, "ok", 40ms});
  for (int i = 0; i < 3; ++i) start_node({"--max-inflight-per-webhook", "1"});
  make_webhook(sink.url("/capped"), "invoice.paid");
  constexpr int kPerNode = 15;
  std::vector<std::thread> producers;
  for (int i = 0; i < 3; ++i) {
    producers.emplace_back([this, i] {
      ingest(*nodes_[static_cast<std::size_t>(i)], "invoice.paid", kPerNode, i * kPerNode);
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(wait_until([&] { return sink.count("/capped") >= 3 * kPerNode; }, 60s))
      << sink.count("/capped") << " requests";
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(sink.count("/capped"), 3u * kPerNode);
  EXPECT_EQ(sink.max_concurrent(), 1u) << "--max-inflight-per-webhook 1, with three nodes";
  const auto seen = by_delivery(sink, "/capped");
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(3 * kPerNode));
}

// PostgreSQL stopped at once (as a crash would) and started again while every node ingests: a
// node refuses what it cannot commit (503, problem+json) and says it is not ready, recovers by
// itself once the server is back, and every event it acknowledged (202) is delivered
// (docs/cluster.md, "Running a node on PostgreSQL", PostgreSQL unreachable).
TEST_F(HookdClusterDeliveryTest, PostgresqlRestartedUnderIngestLosesNoAcknowledgedEvent) {
  receiver sink;
  for (int i = 1; i <= 3; ++i) start_node({"--cluster-lease", "5s"});
  make_webhook(sink.url("/orders"), "order.created");

  struct tally {
    std::vector<std::int64_t> acknowledged;
    std::map<unsigned, int> refused;  // status (0: no answer) -> count
    std::vector<std::string> bad_refusals;
  };
  std::vector<tally> tallies(3);
  std::atomic<bool> producing{true};
  std::vector<std::thread> producers;
  for (std::size_t i = 0; i < 3; ++i) {
    producers.emplace_back([this, i, &tallies, &producing] {
      tally& t = tallies[i];
      for (std::int64_t n = static_cast<std::int64_t>(i) * 1'000'000; producing; ++n) {
        http_client client(nodes_[i]->endpoint());
        json::object body{{"type", "order.created"}, {"data", {{"n", n}}}};
        auto r = client.try_request(bhttp::verb::post, delivery_stack::events_path(org_, project_),
                                    json::serialize(body),
                                    {{"Authorization", "Bearer " + std::string(kAdmin)},
                                     {"Content-Type", "application/json"}});
        if (r && r->status == 202) {
          t.acknowledged.push_back(n);
          continue;
        }
        ++t.refused[r ? r->status : 0u];
        if (r && (r->status != 503 ||
                  r->header("Content-Type").find("application/problem+json") == std::string::npos))
          t.bad_refusals.push_back(std::to_string(r->status) + " " + r->body);
        std::this_thread::sleep_for(20ms);
      }
    });
  }
  const auto acknowledged_so_far = [&] {
    std::size_t n = 0;
    for (const auto& t : tallies) n += t.acknowledged.size();
    return n;
  };
  ASSERT_TRUE(wait_until([&] { return acknowledged_so_far() >= 100; }, 30s));

  shared_pg_cluster()->stop();
  const auto readyz = [](hookd_process& node) {
    http_client client(node.endpoint());
    auto r = client.try_request(bhttp::verb::get, "/readyz");
    return r ? r->status : 0u;
  };
  for (auto& node : nodes_) {
    EXPECT_TRUE(wait_until([&] { return readyz(*node) == 503; }, 30s))
        << "a node without its database must say it is not ready";
  }
  std::this_thread::sleep_for(1s);  // ingests keep coming, and are refused
  shared_pg_cluster()->start();
  for (auto& node : nodes_) {
    EXPECT_TRUE(wait_until([&] { return readyz(*node) == 200; }, 60s))
        << "a node recovers by itself once its database is back";
  }
  const std::size_t before_more = acknowledged_so_far();
  EXPECT_TRUE(wait_until([&] { return acknowledged_so_far() >= before_more + 100; }, 30s))
      << "every node ingests again after the restart";
  producing = false;
  for (auto& t : producers) t.join();

  std::set<std::int64_t> acknowledged;
  std::map<unsigned, int> refused;
  for (const auto& t : tallies) {
    acknowledged.insert(t.acknowledged.begin(), t.acknowledged.end());
    for (const auto& [status, n] : t.refused) refused[status] += n;
    for (const auto& bad : t.bad_refusals) ADD_FAILURE() << "refused with " << bad;
  }
  EXPECT_GT(refused[503], 0) << "the outage was not seen by any ingest";
  const auto delivered = [&] {
    const auto got = numbers(sink, "/orders");
    return std::set<std::int64_t>(got.begin(), got.end());
  };
  // Deliveries held when the server stopped are retried, or claimed again once their lease ran out.
  EXPECT_TRUE(wait_until(
      [&] {
        const auto seen = delivered();
        return std::includes(seen.begin(), seen.end(), acknowledged.begin(), acknowledged.end());
      },
      120s));
  const auto seen = delivered();
  std::size_t missing = 0;
  for (auto n : acknowledged)
    if (seen.count(n) == 0) ++missing;
  EXPECT_EQ(missing, 0u) << "of " << acknowledged.size() << " acknowledged events";
  std::cout << acknowledged.size() << " events acknowledged, " << refused[503]
            << " ingests refused with 503 during the outage, " << refused[0]
            << " without an answer; every acknowledged event delivered\n";
}

}  // namespace
}  // namespace hookd::test
