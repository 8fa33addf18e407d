#pragma once
// Routes (method, path pattern) to handlers. Patterns are literal segments and `{name}`
// parameters: "/api/v1/organizations/{organizationId}/projects". Matching is by segment, so a
// parameter never spans a '/'. A path that matches some pattern but not the method is 405 with
// the methods that do match in `Allow`. Built once at start-up, then read-only: thread-safe.

#include "http/server/types.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hookd::http {

class path_params {
 public:
  static constexpr std::size_t kMax = 6;
  // The raw value of `{name}` (a view into the request target), or empty when absent.
  std::string_view get(std::string_view name) const noexcept;
  void push(std::string_view name, std::string_view value) noexcept;
  std::size_t size() const noexcept { return size_; }

 private:
  std::array<std::pair<std::string_view, std::string_view>, kMax> items_{};
  std::size_t size_ = 0;
};

// Everything a handler gets. Views point into the request, valid for the handler's duration.
struct request_context {
  const request& req;
  path_params params;
  std::string_view path;        // target without the query
  std::string_view query;       // after '?', without it; empty when none
  std::string_view request_id;  // echoed or generated; the session also sets X-Request-Id
};

// Handlers return the complete response; the session then sets version, keep-alive,
// X-Request-Id and Content-Length. They must not throw for expected errors (return a problem).
using handler = std::function<asio::awaitable<response>(request_context&)>;

class router {
 public:
  static constexpr std::size_t kMaxSegments = 16;  // of a pattern; deeper paths match nothing
  // `route` is the metrics label; by default the pattern itself.
  void add(bhttp::verb method, std::string_view pattern, handler h, std::string route = {});

  struct match {
    enum class kind { found, not_found, method_not_allowed } outcome = kind::not_found;
    const handler* target = nullptr;
    path_params params;
    std::string_view route;  // pattern of the matched path ("" when not found)
    std::string allow;       // "GET, PATCH, DELETE" for method_not_allowed
  };
  match find(bhttp::verb method, std::string_view path) const;

 private:
  struct entry {
    bhttp::verb method;
    std::vector<std::string> segments;  // "{name}" for parameters
    handler h;
    std::string route;
    std::uint32_t param_mask = 0;  // bit i set: segment i is a parameter
  };
  std::vector<entry> entries_;
  // Indices into entries_ by number of segments, in registration order: a path is compared only
  // with the patterns of its own depth (a few of the ~40 routes).
  std::array<std::vector<std::uint32_t>, kMaxSegments + 1> by_depth_;
};

}  // namespace hookd::http
