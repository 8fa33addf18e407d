#include "http/server/prometheus.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <limits>
#include <string>

namespace hookd::http {
namespace {

TEST(PrometheusWriter, FamilyWritesHelpThenTypeWithHelpEscaped) {
  std::string out = "kept\n";  // appends, never replaces
  prometheus_writer w(out);
  w.family("a_total", metric_type::counter,
           R"(back\slash "quoted")"
           "\nsecond line");
  w.family("b", metric_type::gauge, "B.");
  w.family("c_seconds", metric_type::histogram, "C.");
  EXPECT_EQ(out,
            "kept\n"
            "# HELP a_total back\\\\slash \"quoted\"\\nsecond line\n"
            "# TYPE a_total counter\n"
            "# HELP b B.\n"
            "# TYPE b gauge\n"
            "# HELP c_seconds C.\n"
            "# TYPE c_seconds histogram\n");
}

TEST(PrometheusWriter, SamplesWithAndWithoutLabels) {
  std::string out;
  prometheus_writer w(out);
  w.sample("x", {}, std::uint64_t{7});
  w.sample("x", {{"route", "/a"}}, std::uint64_t{1});
  w.sample("x", {{"route", "/a"}, {"code", "200"}}, std::uint64_t{2});
  EXPECT_EQ(out,
            "x 7\n"
            "x{route=\"/a\"} 1\n"
            "x{route=\"/a\",code=\"200\"} 2\n");
}

TEST(PrometheusWriter, EscapesBackslashQuoteAndNewlineInLabelValues) {
  std::string out;
  prometheus_writer w(out);
  w.sample("x", {{"route", "/q\"uo\\te\nx{}=,"}}, std::uint64_t{1});
  EXPECT_EQ(out, R"(x{route="/q\"uo\\te\nx{}=,"} 1)"
                 "\n");
}

TEST(PrometheusWriter, FormatsNumbers) {
  const auto line = [](auto v) {
    std::string out;
    prometheus_writer(out).sample("x", {}, v);
    return out;
  };
  EXPECT_EQ(line(std::uint64_t{0}), "x 0\n");
  EXPECT_EQ(line(std::numeric_limits<std::uint64_t>::max()), "x 18446744073709551615\n");
  EXPECT_EQ(line(std::int64_t{-3}), "x -3\n");
  EXPECT_EQ(line(0.0), "x 0\n");
  EXPECT_EQ(line(10.0), "x 10\n");
  EXPECT_EQ(line(0.0005), "x 0.0005\n");  // fixed, not 5e-04
  EXPECT_EQ(line(20.0031), "x 20.0031\n");
  EXPECT_EQ(line(0.123456789), "x 0.123456789\n");
  EXPECT_EQ(line(0.1 + 0.2), "x 0.30000000000000004\n");  // reads back as the same double
  EXPECT_EQ(line(1e300), "x 1e+300\n");                   // too long for fixed
  EXPECT_EQ(line(1.5e-300), "x 1.5e-300\n");
  EXPECT_EQ(line(std::numeric_limits<double>::infinity()), "x +Inf\n");
  EXPECT_EQ(line(-std::numeric_limits<double>::infinity()), "x -Inf\n");
  EXPECT_EQ(line(std::numeric_limits<double>::quiet_NaN()), "x NaN\n");
}

TEST(PrometheusWriter, HistogramIsCumulativeEndingInInfWithSumAndCount) {
  constexpr std::array<double, 3> bounds = {0.0005, 1, 2.5};
  const std::array<std::uint64_t, 4> counts = {1, 0, 2, 3};  // the last: above 2.5
  std::string out;
  prometheus_writer w(out);
  w.family("d_seconds", metric_type::histogram, "D.");
  w.histogram("d_seconds", {{"route", "/a\"b"}}, bounds, counts, 20.5);
  w.histogram("d_seconds", {{"route", "/c"}}, bounds, std::array<std::uint64_t, 4>{}, 0);
  EXPECT_EQ(out,
            "# HELP d_seconds D.\n"
            "# TYPE d_seconds histogram\n"
            "d_seconds_bucket{route=\"/a\\\"b\",le=\"0.0005\"} 1\n"
            "d_seconds_bucket{route=\"/a\\\"b\",le=\"1\"} 1\n"
            "d_seconds_bucket{route=\"/a\\\"b\",le=\"2.5\"} 3\n"
            "d_seconds_bucket{route=\"/a\\\"b\",le=\"+Inf\"} 6\n"
            "d_seconds_sum{route=\"/a\\\"b\"} 20.5\n"
            "d_seconds_count{route=\"/a\\\"b\"} 6\n"
            "d_seconds_bucket{route=\"/c\",le=\"0.0005\"} 0\n"
            "d_seconds_bucket{route=\"/c\",le=\"1\"} 0\n"
            "d_seconds_bucket{route=\"/c\",le=\"2.5\"} 0\n"
            "d_seconds_bucket{route=\"/c\",le=\"+Inf\"} 0\n"
            "d_seconds_sum{route=\"/c\"} 0\n"
            "d_seconds_count{route=\"/c\"} 0\n");
}

TEST(PrometheusWriter, HistogramWithoutLabels) {
  constexpr std::array<double, 2> bounds = {0.005, 60};
  const std::array<std::uint64_t, 3> counts = {2, 0, 1};
  std::string out;
  prometheus_writer(out).histogram("e_seconds", {}, bounds, counts, 61.25);
  EXPECT_EQ(out,
            "e_seconds_bucket{le=\"0.005\"} 2\n"
            "e_seconds_bucket{le=\"60\"} 2\n"
            "e_seconds_bucket{le=\"+Inf\"} 3\n"
            "e_seconds_sum 61.25\n"
            "e_seconds_count 3\n");
}

TEST(PrometheusWriter, SingleIsOneFamilyWithOneSample) {
  std::string out;
  prometheus_writer w(out);
  w.single("hookd_ready", metric_type::gauge, "Ready.", std::uint64_t{1});
  w.single("age_seconds", metric_type::gauge, "Age.", 2.185);
  EXPECT_EQ(out,
            "# HELP hookd_ready Ready.\n"
            "# TYPE hookd_ready gauge\n"
            "hookd_ready 1\n"
            "# HELP age_seconds Age.\n"
            "# TYPE age_seconds gauge\n"
            "age_seconds 2.185\n");
}

}  // namespace
}  // namespace hookd::http
