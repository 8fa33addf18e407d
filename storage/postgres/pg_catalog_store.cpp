#include "storage/postgres/pg_catalog_store.hpp"

#include "core/catalog/scopes.hpp"
#include "storage/postgres/migrations.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace hookd::pg {
namespace json = boost::json;

namespace {

// Times travel as integer unix milliseconds: exact both ways, whatever the session's time zone.
std::string millis(timestamp t) {
  return std::to_string(t.time_since_epoch().count());
}
timestamp from_millis(std::string_view text) {
  return timestamp(std::chrono::milliseconds(std::stoll(std::string(text))));
}
// SQL for "parameter $n, unix milliseconds, as timestamptz" and back.
std::string ts(int n) {
  return "(timestamptz 'epoch' + $" + std::to_string(n) + "::bigint * interval '1 millisecond')";
}
std::string ms(std::string_view column) {
  return "(extract(epoch FROM " + std::string(column) + ") * 1000)::bigint";
}

param id_param(const object_id& id) {
  return param::text(id.to_string());
}
template <class T>
param optional_text(const std::optional<T>& v) {
  return v ? param::text(std::string(*v)) : param::null();
}

// A list of strings as a JSON array; SQL turns it into text[] with json_text_array.
std::string json_strings(const auto& items) {
  json::array list;
  for (const auto& s : items) list.emplace_back(std::string_view(s));
  return json::serialize(list);
}
std::string json_text_array(int n) {
  return "ARRAY(SELECT json_array_elements_text($" + std::to_string(n) + "::json))";
}

// The associated data the embedded store seals with (core/catalog/codec.hpp): the bare id for
// the secret, "headers:" + id for header values, "previous:" + id for previous secrets, so that
// no sealed value opens in another's place or in another webhook's row.
std::string labelled_aad(std::string_view label, const object_id& id) {
  std::string aad(label);
  aad.append(id.binary());
  return aad;
}

std::string headers_plaintext(const std::vector<header_entry>& headers) {
  json::array list;
  for (const header_entry& h : headers) list.push_back(json::array{h.name, h.value});
  return json::serialize(list);
}

std::string previous_plaintext(const std::vector<previous_secret>& secrets) {
  json::array list;
  for (const previous_secret& p : secrets) {
    list.push_back(
        json::array{json::value(p.secret), json::value(p.expires_at.time_since_epoch().count())});
  }
  return json::serialize(list);
}

// ---- writes

struct statement {
  std::string sql;
  std::vector<param> params;
};

std::string_view entity_name(const catalog_change::entity& e) {
  static constexpr std::string_view names[] = {"organization", "project", "token", "webhook"};
  return names[e.index()];
}

object_id entity_id(const catalog_change::entity& e) {
  return std::visit([](const auto& p) { return p->id; }, e);
}

std::vector<statement> put_statements(const organization& o, const aes256gcm_key&) {
  return {{"INSERT INTO organizations (id, name, created_at, updated_at) VALUES ($1, $2, " + ts(3) +
               ", " + ts(4) +
               ") ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
               " created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at",
           {id_param(o.id), param::text(o.name), param::text(millis(o.created_at)),
            param::text(millis(o.updated_at))}}};
}

std::vector<statement> put_statements(const project& p, const aes256gcm_key&) {
  return {
      {"INSERT INTO projects (id, organization_id, name, slug, description, status,"
       " app_icon_url, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, " +
           ts(8) + ", " + ts(9) +
           ") ON CONFLICT (id) DO UPDATE SET organization_id = EXCLUDED.organization_id,"
           " name = EXCLUDED.name, slug = EXCLUDED.slug,"
           " description = EXCLUDED.description, status = EXCLUDED.status,"
           " app_icon_url = EXCLUDED.app_icon_url, created_at = EXCLUDED.created_at,"
           " updated_at = EXCLUDED.updated_at",
       {id_param(p.id), id_param(p.organization), param::text(p.name), param::text(p.slug),
        optional_text(p.description), param::text(std::string(to_string(p.status))),
        optional_text(p.app_icon_url), param::text(millis(p.created_at)),
        param::text(millis(p.updated_at))}}};
}

std::vector<statement> put_statements(const api_token& t, const aes256gcm_key&) {
  std::vector<std::string> orgs;
  for (const object_id& id : t.organizations) orgs.push_back(id.to_string());
  return {
      {"INSERT INTO tokens (id, name, scopes, digest, created_at) VALUES ($1, $2, " +
           json_text_array(3) + ", $4, " + ts(5) +
           ") ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, scopes = EXCLUDED.scopes,"
           " digest = EXCLUDED.digest, created_at = EXCLUDED.created_at",
       {id_param(t.id), param::text(t.name), param::text(json_strings(t.scopes.names())),
        param::bytes(std::string(reinterpret_cast<const char*>(t.digest.data()), t.digest.size())),
        param::text(millis(t.created_at))}},
      {"DELETE FROM token_organizations WHERE token_id = $1", {id_param(t.id)}},
      {"INSERT INTO token_organizations (token_id, organization_id, position)"
       " SELECT $1, o.id, o.position FROM json_array_elements_text($2::json)"
       " WITH ORDINALITY AS o(id, position)",
       {id_param(t.id), param::text(json_strings(orgs))}},
  };
}

std::vector<statement> put_statements(const webhook& w, const aes256gcm_key& key) {
  std::optional<std::string> filter;
  if (w.filter) filter = json::serialize(w.filter->to_json());
  param previous = param::null();
  if (!w.previous_secrets.empty()) {
    previous = param::bytes(
        key.seal(previous_plaintext(w.previous_secrets), labelled_aad("previous:", w.id)));
  }
  return {
      {"INSERT INTO webhooks (id, organization_id, project_id, name, url, active, events,"
       " signing, secret_sealed, headers_sealed, previous_secrets_sealed, filter, rate_limit,"
       " disabled_reason, disabled_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, " +
           json_text_array(7) + ", $8, $9, $10, $11, $12, $13, $14, " + ts(15) + ", " + ts(16) +
           ", " + ts(17) +
           ") ON CONFLICT (id) DO UPDATE SET organization_id = EXCLUDED.organization_id,"
           " project_id = EXCLUDED.project_id, name = EXCLUDED.name, url = EXCLUDED.url,"
           " active = EXCLUDED.active, events = EXCLUDED.events, signing = EXCLUDED.signing,"
           " secret_sealed = EXCLUDED.secret_sealed,"
           " headers_sealed = EXCLUDED.headers_sealed,"
           " previous_secrets_sealed = EXCLUDED.previous_secrets_sealed,"
           " filter = EXCLUDED.filter, rate_limit = EXCLUDED.rate_limit,"
           " disabled_reason = EXCLUDED.disabled_reason,"
           " disabled_at = EXCLUDED.disabled_at, created_at = EXCLUDED.created_at,"
           " updated_at = EXCLUDED.updated_at",
       {id_param(w.id), id_param(w.organization), id_param(w.project), param::text(w.name),
        param::text(w.url), param::text(w.active ? "true" : "false"),
        param::text(json_strings(w.events)), param::text(std::string(to_string(w.signing))),
        param::bytes(key.seal(w.secret.value(), w.id.binary())),
        param::bytes(key.seal(headers_plaintext(w.headers), labelled_aad("headers:", w.id))),
        std::move(previous), optional_text(filter),
        w.rate_limit ? param::text(std::to_string(*w.rate_limit)) : param::null(),
        optional_text(w.disabled_reason),
        w.disabled_at ? param::text(millis(*w.disabled_at)) : param::null(),
        param::text(millis(w.created_at)), param::text(millis(w.updated_at))}}};
}

statement erase_statement(const catalog_change::entity& e) {
  // token_organizations rows go with their token (ON DELETE CASCADE).
  static constexpr std::string_view tables[] = {"organizations", "projects", "tokens", "webhooks"};
  return {"DELETE FROM " + std::string(tables[e.index()]) + " WHERE id = $1",
          {id_param(entity_id(e))}};
}

// ---- reads

problem row_problem(std::string_view table, std::string_view id, std::string_view what) {
  return make_problem(error_kind::internal, "PostgreSQL: table " + std::string(table) + ", id " +
                                                std::string(id) + ": " + std::string(what));
}

result<object_id> read_id(const rows& r, int row, int col, std::string_view table,
                          std::string_view id) {
  if (auto parsed = object_id::parse(r.text(row, col))) return *parsed;
  return row_problem(table, id, "\"" + std::string(r.text(row, col)) + "\" is not an id");
}

std::optional<json::array> json_array_of(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_array()) return std::nullopt;
  return std::move(v.as_array());
}

// Every row (no ids), or the rows whose id is one of `ids`.
struct id_filter {
  std::optional<std::vector<std::string>> ids;

  std::string where(std::string_view column) const {
    if (!ids) return {};
    return " WHERE " + std::string(column) + " IN (SELECT json_array_elements_text($1::json))";
  }
  std::vector<param> params() const {
    if (!ids) return {};
    return {param::text(json_strings(*ids))};
  }
};

result<void> load_organizations(connection& c, const catalog_load_sink& sink,
                                const id_filter& only) {
  auto r = c.exec("SELECT id, name, " + ms("created_at") + ", " + ms("updated_at") +
                      " FROM organizations" + only.where("id"),
                  only.params());
  if (!r) return r.error();
  for (int i = 0; i < r->size(); ++i) {
    auto o = std::make_shared<organization>();
    auto id = read_id(*r, i, 0, "organizations", r->text(i, 0));
    if (!id) return id.error();
    o->id = *id;
    o->name = r->text(i, 1);
    o->created_at = from_millis(r->text(i, 2));
    o->updated_at = from_millis(r->text(i, 3));
    sink.organization(std::move(o));
  }
  return {};
}

result<void> load_projects(connection& c, const catalog_load_sink& sink, const id_filter& only) {
  auto r =
      c.exec("SELECT id, organization_id, name, slug, description, status, app_icon_url, " +
                 ms("created_at") + ", " + ms("updated_at") + " FROM projects" + only.where("id"),
             only.params());
  if (!r) return r.error();
  for (int i = 0; i < r->size(); ++i) {
    const std::string_view row_id = r->text(i, 0);
    auto p = std::make_shared<project>();
    auto id = read_id(*r, i, 0, "projects", row_id);
    if (!id) return id.error();
    auto org = read_id(*r, i, 1, "projects", row_id);
    if (!org) return org.error();
    p->id = *id;
    p->organization = *org;
    p->name = r->text(i, 2);
    p->slug = r->text(i, 3);
    if (!r->is_null(i, 4)) p->description = std::string(r->text(i, 4));
    const auto status = parse_project_status(r->text(i, 5));
    if (!status) return row_problem("projects", row_id, "unknown status");
    p->status = *status;
    if (!r->is_null(i, 6)) p->app_icon_url = std::string(r->text(i, 6));
    p->created_at = from_millis(r->text(i, 7));
    p->updated_at = from_millis(r->text(i, 8));
    sink.project(std::move(p));
  }
  return {};
}

result<void> load_tokens(connection& c, const catalog_load_sink& sink, const id_filter& only) {
  auto r = c.exec("SELECT t.id, t.name, array_to_json(t.scopes), t.digest, " + ms("t.created_at") +
                      ", coalesce((SELECT json_agg(o.organization_id ORDER BY o.position)"
                      " FROM token_organizations o WHERE o.token_id = t.id), '[]') FROM tokens t" +
                      only.where("t.id"),
                  only.params());
  if (!r) return r.error();
  for (int i = 0; i < r->size(); ++i) {
    const std::string_view row_id = r->text(i, 0);
    auto t = std::make_shared<api_token>();
    auto id = read_id(*r, i, 0, "tokens", row_id);
    if (!id) return id.error();
    t->id = *id;
    t->name = r->text(i, 1);
    const auto scopes = json_array_of(r->text(i, 2));
    if (!scopes) return row_problem("tokens", row_id, "scopes is not a list");
    for (const json::value& s : *scopes) {
      const auto parsed = s.is_string() ? parse_scope(s.get_string()) : std::nullopt;
      if (!parsed) return row_problem("tokens", row_id, "unknown scope " + json::serialize(s));
      t->scopes.add(*parsed);
    }
    const std::string digest = r->bytes(i, 3);
    if (digest.size() != t->digest.size()) return row_problem("tokens", row_id, "digest size");
    std::copy(digest.begin(), digest.end(), reinterpret_cast<char*>(t->digest.data()));
    t->created_at = from_millis(r->text(i, 4));
    const auto orgs = json_array_of(r->text(i, 5));
    if (!orgs) return row_problem("tokens", row_id, "organizations is not a list");
    for (const json::value& o : *orgs) {
      const auto org = o.is_string() ? object_id::parse(o.get_string()) : std::nullopt;
      if (!org) return row_problem("token_organizations", row_id, "not an id");
      t->organizations.push_back(*org);
    }
    sink.token(std::move(t));
  }
  return {};
}

result<void> load_webhooks(connection& c, const catalog_load_sink& sink, const aes256gcm_key& key,
                           const id_filter& only) {
  auto r = c.exec(
      "SELECT id, organization_id, project_id, name, url, active, array_to_json(events), signing,"
      " secret_sealed, headers_sealed, previous_secrets_sealed, filter, rate_limit,"
      " disabled_reason, " +
          ms("disabled_at") + ", " + ms("created_at") + ", " + ms("updated_at") + " FROM webhooks" +
          only.where("id"),
      only.params());
  if (!r) return r.error();
  constexpr std::string_view kTable = "webhooks";
  constexpr std::string_view kOtherKey =
      " does not open with the master key (a different master key than the one it was sealed "
      "with, or a changed row)";
  for (int i = 0; i < r->size(); ++i) {
    const std::string_view row_id = r->text(i, 0);
    auto w = std::make_shared<webhook>();
    auto id = read_id(*r, i, 0, kTable, row_id);
    if (!id) return id.error();
    auto org = read_id(*r, i, 1, kTable, row_id);
    if (!org) return org.error();
    auto proj = read_id(*r, i, 2, kTable, row_id);
    if (!proj) return proj.error();
    w->id = *id;
    w->organization = *org;
    w->project = *proj;
    w->name = r->text(i, 3);
    w->url = r->text(i, 4);
    w->active = r->text(i, 5) == "t";
    const auto events = json_array_of(r->text(i, 6));
    if (!events) return row_problem(kTable, row_id, "events is not a list");
    for (const json::value& e : *events) {
      if (!e.is_string()) return row_problem(kTable, row_id, "events holds a non-string");
      w->events.emplace_back(e.get_string());
    }
    const auto scheme = parse_signing_scheme(r->text(i, 7));
    if (!scheme) return row_problem(kTable, row_id, "signing is not v1 or v1a");
    w->signing = *scheme;
    auto secret = key.open(r->bytes(i, 8), w->id.binary());
    if (!secret) return row_problem(kTable, row_id, "secret_sealed" + std::string(kOtherKey));
    w->secret = std::move(*secret);
    const auto headers = key.open(r->bytes(i, 9), labelled_aad("headers:", w->id));
    const auto header_list = headers ? json_array_of(*headers) : std::nullopt;
    if (!header_list) return row_problem(kTable, row_id, "headers_sealed" + std::string(kOtherKey));
    for (const json::value& h : *header_list) {
      const json::array* pair = h.if_array();
      if (pair == nullptr || pair->size() != 2 || !(*pair)[0].is_string() ||
          !(*pair)[1].is_string()) {
        return row_problem(kTable, row_id, "headers_sealed holds no list of name-value pairs");
      }
      w->headers.push_back(
          {std::string((*pair)[0].get_string()), std::string((*pair)[1].get_string())});
    }
    if (!r->is_null(i, 10)) {
      const auto previous = key.open(r->bytes(i, 10), labelled_aad("previous:", w->id));
      const auto list = previous ? json_array_of(*previous) : std::nullopt;
      if (!list) {
        return row_problem(kTable, row_id, "previous_secrets_sealed" + std::string(kOtherKey));
      }
      for (const json::value& item : *list) {
        const json::array* pair = item.if_array();
        if (pair == nullptr || pair->size() != 2 || !(*pair)[0].is_string() ||
            !(*pair)[1].is_int64()) {
          return row_problem(kTable, row_id,
                             "previous_secrets_sealed holds no list of secret-expiry pairs");
        }
        w->previous_secrets.push_back(
            {std::string((*pair)[0].get_string()),
             timestamp(std::chrono::milliseconds((*pair)[1].get_int64()))});
      }
    }
    if (!r->is_null(i, 11)) {
      boost::system::error_code ec;
      const json::value filter = json::parse(r->text(i, 11), ec);
      std::vector<field_error> errors;
      if (!ec) w->filter = event_filter::parse(filter, errors);
      if (ec || !errors.empty() || !w->filter) {
        return row_problem(kTable, row_id, "filter is not a valid filter");
      }
    }
    if (!r->is_null(i, 12))
      w->rate_limit = static_cast<std::uint32_t>(std::stoul(std::string(r->text(i, 12))));
    if (!r->is_null(i, 13)) w->disabled_reason = std::string(r->text(i, 13));
    if (!r->is_null(i, 14)) w->disabled_at = from_millis(r->text(i, 14));
    w->created_at = from_millis(r->text(i, 15));
    w->updated_at = from_millis(r->text(i, 16));
    sink.webhook(std::move(w));
  }
  return {};
}

}  // namespace

result<void> read_entities(connection& c, std::string_view entity,
                           const std::vector<std::string>& ids, const catalog_load_sink& sink,
                           const aes256gcm_key& key) {
  const id_filter only{ids};
  if (entity == "organization") return load_organizations(c, sink, only);
  if (entity == "project") return load_projects(c, sink, only);
  if (entity == "token") return load_tokens(c, sink, only);
  if (entity == "webhook") return load_webhooks(c, sink, key, only);
  return make_problem(error_kind::internal,
                      "PostgreSQL: unknown entity \"" + std::string(entity) + "\" in changes");
}

result<std::unique_ptr<pg_catalog_store>> pg_catalog_store::open(std::string uri,
                                                                 const aes256gcm_key& master_key) {
  auto conn = connection::open(std::move(uri));
  if (!conn) return conn.error();
  if (auto migrated = migrate(*conn); !migrated) return migrated.error();
  return std::unique_ptr<pg_catalog_store>(new pg_catalog_store(std::move(*conn), master_key));
}

result<void> pg_catalog_store::commit(const catalog_change& change) {
  if (change.empty()) return {};
  // A connection that broke while idle (a restarted server) is found out by BEGIN, before any of
  // the change was sent: then one new connection is tried at once, instead of failing this change
  // and leaving the reconnect to the next one.
  for (int attempt = 0;; ++attempt) {
    bool began = false;
    auto done = commit_once(change, began);
    if (done || began || attempt == 1 || conn_.healthy()) return done;
  }
}

result<void> pg_catalog_store::commit_once(const catalog_change& change, bool& began) {
  std::vector<std::int64_t> written;  // this change's seqs
  return in_transaction(conn_, [&]() -> result<void> {
    began = true;
    // Catalog commits of all nodes one at a time, so that `changes` rows become visible in seq
    // order and a feed that read up to seq n never sees a smaller seq appear later.
    if (auto locked =
            conn_.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kChangesLock) + ")");
        !locked) {
      return locked.error();
    }
    std::string last_seq;
    for (const catalog_change::op& op : change.ops) {
      std::vector<statement> statements;
      if (op.what == catalog_change::kind::erase) {
        statements.push_back(erase_statement(op.value));
      } else {
        statements = std::visit([&](const auto& p) { return put_statements(*p, key_); }, op.value);
      }
      for (const statement& s : statements) {
        if (auto done = conn_.exec(s.sql, s.params); !done) return done.error();
      }
      auto seq = conn_.exec(
          "INSERT INTO changes (entity, id) VALUES ($1, $2) RETURNING seq",
          {param::text(std::string(entity_name(op.value))), id_param(entity_id(op.value))});
      if (!seq) return seq.error();
      last_seq = seq->text(0, 0);
      written.push_back(std::stoll(last_seq));
    }
    // Delivered to the listeners when (and only if) the transaction commits.
    if (auto notified =
            conn_.exec("SELECT pg_notify('hookd_changes', $1)", {param::text(last_seq)});
        !notified) {
      return notified.error();
    }
    // Remembered before COMMIT, so that a feed that reads them the moment they are visible knows
    // them; a change that then fails to commit leaves seqs that never become visible.
    std::lock_guard lock(own_mutex_);
    own_seqs_.insert(written.begin(), written.end());
    return {};
  });
}

bool pg_catalog_store::committed_here(std::int64_t seq) const {
  std::lock_guard lock(own_mutex_);
  return own_seqs_.contains(seq);
}

void pg_catalog_store::forget_through(std::int64_t seq) {
  std::lock_guard lock(own_mutex_);
  own_seqs_.erase(own_seqs_.begin(), own_seqs_.upper_bound(seq));
}

result<void> pg_catalog_store::load(const catalog_load_sink& sink, unsigned /*threads*/) {
  // One REPEATABLE READ transaction: the four tables as of one moment.
  auto begun = conn_.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  if (!begun) return begun.error();
  const id_filter all;
  result<void> done = load_organizations(conn_, sink, all);
  if (done) done = load_projects(conn_, sink, all);
  if (done) done = load_tokens(conn_, sink, all);
  if (done) done = load_webhooks(conn_, sink, key_, all);
  // The feed's starting point: every change up to here is in what was loaded (commits are
  // serialized, so a change this snapshot does not see has a greater seq).
  if (done) {
    auto seq = conn_.exec("SELECT coalesce(max(seq), 0) FROM changes");
    if (seq) {
      loaded_seq_ = std::stoll(std::string(seq->text(0, 0)));
    } else {
      done = seq.error();
    }
  }
  (void)conn_.exec("COMMIT");
  return done;
}

// ---- the admin token's bootstrap

result<admin_bootstrap_lock> admin_bootstrap_lock::acquire(std::string uri) {
  auto conn = connection::open(std::move(uri));
  if (!conn) return conn.error();
  if (auto locked =
          conn->exec("SELECT pg_advisory_lock(" + std::to_string(kAdminBootstrapLock) + ")");
      !locked) {
    return locked.error();
  }
  return admin_bootstrap_lock(std::move(*conn));
}

result<bool> admin_bootstrap_lock::admin_token_exists() {
  auto r = conn_.exec("SELECT EXISTS (SELECT 1 FROM tokens WHERE $1 = ANY (scopes))",
                      {param::text(std::string(scope_name(scope::admin)))});
  if (!r) return r.error();
  return r->text(0, 0) == "t";
}

}  // namespace hookd::pg
