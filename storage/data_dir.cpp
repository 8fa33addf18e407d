// Files in the data directory besides the database. See data_dir.hpp for the layout.
//
// Every file that holds a secret is created through a private temporary file (mkostemp: O_EXCL,
// mode 0600), written, fsync'd, and only then given its name, so that no reader ever sees a
// half-written secret and a crash leaves either the old state or the new one, never a stub.

#include "storage/data_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <system_error>
#include <vector>

namespace hookd {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMasterKeyFile = "master.key";
constexpr std::string_view kAdminTokenFile = "admin-token";
// A key file is ~45 bytes; anything much larger is not one, and is not read into memory whole.
constexpr std::size_t kMaxKeyFileBytes = 4096;

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

problem fs_problem(std::string what, int err) {
  return make_problem(error_kind::storage_failure, std::move(what) + " (" + errno_text(err) + ")");
}

std::string mode_text(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Closes on scope exit; the owner of a descriptor that must be closed with error checking
// (after writing) calls close() itself.
class unique_fd {
 public:
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }
  int close() noexcept {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// A rename or link is durable only once the directory holding it is.
result<void> fsync_dir(const fs::path& dir) {
  unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || ::fsync(fd.get()) != 0) {
    return fs_problem("cannot fsync directory " + dir.string(), errno);
  }
  return {};
}

// Writes `content` to a new private file in `dir` (mode 0600, fsync'd) and returns its path.
result<fs::path> write_temp_file(const fs::path& dir, std::string_view stem,
                                 std::string_view content) {
  std::string name = (dir / ("." + std::string(stem) + ".XXXXXX")).string();
  std::vector<char> buf(name.begin(), name.end());
  buf.push_back('\0');
  unique_fd fd(::mkostemp(buf.data(), O_CLOEXEC));
  if (fd.get() < 0) return fs_problem("cannot create a file in " + dir.string(), errno);
  const fs::path tmp(buf.data());
  auto fail = [&](std::string what) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return fs_problem(std::move(what) + " " + tmp.string(), err);
  };
  // mkostemp creates 0600 already; fchmod makes it exact whatever the umask did.
  if (::fchmod(fd.get(), 0600) != 0) return fail("cannot chmod");
  if (!write_all(fd.get(), content)) return fail("cannot write");
  if (::fsync(fd.get()) != 0) return fail("cannot fsync");
  if (fd.close() != 0) return fail("cannot close");
  return tmp;
}

bool is_hex(std::string_view s) noexcept {
  for (char c : s) {
    const bool digit = c >= '0' && c <= '9';
    const bool lower = c >= 'a' && c <= 'f';
    const bool upper = c >= 'A' && c <= 'F';
    if (!digit && !lower && !upper) return false;
  }
  return true;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

std::string_view trim(std::string_view s) noexcept {
  constexpr std::string_view kSpace = " \t\r\n";
  const std::size_t first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kSpace) - first + 1);
}

// 64 hex digits, or base64 (padded or not) of exactly 32 bytes. Hex is tried first: 64 hex
// digits are also valid base64, of 48 bytes.
std::optional<aes256gcm_key> parse_key(std::string_view text) {
  text = trim(text);
  if (text.size() == 2 * aes256gcm_key::kKeySize && is_hex(text)) {
    std::string raw;
    raw.reserve(aes256gcm_key::kKeySize);
    for (std::size_t i = 0; i < text.size(); i += 2) {
      raw.push_back(static_cast<char>(hex_value(text[i]) * 16 + hex_value(text[i + 1])));
    }
    return aes256gcm_key::from_bytes(raw);
  }
  std::optional<std::string> raw = base64_decode(text);
  if (!raw) return std::nullopt;
  return aes256gcm_key::from_bytes(*raw);
}

// nullopt when the file does not exist.
result<std::optional<aes256gcm_key>> read_key_file(const fs::path& file) {
  unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::optional<aes256gcm_key>();
    return fs_problem("cannot open master key file " + file.string(), errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return fs_problem("cannot stat master key file " + file.string(), errno);
  }
  if (!S_ISREG(st.st_mode)) {
    return make_problem(error_kind::storage_failure,
                        "master key file " + file.string() + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    return make_problem(error_kind::storage_failure,
                        "master key file " + file.string() + " has mode " + mode_text(st.st_mode) +
                            ", readable by group or other users: run `chmod 600 " + file.string() +
                            "` (or set HOOKD_MASTER_KEY instead)");
  }
  std::string content(kMaxKeyFileBytes + 1, '\0');
  std::size_t used = 0;
  while (used < content.size()) {
    const ssize_t n = ::read(fd.get(), content.data() + used, content.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fs_problem("cannot read master key file " + file.string(), errno);
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  content.resize(used);
  std::optional<aes256gcm_key> key;
  if (used <= kMaxKeyFileBytes) key = parse_key(content);
  if (!key) {
    return make_problem(error_kind::storage_failure,
                        "master key file " + file.string() +
                            " is malformed (expected base64 of 32 bytes): restore it from "
                            "backup, since webhook secrets stored under it cannot be opened "
                            "without it");
  }
  return std::optional<aes256gcm_key>(*key);
}

}  // namespace

result<void> ensure_data_dir(const fs::path& dir) {
  if (dir.empty()) return make_problem(error_kind::storage_failure, "the data dir path is empty");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return fs_problem("cannot stat data dir " + dir.string(), errno);
    const fs::path parent = dir.parent_path();
    std::error_code ec;
    if (!parent.empty()) fs::create_directories(parent, ec);
    if (ec) {
      return make_problem(
          error_kind::storage_failure,
          "cannot create the parent of data dir " + dir.string() + " (" + ec.message() + ")");
    }
    // 0700: the directory holds the master key and the database of (sealed) secrets.
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return fs_problem("cannot create data dir " + dir.string(), errno);
    }
    if (::stat(dir.c_str(), &st) != 0) {
      return fs_problem("cannot stat data dir " + dir.string(), errno);
    }
  }
  if (!S_ISDIR(st.st_mode)) {
    return make_problem(error_kind::storage_failure,
                        "data dir " + dir.string() +
                            " exists but is not a directory: move it away or choose another "
                            "--data-dir");
  }
  // The directory holds the master key and the database: another user who can list or enter it
  // sees what it holds and could, with group write, swap files in. Refused rather than fixed:
  // the mode may be an operator's mistake worth knowing about (a shared parent, a wrong umask).
  if ((st.st_mode & 077) != 0) {
    return make_problem(error_kind::storage_failure,
                        "data dir " + dir.string() + " has mode " + mode_text(st.st_mode) +
                            ", open to group or other users: run `chmod 700 " + dir.string() + "`");
  }
  if (::access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return fs_problem("data dir " + dir.string() +
                          " is not writable by this user: fix its owner or mode, or choose "
                          "another --data-dir",
                      errno);
  }
  return {};
}

result<aes256gcm_key> load_or_create_master_key(const fs::path& dir,
                                                std::optional<std::string_view> env_value) {
  if (env_value) {
    if (std::optional<aes256gcm_key> key = parse_key(*env_value)) return *key;
    return make_problem(error_kind::validation,
                        "HOOKD_MASTER_KEY is malformed: expected 32 bytes as base64 (44 "
                        "characters) or as 64 hex digits, e.g. from `openssl rand -base64 32`");
  }

  const fs::path file = dir / kMasterKeyFile;
  result<std::optional<aes256gcm_key>> existing = read_key_file(file);
  if (!existing) return existing.error();
  if (*existing) return **existing;

  const aes256gcm_key key = aes256gcm_key::generate();
  result<fs::path> tmp = write_temp_file(dir, kMasterKeyFile, base64_encode(key.raw()) + "\n");
  if (!tmp) return tmp.error();
  // link() is the O_EXCL of naming: it fails with EEXIST instead of replacing, so two processes
  // starting at once never overwrite each other's key; the loser uses the winner's.
  const int rc = ::link(tmp->c_str(), file.c_str());
  const int err = errno;
  ::unlink(tmp->c_str());
  if (rc != 0) {
    if (err != EEXIST) return fs_problem("cannot create master key file " + file.string(), err);
    result<std::optional<aes256gcm_key>> winner = read_key_file(file);
    if (!winner) return winner.error();
    if (*winner) return **winner;
    return make_problem(error_kind::storage_failure,
                        "master key file " + file.string() + " vanished while being created");
  }
  if (result<void> synced = fsync_dir(dir); !synced) return synced.error();
  return key;
}

result<void> write_admin_token_file(const fs::path& dir, std::string_view token) {
  // No trailing newline: the file is the token, so that `$(cat admin-token)` and a program
  // reading the whole file get the same string.
  result<fs::path> tmp = write_temp_file(dir, kAdminTokenFile, token);
  if (!tmp) return tmp.error();
  const fs::path file = dir / kAdminTokenFile;
  if (::rename(tmp->c_str(), file.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp->c_str());
    return fs_problem("cannot write admin token file " + file.string(), err);
  }
  return fsync_dir(dir);
}

}  // namespace hookd
