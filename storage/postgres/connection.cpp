#include "storage/postgres/connection.hpp"

#include "core/config/config.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdlib>

namespace hookd::pg {

namespace {

// libpq's messages end with a newline; a problem's detail does not.
std::string trimmed(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  return std::string(s);
}

// The server's message of a failed statement: primary text, detail, and SQLSTATE.
std::string describe(const PGresult* res, const PGconn* conn) {
  const char* primary = res != nullptr ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  if (primary == nullptr) return trimmed(PQerrorMessage(conn));
  std::string out = primary;
  if (const char* detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL)) {
    out += " (";
    out += detail;
    out += ")";
  }
  if (const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE)) {
    out += " [SQLSTATE ";
    out += state;
    out += "]";
  }
  return out;
}

std::string statement_name(std::string_view sql) {
  // The statement's first line, enough to tell which one failed.
  const auto end = sql.find('\n');
  std::string head(sql.substr(0, std::min<std::size_t>(end, 60)));
  if (head.size() < sql.size()) head += "...";
  return head;
}

// Notices (e.g. "relation already exists, skipping") are not errors; libpq would print them on
// stderr, between hookd's JSON log lines.
void quiet(PGconn* conn) noexcept {
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
}

}  // namespace

problem storage_problem(std::string_view what, std::string_view message) {
  std::string detail = "PostgreSQL: ";
  detail.append(what);
  detail.append(": ");
  detail.append(message);
  return make_problem(error_kind::storage_failure, std::move(detail));
}

rows::rows(pg_result* res) noexcept : res_(res, [](pg_result* r) { PQclear(r); }) {}

int rows::size() const noexcept {
  return res_ ? PQntuples(res_.get()) : 0;
}
int rows::columns() const noexcept {
  return res_ ? PQnfields(res_.get()) : 0;
}
bool rows::is_null(int row, int col) const noexcept {
  return PQgetisnull(res_.get(), row, col) != 0;
}
std::string_view rows::text(int row, int col) const noexcept {
  return {PQgetvalue(res_.get(), row, col),
          static_cast<std::size_t>(PQgetlength(res_.get(), row, col))};
}
std::string rows::bytes(int row, int col) const {
  std::size_t length = 0;
  unsigned char* raw = PQunescapeBytea(
      reinterpret_cast<const unsigned char*>(PQgetvalue(res_.get(), row, col)), &length);
  if (raw == nullptr) return {};
  std::string out(reinterpret_cast<const char*>(raw), length);
  PQfreemem(raw);
  return out;
}
std::uint64_t rows::affected() const noexcept {
  const char* n = res_ ? PQcmdTuples(res_.get()) : "";
  return *n != '\0' ? std::strtoull(n, nullptr, 10) : 0;
}

void connection::closer::operator()(pg_conn* c) const noexcept {
  PQfinish(c);
}

connection::~connection() = default;

result<connection> connection::open(std::string uri) {
  PGconn* conn = PQconnectdb(uri.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    // libpq quotes parts of a malformed URI back, which may be its password.
    problem p =
        storage_problem("cannot connect", redact_password_in(trimmed(PQerrorMessage(conn)), uri));
    PQfinish(conn);
    return p;
  }
  quiet(conn);
  return connection(std::move(uri), conn);
}

bool connection::in_transaction_block() const noexcept {
  return conn_ && PQtransactionStatus(conn_.get()) != PQTRANS_IDLE;
}

bool connection::healthy() const noexcept {
  return conn_ && PQstatus(conn_.get()) == CONNECTION_OK;
}

result<void> connection::reconnect() {
  if (!conn_) {
    conn_.reset(PQconnectdb(uri_.c_str()));
    quiet(conn_.get());
  } else {
    PQreset(conn_.get());
  }
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    return storage_problem("cannot connect",
                           redact_password_in(trimmed(PQerrorMessage(conn_.get())), uri_));
  }
  return {};
}

result<void> connection::ensure_connected() {
  if (healthy()) return {};
  if (!auto_reconnect_) return storage_problem("connection lost", "not connected");
  return reconnect();
}

result<rows> connection::exec(std::string_view sql, const std::vector<param>& params) {
  if (auto ready = ensure_connected(); !ready) return ready.error();
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  values.reserve(params.size());
  lengths.reserve(params.size());
  formats.reserve(params.size());
  for (const param& p : params) {
    values.push_back(p.value ? p.value->data() : nullptr);
    lengths.push_back(p.value ? static_cast<int>(p.value->size()) : 0);
    formats.push_back(p.binary ? 1 : 0);
  }
  const std::string text(sql);
  PGresult* res = PQexecParams(conn_.get(), text.c_str(), static_cast<int>(params.size()), nullptr,
                               values.data(), lengths.data(), formats.data(), 0);
  const auto status = PQresultStatus(res);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    problem p = storage_problem(statement_name(sql), describe(res, conn_.get()));
    PQclear(res);
    return p;
  }
  return rows(res);
}

result<void> connection::exec_script(std::string_view sql) {
  if (auto ready = ensure_connected(); !ready) return ready.error();
  const std::string text(sql);
  PGresult* res = PQexec(conn_.get(), text.c_str());
  const auto status = PQresultStatus(res);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    problem p = storage_problem("script", describe(res, conn_.get()));
    PQclear(res);
    return p;
  }
  PQclear(res);
  return {};
}

}  // namespace hookd::pg
