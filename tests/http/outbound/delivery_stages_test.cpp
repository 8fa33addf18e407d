// Where a delivery's time goes, on /metrics (docs/operations.md): the stage histograms after real
// deliveries to a real receiver on 127.0.0.1.

#include "core/common/duration_histogram.hpp"
#include "support/delivery_fixture.hpp"
#include "support/test_util.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace hookd::test {
namespace {

using hookd::testing::metric_value;

// `labels` without braces ("class=\"2xx\"", or "" for none).
double bucket(const std::string& text, const std::string& family, const std::string& labels,
              const std::string& le) {
  return metric_value(
      text, family + "_bucket{" + (labels.empty() ? "" : labels + ",") + "le=\"" + le + "\"}");
}
double count(const std::string& text, const std::string& family, const std::string& labels = "") {
  return metric_value(text, family + "_count" + (labels.empty() ? "" : "{" + labels + "}"));
}
double sum(const std::string& text, const std::string& family, const std::string& labels = "") {
  return metric_value(text, family + "_sum" + (labels.empty() ? "" : "{" + labels + "}"));
}

constexpr const char* kIngestCommit = "hookd_ingest_commit_seconds";
constexpr const char* kDispatch = "hookd_delivery_dispatch_delay_seconds";
constexpr const char* kAttempt = "hookd_delivery_attempt_seconds";
constexpr const char* kFirst = "hookd_delivery_first_attempt_seconds";
constexpr const char* k2xx = "class=\"2xx\"";
constexpr const char* k5xx = "class=\"5xx\"";

class DeliveryStages : public ::testing::Test {
 protected:
  void SetUp() override {
    stack = std::make_unique<delivery_stack>();
    org = stack->create_organization("Acme");
    proj = stack->create_project(org, "shop");
  }

  void hook(const std::string& path) {
    stack->create_webhook(org, proj,
                          {{"name", "Stages " + path},
                           {"url", sink.url(path)},
                           {"events", json::array{"order.created"}},
                           {"active", true}});
  }
  void ingest(int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(stack->ingest(org, proj, {{"type", "order.created"}, {"data", i}}).status, 202u);
    }
  }
  // /metrics once `succeeded` deliveries have succeeded.
  std::string metrics_after(int succeeded) {
    std::string text;
    const std::string series = "hookd_deliveries_total{outcome=\"succeeded\"}";
    eventually([&] {
      text = stack->get("/metrics", "").body;
      return metric_value(text, series) >= succeeded;
    });
    EXPECT_EQ(metric_value(text, series), succeeded) << text;
    return text;
  }

  receiver sink;
  std::unique_ptr<delivery_stack> stack;
  std::string org, proj;
};

TEST_F(DeliveryStages, EveryStageCountsTheIngestsAndAttemptsMade) {
  hook("/ok");
  sink.script("/ok", {{500}});  // the first attempt fails, its retry succeeds
  ingest(3);
  const std::string text = metrics_after(3);

  // Three events, four attempts (one retry), three first attempts.
  EXPECT_EQ(count(text, kIngestCommit), 3) << text;
  EXPECT_EQ(count(text, kDispatch), 4);
  EXPECT_EQ(count(text, kAttempt, k2xx), 3);
  EXPECT_EQ(count(text, kAttempt, k5xx), 1);
  EXPECT_EQ(count(text, kAttempt, "class=\"error\""), 0);
  EXPECT_EQ(count(text, kFirst), 3);
  for (const auto& [family, labels] :
       std::initializer_list<std::pair<std::string, std::string>>{{kIngestCommit, ""},
                                                                  {kDispatch, ""},
                                                                  {kAttempt, k2xx},
                                                                  {kAttempt, k5xx},
                                                                  {kFirst, ""}}) {
    EXPECT_GT(sum(text, family, labels), 0) << family << labels;
    // Cumulative buckets; +Inf equals the count.
    double previous = 0;
    for (const double le : duration_histogram::kBounds) {
      std::ostringstream bound;
      bound << le;
      const double n = bucket(text, family, labels, bound.str());
      EXPECT_GE(n, previous) << family << labels << " le=" << le;
      previous = n;
    }
    EXPECT_EQ(bucket(text, family, labels, "+Inf"), count(text, family, labels));
  }
  // A first attempt spans its event's commit: same start, later end.
  EXPECT_GE(sum(text, kFirst), sum(text, kIngestCommit));
  EXPECT_NE(text.find("# TYPE hookd_delivery_attempt_seconds histogram\n"), std::string::npos);
}

TEST_F(DeliveryStages, ASlowReceiverShowsInTheAttemptStageNotInTheDispatchDelay) {
  hook("/slow");
  sink.set_default("/slow", scripted_reply{.status = 200, .delay = 200ms});
  ingest(3);  // fewer than the webhook's 4 slots: none waits for another
  const std::string text = metrics_after(3);

  EXPECT_EQ(count(text, kAttempt, k2xx), 3) << text;
  EXPECT_EQ(bucket(text, kAttempt, k2xx, "0.1"), 0);
  EXPECT_LT(bucket(text, kAttempt, k2xx, "0.1"), bucket(text, kAttempt, k2xx, "0.5"));
  // About 3 x 200 ms, less a little: hookd's clock starts once its write of the request has
  // completed, and the receiver, which may read the request first, starts its 200 ms then (a
  // loaded run measured 0.5975 s in all).
  EXPECT_GE(sum(text, kAttempt, k2xx), 0.57);
  // The receiver's 200 ms are not a dispatch delay...
  EXPECT_EQ(count(text, kDispatch), 3);
  EXPECT_EQ(bucket(text, kDispatch, "", "0.1"), 3);
  // ...but they are part of each event's ingest -> first attempt.
  EXPECT_EQ(bucket(text, kFirst, "", "0.1"), 0);
  EXPECT_EQ(count(text, kFirst), 3);
}

}  // namespace
}  // namespace hookd::test
