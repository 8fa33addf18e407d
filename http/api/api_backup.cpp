// POST /api/v1/backups (docs/openapi.yaml, docs/operations.md "Backup and restore"): an online
// backup of the data dir into a new directory on hookd's host. Admin only. Order of checks: token
// (401), scope (403), body (415/400), then the backup (400/409 for the directory, 503 when the
// store fails).

#include "core/durable/backup.hpp"
#include "http/api/api.hpp"
#include "http/api/auth.hpp"

#include <boost/asio/post.hpp>

#include <memory>
#include <string>

namespace hookd::http {
namespace {

// The directory as a file URI (RFC 8089) for the 201's Location: the backup is a directory on
// hookd's host, not a resource of the API.
std::string file_uri(std::string_view path) {
  constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string out = "file://";
  for (const char c : path) {
    const auto u = static_cast<unsigned char>(c);
    const bool plain = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
                       c == '/' || c == '-' || c == '.' || c == '_' || c == '~';
    if (plain) {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

// Runs the backup on the blocking pool and completes on the caller's executor. Built as a plain
// function object in a statement of its own before the co_await (see api_events.cpp on GCC 12).
struct backup_job {
  app* a;
  std::string directory;
  void operator()(completion<backup_report> done) {
    asio::post(*a->history_readers, [a = a, directory = std::move(directory),
                                     done = std::move(done)] { done(a->backup(directory)); });
  }
};

asio::awaitable<response> create_backup(app& a, request_context& ctx) {
  auto token = authenticate(a, ctx.req);
  if (!token) co_return fail(ctx, token.error());
  if (auto allowed = authorize(**token, scope::admin); !allowed) {
    co_return fail(ctx, allowed.error());
  }
  auto body = read_json_body(ctx.req, a.max_body_bytes);
  if (!body) co_return fail(ctx, body.error());
  auto directory = parse_backup_request(*body);
  if (!directory) co_return fail(ctx, directory.error());
  if (!a.backup || a.history_readers == nullptr) {
    co_return fail(ctx, make_problem(error_kind::unavailable, "Backups are not available here."));
  }

  backup_job job{&a, std::move(*directory)};
  auto made = co_await await_catalog<backup_report>(std::move(job));
  if (!made) co_return fail(ctx, made.error());
  co_return created_response(file_uri(made->directory), to_json(*made));
}

}  // namespace

void register_backup_routes(router& r, app& a) {
  r.add(bhttp::verb::post, "/api/v1/backups",
        [&a](request_context& c) { return create_backup(a, c); });
}

}  // namespace hookd::http
