// The body of POST /api/v1/backups and the report it answers with (core/durable/backup.hpp).

#include "core/durable/backup.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace hookd {
namespace {

std::vector<std::string> fields_of(const result<std::string>& r) {
  std::vector<std::string> out;
  if (r) return out;
  for (const auto& e : r.error().errors) out.push_back(e.field);
  return out;
}

TEST(BackupRequest, TakesAnAbsoluteDirectory) {
  auto r = parse_backup_request(boost::json::parse(R"({"directory":"/var/backups/h 1"})"));
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(*r, "/var/backups/h 1");
}

TEST(BackupRequest, NamesEveryFieldAtFault) {
  auto unknown = parse_backup_request(boost::json::parse(R"({"directory":"/x","dir":"/y"})"));
  EXPECT_EQ(fields_of(unknown), std::vector<std::string>{"dir"});
  EXPECT_EQ(unknown.error().kind, error_kind::validation);
  EXPECT_EQ(fields_of(parse_backup_request(boost::json::parse("{}"))),
            std::vector<std::string>{"directory"});
  EXPECT_EQ(fields_of(parse_backup_request(boost::json::parse(R"({"directory":7})"))),
            std::vector<std::string>{"directory"});
  EXPECT_EQ(fields_of(parse_backup_request(boost::json::parse(R"({"directory":"rel/x"})"))),
            std::vector<std::string>{"directory"});
  EXPECT_EQ(fields_of(parse_backup_request(boost::json::parse(R"({"directory":""})"))),
            std::vector<std::string>{"directory"});
  EXPECT_EQ(fields_of(parse_backup_request(
                boost::json::value(boost::json::object{{"directory", std::string(5000, '/')}}))),
            std::vector<std::string>{"directory"});
  EXPECT_EQ(fields_of(parse_backup_request(boost::json::parse("[]"))),
            std::vector<std::string>{"body"});
}

TEST(BackupReport, AsJsonNamesEveryField) {
  backup_report r;
  r.directory = "/b";
  r.sequence = 42;
  r.bytes = 1000;
  r.files = 7;
  r.linked = true;
  r.master_key = "file";
  r.admin_token_file = true;
  r.duration = std::chrono::milliseconds(12);
  EXPECT_EQ(boost::json::serialize(to_json(r)),
            R"({"directory":"/b","sequence":42,"bytes":1000,"files":7,"linked":true,)"
            R"("masterKey":"file","adminTokenFile":true,"durationMs":12})");
}

}  // namespace
}  // namespace hookd
