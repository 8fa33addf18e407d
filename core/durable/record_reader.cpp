#include "core/durable/record_reader.hpp"

#include "core/catalog/codec.hpp"  // kCodecVersion

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/string.hpp>

#include <limits>

namespace hookd::detail {
namespace json = boost::json;

namespace {

// Records are flat: an object holding arrays of strings or of pairs, or one small object, at
// most. An event's `data` is stored as a string, so its own depth does not count here.
constexpr std::size_t kMaxRecordDepth = 8;

std::string quoted(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 8);
  out.append("field \"").append(name).append("\"");
  return out;
}

}  // namespace

json::object begin_record() {
  json::object o;
  o["v"] = kCodecVersion;
  return o;
}

problem decode_error(std::string what) {
  return make_problem(error_kind::internal, std::move(what));
}

result<json::value> open_record(std::string_view value, json::storage_ptr sp) {
  json::parse_options options;
  options.max_depth = kMaxRecordDepth;
  boost::system::error_code ec;
  json::value parsed = json::parse(value, ec, std::move(sp), options);
  if (ec) return decode_error("the value is not JSON (" + ec.message() + ")");
  const json::object* obj = parsed.if_object();
  if (obj == nullptr) return decode_error("the value is not a JSON object");
  const json::value* v = obj->if_contains("v");
  if (v == nullptr) return decode_error("the value has no version field \"v\"");
  boost::system::error_code vec;
  const auto version = v->to_number<std::int64_t>(vec);
  if (vec) return decode_error("the version field \"v\" is not an integer");
  if (version != kCodecVersion) {
    return decode_error("the record has version " + std::to_string(version) +
                        ", this hookd reads version " + std::to_string(kCodecVersion) +
                        " (written by a newer hookd?)");
  }
  return parsed;
}

result<object_id> id_from_key(std::string_view key) {
  if (auto id = object_id::from_binary(key)) return *id;
  return decode_error("the key is not a 12-byte id");
}

result<keyed_record> open_record(std::string_view key, std::string_view value,
                                 json::storage_ptr sp) {
  auto id = id_from_key(key);
  if (!id) return id.error();
  auto parsed = open_record(value, std::move(sp));
  if (!parsed) return parsed.error();
  return keyed_record{std::move(*parsed), *id};
}

// ---- record_reader

void record_reader::fail(std::string message) {
  if (error_.empty()) error_ = std::move(message);
}

const json::value* record_reader::field(std::string_view name, bool required) {
  const json::value* v = obj_.if_contains(name);
  if (v == nullptr) {
    if (required) fail(quoted(name) + " is missing");
    return nullptr;
  }
  if (v->is_null()) {
    fail(quoted(name) + " is null");
    return nullptr;
  }
  return v;
}

std::optional<std::int64_t> record_reader::integer(std::string_view name, bool required,
                                                   std::string_view what) {
  const json::value* v = field(name, required);
  if (v == nullptr) return std::nullopt;
  boost::system::error_code ec;
  const auto n = v->to_number<std::int64_t>(ec);
  if (!ec) return n;
  fail(quoted(name) + " is not " + std::string(what));
  return std::nullopt;
}

std::string record_reader::string(std::string_view name) {
  return opt_string(name, true).value_or(std::string{});
}

std::optional<std::string> record_reader::opt_string(std::string_view name, bool required) {
  const json::value* v = field(name, required);
  if (v == nullptr) return std::nullopt;
  if (const json::string* s = v->if_string()) return std::string(*s);
  fail(quoted(name) + " is not a string");
  return std::nullopt;
}

bool record_reader::boolean(std::string_view name) {
  const json::value* v = field(name, true);
  if (v == nullptr) return false;
  if (const bool* b = v->if_bool()) return *b;
  fail(quoted(name) + " is not a boolean");
  return false;
}

std::optional<std::int64_t> record_reader::opt_integer(std::string_view name, bool required) {
  return integer(name, required, "an integer");
}

std::uint32_t record_reader::count(std::string_view name) {
  const std::int64_t n = opt_integer(name, true).value_or(0);
  if (n < 0 || n > std::numeric_limits<std::uint32_t>::max()) {
    fail(quoted(name) + " is out of range");
    return 0;
  }
  return static_cast<std::uint32_t>(n);
}

timestamp record_reader::time(std::string_view name) {
  return opt_time(name, true).value_or(timestamp{});
}

std::optional<timestamp> record_reader::opt_time(std::string_view name, bool required) {
  const std::optional<std::int64_t> ms = integer(name, required, "an integer of milliseconds");
  if (!ms) return std::nullopt;
  return from_millis(*ms);
}

object_id record_reader::id(std::string_view name) {
  const std::optional<std::string> text = opt_string(name, true);
  if (!text) return {};
  if (auto parsed = object_id::parse(*text)) return *parsed;
  fail(quoted(name) + " is not a 24-hex-digit id");
  return {};
}

const json::array* record_reader::array(std::string_view name) {
  const json::value* v = field(name, true);
  if (v == nullptr) return nullptr;
  if (const json::array* a = v->if_array()) return a;
  fail(quoted(name) + " is not an array");
  return nullptr;
}

std::vector<std::string> record_reader::strings(std::string_view name) {
  std::vector<std::string> out;
  const json::array* a = array(name);
  if (a == nullptr) return out;
  out.reserve(a->size());
  for (const json::value& item : *a) {
    const json::string* s = item.if_string();
    if (s == nullptr) {
      fail(quoted(name) + " holds a value that is not a string");
      return {};
    }
    out.emplace_back(*s);
  }
  return out;
}

}  // namespace hookd::detail
