#pragma once
// The body of POST …/events, validated in one place (docs/openapi.yaml, "Send an event"):
// {type, data, idempotencyKey?, subject?, orderingKey?}, with the Idempotency-Key header as the
// other way to send the key. Every field at fault is named in the problem's `errors`; `data` is
// serialized once, here, to the compact text that is stored, sent and fingerprinted (never parsed
// again). Pure; any thread.

#include "core/common/error.hpp"
#include "core/delivery/delivery_log.hpp"

#include <boost/json/value.hpp>

#include <optional>
#include <string_view>

namespace hookd {

// Why `subject` is not a valid event subject (nullopt: it is): a string of 1 to
// kMaxSubjectBytes bytes without control characters. A nullopt argument: not a string.
std::optional<std::string> check_subject(std::optional<std::string_view> subject);

// Why `key` is not a valid ordering key (nullopt: it is): a string of 1 to kMaxOrderingKeyBytes
// bytes without control characters. A nullopt argument: not a string.
std::optional<std::string> check_ordering_key(std::optional<std::string_view> key);

// The request's fields; token, organization and project are the caller's to fill in.
result<ingest_request> parse_ingest(const boost::json::value& body,
                                    std::optional<std::string_view> idempotency_header);

}  // namespace hookd
