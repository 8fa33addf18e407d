#include "core/catalog/kv_catalog_store.hpp"

#include "core/catalog/codec.hpp"
#include "support/memory_storage.hpp"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace hookd {
namespace {

std::string key_of(const object_id& id) {
  return std::string(id.binary());
}

// What the embedded store must write: the layout of codec.hpp, which data directories written by
// earlier versions hold.
class KvCatalogStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    org_ = std::make_shared<organization>();
    org_->id = ids_.next(1'700'000'000);
    org_->name = "Acme";
    proj_ = std::make_shared<project>();
    proj_->id = ids_.next(1'700'000'001);
    proj_->organization = org_->id;
    proj_->name = "Shop";
    proj_->slug = "shop";
    token_ = std::make_shared<api_token>();
    token_->id = ids_.next(1'700'000'002);
    token_->name = "ci";
    token_->organizations = {org_->id};
    token_->digest = sha256("hkd_secret");
    hook_ = std::make_shared<webhook>();
    hook_->id = ids_.next(1'700'000'003);
    hook_->organization = org_->id;
    hook_->project = proj_->id;
    hook_->name = "orders";
    hook_->url = "https://example.com/in";
    hook_->headers = {{"Authorization", "Bearer rcv-7f3a"}};
    hook_->secret = "whsec_abcdefghijklmnopqrstuvwxyz012345";
  }

  catalog_change create_all() const {
    catalog_change c;
    c.put<organization>(org_);
    c.put<project>(proj_);
    c.put<api_token>(token_);
    c.put<webhook>(hook_);
    return c;
  }

  object_id_generator ids_;
  aes256gcm_key key_ = aes256gcm_key::generate();
  testing::memory_storage storage_;
  kv_catalog_store store_{storage_, key_};
  std::shared_ptr<organization> org_;
  std::shared_ptr<project> proj_;
  std::shared_ptr<api_token> token_;
  std::shared_ptr<webhook> hook_;
};

TEST_F(KvCatalogStoreTest, APutWritesTheRecordAndItsIndexEntryInOneBatch) {
  ASSERT_TRUE(store_.commit(create_all()));

  const auto batches = storage_.batches();
  ASSERT_EQ(batches.size(), 1u);  // one group, one batch, one fsync
  const auto& ops = batches[0].ops;
  ASSERT_EQ(ops.size(), 7u);
  EXPECT_EQ(ops[0].where, table::organizations);
  EXPECT_EQ(ops[0].key, key_of(org_->id));
  EXPECT_EQ(ops[0].value, encode(*org_));
  EXPECT_EQ(ops[1].where, table::projects);
  EXPECT_EQ(ops[1].value, encode(*proj_));
  EXPECT_EQ(ops[2].where, table::index);
  EXPECT_EQ(ops[2].key, project_slug_key(org_->id, "shop"));
  EXPECT_EQ(ops[2].value, key_of(proj_->id));
  EXPECT_EQ(ops[3].where, table::tokens);
  EXPECT_EQ(ops[3].value, encode(*token_));
  EXPECT_EQ(ops[4].key, token_digest_key(token_->digest));
  EXPECT_EQ(ops[4].value, key_of(token_->id));
  EXPECT_EQ(ops[5].where, table::webhooks);
  EXPECT_EQ(ops[5].key, key_of(hook_->id));
  ASSERT_TRUE(ops[5].value);
  // Sealed (a fresh nonce each time, so compared by what it opens to).
  EXPECT_EQ(ops[5].value->find("rcv-7f3a"), std::string::npos);
  EXPECT_EQ(ops[5].value->find(hook_->secret), std::string::npos);
  auto opened = decode_webhook(ops[5].key, *ops[5].value, key_);
  ASSERT_TRUE(opened) << opened.error().detail;
  EXPECT_EQ(opened->secret, hook_->secret);
  EXPECT_EQ(opened->headers, hook_->headers);
  EXPECT_EQ(ops[6].where, table::index);
  EXPECT_EQ(ops[6].key, project_webhook_key(proj_->id, hook_->id));
  EXPECT_EQ(ops[6].value, std::string{});
}

TEST_F(KvCatalogStoreTest, AnEraseTakesTheIndexEntryOfTheErasedVersion) {
  ASSERT_TRUE(store_.commit(create_all()));
  catalog_change gone;
  gone.erase<webhook>(hook_);
  gone.erase<project>(proj_);
  gone.erase<api_token>(token_);
  gone.erase<organization>(org_);
  ASSERT_TRUE(store_.commit(gone));

  for (table t :
       {table::organizations, table::projects, table::tokens, table::webhooks, table::index}) {
    EXPECT_TRUE(storage_.records(t).empty()) << table_name(t);
  }
}

TEST_F(KvCatalogStoreTest, AnEmptyChangeWritesNothing) {
  ASSERT_TRUE(store_.commit(catalog_change{}));
  EXPECT_TRUE(storage_.batches().empty());
}

TEST_F(KvCatalogStoreTest, AFailedWriteIsAStorageFailureAndStoresNothing) {
  storage_.fail_next_write();
  auto r = store_.commit(create_all());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, error_kind::storage_failure);
  EXPECT_NE(r.error().detail.find("injected write failure"), std::string::npos);
  EXPECT_TRUE(storage_.records(table::webhooks).empty());
  EXPECT_TRUE(storage_.records(table::index).empty());
}

struct loaded_entities {
  std::mutex mutex;
  std::vector<std::shared_ptr<organization>> orgs;
  std::vector<std::shared_ptr<project>> projects;
  std::vector<std::shared_ptr<api_token>> tokens;
  std::vector<std::shared_ptr<webhook>> webhooks;

  catalog_load_sink sink() {
    return catalog_load_sink{
        .organization =
            [this](std::shared_ptr<organization> o) {
              std::lock_guard lock(mutex);
              orgs.push_back(std::move(o));
            },
        .project =
            [this](std::shared_ptr<project> p) {
              std::lock_guard lock(mutex);
              projects.push_back(std::move(p));
            },
        .token =
            [this](std::shared_ptr<api_token> t) {
              std::lock_guard lock(mutex);
              tokens.push_back(std::move(t));
            },
        .webhook =
            [this](std::shared_ptr<webhook> w) {
              std::lock_guard lock(mutex);
              webhooks.push_back(std::move(w));
            },
    };
  }
};

TEST_F(KvCatalogStoreTest, LoadHandsOverWhatWasCommittedWithSecretsOpened) {
  ASSERT_TRUE(store_.commit(create_all()));
  for (unsigned threads : {1u, 4u}) {
    loaded_entities got;
    ASSERT_TRUE(store_.load(got.sink(), threads));
    ASSERT_EQ(got.orgs.size(), 1u);
    EXPECT_EQ(got.orgs[0]->name, "Acme");
    ASSERT_EQ(got.projects.size(), 1u);
    EXPECT_EQ(got.projects[0]->slug, "shop");
    ASSERT_EQ(got.tokens.size(), 1u);
    EXPECT_EQ(got.tokens[0]->digest, token_->digest);
    ASSERT_EQ(got.webhooks.size(), 1u);
    EXPECT_EQ(got.webhooks[0]->secret, hook_->secret);
    EXPECT_EQ(got.webhooks[0]->headers, hook_->headers);
  }
}

TEST_F(KvCatalogStoreTest, LoadRefusesAStoreSealedWithAnotherKey) {
  ASSERT_TRUE(store_.commit(create_all()));
  kv_catalog_store other(storage_, aes256gcm_key::generate());
  loaded_entities got;
  auto r = other.load(got.sink(), 1);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("webhooks record " + printable_key(key_of(hook_->id))),
            std::string::npos)
      << r.error().detail;
  EXPECT_TRUE(got.webhooks.empty());
}

TEST_F(KvCatalogStoreTest, LoadNamesAMissingIndexEntry) {
  ASSERT_TRUE(store_.commit(create_all()));
  storage_.erase_raw(table::index, project_webhook_key(proj_->id, hook_->id));
  loaded_entities got;
  auto r = store_.load(got.sink(), 1);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find(printable_key(project_webhook_key(proj_->id, hook_->id))),
            std::string::npos)
      << r.error().detail;
}

}  // namespace
}  // namespace hookd
