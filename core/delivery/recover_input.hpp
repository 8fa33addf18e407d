#pragma once
// The body of POST …/webhooks/{webhookId}/recover, validated in one place (docs/openapi.yaml,
// "Recover failed deliveries"): {since, until?}, RFC 3339 times, until later than since. Every
// field at fault is named in the problem's `errors`. Pure; any thread.

#include "core/common/clock.hpp"
#include "core/common/error.hpp"

#include <boost/json/value.hpp>

#include <optional>

namespace hookd {

struct recover_window {
  timestamp since{};
  std::optional<timestamp> until;  // nullopt: up to now
};

result<recover_window> parse_recover(const boost::json::value& body);

}  // namespace hookd
