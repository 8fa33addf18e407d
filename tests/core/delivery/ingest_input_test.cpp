#include "core/delivery/ingest_input.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>

#include <string>
#include <vector>

namespace hookd {
namespace {

std::vector<std::string> fields(const result<ingest_request>& r) {
  std::vector<std::string> out;
  if (r) return out;
  for (const auto& e : r.error().errors) out.push_back(e.field);
  return out;
}

result<ingest_request> parse(std::string_view body,
                             std::optional<std::string_view> header = std::nullopt) {
  return parse_ingest(boost::json::parse(body), header);
}

TEST(IngestInput, AcceptsTypeDataAndAKeyAndSerializesDataOnceCompactly) {
  auto r = parse(
      R"({"type":"order.created","data":{ "id" : 7, "tags":["a", "b"] },"idempotencyKey":"k-1"})");
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->type, "order.created");
  EXPECT_EQ(r->data, R"({"id":7,"tags":["a","b"]})");
  EXPECT_EQ(r->idempotency_key, "k-1");
  auto null_data = parse(R"({"type":"a.b","data":null})");
  ASSERT_TRUE(null_data);
  EXPECT_EQ(null_data->data, "null");
  EXPECT_FALSE(null_data->idempotency_key);
}

TEST(IngestInput, NamesEveryFieldAtFault) {
  EXPECT_EQ(fields(parse(R"({"type":"order.*","data":1})")), std::vector<std::string>{"type"});
  EXPECT_EQ(fields(parse(R"({"type":"Order Created","data":1})")),
            std::vector<std::string>{"type"});
  EXPECT_EQ(fields(parse(R"({"type":"order.created"})")), std::vector<std::string>{"data"});
  EXPECT_EQ(fields(parse(R"({"type":"a.b","data":1,"extra":true})")),
            std::vector<std::string>{"extra"});
  EXPECT_EQ(fields(parse(R"({"type":7,"data":1,"idempotencyKey":5})")),
            (std::vector<std::string>{"type", "idempotencyKey"}));
  EXPECT_EQ(fields(parse(R"({"type":"a.b","data":1,"idempotencyKey":""})")),
            std::vector<std::string>{"idempotencyKey"});
  EXPECT_EQ(fields(parse(R"([1])")), std::vector<std::string>{"body"});
  const std::string long_key(256, 'k');
  EXPECT_EQ(fields(parse(R"({"type":"a.b","data":1})", long_key)),
            std::vector<std::string>{"idempotencyKey"});
  EXPECT_TRUE(parse(R"({"type":"a.b","data":1})", std::string(255, 'k')));
}

TEST(IngestInput, ASubjectIsShortTextWithoutControlCharacters) {
  auto r = parse(R"({"type":"a.b","data":1,"subject":"user_42@example.com"})");
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->subject, "user_42@example.com");
  EXPECT_FALSE(parse(R"({"type":"a.b","data":1})")->subject);
  for (const char* bad :
       {R"({"type":"a.b","data":1,"subject":""})", R"({"type":"a.b","data":1,"subject":7})",
        R"({"type":"a.b","data":1,"subject":"a\nb"})"}) {
    EXPECT_EQ(fields(parse(bad)), std::vector<std::string>{"subject"}) << bad;
  }
  const std::string long_one =
      R"({"type":"a.b","data":1,"subject":")" + std::string(129, 's') + "\"}";
  EXPECT_EQ(fields(parse(long_one)), std::vector<std::string>{"subject"});
}

TEST(IngestInput, TheHeaderKeyCountsAndMustAgreeWithTheBody) {
  auto by_header = parse(R"({"type":"a.b","data":1})", "h-1");
  ASSERT_TRUE(by_header);
  EXPECT_EQ(by_header->idempotency_key, "h-1");
  EXPECT_TRUE(parse(R"({"type":"a.b","data":1,"idempotencyKey":"same"})", "same"));
  EXPECT_EQ(fields(parse(R"({"type":"a.b","data":1,"idempotencyKey":"one"})", "two")),
            std::vector<std::string>{"idempotencyKey"});
}

TEST(IngestInput, AnOrderingKeyIsShortTextWithoutControlCharacters) {
  auto r = parse(R"({"type":"a.b","data":1,"orderingKey":"customer-42"})");
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->ordering_key, "customer-42");
  EXPECT_FALSE(parse(R"({"type":"a.b","data":1})")->ordering_key);
  EXPECT_TRUE(parse(R"({"type":"a.b","data":1,"orderingKey":")" + std::string(128, 'k') + "\"}"));
  for (const std::string& bad :
       {std::string(R"({"type":"a.b","data":1,"orderingKey":""})"),
        std::string(R"({"type":"a.b","data":1,"orderingKey":7})"),
        std::string(R"({"type":"a.b","data":1,"orderingKey":null})"),
        std::string(R"({"type":"a.b","data":1,"orderingKey":"a\u0000b"})"),
        R"({"type":"a.b","data":1,"orderingKey":")" + std::string(129, 'k') + "\"}"}) {
    EXPECT_EQ(fields(parse(bad)), std::vector<std::string>{"orderingKey"}) << bad;
  }
}

}  // namespace
}  // namespace hookd
