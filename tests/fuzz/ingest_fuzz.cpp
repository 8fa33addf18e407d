// The body of POST …/events, as the ingest handler reads it: read_json_body, then parse_ingest
// with the Idempotency-Key header, and parse_traceparent for the traceparent header. Input:
// optional header lines ("Idempotency-Key: k", "traceparent: 00-…"), a blank line, the body
// (fuzz_input.hpp). What ingest accepts is then used as the event is: its stored `data` must be
// JSON again (it is sent verbatim inside the delivery body), the delivery body must be JSON, and
// the event goes through storage and back unchanged, and through a few payload filters.

#include "core/delivery/delivery.hpp"
#include "core/delivery/event_filter.hpp"
#include "core/delivery/ingest_input.hpp"
#include "core/delivery/trace_context.hpp"
#include "fuzz/fuzz_input.hpp"
#include "http/api/api.hpp"

#include <boost/json/parse.hpp>

#include <cstdio>
#include <cstdlib>

namespace {

using namespace hookd;

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "ingest_fuzz: %s\n", what);
  std::abort();
}

const std::vector<std::shared_ptr<const event_filter>>& filters() {
  static const auto made = [] {
    std::vector<std::shared_ptr<const event_filter>> out;
    for (const char* text : {R"({"data.country":"TR"})", R"({"data.id":1,"type":"order.created"})",
                             R"({"data.items.0.sku":"a","data.total":9.99})",
                             R"({"data.flag":true,"data.none":null})"}) {
      std::vector<field_error> errors;
      out.push_back(event_filter::parse(boost::json::parse(text), errors));
    }
    return out;
  }();
  return made;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = fuzz::split_headers(fuzz::as_text(data, size));
  std::optional<std::string> traceparent;
  if (auto header = input.header("traceparent")) traceparent = parse_traceparent(*header);

  const auto req = fuzz::json_request(input.body);
  auto body = http::read_json_body(req, 64 * 1024);
  if (!body) return 0;
  auto in = parse_ingest(*body, input.header("Idempotency-Key"));
  if (!in) return 0;

  boost::system::error_code ec;
  const auto reparsed = boost::json::parse(in->data, ec);
  if (ec) bug("the stored data of an accepted event is not JSON");

  event e;
  e.id = *object_id::parse("65a0c0ffee00000000000004");
  e.organization = *object_id::parse("65a0c0ffee00000000000001");
  e.project = *object_id::parse("65a0c0ffee00000000000002");
  e.type = in->type;
  e.data = in->data;
  e.time = timestamp{std::chrono::milliseconds(1'780'000'000'000)};
  e.subject = in->subject;
  e.ordering_key = in->ordering_key;
  e.traceparent = traceparent;
  (void)boost::json::parse(delivery_body(e), ec);
  if (ec) bug("the delivery body of an accepted event is not JSON");

  auto back = decode_event(e.id.binary(), encode(e));
  if (!back || back->type != e.type || back->data != e.data || back->subject != e.subject ||
      back->ordering_key != e.ordering_key || back->traceparent != e.traceparent) {
    bug("an accepted event does not read back from storage unchanged");
  }

  for (const auto& f : filters()) {
    filter_data lazy(in->data, nullptr);
    const bool from_text = f->matches(in->type, lazy.get());
    const bool from_parsed = f->matches(in->type, in->parsed_data ? *in->parsed_data : reparsed);
    if (from_text != from_parsed) bug("a filter decides differently on the parsed and stored data");
  }
  return 0;
}
