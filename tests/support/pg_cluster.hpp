#pragma once
// A private PostgreSQL server for tests (docs/cluster.md, "A PostgreSQL for development"): initdb
// in a fresh temporary directory, listening on 127.0.0.1 and a free port only, trust
// authentication for the role "hookd", fsync off (what a commit wrote survives a server crash,
// as stop() simulates, not an OS crash; synchronous_commit stays on for that). PostgreSQL refuses
// to run as root, so as root the server runs as "nobody" (runuser).
//
// One server per test binary (shared_pg_cluster(), started on first use), a fresh database per
// test (create_database()). The server and its directory are removed when the binary ends: by the
// destructor, and, should the binary crash or be killed, by a small reaper process that waits
// for the binary's end on a pipe. Tests call HOOKD_REQUIRE_PG(), which skips with a message only
// when the PostgreSQL server binaries are not installed (tools/setup.sh installs them).

#include <gtest/gtest.h>

#include <libpq-fe.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace hookd::testing {

// The directory of PostgreSQL's server programs (initdb, pg_ctl): $HOOKD_PG_BIN, else the newest
// /usr/lib/postgresql/<major>/bin that has initdb. nullopt when there is none.
inline std::optional<std::string> pg_bin_dir() {
  if (const char* env = std::getenv("HOOKD_PG_BIN"); env != nullptr && *env != '\0') {
    if (std::filesystem::exists(std::string(env) + "/initdb")) return std::string(env);
    return std::nullopt;
  }
  glob_t found{};
  std::vector<std::string> dirs;
  if (::glob("/usr/lib/postgresql/*/bin/initdb", 0, nullptr, &found) == 0) {
    for (std::size_t i = 0; i < found.gl_pathc; ++i) {
      dirs.push_back(std::filesystem::path(found.gl_pathv[i]).parent_path().string());
    }
  }
  ::globfree(&found);
  if (dirs.empty()) return std::nullopt;
  // Newest major version first: compare the numeric directory name.
  std::sort(dirs.begin(), dirs.end(), [](const std::string& a, const std::string& b) {
    auto major = [](const std::string& d) {
      return std::atoi(std::filesystem::path(d).parent_path().filename().c_str());
    };
    return major(a) > major(b);
  });
  return dirs.front();
}

// A single-quoted shell word.
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

class pg_cluster {
 public:
  // Starts a server; throws std::runtime_error with the server's log when it cannot.
  explicit pg_cluster(const std::string& bin_dir) : bin_(bin_dir) {
    char tmpl[] = "/tmp/hookd-pg-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    if (::geteuid() == 0) {
      const passwd* nobody = ::getpwnam("nobody");
      if (nobody == nullptr) throw std::runtime_error("no user \"nobody\" to run PostgreSQL as");
      if (::chown(dir_.c_str(), nobody->pw_uid, nobody->pw_gid) != 0) {
        throw std::runtime_error("chown " + dir_ + " failed");
      }
      as_user_ = "runuser -u nobody -- ";
    }
    ::chmod(dir_.c_str(), 0700);
    start_reaper();
    run_or_throw(as_user_ + shell_quote(bin_ + "/initdb") + " -D " + shell_quote(dir_ + "/data") +
                     " -A trust -U hookd --no-sync -E UTF8 >" + shell_quote(dir_ + "/initdb.log") +
                     " 2>&1",
                 "initdb", dir_ + "/initdb.log");
    // A port that was free a moment ago may be taken by the time the server binds it: try again.
    for (int tries = 0;; ++tries) {
      port_ = free_port();
      if (run(pg_ctl("start", "-w -t 60 -l " + shell_quote(dir_ + "/log"))) == 0) break;
      if (tries == 4) {
        throw std::runtime_error("pg_ctl start failed:\n" + read_file(dir_ + "/log"));
      }
    }
  }
  pg_cluster(const pg_cluster&) = delete;
  pg_cluster& operator=(const pg_cluster&) = delete;

  ~pg_cluster() {
    (void)run(pg_ctl("stop", "-m immediate -w") + " >/dev/null 2>&1");
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    if (reaper_pipe_ >= 0) ::close(reaper_pipe_);  // the reaper finds nothing left to do
    if (reaper_ > 0) ::waitpid(reaper_, nullptr, 0);
  }

  int port() const noexcept { return port_; }
  // Whether the server preloads pg_stat_statements (see pg_ctl below).
  bool has_stat_statements() const {
    return std::filesystem::exists(bin_ + "/../lib/pg_stat_statements.so");
  }
  const std::string& directory() const noexcept { return dir_; }

  // postgresql://hookd@127.0.0.1:<port>/<database>
  std::string uri(const std::string& database = "postgres") const {
    return "postgresql://hookd@127.0.0.1:" + std::to_string(port_) + "/" + database;
  }

  // A new empty database, its name unique in this server.
  std::string create_database() {
    static std::atomic<int> counter{0};
    const std::string name = "t" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
    execute("postgres", "CREATE DATABASE " + name);
    return name;
  }

  // Runs `sql` on `database` as the superuser hookd; throws with the server's message on error.
  void execute(const std::string& database, const std::string& sql) const {
    PGconn* conn = PQconnectdb(uri(database).c_str());
    std::unique_ptr<PGconn, decltype(&PQfinish)> guard(conn, &PQfinish);
    if (PQstatus(conn) != CONNECTION_OK) {
      throw std::runtime_error(std::string("connect: ") + PQerrorMessage(conn));
    }
    PGresult* res = PQexec(conn, sql.c_str());
    const auto status = PQresultStatus(res);
    const std::string message = PQerrorMessage(conn);
    PQclear(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      throw std::runtime_error(sql + ": " + message);
    }
  }

  // The first column of the first row of `sql`'s result as text ("" when NULL or no rows).
  std::string query_value(const std::string& database, const std::string& sql) const {
    PGconn* conn = PQconnectdb(uri(database).c_str());
    std::unique_ptr<PGconn, decltype(&PQfinish)> guard(conn, &PQfinish);
    PGresult* res = PQexec(conn, sql.c_str());
    std::unique_ptr<PGresult, decltype(&PQclear)> rows(res, &PQclear);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      throw std::runtime_error(sql + ": " + PQerrorMessage(conn));
    }
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) return {};
    return PQgetvalue(res, 0, 0);
  }

  // Stops the server at once (as a crash would) and starts it again on the same port.
  void stop() {
    run_or_throw(pg_ctl("stop", "-m immediate -w") + " >/dev/null 2>&1", "pg_ctl stop", {});
  }
  void start() {
    run_or_throw(pg_ctl("start", "-w -t 60 -l " + shell_quote(dir_ + "/log")), "pg_ctl start",
                 dir_ + "/log");
  }

 private:
  std::string pg_ctl(const std::string& action, const std::string& extra) const {
    std::string options = "-k " + dir_ + " -p " + std::to_string(port_) +
                          " -c listen_addresses=127.0.0.1 -c fsync=off" +
                          " -c full_page_writes=off";
    // pg_stat_statements, where installed (Debian's server package has it), so that tests can
    // count the statements an operation costs (CREATE EXTENSION pg_stat_statements per database).
    if (has_stat_statements()) options += " -c shared_preload_libraries=pg_stat_statements";
    return as_user_ + shell_quote(bin_ + "/pg_ctl") + " -D " + shell_quote(dir_ + "/data") +
           " -o " + shell_quote(options) + " " + extra + " " + action + " >/dev/null 2>&1";
  }

  static int run(const std::string& command) {
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  static void run_or_throw(const std::string& command, const std::string& what,
                           const std::string& log) {
    if (run(command) != 0) {
      throw std::runtime_error(what + " failed" + (log.empty() ? "" : ":\n" + read_file(log)));
    }
  }

  static std::string read_file(const std::string& path) {
    std::string out;
    if (FILE* f = std::fopen(path.c_str(), "r")) {
      char buf[4096];
      std::size_t n = 0;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
      std::fclose(f);
    }
    return out;
  }

  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("no free port");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
  }

  // A process that outlives a crash of this one: it reads its stdin (a pipe whose only writer is
  // this process) until end of file, which comes when this process ends in any way, then stops
  // the server and removes the directory. After a clean end both are gone already.
  void start_reaper() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    const std::string script = "cat >/dev/null; " + shell_quote(bin_ + "/pg_ctl") + " -D " +
                               shell_quote(dir_ + "/data") +
                               " -m immediate -w stop >/dev/null 2>&1; rm -rf " + shell_quote(dir_);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::setpgid(0, 0);  // not killed with the test's process group
      ::dup2(fds[0], 0);
      const int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      // pg_ctl stop as root is refused: run the whole script as the server's user; rm -rf of a
      // directory owned by nobody under /tmp succeeds for its owner.
      if (as_user_.empty()) {
        ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
      } else {
        ::execl("/usr/sbin/runuser", "runuser", "-u", "nobody", "--", "/bin/sh", "-c",
                script.c_str(), static_cast<char*>(nullptr));
      }
      ::_exit(127);
    }
    ::close(fds[0]);
    reaper_ = pid;
    reaper_pipe_ = fds[1];
  }

  std::string bin_;
  std::string dir_;
  std::string as_user_;  // "runuser -u nobody -- " when root, else empty
  int port_ = 0;
  pid_t reaper_ = -1;
  int reaper_pipe_ = -1;
};

// This binary's server, started on first use and stopped at exit; null when the PostgreSQL
// server binaries are absent.
inline pg_cluster* shared_pg_cluster() {
  static std::unique_ptr<pg_cluster> cluster = []() -> std::unique_ptr<pg_cluster> {
    const auto bin = pg_bin_dir();
    if (!bin) return nullptr;
    return std::make_unique<pg_cluster>(*bin);
  }();
  return cluster.get();
}

}  // namespace hookd::testing

// Skips the current test when PostgreSQL's server binaries are not installed (never in CI:
// tools/setup.sh installs them); a server that does not start is a failure, not a skip.
#define HOOKD_REQUIRE_PG()                                                                  \
  do {                                                                                      \
    if (::hookd::testing::shared_pg_cluster() == nullptr) {                                 \
      GTEST_SKIP() << "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin or " \
                      "$HOOKD_PG_BIN); install postgresql (tools/setup.sh)";                \
    }                                                                                       \
  } while (false)
