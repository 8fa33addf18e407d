#pragma once
// hookd's log: one JSON object per line on stderr (docs/operations.md, "Logs"). Every line starts
// with "time" (RFC 3339, UTC, milliseconds) and "level" (debug, info, warn, error, fatal), then
// the caller's fields in their order; "event" names what happened. One write per line, so lines
// from different threads never interleave. Any thread.

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hookd {

enum class log_level : std::uint8_t { debug, info, warn, error, fatal };

// "debug", "info", "warn" (or "warning"), "error"; case-insensitive. "fatal" is not a level one
// can choose: fatal lines are always written.
[[nodiscard]] std::optional<log_level> parse_log_level(std::string_view text) noexcept;
[[nodiscard]] std::string_view to_string(log_level level) noexcept;

// Lines below `level` are dropped from now on (--log-level; SIGHUP may change it). Default info.
void set_log_level(log_level level) noexcept;
[[nodiscard]] log_level current_log_level() noexcept;
// Whether a line of `level` would be written: lets a caller skip building a debug line.
[[nodiscard]] bool log_enabled(log_level level) noexcept;

// Writes `fields` as one line. Its "level" field, when it has one, is the line's level (moved to
// the front); otherwise the level is "info". A "time" field of the caller's is replaced. A line
// below the current level is dropped.
void log_line(const boost::json::object& fields);

// An access log line (--access-log): written like log_line, at level info with
// "event":"access", whatever the current level: the access log is switched by its own option.
void log_access(const boost::json::object& fields);

// The same line as text, without the newline (what log_line writes; for tests and for sinks that
// write elsewhere).
std::string format_log_line(const boost::json::object& fields);

}  // namespace hookd
