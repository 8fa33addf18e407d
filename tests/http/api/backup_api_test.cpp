// POST /api/v1/backups through the whole stack in-process (docs/openapi.yaml): who may call it,
// what a body must hold, how a taken or impossible directory is answered, and the 201.

#include "support/test_server.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

namespace hookd::test {
namespace {

namespace fs = std::filesystem;

class BackupApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "hookd-backup-api-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    out_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(out_, ec);
  }
  http_reply backup(const json::value& body, std::string_view token = test_server::kAdminToken) {
    return server_.post("/api/v1/backups", body, token);
  }

  test_server server_;
  fs::path out_;
};

TEST_F(BackupApiTest, CreatedWithWhatWasWritten) {
  const std::string org = server_.create_organization("Backed up");
  const fs::path target = out_ / "first backup";
  auto r = backup({{"directory", target.string()}});
  ASSERT_EQ(r.status, 201u) << r.body;
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(r.header("Location"), "file://" + out_.string() + "/first%20backup");
  const json::value report = r.json();
  EXPECT_EQ(report.at("directory"), json::value(target.string()));
  EXPECT_GT(report.at("sequence").as_int64(), 0);
  EXPECT_GT(report.at("files").as_int64(), 0);
  EXPECT_GT(report.at("bytes").as_int64(), 0);
  EXPECT_TRUE(report.at("linked").as_bool());
  EXPECT_EQ(report.at("masterKey"), "file");
  EXPECT_FALSE(report.at("adminTokenFile").as_bool());  // the token came as HOOKD_ADMIN_TOKEN
  EXPECT_TRUE(report.at("durationMs").is_int64());
  struct stat st {};
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_TRUE(fs::exists(target / "db" / "CURRENT"));
}

TEST_F(BackupApiTest, ATakenDirectoryIsAConflictNamingIt) {
  fs::create_directory(out_ / "taken");
  auto r = backup({{"directory", (out_ / "taken").string()}});
  expect_problem(r, 409);
  EXPECT_EQ(error_fields(r), std::vector<std::string>{"directory"});
  EXPECT_NE(r.str("detail").find("already exists"), std::string::npos) << r.body;
}

TEST_F(BackupApiTest, BadBodiesAndImpossibleDirectoriesAre400sNamingTheField) {
  auto relative = backup({{"directory", "relative/path"}});
  expect_problem(relative, 400);
  EXPECT_EQ(error_fields(relative), std::vector<std::string>{"directory"});

  auto unknown = backup({{"directory", (out_ / "x").string()}, {"compress", true}});
  expect_problem(unknown, 400);
  EXPECT_EQ(error_fields(unknown), std::vector<std::string>{"compress"});
  EXPECT_FALSE(fs::exists(out_ / "x"));

  auto missing_parent = backup({{"directory", (out_ / "no" / "such").string()}});
  expect_problem(missing_parent, 400);
  EXPECT_EQ(error_fields(missing_parent), std::vector<std::string>{"directory"});
  EXPECT_NE(missing_parent.str("detail").find("does not exist"), std::string::npos);

  auto inside = backup({{"directory", (server_.data_dir() / "copy").string()}});
  expect_problem(inside, 400);
  EXPECT_EQ(error_fields(inside), std::vector<std::string>{"directory"});

  expect_problem(backup(json::object{}), 400);
  auto not_json = server_.call(bhttp::verb::post, "/api/v1/backups", std::string("{"),
                               test_server::kAdminToken);
  expect_problem(not_json, 400);
}

TEST_F(BackupApiTest, OnlyAnAdminTokenMayTakeOne) {
  const std::string org = server_.create_organization("Tenant");
  const auto reader = server_.create_token({org}, {"webhooks:read", "webhooks:write"});
  expect_problem(backup({{"directory", (out_ / "b").string()}}, ""), 401);
  expect_problem(backup({{"directory", (out_ / "b").string()}}, reader.secret), 403);
  EXPECT_FALSE(fs::exists(out_ / "b"));
}

}  // namespace
}  // namespace hookd::test
