// Start-up checks the master key by opening one sealed record and leaves the webhooks' signing
// secrets sealed until their first use (kv_catalog_store.cpp, webhook_secret in entities.hpp).

#include "core/catalog/codec.hpp"
#include "core/catalog/kv_catalog_store.hpp"
#include "core/delivery/signing.hpp"
#include "support/memory_storage.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hookd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct loaded {
  std::mutex mutex;
  std::vector<std::shared_ptr<webhook>> webhooks;

  catalog_load_sink sink() {
    return catalog_load_sink{
        .organization = [](std::shared_ptr<organization>) {},
        .project = [](std::shared_ptr<project>) {},
        .token = [](std::shared_ptr<api_token>) {},
        .webhook =
            [this](std::shared_ptr<webhook> w) {
              std::lock_guard lock(mutex);
              webhooks.push_back(std::move(w));
            },
    };
  }
};

class MasterKeyCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto org = std::make_shared<organization>();
    org->id = ids_.next(1'700'000'000);
    org->name = "Acme";
    auto proj = std::make_shared<project>();
    proj->id = ids_.next(1'700'000'001);
    proj->organization = org->id;
    proj->name = "Shop";
    proj->slug = "shop";
    catalog_change c;
    c.put<organization>(org);
    c.put<project>(proj);
    for (int i = 0; i < 40; ++i) {
      auto w = std::make_shared<webhook>();
      w->id = ids_.next(1'700'000'002 + static_cast<std::uint32_t>(i));
      w->organization = org->id;
      w->project = proj->id;
      w->name = "hook-" + std::to_string(i);
      w->url = "https://example.com/in";
      w->signing = i % 4 == 3 ? signing_scheme::v1a : signing_scheme::v1;
      w->secret = generate_webhook_secret(w->signing);
      if (i % 5 == 0) w->headers = {{"Authorization", "Bearer rcv-" + std::to_string(i)}};
      c.put<webhook>(w);
      hooks_.push_back(w);
    }
    ASSERT_TRUE(store_.commit(c));
  }

  // The webhooks a load hands over, by id order (as committed).
  std::vector<std::shared_ptr<webhook>> load_with(const aes256gcm_key& key, unsigned threads,
                                                  result<void>& outcome) {
    kv_catalog_store s(storage_, key);
    loaded got;
    outcome = s.load(got.sink(), threads);
    std::sort(got.webhooks.begin(), got.webhooks.end(),
              [](const auto& a, const auto& b) { return a->id < b->id; });
    return std::move(got.webhooks);
  }
  std::vector<std::shared_ptr<webhook>> load_ok(unsigned threads = 1) {
    result<void> outcome;
    auto hooks = load_with(key_, threads, outcome);
    EXPECT_TRUE(outcome) << outcome.error().detail;
    return hooks;
  }
  bool has_check() const {
    return storage_.records(table::meta).contains(std::string(kMasterKeyCheckKey));
  }

  object_id_generator ids_;
  aes256gcm_key key_ = aes256gcm_key::generate();
  testing::memory_storage storage_;
  kv_catalog_store store_{storage_, key_};
  std::vector<std::shared_ptr<webhook>> hooks_;
};

TEST_F(MasterKeyCheckTest, TheFirstLoadWritesTheCheckOnceAndLaterLoadsWriteNothing) {
  ASSERT_FALSE(has_check());
  const auto checks_written = [&] {
    std::size_t n = 0;
    for (const write_batch& b : storage_.batches()) {
      for (const auto& op : b.ops) {
        n += op.where == table::meta && op.key == kMasterKeyCheckKey ? 1u : 0u;
      }
    }
    return n;
  };
  const auto first = load_ok();
  ASSERT_TRUE(has_check());
  EXPECT_EQ(checks_written(), 1u);
  const std::size_t batches = storage_.batches().size();
  const std::string check = storage_.records(table::meta).at(std::string(kMasterKeyCheckKey));
  // Sealed: the check's text is not in the store in the clear.
  EXPECT_THAT(storage_.dump(), Not(HasSubstr(std::string(kMasterKeyCheckText))));

  for (unsigned threads : {1u, 4u}) {
    const auto again = load_ok(threads);
    EXPECT_EQ(again.size(), hooks_.size());
  }
  EXPECT_EQ(storage_.batches().size(), batches);
  EXPECT_EQ(checks_written(), 1u);
  EXPECT_EQ(storage_.records(table::meta).at(std::string(kMasterKeyCheckKey)), check);
}

TEST_F(MasterKeyCheckTest, AStoreWithoutTheCheckOpensEverySecretAtLoadThenGetsTheFastPath) {
  // A data directory of a version before the check: the first load opens every secret (the
  // old check of the key), the next one none.
  const auto first = load_ok();
  ASSERT_EQ(first.size(), hooks_.size());
  for (std::size_t i = 0; i < first.size(); ++i) {
    EXPECT_FALSE(first[i]->secret.is_sealed()) << i;
    EXPECT_EQ(first[i]->secret, hooks_[i]->secret.value());
  }
  for (unsigned threads : {1u, 4u}) {
    const auto later = load_ok(threads);
    ASSERT_EQ(later.size(), hooks_.size());
    for (std::size_t i = 0; i < later.size(); ++i) {
      EXPECT_TRUE(later[i]->secret.is_sealed()) << i;
      EXPECT_EQ(later[i]->secret.value(), hooks_[i]->secret.value()) << i;
      EXPECT_FALSE(later[i]->secret.is_sealed()) << i;
      EXPECT_EQ(later[i]->headers, hooks_[i]->headers) << i;
    }
  }
}

TEST_F(MasterKeyCheckTest, AWrongKeyFailsTheLoadWithTheCheck) {
  load_ok();
  ASSERT_TRUE(has_check());
  const std::size_t batches = storage_.batches().size();
  for (unsigned threads : {1u, 4u}) {
    result<void> outcome;
    const auto got = load_with(aes256gcm_key::generate(), threads, outcome);
    ASSERT_FALSE(outcome);
    EXPECT_THAT(outcome.error().detail, HasSubstr(std::string(kMasterKeyCheckKey)));
    EXPECT_THAT(outcome.error().detail,
                HasSubstr("does not open with the master key (a different master key than the "
                          "one this data was written with"));
    EXPECT_TRUE(got.empty());
  }
  EXPECT_EQ(storage_.batches().size(), batches);
}

TEST_F(MasterKeyCheckTest, AWrongKeyFailsTheLoadOfAStoreWithoutTheCheckAndWritesNone) {
  for (unsigned threads : {1u, 4u}) {
    result<void> outcome;
    const auto got = load_with(aes256gcm_key::generate(), threads, outcome);
    ASSERT_FALSE(outcome);
    EXPECT_THAT(outcome.error().detail, HasSubstr("webhooks record"));
    EXPECT_THAT(outcome.error().detail, HasSubstr("does not open with the master key"));
    EXPECT_TRUE(got.empty());
    EXPECT_FALSE(has_check());
  }
  // The right key still loads, and writes the check.
  load_ok();
  EXPECT_TRUE(has_check());
}

TEST_F(MasterKeyCheckTest, ADamagedCheckFailsTheLoad) {
  load_ok();
  std::string check = storage_.records(table::meta).at(std::string(kMasterKeyCheckKey));
  check.back() = static_cast<char>(check.back() ^ 1);
  storage_.put_raw(table::meta, std::string(kMasterKeyCheckKey), check);
  result<void> outcome;
  load_with(key_, 1, outcome);
  ASSERT_FALSE(outcome);
  EXPECT_THAT(outcome.error().detail, HasSubstr("does not open with the master key"));
}

TEST_F(MasterKeyCheckTest, SecretsOpenedAtFirstUseSignAsTheOriginals) {
  load_ok();
  const auto later = load_ok();
  ASSERT_EQ(later.size(), hooks_.size());
  const timestamp at = timestamp{std::chrono::milliseconds{1'700'000'100'000}};
  for (std::size_t i = 0; i < later.size(); ++i) {
    ASSERT_TRUE(later[i]->secret.is_sealed());
    auto loaded_signer = webhook_signer::for_webhook(*later[i], at);
    auto original_signer = webhook_signer::create(hooks_[i]->secret.value());
    ASSERT_TRUE(loaded_signer && original_signer) << i;
    const std::string signature = loaded_signer->sign("msg_2Kx", 1'700'000'100, R"({"n":1})");
    EXPECT_EQ(signature, original_signer->sign("msg_2Kx", 1'700'000'100, R"({"n":1})")) << i;
    EXPECT_TRUE(
        original_signer->verify("msg_2Kx", "1700000100", R"({"n":1})", signature, 1'700'000'100)
            .ok())
        << i;
  }
}

TEST_F(MasterKeyCheckTest, ManyThreadsOpeningOneSecretAtOnceSeeOneValue) {
  load_ok();
  const auto later = load_ok();
  constexpr int kThreads = 8;
  std::vector<std::vector<const std::string*>> seen(kThreads);
  std::barrier start(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        // Every thread walks every webhook, each from another starting point, so that first
        // uses race on each of them.
        for (std::size_t n = 0; n < later.size(); ++n) {
          const webhook& w = *later[(n + static_cast<std::size_t>(t) * 5) % later.size()];
          ASSERT_TRUE(w.secret.is_sealed() || !w.secret.value().empty());
          seen[static_cast<std::size_t>(t)].push_back(&w.secret.value());
        }
      });
    }
  }
  for (std::size_t i = 0; i < later.size(); ++i) {
    const std::string* mine = &later[i]->secret.value();
    EXPECT_EQ(*mine, hooks_[i]->secret.value());
    // The same string object for every thread: one opened copy is published, every reader gets it.
    for (int t = 0; t < kThreads; ++t) {
      const std::size_t at =
          (i + later.size() - (static_cast<std::size_t>(t) * 5) % later.size()) % later.size();
      EXPECT_EQ(seen[static_cast<std::size_t>(t)][at], mine) << "thread " << t << ", webhook " << i;
    }
  }
}

TEST_F(MasterKeyCheckTest, ASecretThatDoesNotOpenAtFirstUseCannotSign) {
  load_ok();
  // Damage one record's sealed secret after the check was written: start-up no longer opens
  // it, so the load succeeds, and its first use finds it.
  const std::string key(hooks_[0]->id.binary());
  auto json = storage_.records(table::webhooks).at(key);
  const auto at = json.find("\"secret\":\"") + 10;
  json[at] = json[at] == 'A' ? 'B' : 'A';
  storage_.put_raw(table::webhooks, key, json);
  const auto later = load_ok();
  ASSERT_FALSE(later.empty());
  EXPECT_TRUE(later[0]->secret.value().empty());
  auto signer = webhook_signer::for_webhook(
      *later[0], timestamp{std::chrono::milliseconds{1'700'000'100'000}});
  ASSERT_FALSE(signer);
  EXPECT_THAT(signer.error().detail, HasSubstr("does not open with the master key"));
  // The others are unaffected.
  EXPECT_EQ(later[1]->secret.value(), hooks_[1]->secret.value());
}

TEST_F(MasterKeyCheckTest, ACopyOfASealedSecretOpensToTheSameValueAndPlainTextReplacesIt) {
  load_ok();
  const auto later = load_ok();
  webhook copy = *later[2];
  EXPECT_TRUE(copy.secret.is_sealed());
  EXPECT_EQ(copy.secret.value(), hooks_[2]->secret.value());
  EXPECT_TRUE(later[2]->secret.is_sealed());  // the original is not opened by its copy
  webhook moved = std::move(copy);
  EXPECT_EQ(moved.secret.value(), hooks_[2]->secret.value());
  moved.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  EXPECT_FALSE(moved.secret.is_sealed());
  EXPECT_EQ(moved.secret.value(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  // Encoding a sealed secret seals its plain text again: it decodes to the same value.
  const auto back = decode_webhook(later[3]->id.binary(), encode(*later[3], key_), key_);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->secret, hooks_[3]->secret.value());
}

}  // namespace
}  // namespace hookd
