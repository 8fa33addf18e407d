// The libpq wrapper and the schema migrations against a private PostgreSQL server
// (tests/support/pg_cluster.hpp), a fresh database per test.

#include "storage/postgres/connection.hpp"
#include "storage/postgres/migrations.hpp"
#include "tests/support/pg_cluster.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace hookd::pg {
namespace {

using hookd::testing::shared_pg_cluster;

class pg_test : public ::testing::Test {
 protected:
  void SetUp() override {
    HOOKD_REQUIRE_PG();
    database_ = shared_pg_cluster()->create_database();
    uri_ = shared_pg_cluster()->uri(database_);
  }
  connection connect() {
    auto c = connection::open(uri_);
    if (!c) throw std::runtime_error(c.error().detail);
    return std::move(*c);
  }
  std::string value(const std::string& sql) {
    return shared_pg_cluster()->query_value(database_, sql);
  }

  std::string database_;
  std::string uri_;
};

TEST_F(pg_test, parameters_travel_apart_from_the_sql_and_bytes_come_back_whole) {
  connection c = connect();
  const std::string raw("a\0b'\xff", 5);
  auto r = c.exec("SELECT $1::text, $2::bytea, $3::text IS NULL",
                  {param::text("it's; DROP TABLE x"), param::bytes(raw), param::null()});
  ASSERT_TRUE(r) << r.error().detail;
  ASSERT_EQ(r->size(), 1);
  EXPECT_EQ(r->text(0, 0), "it's; DROP TABLE x");
  EXPECT_EQ(r->bytes(0, 1), raw);
  EXPECT_EQ(r->text(0, 2), "t");
}

TEST_F(pg_test, a_failing_statement_is_a_storage_failure_with_the_servers_message) {
  connection c = connect();
  auto r = c.exec("SELECT * FROM no_such_table");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, error_kind::storage_failure);
  EXPECT_NE(r.error().detail.find("relation \"no_such_table\" does not exist"), std::string::npos)
      << r.error().detail;
  EXPECT_NE(r.error().detail.find("SQLSTATE 42P01"), std::string::npos) << r.error().detail;
  // The connection stays usable.
  EXPECT_TRUE(c.exec("SELECT 1"));
}

TEST_F(pg_test, an_unreachable_server_is_a_storage_failure_naming_the_cause) {
  auto c = connection::open("postgresql://hookd@127.0.0.1:1/none?connect_timeout=2");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, error_kind::storage_failure);
  EXPECT_NE(c.error().detail.find("cannot connect"), std::string::npos) << c.error().detail;
}

TEST_F(pg_test, a_terminated_backend_fails_one_statement_and_the_next_reconnects) {
  connection c = connect();
  auto pid = c.exec("SELECT pg_backend_pid()");
  ASSERT_TRUE(pid);
  shared_pg_cluster()->execute(database_,
                               "SELECT pg_terminate_backend(" + std::string(pid->text(0, 0)) + ")");
  auto broken = c.exec("SELECT 1");
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().kind, error_kind::storage_failure);
  auto again = c.exec("SELECT pg_backend_pid()");
  ASSERT_TRUE(again) << again.error().detail;
  EXPECT_NE(again->text(0, 0), pid->text(0, 0));
}

TEST_F(pg_test, migrate_applies_every_migration_once_and_records_it) {
  connection c = connect();
  auto first = migrate(c);
  ASSERT_TRUE(first) << first.error().detail;
  ASSERT_EQ(first->size(), embedded_migrations().size());
  EXPECT_EQ((*first)[0].version, 1);
  EXPECT_EQ((*first)[0].name, "schema");
  EXPECT_TRUE((*first)[0].applied_now);
  EXPECT_EQ(value("SELECT count(*) FROM hookd_migrations"),
            std::to_string(embedded_migrations().size()));
  EXPECT_EQ(value("SELECT checksum FROM hookd_migrations WHERE version = 1"),
            checksum(embedded_migrations()[0]));
  // The tables exist.
  EXPECT_EQ(value("SELECT count(*) FROM organizations"), "0");
  EXPECT_EQ(value("SELECT to_regclass('changes') IS NOT NULL"), "t");

  auto second = migrate(c);
  ASSERT_TRUE(second) << second.error().detail;
  EXPECT_FALSE((*second)[0].applied_now);
  EXPECT_EQ((*second)[0].applied_at, (*first)[0].applied_at);
  auto pending = pending_migrations(c);
  ASSERT_TRUE(pending);
  EXPECT_TRUE(pending->empty());
}

TEST_F(pg_test, nodes_migrating_one_empty_database_at_once_apply_each_migration_exactly_once) {
  // A second, slow migration widens the window in which the nodes race.
  const migration list[] = {embedded_migrations()[0],
                            {2, "slow", "SELECT pg_sleep(0.3); CREATE TABLE slow_marker (x int);"}};
  constexpr int kNodes = 4;
  std::vector<result<std::vector<migration_state>>> results(kNodes, problem{});
  std::vector<std::thread> nodes;
  for (int i = 0; i < kNodes; ++i) {
    nodes.emplace_back([&, i] {
      auto c = connection::open(uri_);
      if (!c) {
        results[static_cast<std::size_t>(i)] = c.error();
        return;
      }
      results[static_cast<std::size_t>(i)] = migrate(*c, list);
    });
  }
  for (auto& t : nodes) t.join();
  int applied_now = 0;
  for (const auto& r : results) {
    ASSERT_TRUE(r) << r.error().detail;
    ASSERT_EQ(r->size(), 2u);
    for (const auto& m : *r) applied_now += m.applied_now ? 1 : 0;
  }
  EXPECT_EQ(applied_now, 2) << "each of the 2 migrations applied by exactly one node";
  EXPECT_EQ(value("SELECT string_agg(version::text, ',' ORDER BY version) FROM hookd_migrations"),
            "1,2");
}

TEST_F(pg_test, a_changed_applied_migration_is_refused_saying_what_to_do) {
  const migration v1{1, "first", "CREATE TABLE first (x int);"};
  connection c = connect();
  ASSERT_TRUE(migrate(c, std::span(&v1, 1)));
  const migration edited{1, "first", "CREATE TABLE first (x bigint);"};
  auto r = migrate(c, std::span(&edited, 1));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, error_kind::storage_failure);
  EXPECT_NE(r.error().detail.find("migration 0001_first.sql was applied"), std::string::npos)
      << r.error().detail;
  EXPECT_NE(r.error().detail.find("must never change"), std::string::npos) << r.error().detail;
  EXPECT_FALSE(pending_migrations(c, std::span(&edited, 1)));
}

TEST_F(pg_test, a_database_newer_than_the_binary_is_refused) {
  const migration both[] = {{1, "first", "CREATE TABLE first (x int);"},
                            {2, "second", "CREATE TABLE second (x int);"}};
  connection c = connect();
  ASSERT_TRUE(migrate(c, both));
  auto r = migrate(c, std::span(both, 1));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("0002_second.sql applied"), std::string::npos)
      << r.error().detail;
  EXPECT_NE(r.error().detail.find("up to version 1 only"), std::string::npos) << r.error().detail;
}

TEST_F(pg_test, a_failing_migration_applies_nothing_of_the_run) {
  const migration list[] = {{1, "good", "CREATE TABLE good (x int);"},
                            {2, "bad", "CREATE TABLE bad (x no_such_type);"}};
  connection c = connect();
  auto r = migrate(c, list);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("migration 0002_bad.sql failed"), std::string::npos)
      << r.error().detail;
  EXPECT_EQ(value("SELECT to_regclass('good') IS NULL"), "t");
  auto pending = pending_migrations(c, list);
  ASSERT_TRUE(pending) << pending.error().detail;
  EXPECT_EQ(pending->size(), 2u);
}

TEST_F(pg_test, events_land_in_the_partition_of_their_utc_day_and_a_day_without_one_is_refused) {
  connection c = connect();
  ASSERT_TRUE(migrate(c));
  // The session's time zone does not move the day's bounds.
  const std::string insert =
      "SET TIME ZONE 'Pacific/Auckland';"
      "SELECT hookd_day_partition('events', date '2026-12-07');"
      "SELECT hookd_day_partition('events', date '2026-12-07');"  // again: no error
      "INSERT INTO events (id, organization_id, project_id, type, data, event_time, created_at)"
      " VALUES ('000000000000000000000001', '000000000000000000000002',"
      " '000000000000000000000003', 'order.created', '{}', now(), '2026-12-07 00:00:00+00')";
  ASSERT_TRUE(c.exec_script(insert));
  EXPECT_EQ(value("SELECT string_agg(id || ':' || tableoid::regclass::text, ',' ORDER BY id)"
                  " FROM events"),
            "000000000000000000000001:events_20261207");
  // No default partition (migration 0002): a row of a day without its partition is refused,
  // rather than kept where it would block creating that day's partition later.
  auto orphan = c.exec(
      "INSERT INTO events (id, organization_id, project_id, type, data, event_time, created_at)"
      " VALUES ('000000000000000000000004', '000000000000000000000002', '000000000000000000000003',"
      " 'order.created', '{}', now(), '2026-12-06 23:59:59.999+00')");
  ASSERT_FALSE(orphan);
  EXPECT_NE(orphan.error().detail.find("23514"), std::string::npos) << orphan.error().detail;
  // An id that is not 24 lowercase hex digits is refused by the column's domain.
  auto bad = c.exec("INSERT INTO organizations VALUES ('ABC', 'x', now(), now())");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().detail.find("hookd_id"), std::string::npos) << bad.error().detail;
  // A pending delivery has a due time, a finished one none.
  auto undue = c.exec(
      "INSERT INTO deliveries (id, event_id, event_created_at, webhook_id, project_id, type,"
      " status, created_at, updated_at) VALUES ('000000000000000000000005',"
      " '000000000000000000000001', now(), '000000000000000000000006',"
      " '000000000000000000000003', 't', 'pending', now(), now())");
  EXPECT_FALSE(undue);
}

}  // namespace
}  // namespace hookd::pg
