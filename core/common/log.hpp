#pragma once
// hookd's log: one JSON object per line on stderr (docs/operations.md, "Logs"). Every line starts
// with "time" (RFC 3339, UTC, milliseconds) and "level" (debug, info, warn, error, fatal), then
// the caller's fields in their order; "event" names what happened. One write per line, so lines
// from different threads never interleave. Any thread.

#include <boost/json/object.hpp>

#include <string>
#include <string_view>

namespace hookd {

// Writes `fields` as one line. Its "level" field, when it has one, is the line's level (moved to
// the front); otherwise the level is "info". A "time" field of the caller's is replaced.
void log_line(const boost::json::object& fields);

// The same line as text, without the newline (what log_line writes; for tests and for sinks that
// write elsewhere).
std::string format_log_line(const boost::json::object& fields);

}  // namespace hookd
