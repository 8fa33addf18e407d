// Helper program for the storage tests, run with fork+exec so that it is a real second process
// with its own RocksDB instance:
//
//   crash_child hold <db>                      open <db>, print "ready" (or "error: <detail>"),
//                                              keep it open until stdin reaches EOF, close cleanly
//   crash_child write <db> <first_seq> <seed>  open <db> and write the batches of
//                                              crash_workload.hpp from <first_seq> on, printing
//                                              each seq only after write() succeeded, until killed
//   crash_child background <db>               open <db> with the default background policy,
//                                              write past a memtable, wait (up to 20 s) for
//                                              RocksDB's flush to write a table file, print
//                                              "idle_jobs <n> idle_threads <m>" (jobs begun
//                                              lowered, RocksDB threads under SCHED_IDLE), exit
//   crash_child catalog <data-dir>             open the data dir through the catalog, print
//                                              "ready <project id>", then create webhooks, up to
//                                              kCatalogWindow at a time, printing
//                                              "wh <id> <name>" from each completion, until killed
//
// stdout is a pipe to the test; every line is written with one write(2), unbuffered, so that
// nothing acknowledged is lost in a stdio buffer when the test SIGKILLs this process.

#include "core/catalog/catalog.hpp"
#include "core/common/completion.hpp"
#include "crash_workload.hpp"
#include "storage/data_dir.hpp"
#include "storage/rocksdb_storage.hpp"

#include <sched.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <semaphore>
#include <string>
#include <thread>

namespace {

using namespace hookd;
namespace wl = hookd::crash_workload;

bool say(const std::string& line) {
  const std::string text = line + "\n";
  return ::write(1, text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

write_batch make_batch(std::uint64_t seq, std::uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ULL + seq);
  const std::size_t k = 1 + static_cast<std::size_t>(rng() % 24);
  write_batch batch;
  batch.put(table::meta, wl::marker_key(seq), std::to_string(k));
  for (std::size_t j = 0; j < k; ++j) {
    // Mostly small values, some of tens of KiB, so that memtables fill and flushes run while
    // the test kills the process.
    const bool large = rng() % 5 == 0;
    const std::size_t len = static_cast<std::size_t>(large ? 1024 + rng() % 31744 : rng() % 257);
    batch.put(wl::kRecordTables[j % wl::kRecordTables.size()], wl::record_key(seq, j),
              wl::record_value(seq, j, len));
  }
  batch.put(table::meta, "last", std::to_string(seq));
  batch.put(table::queue, wl::tmp_key(seq), std::to_string(seq));
  if (seq > 1) batch.erase(table::queue, wl::tmp_key(seq - 1));
  return batch;
}

int hold(const std::string& db) {
  auto opened = open_rocksdb_storage(db);
  if (!opened) {
    say("error: " + opened.error().detail);
    return 1;
  }
  say("ready");
  char c;
  while (::read(0, &c, 1) > 0) {
  }
  return 0;
}

int background(const std::string& db) {
  auto opened = open_rocksdb_storage(db);
  if (!opened) {
    say("error: " + opened.error().detail);
    return 1;
  }
  const std::unique_ptr<storage> store = std::move(*opened);
  if (auto written = wl::write_past_a_memtable(*store); !written) {
    say("error: " + written.error().detail);
    return 1;
  }
  for (int i = 0; i < 2000 && !wl::has_table_file(db); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!wl::has_table_file(db)) {
    say("error: RocksDB wrote no table file in 20 s");
    return 1;
  }
  int idle_threads = 0;
  for (const auto& [tid, policy] : wl::rocksdb_thread_policies()) {
    idle_threads += policy == SCHED_IDLE ? 1 : 0;
  }
  say("idle_jobs " + std::to_string(store->stats().background_idle_jobs) + " idle_threads " +
      std::to_string(idle_threads));
  return 0;
}

int write_until_killed(const std::string& db, std::uint64_t first, std::uint64_t seed) {
  // If the test dies, do not linger writing into its temp dir.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto opened = open_rocksdb_storage(db);
  if (!opened) {
    std::fprintf(stderr, "crash_child: %s\n", opened.error().detail.c_str());
    return 1;
  }
  storage& store = **opened;
  constexpr std::uint64_t kSafetyBound = 1'000'000;  // the test kills us long before this
  for (std::uint64_t seq = first; seq < first + kSafetyBound; ++seq) {
    if (auto written = store.write(make_batch(seq, seed)); !written) {
      std::fprintf(stderr, "crash_child: write %llu failed: %s\n",
                   static_cast<unsigned long long>(seq), written.error().detail.c_str());
      return 2;
    }
    if (!say(std::to_string(seq))) return 3;  // the test stopped listening
  }
  return 4;
}

int fail(const char* what, const problem& p) {
  std::fprintf(stderr, "crash_child: %s: %s\n", what, p.detail.c_str());
  return 1;
}

int catalog_until_killed(const std::string& data_dir) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (auto made = ensure_data_dir(data_dir); !made) return fail("data dir", made.error());
  auto key = load_or_create_master_key(data_dir, std::nullopt);
  if (!key) return fail("master key", key.error());
  auto opened = open_rocksdb_storage(data_dir + "/db");
  if (!opened) return fail("open", opened.error());

  catalog_options options;
  options.master_key = *key;
  options.max_webhooks_per_project = 1'000'000;  // the limit is not what this exercises
  catalog cat(**opened, options);
  if (auto loaded = cat.load(); !loaded) return fail("load", loaded.error());
  cat.start();

  std::shared_ptr<const organization> org;
  if (auto orgs = cat.list_organizations(); !orgs.empty()) {
    org = orgs.front();
  } else {
    auto created = wait_for<std::shared_ptr<const organization>>(
        [&](auto done) { cat.create_organization(organization_input{"Crash org"}, done); });
    if (!created) return fail("create organization", created.error());
    org = *created;
  }
  std::shared_ptr<const project> proj;
  if (auto projects = cat.list_projects(org->id); !projects.empty()) {
    proj = projects.front();
  } else {
    project_input in;
    in.name = "Crash project";
    in.slug = "crash";
    auto created = wait_for<std::shared_ptr<const project>>(
        [&](auto done) { cat.create_project(org->id, in, done); });
    if (!created) return fail("create project", created.error());
    proj = *created;
  }
  if (!say("ready " + proj->id.to_string())) return 3;

  // Several creates in flight, so that the writer groups them into shared batches (group
  // commit) while the kill lands.
  static std::counting_semaphore<wl::kCatalogWindow> slots(wl::kCatalogWindow);
  const std::size_t base = cat.list_webhooks(proj->id)->size();
  for (std::size_t n = base; n < base + 1'000'000; ++n) {
    slots.acquire();
    webhook_input in;
    in.name = "hook-" + std::to_string(n);
    in.url = "https://example.com/crash/" + std::to_string(n);
    in.events = {"order.created"};
    cat.create_webhook(
        org->id, proj->id, std::move(in), [](result<std::shared_ptr<const webhook>> r) {
          if (!r) {
            std::fprintf(stderr, "crash_child: create webhook: %s\n", r.error().detail.c_str());
            std::_Exit(2);
          }
          if (!say("wh " + (*r)->id.to_string() + " " + (*r)->name)) std::_Exit(3);
          slots.release();
        });
  }
  return 4;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "hold" && argc == 3) return hold(argv[2]);
  if (mode == "background" && argc == 3) return background(argv[2]);
  if (mode == "catalog" && argc == 3) return catalog_until_killed(argv[2]);
  if (mode == "write" && argc == 5) {
    const auto first = wl::parse_u64(argv[3]);
    const auto seed = wl::parse_u64(argv[4]);
    if (first && seed && *first > 0) return write_until_killed(argv[2], *first, *seed);
  }
  std::fprintf(stderr,
               "usage: crash_child hold <db>\n"
               "       crash_child write <db> <first_seq> <seed>\n"
               "       crash_child catalog <data-dir>\n");
  return 64;
}
