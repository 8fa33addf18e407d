// The data directory's files: the directory itself, the master key and the admin-token file.

#include "storage/data_dir.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

namespace hookd {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class DataDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "hookd-datadir-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    dir_ = root_ / "data";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  static unsigned mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }
  static std::string mode_text(mode_t mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode));
    return buf;
  }
  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  static void write(const fs::path& p, std::string_view content, mode_t mode) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    ASSERT_EQ(::chmod(p.c_str(), mode), 0);
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

  aes256gcm_key key_from_file() {
    auto key = load_or_create_master_key(dir_, std::nullopt);
    EXPECT_TRUE(key) << key.error().detail;
    return key ? *key : aes256gcm_key::generate();
  }

  fs::path root_;
  fs::path dir_;
};

// 32 bytes 0x00..0x1f in the two accepted spellings.
const std::string kRaw = [] {
  std::string raw;
  for (int i = 0; i < 32; ++i) raw.push_back(static_cast<char>(i));
  return raw;
}();
constexpr std::string_view kBase64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
constexpr std::string_view kHex =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

TEST_F(DataDirTest, CreatesAMissingDirectoryAndItsParentsWithMode0700) {
  const fs::path nested = root_ / "a" / "b" / "data";
  auto made = ensure_data_dir(nested);
  ASSERT_TRUE(made) << made.error().detail;
  EXPECT_TRUE(fs::is_directory(nested));
  EXPECT_EQ(mode_of(nested), 0700u);
  // Idempotent: an existing private directory is accepted as it is.
  ASSERT_TRUE(ensure_data_dir(nested));
  EXPECT_EQ(mode_of(nested), 0700u);
}

TEST_F(DataDirTest, AnExistingDirectoryOpenToGroupOrOthersIsRefusedNamingChmod) {
  ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
  for (mode_t mode : {0755u, 0750u, 0705u, 0710u, 0701u, 0770u, 0777u}) {
    ASSERT_EQ(::chmod(dir_.c_str(), mode), 0);
    auto made = ensure_data_dir(dir_);
    ASSERT_FALSE(made) << std::oct << mode;
    EXPECT_THAT(made.error().detail, HasSubstr(dir_.string()));
    EXPECT_THAT(made.error().detail, HasSubstr(mode_text(mode)));
    EXPECT_THAT(made.error().detail, HasSubstr("chmod 700 " + dir_.string()));
    EXPECT_EQ(mode_of(dir_), mode) << "left as it was";
  }
  ASSERT_EQ(::chmod(dir_.c_str(), 0700), 0);
  EXPECT_TRUE(ensure_data_dir(dir_));
}

TEST_F(DataDirTest, AFileWhereTheDirectoryShouldBeIsRefused) {
  std::ofstream(dir_) << "x";
  auto made = ensure_data_dir(dir_);
  ASSERT_FALSE(made);
  EXPECT_THAT(made.error().detail, HasSubstr("is not a directory"));
  EXPECT_THAT(made.error().detail, HasSubstr(dir_.string()));
}

TEST_F(DataDirTest, MasterKeyIsGeneratedOnceThenStable) {
  ASSERT_TRUE(ensure_data_dir(dir_));
  const aes256gcm_key first = key_from_file();
  const fs::path file = dir_ / "master.key";
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(mode_of(file), 0600u);
  const std::string content = read(file);
  EXPECT_EQ(content, base64_encode(first.raw()) + "\n");
  EXPECT_EQ(entries(), std::vector<std::string>{"master.key"});  // no temp file left behind

  const aes256gcm_key second = key_from_file();
  EXPECT_EQ(second.raw(), first.raw());
  EXPECT_EQ(read(file), content);
  // And it is a working key: what one sealed, the other opens.
  EXPECT_EQ(second.open(first.seal("secret", "aad"), "aad"), std::optional<std::string>("secret"));
}

TEST_F(DataDirTest, ProcessesStartingTogetherAgreeOnOneKey) {
  ASSERT_TRUE(ensure_data_dir(dir_));
  constexpr int kThreads = 8;
  std::vector<std::string> keys(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto key = load_or_create_master_key(dir_, std::nullopt);
      if (key) keys[static_cast<std::size_t>(i)] = std::string(key->raw());
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& k : keys) EXPECT_EQ(k, keys[0]);
  EXPECT_EQ(keys[0].size(), 32u);
  EXPECT_EQ(read(dir_ / "master.key"), base64_encode(keys[0]) + "\n");
  EXPECT_EQ(entries(), std::vector<std::string>{"master.key"});
}

TEST_F(DataDirTest, KeyFromTheEnvironmentInBase64OrHexWinsAndWritesNothing) {
  ASSERT_TRUE(ensure_data_dir(dir_));
  for (std::string_view text :
       {kBase64, std::string_view("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"), kHex,
        std::string_view("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"),
        std::string_view("  AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")}) {
    auto key = load_or_create_master_key(dir_, text);
    ASSERT_TRUE(key) << text << ": " << key.error().detail;
    EXPECT_EQ(key->raw(), kRaw) << text;
  }
  EXPECT_FALSE(fs::exists(dir_ / "master.key"));

  // With a key file present, the environment still wins.
  const aes256gcm_key from_file = key_from_file();
  auto from_env = load_or_create_master_key(dir_, kHex);
  ASSERT_TRUE(from_env);
  EXPECT_EQ(from_env->raw(), kRaw);
  EXPECT_NE(from_file.raw(), kRaw);
}

TEST_F(DataDirTest, MalformedEnvironmentKeyIsRefusedWithoutEchoingIt) {
  ASSERT_TRUE(ensure_data_dir(dir_));
  const std::vector<std::string> bad = {
      "",
      "not-a-key-at-all",
      "AAECAwQFBgcICQoLDA0ODw==",  // base64 of 16 bytes
      std::string(kHex.substr(0, 62)),
      std::string(kHex) + "00",  // 33 bytes of hex
      std::string(kHex.substr(0, 63)) + "g",
  };
  for (const std::string& text : bad) {
    auto key = load_or_create_master_key(dir_, text);
    ASSERT_FALSE(key) << "accepted " << text;
    EXPECT_THAT(key.error().detail, HasSubstr("HOOKD_MASTER_KEY"));
    EXPECT_THAT(key.error().detail, HasSubstr("base64"));
    if (text.size() > 8) {
      EXPECT_THAT(key.error().detail, Not(HasSubstr(text)));
    }
  }
  EXPECT_FALSE(fs::exists(dir_ / "master.key"));  // no silent fallback to a generated key
}

TEST_F(DataDirTest, KeyFileReadableByOthersIsRefusedNamingChmod) {
  ASSERT_TRUE(ensure_data_dir(dir_));
  const fs::path file = dir_ / "master.key";
  for (mode_t mode : {0644u, 0640u, 0604u, 0660u}) {
    write(file, std::string(kBase64) + "\n", mode);
    auto key = load_or_create_master_key(dir_, std::nullopt);
    ASSERT_FALSE(key) << std::oct << mode;
    EXPECT_THAT(key.error().detail, HasSubstr("chmod 600 " + file.string()));
    EXPECT_EQ(read(file), std::string(kBase64) + "\n");  // left as it was
  }
  ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
  EXPECT_EQ(key_from_file().raw(), kRaw);
  ASSERT_EQ(::chmod(file.c_str(), 0400), 0);  // read-only for the owner is fine too
  EXPECT_EQ(key_from_file().raw(), kRaw);
}

TEST_F(DataDirTest, MalformedKeyFileIsRefusedAndNotReplaced) {
  ASSERT_TRUE(ensure_data_dir(dir_));
  const fs::path file = dir_ / "master.key";
  for (std::string_view content : {std::string_view(""), std::string_view("garbage\n"),
                                   std::string_view("AAECAwQFBgcICQoLDA0ODw==\n")}) {
    write(file, content, 0600);
    auto key = load_or_create_master_key(dir_, std::nullopt);
    ASSERT_FALSE(key) << content;
    EXPECT_THAT(key.error().detail, HasSubstr(file.string()));
    EXPECT_THAT(key.error().detail, HasSubstr("malformed"));
    EXPECT_EQ(read(file), content);
  }
  write(file, std::string(kHex) + "\n", 0600);  // hex in the file is accepted like in the env
  EXPECT_EQ(key_from_file().raw(), kRaw);
}

TEST_F(DataDirTest, AdminTokenFileIsWrittenWithMode0600) {
  ASSERT_TRUE(ensure_data_dir(dir_));
  const fs::path file = dir_ / "admin-token";
  auto written = write_admin_token_file(dir_, "hkd_first_token");
  ASSERT_TRUE(written) << written.error().detail;
  EXPECT_EQ(read(file), "hkd_first_token");
  EXPECT_EQ(mode_of(file), 0600u);

  // Replacing it leaves a 0600 file with the new content, and no temp file, even when the old
  // file had looser permissions (the rename replaces it rather than writing into it).
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  ASSERT_TRUE(write_admin_token_file(dir_, "hkd_second_token"));
  EXPECT_EQ(read(file), "hkd_second_token");
  EXPECT_EQ(mode_of(file), 0600u);
  EXPECT_EQ(entries(), std::vector<std::string>{"admin-token"});
}

TEST_F(DataDirTest, AdminTokenFileInAMissingDirectoryIsAnError) {
  auto written = write_admin_token_file(dir_ / "nope", "token");
  ASSERT_FALSE(written);
  EXPECT_THAT(written.error().detail, HasSubstr((dir_ / "nope").string()));
}

}  // namespace
}  // namespace hookd
