#pragma once
// The catalog: hookd's in-memory index of organizations, projects, tokens and webhooks, and the
// single path by which they change.
//
// Reads (find_*, list_*) run on any thread, never touch storage and never wait for a writer.
// Writes are validated inputs; each becomes typed changes (catalog_store.hpp) that a single writer
// thread commits with group commit (everything queued while the previous fsync ran goes into the
// next catalog_change, one catalog_store::commit, and shares one fsync). A change is published to
// readers only after it is durable, and the completion runs after that, so a client that sees its
// 201 can read what it wrote.
//
// See catalog_impl.hpp for the data structure chosen for readers and why.

#include "core/catalog/catalog_store.hpp"
#include "core/catalog/entities.hpp"
#include "core/catalog/validation.hpp"
#include "core/common/completion.hpp"
#include "core/common/error.hpp"
#include "core/durable/storage.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hookd {

struct catalog_options {
  // Limit per project; the next create is a 409 (limit_reached). Default 100 (docs/operations.md).
  std::size_t max_webhooks_per_project = 100;
  // Key that seals webhook secrets at rest (AES-256-GCM): the one catalog(storage&, ...) gives
  // the embedded store it makes. A catalog given its store uses the store's own key.
  aes256gcm_key master_key = aes256gcm_key::generate();
  // Threads that decode webhook records (JSON, base64, AES-GCM open) during load(). 0: one per
  // CPU this process may run on (its affinity mask), at most 8; 1: all on the calling thread.
  // The outcome is the same for every value, refusals included.
  unsigned load_threads = 0;
  // --secret-grace: how long a secret replaced by a rotation (or by a switch of `signing`) keeps
  // signing next to the new one. Default 24 h, a day for receivers to deploy the new secret
  // (docs/delivery.md, "Rotating the secret"); 0: the old secret stops at once.
  std::chrono::milliseconds secret_grace{24LL * 3600 * 1000};
};

struct catalog_counts {
  std::size_t organizations = 0, projects = 0, tokens = 0, webhooks = 0;
};

struct commit_stats {
  std::uint64_t groups = 0;     // batches the writer committed (one fsync each)
  std::uint64_t mutations = 0;  // logical changes inside them
  std::uint64_t rejected = 0;   // changes refused before writing (conflict, limit, not found)
  std::uint64_t failed = 0;     // changes whose batch failed to become durable
};

// What create_token returns: the stored token and the secret string, shown this once.
struct created_token {
  std::shared_ptr<const api_token> token;
  std::string secret;
};

using webhook_list = std::vector<std::shared_ptr<const webhook>>;  // oldest first

class catalog {
 public:
  // Keeps its entities in `store`, which must outlive the catalog.
  catalog(catalog_store& store, catalog_options options);
  // Keeps its entities in the key-value `store` through a kv_catalog_store of its own, sealing
  // with options.master_key.
  catalog(storage& store, catalog_options options);
  ~catalog();  // stop(): queued writes finish; a never-started catalog answers `unavailable`
  catalog(const catalog&) = delete;
  catalog& operator=(const catalog&) = delete;

  // Start-up: fills the index from storage. Call once, before start(). A record that does not
  // decode (or a secret that does not open with the master key) is an error naming the table and
  // key, never skipped silently.
  result<catalog_counts> load();
  void start();  // starts the writer thread
  void stop();   // drains queued writes, then stops the writer thread

  // ---- reads: any thread, lock-light, never storage
  std::shared_ptr<const organization> find_organization(const object_id& id) const;
  std::vector<std::shared_ptr<const organization>> list_organizations() const;  // oldest first
  std::shared_ptr<const project> find_project(const object_id& id) const;
  std::vector<std::shared_ptr<const project>> list_projects(const object_id& org) const;
  std::shared_ptr<const api_token> find_token(const object_id& id) const;
  std::shared_ptr<const api_token> find_token_by_digest(const sha256_digest& digest) const;
  std::vector<std::shared_ptr<const api_token>> list_tokens() const;
  std::shared_ptr<const webhook> find_webhook(const object_id& id) const;
  std::shared_ptr<const webhook_list> list_webhooks(const object_id& project) const;  // never null
  catalog_counts counts() const;
  commit_stats stats() const;
  bool has_admin_token() const;  // any token with the admin scope

  // ---- writes: completion runs exactly once, on the writer thread (or inline on the caller
  // when the change is refused before queueing, e.g. after stop()). Outcomes:
  //   not_found      organization / project / webhook / token does not exist (or not in scope)
  //   conflict       project slug taken in the organization
  //   limit_reached  the project already has max_webhooks_per_project webhooks
  //   validation     token organizations that do not exist (field "organizations[i]")
  //   storage_failure the batch did not become durable; nothing changed
  //   unavailable    the catalog is stopped
  void create_organization(organization_input in,
                           completion<std::shared_ptr<const organization>> done);
  void create_project(object_id org, project_input in,
                      completion<std::shared_ptr<const project>> done);
  // `secret` overrides the generated token string (admin bootstrap from HOOKD_ADMIN_TOKEN).
  void create_token(token_input in, std::optional<std::string> secret,
                    completion<created_token> done);
  void delete_token(object_id id, completion<void> done);
  void create_webhook(object_id org, object_id project, webhook_input in,
                      completion<std::shared_ptr<const webhook>> done);
  // Merges `patch`; `updatedAt` moves only when a field actually changed.
  void update_webhook(object_id org, object_id project, object_id id, webhook_patch patch,
                      completion<std::shared_ptr<const webhook>> done);
  void delete_webhook(object_id org, object_id project, object_id id, completion<void> done);
  // Gives webhook `id` a new secret of its scheme: `secret` when given (validation naming
  // "secret" unless check_signing_secret accepts it for the webhook's scheme), else a generated
  // one. The replaced secret keeps signing until now + secret_grace (docs/delivery.md, "Rotating
  // the secret"); updatedAt moves.
  void rotate_webhook_secret(object_id org, object_id project, object_id id,
                             std::optional<std::string> secret,
                             completion<std::shared_ptr<const webhook>> done);
  // Sets an active webhook inactive with disabledReason `reason` and disabledAt `at`: hookd's own
  // decision (docs/delivery.md, "Auto-disable"). Completes with the new version, or with null when
  // the webhook was inactive already (nothing written).
  void disable_webhook(object_id id, std::string reason, timestamp at,
                       completion<std::shared_ptr<const webhook>> done);
  // Deletes project `project` of `org` and its webhooks, with their index entries; its slug is
  // free for another project of the organization from then on. The project's deliveries are the
  // caller's to delete once this completes: delivery_log::delete_project (docs/delivery.md,
  // "Deleting").
  void delete_project(object_id org, object_id project, completion<void> done);
  // Deletes organization `org`, its projects and their webhooks, and takes it out of every API
  // token's `organizations` (a token keeps the others; one left with none stays, for an admin to
  // revoke). Completes with the ids of the projects it deleted, whose deliveries are the caller's
  // to delete likewise. Its id is never given out again.
  void delete_organization(object_id org, completion<std::vector<object_id>> done);

  // Cluster mode: publishes `change`, which another node has already committed to the shared
  // store, into this index, with everything derived from it (lists and their order, slugs,
  // token digests, counts); nothing is written. Queued like a write, so it is ordered with the
  // local ones and readers see it whole or not at all. Idempotent: a put of the very version held
  // (or of an older one, by updatedAt) and an erase of what is not held change nothing; a copy
  // with the same updatedAt replaces the held version with equal content. An erase needs only
  // the entity's id. Outcomes:
  //   not_found      a project or webhook whose organization or project is not held (yet):
  //                  nothing of the change is applied; re-read and apply again
  //   conflict       a slug or token digest held by another entity here; likewise
  //   storage_failure the local group it was queued with failed to commit; apply it again
  //   unavailable    the catalog is stopped
  void apply_remote(catalog_change change, completion<void> done);

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace hookd
