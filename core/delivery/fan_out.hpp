#pragma once
// Which webhooks of a project an event goes to (docs/delivery.md, "Event types" and "Filtering by
// payload"): the active ones whose `events` match the event's type and whose filter, if any,
// holds for its data; and the fingerprint an idempotency key is bound to. The one home of these
// rules for every delivery engine.

#include "core/catalog/catalog.hpp"
#include "core/common/crypto.hpp"
#include "core/delivery/delivery_engine.hpp"

#include <boost/json/value.hpp>

#include <memory>
#include <string_view>
#include <vector>

namespace hookd {

// `data` is the event's data as compact JSON text; `parsed` the same data already parsed, or
// null: then it is parsed once, only if a webhook that matches by type has a filter.
std::vector<std::shared_ptr<const webhook>> fan_out(const webhook_list& hooks,
                                                    std::string_view type, std::string_view data,
                                                    const boost::json::value* parsed);

// The request fingerprint an idempotency key is bound to: where the event goes and what it says
// (organization, project, type, data, subject, ordering key).
sha256_digest ingest_fingerprint(const ingest_request& r);

}  // namespace hookd
