#include "storage/postgres/pg_delivery_store.hpp"

#include "storage/postgres/migrations.hpp"

#include <libpq-fe.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace hookd::pg {
namespace json = boost::json;

namespace {

constexpr std::int64_t kDayMs = 24LL * 3600 * 1000;

std::int64_t millis(timestamp t) {
  return t.time_since_epoch().count();
}
std::string millis_text(timestamp t) {
  return std::to_string(millis(t));
}
timestamp from_millis(std::string_view text) {
  return timestamp(std::chrono::milliseconds(std::stoll(std::string(text))));
}
// The start (00:00 UTC) of t's day.
timestamp day_start(timestamp t) {
  const std::int64_t ms = millis(t);
  return timestamp(std::chrono::milliseconds(ms - (((ms % kDayMs) + kDayMs) % kDayMs)));
}
// SQL for "parameter $n, unix milliseconds, as timestamptz", and a column back to milliseconds.
std::string ts(int n) {
  return "(timestamptz 'epoch' + $" + std::to_string(n) + "::bigint * interval '1 millisecond')";
}
std::string ts_of(std::string_view expr) {
  return "(timestamptz 'epoch' + " + std::string(expr) + " * interval '1 millisecond')";
}
std::string ms(std::string_view column) {
  return "(extract(epoch FROM " + std::string(column) + ") * 1000)::bigint";
}

param text(std::string v) {
  return param::text(std::move(v));
}
param id_param(const object_id& id) {
  return param::text(id.to_string());
}
// A text[] literal of ids (hex digits need no quoting).
param id_array(const std::vector<object_id>& ids) {
  std::string out = "{";
  for (const object_id& id : ids) {
    if (out.size() > 1) out += ',';
    id.append_to(out);
  }
  out += '}';
  return param::text(std::move(out));
}

object_id parse_id(std::string_view hex) {
  return object_id::parse(hex).value_or(object_id{});
}
std::optional<std::string> optional_text(const rows& r, int row, int col) {
  if (r.is_null(row, col)) return std::nullopt;
  return std::string(r.text(row, col));
}
std::int64_t integer(const rows& r, int row, int col) {
  return std::stoll(std::string(r.text(row, col)));
}
json::value json_optional(const std::optional<std::string>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

// A delivery's columns, the same for `deliveries` and `delivery_history` (due_ms NULL there),
// each prefixed with `table` ("leased." or ""): parse_delivery reads them from column `at` on.
std::string delivery_columns(std::string_view table, bool history) {
  const std::string t(table);
  return t + "id, " + t + "event_id, " + t + "webhook_id, " + t + "project_id, " + t + "type, " +
         t + "status, " + t + "attempts, " +
         (history ? std::string("NULL::bigint") : ms(t + "due_at")) + " AS due_ms, " +
         ms(t + "created_at") + " AS created_ms, " + ms(t + "updated_at") + " AS updated_ms, " + t +
         "reason, " + t + "ordering_key, " + t + "schedule_start, " + t + "test, " + t +
         "event_created_at";
}
const std::string kDeliveryColumns = delivery_columns("", false);
const std::string kHistoryColumns = delivery_columns("", true);
constexpr int kDeliveryColumnCount = 15;

delivery parse_delivery(const rows& r, int row, int at) {
  delivery d;
  d.id = parse_id(r.text(row, at));
  d.event = parse_id(r.text(row, at + 1));
  d.webhook = parse_id(r.text(row, at + 2));
  d.project = parse_id(r.text(row, at + 3));
  d.type = std::string(r.text(row, at + 4));
  d.status = parse_delivery_status(r.text(row, at + 5)).value_or(delivery_status::failed);
  d.attempts = static_cast<std::uint32_t>(integer(r, row, at + 6));
  if (!r.is_null(row, at + 7)) d.next_attempt_at = from_millis(r.text(row, at + 7));
  d.created_at = from_millis(r.text(row, at + 8));
  d.updated_at = from_millis(r.text(row, at + 9));
  d.reason = optional_text(r, row, at + 10);
  d.ordering_key = optional_text(r, row, at + 11);
  d.schedule_start = static_cast<std::uint32_t>(integer(r, row, at + 12));
  d.test = r.text(row, at + 13) == "t";
  return d;
}

// An event's columns; parse_event reads them from column `at` on.
constexpr std::string_view kEventColumns =
    "e.id, e.organization_id, e.project_id, e.type, e.data,"
    " (extract(epoch FROM e.event_time) * 1000)::bigint, e.subject, e.ordering_key,"
    " e.traceparent";
constexpr int kEventColumnCount = 9;

event parse_event(const rows& r, int row, int at) {
  event e;
  e.id = parse_id(r.text(row, at));
  e.organization = parse_id(r.text(row, at + 1));
  e.project = parse_id(r.text(row, at + 2));
  e.type = std::string(r.text(row, at + 3));
  e.data = std::string(r.text(row, at + 4));
  e.time = from_millis(r.text(row, at + 5));
  e.subject = optional_text(r, row, at + 6);
  e.ordering_key = optional_text(r, row, at + 7);
  e.traceparent = optional_text(r, row, at + 8);
  return e;
}

bool is_missing_partition(const problem& p) {
  return p.detail.find("[SQLSTATE 23514]") != std::string::npos &&
         p.detail.find("no partition") != std::string::npos;
}

std::string hex(const sha256_digest& d) {
  return hex_encode(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

// A CTE `took` that takes (or keeps) this node's lease of the webhooks of `source`'s
// `webhook_id`s: $node this node, $lease the lease (ms). Only the rows that must change are
// written:
// - a webhook another node holds, its lease not expired, is not touched (no lock), so that the
//   nodes' ingests of one webhook never queue on each other's row locks;
// - the rows of the others (this node's, nobody's, expired) are locked first, all in webhook
//   order (FOR NO KEY UPDATE: no new row version), so that statements of several nodes, and a
//   renewal or release on this node's other connection, wait for each other in one order, never
//   in a cycle; a row another node took meanwhile is re-checked on its newest version and left;
// - a webhook this node holds with more than half the lease left is kept as it is (`kept`: the
//   renewal extends the lease);
// - the rest (no row yet, nobody holds it, its lease expired, or this node's with less than half
//   the lease left) are taken with INSERT ... ON CONFLICT ... DO UPDATE ... WHERE, which
//   PostgreSQL checks on the newest row version: of two nodes taking one webhook, one wins; a
//   lease another node took a moment ago is not taken (its row is not returned).
std::string take_webhooks_sql(std::string_view source, int node, int lease) {
  const std::string n = "$" + std::to_string(node);
  const std::string l = "$" + std::to_string(lease);
  const std::string src = "(SELECT webhook_id FROM " + std::string(source) + ")";
  return " lockable AS (SELECT w.* FROM webhook_leases w WHERE w.webhook_id IN " + src +
         " AND (w.owner = " + n +
         " OR w.owner IS NULL OR w.lease_until < statement_timestamp())"
         " ORDER BY w.webhook_id FOR NO KEY UPDATE),"
         " kept AS (SELECT webhook_id, failures, first_failure_at, last_failure_at,"
         " last_success_at FROM lockable WHERE owner = " +
         n + " AND lease_until > statement_timestamp() + " + l +
         "::bigint * interval '0.5 millisecond'),"
         " elsewhere_held AS (SELECT w.webhook_id FROM webhook_leases w WHERE w.webhook_id IN " +
         src + " AND w.owner <> " + n +
         " AND w.lease_until >= statement_timestamp()),"
         " taken AS (INSERT INTO webhook_leases AS w (webhook_id, owner, lease_until)"
         " SELECT DISTINCT webhook_id, " +
         n + ", statement_timestamp() + " + l + "::bigint * interval '1 millisecond' FROM " +
         std::string(source) +
         " WHERE webhook_id NOT IN (SELECT webhook_id FROM kept) AND webhook_id NOT IN"
         " (SELECT webhook_id FROM elsewhere_held) ORDER BY 1"
         " ON CONFLICT (webhook_id) DO UPDATE SET owner = EXCLUDED.owner,"
         " lease_until = EXCLUDED.lease_until WHERE w.owner = EXCLUDED.owner OR w.owner IS NULL"
         " OR w.lease_until < statement_timestamp()"
         " RETURNING w.webhook_id, w.failures, w.first_failure_at, w.last_failure_at,"
         " w.last_success_at),"
         " took AS (SELECT * FROM kept UNION ALL SELECT * FROM taken)";
}

// `took`'s rows as one JSON array of [webhook, failures, first, last failure, last success ms].
const std::string kHeldJson = "json_agg(json_build_array(webhook_id, failures, " +
                              ms("first_failure_at") + ", " + ms("last_failure_at") + ", " +
                              ms("last_success_at") + "))";

std::optional<timestamp> json_time(const json::value& v) {
  if (v.is_null()) return std::nullopt;
  return timestamp{std::chrono::milliseconds{v.to_number<std::int64_t>()}};
}

// kHeldJson's text (NULL: none) into `out`.
void parse_held(const rows& r, int row, int col, std::vector<webhook_held>& out) {
  if (r.size() <= row || r.is_null(row, col)) return;
  const json::value all = json::parse(r.text(row, col));
  for (const json::value& v : all.as_array()) {
    const json::array& a = v.as_array();
    webhook_held h;
    h.webhook = parse_id(a.at(0).as_string());
    h.streak.failures = a.at(1).to_number<std::uint64_t>();
    h.streak.first_failure_at = json_time(a.at(2));
    h.streak.last_failure_at = json_time(a.at(3));
    h.streak.last_success_at = json_time(a.at(4));
    out.push_back(std::move(h));
  }
}

// The ingest statement: $1 the events (JSON records), $2 their deliveries, $3 now (ms),
// $4 idempotency cutoff (ms: keys created before it expired), $5 node, $6 lease (ms), $7 the
// idempotency keys to claim (JSON records, those of $1 with a key).
// The keys are claimed first, by hookd_claim_keys (migration 0004): per key an advisory lock,
// then a look across the live day partitions of idempotency_keys, then the insert of a key no
// live row holds; it returns the row that holds each key, one committed by another node a moment
// ago included, so that one statement tells created from replay from conflict.
const std::string& ingest_sql() {
  static const std::string sql = [] {
    return "WITH input AS (SELECT * FROM json_to_recordset($1::json) AS t(i int, id text,"
           " organization_id text, project_id text, type text, data text, event_ms bigint,"
           " subject text, ordering_key text, traceparent text, token text, key text,"
           " fingerprint text, deliveries int, test boolean)),"
           " claim AS (SELECT claim_token AS token_id, claim_key AS key, claim_event AS event_id,"
           " claim_fingerprint AS fingerprint, claim_type AS type, claim_event_ms AS event_ms,"
           " claim_deliveries AS deliveries FROM hookd_claim_keys($7::json, " +
           ts(3) + ", " + ts(4) +
           ")),"
           " won AS (SELECT input.* FROM input LEFT JOIN claim ON claim.token_id = input.token"
           " AND claim.key = input.key WHERE input.token IS NULL OR claim.event_id = input.id),"
           " ev AS (INSERT INTO events (id, organization_id, project_id, type, data, event_time,"
           " subject, ordering_key, traceparent, created_at)"
           " SELECT id, organization_id, project_id, type, data, " +
           ts_of("event_ms") + ", subject, ordering_key, traceparent, " + ts(3) +
           " FROM won RETURNING 1),"
           " nd AS (SELECT d.id, d.event_id, d.webhook_id, won.project_id, won.type,"
           " won.ordering_key, won.test"
           " FROM json_to_recordset($2::json) AS d(id text, event_id text, webhook_id text)"
           " JOIN won ON won.id = d.event_id)," +
           take_webhooks_sql("nd", 5, 6) +
           ","
           // Per new delivery: is it this node's to dispatch at once (of a webhook it holds, and
           // no earlier delivery of its ordering key left to a claim: the claim takes both, in
           // order), and is its webhook another node's? `took` is small (the group's webhooks):
           // one pass over the deliveries, no join of the deliveries with themselves.
           " mark AS (SELECT nd.*, took.webhook_id IS NULL AS elsewhere,"
           " took.webhook_id IS NOT NULL AND (nd.ordering_key IS NULL OR NOT EXISTS (SELECT 1"
           " FROM deliveries q WHERE q.webhook_id = nd.webhook_id AND q.ordering_key ="
           " nd.ordering_key AND q.lease_owner IS DISTINCT FROM $5)) AS mine"
           " FROM nd LEFT JOIN took ON took.webhook_id = nd.webhook_id),"
           " dl AS (INSERT INTO deliveries (id, event_id, event_created_at, webhook_id, project_id,"
           " type, status, attempts, schedule_start, due_at, ordering_key, test, lease_owner,"
           " lease_until, created_at, updated_at)"
           " SELECT id, event_id, " +
           ts(3) + ", webhook_id, project_id, type, 'pending', 0, 0, " + ts(3) +
           ", ordering_key, test, CASE WHEN mine THEN $5 END,"
           " CASE WHEN mine THEN statement_timestamp() + $6::bigint * interval"
           " '1 millisecond' END, " +
           ts(3) + ", " + ts(3) +
           " FROM mark RETURNING 1),"
           // The webhooks another node holds: their holder claims at once (NOTIFY at commit).
           " elsewhere AS (SELECT string_agg(DISTINCT webhook_id, ',') AS ids FROM mark"
           " WHERE elsewhere)"
           " SELECT input.i, claim.event_id, claim.fingerprint, claim.type, claim.event_ms,"
           " claim.deliveries, (SELECT count(*) FROM ev), (SELECT count(*) FROM dl),"
           " (SELECT " +
           kHeldJson +
           " FROM took),"
           " (SELECT json_agg(id) FROM mark WHERE NOT mine),"
           " (SELECT pg_notify('" +
           std::string(kDeliveriesChannel) +
           "', CASE WHEN length(ids) > 7000 THEN '*' ELSE ids END) FROM elsewhere"
           " WHERE ids IS NOT NULL) IS NOT NULL"
           " FROM input LEFT JOIN claim ON claim.token_id = input.token AND claim.key = input.key"
           " ORDER BY input.i";
  }();
  return sql;
}

// The record statement: $1 the attempts (JSON records), $2 node, $3 lease (ms): a retry stays
// with this node (it holds the webhook), its lease renewed. A delivery is recorded only
// while this node holds it and the attempt is its next; the checks sit in the UPDATE's and the
// DELETE's own WHERE, which PostgreSQL re-checks on the newest row version when another node
// changed it meanwhile, so a lease taken over an instant ago still refuses the record.
const std::string& record_sql() {
  static const std::string sql =
      "WITH input AS (SELECT * FROM json_to_recordset($1::json) AS t(delivery_id text, number int,"
      " at_ms bigint, duration_ms int, status_code int, response text, error text, status text,"
      " due_ms bigint, reason text, updated_ms bigint)),"
      " retry AS (UPDATE deliveries d SET attempts = i.number, due_at = " +
      ts_of("i.due_ms") + ", reason = i.reason, updated_at = " + ts_of("i.updated_ms") +
      ", lease_until = statement_timestamp() + $3::bigint * interval '1 millisecond'"
      " FROM input i WHERE d.id = i.delivery_id"
      " AND i.status = 'pending' AND d.lease_owner = $2 AND d.attempts + 1 = i.number"
      " RETURNING d.id, d.event_created_at),"
      " finished AS (DELETE FROM deliveries d USING input i WHERE d.id = i.delivery_id"
      " AND i.status <> 'pending' AND d.lease_owner = $2 AND d.attempts + 1 = i.number"
      " RETURNING d.id, d.event_id, d.event_created_at, d.webhook_id, d.project_id, d.type,"
      " i.status, i.number, d.schedule_start, i.reason, d.ordering_key, d.test, d.created_at,"
      " i.updated_ms),"
      " history AS (INSERT INTO delivery_history (id, event_id, event_created_at, webhook_id,"
      " project_id, type, status, attempts, schedule_start, reason, ordering_key, test,"
      " created_at, updated_at) SELECT id, event_id, event_created_at, webhook_id, project_id,"
      " type, status, number, schedule_start, reason, ordering_key, test, created_at, " +
      ts_of("updated_ms") +
      " FROM finished RETURNING 1),"
      // Finished while the attempt was in flight (its webhook was deleted): the attempt still
      // counts; the delivery keeps its status.
      " late AS (UPDATE delivery_history h SET attempts = i.number FROM input i"
      " WHERE h.id = i.delivery_id AND h.attempts + 1 = i.number"
      " AND NOT EXISTS (SELECT 1 FROM deliveries q WHERE q.id = i.delivery_id)"
      " RETURNING h.id, h.event_created_at),"
      " done AS (SELECT id, event_created_at, false AS late FROM retry UNION ALL"
      " SELECT id, event_created_at, false FROM finished UNION ALL"
      " SELECT id, event_created_at, true FROM late),"
      " attempt AS (INSERT INTO attempts (delivery_id, number, at, duration_ms, status_code,"
      " response, error, created_at) SELECT i.delivery_id, i.number, " +
      ts_of("i.at_ms") +
      ", i.duration_ms, i.status_code, i.response, i.error, done.event_created_at"
      " FROM input i JOIN done ON done.id = i.delivery_id RETURNING 1)"
      " SELECT i.delivery_id, done.id IS NOT NULL, cur.lease_owner, cur.attempts,"
      " (SELECT count(*) FROM attempt), (SELECT count(*) FROM history), done.late"
      " FROM input i LEFT JOIN done ON done.id = i.delivery_id"
      " LEFT JOIN deliveries cur ON cur.id = i.delivery_id";
  return sql;
}

}  // namespace

result<std::unique_ptr<pg_delivery_store>> pg_delivery_store::open(delivery_store_options options) {
  if (options.node.empty()) {
    return make_problem(error_kind::internal, "pg_delivery_store: the node's name is required");
  }
  if (!options.clock) options.clock = now_ms;
  auto conn = connection::open(options.uri);
  if (!conn) return conn.error();
  if (auto migrated = migrate(*conn); !migrated) return migrated.error();
  std::unique_ptr<pg_delivery_store> store(
      new pg_delivery_store(std::move(*conn), std::move(options)));
  if (auto made = store->ensure_partitions(); !made) return made.error();
  return store;
}

// ---- ingest

result<std::vector<ingest_answer>> pg_delivery_store::ingest(const std::vector<ingest_item>& group,
                                                             lease_news* news) {
  if (group.empty()) return std::vector<ingest_answer>{};
  auto answers = ingest_once(group, news);
  if (!answers && is_missing_partition(answers.error())) {
    // Today's partition is missing (ensure_partitions has not run since midnight): make it and
    // try again. Nothing of the failed statement was written.
    if (auto made = ensure_partitions(); !made) return made.error();
    answers = ingest_once(group, news);
  }
  return answers;
}

result<std::vector<ingest_answer>> pg_delivery_store::ingest_once(
    const std::vector<ingest_item>& group, lease_news* news) {
  // Items after the first of a group with the same key are not sent: one statement may not claim
  // a key twice. They get the first one's answer, or a conflict, below.
  std::map<std::pair<object_id, std::string>, std::size_t> first_with_key;
  std::vector<std::optional<std::size_t>> same_key_as(group.size());
  json::array events;
  json::array deliveries;
  json::array keys;
  for (std::size_t i = 0; i < group.size(); ++i) {
    const ingest_item& item = group[i];
    if (item.key) {
      auto [it, fresh] = first_with_key.try_emplace({item.key->token, item.key->key}, i);
      if (!fresh) {
        same_key_as[i] = it->second;
        continue;
      }
    }
    const event& e = item.record;
    json::object row;
    row["i"] = i;
    row["id"] = e.id.to_string();
    row["organization_id"] = e.organization.to_string();
    row["project_id"] = e.project.to_string();
    row["type"] = e.type;
    row["data"] = e.data;
    row["event_ms"] = millis(e.time);
    row["subject"] = json_optional(e.subject);
    row["ordering_key"] = json_optional(e.ordering_key);
    row["traceparent"] = json_optional(e.traceparent);
    row["token"] = item.key ? json::value(item.key->token.to_string()) : json::value(nullptr);
    row["key"] = item.key ? json::value(item.key->key) : json::value(nullptr);
    row["fingerprint"] = item.key ? json::value(hex(item.key->fingerprint)) : json::value(nullptr);
    row["deliveries"] = e.deliveries.size();
    row["test"] = item.test;
    if (item.key) {
      keys.push_back(json::object{{"token", row["token"]},
                                  {"key", row["key"]},
                                  {"fingerprint", row["fingerprint"]},
                                  {"id", row["id"]},
                                  {"type", row["type"]},
                                  {"event_ms", row["event_ms"]},
                                  {"deliveries", row["deliveries"]}});
    }
    events.push_back(std::move(row));
    for (const fanout_entry& f : e.deliveries) {
      deliveries.push_back(json::object{{"id", f.delivery.to_string()},
                                        {"event_id", e.id.to_string()},
                                        {"webhook_id", f.webhook.to_string()}});
    }
  }
  const timestamp now = options_.clock();
  auto r = conn_.exec(
      ingest_sql(),
      {text(json::serialize(events)), text(json::serialize(deliveries)), text(millis_text(now)),
       text(millis_text(now - options_.idempotency_ttl)), text(options_.node),
       text(std::to_string(options_.lease.count())), text(json::serialize(keys))});
  if (!r) return r.error();
  if (news != nullptr && r->size() > 0) {
    parse_held(*r, 0, 8, news->held);
    if (!r->is_null(0, 9)) {
      const json::value ids = json::parse(r->text(0, 9));
      for (const json::value& id : ids.as_array()) {
        news->not_leased.push_back(parse_id(id.as_string()));
      }
    }
  }

  std::vector<ingest_answer> answers(group.size());
  for (int row = 0; row < r->size(); ++row) {
    const auto i = static_cast<std::size_t>(integer(*r, row, 0));
    const ingest_item& item = group[i];
    ingest_answer& a = answers[i];
    a.event = item.record.id;
    a.type = item.record.type;
    a.time = item.record.time;
    a.deliveries = static_cast<std::uint32_t>(item.record.deliveries.size());
    if (!item.key || r->is_null(row, 1) || parse_id(r->text(row, 1)) == item.record.id) continue;
    if (r->text(row, 2) != hex(item.key->fingerprint)) {
      a.outcome = ingest_outcome::conflict;
      continue;
    }
    a.outcome = ingest_outcome::replay;
    a.event = parse_id(r->text(row, 1));
    a.type = std::string(r->text(row, 3));
    a.time = from_millis(r->text(row, 4));
    a.deliveries = static_cast<std::uint32_t>(integer(*r, row, 5));
  }
  for (std::size_t i = 0; i < group.size(); ++i) {
    if (!same_key_as[i]) continue;
    const std::size_t first = *same_key_as[i];
    ingest_answer& a = answers[i];
    if (answers[first].outcome == ingest_outcome::conflict ||
        group[first].key->fingerprint != group[i].key->fingerprint) {
      a.outcome = ingest_outcome::conflict;
      continue;
    }
    a = answers[first];
    a.outcome = ingest_outcome::replay;
  }
  return answers;
}

// ---- claims and leases

result<std::vector<pending_delivery>> pg_delivery_store::claim_due(std::size_t n,
                                                                   lease_news* news) {
  if (n == 0) return std::vector<pending_delivery>{};
  // The webhooks with pending deliveries, one index probe each (a loose scan of
  // deliveries_webhook_due), those of them this node holds or may take (nobody holds them, or
  // their lease expired), and per webhook its due deliveries nobody holds, oldest first, from the
  // same index: a webhook another node holds costs one probe, however large its backlog. Then
  // the oldest n of them, locked (skipping those another claim locked; PostgreSQL re-checks the
  // lease on a row another node leased meanwhile), their webhooks' leases taken (one of two
  // nodes claiming at once wins a webhook), and the deliveries of the webhooks won leased.
  static const std::string sql =
      "WITH RECURSIVE hooks AS ((SELECT d.webhook_id FROM deliveries d"
      " WHERE d.status = 'pending' ORDER BY d.webhook_id LIMIT 1)"
      " UNION ALL SELECT (SELECT d.webhook_id FROM deliveries d WHERE d.status = 'pending'"
      " AND d.webhook_id > h.webhook_id ORDER BY d.webhook_id LIMIT 1)"
      " FROM hooks h WHERE h.webhook_id IS NOT NULL),"
      " claimable AS (SELECT h.webhook_id FROM hooks h LEFT JOIN webhook_leases w"
      " ON w.webhook_id = h.webhook_id WHERE h.webhook_id IS NOT NULL AND (w.owner IS NULL"
      " OR w.owner = $3 OR w.lease_until < statement_timestamp())),"
      " picked AS (SELECT p.id FROM claimable c CROSS JOIN LATERAL (SELECT d.id, d.due_at"
      " FROM deliveries d WHERE d.webhook_id = c.webhook_id AND d.status = 'pending'"
      " AND d.due_at <= " +
      ts(1) +
      " AND (d.lease_until IS NULL OR d.lease_until < statement_timestamp())"
      " ORDER BY d.due_at LIMIT $2) p ORDER BY p.due_at LIMIT $2),"
      " due AS (SELECT d.id, d.webhook_id FROM deliveries d WHERE d.id IN (SELECT id FROM picked)"
      " AND (d.lease_until IS NULL OR d.lease_until < statement_timestamp())"
      " FOR UPDATE OF d SKIP LOCKED)," +
      take_webhooks_sql("due", 3, 4) +
      ","
      " leased AS (UPDATE deliveries d SET lease_owner = $3, lease_until = statement_timestamp()"
      " + $4::bigint * interval '1 millisecond' FROM due JOIN took ON took.webhook_id ="
      " due.webhook_id WHERE d.id = due.id RETURNING d.*)"
      " SELECT " +
      delivery_columns("leased.", false) + ", " + std::string(kEventColumns) + ", (SELECT " +
      kHeldJson +
      " FROM took) FROM leased JOIN events e ON e.id = leased.event_id"
      " AND e.created_at = leased.event_created_at ORDER BY leased.due_at, leased.id";
  auto r = conn_.exec(sql, {text(millis_text(options_.clock())), text(std::to_string(n)),
                            text(options_.node), text(std::to_string(options_.lease.count()))});
  if (!r) return r.error();
  std::vector<pending_delivery> out;
  out.reserve(static_cast<std::size_t>(r->size()));
  std::unordered_map<object_id, std::shared_ptr<const event>, object_id_hash> events;
  for (int row = 0; row < r->size(); ++row) {
    auto d = std::make_shared<delivery>(parse_delivery(*r, row, 0));
    auto& e = events[d->event];
    if (!e) e = std::make_shared<event>(parse_event(*r, row, kDeliveryColumnCount));
    out.push_back({std::move(d), e});
  }
  if (news != nullptr) parse_held(*r, 0, kDeliveryColumnCount + kEventColumnCount, news->held);
  return out;
}

result<std::vector<webhook_held>> pg_delivery_store::renew_webhooks(
    const std::vector<object_id>& webhooks) {
  if (webhooks.empty()) return std::vector<webhook_held>{};
  // Locked in webhook order, as take_webhooks_sql does.
  auto r = conn_.exec(
      "WITH mine AS (SELECT webhook_id FROM webhook_leases WHERE webhook_id = ANY($1::text[])"
      " AND owner = $2 ORDER BY webhook_id FOR UPDATE),"
      " renewed AS (UPDATE webhook_leases w SET lease_until = statement_timestamp() + $3::bigint * "
      "interval"
      " '1 millisecond' FROM mine WHERE w.webhook_id = mine.webhook_id RETURNING w.*)"
      " SELECT " +
          kHeldJson + " FROM renewed",
      {id_array(webhooks), text(options_.node), text(std::to_string(options_.lease.count()))});
  if (!r) return r.error();
  std::vector<webhook_held> held;
  parse_held(*r, 0, 0, held);
  return held;
}

result<std::size_t> pg_delivery_store::release_webhooks(const std::vector<object_id>& webhooks) {
  if (webhooks.empty()) return std::size_t{0};
  auto r = conn_.exec(
      "WITH mine AS (SELECT webhook_id FROM webhook_leases WHERE webhook_id = ANY($1::text[])"
      " AND owner = $2 ORDER BY webhook_id FOR UPDATE)"
      " UPDATE webhook_leases w SET owner = NULL, lease_until = NULL FROM mine"
      " WHERE w.webhook_id = mine.webhook_id AND NOT EXISTS (SELECT 1 FROM deliveries d"
      " WHERE d.webhook_id = w.webhook_id AND d.lease_owner = $2)",
      {id_array(webhooks), text(options_.node)});
  if (!r) return r.error();
  return static_cast<std::size_t>(r->affected());
}

result<void> pg_delivery_store::save_streak(const object_id& webhook,
                                            const std::optional<failure_streak>& s) {
  const failure_streak none;
  const failure_streak& v = s ? *s : none;
  const auto time = [](const std::optional<timestamp>& t) {
    return t ? text(millis_text(*t)) : param::null();
  };
  // Another node holding the webhook is told at commit (its streak in memory is older: a
  // client reactivated the webhook here).
  auto r = conn_.exec(
      "WITH saved AS (INSERT INTO webhook_leases AS w (webhook_id, failures, first_failure_at,"
      " last_failure_at, last_success_at) VALUES ($1, $2::bigint, " +
          ts(3) + ", " + ts(4) + ", " + ts(5) +
          ") ON CONFLICT (webhook_id) DO UPDATE SET failures = EXCLUDED.failures,"
          " first_failure_at = EXCLUDED.first_failure_at, last_failure_at ="
          " EXCLUDED.last_failure_at, last_success_at = EXCLUDED.last_success_at"
          " RETURNING w.owner)"
          " SELECT pg_notify('" +
          std::string(kDeliveriesChannel) + "', '" + std::string(kStreakPayloadPrefix) +
          "' || $1) FROM saved WHERE owner IS NOT NULL AND owner <> $6",
      {id_param(webhook), text(std::to_string(v.failures)), time(v.first_failure_at),
       time(v.last_failure_at), time(v.last_success_at), text(options_.node)});
  if (!r) return r.error();
  return {};
}

result<std::vector<webhook_held>> pg_delivery_store::load_streaks() {
  auto r = conn_.exec("SELECT " + kHeldJson +
                      " FROM webhook_leases WHERE failures > 0 OR last_success_at IS NOT NULL");
  if (!r) return r.error();
  std::vector<webhook_held> out;
  parse_held(*r, 0, 0, out);
  return out;
}

result<std::vector<object_id>> pg_delivery_store::renew(const std::vector<object_id>& ids) {
  if (ids.empty()) return std::vector<object_id>{};
  auto r = conn_.exec(
      "UPDATE deliveries SET lease_until = statement_timestamp() + $3::bigint * interval"
      " '1 millisecond' WHERE id = ANY($1::text[]) AND lease_owner = $2 RETURNING id",
      {id_array(ids), text(options_.node), text(std::to_string(options_.lease.count()))});
  if (!r) return r.error();
  std::vector<object_id> held;
  for (int row = 0; row < r->size(); ++row) held.push_back(parse_id(r->text(row, 0)));
  return held;
}

result<std::size_t> pg_delivery_store::release(const std::vector<object_id>& ids) {
  if (ids.empty()) return std::size_t{0};
  auto r = conn_.exec(
      "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
      " WHERE id = ANY($1::text[]) AND lease_owner = $2",
      {id_array(ids), text(options_.node)});
  if (!r) return r.error();
  return static_cast<std::size_t>(r->affected());
}

// ---- attempts

namespace {

json::object attempt_row(const attempt_record& a) {
  json::object row;
  row["delivery_id"] = a.delivery.to_string();
  row["number"] = a.value.number;
  row["at_ms"] = millis(a.value.at);
  row["duration_ms"] = a.value.duration.count();
  row["status_code"] = a.value.status_code ? json::value(*a.value.status_code) : json::value();
  row["response"] = a.value.response;
  row["error"] = json_optional(a.value.error);
  row["status"] = to_string(a.after.status);
  row["due_ms"] = a.after.next_attempt_at ? json::value(millis(*a.after.next_attempt_at))
                                          : json::value(nullptr);
  row["reason"] = json_optional(a.after.reason);
  row["updated_ms"] = millis(a.after.updated_at);
  return row;
}

// The outcome of `a` from its row of record_sql's result.
record_outcome outcome_of(const rows& r, int row, const attempt_record& a, std::string_view node) {
  if (r.text(row, 1) == "t") {
    return r.text(row, 6) == "t" ? record_outcome::recorded_late : record_outcome::recorded;
  }
  if (r.is_null(row, 3)) return record_outcome::not_pending;
  if (r.is_null(row, 2) || r.text(row, 2) != node) return record_outcome::lease_lost;
  // Held by this node and the right number as of the statement's start, yet not recorded:
  // another node took it over in between.
  if (integer(r, row, 3) + 1 == a.value.number) return record_outcome::lease_lost;
  return record_outcome::conflict;
}

}  // namespace

result<std::vector<record_outcome>> pg_delivery_store::record_attempts(
    const std::vector<attempt_record>& batch) {
  std::vector<record_outcome> outcomes(batch.size(), record_outcome::conflict);
  if (batch.empty()) return outcomes;
  // One attempt per delivery and batch; a second one is a conflict (its number cannot be the
  // next of a delivery the first one changes).
  std::unordered_map<object_id, std::size_t, object_id_hash> index;
  std::vector<std::size_t> items;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (index.try_emplace(batch[i].delivery, i).second) items.push_back(i);
  }
  if (options_.pipeline_records) return record_pipelined(batch, items, std::move(outcomes));
  json::array input;
  for (std::size_t i : items) input.push_back(attempt_row(batch[i]));
  auto r = conn_.exec(record_sql(), {text(json::serialize(input)), text(options_.node),
                                     text(std::to_string(options_.lease.count()))});
  if (!r) return r.error();
  for (int row = 0; row < r->size(); ++row) {
    const auto it = index.find(parse_id(r->text(row, 0)));
    if (it == index.end()) continue;
    outcomes[it->second] = outcome_of(*r, row, batch[it->second], options_.node);
  }
  return outcomes;
}

result<std::vector<record_outcome>> pg_delivery_store::record_pipelined(
    const std::vector<attempt_record>& batch, const std::vector<std::size_t>& items,
    std::vector<record_outcome> outcomes) {
  if (!conn_.healthy()) {
    if (auto again = conn_.reconnect(); !again) return again.error();
  }
  PGconn* c = conn_.native();
  if (PQenterPipelineMode(c) != 1) {
    return storage_problem("pipeline mode", PQerrorMessage(c));
  }
  // Every statement up to the sync runs in one implicit transaction: a failure rolls back all.
  std::vector<std::string> inputs;
  inputs.reserve(items.size());
  bool sent = true;
  for (std::size_t i : items) {
    inputs.push_back(json::serialize(json::array{attempt_row(batch[i])}));
    const std::string lease = std::to_string(options_.lease.count());
    const char* values[] = {inputs.back().c_str(), options_.node.c_str(), lease.c_str()};
    if (PQsendQueryParams(c, record_sql().c_str(), 3, nullptr, values, nullptr, nullptr, 0) != 1) {
      sent = false;
      break;
    }
  }
  sent = sent && PQpipelineSync(c) == 1;
  std::optional<problem> failure;
  if (!sent) failure = storage_problem("pipeline send", PQerrorMessage(c));
  // Read every result up to the sync's (or until the connection gives none).
  std::size_t next = 0;
  for (;;) {
    PGresult* res = PQgetResult(c);
    if (res == nullptr) {
      if (!sent || PQstatus(c) != CONNECTION_OK) break;
      continue;  // the end of one statement's results
    }
    const auto status = PQresultStatus(res);
    if (status == PGRES_PIPELINE_SYNC) {
      PQclear(res);
      break;
    }
    if (status == PGRES_TUPLES_OK && next < items.size()) {
      const rows r(res);
      const std::size_t i = items[next++];
      if (r.size() == 1) outcomes[i] = outcome_of(r, 0, batch[i], options_.node);
      continue;
    }
    if (!failure) {
      const char* message = PQresultErrorMessage(res);
      failure = storage_problem("pipelined record", message != nullptr ? message : "aborted");
    }
    PQclear(res);
  }
  PQexitPipelineMode(c);
  if (failure) return *failure;
  return outcomes;
}

// ---- cancel, erase, delete

result<std::size_t> pg_delivery_store::cancel_webhook(const object_id& webhook) {
  auto r = conn_.exec(
      "WITH cancelled AS (DELETE FROM deliveries WHERE webhook_id = $1 RETURNING *),"
      // The webhook's lease and failure streak go with it.
      " lease AS (DELETE FROM webhook_leases WHERE webhook_id = $1)"
      " INSERT INTO delivery_history (id, event_id, event_created_at, webhook_id, project_id,"
      " type, status, attempts, schedule_start, reason, ordering_key, test, created_at,"
      " updated_at) SELECT id, event_id, event_created_at, webhook_id, project_id, type,"
      " 'failed', attempts, schedule_start, $2, ordering_key, test, created_at, " +
          ts(3) + " FROM cancelled",
      {id_param(webhook), text(std::string(kReasonWebhookDeleted)),
       text(millis_text(options_.clock()))});
  if (!r) return r.error();
  return static_cast<std::size_t>(r->affected());
}

result<std::size_t> pg_delivery_store::erase_subject(const object_id& project,
                                                     const std::string& subject) {
  auto r = conn_.exec(
      "WITH erased AS (DELETE FROM events WHERE project_id = $1 AND subject = $2"
      " RETURNING id, created_at),"
      " queued AS (DELETE FROM deliveries d USING erased e WHERE d.event_id = e.id"
      " RETURNING d.id, d.event_created_at),"
      " finished AS (DELETE FROM delivery_history h USING erased e WHERE h.event_id = e.id"
      " AND h.event_created_at = e.created_at RETURNING h.id, h.event_created_at),"
      " attempt AS (DELETE FROM attempts a USING (SELECT * FROM queued UNION ALL"
      " SELECT * FROM finished) x WHERE a.delivery_id = x.id AND a.created_at ="
      " x.event_created_at RETURNING 1)"
      " SELECT (SELECT count(*) FROM erased), (SELECT count(*) FROM attempt)",
      {id_param(project), text(subject)});
  if (!r) return r.error();
  return static_cast<std::size_t>(integer(*r, 0, 0));
}

result<std::size_t> pg_delivery_store::delete_project(const object_id& project) {
  auto r = conn_.exec(
      "WITH queued AS (DELETE FROM deliveries WHERE project_id = $1"
      " RETURNING id, event_created_at),"
      " finished AS (DELETE FROM delivery_history WHERE project_id = $1"
      " RETURNING id, event_created_at),"
      " attempt AS (DELETE FROM attempts a USING (SELECT * FROM queued UNION ALL"
      " SELECT * FROM finished) x WHERE a.delivery_id = x.id AND a.created_at ="
      " x.event_created_at RETURNING 1),"
      " erased AS (DELETE FROM events WHERE project_id = $1 RETURNING 1)"
      " SELECT (SELECT count(*) FROM queued), (SELECT count(*) FROM attempt),"
      " (SELECT count(*) FROM erased)",
      {id_param(project)});
  if (!r) return r.error();
  return static_cast<std::size_t>(integer(*r, 0, 0));
}

// ---- reads

namespace {

// The last millisecond a partition time can take in a lookup's second look (9999-12-31).
constexpr timestamp kEndOfTime{std::chrono::milliseconds(253'402'300'799'999)};

}  // namespace

result<std::vector<object_id>> pg_delivery_store::redeliver(const object_id& project,
                                                            const object_id& webhook,
                                                            const std::vector<object_id>& ids,
                                                            std::optional<timestamp> since) {
  if (ids.empty()) return std::vector<object_id>{};
  if (since) return redeliver_in(project, webhook, ids, *since, kEndOfTime);
  if (ids.size() == 1) {
    // One delivery by id: first in the day partition its id points at (as find_delivery looks),
    // then, when that changed nothing, in all of them.
    const auto [from, to] = lookup_window(ids.front(), timestamp{});
    auto changed = redeliver_in(project, webhook, ids, from, to);
    if (!changed || !changed->empty()) return changed;
  }
  return redeliver_in(project, webhook, ids, timestamp{}, kEndOfTime);
}

// The partition times [from, to) are timestamptz parameters, so that the planner prunes the other
// day partitions of delivery_history (neither planned nor locked), as the lookups do.
result<std::vector<object_id>> pg_delivery_store::redeliver_in(const object_id& project,
                                                               const object_id& webhook,
                                                               const std::vector<object_id>& ids,
                                                               timestamp from, timestamp to) {
  auto r = conn_.exec(
      "WITH moved AS (DELETE FROM delivery_history WHERE id = ANY($1::text[])"
      " AND project_id = $2 AND webhook_id = $3 AND event_created_at >= $5::timestamptz"
      " AND event_created_at < $6::timestamptz RETURNING *),"
      " back AS (INSERT INTO deliveries (id, event_id, event_created_at, webhook_id, project_id,"
      " type, status, attempts, schedule_start, due_at, reason, ordering_key, test, created_at,"
      " updated_at) SELECT id, event_id, event_created_at, webhook_id, project_id, type,"
      " 'pending', attempts, attempts, " +
          ts(4) + ", NULL, ordering_key, test, created_at, " + ts(4) +
          " FROM moved RETURNING id),"
          " due AS (UPDATE deliveries SET due_at = " +
          ts(4) + ", schedule_start = attempts, updated_at = " + ts(4) +
          " WHERE id = ANY($1::text[]) AND project_id = $2 AND webhook_id = $3 RETURNING id)"
          " SELECT id FROM back UNION ALL SELECT id FROM due",
      {id_array(ids), id_param(project), id_param(webhook), text(millis_text(options_.clock())),
       text(format_rfc3339(from)), text(format_rfc3339(to))});
  if (!r) return r.error();
  std::vector<object_id> changed;
  for (int row = 0; row < r->size(); ++row) changed.push_back(parse_id(r->text(row, 0)));
  return changed;
}

result<std::vector<object_id>> pg_delivery_store::failed_between(
    const object_id& project, const object_id& webhook, timestamp since, timestamp until,
    std::size_t n, const std::optional<object_id>& after) {
  auto r = conn_.exec(
      "SELECT id FROM delivery_history WHERE project_id = $1 AND webhook_id = $2"
      " AND status = 'failed' AND created_at >= " +
          ts(3) + " AND created_at < " + ts(4) +
          " AND event_created_at >= $7::timestamptz"
          " AND ($6::text IS NULL OR id > $6::text) ORDER BY id LIMIT $5",
      {id_param(project), id_param(webhook), text(millis_text(since)), text(millis_text(until)),
       text(std::to_string(n)), after ? id_param(*after) : param::null(),
       text(format_rfc3339(since))});
  if (!r) return r.error();
  std::vector<object_id> out;
  for (int row = 0; row < r->size(); ++row) out.push_back(parse_id(r->text(row, 0)));
  return out;
}

result<std::vector<object_id>> pg_delivery_store::orphaned_projects() {
  auto r = conn_.exec(
      "SELECT DISTINCT d.project_id FROM deliveries d"
      " WHERE NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = d.project_id)",
      {});
  if (!r) return r.error();
  std::vector<object_id> out;
  for (int row = 0; row < r->size(); ++row) out.push_back(parse_id(r->text(row, 0)));
  return out;
}

// Where a lookup by id looks first: the partition times [from, to) the row of `id` has when it
// was written as usual. An event's partition time (events.created_at, and its deliveries' and
// attempts' event_created_at) is when its ingest committed: a moment after the second its id
// starts with, which its deliveries' ids start with too (docs/cluster.md, "Deliveries, leases
// and retention"). Keyed on the id's second and not on a day, so that an event made at
// 23:59:59.9 and committed at 00:00:00.1 is still found: one partition, two within ten minutes
// of midnight. Rows elsewhere (events that retention moved to today's partitions because pending
// deliveries still needed them, ids made by another clock) are found by a second look over all
// partitions, which only a lookup that finds nothing in the first pays.
std::pair<timestamp, timestamp> pg_delivery_store::lookup_window(const object_id& id,
                                                                 timestamp visible_from) {
  const timestamp second{std::chrono::seconds(id.seconds())};
  return {std::max(second - std::chrono::minutes(1), visible_from),
          second + std::chrono::minutes(10)};
}

timestamp pg_delivery_store::visible_from() const {
  if (options_.retention <= std::chrono::milliseconds::zero()) return timestamp{};
  return std::max(options_.clock() - options_.retention, timestamp{});
}

// The lookups' partition times are timestamptz parameters, not ts()'s expression: a parameter's
// value is a constant when the statement is planned, so the planner prunes (and neither plans nor
// locks) the other partitions; ts() is only stable (timestamptz + interval), which prunes no
// earlier than at execution start, after every partition has been opened and locked.
const std::string& pg_delivery_store::find_delivery_sql() {
  // A finished delivery older than the retention is gone; a pending one never is. Its attempts
  // share its event_created_at, so the window prunes their partitions too; the last column says
  // whether that time is in the window (a pending delivery, from the unpartitioned queue, may
  // have an event_created_at outside it, and then its attempts were not all read).
  static const std::string sql =
      "WITH d AS ((SELECT " + kDeliveryColumns +
      " FROM deliveries WHERE id = $1 AND project_id = $2) UNION ALL (SELECT " + kHistoryColumns +
      " FROM delivery_history WHERE id = $1 AND project_id = $2"
      " AND event_created_at >= $3::timestamptz AND event_created_at < $4::timestamptz"
      " AND created_at >= $5::timestamptz) LIMIT 1)"
      " SELECT d.*, a.number, " +
      ms("a.at") +
      ", a.duration_ms, a.status_code, a.response, a.error,"
      " d.event_created_at >= $3::timestamptz AND d.event_created_at < $4::timestamptz FROM d"
      " LEFT JOIN LATERAL (SELECT * FROM attempts WHERE delivery_id = d.id"
      " AND created_at = d.event_created_at AND created_at >= $3::timestamptz"
      " AND created_at < $4::timestamptz) a ON true ORDER BY a.number";
  return sql;
}

result<std::optional<delivery_detail>> pg_delivery_store::find_delivery(const object_id& project,
                                                                        const object_id& id) {
  const timestamp visible = visible_from();
  const auto [from, to] = lookup_window(id, visible);
  bool whole = false;
  auto found = find_delivery_in(project, id, from, to, whole);
  if (!found || (*found && whole)) return found;
  return find_delivery_in(project, id, visible, kEndOfTime, whole);
}

result<std::optional<delivery_detail>> pg_delivery_store::find_delivery_in(
    const object_id& project, const object_id& id, timestamp from, timestamp to, bool& whole) {
  auto r = conn_.exec(find_delivery_sql(),
                      {id_param(id), id_param(project), text(format_rfc3339(from)),
                       text(format_rfc3339(to)), text(format_rfc3339(visible_from()))});
  if (!r) return r.error();
  if (r->size() == 0) return std::optional<delivery_detail>{};
  delivery_detail detail;
  detail.record = std::make_shared<delivery>(parse_delivery(*r, 0, 0));
  constexpr int a = kDeliveryColumnCount;
  whole = r->text(0, a + 6) == "t";
  for (int row = 0; row < r->size(); ++row) {
    if (r->is_null(row, a)) continue;
    attempt at;
    at.number = static_cast<std::uint32_t>(integer(*r, row, a));
    at.at = from_millis(r->text(row, a + 1));
    at.duration = std::chrono::milliseconds(integer(*r, row, a + 2));
    if (!r->is_null(row, a + 3)) at.status_code = static_cast<int>(integer(*r, row, a + 3));
    at.response = std::string(r->text(row, a + 4));
    at.error = optional_text(*r, row, a + 5);
    detail.attempts.push_back(std::move(at));
  }
  return std::optional<delivery_detail>(std::move(detail));
}

result<delivery_page> pg_delivery_store::list_deliveries(const delivery_query& q) {
  if (q.limit < 1 || q.limit > kMaxDeliveryPage) {
    return validation_problem({{"limit", "must be from 1 to 100"}});
  }
  // Only the filters asked for appear in the SQL, so that each table's part is an index scan
  // backwards along (webhook_id, id) or (project_id, id), stopping after limit + 1 rows.
  std::vector<param> params{id_param(q.project), text(std::to_string(q.limit + 1))};
  std::string where = "project_id = $1";
  auto add = [&](std::string condition, param p) {
    params.push_back(std::move(p));
    const std::string n = "$" + std::to_string(params.size());
    std::size_t at = 0;
    while ((at = condition.find("$?", at)) != std::string::npos) condition.replace(at, 2, n);
    where += " AND " + condition;
  };
  if (q.webhook) add("webhook_id = $?", id_param(*q.webhook));
  if (q.event_type) add("type = $?", text(*q.event_type));
  if (q.since) add("created_at >= " + ts_of("$?::bigint"), text(millis_text(*q.since)));
  if (q.until) add("created_at < " + ts_of("$?::bigint"), text(millis_text(*q.until)));
  if (q.after) add("id < $?", id_param(*q.after));
  const bool pending = q.statuses.allows(delivery_status::pending) || q.statuses.allows_paused();
  std::vector<std::string> finished;
  for (auto s : {delivery_status::succeeded, delivery_status::failed}) {
    if (q.statuses.allows(s)) finished.emplace_back(to_string(s));
  }
  std::vector<std::string> parts;
  if (pending) {
    parts.push_back("(SELECT " + kDeliveryColumns + " FROM deliveries WHERE " + where +
                    " ORDER BY id DESC LIMIT $2)");
  }
  if (!finished.empty()) {
    std::string status_condition =
        finished.size() == 2 ? "" : " AND status = '" + finished.front() + "'";
    // Finished deliveries older than the retention are gone; pending ones never are.
    const timestamp visible = visible_from();
    if (visible > timestamp{}) {
      params.push_back(text(millis_text(visible)));
      status_condition += " AND created_at >= " + ts(static_cast<int>(params.size()));
    }
    // The partition key bounded from below, as a timestamptz parameter so that the planner
    // prunes the older days' partitions (neither planned nor locked): a delivery's
    // event_created_at is never before its created_at (equal at ingest; retention only moves it
    // later). No bound from above: `until` and the cursor bound created_at, but an event that
    // retention moved to a later day carries its old deliveries along.
    if (const timestamp lower = std::max(q.since.value_or(timestamp{}), visible);
        lower > timestamp{}) {
      params.push_back(text(format_rfc3339(lower)));
      status_condition +=
          " AND event_created_at >= $" + std::to_string(params.size()) + "::timestamptz";
    }
    parts.push_back("(SELECT " + kHistoryColumns + " FROM delivery_history WHERE " + where +
                    status_condition + " ORDER BY id DESC LIMIT $2)");
  }
  delivery_page page;
  if (parts.empty()) return page;
  std::string sql = "SELECT * FROM (" + parts.front();
  for (std::size_t i = 1; i < parts.size(); ++i) sql += " UNION ALL " + parts[i];
  sql += ") u ORDER BY id DESC LIMIT $2";
  auto r = conn_.exec(sql, params);
  if (!r) return r.error();
  const auto rows_read = static_cast<std::size_t>(r->size());
  for (int row = 0; row < r->size() && page.items.size() < q.limit; ++row) {
    page.items.push_back(std::make_shared<delivery>(parse_delivery(*r, row, 0)));
  }
  if (rows_read > q.limit) page.next = page.items.back()->id;
  return page;
}

const std::string& pg_delivery_store::find_event_sql() {
  // An event older than the retention is gone, whatever its deliveries are.
  static const std::string sql =
      "SELECT " + std::string(kEventColumns) +
      ", d.id, d.webhook_id, d.status FROM events e LEFT JOIN LATERAL ("
      "SELECT id, webhook_id, status FROM deliveries WHERE event_id = e.id UNION ALL"
      " SELECT id, webhook_id, status FROM delivery_history WHERE event_id = e.id"
      " AND event_created_at = e.created_at AND event_created_at >= $3::timestamptz"
      " AND event_created_at < $4::timestamptz) d ON true"
      " WHERE e.id = $1 AND e.project_id = $2 AND e.created_at >= $3::timestamptz"
      " AND e.created_at < $4::timestamptz AND e.event_time >= $5::timestamptz ORDER BY d.id";
  return sql;
}

result<std::optional<event_detail>> pg_delivery_store::find_event(const object_id& project,
                                                                  const object_id& id) {
  const timestamp visible = visible_from();
  const auto [from, to] = lookup_window(id, visible);
  auto found = find_event_in(project, id, from, to);
  if (!found || *found) return found;
  return find_event_in(project, id, visible, kEndOfTime);
}

result<std::optional<event_detail>> pg_delivery_store::find_event_in(const object_id& project,
                                                                     const object_id& id,
                                                                     timestamp from, timestamp to) {
  auto r = conn_.exec(find_event_sql(),
                      {id_param(id), id_param(project), text(format_rfc3339(from)),
                       text(format_rfc3339(to)), text(format_rfc3339(visible_from()))});
  if (!r) return r.error();
  if (r->size() == 0) return std::optional<event_detail>{};
  event_detail detail;
  detail.record = parse_event(*r, 0, 0);
  constexpr int d = kEventColumnCount;
  for (int row = 0; row < r->size(); ++row) {
    if (r->is_null(row, d)) continue;
    event_detail::entry entry;
    entry.delivery = parse_id(r->text(row, d));
    entry.webhook = parse_id(r->text(row, d + 1));
    entry.status = parse_delivery_status(r->text(row, d + 2)).value_or(delivery_status::failed);
    detail.record.deliveries.push_back({entry.delivery, entry.webhook});
    detail.deliveries.push_back(entry);
  }
  return std::optional<event_detail>(std::move(detail));
}

// ---- partitions and retention

result<void> pg_delivery_store::ensure_partitions() {
  const timestamp today = day_start(options_.clock());
  const timestamp last = today + std::chrono::milliseconds(kDayMs * options_.partition_days_ahead);
  return in_transaction(conn_, [&]() -> result<void> {
    if (auto locked =
            conn_.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kPartitionLock) + ")");
        !locked) {
      return locked.error();
    }
    auto made = conn_.exec(
        "SELECT hookd_day_partition(p, d::date) FROM unnest(ARRAY['events', 'attempts',"
        " 'delivery_history', 'idempotency_keys']) AS p, generate_series((" +
            ts(1) + " AT TIME ZONE 'UTC')::date, (" + ts(2) +
            " AT TIME ZONE 'UTC')::date, interval '1 day') AS d",
        {text(millis_text(today)), text(millis_text(last))});
    if (!made) return made.error();
    return {};
  });
}

result<retention_result> pg_delivery_store::drop_expired(std::chrono::milliseconds retention) {
  const timestamp now = options_.clock();
  // The first day kept: every day that ended at or before now - retention goes.
  const timestamp keep = day_start(now - retention);
  const timestamp today = day_start(now);
  // The first day of idempotency keys kept: a day that ended at or before now - TTL holds only
  // expired keys.
  const timestamp keys_keep = day_start(now - options_.idempotency_ttl);
  if (auto made = ensure_partitions(); !made) return made.error();
  retention_result out;
  auto done = in_transaction(conn_, [&]() -> result<void> {
    if (auto locked =
            conn_.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kPartitionLock) + ")");
        !locked) {
      return locked.error();
    }
    // Events that pending deliveries still send move, with all their deliveries and attempts,
    // to today's partitions (an UPDATE of the partition key moves the rows). Only these rows are
    // touched one by one; everything else of the old days goes with its partition.
    auto pinned = conn_.exec(
        "WITH pinned AS (SELECT DISTINCT event_id, event_created_at FROM deliveries"
        " WHERE event_created_at < " +
            ts(1) +
            "),"
            " moved_events AS (UPDATE events e SET created_at = " +
            ts(2) +
            " FROM pinned p WHERE e.id = p.event_id AND e.created_at = p.event_created_at"
            " RETURNING e.id),"
            " moved_history AS (UPDATE delivery_history h SET event_created_at = " +
            ts(2) +
            " FROM pinned p WHERE h.event_id = p.event_id"
            " AND h.event_created_at = p.event_created_at RETURNING h.id),"
            " moved_queue AS (UPDATE deliveries d SET event_created_at = " +
            ts(2) +
            " FROM pinned p WHERE d.event_id = p.event_id"
            " AND d.event_created_at = p.event_created_at RETURNING d.id),"
            " moved_attempts AS (UPDATE attempts a SET created_at = " +
            ts(2) + " WHERE a.created_at < " + ts(1) +
            " AND a.delivery_id IN (SELECT id FROM moved_queue UNION ALL"
            " SELECT id FROM moved_history) RETURNING 1)"
            " SELECT (SELECT count(*) FROM moved_events), (SELECT count(*) FROM moved_attempts)",
        {text(millis_text(keep)), text(millis_text(today))});
    if (!pinned) return pinned.error();
    out.pinned_events = static_cast<std::uint64_t>(integer(*pinned, 0, 0));
    // The day partitions of the three tables whose day ended at or before now - retention, and
    // those of idempotency_keys whose day ended at or before now - TTL (every key in them
    // expired). In name order: idempotency_keys' last, after events, the order in which an
    // ingest locks them (events when its statement is planned, the keys' partitions in
    // hookd_claim_keys), so that a pass and an ingest do not deadlock.
    auto old = conn_.exec(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE c.relname ~ '_[0-9]{8}$' AND ((i.inhparent IN ('events'::regclass,"
        " 'attempts'::regclass, 'delivery_history'::regclass)"
        " AND to_date(right(c.relname, 8), 'YYYYMMDD') < (" +
            ts(1) +
            " AT TIME ZONE 'UTC')::date) OR (i.inhparent = 'idempotency_keys'::regclass"
            " AND to_date(right(c.relname, 8), 'YYYYMMDD') < (" +
            ts(2) + " AT TIME ZONE 'UTC')::date)) ORDER BY c.relname",
        {text(millis_text(keep)), text(millis_text(keys_keep))});
    if (!old) return old.error();
    for (int row = 0; row < old->size(); ++row) {
      const std::string name(old->text(row, 0));
      // The name comes from the catalog and matches <table>_YYYYMMDD: quoting it suffices.
      if (auto dropped = conn_.exec("DROP TABLE \"" + name + "\""); !dropped) {
        return dropped.error();
      }
      out.dropped.push_back(name);
    }
    return {};
  });
  if (!done) return done.error();
  return out;
}

result<history_size> pg_delivery_store::measure_history() {
  // pg_relation_size (the main fork only) is 0 for a partition that never held a row, unlike
  // pg_total_relation_size (an empty index has pages): it tells which days hold rows.
  auto r = conn_.exec(
      "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint,"
      " coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint,"
      " min(right(c.relname, 8)) FILTER (WHERE pg_relation_size(c.oid) > 0),"
      " coalesce(sum(greatest(c.reltuples, 0)) FILTER (WHERE i.inhparent ="
      " 'delivery_history'::regclass), 0)::bigint"
      " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
      " WHERE i.inhparent IN ('events'::regclass, 'attempts'::regclass,"
      " 'delivery_history'::regclass) AND c.relname ~ '_[0-9]{8}$'");
  if (!r) return r.error();
  history_size out;
  out.bytes = static_cast<std::uint64_t>(integer(*r, 0, 0));
  out.rows = static_cast<std::uint64_t>(integer(*r, 0, 1));
  out.deliveries = static_cast<std::uint64_t>(integer(*r, 0, 3));
  if (!r->is_null(0, 2)) {
    const std::string day(r->text(0, 2));  // YYYYMMDD
    const std::chrono::year_month_day ymd{
        std::chrono::year(std::stoi(day.substr(0, 4))),
        std::chrono::month(static_cast<unsigned>(std::stoi(day.substr(4, 2)))),
        std::chrono::day(static_cast<unsigned>(std::stoi(day.substr(6, 2))))};
    out.oldest_day = timestamp(std::chrono::sys_days(ymd).time_since_epoch());
  }
  return out;
}

}  // namespace hookd::pg
