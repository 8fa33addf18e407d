// Online backup. See backup.hpp for the contract and docs/operations.md, "Backup and restore",
// for how an operator uses it.

#include "storage/backup.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace hookd {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kDirectoryField = "directory";

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

problem directory_problem(error_kind kind, std::string message) {
  problem p = make_problem(kind, message);
  p.errors.push_back({std::string(kDirectoryField), std::move(message)});
  return p;
}

// Closes on scope exit.
struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

result<void> fsync_path(const fs::path& path) {
  fd_guard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0 || ::fsync(fd.fd) != 0) {
    return make_problem(error_kind::storage_failure,
                        "cannot fsync " + path.string() + " (" + errno_text(errno) + ")");
  }
  return {};
}

// Copies a small private file (the master key, the admin token) into a new file, mode 0600,
// fsync'd. Never replaces: the target directory is new.
result<void> copy_private_file(const fs::path& from, const fs::path& to) {
  auto failed = [&](std::string_view what) {
    return make_problem(error_kind::storage_failure, std::string(what) + " (" + errno_text(errno) +
                                                         ") while copying " + from.string() +
                                                         " to " + to.string());
  };
  fd_guard in{::open(from.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) return failed("cannot open");
  fd_guard out{::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (out.fd < 0) return failed("cannot create");
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(in.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failed("cannot read");
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out.fd, buf + done, static_cast<std::size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return failed("cannot write");
      done += w;
    }
  }
  if (::fchmod(out.fd, 0600) != 0) return failed("cannot chmod");
  if (::fsync(out.fd) != 0) return failed("cannot fsync");
  return {};
}

// Directories 0700 and files 0600 under `root` (RocksDB creates them 0755 and 0644; the table
// files it linked are the live ones, which live in the private <data-dir>/db and lose nothing by
// it). Counts the files and their bytes.
result<void> make_private(const fs::path& root, backup_report& report) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    const bool dir = it->is_directory(ec);
    if (ec) break;
    if (::chmod(p.c_str(), dir ? 0700 : 0600) != 0) {
      return make_problem(error_kind::storage_failure,
                          "cannot chmod " + p.string() + " (" + errno_text(errno) + ")");
    }
    if (!dir) {
      ++report.files;
      report.bytes += it->file_size(ec);
      if (ec) break;
    }
  }
  if (ec) {
    return make_problem(error_kind::storage_failure,
                        "cannot list " + root.string() + " (" + ec.message() + ")");
  }
  return {};
}

// Whether `inner` lies in `outer` or is it, comparing the paths with symbolic links resolved as
// far as they exist.
bool is_within(const fs::path& inner, const fs::path& outer) {
  std::error_code ec;
  const fs::path a = fs::weakly_canonical(inner, ec);
  if (ec) return false;
  const fs::path b = fs::weakly_canonical(outer, ec);
  if (ec) return false;
  auto ai = a.begin();
  for (auto bi = b.begin(); bi != b.end(); ++bi, ++ai) {
    if (bi->empty()) continue;  // a trailing separator
    if (ai == a.end() || *ai != *bi) return false;
  }
  return true;
}

// Creates `target` (0700), or says why it cannot be the backup's directory.
result<void> create_target(const fs::path& target, const fs::path& data_dir) {
  if (!target.is_absolute()) {
    return directory_problem(error_kind::validation,
                             "must be an absolute path on hookd's host, e.g. "
                             "/var/backups/hookd-2026-12-06");
  }
  if (is_within(target, data_dir)) {
    // The data dir's path stays out of the answer, like every internal path.
    return directory_problem(error_kind::validation,
                             "must not be inside hookd's data dir: choose a directory outside it");
  }
  if (::mkdir(target.c_str(), 0700) != 0) {
    const int err = errno;
    if (err == EEXIST) {
      return directory_problem(error_kind::conflict,
                               target.string() +
                                   " already exists: a backup goes into a new "
                                   "directory; choose another name or remove it");
    }
    if (err == ENOENT || err == ENOTDIR) {
      return directory_problem(error_kind::validation,
                               "the parent directory " + target.parent_path().string() +
                                   " does not exist (or is not a directory): create it first");
    }
    if (err == EACCES || err == EPERM || err == EROFS) {
      return directory_problem(error_kind::validation,
                               "hookd's user cannot create " + target.string() + " (" +
                                   errno_text(err) + "): choose a directory it may write to");
    }
    return make_problem(error_kind::storage_failure,
                        "cannot create " + target.string() + " (" + errno_text(err) + ")");
  }
  // Exactly 0700, whatever the umask took away.
  if (::chmod(target.c_str(), 0700) != 0) {
    return make_problem(error_kind::storage_failure,
                        "cannot chmod " + target.string() + " (" + errno_text(errno) + ")");
  }
  return {};
}

result<void> fill_target(storage& store, const fs::path& data_dir, const fs::path& target,
                         bool master_key_in_file, backup_report& report) {
  auto made = store.checkpoint((target / "db").string());
  if (!made) return made.error();
  report.sequence = made->sequence;
  report.linked = made->linked;

  std::error_code ec;
  report.master_key = "environment";
  if (master_key_in_file && fs::exists(data_dir / "master.key", ec)) {
    if (auto copied = copy_private_file(data_dir / "master.key", target / "master.key"); !copied) {
      return copied.error();
    }
    report.master_key = "file";
  }
  if (fs::exists(data_dir / "admin-token", ec)) {
    if (auto copied = copy_private_file(data_dir / "admin-token", target / "admin-token");
        !copied) {
      return copied.error();
    }
    report.admin_token_file = true;
  }
  if (auto made_private = make_private(target, report); !made_private) {
    return made_private.error();
  }
  // The new names are durable once the directories holding them are.
  if (auto synced = fsync_path(target); !synced) return synced.error();
  return fsync_path(target.parent_path());
}

}  // namespace

result<backup_report> take_backup(storage& store, const fs::path& data_dir, const fs::path& target,
                                  bool master_key_in_file) {
  const auto started = std::chrono::steady_clock::now();
  fs::path dir = target.lexically_normal();
  if (!dir.has_filename() && dir.has_parent_path() && dir != dir.root_path()) {
    dir = dir.parent_path();  // "/backups/x/" is "/backups/x"
  }
  if (auto created = create_target(dir, data_dir); !created) return created.error();

  backup_report report;
  report.directory = dir.string();
  if (auto filled = fill_target(store, data_dir, dir, master_key_in_file, report); !filled) {
    std::error_code ignored;
    fs::remove_all(dir, ignored);  // a half-written backup is worse than none
    return filled.error();
  }
  report.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  return report;
}

}  // namespace hookd
