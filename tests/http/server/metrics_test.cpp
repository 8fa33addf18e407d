#include "http/server/metrics.hpp"

#include "core/catalog/catalog.hpp"
#include "http/api/app.hpp"
#include "storage/rocksdb_storage.hpp"
#include "support/test_util.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <set>
#include <sstream>

namespace hookd::http {
namespace {

using hookd::testing::metric_value;

using namespace std::chrono_literals;

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hookd-metrics-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto opened = open_rocksdb_storage((dir_ / "db").string());
    ASSERT_TRUE(opened.has_value()) << opened.error().detail;
    store_ = std::move(*opened);
    cat_ = std::make_unique<catalog>(*store_, catalog_options{});
    ASSERT_TRUE(cat_->load().has_value());
    app_ = std::make_unique<app>(*cat_, stats_);
    app_->store = store_.get();
  }
  void TearDown() override {
    app_.reset();
    cat_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  std::unique_ptr<storage> store_;
  std::unique_ptr<catalog> cat_;
  metrics stats_;
  std::unique_ptr<app> app_;
};

TEST_F(MetricsTest, CountsRequestsByRouteAndStatus) {
  stats_.record_request("/a", 200, 1ms);
  stats_.record_request("/a", 200, 1ms);
  stats_.record_request("/a", 404, 1ms);
  stats_.record_request("", 431, 1ms);
  EXPECT_EQ(stats_.requests_total(), 4u);
  const auto text = stats_.render(*app_);
  EXPECT_EQ(metric_value(text, R"(hookd_http_requests_total{route="/a",code="200"})"), 2);
  EXPECT_EQ(metric_value(text, R"(hookd_http_requests_total{route="/a",code="404"})"), 1);
  EXPECT_EQ(metric_value(text, R"(hookd_http_requests_total{route="unmatched",code="431"})"), 1);
  EXPECT_EQ(metric_value(text, R"(hookd_http_requests_total{route="/a",code="500"})"), -1);
}

TEST_F(MetricsTest, LatencyHistogramIsCumulativeWithSumAndCount) {
  stats_.record_request("/h", 200, 100us);  // first bucket
  stats_.record_request("/h", 200, 3ms);    // le 0.005
  stats_.record_request("/h", 200, 20s);    // above every bound: +Inf only
  const auto text = stats_.render(*app_);
  const auto bucket = [&](const char* le) {
    return metric_value(
        text,
        std::string(R"(hookd_http_request_duration_seconds_bucket{route="/h",le=")") + le + "\"}");
  };
  EXPECT_EQ(bucket("0.0005"), 1);
  EXPECT_EQ(bucket("0.0025"), 1);
  EXPECT_EQ(bucket("0.005"), 2);
  EXPECT_EQ(bucket("10"), 2);
  EXPECT_EQ(bucket("+Inf"), 3);
  EXPECT_EQ(metric_value(text, R"(hookd_http_request_duration_seconds_count{route="/h"})"), 3);
  EXPECT_NEAR(metric_value(text, R"(hookd_http_request_duration_seconds_sum{route="/h"})"), 20.0031,
              1e-9);
}

TEST_F(MetricsTest, EscapesLabelValues) {
  stats_.record_request("/q\"uo\\te\n", 200, 1ms);
  const auto text = stats_.render(*app_);
  EXPECT_EQ(metric_value(text, R"(hookd_http_requests_total{route="/q\"uo\\te\n",code="200"})"), 1);
}

TEST_F(MetricsTest, TracksOpenConnections) {
  stats_.connection_opened();
  stats_.connection_opened();
  stats_.connection_closed();
  EXPECT_EQ(stats_.open_connections(), 1);
  const auto text = stats_.render(*app_);
  EXPECT_EQ(metric_value(text, "hookd_http_open_connections"), 1);
  EXPECT_EQ(metric_value(text, "hookd_http_connections_total"), 2);
}

TEST_F(MetricsTest, ReportsCatalogSizesCommitsAndStorageWrites) {
  cat_->start();
  std::promise<bool> done;
  cat_->create_organization(
      organization_input{"Acme"},
      [&done](result<std::shared_ptr<const organization>> r) { done.set_value(r.has_value()); });
  ASSERT_TRUE(done.get_future().get());
  app_->ready = true;
  const auto text = stats_.render(*app_);
  cat_->stop();

  EXPECT_EQ(metric_value(text, R"(hookd_catalog_objects{kind="organizations"})"), 1);
  EXPECT_EQ(metric_value(text, R"(hookd_catalog_objects{kind="webhooks"})"), 0);
  EXPECT_GE(metric_value(text, "hookd_catalog_commit_groups_total"), 1);
  EXPECT_GE(metric_value(text, "hookd_catalog_commit_mutations_total"), 1);
  EXPECT_EQ(metric_value(text, "hookd_catalog_commit_failed_total"), 0);
  EXPECT_GE(metric_value(text, "hookd_storage_write_batches_total"), 1);
  EXPECT_GE(metric_value(text, "hookd_storage_fsyncs_total"), 1);
  EXPECT_EQ(metric_value(text, "hookd_ready"), 1);
  // RocksDB's background work (docs/operations.md): one series per reason, each present (0 or
  // more) and not above the store's count taken after the render (the counts only grow).
  const storage_stats st = store_->stats();
  const std::pair<std::string_view, std::uint64_t> background[] = {
      {"hookd_storage_background_idle_jobs_total", st.background_idle_jobs},
      {R"(hookd_storage_background_raised_total{reason="waited"})", st.background_raised_waited},
      {R"(hookd_storage_background_raised_total{reason="filling"})", st.background_raised_filling},
      {R"(hookd_storage_background_raised_total{reason="stalled"})", st.background_raised_stalled},
  };
  for (const auto& [series, count] : background) {
    EXPECT_GE(metric_value(text, series), 0) << series;
    EXPECT_LE(metric_value(text, series), static_cast<double>(count)) << series;
  }
}

TEST_F(MetricsTest, ExpositionIsWellFormed) {
  stats_.record_request("/a", 200, 1ms);
  const auto text = stats_.render(*app_);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const auto metric_name = [](std::string_view s) {
    std::size_t n = 0;
    while (n < s.size() && ((s[n] >= 'a' && s[n] <= 'z') || s[n] == '_')) ++n;
    return std::string(s.substr(0, n));
  };
  std::set<std::string> typed;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      EXPECT_FALSE(metric_name(std::string_view(line).substr(7)).empty()) << line;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      const auto name = metric_name(std::string_view(line).substr(7));
      const auto type = line.substr(7 + name.size());
      EXPECT_TRUE(type == " counter" || type == " gauge" || type == " histogram") << line;
      EXPECT_TRUE(typed.insert(name).second) << "TYPE twice: " << line;
      continue;
    }
    auto family = metric_name(line);
    ASSERT_FALSE(family.empty()) << line;
    std::string_view rest = std::string_view(line).substr(family.size());
    if (!rest.empty() && rest.front() == '{') {
      const auto close = rest.rfind('}');
      ASSERT_NE(close, std::string_view::npos) << line;
      rest.remove_prefix(close + 1);
    }
    ASSERT_TRUE(rest.size() > 1 && rest.front() == ' ') << line;
    std::size_t used = 0;
    const auto value_text = std::string(rest.substr(1));
    EXPECT_NO_THROW(std::stod(value_text, &used)) << line;
    EXPECT_EQ(used, value_text.size()) << line;
    // Every sample belongs to a declared family (histograms add _bucket/_sum/_count).
    for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
      if (!typed.count(family) && family.size() > suffix.size() &&
          family.compare(family.size() - suffix.size(), suffix.size(), suffix) == 0) {
        family.resize(family.size() - suffix.size());
      }
    }
    EXPECT_TRUE(typed.count(family)) << "no TYPE before " << line;
  }
}

}  // namespace
}  // namespace hookd::http
