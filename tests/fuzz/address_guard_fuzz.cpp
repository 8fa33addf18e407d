// The outbound target checks: the webhook URL rule the API applies (check_webhook_url), the
// delivery client's reading of a URL (parse_delivery_target), the IP literal parser in all its
// legacy spellings, the address classes, and the SSRF guard's decision (check_target).
//
// Input (fuzz_input.hpp): optional header lines "Resolve: ADDR" (a name's lookup result, one
// address per line, parsed as literals), a blank line, then the URL or host. Besides not
// crashing:
// - an address prints as text that parses back to the same address;
// - the guard allows a literal exactly when its class is allowed (public unicast by default; all
//   but multicast, broadcast and unspecified with --allow-private-targets);
// - a URL the API accepts for a webhook is one the delivery client can read.

#include "core/catalog/validation.hpp"
#include "core/delivery/address_guard.hpp"
#include "fuzz/fuzz_input.hpp"
#include "http/outbound/delivery_target.hpp"

#include <cstdio>
#include <cstdlib>
#include <span>

namespace {

using namespace hookd;

[[noreturn]] void bug(const std::string& what) {
  std::fprintf(stderr, "address_guard_fuzz: %s\n", what.c_str());
  std::abort();
}

bool allowed_with_private(address_class c) {
  return c != address_class::multicast && c != address_class::broadcast &&
         c != address_class::unspecified;
}

void check_address(const ip_address& a) {
  const std::string text = a.to_string();
  const auto back = parse_ip_literal(text);
  if (!back || !(*back == a)) bug("address " + text + " does not parse back to itself");
  const auto c = classify(a);
  (void)to_string(c);
  const auto strict = check_target(text, {}, false);
  if (strict.allowed != (c == address_class::public_unicast) || strict.allowed != is_public(a)) {
    bug("the guard's default decision on " + text + " disagrees with its class");
  }
  const auto loose = check_target(text, {}, true);
  if (loose.allowed != allowed_with_private(c)) {
    bug("the guard's --allow-private-targets decision on " + text + " disagrees with its class");
  }
  if (strict.allowed && (strict.addresses.size() != 1 || !(strict.addresses[0] == a))) {
    bug("the guard allowed " + text + " but returned other addresses");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = fuzz::split_headers(fuzz::as_text(data, size));
  const std::string_view text = input.body;

  // Raw bytes as an address, when there are 4 or 16 of them.
  if (auto raw = ip_address::from_bytes(std::span(data, size))) check_address(*raw);

  // The text as a host.
  const auto literal = parse_ip_literal(text);
  (void)host_ends_in_a_number(text);
  if (literal) check_address(*literal);

  std::vector<ip_address> resolved;
  for (const auto& [name, value] : input.headers) {
    if (name != "Resolve") continue;
    if (auto a = parse_ip_literal(value)) resolved.push_back(*a);
  }
  for (const bool allow_private : {false, true}) {
    const auto d = check_target(text, resolved, allow_private);
    if (d.allowed && d.addresses.empty()) bug("the guard allowed a target with no address");
    if (!d.allowed && d.reason.empty()) bug("the guard refused a target without a reason");
  }

  // The text as a URL.
  const auto url_problem = check_webhook_url(text);
  const auto target = http::parse_delivery_target(text);
  if (const auto* t = std::get_if<http::delivery_target>(&target)) {
    if (t->port == 0 || t->host.empty() || t->path.empty() || t->path[0] != '/') {
      bug("the client read a URL into an unusable target: host '" + t->host + "', port " +
          std::to_string(t->port) + ", path '" + t->path + "'");
    }
    (void)check_target(t->host, resolved, false);
  } else if (!url_problem) {
    bug("a webhook URL the API accepts cannot be read by the delivery client: " +
        std::get<std::string>(target));
  }
  return 0;
}
