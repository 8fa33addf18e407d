// `hookd migrate` end to end: the real binary against a private PostgreSQL server
// (tests/support/pg_cluster.hpp).

#include "tests/support/pg_cluster.hpp"

#include <boost/json/parse.hpp>

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace {

using hookd::testing::shared_pg_cluster;
using hookd::testing::shell_quote;

struct run_result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `hookd migrate ARGS` with `env` prepended (VAR=value ...), capturing both streams.
run_result hookd_migrate(const std::string& args, const std::string& env = "") {
  // Named by process: ctest runs this binary's tests in parallel, each in its own process.
  const std::string stem = ::testing::TempDir() + "/hookd-migrate." + std::to_string(::getpid());
  const std::string out = stem + ".out";
  const std::string err = stem + ".err";
  const std::string command = "env -u HOOKD_STORAGE " + env + " " +
                              shell_quote(std::string(HOOKD_BIN_DIR) + "/hookd") + " migrate " +
                              args + " >" + shell_quote(out) + " 2>" + shell_quote(err);
  const int status = std::system(command.c_str());
  run_result r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
  std::remove(out.c_str());
  std::remove(err.c_str());
  return r;
}

std::vector<boost::json::object> json_lines(const std::string& text) {
  std::vector<boost::json::object> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    out.push_back(boost::json::parse(line).as_object());
  }
  return out;
}

TEST(pg_migrate_command, dry_run_prints_the_sql_and_applies_nothing_then_migrate_applies_once) {
  HOOKD_REQUIRE_PG();
  auto& pg = *shared_pg_cluster();
  const std::string db = pg.create_database();
  const std::string uri = pg.uri(db);

  auto dry = hookd_migrate("--storage " + shell_quote(uri) + " --dry-run");
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.out.find("-- migration 1 (schema)"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("CREATE TABLE webhooks"), std::string::npos);
  EXPECT_EQ(pg.query_value(db, "SELECT to_regclass('hookd_migrations') IS NULL"), "t");
  EXPECT_EQ(pg.query_value(db, "SELECT to_regclass('webhooks') IS NULL"), "t");

  // HOOKD_STORAGE stands in for --storage.
  auto applied = hookd_migrate("", "HOOKD_STORAGE=" + shell_quote(uri));
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  auto lines = json_lines(applied.out);
  ASSERT_FALSE(lines.empty()) << applied.out;
  EXPECT_EQ(lines[0].at("version").as_int64(), 1);
  EXPECT_EQ(lines[0].at("name").as_string(), "schema");
  EXPECT_EQ(lines[0].at("applied").as_bool(), true);
  EXPECT_TRUE(lines[0].at("appliedAt").is_string());
  EXPECT_EQ(pg.query_value(db, "SELECT count(*) FROM hookd_migrations WHERE version = 1"), "1");

  auto again = hookd_migrate("--storage=" + shell_quote(uri));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  auto second = json_lines(again.out);
  ASSERT_FALSE(second.empty());
  EXPECT_EQ(second[0].at("applied").as_bool(), false);
  EXPECT_EQ(second[0].at("appliedAt"), lines[0].at("appliedAt"));

  auto nothing = hookd_migrate("--storage " + shell_quote(uri) + " --dry-run");
  ASSERT_EQ(nothing.exit_code, 0);
  EXPECT_EQ(nothing.out, "-- no pending migrations\n");
}

TEST(pg_migrate_command, failures_exit_nonzero_saying_why) {
  HOOKD_REQUIRE_PG();
  auto& pg = *shared_pg_cluster();
  const std::string db = pg.create_database();
  // A database whose schema is newer than this binary.
  pg.execute(db,
             "CREATE TABLE hookd_migrations (version integer PRIMARY KEY, name text NOT NULL,"
             " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());"
             "INSERT INTO hookd_migrations (version, name, checksum) VALUES (9999, 'future', 'x')");
  auto newer = hookd_migrate("--storage " + shell_quote(pg.uri(db)));
  EXPECT_EQ(newer.exit_code, 1);
  EXPECT_NE(newer.err.find("9999_future.sql"), std::string::npos) << newer.err;
  EXPECT_NE(newer.err.find("\"event\":\"migrate_failed\""), std::string::npos) << newer.err;

  auto unreachable =
      hookd_migrate("--storage 'postgresql://hookd@127.0.0.1:1/x?connect_timeout=2'");
  EXPECT_EQ(unreachable.exit_code, 1);
  EXPECT_NE(unreachable.err.find("cannot connect"), std::string::npos) << unreachable.err;

  auto no_uri = hookd_migrate("");
  EXPECT_EQ(no_uri.exit_code, 2);
  EXPECT_NE(no_uri.err.find("postgresql:// URI"), std::string::npos) << no_uri.err;
  auto unknown = hookd_migrate("--storage " + shell_quote(pg.uri(db)) + " --force");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown argument \"--force\""), std::string::npos) << unknown.err;
}

}  // namespace
