#include "core/delivery/fan_out.hpp"

#include "core/delivery/event_filter.hpp"
#include "core/delivery/event_match.hpp"

namespace hookd {

std::vector<std::shared_ptr<const webhook>> fan_out(const webhook_list& hooks,
                                                    std::string_view type, std::string_view data,
                                                    const boost::json::value* parsed) {
  std::vector<std::shared_ptr<const webhook>> chosen;
  // Read only by webhooks with a filter: no parse, and no cost, when none has one.
  filter_data filtered(data, parsed);
  for (const std::shared_ptr<const webhook>& w : hooks) {
    if (!w->active || !any_matches(w->events, type)) continue;
    if (w->filter && !w->filter->matches(type, filtered.get())) continue;
    chosen.push_back(w);
  }
  return chosen;
}

sha256_digest ingest_fingerprint(const ingest_request& r) {
  std::string text;
  text.reserve(2 * object_id::kSize + r.type.size() + r.data.size() + 1);
  text.append(r.organization.binary()).append(r.project.binary()).append(r.type);
  text.push_back('\0');  // a type cannot contain NUL, so (type, data) splits one way only
  text.append(r.data);
  if (r.subject) {
    // Only when there is one, so that the fingerprints of requests without a subject (all of
    // them, before subjects existed) stay what they were.
    text.push_back('\0');
    text.append(*r.subject);
  }
  if (r.ordering_key) {
    // Likewise. NUL then 0x01 (a control character, which no subject holds) keeps a key apart
    // from a subject: no (subject, key) pair reads like another.
    text.append("\0\x01", 2);
    text.append(*r.ordering_key);
  }
  return sha256(text);
}

}  // namespace hookd
