#pragma once
// Cluster nodes as real processes (docs/cluster.md, "Running a node on PostgreSQL"): a test
// fixture that gives each test a fresh database of this binary's private PostgreSQL
// (support/pg_cluster.hpp) and a temporary directory, starts hookd nodes on them with one master
// key and admin token, prints every node's log when the test failed, and removes it all after.

#include "support/hookd_process.hpp"
#include "support/pg_cluster.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace hookd::test {

class hookd_cluster_nodes : public ::testing::Test {
 protected:
  // `prefix`: the temporary directory's name before its random part; `admin_token`: the
  // HOOKD_ADMIN_TOKEN every node is started with.
  hookd_cluster_nodes(std::string prefix, std::string_view admin_token)
      : prefix_(std::move(prefix)), admin_token_(admin_token) {}

  static constexpr std::string_view kMasterKey =
      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

  void SetUp() override {
    HOOKD_REQUIRE_PG();
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix_ + "-XXXXXX")).string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    uri_ = testing::shared_pg_cluster()->uri(testing::shared_pg_cluster()->create_database());
  }
  void TearDown() override {
    if (HasFailure()) {
      for (std::size_t i = 0; i < nodes_.size(); ++i) {
        std::printf("--- node %zu's log:\n%s\n", i + 1, nodes_[i]->child().output(true).c_str());
      }
    }
    nodes_.clear();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Node n: its own data dir, the shared database, master key and admin token, and `options`.
  hookd_process& start_node(std::vector<std::string> options = {}) {
    const auto n = std::to_string(nodes_.size() + 1);
    options.insert(options.begin(), {"--storage", uri_});
    nodes_.push_back(std::make_unique<hookd_process>(
        dir_ / ("node" + n), dir_ / ("node" + n), std::move(options),
        std::vector<std::string>{"HOOKD_MASTER_KEY=" + std::string(kMasterKey),
                                 "HOOKD_ADMIN_TOKEN=" + admin_token_}));
    return *nodes_.back();
  }

  // The database's name (the last part of uri_), for queries through pg_cluster.
  std::string database() const { return uri_.substr(uri_.rfind('/') + 1); }

  std::filesystem::path dir_;
  std::string uri_;
  std::vector<std::unique_ptr<hookd_process>> nodes_;

 private:
  std::string prefix_;
  std::string admin_token_;
};

}  // namespace hookd::test
