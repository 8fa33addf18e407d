// A job whose 202 was sent is delivered after kill -9 (docs/openapi.yaml): the real hookd binary
// accepts events while its receiver fails, is SIGKILLed, and is started again over the same data
// dir with the receiver now answering 200; every accepted event arrives, under the delivery id it
// had before the crash.

#include "support/hookd_process.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

namespace hookd::test {
namespace {

constexpr std::string_view kToken = "hkd_crash-test-admin-token-0123456789abcdef";

// hookd with these tests' delivery settings (retries every 200 ms, 40 times: enough that nothing
// runs out of attempts during a test) and a known admin token, over <dir>/data.
class crash_hookd : public hookd_process {
 public:
  crash_hookd(const std::filesystem::path& dir, const std::string& name,
              std::vector<std::string> extra_args = {})
      : hookd_process(dir / "data", dir / name, delivery_args(std::move(extra_args)),
                      {"HOOKD_ADMIN_TOKEN=" + std::string(kToken)}) {}

 private:
  static std::vector<std::string> delivery_args(std::vector<std::string> extra) {
    std::string schedule = "200ms";
    for (int i = 1; i < 40; ++i) schedule += ",200ms";
    std::vector<std::string> args{"--allow-private-targets", "--retry-schedule", schedule,
                                  "--delivery-timeout", "5s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
};

http_reply call(http_client& client, bhttp::verb method, const std::string& target,
                const json::value& body) {
  return client.request(
      method, target, json::serialize(body),
      {{"Authorization", "Bearer " + std::string(kToken)}, {"Content-Type", "application/json"}});
}

TEST(CrashDelivery, EveryAcceptedDeliveryArrivesAfterKillNine) {
  std::string pattern = (std::filesystem::temp_directory_path() / "hookd-crash-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::filesystem::path dir = pattern;

  receiver sink;
  sink.set_default("/crash", {500, {}, "not yet"});
  constexpr std::size_t kEvents = 30;
  std::string org, proj, hook_id;
  {
    crash_hookd first(dir, "first");
    http_client client(first.endpoint());
    auto r = call(client, bhttp::verb::post, "/api/v1/organizations", {{"name", "Crash"}});
    ASSERT_EQ(r.status, 201u) << r.body;
    org = r.str("_id");
    r = call(client, bhttp::verb::post, test_server::projects_path(org),
             {{"name", "Crash project"}, {"slug", "crash"}});
    ASSERT_EQ(r.status, 201u) << r.body;
    proj = r.str("_id");
    r = call(client, bhttp::verb::post, test_server::webhooks_path(org, proj),
             {{"name", "Crash hook"}, {"url", sink.url("/crash")}, {"events", json::array{"*"}}});
    ASSERT_EQ(r.status, 201u) << r.body;
    hook_id = r.str("_id");

    for (std::size_t i = 0; i < kEvents; ++i) {
      r = call(client, bhttp::verb::post, delivery_stack::events_path(org, proj),
               {{"type", "crash.test"}, {"data", {{"seq", i}}}});
      ASSERT_EQ(r.status, 202u) << r.body;
      ASSERT_EQ(r.json().at("deliveries").as_int64(), 1);
    }
    // Some attempts have failed (and some may be in flight) when the process dies.
    ASSERT_TRUE(sink.wait_for("/crash", 5));
    client.close();
    first.child().signal(SIGKILL);
    ASSERT_EQ(first.child().wait_exit(), 128 + SIGKILL);
  }
  const auto failed_before = sink.count("/crash");

  sink.set_default("/crash", {200, {}, "thanks"});
  crash_hookd second(dir, "second");
  auto delivered = [&] {
    std::set<std::int64_t> seqs;
    for (const auto& got : sink.requests("/crash")) {
      if (got.answered != 200) continue;
      seqs.insert(json::parse(got.body).at("data").at("seq").as_int64());
    }
    return seqs;
  };
  ASSERT_TRUE(eventually([&] { return delivered().size() == kEvents; }, 60s))
      << delivered().size() << " of " << kEvents << " delivered";
  EXPECT_GT(sink.count("/crash"), failed_before);

  // Every request for one event carried the same delivery id, before and after the crash.
  std::map<std::int64_t, std::set<std::string>> ids_by_seq;
  for (const auto& got : sink.requests("/crash")) {
    ids_by_seq[json::parse(got.body).at("data").at("seq").as_int64()].insert(
        got.header("webhook-id"));
  }
  ASSERT_EQ(ids_by_seq.size(), kEvents);
  for (const auto& [seq, ids] : ids_by_seq) EXPECT_EQ(ids.size(), 1u) << "seq " << seq;

  // The API agrees: all succeeded.
  http_client client(second.endpoint());
  ASSERT_TRUE(eventually([&] {
    auto r = client.request(
        bhttp::verb::get,
        delivery_stack::deliveries_path(org, proj, hook_id) + "?status=succeeded&limit=100", {},
        {{"Authorization", "Bearer " + std::string(kToken)}});
    return r.status == 200 && r.json().at("data").as_array().size() == kEvents;
  }));
  client.close();

  second.child().signal(SIGTERM);
  EXPECT_EQ(second.child().wait_exit(), 0) << second.child().output(true);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

// kill -9 while retention sweeps run (--retention 1s: a sweep every second, dropping the
// finished deliveries of one webhook) loses no pending delivery of the other: after five crashes,
// every event accepted for it arrives once its receiver answers.
TEST(CrashDelivery, KillNineDuringRetentionSweepsLosesNoPendingDelivery) {
  std::string pattern = (std::filesystem::temp_directory_path() / "hookd-crash-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::filesystem::path dir = pattern;
  // Five rounds of failures must not run a delivery out of attempts: 600 retries, 200 ms apart.
  std::string schedule = "200ms";
  for (int i = 1; i < 600; ++i) schedule += ",200ms";
  const std::vector<std::string> args{"--retention", "1s", "--retry-schedule", schedule};

  receiver sink;
  sink.set_default("/later", {500, {}, "not yet"});
  sink.set_default("/now", {200, {}, "ok"});
  std::string org, proj, later_hook;
  std::size_t accepted = 0;
  for (int round = 0; round < 5; ++round) {
    crash_hookd run(dir, "run" + std::to_string(round), args);
    http_client client(run.endpoint());
    http_reply r;
    if (round == 0) {
      r = call(client, bhttp::verb::post, "/api/v1/organizations", {{"name", "Sweep"}});
      ASSERT_EQ(r.status, 201u) << r.body;
      org = r.str("_id");
      r = call(client, bhttp::verb::post, test_server::projects_path(org),
               {{"name", "Sweep project"}, {"slug", "sweep"}});
      ASSERT_EQ(r.status, 201u) << r.body;
      proj = r.str("_id");
      for (const char* path : {"/later", "/now"}) {
        r = call(client, bhttp::verb::post, test_server::webhooks_path(org, proj),
                 {{"name", std::string("Hook ") + path},
                  {"url", sink.url(path)},
                  {"events", json::array{"*"}}});
        ASSERT_EQ(r.status, 201u) << r.body;
        if (std::string_view(path) == "/later") later_hook = r.str("_id");
      }
    }
    for (int i = 0; i < 20; ++i, ++accepted) {
      r = call(client, bhttp::verb::post, delivery_stack::events_path(org, proj),
               {{"type", "sweep.test"}, {"data", {{"seq", accepted}}}});
      ASSERT_EQ(r.status, 202u) << r.body;
    }
    // Sweeps run while deliveries to /now finish and /later fails; then the process dies.
    ASSERT_TRUE(sink.wait_for("/now", accepted));
    std::this_thread::sleep_for(1500ms);
    client.close();
    run.child().signal(SIGKILL);
    ASSERT_EQ(run.child().wait_exit(), 128 + SIGKILL);
  }

  sink.set_default("/later", {200, {}, "thanks"});
  crash_hookd last(dir, "last", args);
  auto delivered = [&] {
    std::set<std::int64_t> seqs;
    for (const auto& got : sink.requests("/later")) {
      if (got.answered == 200) seqs.insert(json::parse(got.body).at("data").at("seq").as_int64());
    }
    return seqs;
  };
  ASSERT_TRUE(eventually([&] { return delivered().size() == accepted; }, 60s))
      << delivered().size() << " of " << accepted << " delivered";
  last.child().signal(SIGTERM);
  EXPECT_EQ(last.child().wait_exit(), 0) << last.child().output(true);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

// A project deleted (204) with deliveries pending, then kill -9 at once: after the restart the
// project is still gone and none of its deliveries is attempted again, while another project's
// pending deliveries go out as usual (docs/delivery.md, "Deleting").
TEST(CrashDelivery, APendingDeliveryOfAProjectDeletedBeforeKillNineIsNeverAttempted) {
  std::string pattern = (std::filesystem::temp_directory_path() / "hookd-crash-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::filesystem::path dir = pattern;

  receiver sink;
  sink.set_default("/doomed", {500, {}, "not yet"});
  sink.set_default("/kept", {500, {}, "not yet"});
  constexpr std::size_t kEvents = 10;
  std::string org, doomed, kept;
  {
    crash_hookd first(dir, "first");  // retries every 200 ms
    http_client client(first.endpoint());
    auto r = call(client, bhttp::verb::post, "/api/v1/organizations", {{"name", "Crash"}});
    ASSERT_EQ(r.status, 201u) << r.body;
    org = r.str("_id");
    for (const char* slug : {"doomed", "kept"}) {
      r = call(client, bhttp::verb::post, test_server::projects_path(org),
               {{"name", std::string("Project ") + slug}, {"slug", slug}});
      ASSERT_EQ(r.status, 201u) << r.body;
      const std::string proj = r.str("_id");
      (std::string_view(slug) == "doomed" ? doomed : kept) = proj;
      r = call(client, bhttp::verb::post, test_server::webhooks_path(org, proj),
               {{"name", std::string("Hook ") + slug},
                {"url", sink.url(std::string("/") + slug)},
                {"events", json::array{"*"}}});
      ASSERT_EQ(r.status, 201u) << r.body;
    }
    for (std::size_t i = 0; i < kEvents; ++i) {
      for (const std::string& proj : {doomed, kept}) {
        r = call(client, bhttp::verb::post, delivery_stack::events_path(org, proj),
                 {{"type", "crash.test"}, {"data", {{"seq", i}}}});
        ASSERT_EQ(r.status, 202u) << r.body;
      }
    }
    // Attempts to both have failed and are being retried when the project is deleted.
    ASSERT_TRUE(sink.wait_for("/doomed", 2 * kEvents));
    r = client.request(bhttp::verb::delete_, test_server::projects_path(org) + "/" + doomed, {},
                       {{"Authorization", "Bearer " + std::string(kToken)}});
    ASSERT_EQ(r.status, 204u) << r.body;
    first.child().signal(SIGKILL);
    ASSERT_EQ(first.child().wait_exit(), 128 + SIGKILL);
    client.close();
  }
  const std::size_t doomed_before = sink.count("/doomed");

  sink.set_default("/kept", {200, {}, "thanks"});
  crash_hookd second(dir, "second");
  // Every pending delivery of the other project arrives: the dispatcher runs, and the deleted
  // project's deliveries, due just as often, would have come by now had they survived.
  auto kept_delivered = [&] {
    std::set<std::int64_t> seqs;
    for (const auto& got : sink.requests("/kept")) {
      if (got.answered == 200) seqs.insert(json::parse(got.body).at("data").at("seq").as_int64());
    }
    return seqs.size();
  };
  ASSERT_TRUE(eventually([&] { return kept_delivered() == kEvents; }, 60s)) << kept_delivered();
  std::this_thread::sleep_for(1s);  // five more retry periods
  EXPECT_EQ(sink.count("/doomed"), doomed_before);

  http_client client(second.endpoint());
  const header_list admin{{"Authorization", "Bearer " + std::string(kToken)}};
  auto gone =
      client.request(bhttp::verb::get, test_server::projects_path(org) + "/" + doomed, {}, admin);
  EXPECT_EQ(gone.status, 404u) << gone.body;
  auto history = client.request(bhttp::verb::get,
                                delivery_stack::project_deliveries_path(org, doomed), {}, admin);
  EXPECT_EQ(history.status, 404u) << history.body;
  auto other =
      client.request(bhttp::verb::get, test_server::projects_path(org) + "/" + kept, {}, admin);
  EXPECT_EQ(other.status, 200u) << other.body;
  // Nothing was left for the start to finish: the log's part was durable before the 204.
  auto metrics = client.request(bhttp::verb::get, "/metrics");
  EXPECT_NE(metrics.body.find("hookd_deliveries_total{outcome=\"deleted\"} 0\n"), std::string::npos)
      << metrics.body;
  client.close();

  second.child().signal(SIGTERM);
  EXPECT_EQ(second.child().wait_exit(), 0) << second.child().output(true);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

// A webhook auto-disabled with its deliveries paused, then kill -9: after the restart it is still
// inactive with its reason, every delivery is still paused and none is attempted, and
// PATCH {active: true} sends each of them, under the id it had (docs/delivery.md, "Paused
// deliveries").
TEST(CrashDelivery, KillNineWhilePausedLosesNothing) {
  std::string pattern = (std::filesystem::temp_directory_path() / "hookd-crash-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::filesystem::path dir = pattern;
  const std::vector<std::string> options{"--disable-after", "1s"};

  receiver sink;
  sink.set_default("/paused", {500, {}, "down"});
  constexpr std::size_t kEvents = 10;
  std::string org, proj, hook_id;
  const header_list admin{{"Authorization", "Bearer " + std::string(kToken)}};
  const auto paused_ids = [&](http_client& client) {
    std::set<std::string> ids;
    auto r = client.request(
        bhttp::verb::get,
        delivery_stack::deliveries_path(org, proj, hook_id) + "?status=paused&limit=100", {},
        admin);
    if (r.status != 200) return ids;
    const json::value page = r.json();
    for (const auto& d : page.at("data").as_array()) {
      ids.insert(std::string(d.at("_id").as_string()));
    }
    return ids;
  };
  std::set<std::string> paused_before;
  {
    crash_hookd first(dir, "first", options);  // retries every 200 ms
    http_client client(first.endpoint());
    auto r = call(client, bhttp::verb::post, "/api/v1/organizations", {{"name", "Crash"}});
    ASSERT_EQ(r.status, 201u) << r.body;
    org = r.str("_id");
    r = call(client, bhttp::verb::post, test_server::projects_path(org),
             {{"name", "Crash project"}, {"slug", "crash"}});
    ASSERT_EQ(r.status, 201u) << r.body;
    proj = r.str("_id");
    r = call(client, bhttp::verb::post, test_server::webhooks_path(org, proj),
             {{"name", "Paused hook"}, {"url", sink.url("/paused")}, {"events", json::array{"*"}}});
    ASSERT_EQ(r.status, 201u) << r.body;
    hook_id = r.str("_id");
    for (std::size_t i = 0; i < kEvents; ++i) {
      r = call(client, bhttp::verb::post, delivery_stack::events_path(org, proj),
               {{"type", "crash.test"}, {"data", {{"seq", i}}}});
      ASSERT_EQ(r.status, 202u) << r.body;
    }
    // Failing for a second, at least ten times: disabled, everything paused.
    ASSERT_TRUE(eventually([&] { return paused_ids(client).size() == kEvents; }, 30s));
    paused_before = paused_ids(client);
    first.child().signal(SIGKILL);
    ASSERT_EQ(first.child().wait_exit(), 128 + SIGKILL);
    client.close();
  }
  const std::size_t attempts_before = sink.count("/paused");

  sink.set_default("/paused", {200, {}, "thanks"});
  crash_hookd second(dir, "second", options);
  http_client client(second.endpoint());
  auto w =
      client.request(bhttp::verb::get, test_server::webhook_path(org, proj, hook_id), {}, admin);
  ASSERT_EQ(w.status, 200u) << w.body;
  EXPECT_EQ(w.json().at("active"), json::value(false));
  EXPECT_EQ(w.json().at("disabledReason"), "failing");
  EXPECT_EQ(paused_ids(client), paused_before);
  std::this_thread::sleep_for(1s);  // five retry periods: nothing goes while paused
  EXPECT_EQ(sink.count("/paused"), attempts_before);

  auto on = call(client, bhttp::verb::patch, test_server::webhook_path(org, proj, hook_id),
                 {{"active", true}});
  ASSERT_EQ(on.status, 200u) << on.body;
  std::set<std::string> delivered;
  ASSERT_TRUE(eventually(
      [&] {
        delivered.clear();
        for (const auto& got : sink.requests("/paused")) {
          if (got.answered == 200) delivered.insert(got.header("webhook-id"));
        }
        return delivered.size() == kEvents;
      },
      60s))
      << delivered.size();
  EXPECT_EQ(delivered, paused_before);
  client.close();

  second.child().signal(SIGTERM);
  EXPECT_EQ(second.child().wait_exit(), 0) << second.child().output(true);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

// A redelivery (202) of a failed delivery, then kill -9 before its attempt can finish: after the
// restart it is still pending and goes out under the same webhook-id, with its first attempt still
// listed (docs/delivery.md, "Redelivery and recovery").
TEST(CrashDelivery, ARedeliveryAcceptedBeforeKillNineIsDelivered) {
  std::string pattern = (std::filesystem::temp_directory_path() / "hookd-crash-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::filesystem::path dir = pattern;

  receiver sink;
  // Fails the delivery after its two attempts (a 410 would fail it at once, but also disable the
  // webhook, and a redelivery would then wait, paused).
  sink.set_default("/again", {500, {}, "down"});
  std::string org, proj, hook_id, delivery_id;
  const header_list admin{{"Authorization", "Bearer " + std::string(kToken)}};
  {
    crash_hookd first(dir, "first", {"--retry-schedule", "100ms"});
    http_client client(first.endpoint());
    auto r = call(client, bhttp::verb::post, "/api/v1/organizations", {{"name", "Again"}});
    ASSERT_EQ(r.status, 201u) << r.body;
    org = r.str("_id");
    r = call(client, bhttp::verb::post, test_server::projects_path(org),
             {{"name", "Again project"}, {"slug", "again"}});
    ASSERT_EQ(r.status, 201u) << r.body;
    proj = r.str("_id");
    r = call(client, bhttp::verb::post, test_server::webhooks_path(org, proj),
             {{"name", "Again hook"}, {"url", sink.url("/again")}, {"events", json::array{"*"}}});
    ASSERT_EQ(r.status, 201u) << r.body;
    hook_id = r.str("_id");
    r = call(client, bhttp::verb::post, delivery_stack::events_path(org, proj),
             {{"type", "again.test"}, {"data", 1}});
    ASSERT_EQ(r.status, 202u) << r.body;
    ASSERT_TRUE(sink.wait_for("/again", 1));
    delivery_id = sink.requests("/again").at(0).header("webhook-id");
    const std::string path =
        delivery_stack::deliveries_path(org, proj, hook_id) + "/" + delivery_id;
    ASSERT_TRUE(eventually([&] {
      auto got = client.request(bhttp::verb::get, path, {}, admin);
      return got.status == 200 && got.str("status") == "failed";
    }));
    // The redelivery's attempt is held by the receiver until the process is dead.
    sink.set_default("/again", {200, {}, "thanks", 0ms, true});
    r = client.request(bhttp::verb::post, path + "/redeliver", {}, admin);
    ASSERT_EQ(r.status, 202u) << r.body;
    first.child().signal(SIGKILL);
    ASSERT_EQ(first.child().wait_exit(), 128 + SIGKILL);
    client.close();
  }
  sink.release_held();  // the first process's held attempt, if it got that far, is answered

  crash_hookd second(dir, "second");
  http_client client(second.endpoint());
  const std::string path = delivery_stack::deliveries_path(org, proj, hook_id) + "/" + delivery_id;
  ASSERT_TRUE(eventually(
      [&] {
        auto got = client.request(bhttp::verb::get, path, {}, admin);
        return got.status == 200 && got.str("status") == "succeeded";
      },
      60s));
  auto got = client.request(bhttp::verb::get, path, {}, admin);
  const json::value detail = got.json();
  const auto& attempts = detail.at("attempts").as_array();
  ASSERT_EQ(attempts.size(), 3u) << got.body;
  EXPECT_EQ(attempts.at(0).at("statusCode").as_int64(), 500);
  EXPECT_EQ(attempts.at(1).at("statusCode").as_int64(), 500);
  EXPECT_EQ(attempts.at(2).at("statusCode").as_int64(), 200);
  for (const auto& req : sink.requests("/again")) EXPECT_EQ(req.header("webhook-id"), delivery_id);
  client.close();

  second.child().signal(SIGTERM);
  EXPECT_EQ(second.child().wait_exit(), 0) << second.child().output(true);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace
}  // namespace hookd::test
