#include "core/common/log.hpp"

#include "core/common/clock.hpp"

#include <boost/json/serialize.hpp>

#include <cstdio>

namespace hookd {

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
  std::string text = format_log_line(fields);
  text += '\n';
  std::fwrite(text.data(), 1, text.size(), stderr);  // one call: lines never interleave
  std::fflush(stderr);
}

}  // namespace hookd
