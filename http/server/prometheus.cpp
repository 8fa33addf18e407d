#include "http/server/prometheus.hpp"

#include <charconv>
#include <cmath>
#include <limits>

namespace hookd::http {
namespace {

std::string_view type_name(metric_type t) {
  switch (t) {
    case metric_type::counter:
      return "counter";
    case metric_type::gauge:
      return "gauge";
    case metric_type::histogram:
      return "histogram";
  }
  return "untyped";
}

void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_number(std::string& out, std::int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// Fixed notation ("0.0005", not "5e-04"): what Prometheus' own clients print for bucket bounds.
// A value whose fixed form would pass 64 characters (very large, or very small with many digits)
// takes the shortest exponent form instead ("1e+300"), which the format reads as well.
void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out.append("NaN");
    return;
  }
  if (std::isinf(v)) {
    out.append(v > 0 ? "+Inf" : "-Inf");
    return;
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (r.ec != std::errc{}) r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// Label values escape backslash, double quote and newline; HELP text escapes backslash and
// newline only.
void append_escaped(std::string& out, std::string_view v, bool quote) {
  for (const char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '"':
        out += quote ? "\\\"" : "\"";
        break;
      default:
        out += c;
    }
  }
}

}  // namespace

void prometheus_writer::family(std::string_view name, metric_type type, std::string_view help) {
  out_.append("# HELP ").append(name).append(" ");
  append_escaped(out_, help, false);
  out_.append("\n# TYPE ").append(name).append(" ").append(type_name(type)).append("\n");
}

template <class T>
void prometheus_writer::sample_line(std::string_view name, std::string_view suffix, labels l,
                                    std::optional<std::string_view> le, T value) {
  out_.append(name).append(suffix);
  if (l.size() != 0 || le) {
    char separator = '{';
    for (const auto& [label_name, label_value] : l) {
      out_.append(1, separator).append(label_name).append("=\"");
      append_escaped(out_, label_value, true);
      out_ += '"';
      separator = ',';
    }
    if (le) out_.append(1, separator).append("le=\"").append(*le).append("\"");
    out_ += '}';
  }
  out_ += ' ';
  append_number(out_, value);
  out_ += '\n';
}

void prometheus_writer::sample(std::string_view name, labels l, std::uint64_t value) {
  sample_line(name, {}, l, std::nullopt, value);
}

void prometheus_writer::sample(std::string_view name, labels l, std::int64_t value) {
  sample_line(name, {}, l, std::nullopt, value);
}

void prometheus_writer::sample(std::string_view name, labels l, double value) {
  sample_line(name, {}, l, std::nullopt, value);
}

void prometheus_writer::histogram(std::string_view name, labels l, std::span<const double> bounds,
                                  std::span<const std::uint64_t> counts, double sum) {
  std::uint64_t cumulative = 0;
  std::string le;
  for (std::size_t i = 0; i <= bounds.size(); ++i) {
    if (i < counts.size()) cumulative += counts[i];
    le.clear();
    append_number(le, i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity());
    sample_line(name, "_bucket", l, le, cumulative);
  }
  sample_line(name, "_sum", l, std::nullopt, sum);
  sample_line(name, "_count", l, std::nullopt, cumulative);
}

}  // namespace hookd::http
