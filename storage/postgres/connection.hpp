#pragma once
// A small libpq wrapper (docs/cluster.md): one blocking connection, used from one thread at a
// time. Statements go through PQexecParams with their parameters apart from the SQL text (text,
// binary for bytea, or NULL), results come back as text. Every failure is
// error_kind::storage_failure carrying the server's message and SQLSTATE. A connection that broke
// (server restarted, backend terminated) fails the statement that found it broken; the next call
// reconnects first.

#include "core/common/error.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;
struct pg_result;

namespace hookd::pg {

// One statement parameter: text, raw bytes (sent in binary format: bytea), or NULL.
struct param {
  std::optional<std::string> value;
  bool binary = false;

  static param text(std::string v) { return {std::move(v), false}; }
  static param bytes(std::string v) { return {std::move(v), true}; }
  static param null() { return {std::nullopt, false}; }
};

// A statement's result rows, in text format.
class rows {
 public:
  rows() = default;
  explicit rows(pg_result* res) noexcept;

  int size() const noexcept;
  int columns() const noexcept;
  bool is_null(int row, int col) const noexcept;
  std::string_view text(int row, int col) const noexcept;
  // A bytea column's bytes (decoded from the text format).
  std::string bytes(int row, int col) const;
  // Rows a command changed (INSERT, UPDATE, DELETE).
  std::uint64_t affected() const noexcept;

 private:
  std::shared_ptr<pg_result> res_;
};

class connection {
 public:
  // Connects to `uri` (postgresql://...; libpq's connection strings). storage_failure naming
  // the server's message when it cannot.
  static result<connection> open(std::string uri);

  connection(connection&&) noexcept = default;
  connection& operator=(connection&&) noexcept = default;
  ~connection();

  // One statement, parameters $1..$n.
  result<rows> exec(std::string_view sql, const std::vector<param>& params = {});
  // Several statements separated by semicolons, no parameters (a migration's SQL).
  result<void> exec_script(std::string_view sql);

  // Whether the last call left the connection usable.
  bool healthy() const noexcept;
  // Whether a transaction is open (BEGIN without COMMIT or ROLLBACK yet, or a failed one).
  bool in_transaction_block() const noexcept;
  // Connects again now (exec does so by itself when the connection is broken).
  result<void> reconnect();
  const std::string& uri() const noexcept { return uri_; }
  // Off: a broken connection stays broken (every call fails) until reconnect(). For a session
  // whose state must not be lost silently, such as a LISTEN.
  void set_auto_reconnect(bool on) noexcept { auto_reconnect_ = on; }
  // For LISTEN/NOTIFY: the socket and the raw connection.
  pg_conn* native() const noexcept { return conn_.get(); }

 private:
  struct closer {
    void operator()(pg_conn* c) const noexcept;
  };
  connection(std::string uri, pg_conn* conn) noexcept : uri_(std::move(uri)), conn_(conn) {}
  result<void> ensure_connected();

  std::string uri_;
  std::unique_ptr<pg_conn, closer> conn_;
  bool auto_reconnect_ = true;
};

// storage_failure "PostgreSQL: <what>: <message>".
problem storage_problem(std::string_view what, std::string_view message);

// Runs `body` between BEGIN and COMMIT; any error of `body` or of COMMIT rolls back and is
// returned.
template <class Body>
result<void> in_transaction(connection& c, Body&& body) {
  if (auto begun = c.exec("BEGIN"); !begun) return begun.error();
  result<void> done = body();
  if (done) {
    // A COMMIT that fails (a deferred foreign key, a lost connection) has ended the transaction.
    if (auto committed = c.exec("COMMIT"); !committed) return committed.error();
    return {};
  }
  if (c.in_transaction_block()) (void)c.exec("ROLLBACK");
  return done;
}

}  // namespace hookd::pg
