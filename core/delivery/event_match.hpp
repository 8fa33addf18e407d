#pragma once
// Which webhooks an event type reaches (docs/openapi.yaml): the patterns a webhook lists in
// `events`.
//
// Three pattern forms, the ones validation accepts (docs/openapi.yaml):
// - "*"      matches every event type;
// - "a.b.*"  prefix wildcard: matches the types strictly below "a.b" — "a.b.c", "a.b.c.d" — but
//            NOT "a.b" itself and not "a.bc" (the match is on whole dotted segments). These are
//            Svix-like prefix semantics: a subscriber who also wants "a.b" lists both "a.b" and
//            "a.b.*". Matching "a.b" too would make "a.b.*" impossible to narrow to the children;
//            listing two patterns costs nothing.
// - anything else matches exactly (case-sensitive; validation only admits lowercase names).
// A "*" anywhere but alone or as the last dotted segment has no special meaning.
//
// Pure functions: safe to call from any thread.

#include <string>
#include <string_view>
#include <vector>

namespace hookd {

[[nodiscard]] bool event_matches(std::string_view pattern, std::string_view type) noexcept;

// True when at least one pattern matches `type`; false for an empty list.
[[nodiscard]] bool any_matches(const std::vector<std::string>& patterns,
                               std::string_view type) noexcept;

}  // namespace hookd
