#pragma once
// Shared by crash_child.cpp (which writes) and the storage tests (which verify and spawn it):
// the shape of the numbered batches, and a small fork+exec helper for the child program.
//
// Batch `seq` (1, 2, 3, ... with no gaps) holds:
//   meta        "batch/<seq>"          -> "<k>"  (how many records the batch has)
//   meta        "last"                 -> "<seq>" (overwritten by every batch)
//   queue       "tmp/<seq>"            -> "<seq>" and an erase of "tmp/<seq - 1>"
//   k records   "b<seq>-<j>" in kRecordTables[j % 4] -> "<seq>:<j>:<len>:" + len filler bytes
// so after any crash a batch is either entirely there or entirely absent, exactly one "tmp/"
// key exists, and "last" names the newest batch.

#include "core/durable/storage.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hookd::crash_workload {

// The queue among them: its memtable is a vector, not a skip list (storage/rocksdb_storage.cpp).
inline constexpr std::array<table, 4> kRecordTables = {table::queue, table::deliveries,
                                                       table::attempts, table::webhooks};

// How many catalog creates the child keeps in flight (crash_child catalog).
inline constexpr std::ptrdiff_t kCatalogWindow = 16;

// Puts 10 MiB into meta, whose memtables hold 8 MiB (storage/rocksdb_storage.cpp), so that RocksDB
// seals one and flushes it on its own (the background-priority tests, crash_child background).
// Stops at the first write that fails.
inline result<void> write_past_a_memtable(storage& store) {
  const std::string value(64 << 10, 'v');
  for (int i = 0; i < 160; ++i) {
    write_batch batch;
    batch.put(table::meta, "k" + std::to_string(i), value);
    if (auto written = store.write(batch); !written) return written;
  }
  return {};
}

// This process's RocksDB threads (`rocksdb:high`, `rocksdb:low`) and their scheduling policies
// (sched_getscheduler: SCHED_OTHER, SCHED_IDLE...), by thread id.
inline std::vector<std::pair<pid_t, int>> rocksdb_thread_policies() {
  std::vector<std::pair<pid_t, int>> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (!name.starts_with("rocksdb:")) continue;
    const auto tid = static_cast<pid_t>(std::stol(task.path().filename().string()));
    out.emplace_back(tid, ::sched_getscheduler(tid));
  }
  return out;
}

// Whether RocksDB has written a table file into the database directory `db`.
inline bool has_table_file(const std::filesystem::path& db) {
  for (const auto& entry : std::filesystem::directory_iterator(db)) {
    if (entry.path().extension() == ".sst") return true;
  }
  return false;
}

inline std::string padded(std::uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%010llu", static_cast<unsigned long long>(n));
  return buf;
}

inline std::string marker_key(std::uint64_t seq) {
  return "batch/" + padded(seq);
}
inline std::string tmp_key(std::uint64_t seq) {
  return "tmp/" + padded(seq);
}
inline std::string record_prefix(std::uint64_t seq) {
  return "b" + padded(seq) + "-";
}
inline std::string record_key(std::uint64_t seq, std::size_t j) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04zu", j);
  return record_prefix(seq) + buf;
}
inline char filler(std::uint64_t seq, std::size_t j) {
  return static_cast<char>('a' + (seq * 31 + j) % 26);
}
inline std::string record_value(std::uint64_t seq, std::size_t j, std::size_t len) {
  return std::to_string(seq) + ":" + std::to_string(j) + ":" + std::to_string(len) + ":" +
         std::string(len, filler(seq, j));
}

inline std::optional<std::uint64_t> parse_u64(std::string_view s) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// True when `value` is exactly what record_value(seq, j, len) wrote, for the len it names.
inline bool valid_record_value(std::string_view value, std::uint64_t seq, std::size_t j) {
  const std::string head = std::to_string(seq) + ":" + std::to_string(j) + ":";
  if (!value.starts_with(head)) return false;
  value.remove_prefix(head.size());
  const std::size_t colon = value.find(':');
  if (colon == std::string_view::npos) return false;
  const std::optional<std::uint64_t> len = parse_u64(value.substr(0, colon));
  if (!len) return false;
  value.remove_prefix(colon + 1);
  if (value.size() != *len) return false;
  return value.find_first_not_of(filler(seq, j)) == std::string_view::npos;
}

// A child program run with fork+exec, its stdin and stdout connected to pipes.
struct child_process {
  pid_t pid = -1;
  int to_child = -1;    // the child's stdin
  int from_child = -1;  // the child's stdout

  // Reads one '\n'-terminated line (without it) into `line`; false on EOF or after
  // `timeout_ms` without a complete line (a hang guard, not a timing assertion).
  bool read_line(std::string& line, int timeout_ms = 120000) {
    for (;;) {
      if (const std::size_t nl = buffer.find('\n'); nl != std::string::npos) {
        line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        return true;
      }
      pollfd p{from_child, POLLIN, 0};
      const int ready = ::poll(&p, 1, timeout_ms);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return false;
      char chunk[4096];
      const ssize_t n = ::read(from_child, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buffer.append(chunk, static_cast<std::size_t>(n));
    }
  }
  void close_stdin() {
    if (to_child >= 0) ::close(to_child);
    to_child = -1;
  }
  // Waits for the child and returns its wait status.
  int wait() {
    close_stdin();
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (from_child >= 0) ::close(from_child);
    from_child = -1;
    pid = -1;
    return status;
  }
  ~child_process() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      wait();
    }
  }

  std::string buffer;
};

// fork+exec `program` with `args`; false if the pipes or the fork fail.
inline bool spawn(child_process& child, const std::string& program,
                  const std::vector<std::string>& args) {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return false;
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return false;
  }
  std::vector<std::string> storage{program};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec: the test process has threads.
    if (::dup2(in[0], 0) < 0 || ::dup2(out[1], 1) < 0) ::_exit(126);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  child.pid = pid;
  child.to_child = in[1];
  child.from_child = out[0];
  return true;
}

}  // namespace hookd::crash_workload
