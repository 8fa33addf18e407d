#pragma once
// Helpers shared by the core tests: record fixtures (times and ids) for the codec tests, and the
// means to drive a single-writer component (catalog, delivery log) from a test: hold the writer
// inside a storage write, collect many results (wait_for in core/common/completion.hpp waits for
// one). Header only.

#include "core/catalog/entities.hpp"
#include "core/common/clock.hpp"
#include "core/common/completion.hpp"
#include "core/common/error.hpp"
#include "core/common/object_id.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hookd::testing {

// Every field of two webhooks is equal (the JSON cache is not part of a webhook's value).
inline void expect_same_webhook(const webhook& a, const webhook& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.organization, b.organization);
  EXPECT_EQ(a.project, b.project);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.url, b.url);
  EXPECT_EQ(a.headers, b.headers);
  EXPECT_EQ(a.active, b.active);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.secret, b.secret);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.updated_at, b.updated_at);
  EXPECT_EQ(a.disabled_reason, b.disabled_reason);
  EXPECT_EQ(a.disabled_at, b.disabled_at);
  EXPECT_EQ(a.rate_limit, b.rate_limit);
  EXPECT_EQ(a.signing, b.signing);
  EXPECT_EQ(a.previous_secrets, b.previous_secrets);
  ASSERT_EQ(a.filter == nullptr, b.filter == nullptr);
  if (a.filter) {
    EXPECT_TRUE(*a.filter == *b.filter) << boost::json::serialize(a.filter->to_json()) << " vs "
                                        << boost::json::serialize(b.filter->to_json());
  }
}

// The instant `ms` milliseconds after the unix epoch.
inline timestamp at(std::int64_t ms) {
  return timestamp{std::chrono::milliseconds{ms}};
}

// The id written as 24 hex digits; throws on a typo in the test.
inline object_id id_of(std::string_view hex) {
  return object_id::parse(hex).value();
}

// A stored record (a JSON object) with the field `name` set to null, added if it was absent.
inline std::string with_null_field(std::string_view record, std::string_view name) {
  boost::json::value v = boost::json::parse(record);
  v.as_object()[name] = nullptr;
  return boost::json::serialize(v);
}

// Holds a writer inside a storage write until released (install hold() as the storage's
// before-write hook), so that a test can queue several mutations and know they will form the
// next group together.
class write_gate {
 public:
  void hold() {
    std::unique_lock lock(mutex_);
    entered_ = true;
    changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
  }
  void wait_until_held() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return entered_; });
  }
  void release() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool entered_ = false, open_ = false;
};

// Collects the results of `n` asynchronous writes, one slot each; wait() returns them once all
// have completed.
template <class T>
class collector {
 public:
  explicit collector(std::size_t n) : results_(n, make_problem(error_kind::internal, "pending")) {}
  completion<T> sink(std::size_t slot) {
    return [this, slot](result<T> r) {
      std::lock_guard lock(mutex_);
      results_[slot] = std::move(r);
      ++done_;
      changed_.notify_all();
    };
  }
  std::vector<result<T>> wait() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return done_ == results_.size(); });
    return results_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<result<T>> results_;
  std::size_t done_ = 0;
};

// The value of one sample ("name" or "name{labels}") in a Prometheus text exposition, or -1 when
// it is absent.
inline double metric_value(const std::string& text, std::string_view series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

}  // namespace hookd::testing
