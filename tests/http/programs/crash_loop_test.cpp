// The crash loop (docs/operations.md, "What survives what"): writers create and delete webhooks
// over keep-alive connections while the real hookd is SIGKILLed at random points, again and
// again. After every restart each acknowledged create is there with the fields it was created
// with, each acknowledged delete is gone, and nothing else changed; an operation whose answer
// the kill cut off may have happened or not, but wholly: a create left behind is complete, and
// once seen either way it stays that way.
//
// HOOKD_CRASH_KILLS (default 20) sets the number of kills and HOOKD_CRASH_SEED the random
// choices (the seed is printed); tests/crash_loop.sh runs a longer loop with this test.

#include "support/hookd_process.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace hookd::test {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kToken = "hkd_crash-loop-admin-token-0123456789abcdef";
constexpr int kWriters = 4;

std::size_t env_number(const char* name, std::size_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? static_cast<std::size_t>(std::stoull(v)) : fallback;
}

// What a create sends, derived from its unique name, so that a webhook found after a crash can
// be checked field by field even when its create was never answered.
json::object create_body(const std::string& name) {
  return {{"name", name},
          {"url", "https://example.com/crash/" + name},
          {"events", json::array{"crash." + name.substr(name.rfind('-') + 1)}}};
}

// The state every restart must show, and the counts the test reports. Guarded by `mutex`.
struct crash_model {
  std::mutex mutex;
  std::map<std::string, std::string> live;  // id -> name: must be present
  std::set<std::string> deleted;            // must be absent
  // Since the last kill: answers the kill cut off.
  std::map<std::string, std::string> doubtful_deletes;  // id -> name
  std::set<std::string> doubtful_creates;               // names
  std::vector<std::string> violations;

  std::uint64_t creates_acked = 0, deletes_acked = 0;
  std::uint64_t doubtful_done = 0, doubtful_not_done = 0;

  void violation(std::string what) {
    std::lock_guard lock(mutex);
    violations.push_back(std::move(what));
  }
};

// One writer for one life of hookd: creates (two in three) and deletes its own webhooks until a
// request gets no answer, which is the kill.
void writer(asio::ip::tcp::endpoint at, std::string hooks_path, int number, std::uint64_t seed,
            crash_model& model, std::atomic<std::uint64_t>& next_name) {
  std::mt19937_64 rng(seed);
  const std::string prefix = "w" + std::to_string(number) + "-";
  std::vector<std::string> mine;  // ids of live webhooks this writer created
  {
    std::lock_guard lock(model.mutex);
    for (const auto& [id, name] : model.live) {
      if (name.starts_with(prefix)) mine.push_back(id);
    }
  }
  http_client client(at);
  const header_list headers{{"Authorization", "Bearer " + std::string(kToken)},
                            {"Content-Type", "application/json"}};
  for (;;) {
    if (!mine.empty() && rng() % 3 == 0) {
      const std::size_t pick = rng() % mine.size();
      const std::string id = mine[pick];
      mine[pick] = mine.back();
      mine.pop_back();
      std::string name;
      {
        std::lock_guard lock(model.mutex);
        name = model.live.at(id);
      }
      auto r =
          client.try_request(bhttp::verb::delete_, hooks_path + "/" + id, std::nullopt, headers);
      std::lock_guard lock(model.mutex);
      if (!r) {
        model.live.erase(id);
        model.doubtful_deletes.emplace(id, name);
        return;
      }
      if (r->status != 204) {
        model.violations.push_back("DELETE " + id + " answered " + std::to_string(r->status) +
                                   ": " + r->body);
        return;
      }
      model.live.erase(id);
      model.deleted.insert(id);
      ++model.deletes_acked;
      continue;
    }
    const std::string name = prefix + std::to_string(next_name.fetch_add(1));
    auto r = client.try_request(bhttp::verb::post, hooks_path, json::serialize(create_body(name)),
                                headers);
    std::lock_guard lock(model.mutex);
    if (!r) {
      model.doubtful_creates.insert(name);
      return;
    }
    if (r->status != 201) {
      model.violations.push_back("POST " + name + " answered " + std::to_string(r->status) + ": " +
                                 r->body);
      return;
    }
    const std::string id = r->str("_id");
    model.live.emplace(id, name);
    mine.push_back(id);
    ++model.creates_acked;
  }
}

// Compares what hookd lists with the model, resolving the doubtful operations of the last life.
void verify(http_client& client, const std::string& hooks_path, crash_model& model,
            std::size_t round) {
  auto r = client.request(bhttp::verb::get, hooks_path, std::nullopt,
                          {{"Authorization", "Bearer " + std::string(kToken)}});
  const std::string when = "after kill " + std::to_string(round) + ": ";
  if (r.status != 200) {
    model.violation(when + "listing answered " + std::to_string(r.status));
    return;
  }
  std::map<std::string, json::object> present;
  const json::value listing = r.json();  // the loop must not range over a temporary's array
  for (const auto& w : listing.as_array()) {
    present.emplace(std::string(w.at("_id").as_string()), w.as_object());
  }

  std::lock_guard lock(model.mutex);
  auto whole = [&](const std::string& id, const json::object& w, const std::string& name) {
    const json::object sent = create_body(name);
    for (const char* field : {"name", "url", "events"}) {
      if (w.at(field) != sent.at(field)) {
        model.violations.push_back(when + id + " has " + field + " " +
                                   json::serialize(w.at(field)) + ", created with " +
                                   json::serialize(sent.at(field)));
      }
    }
  };
  for (const auto& [id, w] : present) {
    const std::string name(w.at("name").as_string());
    if (auto it = model.live.find(id); it != model.live.end()) {
      whole(id, w, it->second);
    } else if (auto d = model.doubtful_deletes.find(id); d != model.doubtful_deletes.end()) {
      whole(id, w, d->second);  // the delete did not happen
      model.live.emplace(id, d->second);
      model.doubtful_deletes.erase(d);
      ++model.doubtful_not_done;
    } else if (model.deleted.contains(id)) {
      model.violations.push_back(when + "acknowledged delete of " + id + " undone");
    } else if (model.doubtful_creates.erase(name) == 1) {
      whole(id, w, name);  // the create happened
      model.live.emplace(id, name);
      ++model.doubtful_done;
    } else {
      model.violations.push_back(when + "unknown webhook " + id + " named " + name);
    }
  }
  for (const auto& [id, name] : model.live) {
    if (!present.contains(id)) {
      model.violations.push_back(when + "acknowledged create of " + id + " (" + name + ") lost");
    }
  }
  // What was not seen did not happen, and must never show up later.
  for (const auto& [id, name] : model.doubtful_deletes) model.deleted.insert(id);
  model.doubtful_done += model.doubtful_deletes.size();
  model.doubtful_not_done += model.doubtful_creates.size();
  model.doubtful_deletes.clear();
  model.doubtful_creates.clear();
}

TEST(CrashLoop, AcknowledgedCreatesAndDeletesSurviveRepeatedSigkill) {
  const std::size_t kills = env_number("HOOKD_CRASH_KILLS", 20);
  const std::uint64_t seed = env_number("HOOKD_CRASH_SEED", std::random_device{}());
  SCOPED_TRACE("HOOKD_CRASH_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);

  std::string pattern = (fs::temp_directory_path() / "hookd-crash-loop-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path dir = pattern;
  const std::vector<std::string> args{"--max-webhooks-per-project", "1000000"};
  const std::vector<std::string> env{"HOOKD_ADMIN_TOKEN=" + std::string(kToken)};
  const header_list admin{{"Authorization", "Bearer " + std::string(kToken)},
                          {"Content-Type", "application/json"}};

  crash_model model;
  std::atomic<std::uint64_t> next_name{0};
  std::string hooks_path;
  const auto started = std::chrono::steady_clock::now();
  for (std::size_t round = 0; round <= kills; ++round) {
    hookd_process hookd(dir / "data", dir / ("run" + std::to_string(round % 2)), args, env);
    http_client client(hookd.endpoint());
    if (round == 0) {
      auto r = client.request(bhttp::verb::post, "/api/v1/organizations",
                              json::serialize(json::object{{"name", "Crash loop"}}), admin);
      ASSERT_EQ(r.status, 201u) << r.body;
      const std::string org = r.str("_id");
      r = client.request(bhttp::verb::post, test_server::projects_path(org),
                         json::serialize(json::object{{"name", "Loop"}, {"slug", "loop"}}), admin);
      ASSERT_EQ(r.status, 201u) << r.body;
      hooks_path = test_server::webhooks_path(org, r.str("_id"));
    } else {
      verify(client, hooks_path, model, round);
    }
    if (round == kills) {
      client.close();
      EXPECT_EQ(hookd.stop(), std::optional<int>(0)) << hookd.child().output(true);
      break;
    }

    std::vector<std::thread> writers;
    for (int n = 0; n < kWriters; ++n) {
      writers.emplace_back(writer, hookd.endpoint(), hooks_path, n, rng(), std::ref(model),
                           std::ref(next_name));
    }
    // A random point: anywhere from the first requests to a few hundred group commits in.
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 480));
    EXPECT_EQ(hookd.kill(), std::optional<int>(128 + SIGKILL));
    for (auto& t : writers) t.join();
    client.close();
  }
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  std::lock_guard lock(model.mutex);
  std::printf(
      "crash loop: %zu kills in %.1f s, %llu creates and %llu deletes acknowledged, %llu cut off "
      "by a kill (%llu had happened, %llu had not), %zu webhooks at the end, %zu violations "
      "(HOOKD_CRASH_SEED=%llu)\n",
      kills, seconds, static_cast<unsigned long long>(model.creates_acked),
      static_cast<unsigned long long>(model.deletes_acked),
      static_cast<unsigned long long>(model.doubtful_done + model.doubtful_not_done),
      static_cast<unsigned long long>(model.doubtful_done),
      static_cast<unsigned long long>(model.doubtful_not_done), model.live.size(),
      model.violations.size(), static_cast<unsigned long long>(seed));
  for (std::size_t i = 0; i < model.violations.size() && i < 20; ++i) {
    ADD_FAILURE() << model.violations[i];
  }
  EXPECT_TRUE(model.violations.empty());
  EXPECT_GT(model.creates_acked, kills) << "the writers hardly wrote";
  EXPECT_GT(model.deletes_acked, 0u);
  if (!HasFailure()) {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
}

}  // namespace
}  // namespace hookd::test
