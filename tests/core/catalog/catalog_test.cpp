#include "core/catalog/catalog.hpp"

#include "core/catalog/codec.hpp"
#include "core/delivery/signing.hpp"
#include "support/memory_storage.hpp"
#include "support/test_util.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace hookd {
namespace {

using testing::collector;
using testing::write_gate;

using ::testing::HasSubstr;
using ::testing::Not;

webhook_input hook_input(const std::string& name) {
  webhook_input in;
  in.name = name;
  in.url = "https://example.com/" + name;
  in.events = {"order.created"};
  return in;
}

void expect_same(const webhook& a, const webhook& b) {
  testing::expect_same_webhook(a, b);
}

void expect_same(const project& a, const project& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.organization, b.organization);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.slug, b.slug);
  EXPECT_EQ(a.description, b.description);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.app_icon_url, b.app_icon_url);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.updated_at, b.updated_at);
}

void expect_same(const organization& a, const organization& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.updated_at, b.updated_at);
}

void expect_same(const api_token& a, const api_token& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.organizations, b.organizations);
  EXPECT_EQ(a.scopes, b.scopes);
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_EQ(a.created_at, b.created_at);
}

template <class T>
void expect_same_lists(const std::vector<std::shared_ptr<const T>>& a,
                       const std::vector<std::shared_ptr<const T>>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) expect_same(*a[i], *b[i]);
}

class CatalogTest : public ::testing::Test {
 protected:
  catalog_options options(std::size_t limit = 100) const {
    catalog_options o;
    o.max_webhooks_per_project = limit;
    o.master_key = key_;
    return o;
  }

  void open(std::size_t limit = 100) {
    cat_ = std::make_unique<catalog>(store_, options(limit));
    auto loaded = cat_->load();
    ASSERT_TRUE(loaded) << loaded.error().detail;
    cat_->start();
  }

  std::shared_ptr<const organization> make_org(const std::string& name = "Acme") {
    auto r = wait_for<std::shared_ptr<const organization>>(
        [&](auto done) { cat_->create_organization({name}, std::move(done)); });
    EXPECT_TRUE(r) << r.error().detail;
    return r ? *r : nullptr;
  }

  result<std::shared_ptr<const project>> try_project(const object_id& org,
                                                     const std::string& slug) {
    project_input in;
    in.name = "Project " + slug;
    in.slug = slug;
    return wait_for<std::shared_ptr<const project>>(
        [&](auto done) { cat_->create_project(org, std::move(in), std::move(done)); });
  }

  std::shared_ptr<const project> make_project(const object_id& org, const std::string& slug) {
    auto r = try_project(org, slug);
    EXPECT_TRUE(r) << r.error().detail;
    return r ? *r : nullptr;
  }

  result<std::shared_ptr<const webhook>> try_webhook(const object_id& org, const object_id& proj,
                                                     const std::string& name) {
    return wait_for<std::shared_ptr<const webhook>>(
        [&](auto done) { cat_->create_webhook(org, proj, hook_input(name), std::move(done)); });
  }

  std::shared_ptr<const webhook> make_webhook(const project& p, const std::string& name) {
    auto r = try_webhook(p.organization, p.id, name);
    EXPECT_TRUE(r) << r.error().detail;
    return r ? *r : nullptr;
  }

  result<std::shared_ptr<const webhook>> patch(const webhook& w, webhook_patch p) {
    return wait_for<std::shared_ptr<const webhook>>([&](auto done) {
      cat_->update_webhook(w.organization, w.project, w.id, std::move(p), std::move(done));
    });
  }

  result<void> remove(const object_id& org, const object_id& proj, const object_id& id) {
    return wait_for<void>([&](auto done) { cat_->delete_webhook(org, proj, id, std::move(done)); });
  }

  result<created_token> make_token(token_input in, std::optional<std::string> secret = {}) {
    return wait_for<created_token>(
        [&](auto done) { cat_->create_token(std::move(in), std::move(secret), std::move(done)); });
  }

  // Holds the writer in a write (of a throwaway organization) until the returned gate is
  // released; everything submitted meanwhile forms the next group.
  std::shared_ptr<write_gate> hold_writer() {
    auto gate = std::make_shared<write_gate>();
    store_.set_before_write([gate] { gate->hold(); });
    cat_->create_organization({"held"}, [](result<std::shared_ptr<const organization>>) {});
    gate->wait_until_held();
    return gate;
  }

  aes256gcm_key key_ = aes256gcm_key::generate();
  testing::memory_storage store_;
  std::unique_ptr<catalog> cat_;
};

// ---------------------------------------------------------------- CRUD

TEST_F(CatalogTest, CreatesReadsUpdatesAndDeletesThroughTheWriter) {
  open();
  EXPECT_FALSE(cat_->has_admin_token());
  const auto org = make_org("Acme");
  ASSERT_TRUE(org);
  EXPECT_EQ(org->name, "Acme");
  EXPECT_EQ(org->created_at, org->updated_at);
  EXPECT_EQ(cat_->find_organization(org->id), org);
  ASSERT_EQ(cat_->list_organizations().size(), 1u);

  const auto proj = make_project(org->id, "shop");
  ASSERT_TRUE(proj);
  EXPECT_EQ(proj->organization, org->id);
  EXPECT_EQ(proj->status, project_status::draft);
  EXPECT_EQ(cat_->find_project(proj->id), proj);
  ASSERT_EQ(cat_->list_projects(org->id).size(), 1u);

  const auto hook = make_webhook(*proj, "orders");
  ASSERT_TRUE(hook);
  EXPECT_EQ(hook->organization, org->id);
  EXPECT_EQ(hook->project, proj->id);
  EXPECT_EQ(hook->url, "https://example.com/orders");
  EXPECT_TRUE(hook->active);
  EXPECT_TRUE(hook->secret.value().starts_with("whsec_")) << hook->secret.value();
  EXPECT_EQ(hook->created_at, hook->updated_at);
  EXPECT_EQ(cat_->find_webhook(hook->id), hook);
  ASSERT_EQ(cat_->list_webhooks(proj->id)->size(), 1u);

  webhook_patch p;
  p.name = "orders-v2";
  p.active = false;
  auto patched = patch(*hook, p);
  ASSERT_TRUE(patched) << patched.error().detail;
  EXPECT_EQ((*patched)->name, "orders-v2");
  EXPECT_FALSE((*patched)->active);
  EXPECT_EQ((*patched)->url, hook->url);
  EXPECT_EQ((*patched)->secret, hook->secret);
  EXPECT_EQ((*patched)->created_at, hook->created_at);
  EXPECT_GT((*patched)->updated_at, hook->updated_at);
  EXPECT_EQ(cat_->find_webhook(hook->id)->name, "orders-v2");
  EXPECT_EQ(cat_->list_webhooks(proj->id)->at(0)->name, "orders-v2");

  const catalog_counts before = cat_->counts();
  EXPECT_EQ(before.organizations, 1u);
  EXPECT_EQ(before.projects, 1u);
  EXPECT_EQ(before.webhooks, 1u);

  ASSERT_TRUE(remove(org->id, proj->id, hook->id));
  EXPECT_EQ(cat_->find_webhook(hook->id), nullptr);
  EXPECT_TRUE(cat_->list_webhooks(proj->id)->empty());
  EXPECT_EQ(cat_->counts().webhooks, 0u);
  auto again = remove(org->id, proj->id, hook->id);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind, error_kind::not_found);
}

TEST_F(CatalogTest, WritesEntityAndIndexEntriesInOneBatch) {
  open();
  const std::size_t at_start = store_.batches().size();  // the master key's check record
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto hook = make_webhook(*proj, "orders");
  const auto batches = store_.batches();
  ASSERT_EQ(batches.size(), at_start + 3u);
  const write_batch& project_batch = batches[at_start + 1];
  ASSERT_EQ(project_batch.ops.size(), 2u);
  EXPECT_EQ(project_batch.ops[0].where, table::projects);
  EXPECT_EQ(project_batch.ops[1].where, table::index);
  EXPECT_EQ(project_batch.ops[1].key, project_slug_key(org->id, "shop"));
  EXPECT_EQ(project_batch.ops[1].value, std::string(proj->id.binary()));
  EXPECT_EQ(store_.records(table::index).count(project_webhook_key(proj->id, hook->id)), 1u);

  ASSERT_TRUE(remove(org->id, proj->id, hook->id));
  EXPECT_EQ(store_.records(table::webhooks).size(), 0u);
  EXPECT_EQ(store_.records(table::index).count(project_webhook_key(proj->id, hook->id)), 0u);
}

TEST_F(CatalogTest, ListsAreOldestFirst) {
  open();
  const auto a = make_org("First");
  const auto b = make_org("Second");
  const auto orgs = cat_->list_organizations();
  ASSERT_EQ(orgs.size(), 2u);
  EXPECT_EQ(orgs[0]->id, a->id);
  EXPECT_EQ(orgs[1]->id, b->id);
  const auto proj = make_project(a->id, "shop");
  std::vector<object_id> created;
  for (int i = 0; i < 5; ++i)
    created.push_back(make_webhook(*proj, "hook-" + std::to_string(i))->id);
  const auto list = cat_->list_webhooks(proj->id);
  ASSERT_EQ(list->size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ((*list)[i]->id, created[i]);
}

// ---------------------------------------------------------------- refusals

TEST_F(CatalogTest, ProjectSlugIsUniquePerOrganization) {
  open();
  const auto acme = make_org("Acme");
  const auto other = make_org("Other");
  ASSERT_TRUE(make_project(acme->id, "shop"));
  auto taken = try_project(acme->id, "shop");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().kind, error_kind::conflict);
  EXPECT_THAT(taken.error().detail, HasSubstr("\"shop\""));
  EXPECT_TRUE(try_project(other->id, "shop")) << "another organization may use the same slug";
  EXPECT_EQ(cat_->list_projects(acme->id).size(), 1u);
}

TEST_F(CatalogTest, ProjectOfUnknownOrganizationIsNotFound) {
  open();
  auto r = try_project(object_id::parse("65a0f1c2aabbccddee000001").value(), "shop");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, error_kind::not_found);
}

TEST_F(CatalogTest, WebhookOutsideItsProjectOrOrganizationIsNotFound) {
  open();
  const auto acme = make_org("Acme");
  const auto other = make_org("Other");
  const auto shop = make_project(acme->id, "shop");
  const auto blog = make_project(acme->id, "blog");
  const auto foreign = make_project(other->id, "foreign");
  const auto hook = make_webhook(*shop, "orders");

  // Create: unknown organization, project of another organization, unknown project.
  for (auto [org, proj] : {std::pair{object_id{}, shop->id}, std::pair{acme->id, foreign->id},
                           std::pair{acme->id, object_id{}}}) {
    auto r = try_webhook(org, proj, "x-hook");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, error_kind::not_found);
  }
  // Update and delete with the right id but the wrong project or organization.
  webhook_patch p;
  p.name = "renamed";
  auto wrong_project = wait_for<std::shared_ptr<const webhook>>(
      [&](auto done) { cat_->update_webhook(acme->id, blog->id, hook->id, p, std::move(done)); });
  ASSERT_FALSE(wrong_project);
  EXPECT_EQ(wrong_project.error().kind, error_kind::not_found);
  auto wrong_org = remove(other->id, shop->id, hook->id);
  ASSERT_FALSE(wrong_org);
  EXPECT_EQ(wrong_org.error().kind, error_kind::not_found);
  EXPECT_EQ(cat_->find_webhook(hook->id), hook) << "refused changes leave the webhook alone";
}

TEST_F(CatalogTest, WebhookLimitPerProject) {
  open(3);
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  std::vector<std::shared_ptr<const webhook>> hooks;
  for (int i = 0; i < 3; ++i) hooks.push_back(make_webhook(*proj, "hook-" + std::to_string(i)));
  auto fourth = try_webhook(org->id, proj->id, "hook-3");
  ASSERT_FALSE(fourth);
  EXPECT_EQ(fourth.error().kind, error_kind::limit_reached);
  EXPECT_EQ(cat_->list_webhooks(proj->id)->size(), 3u);
  // Another project has its own count; a delete frees a place.
  const auto other = make_project(org->id, "other");
  EXPECT_TRUE(try_webhook(org->id, other->id, "hook-x"));
  ASSERT_TRUE(remove(org->id, proj->id, hooks[0]->id));
  EXPECT_TRUE(try_webhook(org->id, proj->id, "hook-4"));
}

TEST_F(CatalogTest, ConcurrentCreatesInOneGroupRespectTheLimitExactly) {
  constexpr std::size_t kLimit = 5, kCreates = 24;
  open(kLimit);
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");

  const auto gate = hold_writer();
  const std::uint64_t groups_before = cat_->stats().groups;
  collector<std::shared_ptr<const webhook>> results(kCreates);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t i = t; i < kCreates; i += 4) {
        cat_->create_webhook(org->id, proj->id, hook_input("hook-" + std::to_string(i)),
                             results.sink(i));
      }
    });
  }
  for (auto& th : threads) th.join();
  gate->release();
  const auto outcomes = results.wait();

  std::size_t ok = 0, limited = 0;
  for (const auto& r : outcomes) {
    if (r) {
      ++ok;
    } else if (r.error().kind == error_kind::limit_reached) {
      ++limited;
    }
  }
  EXPECT_EQ(ok, kLimit);
  EXPECT_EQ(limited, kCreates - kLimit);
  EXPECT_EQ(cat_->list_webhooks(proj->id)->size(), kLimit);
  // The held write is one group, and all the creates formed the next one.
  EXPECT_EQ(cat_->stats().groups, groups_before + 2);
  EXPECT_EQ(store_.records(table::webhooks).size(), kLimit);
}

TEST_F(CatalogTest, RefusedMutationDoesNotPoisonItsGroup) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const commit_stats before = cat_->stats();

  const auto gate = hold_writer();
  collector<std::shared_ptr<const webhook>> hooks(3);
  collector<std::shared_ptr<const project>> projects(2);
  cat_->create_webhook(org->id, proj->id, hook_input("first"), hooks.sink(0));
  project_input dup;
  dup.name = "Shop again";
  dup.slug = "shop";
  cat_->create_project(org->id, dup, projects.sink(0));                           // conflict
  cat_->create_webhook(org->id, object_id{}, hook_input("lost"), hooks.sink(1));  // not found
  project_input fresh;
  fresh.name = "Blog";
  fresh.slug = "blog";
  cat_->create_project(org->id, fresh, projects.sink(1));
  cat_->create_webhook(org->id, proj->id, hook_input("second"), hooks.sink(2));
  gate->release();

  const auto h = hooks.wait();
  const auto p = projects.wait();
  ASSERT_TRUE(h[0]);
  ASSERT_FALSE(h[1]);
  EXPECT_EQ(h[1].error().kind, error_kind::not_found);
  ASSERT_TRUE(h[2]);
  ASSERT_FALSE(p[0]);
  EXPECT_EQ(p[0].error().kind, error_kind::conflict);
  ASSERT_TRUE(p[1]);
  EXPECT_EQ(cat_->list_webhooks(proj->id)->size(), 2u);
  EXPECT_EQ(cat_->list_projects(org->id).size(), 2u);

  const commit_stats after = cat_->stats();
  EXPECT_EQ(after.groups - before.groups, 2u);  // the held one, then the five together
  EXPECT_EQ(after.rejected - before.rejected, 2u);
  EXPECT_EQ(after.mutations - before.mutations, 4u);  // held org + 3 accepted
}

TEST_F(CatalogTest, MutationsOfOneGroupSeeEachOther) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto a = make_webhook(*proj, "alpha");
  const auto b = make_webhook(*proj, "bravo");
  const auto created = make_token(token_input{"ci", {org->id}, scope_set{}});
  ASSERT_TRUE(created);

  const auto gate = hold_writer();
  collector<std::shared_ptr<const project>> projects(2);
  collector<std::shared_ptr<const webhook>> patches(3);
  collector<void> deletes(3);
  project_input same;
  same.name = "Same slug";
  same.slug = "twin";
  cat_->create_project(org->id, same, projects.sink(0));
  cat_->create_project(org->id, same, projects.sink(1));  // sees the first one's slug
  webhook_patch rename;
  rename.name = "alpha-2";
  webhook_patch move;
  move.url = "https://example.com/moved";
  cat_->update_webhook(org->id, proj->id, a->id, rename, patches.sink(0));
  cat_->update_webhook(org->id, proj->id, a->id, move, patches.sink(1));  // keeps the rename
  cat_->delete_webhook(org->id, proj->id, b->id, deletes.sink(0));
  cat_->update_webhook(org->id, proj->id, b->id, rename, patches.sink(2));  // already deleted
  cat_->delete_token(created->token->id, deletes.sink(1));
  cat_->delete_token(created->token->id, deletes.sink(2));  // already deleted
  gate->release();

  const auto p = projects.wait();
  const auto w = patches.wait();
  const auto d = deletes.wait();
  ASSERT_TRUE(w[0]);
  EXPECT_TRUE(p[0]);
  ASSERT_FALSE(p[1]);
  EXPECT_EQ(p[1].error().kind, error_kind::conflict);
  ASSERT_TRUE(w[1]);
  EXPECT_EQ((*w[1])->name, "alpha-2");
  EXPECT_EQ((*w[1])->url, "https://example.com/moved");
  EXPECT_GT((*w[1])->updated_at, (*w[0])->updated_at);
  ASSERT_FALSE(w[2]);
  EXPECT_EQ(w[2].error().kind, error_kind::not_found);
  EXPECT_TRUE(d[0]);
  EXPECT_TRUE(d[1]);
  ASSERT_FALSE(d[2]);
  EXPECT_EQ(d[2].error().kind, error_kind::not_found);

  const auto list = cat_->list_webhooks(proj->id);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0]->url, "https://example.com/moved");
  EXPECT_EQ((*list)[0]->name, "alpha-2");
  EXPECT_EQ(cat_->find_token(created->token->id), nullptr);
}

// ---------------------------------------------------------------- storage failure

TEST_F(CatalogTest, StorageFailurePublishesNothing) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto hook = make_webhook(*proj, "orders");
  const catalog_counts counts = cat_->counts();
  const std::size_t stored = store_.records(table::webhooks).size();

  store_.fail_next_write();
  auto created = try_webhook(org->id, proj->id, "lost");
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().kind, error_kind::storage_failure);
  EXPECT_EQ(cat_->list_webhooks(proj->id)->size(), 1u);
  EXPECT_EQ(cat_->counts().webhooks, counts.webhooks);
  EXPECT_EQ(store_.records(table::webhooks).size(), stored);

  store_.fail_next_write();
  webhook_patch p;
  p.name = "renamed";
  auto patched = patch(*hook, p);
  ASSERT_FALSE(patched);
  EXPECT_EQ(patched.error().kind, error_kind::storage_failure);
  EXPECT_EQ(cat_->find_webhook(hook->id), hook);
  EXPECT_EQ(cat_->list_webhooks(proj->id)->at(0), hook);

  store_.fail_next_write();
  auto removed = remove(org->id, proj->id, hook->id);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().kind, error_kind::storage_failure);
  EXPECT_EQ(cat_->find_webhook(hook->id), hook);

  store_.fail_next_write();
  project_input in;
  in.name = "Blog";
  in.slug = "blog";
  auto blog = wait_for<std::shared_ptr<const project>>(
      [&](auto done) { cat_->create_project(org->id, in, std::move(done)); });
  ASSERT_FALSE(blog);
  EXPECT_TRUE(cat_->list_projects(org->id).size() == 1u);
  // The failed create did not take the slug.
  EXPECT_TRUE(try_project(org->id, "blog"));
  // And the failed webhook create did not take a place against the limit: normal service again.
  EXPECT_TRUE(try_webhook(org->id, proj->id, "after"));
  EXPECT_EQ(cat_->stats().failed, 4u);
}

TEST_F(CatalogTest, FailedGroupFailsEveryAcceptedMutationAndForgetsItsOverlay) {
  open(2);
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const commit_stats before = cat_->stats();

  const auto gate = hold_writer();
  collector<std::shared_ptr<const webhook>> results(3);
  collector<std::shared_ptr<const project>> projects(1);
  cat_->create_webhook(org->id, proj->id, hook_input("one"), results.sink(0));
  cat_->create_webhook(org->id, proj->id, hook_input("two"), results.sink(1));
  cat_->create_webhook(org->id, proj->id, hook_input("three"), results.sink(2));  // over limit
  project_input in;
  in.name = "Blog";
  in.slug = "blog";
  cat_->create_project(org->id, in, projects.sink(0));
  // The held write goes through; the write of the group queued behind it fails.
  store_.set_before_write([this] { store_.fail_next_write(); });
  gate->release();
  const auto r = results.wait();
  const auto p = projects.wait();
  store_.set_before_write(nullptr);

  ASSERT_FALSE(r[0]);
  EXPECT_EQ(r[0].error().kind, error_kind::storage_failure);
  ASSERT_FALSE(r[1]);
  EXPECT_EQ(r[1].error().kind, error_kind::storage_failure);
  ASSERT_FALSE(r[2]);
  EXPECT_EQ(r[2].error().kind, error_kind::limit_reached) << "refusals keep their own reason";
  ASSERT_FALSE(p[0]);
  EXPECT_EQ(p[0].error().kind, error_kind::storage_failure);
  const commit_stats after = cat_->stats();
  EXPECT_EQ(after.failed - before.failed, 3u);
  EXPECT_EQ(after.rejected - before.rejected, 1u);
  EXPECT_TRUE(cat_->list_webhooks(proj->id)->empty());
  EXPECT_EQ(cat_->list_projects(org->id).size(), 1u);

  // Nothing of the failed group stays behind: both places and the slug are free.
  EXPECT_TRUE(try_webhook(org->id, proj->id, "one"));
  EXPECT_TRUE(try_webhook(org->id, proj->id, "two"));
  EXPECT_TRUE(try_project(org->id, "blog"));
}

// ---------------------------------------------------------------- patch semantics

TEST_F(CatalogTest, IdenticalPatchKeepsUpdatedAtAndWritesNothing) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto hook = make_webhook(*proj, "orders");
  const auto batches = store_.stats().batches;

  webhook_patch same;
  same.name = hook->name;
  same.url = hook->url;
  same.events = hook->events;
  same.active = hook->active;
  same.headers = hook->headers;
  auto r = patch(*hook, same);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, hook);
  EXPECT_EQ((*r)->updated_at, hook->updated_at);
  auto empty = patch(*hook, webhook_patch{});
  ASSERT_TRUE(empty);
  EXPECT_EQ((*empty)->updated_at, hook->updated_at);
  EXPECT_EQ(store_.stats().batches, batches);
  EXPECT_EQ(cat_->find_webhook(hook->id), hook);
}

TEST_F(CatalogTest, ReactivatingClearsDisabledReason) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto hook = make_webhook(*proj, "orders");
  webhook_patch off;
  off.active = false;
  const auto disabled = patch(*hook, off);
  ASSERT_TRUE(disabled);
  webhook_patch on;
  on.active = true;
  const auto enabled = patch(**disabled, on);
  ASSERT_TRUE(enabled);
  EXPECT_TRUE((*enabled)->active);
  EXPECT_FALSE((*enabled)->disabled_reason);
  EXPECT_FALSE((*enabled)->disabled_at);
}

// ---------------------------------------------------------------- tokens

TEST_F(CatalogTest, TokenIsFoundByDigestUntilDeleted) {
  open();
  const auto org = make_org();
  token_input in{"ci", {org->id}, scope_set{}};
  in.scopes.add(scope::webhooks_read);
  auto created = make_token(in);
  ASSERT_TRUE(created) << created.error().detail;
  EXPECT_TRUE(created->secret.starts_with("hkd_")) << created->secret;
  EXPECT_EQ(created->token->digest, sha256(created->secret));
  EXPECT_EQ(cat_->find_token_by_digest(sha256(created->secret)), created->token);
  EXPECT_EQ(cat_->find_token(created->token->id), created->token);
  EXPECT_EQ(cat_->list_tokens().size(), 1u);
  EXPECT_FALSE(cat_->has_admin_token());

  auto deleted =
      wait_for<void>([&](auto done) { cat_->delete_token(created->token->id, std::move(done)); });
  ASSERT_TRUE(deleted);
  EXPECT_EQ(cat_->find_token_by_digest(sha256(created->secret)), nullptr);
  EXPECT_EQ(cat_->find_token(created->token->id), nullptr);
  EXPECT_TRUE(cat_->list_tokens().empty());
  auto again =
      wait_for<void>([&](auto done) { cat_->delete_token(created->token->id, std::move(done)); });
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind, error_kind::not_found);
}

TEST_F(CatalogTest, TokenOrganizationsMustExist) {
  open();
  const auto org = make_org();
  const object_id missing = object_id::parse("65a0f1c2aabbccddee000001").value();
  auto r = make_token(token_input{"ci", {org->id, missing}, scope_set{}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, error_kind::validation);
  ASSERT_EQ(r.error().errors.size(), 1u);
  EXPECT_EQ(r.error().errors[0].field, "organizations[1]");
  EXPECT_TRUE(cat_->list_tokens().empty());
}

TEST_F(CatalogTest, ChosenSecretBootstrapsAdminAndCannotBeReused) {
  open();
  token_input in{"admin", {}, scope_set{}};
  in.scopes.add(scope::admin);
  auto r = make_token(in, std::string("my-admin-secret"));
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->secret, "my-admin-secret");
  EXPECT_TRUE(cat_->has_admin_token());
  EXPECT_EQ(cat_->find_token_by_digest(sha256("my-admin-secret")), r->token);
  auto dup = make_token(in, std::string("my-admin-secret"));
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().kind, error_kind::conflict);
  ASSERT_TRUE(
      wait_for<void>([&](auto done) { cat_->delete_token(r->token->id, std::move(done)); }));
  EXPECT_FALSE(cat_->has_admin_token());
}

// ---------------------------------------------------------------- deleting projects and
// organizations

// The raw index entries of one kind ("ps", "pw" or "td"), as the store holds them.
std::set<std::string> index_keys(const testing::memory_storage& store, std::string_view prefix) {
  std::set<std::string> out;
  for (const auto& [key, value] : store.records(table::index)) {
    if (key.starts_with(prefix)) out.insert(key);
  }
  return out;
}

TEST_F(CatalogTest, DeletingAProjectTakesItsWebhooksSlugAndIndexEntriesInOneBatch) {
  open();
  const auto org = make_org();
  const auto shop = make_project(org->id, "shop");
  const auto blog = make_project(org->id, "blog");
  std::vector<std::shared_ptr<const webhook>> hooks;
  for (int i = 0; i < 3; ++i) hooks.push_back(make_webhook(*shop, "hook-" + std::to_string(i)));
  const auto kept = make_webhook(*blog, "kept");
  const std::size_t batches = store_.batches().size();

  ASSERT_TRUE(
      wait_for<void>([&](auto done) { cat_->delete_project(org->id, shop->id, std::move(done)); }));
  ASSERT_EQ(store_.batches().size(), batches + 1);
  EXPECT_EQ(store_.batches().back().ops.size(), 2u + 2 * hooks.size());

  EXPECT_EQ(cat_->find_project(shop->id), nullptr);
  ASSERT_EQ(cat_->list_projects(org->id).size(), 1u);
  EXPECT_EQ(cat_->list_projects(org->id)[0], blog);
  EXPECT_TRUE(cat_->list_webhooks(shop->id)->empty());
  for (const auto& h : hooks) EXPECT_EQ(cat_->find_webhook(h->id), nullptr);
  EXPECT_EQ(cat_->find_webhook(kept->id), kept);
  const catalog_counts counts = cat_->counts();
  EXPECT_EQ(counts.projects, 1u);
  EXPECT_EQ(counts.webhooks, 1u);

  // In storage: only the other project's records and entries are left.
  EXPECT_FALSE(store_.records(table::projects).contains(std::string(shop->id.binary())));
  ASSERT_EQ(store_.records(table::webhooks).size(), 1u);
  EXPECT_TRUE(store_.records(table::webhooks).contains(std::string(kept->id.binary())));
  EXPECT_EQ(index_keys(store_, kProjectSlugPrefix),
            std::set<std::string>{project_slug_key(org->id, "blog")});
  EXPECT_EQ(index_keys(store_, kProjectWebhookPrefix),
            std::set<std::string>{project_webhook_key(blog->id, kept->id)});

  // Gone for every later write; the slug is free for a new project.
  auto again =
      wait_for<void>([&](auto done) { cat_->delete_project(org->id, shop->id, std::move(done)); });
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind, error_kind::not_found);
  auto orphan = try_webhook(org->id, shop->id, "orphan");
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.error().kind, error_kind::not_found);
  webhook_patch rename;
  rename.name = "renamed";
  auto patched = patch(*hooks[0], rename);
  ASSERT_FALSE(patched);
  EXPECT_EQ(patched.error().kind, error_kind::not_found);
  const auto reborn = make_project(org->id, "shop");
  ASSERT_TRUE(reborn);
  EXPECT_NE(reborn->id, shop->id);
  make_webhook(*reborn, "new");
  cat_->stop();

  // A reload checks the index against the records and shows the same.
  catalog reloaded(store_, options());
  auto loaded = reloaded.load();
  ASSERT_TRUE(loaded) << loaded.error().detail;
  EXPECT_EQ(loaded->projects, 2u);
  EXPECT_EQ(loaded->webhooks, 2u);
  EXPECT_EQ(reloaded.find_project(shop->id), nullptr);
  for (const auto& h : hooks) EXPECT_EQ(reloaded.find_webhook(h->id), nullptr);
  expect_same_lists(reloaded.list_projects(org->id), cat_->list_projects(org->id));
  for (const auto& p : cat_->list_projects(org->id)) {
    expect_same_lists(*reloaded.list_webhooks(p->id), *cat_->list_webhooks(p->id));
  }
}

TEST_F(CatalogTest, DeletingAnUnknownOrForeignProjectOrOrganizationIsNotFound) {
  open();
  const auto acme = make_org("Acme");
  const auto other = make_org("Other");
  const auto shop = make_project(acme->id, "shop");
  const object_id unknown = object_id::parse("65a0f1c2aabbccddee000001").value();
  const std::size_t batches = store_.batches().size();
  const commit_stats before = cat_->stats();

  for (auto [org, proj] : {std::pair{other->id, shop->id}, std::pair{acme->id, unknown},
                           std::pair{unknown, shop->id}}) {
    auto r = wait_for<void>([&](auto done) { cat_->delete_project(org, proj, std::move(done)); });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, error_kind::not_found);
  }
  auto r = wait_for<std::vector<object_id>>(
      [&](auto done) { cat_->delete_organization(unknown, std::move(done)); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, error_kind::not_found);

  EXPECT_EQ(cat_->stats().rejected - before.rejected, 4u);
  EXPECT_EQ(store_.batches().size(), batches);
  EXPECT_EQ(cat_->find_project(shop->id), shop);
  EXPECT_EQ(cat_->list_organizations().size(), 2u);
}

TEST_F(CatalogTest, FailedDeletePublishesNothing) {
  open();
  const auto org = make_org();
  const auto shop = make_project(org->id, "shop");
  const auto hook = make_webhook(*shop, "orders");

  store_.fail_next_write();
  auto project_gone =
      wait_for<void>([&](auto done) { cat_->delete_project(org->id, shop->id, std::move(done)); });
  ASSERT_FALSE(project_gone);
  EXPECT_EQ(project_gone.error().kind, error_kind::storage_failure);
  store_.fail_next_write();
  auto org_gone = wait_for<std::vector<object_id>>(
      [&](auto done) { cat_->delete_organization(org->id, std::move(done)); });
  ASSERT_FALSE(org_gone);
  EXPECT_EQ(org_gone.error().kind, error_kind::storage_failure);

  EXPECT_EQ(cat_->find_organization(org->id), org);
  EXPECT_EQ(cat_->find_project(shop->id), shop);
  EXPECT_EQ(cat_->find_webhook(hook->id), hook);
  const catalog_counts counts = cat_->counts();
  EXPECT_EQ(counts.organizations, 1u);
  EXPECT_EQ(counts.projects, 1u);
  EXPECT_EQ(counts.webhooks, 1u);
  // The slug is still taken: the failed groups' overlay is gone.
  auto taken = try_project(org->id, "shop");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().kind, error_kind::conflict);
}

TEST_F(CatalogTest, DeletingAnOrganizationTakesItsProjectsAndRewritesTokens) {
  open();
  const auto acme = make_org("Acme");
  const auto other = make_org("Other");
  const auto shop = make_project(acme->id, "shop");
  const auto blog = make_project(acme->id, "blog");
  const auto foreign = make_project(other->id, "shop");
  std::vector<std::shared_ptr<const webhook>> hooks{
      make_webhook(*shop, "a"), make_webhook(*shop, "b"), make_webhook(*blog, "c")};
  const auto kept = make_webhook(*foreign, "kept");
  token_input both_in{"both", {acme->id, other->id}, scope_set{}};
  both_in.scopes.add(scope::webhooks_read);
  const auto both = make_token(both_in);
  const auto acme_only = make_token(token_input{"acme only", {acme->id}, both_in.scopes});
  const auto other_only = make_token(token_input{"other only", {other->id}, both_in.scopes});
  ASSERT_TRUE(both && acme_only && other_only);

  auto deleted = wait_for<std::vector<object_id>>(
      [&](auto done) { cat_->delete_organization(acme->id, std::move(done)); });
  ASSERT_TRUE(deleted) << deleted.error().detail;
  EXPECT_EQ(*deleted, (std::vector<object_id>{shop->id, blog->id}));

  EXPECT_EQ(cat_->find_organization(acme->id), nullptr);
  ASSERT_EQ(cat_->list_organizations().size(), 1u);
  EXPECT_EQ(cat_->list_organizations()[0], other);
  EXPECT_TRUE(cat_->list_projects(acme->id).empty());
  EXPECT_EQ(cat_->find_project(shop->id), nullptr);
  EXPECT_EQ(cat_->find_project(blog->id), nullptr);
  for (const auto& h : hooks) EXPECT_EQ(cat_->find_webhook(h->id), nullptr);
  EXPECT_EQ(cat_->find_project(foreign->id), foreign);
  EXPECT_EQ(cat_->find_webhook(kept->id), kept);
  const catalog_counts counts = cat_->counts();
  EXPECT_EQ(counts.organizations, 1u);
  EXPECT_EQ(counts.projects, 1u);
  EXPECT_EQ(counts.webhooks, 1u);
  EXPECT_EQ(counts.tokens, 3u);

  // Tokens keep their other organizations; one left with none stays, reaching nothing.
  const auto organizations_of = [&](const created_token& t) {
    const auto by_digest = cat_->find_token_by_digest(sha256(t.secret));
    EXPECT_EQ(by_digest, cat_->find_token(t.token->id));
    return by_digest ? by_digest->organizations : std::vector<object_id>{object_id{}};
  };
  EXPECT_EQ(organizations_of(*both), std::vector<object_id>{other->id});
  EXPECT_TRUE(organizations_of(*acme_only).empty());
  EXPECT_FALSE(cat_->find_token(acme_only->token->id)->can_access(acme->id));
  EXPECT_EQ(cat_->find_token(other_only->token->id), other_only->token) << "not rewritten";
  for (const auto& t : cat_->list_tokens()) EXPECT_EQ(t, cat_->find_token(t->id));

  // In storage: the organization, its projects, their webhooks and entries are gone, and the
  // token records say what memory says.
  EXPECT_FALSE(store_.records(table::organizations).contains(std::string(acme->id.binary())));
  EXPECT_EQ(store_.records(table::projects).size(), 1u);
  EXPECT_EQ(store_.records(table::webhooks).size(), 1u);
  EXPECT_EQ(index_keys(store_, kProjectSlugPrefix),
            std::set<std::string>{project_slug_key(other->id, "shop")});
  EXPECT_EQ(index_keys(store_, kProjectWebhookPrefix),
            std::set<std::string>{project_webhook_key(foreign->id, kept->id)});
  EXPECT_EQ(index_keys(store_, kTokenDigestPrefix).size(), 3u);
  const std::string both_key(both->token->id.binary());
  auto stored = decode_token(both_key, store_.records(table::tokens).at(both_key));
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->organizations, std::vector<object_id>{other->id});

  // Nothing can be made under it again.
  auto project = try_project(acme->id, "again");
  ASSERT_FALSE(project);
  EXPECT_EQ(project.error().kind, error_kind::not_found);
  auto token = make_token(token_input{"late", {acme->id}, both_in.scopes});
  ASSERT_FALSE(token);
  EXPECT_EQ(token.error().kind, error_kind::validation);
  cat_->stop();

  catalog reloaded(store_, options());
  auto loaded = reloaded.load();
  ASSERT_TRUE(loaded) << loaded.error().detail;
  EXPECT_EQ(loaded->organizations, 1u);
  EXPECT_EQ(loaded->projects, 1u);
  EXPECT_EQ(loaded->webhooks, 1u);
  EXPECT_EQ(loaded->tokens, 3u);
  expect_same_lists(reloaded.list_organizations(), cat_->list_organizations());
  expect_same_lists(reloaded.list_tokens(), cat_->list_tokens());
  EXPECT_TRUE(reloaded.list_projects(acme->id).empty());
  EXPECT_EQ(reloaded.find_token_by_digest(sha256(both->secret))->organizations,
            std::vector<object_id>{other->id});
}

// Deletes plan against the group's overlay like every other write: what an earlier mutation of
// the group created goes with them, and what a later one addresses is gone already.
TEST_F(CatalogTest, DeletesSeeTheRestOfTheirGroup) {
  open();
  const auto org = make_org();
  const auto shop = make_project(org->id, "shop");
  const auto blog = make_project(org->id, "blog");
  const auto hook = make_webhook(*shop, "orders");
  token_input in{"ci", {org->id}, scope_set{}};
  in.scopes.add(scope::events_write);
  const auto token = make_token(in);
  ASSERT_TRUE(token);
  const commit_stats before = cat_->stats();

  const auto gate = hold_writer();
  collector<std::shared_ptr<const webhook>> hooks(3);
  collector<void> project_deletes(2);
  collector<std::shared_ptr<const project>> projects(2);
  collector<created_token> tokens(2);
  collector<std::vector<object_id>> org_deletes(2);
  cat_->create_webhook(org->id, shop->id, hook_input("early"), hooks.sink(0));  // goes with it
  cat_->delete_project(org->id, shop->id, project_deletes.sink(0));
  cat_->create_webhook(org->id, shop->id, hook_input("late"), hooks.sink(1));  // not_found
  webhook_patch rename;
  rename.name = "renamed";
  cat_->update_webhook(org->id, shop->id, hook->id, rename, hooks.sink(2));  // not_found
  cat_->delete_project(org->id, shop->id, project_deletes.sink(1));          // not_found
  project_input again;
  again.name = "Shop again";
  again.slug = "shop";
  cat_->create_project(org->id, again, projects.sink(0));  // the slug is free again
  cat_->create_token(in, std::nullopt, tokens.sink(0));    // rewritten by the delete below
  cat_->delete_organization(org->id, org_deletes.sink(0));
  cat_->delete_organization(org->id, org_deletes.sink(1));  // not_found
  again.slug = "other";
  cat_->create_project(org->id, again, projects.sink(1));  // not_found
  cat_->create_token(in, std::nullopt, tokens.sink(1));    // validation
  gate->release();

  const auto h = hooks.wait();
  const auto pd = project_deletes.wait();
  const auto p = projects.wait();
  const auto t = tokens.wait();
  const auto od = org_deletes.wait();
  ASSERT_TRUE(h[0]);
  ASSERT_FALSE(h[1]);
  EXPECT_EQ(h[1].error().kind, error_kind::not_found);
  ASSERT_FALSE(h[2]);
  EXPECT_EQ(h[2].error().kind, error_kind::not_found);
  EXPECT_TRUE(pd[0]);
  ASSERT_FALSE(pd[1]);
  EXPECT_EQ(pd[1].error().kind, error_kind::not_found);
  ASSERT_TRUE(p[0]);
  ASSERT_FALSE(p[1]);
  EXPECT_EQ(p[1].error().kind, error_kind::not_found);
  ASSERT_TRUE(t[0]);
  ASSERT_FALSE(t[1]);
  EXPECT_EQ(t[1].error().kind, error_kind::validation);
  ASSERT_TRUE(od[0]);
  // The projects left when it ran: the one before the group and the one created in it.
  EXPECT_EQ(*od[0], (std::vector<object_id>{blog->id, (*p[0])->id}));
  ASSERT_FALSE(od[1]);
  EXPECT_EQ(od[1].error().kind, error_kind::not_found);
  EXPECT_EQ(cat_->stats().groups - before.groups, 2u);  // the held one, then all of these

  EXPECT_EQ(cat_->find_organization(org->id), nullptr);
  EXPECT_EQ(cat_->find_project((*p[0])->id), nullptr);
  EXPECT_EQ(cat_->find_webhook((*h[0])->id), nullptr);
  EXPECT_EQ(cat_->find_webhook(hook->id), nullptr);
  EXPECT_TRUE(cat_->find_token(token->token->id)->organizations.empty());
  EXPECT_TRUE(cat_->find_token_by_digest(sha256(t[0]->secret))->organizations.empty());
  const catalog_counts counts = cat_->counts();
  EXPECT_EQ(counts.organizations, 1u);  // the one hold_writer made
  EXPECT_EQ(counts.projects, 0u);
  EXPECT_EQ(counts.webhooks, 0u);
  EXPECT_EQ(counts.tokens, 2u);
  EXPECT_TRUE(store_.records(table::projects).empty());
  EXPECT_TRUE(store_.records(table::webhooks).empty());
  EXPECT_TRUE(index_keys(store_, kProjectSlugPrefix).empty());
  EXPECT_TRUE(index_keys(store_, kProjectWebhookPrefix).empty());
  cat_->stop();

  catalog reloaded(store_, options());
  auto loaded = reloaded.load();
  ASSERT_TRUE(loaded) << loaded.error().detail;
  EXPECT_EQ(loaded->projects, 0u);
  EXPECT_EQ(loaded->webhooks, 0u);
  expect_same_lists(reloaded.list_tokens(), cat_->list_tokens());
}

// ---------------------------------------------------------------- at rest

TEST_F(CatalogTest, StorageNeverShowsSecretsOrTokens) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto hook = make_webhook(*proj, "orders");
  webhook_patch p;
  p.name = "renamed";  // the secret is sealed again on every write
  ASSERT_TRUE(patch(*hook, p));
  token_input in{"ci", {org->id}, scope_set{}};
  in.scopes.add(scope::webhooks_read);
  const auto token = make_token(in);
  ASSERT_TRUE(token);

  const std::string dump = store_.dump();
  ASSERT_THAT(dump, HasSubstr("renamed"));  // the dump does hold the records
  const std::string secret_b64 = hook->secret.value().substr(std::string("whsec_").size());
  EXPECT_THAT(dump, Not(HasSubstr(hook->secret.value())));
  EXPECT_THAT(dump, Not(HasSubstr(secret_b64.substr(0, 16))));
  const auto raw_secret = base64_decode(secret_b64);
  ASSERT_TRUE(raw_secret);
  EXPECT_THAT(dump, Not(HasSubstr(*raw_secret)));
  EXPECT_THAT(dump, Not(HasSubstr(token->secret)));
  EXPECT_THAT(dump, Not(HasSubstr(token->secret.substr(4, 16))));
}

TEST_F(CatalogTest, StorageNeverShowsHeaderValues) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  webhook_input in = hook_input("orders");
  in.headers = {{"Authorization", "Bearer rcv-credential-7f3a"}};
  auto created = wait_for<std::shared_ptr<const webhook>>(
      [&](auto done) { cat_->create_webhook(org->id, proj->id, std::move(in), std::move(done)); });
  ASSERT_TRUE(created) << created.error().detail;
  EXPECT_EQ((*created)->headers.at(0).value, "Bearer rcv-credential-7f3a");
  webhook_patch p;
  p.headers = std::vector<header_entry>{{"X-Api-Key", "key-9c2e-patched"}};
  ASSERT_TRUE(patch(**created, p));

  const std::string dump = store_.dump();
  ASSERT_THAT(dump, HasSubstr("orders"));
  EXPECT_THAT(dump, Not(HasSubstr("rcv-credential-7f3a")));
  EXPECT_THAT(dump, Not(HasSubstr("key-9c2e-patched")));
}

// A new store is marked sealed at its first load, so the webhooks it gets later (sealed from
// the start) are never rewritten: a restart writes and compacts nothing.
TEST_F(CatalogTest, ANewStoreIsMarkedSealedAtOnceAndItsFirstRestartRewritesNothing) {
  open();
  EXPECT_TRUE(store_.records(table::meta).contains(std::string(kHeadersSealedKey)));
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  webhook_patch p;
  p.headers = std::vector<header_entry>{{"X-Api-Key", "key-41aa"}};
  const auto hook = make_webhook(*proj, "with-headers");
  ASSERT_TRUE(patch(*hook, p));
  const std::string record = store_.records(table::webhooks).at(std::string(hook->id.binary()));
  cat_->stop();
  cat_.reset();

  const std::size_t batches = store_.batches().size();
  open();
  EXPECT_EQ(store_.batches().size(), batches);
  EXPECT_EQ(store_.records(table::webhooks).at(std::string(hook->id.binary())), record);
  EXPECT_EQ(cat_->find_webhook(hook->id)->headers, p.headers);
}

// A store written before header values were sealed: the first load rewrites those webhooks
// sealed (once, marked in the meta table) and reads the values back unchanged.
TEST_F(CatalogTest, LoadSealsHeaderValuesWrittenInPlainText) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto plain_hook = make_webhook(*proj, "with-headers");
  const auto bare_hook = make_webhook(*proj, "without");
  cat_->stop();
  cat_.reset();
  // Rewrite the first record the way earlier versions stored it: headers in plain text.
  const std::string key(plain_hook->id.binary());
  boost::json::object old = boost::json::parse(store_.records(table::webhooks).at(key)).as_object();
  old["headers"] = boost::json::array{boost::json::array{"Authorization", "Bearer legacy-5d1b"}};
  store_.put_raw(table::webhooks, key, boost::json::serialize(old));
  store_.erase_raw(table::meta, std::string(kHeadersSealedKey));
  const std::string bare_before =
      store_.records(table::webhooks).at(std::string(bare_hook->id.binary()));
  ASSERT_THAT(store_.dump(), HasSubstr("legacy-5d1b"));

  open();
  const auto loaded = cat_->find_webhook(plain_hook->id);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->headers, (std::vector<header_entry>{{"Authorization", "Bearer legacy-5d1b"}}));
  EXPECT_THAT(store_.dump(), Not(HasSubstr("legacy-5d1b")));
  EXPECT_TRUE(store_.records(table::meta).contains(std::string(kHeadersSealedKey)));
  // Only webhooks with headers are rewritten.
  EXPECT_EQ(store_.records(table::webhooks).at(std::string(bare_hook->id.binary())), bare_before);

  // The next start finds the mark and writes nothing.
  cat_->stop();
  cat_.reset();
  const std::size_t batches = store_.batches().size();
  open();
  EXPECT_EQ(store_.batches().size(), batches);
  EXPECT_EQ(cat_->find_webhook(plain_hook->id)->headers, loaded->headers);
}

TEST_F(CatalogTest, LoadRebuildsIdenticalState) {
  open(10);
  const auto acme = make_org("Acme");
  const auto other = make_org("Other");
  const auto shop = make_project(acme->id, "shop");
  const auto blog = make_project(acme->id, "blog");
  make_project(other->id, "shop");
  std::vector<std::shared_ptr<const webhook>> hooks;
  for (int i = 0; i < 4; ++i) hooks.push_back(make_webhook(*shop, "hook-" + std::to_string(i)));
  make_webhook(*blog, "blog-hook");
  webhook_patch p;
  p.headers = std::vector<header_entry>{{"X-Team", "payments"}};
  p.events = std::vector<std::string>{"*"};
  ASSERT_TRUE(patch(*hooks[1], p));
  ASSERT_TRUE(remove(acme->id, shop->id, hooks[2]->id));
  token_input admin{"admin", {}, scope_set{}};
  admin.scopes.add(scope::admin);
  ASSERT_TRUE(make_token(admin));
  token_input ci{"ci", {acme->id, other->id}, scope_set{}};
  ci.scopes.add(scope::events_write);
  const auto ci_token = make_token(ci);
  ASSERT_TRUE(ci_token);
  const auto gone = make_token(ci);
  ASSERT_TRUE(
      wait_for<void>([&](auto done) { cat_->delete_token(gone->token->id, std::move(done)); }));
  cat_->stop();

  catalog reloaded(store_, options(10));
  auto counts = reloaded.load();
  ASSERT_TRUE(counts) << counts.error().detail;
  EXPECT_EQ(counts->organizations, 2u);
  EXPECT_EQ(counts->projects, 3u);
  EXPECT_EQ(counts->tokens, 2u);
  EXPECT_EQ(counts->webhooks, 4u);
  const catalog_counts live = cat_->counts();
  const catalog_counts back = reloaded.counts();
  EXPECT_EQ(back.organizations, live.organizations);
  EXPECT_EQ(back.projects, live.projects);
  EXPECT_EQ(back.tokens, live.tokens);
  EXPECT_EQ(back.webhooks, live.webhooks);
  EXPECT_TRUE(reloaded.has_admin_token());

  expect_same_lists(reloaded.list_organizations(), cat_->list_organizations());
  for (const auto& org : cat_->list_organizations()) {
    expect_same_lists(reloaded.list_projects(org->id), cat_->list_projects(org->id));
    for (const auto& proj : cat_->list_projects(org->id)) {
      expect_same_lists(*reloaded.list_webhooks(proj->id), *cat_->list_webhooks(proj->id));
    }
  }
  expect_same_lists(reloaded.list_tokens(), cat_->list_tokens());
  EXPECT_EQ(reloaded.find_webhook(hooks[2]->id), nullptr);
  ASSERT_TRUE(reloaded.find_webhook(hooks[1]->id));
  expect_same(*reloaded.find_webhook(hooks[1]->id), *cat_->find_webhook(hooks[1]->id));
  EXPECT_EQ(reloaded.find_token_by_digest(sha256(ci_token->secret))->id, ci_token->token->id);
  EXPECT_EQ(reloaded.find_token_by_digest(sha256(gone->secret)), nullptr);

  // The reloaded catalog keeps enforcing what the old one did.
  reloaded.start();
  project_input in;
  in.name = "Shop";
  in.slug = "shop";
  auto dup = wait_for<std::shared_ptr<const project>>(
      [&](auto done) { reloaded.create_project(acme->id, in, std::move(done)); });
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().kind, error_kind::conflict);
}

// Thousands of webhooks share the id index's 64 shards, so its tables fill up, grow and see
// deletions in the middle of long probe runs: every live webhook stays findable with its current
// version, and no deleted one comes back, before and after a reload.
TEST_F(CatalogTest, IdIndexKeepsEveryWebhookThroughManyCreatesPatchesAndDeletes) {
  constexpr int kHooks = 3000;
  open(kHooks);
  const auto org = make_org();
  const auto proj = make_project(org->id, "many");
  std::vector<std::shared_ptr<const webhook>> hooks;
  for (int i = 0; i < kHooks; ++i) {
    hooks.push_back(make_webhook(*proj, "hook-" + std::to_string(i)));
    ASSERT_TRUE(hooks.back());
  }
  std::mt19937 rng(42);
  std::vector<std::size_t> order(hooks.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<bool> deleted(hooks.size(), false);
  for (std::size_t n = 0; n < order.size(); ++n) {
    const std::size_t i = order[n];
    if (n % 3 == 0) {
      webhook_patch p;
      p.name = "patched-" + std::to_string(i);
      auto patched = patch(*hooks[i], p);
      ASSERT_TRUE(patched) << n << " " << patched.error().detail;
      hooks[i] = *patched;
    } else if (n % 3 == 1) {
      ASSERT_TRUE(remove(org->id, proj->id, hooks[i]->id));
      deleted[i] = true;
    }
  }
  const auto check = [&](const catalog& c) {
    for (std::size_t i = 0; i < hooks.size(); ++i) {
      const auto found = c.find_webhook(hooks[i]->id);
      if (deleted[i]) {
        EXPECT_EQ(found, nullptr) << i;
      } else {
        ASSERT_TRUE(found) << i;
        expect_same(*found, *hooks[i]);
      }
    }
  };
  check(*cat_);
  cat_->stop();
  catalog reloaded(store_, options(kHooks));
  ASSERT_TRUE(reloaded.load());
  check(reloaded);
  EXPECT_EQ(reloaded.list_webhooks(proj->id)->size(),
            static_cast<std::size_t>(std::count(deleted.begin(), deleted.end(), false)));
}

TEST_F(CatalogTest, LoadWithWrongMasterKeyFailsNamingTheRecord) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto hook = make_webhook(*proj, "orders");
  cat_->stop();

  catalog_options wrong = options();
  wrong.master_key = aes256gcm_key::generate();
  {
    // The first load wrote the master key's check record: that is what refuses the key.
    catalog reloaded(store_, wrong);
    auto r = reloaded.load();
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().detail, HasSubstr(std::string(kMasterKeyCheckKey)));
    EXPECT_THAT(r.error().detail, HasSubstr("does not open with the master key"));
  }
  // A store of a version before the check record: the first secret that does not open is named.
  store_.erase_raw(table::meta, std::string(kMasterKeyCheckKey));
  catalog reloaded(store_, wrong);
  auto r = reloaded.load();
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().detail, HasSubstr("webhooks"));
  EXPECT_THAT(r.error().detail, HasSubstr(hook->id.to_string()));
  EXPECT_THAT(r.error().detail, HasSubstr("master key"));
  EXPECT_THAT(r.error().detail, Not(HasSubstr(hook->secret.value())));
}

TEST_F(CatalogTest, LoadFailsOnDamagedRecordsAndIndexEntries) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto hook = make_webhook(*proj, "orders");
  cat_->stop();
  auto load_error = [&]() -> std::string {
    catalog fresh(store_, options());
    auto r = fresh.load();
    return r ? std::string("loaded") : r.error().detail;
  };
  ASSERT_EQ(load_error(), "loaded");

  const std::string project_key(proj->id.binary());
  const std::string project_value = store_.records(table::projects).at(project_key);
  store_.put_raw(table::projects, project_key, "{\"v\":1,");
  EXPECT_THAT(load_error(), HasSubstr("projects record " + proj->id.to_string()));
  store_.put_raw(table::projects, project_key, project_value);

  const std::string pw = project_webhook_key(proj->id, hook->id);
  store_.erase_raw(table::index, pw);
  EXPECT_THAT(load_error(), HasSubstr("pw:" + proj->id.to_string() + hook->id.to_string()));
  store_.put_raw(table::index, pw, "");

  store_.put_raw(table::index, project_slug_key(org->id, "ghost"), std::string(proj->id.binary()));
  EXPECT_THAT(load_error(), HasSubstr("ghost"));
  store_.erase_raw(table::index, project_slug_key(org->id, "ghost"));

  // A webhook whose project is gone.
  store_.erase_raw(table::projects, project_key);
  EXPECT_THAT(load_error(), HasSubstr(hook->id.to_string()));
  store_.put_raw(table::projects, project_key, project_value);
  EXPECT_EQ(load_error(), "loaded");
}

// The "pw" entries (one per webhook) are checked against the webhooks exactly like the others:
// every entry must belong to a webhook of that project, with an empty value, and every webhook
// must have its entry; a missing one is reported first in key order, with the count of the rest.
TEST_F(CatalogTest, LoadChecksEveryWebhookIndexEntry) {
  open();
  const auto org = make_org();
  std::vector<std::shared_ptr<const project>> projects;
  std::vector<std::shared_ptr<const webhook>> hooks;
  for (int p = 0; p < 3; ++p) {
    projects.push_back(make_project(org->id, "p" + std::to_string(p)));
    for (int h = 0; h < 5; ++h) {
      hooks.push_back(make_webhook(*projects.back(), "h" + std::to_string(p * 10 + h)));
    }
  }
  // Interleaved creates, so that id order and project order differ.
  for (std::size_t h = 0; h < 4; ++h) hooks.push_back(make_webhook(*projects[h % 3], "late"));
  cat_->stop();
  auto load_error = [&]() -> std::string {
    catalog fresh(store_, options());
    auto r = fresh.load();
    return r ? std::string("loaded") : r.error().detail;
  };
  {
    catalog fresh(store_, options());
    ASSERT_TRUE(fresh.load());
    for (const auto& proj : projects) {
      expect_same_lists(*fresh.list_webhooks(proj->id), *cat_->list_webhooks(proj->id));
    }
  }
  const auto missing = [](std::string_view first, std::size_t more) {
    return "Cannot load the index table: the entry " + printable_key(first) + " is missing (and " +
           std::to_string(more) + " more); the data directory is damaged";
  };

  // Two missing entries of different projects: the smaller key is named.
  const std::string a = project_webhook_key(hooks[16]->project, hooks[16]->id);
  const std::string b = project_webhook_key(hooks[3]->project, hooks[3]->id);
  store_.erase_raw(table::index, a);
  store_.erase_raw(table::index, b);
  EXPECT_EQ(load_error(), missing(std::min(a, b), 1));
  // A missing slug entry sorts before every "pw" entry.
  const std::string slug = project_slug_key(org->id, projects[2]->slug);
  store_.erase_raw(table::index, slug);
  EXPECT_EQ(load_error(), missing(slug, 2));
  store_.put_raw(table::index, slug, std::string(projects[2]->id.binary()));
  store_.put_raw(table::index, a, "");
  store_.put_raw(table::index, b, "");
  ASSERT_EQ(load_error(), "loaded");

  const auto refused = [&](const std::string& key, std::string_view why) {
    return "Cannot load the index record " + printable_key(key) + ": " + std::string(why);
  };
  // An entry for a webhook that does not exist, between existing ones.
  const std::string ghost = project_webhook_key(projects[1]->id, object_id_generator().next());
  store_.put_raw(table::index, ghost, "");
  EXPECT_EQ(load_error(), refused(ghost, "no record refers to this entry"));
  store_.erase_raw(table::index, ghost);
  // An existing webhook's entry under another project (its own entry gone).
  const std::string own = project_webhook_key(hooks[0]->project, hooks[0]->id);
  const std::string moved = project_webhook_key(projects[2]->id, hooks[0]->id);
  store_.erase_raw(table::index, own);
  store_.put_raw(table::index, moved, "");
  EXPECT_EQ(load_error(), refused(moved, "no record refers to this entry"));
  store_.erase_raw(table::index, moved);
  store_.put_raw(table::index, own, "");
  // A value where there is none.
  store_.put_raw(table::index, own, "x");
  EXPECT_EQ(load_error(), refused(own, "it points at another record"));
  store_.put_raw(table::index, own, "");
  // A key of the wrong length.
  const std::string short_key = std::string(kProjectWebhookPrefix) + "12345";
  store_.put_raw(table::index, short_key, "");
  EXPECT_EQ(load_error(), refused(short_key, "no record refers to this entry"));
  store_.erase_raw(table::index, short_key);
  EXPECT_EQ(load_error(), "loaded");
}

// load() decodes the webhooks on several threads when asked (or when the CPUs allow): the result
// must not depend on it, down to which damaged record is named.
TEST_F(CatalogTest, ParallelLoadEqualsSequentialLoad) {
  constexpr std::size_t kHooks = 3000;  // several batches of records, the last one partial
  open(kHooks);
  const auto org = make_org();
  std::vector<std::shared_ptr<const project>> projects;
  for (int p = 0; p < 3; ++p) projects.push_back(make_project(org->id, "p" + std::to_string(p)));
  for (std::size_t i = 0; i < kHooks; ++i) {
    ASSERT_TRUE(make_webhook(*projects[i % projects.size()], "h" + std::to_string(i)));
  }
  cat_->stop();

  auto with_threads = [&](unsigned threads) {
    catalog_options o = options(kHooks);
    o.load_threads = threads;
    return o;
  };
  catalog sequential(store_, with_threads(1));
  catalog parallel(store_, with_threads(4));
  const auto seq_counts = sequential.load();
  const auto par_counts = parallel.load();
  ASSERT_TRUE(seq_counts) << seq_counts.error().detail;
  ASSERT_TRUE(par_counts) << par_counts.error().detail;
  EXPECT_EQ(par_counts->webhooks, kHooks);
  EXPECT_EQ(seq_counts->webhooks, kHooks);
  for (const auto& proj : projects) {
    ASSERT_EQ(parallel.list_webhooks(proj->id)->size(), kHooks / projects.size());
    expect_same_lists(*parallel.list_webhooks(proj->id), *sequential.list_webhooks(proj->id));
    expect_same_lists(*parallel.list_webhooks(proj->id), *cat_->list_webhooks(proj->id));
  }
  for (const auto& w : *cat_->list_webhooks(projects[1]->id)) {
    ASSERT_TRUE(parallel.find_webhook(w->id));
    expect_same(*parallel.find_webhook(w->id), *w);
  }

  auto load_error = [&](unsigned threads) -> std::string {
    catalog fresh(store_, with_threads(threads));
    auto r = fresh.load();
    return r ? std::string("loaded") : r.error().detail;
  };
  // Two damaged records in the middle of the table: both loads name the first in key order.
  const auto records = store_.records(table::webhooks);
  ASSERT_EQ(records.size(), kHooks);
  auto nth = [&](std::size_t n) {
    return std::next(records.begin(), static_cast<long>(n));
  };
  const auto [first_key, first_value] = *nth(1700);
  const auto [later_key, later_value] = *nth(2600);
  store_.put_raw(table::webhooks, later_key, "{\"v\":1,");
  // A sealed secret under another webhook's id does not open (the id is its associated data).
  // Loads open the secrets only without the master key's check record (as in a store of an
  // earlier version); with it, its first use finds it (MasterKeyCheckTest).
  store_.erase_raw(table::meta, std::string(kMasterKeyCheckKey));
  store_.put_raw(table::webhooks, first_key, nth(1701)->second);
  const std::string expected = load_error(1);
  EXPECT_THAT(expected, HasSubstr("webhooks record " + printable_key(first_key)));
  EXPECT_THAT(expected, HasSubstr("master key"));
  EXPECT_EQ(load_error(4), expected);
  EXPECT_EQ(load_error(2), expected);
  store_.put_raw(table::webhooks, first_key, first_value);
  EXPECT_THAT(load_error(4), HasSubstr("webhooks record " + printable_key(later_key)));
  EXPECT_EQ(load_error(4), load_error(1));
  store_.put_raw(table::webhooks, later_key, later_value);
  EXPECT_EQ(load_error(4), "loaded");
}

TEST_F(CatalogTest, LoadOnlyOnceAndBeforeStart) {
  open();
  auto r = cat_->load();
  ASSERT_FALSE(r);
}

// ---------------------------------------------------------------- lifecycle

TEST_F(CatalogTest, StopDrainsQueuedWritesThenRefusesInline) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  store_.set_write_delay(std::chrono::milliseconds(2));
  collector<std::shared_ptr<const webhook>> results(10);
  for (std::size_t i = 0; i < 10; ++i) {
    cat_->create_webhook(org->id, proj->id, hook_input("hook-" + std::to_string(i)),
                         results.sink(i));
  }
  cat_->stop();
  for (const auto& r : results.wait()) EXPECT_TRUE(r) << r.error().detail;
  EXPECT_EQ(cat_->list_webhooks(proj->id)->size(), 10u);

  bool ran = false;
  cat_->create_organization({"late"}, [&ran](result<std::shared_ptr<const organization>> r) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, error_kind::unavailable);
    ran = true;
  });
  EXPECT_TRUE(ran) << "a call after stop() completes before it returns";
}

TEST_F(CatalogTest, DestroyingAnUnstartedCatalogCompletesQueuedWritesAsUnavailable) {
  std::optional<result<std::shared_ptr<const organization>>> outcome;
  {
    catalog c(store_, options());
    ASSERT_TRUE(c.load());
    c.create_organization(
        {"never"}, [&](result<std::shared_ptr<const organization>> r) { outcome = std::move(r); });
    EXPECT_FALSE(outcome);
  }
  ASSERT_TRUE(outcome);
  ASSERT_FALSE(*outcome);
  EXPECT_EQ(outcome->error().kind, error_kind::unavailable);
  EXPECT_TRUE(store_.records(table::organizations).empty());
}

// ---------------------------------------------------------------- group commit

TEST_F(CatalogTest, ConcurrentWritesShareFsyncs) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  store_.set_write_delay(std::chrono::milliseconds(5));
  const commit_stats before = cat_->stats();
  const std::uint64_t batches_before = store_.stats().batches;
  constexpr std::size_t kCreates = 64;
  collector<std::shared_ptr<const webhook>> results(kCreates);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t i = t; i < kCreates; i += 4) {
        cat_->create_webhook(org->id, proj->id, hook_input("hook-" + std::to_string(i)),
                             results.sink(i));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& r : results.wait()) EXPECT_TRUE(r);
  const commit_stats after = cat_->stats();
  const std::uint64_t groups = after.groups - before.groups;
  const std::uint64_t mutations = after.mutations - before.mutations;
  EXPECT_EQ(mutations, kCreates);
  EXPECT_LT(groups, mutations);
  EXPECT_EQ(store_.stats().batches - batches_before, groups);  // one storage write per group
}

TEST_F(CatalogTest, EverythingQueuedDuringAWriteFormsTheNextGroup) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const commit_stats before = cat_->stats();
  const auto gate = hold_writer();
  collector<std::shared_ptr<const webhook>> results(63);
  for (std::size_t i = 0; i < 63; ++i) {
    cat_->create_webhook(org->id, proj->id, hook_input("hook-" + std::to_string(i)),
                         results.sink(i));
  }
  gate->release();
  for (const auto& r : results.wait()) EXPECT_TRUE(r);
  const commit_stats after = cat_->stats();
  EXPECT_EQ(after.groups - before.groups, 2u);
  EXPECT_EQ(after.mutations - before.mutations, 64u);
  // Within the group, creation order is queue order.
  const auto list = cat_->list_webhooks(proj->id);
  ASSERT_EQ(list->size(), 63u);
  for (std::size_t i = 0; i < 63; ++i) EXPECT_EQ((*list)[i]->name, "hook-" + std::to_string(i));
}

// ---------------------------------------------------------------- readers vs writers

TEST_F(CatalogTest, ReadersNeverSeeTornOrUnpublishedState) {
  constexpr std::size_t kLimit = 12;
  open(kLimit);
  const auto org = make_org();
  const std::array<std::shared_ptr<const project>, 2> projects = {make_project(org->id, "one"),
                                                                  make_project(org->id, "two")};

  std::atomic<bool> writing{true};
  std::mutex failed_mutex;
  std::set<std::string> failed_names;  // names whose write reported storage_failure

  auto writer = [&](std::size_t w) {
    const project& proj = *projects[w];
    std::mt19937 rng(static_cast<unsigned>(w) + 7);
    std::vector<std::shared_ptr<const webhook>> mine;
    for (int step = 0; step < 300; ++step) {
      const std::string name = "w" + std::to_string(w) + "-" + std::to_string(step);
      if (step % 9 == 4) store_.fail_next_write();  // hits this writer's group or the other's
      const auto choice = rng() % 10;
      if (mine.empty() || (choice < 4 && mine.size() < kLimit)) {
        auto r = try_webhook(proj.organization, proj.id, name);
        if (r) {
          mine.push_back(*r);
        } else {
          ASSERT_EQ(r.error().kind, error_kind::storage_failure) << r.error().detail;
          std::lock_guard lock(failed_mutex);
          failed_names.insert(name);
        }
      } else if (choice < 8) {
        const std::size_t pick = rng() % mine.size();
        webhook_patch p;
        p.name = name;
        p.url = "https://example.com/" + name;
        auto r = patch(*mine[pick], p);
        if (r) {
          mine[pick] = *r;
        } else {
          ASSERT_EQ(r.error().kind, error_kind::storage_failure) << r.error().detail;
          std::lock_guard lock(failed_mutex);
          failed_names.insert(name);
        }
      } else {
        const std::size_t pick = rng() % mine.size();
        auto r = remove(proj.organization, proj.id, mine[pick]->id);
        if (r) {
          mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(pick));
        } else {
          ASSERT_EQ(r.error().kind, error_kind::storage_failure) << r.error().detail;
        }
      }
    }
  };

  std::atomic<std::size_t> observations{0};
  std::mutex seen_mutex;
  std::set<std::string> seen_names;
  auto reader = [&] {
    std::set<std::string> seen;
    std::size_t n = 0;
    while (writing.load() || n < 100) {
      for (const auto& proj : projects) {
        const auto list = cat_->list_webhooks(proj->id);
        ASSERT_TRUE(list);
        ASSERT_LE(list->size(), kLimit);
        std::set<object_id> ids;
        for (std::size_t i = 0; i < list->size(); ++i) {
          const webhook& w = *(*list)[i];
          ++n;
          ASSERT_EQ(w.project, proj->id);
          ASSERT_EQ(w.organization, org->id);
          ASSERT_EQ(w.url, "https://example.com/" + w.name) << "a torn webhook";
          ASSERT_TRUE(w.secret.value().starts_with("whsec_"));
          ASSERT_TRUE(ids.insert(w.id).second) << "a webhook twice in one list";
          if (i > 0) {
            const webhook& prev = *(*list)[i - 1];
            ASSERT_LE(prev.created_at, w.created_at) << "the list is not oldest first";
          }
          seen.insert(w.name);
          // A later read by id shows this version or a newer one, or nothing (deleted since).
          if (const auto by_id = cat_->find_webhook(w.id)) {
            ASSERT_GE(by_id->updated_at, w.updated_at);
            ASSERT_EQ(by_id->url, "https://example.com/" + by_id->name);
            seen.insert(by_id->name);
          }
        }
      }
      const catalog_counts c = cat_->counts();
      ASSERT_LE(c.webhooks, 2 * kLimit);
    }
    observations += n;
    std::lock_guard lock(seen_mutex);
    seen_names.insert(seen.begin(), seen.end());
  };

  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) readers.emplace_back(reader);
  std::thread w0(writer, 0), w1(writer, 1);
  w0.join();
  w1.join();
  writing = false;
  for (auto& r : readers) r.join();

  EXPECT_GT(observations.load(), 0u);
  EXPECT_FALSE(failed_names.empty()) << "the test injected no failure";
  for (const auto& name : failed_names) {
    EXPECT_FALSE(seen_names.contains(name)) << name << " was seen although its write failed";
  }
  // What the readers were shown is exactly what storage holds.
  cat_->stop();
  catalog reloaded(store_, options(kLimit));
  ASSERT_TRUE(reloaded.load());
  for (const auto& proj : projects) {
    expect_same_lists(*reloaded.list_webhooks(proj->id), *cat_->list_webhooks(proj->id));
  }
}

// ---------------------------------------------------------------- signing secrets and filters

result<std::shared_ptr<const webhook>> rotate(catalog& cat, const webhook& w,
                                              std::optional<std::string> secret = {}) {
  return wait_for<std::shared_ptr<const webhook>>([&](auto done) {
    cat.rotate_webhook_secret(w.organization, w.project, w.id, std::move(secret), std::move(done));
  });
}

TEST_F(CatalogTest, RotationKeepsThePreviousSecretSigningForTheGraceAndSurvivesAReload) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto hook = make_webhook(*proj, "orders");
  const timestamp before = now_ms();
  auto rotated = rotate(*cat_, *hook);
  ASSERT_TRUE(rotated) << rotated.error().detail;
  const webhook& w = **rotated;
  EXPECT_TRUE(w.secret.value().starts_with("whsec_"));
  EXPECT_NE(w.secret, hook->secret);
  ASSERT_EQ(w.previous_secrets.size(), 1u);
  EXPECT_EQ(w.previous_secrets[0].secret, hook->secret);
  // Until the rotation's time plus the grace (24 h by default).
  EXPECT_GE(w.previous_secrets[0].expires_at, before + std::chrono::hours(24));
  EXPECT_LE(w.previous_secrets[0].expires_at, now_ms() + std::chrono::hours(24));
  EXPECT_GT(w.updated_at, hook->updated_at);
  EXPECT_EQ(cat_->find_webhook(hook->id), *rotated);

  catalog reloaded(store_, options());
  ASSERT_TRUE(reloaded.load());
  expect_same(*reloaded.find_webhook(hook->id), w);
}

TEST_F(CatalogTest, AChosenSecretMustFitTheWebhooksScheme) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto hook = make_webhook(*proj, "orders");
  const std::string chosen = "whsec_" + base64_encode(std::string(32, 'c'));
  auto r = rotate(*cat_, *hook, chosen);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ((*r)->secret, chosen);
  for (const std::string& bad : {std::string("whsec_short"),
                                 "whsk_" + base64_encode(std::string(32, 's')), std::string("")}) {
    auto refused = rotate(*cat_, **r, bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().kind, error_kind::validation);
    ASSERT_EQ(refused.error().errors.size(), 1u);
    EXPECT_EQ(refused.error().errors[0].field, "secret");
  }
  EXPECT_EQ(cat_->find_webhook(hook->id)->secret, chosen);  // refused: nothing changed
}

TEST_F(CatalogTest, RepeatedRotationsKeepAtMostThreePreviousSecretsNewestFirst) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  auto current = make_webhook(*proj, "orders");
  std::vector<std::string> secrets{current->secret};
  for (int i = 0; i < 5; ++i) {
    auto r = rotate(*cat_, *current);
    ASSERT_TRUE(r);
    current = *r;
    secrets.push_back(current->secret);
  }
  ASSERT_EQ(current->previous_secrets.size(), kMaxPreviousSecrets);
  EXPECT_EQ(current->previous_secrets[0].secret, secrets[4]);
  EXPECT_EQ(current->previous_secrets[1].secret, secrets[3]);
  EXPECT_EQ(current->previous_secrets[2].secret, secrets[2]);
}

TEST_F(CatalogTest, WithoutAGraceTheOldSecretStopsAtOnce) {
  catalog_options o = options();
  o.secret_grace = std::chrono::milliseconds{0};
  cat_ = std::make_unique<catalog>(store_, o);
  ASSERT_TRUE(cat_->load());
  cat_->start();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto hook = make_webhook(*proj, "orders");
  auto r = rotate(*cat_, *hook);
  ASSERT_TRUE(r);
  EXPECT_NE((*r)->secret, hook->secret);
  EXPECT_TRUE((*r)->previous_secrets.empty());
}

TEST_F(CatalogTest, SwitchingSigningMakesASecretOfTheNewKindAndKeepsTheOldOneForTheGrace) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto hook = make_webhook(*proj, "orders");
  EXPECT_EQ(hook->signing, signing_scheme::v1);
  webhook_patch to_v1a;
  to_v1a.signing = signing_scheme::v1a;
  auto switched = patch(*hook, to_v1a);
  ASSERT_TRUE(switched) << switched.error().detail;
  const webhook& w = **switched;
  EXPECT_EQ(w.signing, signing_scheme::v1a);
  EXPECT_TRUE(w.secret.value().starts_with("whsk_")) << w.secret.value();
  EXPECT_EQ(check_signing_secret(w.secret, signing_scheme::v1a), std::nullopt);
  ASSERT_EQ(w.previous_secrets.size(), 1u);
  EXPECT_EQ(w.previous_secrets[0].secret, hook->secret);

  // The same scheme again changes nothing.
  auto again = patch(w, to_v1a);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *switched);

  // A rotation of a v1a webhook makes a new key pair.
  auto rotated = rotate(*cat_, w);
  ASSERT_TRUE(rotated);
  EXPECT_TRUE((*rotated)->secret.value().starts_with("whsk_"));
  EXPECT_NE((*rotated)->secret, w.secret);
  EXPECT_NE(signing_public_key((*rotated)->secret), signing_public_key(w.secret));
  ASSERT_EQ((*rotated)->previous_secrets.size(), 2u);
  EXPECT_EQ((*rotated)->previous_secrets[0].secret, w.secret);

  // A webhook created as v1a has a key from the start.
  webhook_input in = hook_input("ed");
  in.signing = signing_scheme::v1a;
  auto created = wait_for<std::shared_ptr<const webhook>>(
      [&](auto done) { cat_->create_webhook(org->id, proj->id, std::move(in), std::move(done)); });
  ASSERT_TRUE(created);
  EXPECT_EQ((*created)->signing, signing_scheme::v1a);
  EXPECT_TRUE(signing_public_key((*created)->secret).has_value());
}

TEST_F(CatalogTest, FilterIsSetKeptAndRemovedByPatch) {
  open();
  const auto org = make_org();
  const auto proj = make_project(org->id, "shop");
  const auto hook = make_webhook(*proj, "orders");
  std::vector<field_error> errors;
  const auto filter = event_filter::parse(boost::json::parse(R"({"data.country":"TR"})"), errors);
  webhook_patch set;
  set.filter = filter;
  auto with = patch(*hook, set);
  ASSERT_TRUE(with);
  ASSERT_NE((*with)->filter, nullptr);
  EXPECT_GT((*with)->updated_at, hook->updated_at);

  webhook_patch same;  // an equal filter, parsed again: no change
  same.filter = event_filter::parse(boost::json::parse(R"({"data.country":"TR"})"), errors);
  auto unchanged = patch(**with, same);
  ASSERT_TRUE(unchanged);
  EXPECT_EQ(*unchanged, *with);

  webhook_patch clear;
  clear.filter = std::shared_ptr<const event_filter>();
  auto without = patch(**with, clear);
  ASSERT_TRUE(without);
  EXPECT_EQ((*without)->filter, nullptr);
  EXPECT_GT((*without)->updated_at, (*with)->updated_at);
}

}  // namespace
}  // namespace hookd
