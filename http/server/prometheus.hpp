#pragma once
// The Prometheus text exposition format 0.0.4, written in one place: # HELP and # TYPE lines,
// samples with escaped label values, histogram series, and numbers formatted one way.
//
// Not thread-safe: one writer per exposition, appending to a string its caller owns.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace hookd::http {

enum class metric_type : std::uint8_t { counter, gauge, histogram };

class prometheus_writer {
 public:
  // A label's name and value. Names are written as given; values are escaped.
  using label = std::pair<std::string_view, std::string_view>;
  using labels = std::initializer_list<label>;

  // Appends to `out`, which must outlive the writer.
  explicit prometheus_writer(std::string& out) noexcept : out_(out) {}

  // The # HELP and # TYPE lines of a family. Once per family, before its samples, which must
  // follow as one group (the format does not allow a family to be split).
  void family(std::string_view name, metric_type type, std::string_view help);

  // One sample line: `name{labels} value`, or `name value` without labels. Values: integers in
  // decimal; finite doubles in the shortest fixed notation that reads back exactly ("0.0005",
  // "2.5", "10"), or in the shortest exponent notation where fixed would be long; infinities and
  // NaN as "+Inf", "-Inf" and "NaN". Histogram bounds (`le`) are written the same way.
  void sample(std::string_view name, labels l, std::uint64_t value);
  void sample(std::string_view name, labels l, std::int64_t value);
  void sample(std::string_view name, labels l, double value);

  // A family with a single unlabelled sample.
  template <class T>
  void single(std::string_view name, metric_type type, std::string_view help, T value) {
    family(name, type, help);
    sample(name, {}, value);
  }

  // One series of a histogram family (declared with family() first): a cumulative
  // `name_bucket{l,le="bound"}` per bound and `le="+Inf"`, then `name_sum{l}` and `name_count{l}`.
  // `counts` holds the non-cumulative count of each bucket, one per bound and a last one above
  // every bound, so counts.size() == bounds.size() + 1; `_count` is their total, so it always
  // equals the +Inf bucket.
  void histogram(std::string_view name, labels l, std::span<const double> bounds,
                 std::span<const std::uint64_t> counts, double sum);

 private:
  template <class T>
  void sample_line(std::string_view name, std::string_view suffix, labels l,
                   std::optional<std::string_view> le, T value);

  std::string& out_;
};

}  // namespace hookd::http
