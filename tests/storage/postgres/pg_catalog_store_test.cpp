// pg_catalog_store against a private PostgreSQL server (tests/support/pg_cluster.hpp), a fresh
// database per test: what commit() writes, load() gives back field for field; changes are
// ordered and all-or-nothing; the rows read with plain SQL; a wrong master key names the row.

#include "storage/postgres/pg_catalog_store.hpp"
#include "storage/postgres/connection.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/test_util.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <libpq-fe.h>

#include <gtest/gtest.h>

#include <poll.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>

namespace hookd::pg {
namespace {

using hookd::testing::shared_pg_cluster;

timestamp at(std::int64_t ms) {
  return timestamp(std::chrono::milliseconds(ms));
}

// What load() handed over, by id.
struct loaded {
  std::mutex mutex;
  std::map<object_id, std::shared_ptr<organization>> organizations;
  std::map<object_id, std::shared_ptr<project>> projects;
  std::map<object_id, std::shared_ptr<api_token>> tokens;
  std::map<object_id, std::shared_ptr<webhook>> webhooks;

  catalog_load_sink sink() {
    return {[this](auto v) {
              std::lock_guard l(mutex);
              organizations[v->id] = v;
            },
            [this](auto v) {
              std::lock_guard l(mutex);
              projects[v->id] = v;
            },
            [this](auto v) {
              std::lock_guard l(mutex);
              tokens[v->id] = v;
            },
            [this](auto v) {
              std::lock_guard l(mutex);
              webhooks[v->id] = v;
            }};
  }
};

class pg_catalog_store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    HOOKD_REQUIRE_PG();
    database_ = shared_pg_cluster()->create_database();
    uri_ = shared_pg_cluster()->uri(database_);
  }
  std::unique_ptr<pg_catalog_store> open_store(const aes256gcm_key& key) {
    auto s = pg_catalog_store::open(uri_, key);
    if (!s) throw std::runtime_error(s.error().detail);
    return std::move(*s);
  }
  std::string value(const std::string& sql) {
    return shared_pg_cluster()->query_value(database_, sql);
  }

  std::shared_ptr<const organization> make_org(std::string name) {
    auto o = std::make_shared<organization>();
    o->id = ids_.next();
    o->name = std::move(name);
    o->created_at = at(1'700'000'000'123);
    o->updated_at = at(1'700'000'000'456);
    return o;
  }
  std::shared_ptr<const project> make_project(const object_id& org, std::string slug) {
    auto p = std::make_shared<project>();
    p->id = ids_.next();
    p->organization = org;
    p->name = "Project " + slug;
    p->slug = std::move(slug);
    p->created_at = at(1'700'000'001'000);
    p->updated_at = at(1'700'000'001'000);
    return p;
  }

  object_id_generator ids_;
  aes256gcm_key key_ = aes256gcm_key::generate();
  std::string database_;
  std::string uri_;
};

TEST_F(pg_catalog_store_test, every_field_of_every_entity_survives_commit_and_load) {
  auto store = open_store(key_);
  auto org = make_org("Acme GmbH");
  auto other_org = make_org("Other");

  auto proj = std::make_shared<project>(*make_project(org->id, "shop"));
  proj->description = "The shop's \"events\"";
  proj->status = project_status::archived;
  proj->app_icon_url = "https://example.com/icon.png";
  auto bare = make_project(org->id, "bare");  // no description, no icon, draft

  auto token = std::make_shared<api_token>();
  token->id = ids_.next();
  token->name = "ci";
  token->organizations = {other_org->id, org->id};  // order kept
  token->scopes.add(scope::webhooks_read);
  token->scopes.add(scope::events_write);
  token->digest = sha256("hkd_secret");
  token->created_at = at(1'700'000'002'002);

  auto hook = std::make_shared<webhook>();
  hook->id = ids_.next();
  hook->organization = org->id;
  hook->project = proj->id;
  hook->name = "orders";
  hook->url = "https://receiver.example/hook?x=1";
  hook->headers = {{"Authorization", "Bearer s3cret"}, {"X-Empty", ""}, {"X-Two", "a, b"}};
  hook->active = false;
  hook->events = {"order.created", "order.*"};
  hook->secret = generate_webhook_secret();
  hook->created_at = at(1'700'000'003'001);
  hook->updated_at = at(1'700'000'003'999);
  hook->disabled_reason = "endpoint failing for 3 days";
  hook->disabled_at = at(1'700'000'003'500);
  hook->rate_limit = 250;
  hook->previous_secrets = {{generate_webhook_secret(), at(1'700'000'100'000)},
                            {generate_webhook_secret(), at(1'700'000'050'000)}};
  std::vector<field_error> errors;
  // Key order and the number's form (10.0, a double) are part of the filter's value.
  hook->filter = event_filter::parse(
      boost::json::parse(R"({"data.country":"DE","data.amount":10.0,"data.vip":true})"), errors);
  ASSERT_TRUE(hook->filter && errors.empty());

  auto v1a = std::make_shared<webhook>();
  v1a->id = ids_.next();
  v1a->organization = org->id;
  v1a->project = bare->id;
  v1a->name = "signed";
  v1a->url = "https://receiver.example/v1a";
  v1a->events = {"*"};
  v1a->secret = generate_webhook_secret(signing_scheme::v1a);
  v1a->signing = signing_scheme::v1a;
  v1a->created_at = at(1'700'000'004'000);
  v1a->updated_at = at(1'700'000'004'000);

  catalog_change change;
  change.put(org);
  change.put(other_org);
  change.put(std::shared_ptr<const project>(proj));
  change.put(bare);
  change.put(std::shared_ptr<const api_token>(token));
  change.put(std::shared_ptr<const webhook>(hook));
  change.put(std::shared_ptr<const webhook>(v1a));
  auto committed = store->commit(change);
  ASSERT_TRUE(committed) << committed.error().detail;

  // A second store, as another node or the next start, reads it all back.
  auto reader = open_store(key_);
  loaded got;
  auto load = reader->load(got.sink(), 4);
  ASSERT_TRUE(load) << load.error().detail;

  ASSERT_EQ(got.organizations.size(), 2u);
  const auto& o = *got.organizations.at(org->id);
  EXPECT_EQ(o.name, "Acme GmbH");
  EXPECT_EQ(o.created_at, org->created_at);
  EXPECT_EQ(o.updated_at, org->updated_at);

  ASSERT_EQ(got.projects.size(), 2u);
  const auto& p = *got.projects.at(proj->id);
  EXPECT_EQ(p.organization, org->id);
  EXPECT_EQ(p.name, proj->name);
  EXPECT_EQ(p.slug, "shop");
  EXPECT_EQ(p.description, proj->description);
  EXPECT_EQ(p.status, project_status::archived);
  EXPECT_EQ(p.app_icon_url, proj->app_icon_url);
  EXPECT_EQ(p.created_at, proj->created_at);
  EXPECT_EQ(p.updated_at, proj->updated_at);
  const auto& b = *got.projects.at(bare->id);
  EXPECT_EQ(b.description, std::nullopt);
  EXPECT_EQ(b.app_icon_url, std::nullopt);
  EXPECT_EQ(b.status, project_status::draft);

  ASSERT_EQ(got.tokens.size(), 1u);
  const auto& t = *got.tokens.at(token->id);
  EXPECT_EQ(t.name, "ci");
  EXPECT_EQ(t.organizations, token->organizations);
  EXPECT_EQ(t.scopes, token->scopes);
  EXPECT_EQ(t.digest, token->digest);
  EXPECT_EQ(t.created_at, token->created_at);

  ASSERT_EQ(got.webhooks.size(), 2u);
  hookd::testing::expect_same_webhook(*got.webhooks.at(hook->id), *hook);
  hookd::testing::expect_same_webhook(*got.webhooks.at(v1a->id), *v1a);
  EXPECT_EQ(boost::json::serialize(got.webhooks.at(hook->id)->filter->to_json()),
            R"({"data.country":"DE","data.amount":1E1,"data.vip":true})");

  // One change row per op, in order.
  EXPECT_EQ(value("SELECT string_agg(entity, ',' ORDER BY seq) FROM changes"),
            "organization,organization,project,project,token,webhook,webhook");
}

TEST_F(pg_catalog_store_test,
       ops_apply_in_order_so_a_slug_freed_by_a_delete_is_taken_in_the_same_change) {
  auto store = open_store(key_);
  auto org = make_org("Acme");
  auto old_project = make_project(org->id, "shop");
  catalog_change first;
  first.put(org);
  first.put(old_project);
  ASSERT_TRUE(store->commit(first));

  auto new_project = make_project(org->id, "shop");
  catalog_change swap;
  swap.erase(old_project);
  swap.put(new_project);
  auto r = store->commit(swap);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(value("SELECT id FROM projects WHERE slug = 'shop'"), new_project->id.to_string());

  // The other order breaks the slug's uniqueness: refused as a whole.
  auto third = make_project(org->id, "shop");
  catalog_change wrong;
  wrong.put(third);
  wrong.erase(new_project);
  auto refused = store->commit(wrong);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().detail.find("projects_slug_unique"), std::string::npos)
      << refused.error().detail;
  EXPECT_EQ(value("SELECT id FROM projects WHERE slug = 'shop'"), new_project->id.to_string());
}

TEST_F(pg_catalog_store_test, a_failing_op_rolls_back_the_whole_change) {
  auto store = open_store(key_);
  auto org = make_org("Acme");
  catalog_change first;
  first.put(org);
  first.put(make_project(org->id, "shop"));
  ASSERT_TRUE(store->commit(first));
  const std::string changes_before = value("SELECT count(*) FROM changes");

  auto newcomer = make_org("Newcomer");
  catalog_change change;
  change.put(newcomer);
  change.put(make_project(newcomer->id, "fine"));
  change.put(make_project(org->id, "shop"));  // the slug is taken
  auto r = store->commit(change);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, error_kind::storage_failure);
  EXPECT_NE(r.error().detail.find("duplicate key"), std::string::npos) << r.error().detail;
  EXPECT_EQ(
      value("SELECT count(*) FROM organizations WHERE id = '" + newcomer->id.to_string() + "'"),
      "0");
  EXPECT_EQ(value("SELECT count(*) FROM projects"), "1");
  EXPECT_EQ(value("SELECT count(*) FROM changes"), changes_before);

  // A webhook of a project that does not exist: the foreign key refuses it at commit.
  auto orphan = std::make_shared<webhook>();
  orphan->id = ids_.next();
  orphan->organization = org->id;
  orphan->project = ids_.next();
  orphan->name = "orphan";
  orphan->url = "https://x.example/";
  orphan->events = {"*"};
  orphan->secret = generate_webhook_secret();
  catalog_change dangling;
  dangling.put(std::shared_ptr<const webhook>(orphan));
  auto fk = store->commit(dangling);
  ASSERT_FALSE(fk);
  EXPECT_NE(fk.error().detail.find("foreign key"), std::string::npos) << fk.error().detail;

  // The store goes on working after a failure.
  catalog_change fine;
  fine.put(newcomer);
  EXPECT_TRUE(store->commit(fine));
}

TEST_F(pg_catalog_store_test, a_wrong_master_key_fails_load_naming_the_row) {
  auto store = open_store(key_);
  auto org = make_org("Acme");
  auto proj = make_project(org->id, "shop");
  auto hook = std::make_shared<webhook>();
  hook->id = ids_.next();
  hook->organization = org->id;
  hook->project = proj->id;
  hook->name = "h";
  hook->url = "https://x.example/";
  hook->events = {"*"};
  hook->secret = generate_webhook_secret();
  catalog_change change;
  change.put(org);
  change.put(proj);
  change.put(std::shared_ptr<const webhook>(hook));
  ASSERT_TRUE(store->commit(change));

  auto wrong = open_store(aes256gcm_key::generate());
  loaded got;
  auto r = wrong->load(got.sink(), 1);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("table webhooks, id " + hook->id.to_string()), std::string::npos)
      << r.error().detail;
  EXPECT_NE(r.error().detail.find("does not open with the master key"), std::string::npos)
      << r.error().detail;

  // A sealed secret moved to another webhook's row does not open there either.
  auto twin = std::make_shared<webhook>(*hook);
  twin->id = ids_.next();
  catalog_change second;
  second.put(std::shared_ptr<const webhook>(twin));
  ASSERT_TRUE(store->commit(second));
  shared_pg_cluster()->execute(
      database_,
      "UPDATE webhooks SET secret_sealed = (SELECT secret_sealed FROM webhooks WHERE id = '" +
          hook->id.to_string() + "') WHERE id = '" + twin->id.to_string() + "'");
  loaded again;
  auto moved = store->load(again.sink(), 1);
  ASSERT_FALSE(moved);
  EXPECT_NE(moved.error().detail.find(twin->id.to_string()), std::string::npos)
      << moved.error().detail;
}

TEST_F(pg_catalog_store_test, rows_read_with_plain_sql_and_hold_no_secret_in_clear) {
  auto store = open_store(key_);
  auto org = make_org("Acme");
  auto proj = make_project(org->id, "shop");
  auto token = std::make_shared<api_token>();
  token->id = ids_.next();
  token->name = "admin";
  token->scopes.add(scope::admin);
  token->digest = sha256("hkd_token");
  token->organizations = {org->id};
  token->created_at = at(1'700'000'000'000);
  auto hook = std::make_shared<webhook>();
  hook->id = ids_.next();
  hook->organization = org->id;
  hook->project = proj->id;
  hook->name = "orders";
  hook->url = "https://receiver.example/";
  hook->headers = {{"Authorization", "Bearer header-secret"}};
  hook->events = {"order.created"};
  hook->secret = generate_webhook_secret();
  hook->rate_limit = 5;
  hook->created_at = at(1'700'000'000'000);
  hook->updated_at = at(1'700'000'000'000);
  catalog_change change;
  change.put(org);
  change.put(proj);
  change.put(std::shared_ptr<const api_token>(token));
  change.put(std::shared_ptr<const webhook>(hook));
  ASSERT_TRUE(store->commit(change));

  EXPECT_EQ(value("SELECT o.name || '/' || p.slug || '/' || w.name || ' ' || w.events[1] || ' ' ||"
                  " w.rate_limit || ' ' || w.created_at AT TIME ZONE 'UTC'"
                  " FROM webhooks w JOIN projects p ON p.id = w.project_id"
                  " JOIN organizations o ON o.id = p.organization_id"),
            "Acme/shop/orders order.created 5 2023-11-14 22:13:20");
  EXPECT_EQ(value("SELECT t.name || ' ' || array_to_string(t.scopes, ',') || ' ' ||"
                  " tor.organization_id FROM tokens t JOIN token_organizations tor"
                  " ON tor.token_id = t.id"),
            "admin admin " + org->id.to_string());
  EXPECT_EQ(value("SELECT encode(digest, 'hex') FROM tokens"),
            hex_encode(std::string_view(reinterpret_cast<const char*>(token->digest.data()), 32)));
  // Neither the secret nor a header value appears in the row's bytes.
  EXPECT_EQ(value("SELECT position(convert_to('" + hook->secret.value() +
                  "', 'UTF8') IN secret_sealed) +"
                  " position(convert_to('header-secret', 'UTF8') IN headers_sealed)"
                  " FROM webhooks"),
            "0");
}

TEST_F(pg_catalog_store_test, a_commit_notifies_listeners_with_its_last_seq_at_commit_only) {
  auto store = open_store(key_);
  PGconn* listener = PQconnectdb(uri_.c_str());
  std::unique_ptr<PGconn, decltype(&PQfinish)> guard(listener, &PQfinish);
  ASSERT_EQ(PQstatus(listener), CONNECTION_OK);
  PQclear(PQexec(listener, "LISTEN hookd_changes"));

  auto org = make_org("Acme");
  catalog_change change;
  change.put(org);
  change.put(make_project(org->id, "shop"));
  ASSERT_TRUE(store->commit(change));

  // A failed change notifies nothing.
  catalog_change failing;
  failing.put(make_project(ids_.next(), "dangling"));  // no such organization
  ASSERT_FALSE(store->commit(failing));

  std::vector<std::string> payloads;
  // Both commits are over: their notifications (if any) are on their way already.
  for (int i = 0; i < 10; ++i) {
    pollfd p{PQsocket(listener), POLLIN, 0};
    ::poll(&p, 1, 50);
    PQconsumeInput(listener);
    while (PGnotify* n = PQnotifies(listener)) {
      payloads.emplace_back(n->extra);
      PQfreemem(n);
    }
  }
  ASSERT_EQ(payloads.size(), 1u);
  EXPECT_EQ(payloads[0], value("SELECT max(seq) FROM changes"));
}

TEST_F(pg_catalog_store_test,
       deleting_an_organization_takes_its_projects_webhooks_and_token_memberships) {
  auto store = open_store(key_);
  auto org = make_org("Leaving");
  auto stays = make_org("Staying");
  auto proj = make_project(org->id, "shop");
  auto hook = std::make_shared<webhook>();
  hook->id = ids_.next();
  hook->organization = org->id;
  hook->project = proj->id;
  hook->name = "h";
  hook->url = "https://x.example/";
  hook->events = {"*"};
  hook->secret = generate_webhook_secret();
  auto token = std::make_shared<api_token>();
  token->id = ids_.next();
  token->name = "both";
  token->organizations = {org->id, stays->id};
  token->scopes.add(scope::webhooks_read);
  token->digest = sha256("hkd_both");
  catalog_change setup;
  setup.put(org);
  setup.put(stays);
  setup.put(proj);
  setup.put(std::shared_ptr<const webhook>(hook));
  setup.put(std::shared_ptr<const api_token>(token));
  ASSERT_TRUE(store->commit(setup));

  // As the catalog plans it: the organization last. Its project is erased before its webhook:
  // foreign keys are checked at commit, so the order within the change does not matter to them.
  auto narrowed = std::make_shared<api_token>(*token);
  narrowed->organizations = {stays->id};
  catalog_change leave;
  leave.erase(proj);
  leave.erase(std::shared_ptr<const webhook>(hook));
  leave.put(std::shared_ptr<const api_token>(narrowed));
  leave.erase(org);
  auto r = store->commit(leave);
  ASSERT_TRUE(r) << r.error().detail;

  loaded got;
  ASSERT_TRUE(store->load(got.sink(), 1));
  EXPECT_EQ(got.organizations.size(), 1u);
  EXPECT_TRUE(got.projects.empty());
  EXPECT_TRUE(got.webhooks.empty());
  ASSERT_EQ(got.tokens.size(), 1u);
  EXPECT_EQ(got.tokens.begin()->second->organizations, std::vector<object_id>{stays->id});
  EXPECT_EQ(value("SELECT count(*) FROM token_organizations"), "1");
}

TEST_F(pg_catalog_store_test, small_commits_one_after_another_each_land_once) {
  // The catalog's writer commits one change at a time on one blocking connection; the figure
  // printed is docs/cluster.md's ("Threads").
  auto store = open_store(key_);
  auto org = make_org("Acme");
  catalog_change first;
  first.put(org);
  ASSERT_TRUE(store->commit(first));
  constexpr int kCommits = 200;
  std::vector<double> micros;
  for (int i = 0; i < kCommits; ++i) {
    auto next = std::make_shared<organization>(*org);
    next->name = "Acme " + std::to_string(i);
    catalog_change c;
    c.put(std::shared_ptr<const organization>(next));
    const auto start = std::chrono::steady_clock::now();
    auto r = store->commit(c);
    micros.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
    ASSERT_TRUE(r) << r.error().detail;
  }
  std::sort(micros.begin(), micros.end());
  std::printf("one-op commit, blocking libpq over loopback: median %.0f us, p90 %.0f us\n",
              micros[micros.size() / 2], micros[micros.size() * 9 / 10]);
  EXPECT_EQ(value("SELECT count(*) FROM changes"), std::to_string(kCommits + 1));
  EXPECT_EQ(value("SELECT name FROM organizations"), "Acme " + std::to_string(kCommits - 1));
}

}  // namespace
}  // namespace hookd::pg
