// catalog::apply_remote: a change another node committed, published into this node's index.
// An origin catalog records every change its store commits; a replica, on a store of its own,
// applies them and must then answer every read exactly as the origin does, without writing.

#include "core/catalog/catalog.hpp"
#include "core/catalog/kv_catalog_store.hpp"
#include "support/memory_storage.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace hookd {
namespace {

// Commits through `inner` and keeps each committed change, as a cluster's notifier would send it.
class recording_store final : public catalog_store {
 public:
  explicit recording_store(catalog_store& inner) : inner_(inner) {}
  result<void> commit(const catalog_change& change) override {
    auto r = inner_.commit(change);
    if (r) {
      std::lock_guard lock(mutex_);
      changes_.push_back(change);
    }
    return r;
  }
  result<void> load(const catalog_load_sink& sink, unsigned threads) override {
    return inner_.load(sink, threads);
  }
  std::vector<catalog_change> take() {
    std::lock_guard lock(mutex_);
    return std::exchange(changes_, {});
  }

 private:
  catalog_store& inner_;
  std::mutex mutex_;
  std::vector<catalog_change> changes_;
};

template <class T>
std::vector<std::pair<object_id, timestamp>> versions(
    const std::vector<std::shared_ptr<const T>>& list) {
  std::vector<std::pair<object_id, timestamp>> out;
  for (const auto& e : list) out.emplace_back(e->id, e->created_at);
  return out;
}

webhook_input hook_input(const std::string& name) {
  webhook_input in;
  in.name = name;
  in.url = "https://example.com/" + name;
  in.events = {"order.created"};
  return in;
}

scope_set admin_scopes() {
  scope_set s;
  s.add(scope::admin);
  return s;
}

class CatalogRemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (catalog* c : {&origin_, &replica_}) {
      auto loaded = c->load();
      ASSERT_TRUE(loaded) << loaded.error().detail;
      c->start();
    }
    // What the replica's start wrote of its own (the master key's check record); nothing after.
    replica_batches_at_start_ = replica_storage_.batches().size();
  }

  catalog_options options() const {
    catalog_options o;
    o.master_key = key_;
    return o;
  }

  result<void> apply(catalog_change change) {
    return wait_for<void>(
        [&](auto done) { replica_.apply_remote(std::move(change), std::move(done)); });
  }

  // Applies what the origin committed since the last call; keeps it in `history_`.
  void sync() {
    for (auto& change : recorder_.take()) {
      auto r = apply(change);
      ASSERT_TRUE(r) << r.error().detail;
      history_.push_back(std::move(change));
    }
  }

  // Every read of the replica answers as the origin's does.
  void expect_mirrors() {
    const auto a = origin_.counts(), b = replica_.counts();
    EXPECT_EQ(std::tie(a.organizations, a.projects, a.tokens, a.webhooks),
              std::tie(b.organizations, b.projects, b.tokens, b.webhooks));
    EXPECT_EQ(origin_.has_admin_token(), replica_.has_admin_token());
    const auto orgs = origin_.list_organizations();
    EXPECT_EQ(versions(orgs), versions(replica_.list_organizations()));
    for (const auto& o : orgs) {
      EXPECT_EQ(replica_.find_organization(o->id), o);  // the very version the origin holds
      const auto projects = origin_.list_projects(o->id);
      EXPECT_EQ(versions(projects), versions(replica_.list_projects(o->id)));
      for (const auto& p : projects) {
        EXPECT_EQ(replica_.find_project(p->id), p);
        const auto hooks = origin_.list_webhooks(p->id);
        EXPECT_EQ(versions(*hooks), versions(*replica_.list_webhooks(p->id)));
        for (const auto& w : *hooks) EXPECT_EQ(replica_.find_webhook(w->id), w);
      }
    }
    const auto tokens = origin_.list_tokens();
    EXPECT_EQ(versions(tokens), versions(replica_.list_tokens()));
    for (const auto& t : tokens) {
      EXPECT_EQ(replica_.find_token(t->id), t);
      EXPECT_EQ(replica_.find_token_by_digest(t->digest), t);
    }
    // Whatever the origin no longer holds, the replica does not either.
    for (const auto& change : history_) {
      for (const auto& op : change.ops) {
        std::visit(
            [&](const auto& e) {
              using T = typename std::decay_t<decltype(e)>::element_type;
              if constexpr (std::is_same_v<T, const organization>) {
                EXPECT_EQ(origin_.find_organization(e->id) == nullptr,
                          replica_.find_organization(e->id) == nullptr);
              } else if constexpr (std::is_same_v<T, const project>) {
                EXPECT_EQ(origin_.find_project(e->id) == nullptr,
                          replica_.find_project(e->id) == nullptr);
                EXPECT_EQ(origin_.list_webhooks(e->id)->size(),
                          replica_.list_webhooks(e->id)->size());
              } else if constexpr (std::is_same_v<T, const api_token>) {
                EXPECT_EQ(origin_.find_token(e->id) == nullptr,
                          replica_.find_token(e->id) == nullptr);
                EXPECT_EQ(origin_.find_token_by_digest(e->digest) == nullptr,
                          replica_.find_token_by_digest(e->digest) == nullptr);
              } else {
                EXPECT_EQ(origin_.find_webhook(e->id) == nullptr,
                          replica_.find_webhook(e->id) == nullptr);
              }
            },
            op.value);
      }
    }
  }

  template <class T, class Start>
  T made(Start start) {
    auto r = wait_for<T>(std::move(start));
    EXPECT_TRUE(r) << r.error().detail;
    return r ? std::move(*r) : T{};
  }
  std::shared_ptr<const organization> org(const std::string& name) {
    return made<std::shared_ptr<const organization>>(
        [&](auto done) { origin_.create_organization({name}, std::move(done)); });
  }
  std::shared_ptr<const project> proj(const object_id& o, const std::string& slug) {
    project_input in;
    in.name = "Project " + slug;
    in.slug = slug;
    return made<std::shared_ptr<const project>>(
        [&](auto done) { origin_.create_project(o, std::move(in), std::move(done)); });
  }
  std::shared_ptr<const webhook> hook(const project& p, const std::string& name) {
    return made<std::shared_ptr<const webhook>>([&](auto done) {
      origin_.create_webhook(p.organization, p.id, hook_input(name), std::move(done));
    });
  }
  std::shared_ptr<const api_token> token(std::vector<object_id> orgs, scope_set scopes) {
    token_input in;
    in.name = "token";
    in.organizations = std::move(orgs);
    in.scopes = scopes;
    return made<created_token>([&](auto done) {
             origin_.create_token(std::move(in), std::nullopt, std::move(done));
           })
        .token;
  }

  aes256gcm_key key_ = aes256gcm_key::generate();
  testing::memory_storage origin_storage_, replica_storage_;
  kv_catalog_store origin_kv_{origin_storage_, key_};
  recording_store recorder_{origin_kv_};
  kv_catalog_store replica_kv_{replica_storage_, key_};
  catalog origin_{recorder_, options()};
  catalog replica_{replica_kv_, options()};
  std::vector<catalog_change> history_;
  std::size_t replica_batches_at_start_ = 0;
};

TEST_F(CatalogRemoteTest, EveryKindOfChangeIsMirroredWithWhatDerivesFromIt) {
  const auto acme = org("Acme"), globex = org("Globex");
  const auto shop = proj(acme->id, "shop"), blog = proj(acme->id, "blog");
  const auto labs = proj(globex->id, "labs");
  const auto admin = token({}, admin_scopes());
  const auto both = token({acme->id, globex->id}, scope_set{});
  const auto w1 = hook(*shop, "w1"), w2 = hook(*shop, "w2"), w3 = hook(*shop, "w3");
  const auto w4 = hook(*labs, "w4");
  sync();
  expect_mirrors();
  EXPECT_EQ(replica_.list_webhooks(shop->id)->size(), 3u);
  ASSERT_TRUE(replica_.has_admin_token());

  webhook_patch rename;
  rename.name = "w1 renamed";
  ASSERT_TRUE(wait_for<std::shared_ptr<const webhook>>([&](auto done) {
    origin_.update_webhook(acme->id, shop->id, w1->id, std::move(rename), std::move(done));
  }));
  ASSERT_TRUE(wait_for<std::shared_ptr<const webhook>>([&](auto done) {
    origin_.rotate_webhook_secret(acme->id, shop->id, w2->id, std::nullopt, std::move(done));
  }));
  ASSERT_TRUE(wait_for<std::shared_ptr<const webhook>>(
      [&](auto done) { origin_.disable_webhook(w3->id, "gone", now_ms(), std::move(done)); }));
  sync();
  expect_mirrors();
  EXPECT_EQ(replica_.find_webhook(w1->id)->name, "w1 renamed");
  EXPECT_FALSE(replica_.find_webhook(w3->id)->active);

  ASSERT_TRUE(wait_for<void>(
      [&](auto done) { origin_.delete_webhook(acme->id, shop->id, w2->id, std::move(done)); }));
  ASSERT_TRUE(wait_for<void>([&](auto done) { origin_.delete_token(admin->id, std::move(done)); }));
  ASSERT_TRUE(wait_for<void>(
      [&](auto done) { origin_.delete_project(acme->id, blog->id, std::move(done)); }));
  sync();
  expect_mirrors();
  EXPECT_FALSE(replica_.has_admin_token());
  EXPECT_EQ(replica_.find_token_by_digest(admin->digest), nullptr);

  // The organization with its projects and webhooks; the token keeps Globex only.
  ASSERT_TRUE(wait_for<std::vector<object_id>>(
      [&](auto done) { origin_.delete_organization(acme->id, std::move(done)); }));
  sync();
  expect_mirrors();
  EXPECT_EQ(replica_.find_webhook(w1->id), nullptr);
  EXPECT_EQ(replica_.list_webhooks(shop->id)->size(), 0u);
  EXPECT_EQ(replica_.find_token(both->id)->organizations, std::vector<object_id>{globex->id});
  EXPECT_EQ(replica_.counts().webhooks, 1u);
  EXPECT_NE(replica_.find_webhook(w4->id), nullptr);

  // The slug "shop" is free in Acme's place: a project of Globex takes it, and Acme's old id is
  // gone for good.
  proj(globex->id, "shop");
  sync();
  expect_mirrors();

  EXPECT_EQ(replica_storage_.batches().size(),
            replica_batches_at_start_);  // applied, never written
}

TEST_F(CatalogRemoteTest, ApplyingAChangeAgainOrAnOlderVersionChangesNothing) {
  const auto acme = org("Acme");
  const auto shop = proj(acme->id, "shop");
  const auto w = hook(*shop, "w");
  token({acme->id}, admin_scopes());
  webhook_patch rename;
  rename.name = "renamed";
  ASSERT_TRUE(wait_for<std::shared_ptr<const webhook>>([&](auto done) {
    origin_.update_webhook(acme->id, shop->id, w->id, std::move(rename), std::move(done));
  }));
  sync();
  expect_mirrors();

  const auto list = replica_.list_webhooks(shop->id);
  const auto orgs = replica_.list_organizations();
  const auto counts = replica_.counts();
  for (const auto& change : history_) {  // the create of `w` among them: an older version
    auto r = apply(change);
    ASSERT_TRUE(r) << r.error().detail;
  }
  // Nothing was published again: the very same list snapshot, the same counts.
  EXPECT_EQ(replica_.list_webhooks(shop->id), list);
  EXPECT_EQ(replica_.list_organizations(), orgs);
  EXPECT_EQ(replica_.find_webhook(w->id)->name, "renamed");
  EXPECT_EQ(replica_.counts().webhooks, counts.webhooks);
  EXPECT_EQ(replica_.counts().tokens, counts.tokens);
  expect_mirrors();

  // Erasing twice: the second finds nothing to erase.
  ASSERT_TRUE(wait_for<void>(
      [&](auto done) { origin_.delete_webhook(acme->id, shop->id, w->id, std::move(done)); }));
  auto erased = recorder_.take();
  ASSERT_EQ(erased.size(), 1u);
  ASSERT_TRUE(apply(erased[0]));
  ASSERT_TRUE(apply(erased[0]));
  EXPECT_EQ(replica_.counts().webhooks, 0u);
  EXPECT_EQ(replica_.list_webhooks(shop->id)->size(), 0u);
}

// What PostgreSQL's change feed hands a node: erases carry only the id (the row is gone), and the
// node's own changes come back to it as well.
TEST_F(CatalogRemoteTest, ErasesByIdAloneAndANodesOwnChangesComingBackChangeNothingMore) {
  const auto acme = org("Acme");
  const auto shop = proj(acme->id, "shop");
  const auto w = hook(*shop, "w");
  const auto t = token({acme->id}, admin_scopes());
  sync();
  expect_mirrors();

  // The origin's own changes, applied to the origin: nothing is published again.
  const auto own_list = origin_.list_webhooks(shop->id);
  const auto own_tokens = origin_.list_tokens();
  for (const auto& change : history_) {
    auto r = wait_for<void>([&](auto done) { origin_.apply_remote(change, std::move(done)); });
    ASSERT_TRUE(r) << r.error().detail;
  }
  EXPECT_EQ(origin_.list_webhooks(shop->id), own_list);
  EXPECT_EQ(origin_.list_tokens(), own_tokens);
  EXPECT_EQ(origin_.counts().webhooks, 1u);

  // Another copy with the same updatedAt (two changes within one millisecond, read back from the
  // shared store) replaces the held version; an older one does not.
  auto same_ms = std::make_shared<webhook>(*replica_.find_webhook(w->id));
  same_ms->name = "second change, same millisecond";
  catalog_change same;
  same.put(std::shared_ptr<const webhook>(same_ms));
  ASSERT_TRUE(apply(same));
  EXPECT_EQ(replica_.find_webhook(w->id)->name, "second change, same millisecond");
  auto older = std::make_shared<webhook>(*same_ms);
  older->name = "older";
  older->updated_at -= std::chrono::milliseconds(1);
  catalog_change stale;
  stale.put(std::shared_ptr<const webhook>(older));
  ASSERT_TRUE(apply(stale));
  EXPECT_EQ(replica_.find_webhook(w->id)->name, "second change, same millisecond");

  // Erases with nothing but the id: the replica finds what it holds by id, and takes along what
  // hangs off it (the project's webhook, its slug).
  auto only_id = [](const auto& held) {
    auto bare = std::make_shared<typename std::decay_t<decltype(*held)>>();
    bare->id = held->id;
    return std::shared_ptr<const typename std::decay_t<decltype(*held)>>(std::move(bare));
  };
  catalog_change gone;
  gone.erase(only_id(t));
  gone.erase(only_id(shop));
  ASSERT_TRUE(apply(gone));
  EXPECT_EQ(replica_.find_token(t->id), nullptr);
  EXPECT_EQ(replica_.find_token_by_digest(t->digest), nullptr);
  EXPECT_EQ(replica_.find_project(shop->id), nullptr);
  EXPECT_EQ(replica_.find_webhook(w->id), nullptr);
  EXPECT_EQ(replica_.counts().webhooks, 0u);
  EXPECT_EQ(replica_.counts().tokens, 0u);
  EXPECT_TRUE(replica_.list_projects(acme->id).empty());
  // The slug is free again: a project taking it applies.
  auto again = std::make_shared<project>(*shop);
  again->id = object_id_generator().next();
  catalog_change retaken;
  retaken.put(std::shared_ptr<const project>(again));
  EXPECT_TRUE(apply(retaken));
  ASSERT_TRUE(apply(gone));  // and erasing again finds nothing
  EXPECT_EQ(replica_.counts().projects, 1u);
}

// Ids are never given out again, so a put of an erased id is an older version: a node's own
// create read back from the shared store after it deleted the webhook does not bring it back,
// here or on a replica that applied the erase.
TEST_F(CatalogRemoteTest, AnErasedEntityIsNotBroughtBackByAnOlderCopy) {
  const auto acme = org("Acme");
  const auto shop = proj(acme->id, "shop");
  const auto w = hook(*shop, "w");
  sync();
  ASSERT_TRUE(wait_for<void>(
      [&](auto done) { origin_.delete_webhook(acme->id, shop->id, w->id, std::move(done)); }));
  sync();
  ASSERT_EQ(replica_.find_webhook(w->id), nullptr);
  catalog_change echo;  // the create as the shared store held it before the delete: a copy
  echo.put(std::shared_ptr<const webhook>(std::make_shared<webhook>(*w)));
  for (catalog* c : {&origin_, &replica_}) {
    ASSERT_TRUE(wait_for<void>([&](auto done) { c->apply_remote(echo, std::move(done)); }));
    EXPECT_EQ(c->find_webhook(w->id), nullptr);
    EXPECT_EQ(c->list_webhooks(shop->id)->size(), 0u);
    EXPECT_EQ(c->counts().webhooks, 0u);
  }
}

TEST_F(CatalogRemoteTest, AWebhookOfAProjectNotHeldYetIsRefusedWhole) {
  const auto acme = org("Acme");
  const auto shop = proj(acme->id, "shop");
  const auto w = hook(*shop, "w");
  auto changes = recorder_.take();
  ASSERT_EQ(changes.size(), 3u);

  // The organization and the webhook in one change, the project missing: nothing is applied.
  catalog_change skipped;
  skipped.ops = changes[0].ops;
  skipped.ops.insert(skipped.ops.end(), changes[2].ops.begin(), changes[2].ops.end());
  auto r = apply(skipped);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, error_kind::not_found);
  EXPECT_NE(r.error().detail.find(shop->id.to_string()), std::string::npos) << r.error().detail;
  EXPECT_EQ(replica_.find_organization(acme->id), nullptr);
  EXPECT_EQ(replica_.counts().organizations, 0u);
  EXPECT_EQ(replica_.find_webhook(w->id), nullptr);

  // Re-read in order: all of it applies.
  for (auto& c : changes) ASSERT_TRUE(apply(c));
  history_ = changes;
  expect_mirrors();
}

TEST_F(CatalogRemoteTest, ASlugFreedAndTakenInOneChangeMovesAndATakenSlugIsAConflict) {
  const auto acme = org("Acme");
  const auto old_shop = proj(acme->id, "shop");
  sync();
  ASSERT_TRUE(wait_for<void>(
      [&](auto done) { origin_.delete_project(acme->id, old_shop->id, std::move(done)); }));
  const auto new_shop = proj(acme->id, "shop");
  auto changes = recorder_.take();
  ASSERT_EQ(changes.size(), 2u);

  // A project of another id claiming "shop" while the old one is held: refused.
  auto conflict = apply(changes[1]);
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().kind, error_kind::conflict);
  EXPECT_EQ(replica_.find_project(new_shop->id), nullptr);

  // Both in one change, in the origin's order: the slug moves.
  catalog_change both;
  for (auto& c : changes) both.ops.insert(both.ops.end(), c.ops.begin(), c.ops.end());
  ASSERT_TRUE(apply(both));
  history_.push_back(both);
  expect_mirrors();
  EXPECT_EQ(replica_.find_project(old_shop->id), nullptr);
  ASSERT_EQ(replica_.list_projects(acme->id).size(), 1u);
  EXPECT_EQ(replica_.list_projects(acme->id)[0]->id, new_shop->id);
}

// Readers on other threads see each list whole: sorted oldest first, every entry of the project,
// no duplicate, while the writer applies creates and deletes.
TEST_F(CatalogRemoteTest, ReadersSeeConsistentListsWhileChangesApply) {
  const auto acme = org("Acme");
  const auto shop = proj(acme->id, "shop");
  sync();

  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> reads{0}, bad{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&] {
      while (!done.load()) {
        const auto list = replica_.list_webhooks(shop->id);
        std::set<object_id> seen;
        for (std::size_t k = 0; k < list->size(); ++k) {
          const auto& w = (*list)[k];
          if (w->project != shop->id || !seen.insert(w->id).second) ++bad;
          if (k > 0 && std::tie((*list)[k - 1]->created_at, (*list)[k - 1]->id) >=
                           std::tie(w->created_at, w->id)) {
            ++bad;
          }
        }
        if (list->size() > 4) ++bad;  // never more than the window below
        ++reads;
      }
    });
  }

  object_id_generator ids;
  std::vector<std::shared_ptr<const webhook>> live;
  for (int i = 0; i < 300; ++i) {
    auto w = std::make_shared<webhook>();
    w->id = ids.next();
    w->organization = acme->id;
    w->project = shop->id;
    w->name = "w" + std::to_string(i);
    w->url = "https://example.com/w";
    w->created_at = w->updated_at = timestamp{std::chrono::milliseconds{1'700'000'000'000 + i}};
    catalog_change change;
    change.put<webhook>(w);
    live.push_back(w);
    if (live.size() > 3) {
      change.erase(live.front());
      live.erase(live.begin());
    }
    ASSERT_TRUE(apply(std::move(change)));
  }
  while (reads.load() < 100) std::this_thread::yield();
  done.store(true);
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0u);
  const auto list = replica_.list_webhooks(shop->id);
  ASSERT_EQ(list->size(), 3u);
  for (std::size_t k = 0; k < 3; ++k) EXPECT_EQ((*list)[k], live[k]);
  EXPECT_EQ(replica_.counts().webhooks, 3u);
}

}  // namespace
}  // namespace hookd
