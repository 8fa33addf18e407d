#include "core/common/log.hpp"

#include "core/common/ascii.hpp"
#include "core/common/clock.hpp"

#include <boost/json/serialize.hpp>

#include <atomic>
#include <cstdio>

namespace hookd {
namespace {

std::atomic<log_level> g_min_level{log_level::info};

// The level a line's "level" field names; info when it has none or an unknown one.
log_level level_of(const boost::json::object& fields) noexcept {
  const auto* level = fields.if_contains("level");
  if (level == nullptr || !level->is_string()) return log_level::info;
  const std::string_view name = level->get_string();
  if (name == "fatal") return log_level::fatal;
  return parse_log_level(name).value_or(log_level::info);
}

void write(const boost::json::object& fields) {
  std::string text = format_log_line(fields);
  text += '\n';
  std::fwrite(text.data(), 1, text.size(), stderr);  // one call: lines never interleave
  std::fflush(stderr);
}

}  // namespace

std::optional<log_level> parse_log_level(std::string_view text) noexcept {
  if (ascii_iequals(text, "debug")) return log_level::debug;
  if (ascii_iequals(text, "info")) return log_level::info;
  if (ascii_iequals(text, "warn") || ascii_iequals(text, "warning")) return log_level::warn;
  if (ascii_iequals(text, "error")) return log_level::error;
  return std::nullopt;
}

std::string_view to_string(log_level level) noexcept {
  switch (level) {
    case log_level::debug:
      return "debug";
    case log_level::info:
      return "info";
    case log_level::warn:
      return "warn";
    case log_level::error:
      return "error";
    case log_level::fatal:
      return "fatal";
  }
  return "info";
}

void set_log_level(log_level level) noexcept {
  // fatal lines are always written: the most one can silence is everything below them.
  g_min_level.store(level == log_level::fatal ? log_level::error : level,
                    std::memory_order_relaxed);
}

log_level current_log_level() noexcept {
  return g_min_level.load(std::memory_order_relaxed);
}

bool log_enabled(log_level level) noexcept {
  return level >= current_log_level();
}

std::string format_log_line(const boost::json::object& fields) {
  boost::json::object line;
  line.reserve(fields.size() + 2);
  line["time"] = format_rfc3339(now_ms());
  const auto* level = fields.if_contains("level");
  line["level"] =
      level != nullptr && level->is_string() ? level->as_string() : boost::json::string("info");
  for (const auto& field : fields) {
    if (field.key() == "time" || field.key() == "level") continue;
    line.emplace(field.key(), field.value());
  }
  return boost::json::serialize(line);
}

void log_line(const boost::json::object& fields) {
  if (!log_enabled(level_of(fields))) return;
  write(fields);
}

void log_access(const boost::json::object& fields) {
  write(fields);
}

}  // namespace hookd
