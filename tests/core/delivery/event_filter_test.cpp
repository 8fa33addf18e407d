#include "core/delivery/event_filter.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <string>
#include <vector>

namespace hookd {
namespace {

namespace json = boost::json;

std::shared_ptr<const event_filter> make(std::string_view text) {
  std::vector<field_error> errors;
  auto filter = event_filter::parse(json::parse(text), errors);
  EXPECT_TRUE(errors.empty()) << text << ": " << (errors.empty() ? "" : errors.front().message);
  return filter;
}

// The fields of the errors `text` gets, in order.
std::vector<std::string> error_fields(std::string_view text) {
  std::vector<field_error> errors;
  auto filter = event_filter::parse(json::parse(text), errors);
  EXPECT_EQ(filter, nullptr) << text;
  std::vector<std::string> fields;
  for (const auto& e : errors) {
    EXPECT_FALSE(e.message.empty());
    fields.push_back(e.field);
  }
  return fields;
}

bool matches(std::string_view filter, std::string_view type, std::string_view data) {
  return make(filter)->matches(type, json::parse(data));
}

TEST(EventFilter, EveryPathMustExistWithAnEqualValue) {
  const std::string_view f = R"({"data.country": "TR", "data.total": 10})";
  EXPECT_TRUE(matches(f, "order.created", R"({"country": "TR", "total": 10, "other": 1})"));
  EXPECT_FALSE(matches(f, "order.created", R"({"country": "DE", "total": 10})"));
  EXPECT_FALSE(matches(f, "order.created", R"({"country": "TR"})"));  // a path missing
  EXPECT_FALSE(matches(f, "order.created", R"({"country": "TR", "total": "10"})"));  // a string
  EXPECT_FALSE(matches(f, "order.created", R"(["TR", 10])"));
  EXPECT_FALSE(matches(f, "order.created", "null"));
}

TEST(EventFilter, NumbersAreEqualByValue) {
  const std::string_view f = R"({"data.total": 10})";
  EXPECT_TRUE(matches(f, "t", R"({"total": 10.0})"));
  EXPECT_TRUE(matches(f, "t", R"({"total": 1e1})"));
  EXPECT_TRUE(matches(f, "t", R"({"total": 10})"));
  EXPECT_FALSE(matches(f, "t", R"({"total": 10.5})"));
  EXPECT_FALSE(matches(f, "t", R"({"total": -10})"));
  EXPECT_TRUE(
      matches(R"({"data.n": 18446744073709551615})", "t", R"({"n": 18446744073709551615})"));
  EXPECT_FALSE(matches(R"({"data.n": 18446744073709551615})", "t", R"({"n": -1})"));
  EXPECT_TRUE(matches(R"({"data.n": 0})", "t", R"({"n": -0.0})"));
  EXPECT_TRUE(matches(R"({"data.n": 2.5})", "t", R"({"n": 2.50})"));
  // 2^53 + 1 is not a double: it never equals the double 2^53.
  EXPECT_FALSE(matches(R"({"data.n": 9007199254740993})", "t", R"({"n": 9007199254740992.0})"));
}

TEST(EventFilter, JsonEqualityOfOtherKinds) {
  EXPECT_TRUE(json_equal(json::parse(R"({"a": [1, {"b": null}], "c": true})"),
                         json::parse(R"({"c": true, "a": [1.0, {"b": null}]})")));
  EXPECT_FALSE(json_equal(json::parse("[1, 2]"), json::parse("[2, 1]")));
  EXPECT_FALSE(json_equal(json::parse(R"({"a": 1})"), json::parse(R"({"a": 1, "b": 2})")));
  EXPECT_FALSE(json_equal(json::parse("null"), json::parse("false")));
  EXPECT_FALSE(json_equal(json::parse(R"("1")"), json::parse("1")));
  EXPECT_TRUE(json_equal(json::parse(R"("Grüße")"), json::parse(R"("Gr\u00fc\u00dfe")")));
  // A null value matches only a path that is there with null.
  EXPECT_TRUE(matches(R"({"data.x": null})", "t", R"({"x": null})"));
  EXPECT_FALSE(matches(R"({"data.x": null})", "t", R"({})"));
  // Objects and arrays as values.
  EXPECT_TRUE(matches(R"({"data.tags": ["a", "b"]})", "t", R"({"tags": ["a", "b"]})"));
  EXPECT_FALSE(matches(R"({"data.tags": ["a", "b"]})", "t", R"({"tags": ["b", "a"]})"));
}

TEST(EventFilter, TypeNestedMembersAndArrayIndexes) {
  EXPECT_TRUE(matches(R"({"type": "order.paid"})", "order.paid", "{}"));
  EXPECT_FALSE(matches(R"({"type": "order.paid"})", "order.created", "{}"));
  const std::string_view f = R"({"data.customer.address.city": "Izmir", "data.items.1.sku": "B2"})";
  EXPECT_TRUE(matches(
      f, "t",
      R"({"customer": {"address": {"city": "Izmir"}}, "items": [{"sku": "A1"}, {"sku": "B2"}]})"));
  EXPECT_FALSE(
      matches(f, "t", R"({"customer": {"address": {"city": "Izmir"}}, "items": [{"sku": "A1"}]})"));
  EXPECT_FALSE(matches(f, "t", R"({"customer": {"address": "Izmir"}, "items": []})"));
  // Only canonical indexes; an object member named "1" is reached by name.
  EXPECT_FALSE(matches(R"({"data.items.01": 1})", "t", R"({"items": [0, 1]})"));
  EXPECT_TRUE(matches(R"({"data.items.1": 1})", "t", R"({"items": {"1": 1}})"));
  // "data" alone compares the whole data.
  EXPECT_TRUE(matches(R"({"data": {"a": 1}})", "t", R"({"a": 1.0})"));
}

TEST(EventFilter, RoundTripsToJsonInTheClientsOrder) {
  const auto f = make(R"({"data.z": 1, "data.a": "x", "type": "t"})");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(json::serialize(f->to_json()), R"({"data.z":1,"data.a":"x","type":"t"})");
  EXPECT_TRUE(*f == *make(R"({"data.z": 1, "data.a": "x", "type": "t"})"));
  EXPECT_FALSE(*f == *make(R"({"data.z": 1.0, "data.a": "x", "type": "t"})"));
  EXPECT_FALSE(*f == *make(R"({"data.a": "x", "data.z": 1, "type": "t"})"));
}

TEST(EventFilter, AnEmptyObjectIsNoFilter) {
  std::vector<field_error> errors;
  EXPECT_EQ(event_filter::parse(json::parse("{}"), errors), nullptr);
  EXPECT_TRUE(errors.empty());
}

TEST(EventFilter, BadFiltersNameTheFieldAndThePath) {
  EXPECT_EQ(error_fields("[]"), std::vector<std::string>{"filter"});
  EXPECT_EQ(error_fields(R"("data.x")"), std::vector<std::string>{"filter"});
  std::string eleven = "{";
  for (int i = 0; i < 11; ++i)
    eleven += (i ? "," : "") + std::string("\"data.k") + std::to_string(i) + "\":1";
  eleven += "}";
  EXPECT_EQ(error_fields(eleven), std::vector<std::string>{"filter"});
  EXPECT_EQ(error_fields(R"({"data..x": 1})"), std::vector<std::string>{"filter.data..x"});
  EXPECT_EQ(error_fields(R"({"data.x.": 1})"), std::vector<std::string>{"filter.data.x."});
  EXPECT_EQ(error_fields(R"({".data": 1})"), std::vector<std::string>{"filter..data"});
  EXPECT_EQ(error_fields(R"({"": 1})"), std::vector<std::string>{"filter."});
  EXPECT_EQ(error_fields(R"({"timestamp": 1})"), std::vector<std::string>{"filter.timestamp"});
  EXPECT_EQ(error_fields(R"({"country": "TR"})"), std::vector<std::string>{"filter.country"});
  EXPECT_EQ(error_fields(R"({"type.x": "a"})"), std::vector<std::string>{"filter.type.x"});
  EXPECT_EQ(error_fields(R"({"type": 1})"), std::vector<std::string>{"filter.type"});
  EXPECT_EQ(error_fields(R"({"data.a\u0001": 1})"), std::vector<std::string>{"filter.data.a\x01"});
  const std::string long_path = "data." + std::string(252, 'p');  // 257 characters
  EXPECT_EQ(error_fields("{\"" + long_path + "\": 1}"),
            std::vector<std::string>{"filter." + long_path});
  EXPECT_NE(make("{\"data." + std::string(251, 'p') + "\": 1}"), nullptr);  // 256 characters
  const std::string big = "\"" + std::string(1023, 'v') + "\"";             // 1025 bytes of JSON
  EXPECT_EQ(error_fields("{\"data.x\": " + big + "}"), std::vector<std::string>{"filter.data.x"});
  // Every bad path is named, not just the first.
  EXPECT_EQ(error_fields(R"({"a": 1, "data.ok": 2, "data..b": 3})"),
            (std::vector<std::string>{"filter.a", "filter.data..b"}));
}

}  // namespace
}  // namespace hookd
