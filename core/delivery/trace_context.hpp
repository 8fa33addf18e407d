#pragma once
// W3C Trace Context (https://www.w3.org/TR/trace-context/) for deliveries (docs/delivery.md,
// "Trace context"): the `traceparent` an ingest request carries is checked here and kept with the
// event; each attempt of its deliveries sends a child of it, with the same trace id and a fresh
// span id. Pure functions over text, except that new ids come from the CSPRNG (OpenSSL's, through a
// per-thread buffer refilled a few hundred ids at a time); any thread.
//
//   traceparent = version "-" trace-id "-" parent-id "-" trace-flags
//                 2 hex       32 hex       16 hex        2 hex       (lowercase)

#include <optional>
#include <string>
#include <string_view>

namespace hookd {

inline constexpr std::string_view kTraceparentHeader = "traceparent";
// The length of a version-00 traceparent.
inline constexpr std::size_t kTraceparentSize = 55;

// The header as hookd keeps and propagates it, in version 00, or nullopt when it is not a valid
// traceparent (W3C: the receiver of an invalid one ignores it and starts a new trace):
// - surrounding spaces and tabs are ignored;
// - version 00 must be exactly 55 characters; a higher version (not ff) may carry more after a
//   '-' at position 55, and only its ids and the sampled flag are kept;
// - every hex digit lowercase; a trace id or a parent id of all zeros is invalid.
std::optional<std::string> parse_traceparent(std::string_view header);

// A new trace for an event that came without one: a random trace id and span id, flags 01
// (sampled: hookd records nothing itself, and a receiver that samples by its parent's choice
// keeps the trace of the delivery).
std::string new_traceparent();

// The traceparent of one attempt: `parent`'s version, trace id and flags, and a fresh random span
// id, never all zeros and never the parent's. `parent` must be what parse_traceparent or
// new_traceparent returned.
std::string child_traceparent(std::string_view parent);

// The 32 hex digits of the trace id of a traceparent hookd keeps.
std::string_view trace_id_of(std::string_view traceparent) noexcept;
// The 16 hex digits of its parent (span) id.
std::string_view span_id_of(std::string_view traceparent) noexcept;

}  // namespace hookd
