// The catalog's writes: one catalog_mutation per change (create, update and delete of
// organizations, projects, tokens and webhooks), and the public entry points that submit them.
//
// Writes go through catalog_writer (one thread, group commit; see commit_writer.hpp). Each write
// call packs its input into a mutation. On the writer thread the mutation plans itself against
// the published state plus `pending`, a writer-private overlay of what the earlier accepted
// mutations of the same group will publish, so mutations of one group behave exactly as if run
// one after another (two creates see each other's slug, the per-project limit counts both,
// patch-after-create and delete-after-create find the new webhook). Planning computes every new
// object and every new list snapshot, and appends the entities it puts or erases to the group's
// catalog_change; publishing, after the store committed it, only installs them in order. The
// overlay is cleared after every group, whether it committed or failed.
//
// The writer also keeps `slugs` (organization + slug -> project id), which only it reads.
//
// An erase carries the version the index held, so that a store finds what it derived from it
// (the embedded store: index entries, kv_catalog_store.hpp).

#include "core/catalog/catalog_impl.hpp"
#include "core/common/ascii.hpp"
#include "core/delivery/signing.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace hookd {

namespace {

// The next snapshot of a list (copy-on-write), built on the writer thread from the current one.
template <class T>
std::shared_ptr<const snapshot_list<T>> with_added(const snapshot_list<T>* base,
                                                   std::shared_ptr<const T> item) {
  auto next = std::make_shared<snapshot_list<T>>();
  next->reserve((base ? base->size() : 0) + 1);
  if (base) next->assign(base->begin(), base->end());
  next->insert(std::upper_bound(next->begin(), next->end(), item, older<T>), std::move(item));
  return next;
}

template <class T>
std::shared_ptr<const snapshot_list<T>> with_replaced(const snapshot_list<T>& base,
                                                      const std::shared_ptr<const T>& item) {
  auto next = std::make_shared<snapshot_list<T>>(base);
  for (auto& p : *next) {
    if (p->id == item->id) p = item;  // createdAt never changes, so the position holds
  }
  return next;
}

template <class T>
std::shared_ptr<const snapshot_list<T>> without(const snapshot_list<T>& base, const object_id& id) {
  auto next = std::make_shared<snapshot_list<T>>();
  next->reserve(base.size());
  for (const auto& p : base) {
    if (p->id != id) next->push_back(p);
  }
  return next;
}

problem not_found(std::string what) {
  return make_problem(error_kind::not_found, std::move(what));
}

// ---------------------------------------------------------------- mutations

template <class T>
void deliver(const completion<T>& done, result<void> outcome, T value) noexcept {
  if (outcome) {
    done(std::move(value));
  } else {
    done(std::move(outcome).error());
  }
}

using impl = catalog::impl;

class create_organization_op final : public catalog_mutation {
 public:
  create_organization_op(impl& c, organization_input in,
                         completion<std::shared_ptr<const organization>> done)
      : c_(c), in_(std::move(in)), done_(std::move(done)) {}

  result<void> plan(catalog_change& change) override {
    const timestamp now = now_ms();
    auto org = std::make_shared<organization>();
    org->id = c_.new_id(now);
    org->name = std::move(in_.name);
    org->created_at = org->updated_at = now;
    created_ = org;
    change.put(created_);
    list_ = with_added(c_.current_organization_list().get(), created_);
    c_.pending.organizations[org->id] = created_;
    c_.pending.organizations_list = list_;
    return {};
  }
  void publish() override {
    (void)c_.organizations.put(created_->id, created_);
    (void)c_.all_organizations.exchange(list_);
    c_.organization_count.fetch_add(1);
  }
  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), std::move(created_));
  }

 private:
  impl& c_;
  organization_input in_;
  completion<std::shared_ptr<const organization>> done_;
  std::shared_ptr<const organization> created_;
  std::shared_ptr<const organization_list> list_;
};

class create_project_op final : public catalog_mutation {
 public:
  create_project_op(impl& c, object_id org, project_input in,
                    completion<std::shared_ptr<const project>> done)
      : c_(c), org_(org), in_(std::move(in)), done_(std::move(done)) {}

  result<void> plan(catalog_change& change) override {
    if (!c_.current_organization(org_)) {
      return not_found("Organization " + org_.to_string() + " does not exist.");
    }
    if (c_.slug_taken(org_, in_.slug)) {
      return make_problem(error_kind::conflict, "The slug \"" + in_.slug +
                                                    "\" is already used by another project of "
                                                    "this organization.");
    }
    const timestamp now = now_ms();
    auto p = std::make_shared<project>();
    p->id = c_.new_id(now);
    p->organization = org_;
    p->name = std::move(in_.name);
    p->slug = std::move(in_.slug);
    p->description = std::move(in_.description);
    p->status = in_.status;
    p->app_icon_url = std::move(in_.app_icon_url);
    p->created_at = p->updated_at = now;
    created_ = p;
    change.put(created_);
    list_ = with_added(c_.current_project_list(org_).get(), created_);
    c_.pending.projects[p->id] = created_;
    c_.pending.slugs[{org_, p->slug}] = true;
    c_.pending.project_lists[org_] = list_;
    return {};
  }
  void publish() override {
    (void)c_.projects.put(created_->id, created_);
    c_.slugs.emplace(std::make_pair(org_, created_->slug), created_->id);
    (void)c_.projects_by_organization.put(org_, list_);
    c_.project_count.fetch_add(1);
  }
  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), std::move(created_));
  }

 private:
  impl& c_;
  object_id org_;
  project_input in_;
  completion<std::shared_ptr<const project>> done_;
  std::shared_ptr<const project> created_;
  std::shared_ptr<const project_list> list_;
};

class create_token_op final : public catalog_mutation {
 public:
  create_token_op(impl& c, token_input in, std::string secret, completion<created_token> done)
      : c_(c), in_(std::move(in)), secret_(std::move(secret)), done_(std::move(done)) {}

  result<void> plan(catalog_change& change) override {
    std::vector<field_error> errors;
    for (std::size_t i = 0; i < in_.organizations.size(); ++i) {
      if (!c_.current_organization(in_.organizations[i])) {
        errors.push_back({"organizations[" + std::to_string(i) + "]",
                          "Organization " + in_.organizations[i].to_string() + " does not exist."});
      }
    }
    if (!errors.empty()) return validation_problem(std::move(errors));
    const sha256_digest digest = sha256(secret_);
    if (c_.current_token_by_digest(digest)) {
      // Only a chosen secret (the admin bootstrap) can collide; two tokens must not share one.
      return make_problem(error_kind::conflict, "A token with this secret already exists.");
    }
    const timestamp now = now_ms();
    auto t = std::make_shared<api_token>();
    t->id = c_.new_id(now);
    t->name = std::move(in_.name);
    t->organizations = std::move(in_.organizations);
    t->scopes = in_.scopes;
    t->digest = digest;
    t->created_at = now;
    created_ = t;
    change.put(created_);
    list_ = with_added(c_.current_token_list().get(), created_);
    c_.pending.tokens[t->id] = created_;
    c_.pending.tokens_by_digest[digest] = created_;
    c_.pending.tokens_list = list_;
    return {};
  }
  void publish() override {
    (void)c_.tokens.put(created_->id, created_);
    (void)c_.tokens_by_digest.put(created_->digest, created_);
    (void)c_.all_tokens.exchange(list_);
    c_.token_count.fetch_add(1);
    if (created_->scopes.has(scope::admin)) c_.admin_token_count.fetch_add(1);
  }
  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), created_token{std::move(created_), std::move(secret_)});
  }

 private:
  impl& c_;
  token_input in_;
  std::string secret_;
  completion<created_token> done_;
  std::shared_ptr<const api_token> created_;
  std::shared_ptr<const token_list> list_;
};

class delete_token_op final : public catalog_mutation {
 public:
  delete_token_op(impl& c, object_id id, completion<void> done)
      : c_(c), id_(id), done_(std::move(done)) {}

  result<void> plan(catalog_change& change) override {
    deleted_ = c_.current_token(id_);
    if (!deleted_) return not_found("Token " + id_.to_string() + " does not exist.");
    change.erase(deleted_);
    list_ = without(*c_.current_token_list(), id_);
    c_.pending.tokens[id_] = nullptr;
    c_.pending.tokens_by_digest[deleted_->digest] = nullptr;
    c_.pending.tokens_list = list_;
    return {};
  }
  void publish() override {
    // The digest goes first: from here on the token no longer authenticates.
    (void)c_.tokens_by_digest.erase(deleted_->digest);
    (void)c_.tokens.erase(id_);
    (void)c_.all_tokens.exchange(list_);
    c_.token_count.fetch_sub(1);
    if (deleted_->scopes.has(scope::admin)) c_.admin_token_count.fetch_sub(1);
  }
  void complete(result<void> outcome) noexcept override { done_(std::move(outcome)); }

 private:
  impl& c_;
  object_id id_;
  completion<void> done_;
  std::shared_ptr<const api_token> deleted_;
  std::shared_ptr<const token_list> list_;
};

// The webhook `id` of `project` in `org`, or not_found. A webhook of another project or
// organization is reported exactly like one that does not exist.
result<std::shared_ptr<const webhook>> webhook_in(const impl& c, const object_id& org,
                                                  const object_id& project_id,
                                                  const object_id& id) {
  auto w = c.current_webhook(id);
  if (!w || w->organization != org || w->project != project_id) {
    return not_found("Webhook " + id.to_string() + " does not exist in project " +
                     project_id.to_string() + ".");
  }
  return w;
}

class create_webhook_op final : public catalog_mutation {
 public:
  create_webhook_op(impl& c, object_id org, object_id project_id, webhook_input in,
                    std::string secret, completion<std::shared_ptr<const webhook>> done)
      : c_(c),
        org_(org),
        project_(project_id),
        in_(std::move(in)),
        secret_(std::move(secret)),
        done_(std::move(done)) {}

  result<void> plan(catalog_change& change) override {
    if (!c_.current_organization(org_)) {
      return not_found("Organization " + org_.to_string() + " does not exist.");
    }
    const auto p = c_.current_project(project_);
    if (!p || p->organization != org_) {
      return not_found("Project " + project_.to_string() + " does not exist in organization " +
                       org_.to_string() + ".");
    }
    const auto list = c_.current_webhook_list(project_);
    const std::size_t limit = c_.options.max_webhooks_per_project;
    if (list->size() >= limit) {
      return make_problem(error_kind::limit_reached,
                          "The project already has " + std::to_string(list->size()) +
                              " webhooks; at most " + std::to_string(limit) + " are allowed.");
    }
    const timestamp now = now_ms();
    auto w = std::make_shared<webhook>();
    w->id = c_.new_id(now);
    w->organization = org_;
    w->project = project_;
    w->name = std::move(in_.name);
    w->url = std::move(in_.url);
    w->headers = std::move(in_.headers);
    w->active = in_.active;
    w->events = std::move(in_.events);
    w->rate_limit = in_.rate_limit;
    w->signing = in_.signing;
    w->filter = std::move(in_.filter);
    w->secret = std::move(secret_);
    w->created_at = w->updated_at = now;
    created_ = w;
    change.put(created_);
    list_ = with_added(list.get(), created_);
    c_.pending.webhooks[w->id] = created_;
    c_.pending.webhook_lists[project_] = list_;
    return {};
  }
  void publish() override {
    (void)c_.webhooks.put(created_->id, created_);
    (void)c_.webhooks_by_project.put(project_, list_);
    c_.webhook_count.fetch_add(1);
  }
  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), std::move(created_));
  }

 private:
  impl& c_;
  object_id org_, project_;
  webhook_input in_;
  std::string secret_;
  completion<std::shared_ptr<const webhook>> done_;
  std::shared_ptr<const webhook> created_;
  std::shared_ptr<const webhook_list> list_;
};

// A header a PATCH sends with kMaskedHeaderValue keeps the value stored under the same name
// (compared case-insensitively), so that a client that only ever saw masked values can send a
// webhook back unchanged. A mask under a name the webhook does not have is a validation error.
result<void> keep_masked_values(std::vector<header_entry>& next,
                                const std::vector<header_entry>& stored) {
  std::vector<field_error> errors;
  for (header_entry& h : next) {
    if (h.value != kMaskedHeaderValue) continue;
    const auto same = std::find_if(stored.begin(), stored.end(), [&h](const header_entry& s) {
      return ascii_iequals(s.name, h.name);
    });
    if (same == stored.end()) {
      errors.push_back({"headers." + h.name,
                        "is the mask \"" + std::string(kMaskedHeaderValue) +
                            "\", but the webhook has no header of that name whose value it could "
                            "keep; send the real value"});
    } else {
      h.value = same->value;
    }
  }
  if (!errors.empty()) return validation_problem(std::move(errors));
  return {};
}

// Makes `fresh` the secret of `w` (docs/delivery.md, "Rotating the secret"): the replaced one
// keeps signing until now + grace (not at all with a grace of 0), before the earlier ones still
// in their grace; at most kMaxPreviousSecrets are kept, newest first, and expired ones go.
void replace_secret(webhook& w, std::string fresh, timestamp now, std::chrono::milliseconds grace) {
  std::vector<previous_secret> kept;
  kept.reserve(kMaxPreviousSecrets);
  if (grace > std::chrono::milliseconds{0}) {
    kept.push_back(previous_secret{std::move(w.secret), now + grace});
  }
  for (previous_secret& p : w.previous_secrets) {
    if (kept.size() < kMaxPreviousSecrets && p.expires_at > now) kept.push_back(std::move(p));
  }
  w.previous_secrets = std::move(kept);
  w.secret = std::move(fresh);
}

class update_webhook_op final : public catalog_mutation {
 public:
  // `fresh_secret`: made by the caller when the patch switches `signing`, of the new scheme.
  update_webhook_op(impl& c, object_id org, object_id project_id, object_id id, webhook_patch patch,
                    std::optional<std::string> fresh_secret,
                    completion<std::shared_ptr<const webhook>> done)
      : c_(c),
        org_(org),
        project_(project_id),
        id_(id),
        patch_(std::move(patch)),
        fresh_secret_(std::move(fresh_secret)),
        done_(std::move(done)) {}

  result<void> plan(catalog_change& change) override {
    auto found = webhook_in(c_, org_, project_, id_);
    if (!found) return found.error();
    const std::shared_ptr<const webhook>& old = *found;
    if (patch_.headers) {
      if (auto kept = keep_masked_values(*patch_.headers, old->headers); !kept) {
        return kept.error();
      }
    }

    webhook next = *old;
    bool changed = false;
    auto apply = [&changed](auto& field, auto& patched) {
      if (patched && field != *patched) {
        field = std::move(*patched);
        changed = true;
      }
    };
    apply(next.name, patch_.name);
    apply(next.url, patch_.url);
    apply(next.headers, patch_.headers);
    apply(next.active, patch_.active);
    apply(next.events, patch_.events);
    apply(next.rate_limit, patch_.rate_limit);
    if (patch_.filter) {
      const std::shared_ptr<const event_filter>& f = *patch_.filter;
      if (f ? !next.filter || !(*f == *next.filter) : next.filter != nullptr) {
        next.filter = f;
        changed = true;
      }
    }
    const timestamp now = now_ms();
    if (patch_.signing && *patch_.signing != next.signing) {
      // A new scheme needs a secret of its kind; the old one signs on through the grace, so that
      // receivers can move over without losing a delivery (docs/delivery.md, "Signing").
      std::string fresh =
          fresh_secret_ && check_signing_secret(*fresh_secret_, *patch_.signing) == std::nullopt
              ? std::move(*fresh_secret_)
              : generate_webhook_secret(*patch_.signing);
      replace_secret(next, std::move(fresh), now, c_.options.secret_grace);
      next.signing = *patch_.signing;
      changed = true;
    }
    if (!changed) {
      result_ = old;  // nothing to write, nothing to publish, updatedAt stays
      return {};
    }
    if (next.active && !old->active) {
      // The client switched it back on: whatever disabled it no longer applies.
      next.disabled_reason.reset();
      next.disabled_at.reset();
    }
    std::erase_if(next.previous_secrets,
                  [now](const previous_secret& p) { return p.expires_at <= now; });
    // Strictly later than before, so that a client comparing updatedAt always sees the change.
    next.updated_at = std::max(now, old->updated_at + std::chrono::milliseconds{1});
    auto w = std::make_shared<const webhook>(std::move(next));
    result_ = w;
    updated_ = w;
    change.put(updated_);
    list_ = with_replaced(*c_.current_webhook_list(project_), updated_);
    c_.pending.webhooks[id_] = updated_;
    c_.pending.webhook_lists[project_] = list_;
    return {};
  }
  void publish() override {
    if (!updated_) return;
    (void)c_.webhooks.put(id_, updated_);
    (void)c_.webhooks_by_project.put(project_, list_);
  }
  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), std::move(result_));
  }

 private:
  impl& c_;
  object_id org_, project_, id_;
  webhook_patch patch_;
  std::optional<std::string> fresh_secret_;
  completion<std::shared_ptr<const webhook>> done_;
  std::shared_ptr<const webhook> result_;   // what the caller gets
  std::shared_ptr<const webhook> updated_;  // what is published; null when nothing changed
  std::shared_ptr<const webhook_list> list_;
};

class rotate_secret_op final : public catalog_mutation {
 public:
  // `chosen`: the client's secret, checked here against the webhook's scheme. `generated`: made by
  // the caller for the scheme the webhook had then; made again here if a PATCH switched it since.
  rotate_secret_op(impl& c, object_id org, object_id project_id, object_id id,
                   std::optional<std::string> chosen, std::string generated,
                   completion<std::shared_ptr<const webhook>> done)
      : c_(c),
        org_(org),
        project_(project_id),
        id_(id),
        chosen_(std::move(chosen)),
        generated_(std::move(generated)),
        done_(std::move(done)) {}

  result<void> plan(catalog_change& change) override {
    auto found = webhook_in(c_, org_, project_, id_);
    if (!found) return found.error();
    const std::shared_ptr<const webhook>& old = *found;
    std::string fresh;
    if (chosen_) {
      if (auto message = check_signing_secret(*chosen_, old->signing)) {
        return validation_problem({{"secret", std::move(*message)}});
      }
      fresh = std::move(*chosen_);
    } else if (check_signing_secret(generated_, old->signing)) {
      fresh = generate_webhook_secret(old->signing);
    } else {
      fresh = std::move(generated_);
    }
    webhook next = *old;
    const timestamp now = now_ms();
    replace_secret(next, std::move(fresh), now, c_.options.secret_grace);
    next.updated_at = std::max(now, old->updated_at + std::chrono::milliseconds{1});
    updated_ = std::make_shared<const webhook>(std::move(next));
    change.put(updated_);
    list_ = with_replaced(*c_.current_webhook_list(project_), updated_);
    c_.pending.webhooks[id_] = updated_;
    c_.pending.webhook_lists[project_] = list_;
    return {};
  }
  void publish() override {
    (void)c_.webhooks.put(id_, updated_);
    (void)c_.webhooks_by_project.put(project_, list_);
  }
  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), std::move(updated_));
  }

 private:
  impl& c_;
  object_id org_, project_, id_;
  std::optional<std::string> chosen_;
  std::string generated_;
  completion<std::shared_ptr<const webhook>> done_;
  std::shared_ptr<const webhook> updated_;
  std::shared_ptr<const webhook_list> list_;
};

// hookd sets a webhook inactive by itself (docs/delivery.md, "Auto-disable"): its receiver answered
// 410 Gone, or failed for --disable-after. Changes nothing, and completes with null, when the
// webhook is inactive already (a client or an earlier attempt got there first), so that the
// caller announces each disabling once.
class disable_webhook_op final : public catalog_mutation {
 public:
  disable_webhook_op(impl& c, object_id id, std::string reason, timestamp at,
                     completion<std::shared_ptr<const webhook>> done)
      : c_(c), id_(id), reason_(std::move(reason)), at_(at), done_(std::move(done)) {}

  result<void> plan(catalog_change& change) override {
    const std::shared_ptr<const webhook> old = c_.current_webhook(id_);
    if (!old) return not_found("Webhook " + id_.to_string() + " does not exist.");
    if (!old->active) return {};
    webhook next = *old;
    next.active = false;
    next.disabled_reason = reason_;
    next.disabled_at = at_;
    next.updated_at = std::max(now_ms(), old->updated_at + std::chrono::milliseconds{1});
    updated_ = std::make_shared<const webhook>(std::move(next));
    change.put(updated_);
    list_ = with_replaced(*c_.current_webhook_list(updated_->project), updated_);
    c_.pending.webhooks[id_] = updated_;
    c_.pending.webhook_lists[updated_->project] = list_;
    return {};
  }
  void publish() override {
    if (!updated_) return;
    (void)c_.webhooks.put(id_, updated_);
    (void)c_.webhooks_by_project.put(updated_->project, list_);
  }
  void complete(result<void> outcome) noexcept override {
    deliver(done_, std::move(outcome), std::move(updated_));
  }

 private:
  impl& c_;
  object_id id_;
  std::string reason_;
  timestamp at_;
  completion<std::shared_ptr<const webhook>> done_;
  std::shared_ptr<const webhook> updated_;  // null when nothing changed
  std::shared_ptr<const webhook_list> list_;
};

class delete_webhook_op final : public catalog_mutation {
 public:
  delete_webhook_op(impl& c, object_id org, object_id project_id, object_id id,
                    completion<void> done)
      : c_(c), org_(org), project_(project_id), id_(id), done_(std::move(done)) {}

  result<void> plan(catalog_change& change) override {
    auto found = webhook_in(c_, org_, project_, id_);
    if (!found) return found.error();
    change.erase(*found);
    list_ = without(*c_.current_webhook_list(project_), id_);
    c_.pending.webhooks[id_] = nullptr;
    c_.pending.webhook_lists[project_] = list_;
    return {};
  }
  void publish() override {
    // Out of the list first, so a reader walking the list never finds a webhook gone by id.
    (void)c_.webhooks_by_project.put(project_, list_);
    (void)c_.webhooks.erase(id_);
    c_.webhook_count.fetch_sub(1);
  }
  void complete(result<void> outcome) noexcept override { done_(std::move(outcome)); }

 private:
  impl& c_;
  object_id org_, project_, id_;
  completion<void> done_;
  std::shared_ptr<const webhook_list> list_;
};

// What deleting one project takes away: the project and each of its webhooks, one erase each,
// webhooks first. A project has at most max_webhooks_per_project webhooks (100 by default) and
// the catalog is small, so a hundred erases in one change cost little.
class project_removal {
 public:
  // Plans the deletion into `change` and the overlay; the organization's project list is the
  // caller's.
  void plan(impl& c, catalog_change& change, std::shared_ptr<const project> p) {
    hooks_ = c.current_webhook_list(p->id);
    for (const auto& w : *hooks_) {
      change.erase(w);
      c.pending.webhooks[w->id] = nullptr;
    }
    change.erase(p);
    c.pending.webhook_lists[p->id] = nullptr;
    c.pending.projects[p->id] = nullptr;
    c.pending.slugs[{p->organization, p->slug}] = false;
    project_ = std::move(p);
  }
  // Lists first, then ids, like delete_webhook: a reader walking a list never finds an entry
  // gone by id.
  void publish(impl& c) {
    (void)c.webhooks_by_project.erase(project_->id);
    for (const auto& w : *hooks_) (void)c.webhooks.erase(w->id);
    (void)c.projects.erase(project_->id);
    c.slugs.erase({project_->organization, project_->slug});
    c.webhook_count.fetch_sub(hooks_->size());
    c.project_count.fetch_sub(1);
  }
  const object_id& id() const { return project_->id; }

 private:
  std::shared_ptr<const project> project_;
  std::shared_ptr<const webhook_list> hooks_;
};

class delete_project_op final : public catalog_mutation {
 public:
  delete_project_op(impl& c, object_id org, object_id project_id, completion<void> done)
      : c_(c), org_(org), project_(project_id), done_(std::move(done)) {}

  result<void> plan(catalog_change& change) override {
    auto p = c_.current_project(project_);
    if (!p || p->organization != org_) {
      return not_found("Project " + project_.to_string() + " does not exist in organization " +
                       org_.to_string() + ".");
    }
    removal_.plan(c_, change, std::move(p));
    list_ = without(*c_.current_project_list(org_), project_);
    c_.pending.project_lists[org_] = list_;
    return {};
  }
  void publish() override {
    (void)c_.projects_by_organization.put(org_, list_);
    removal_.publish(c_);
  }
  void complete(result<void> outcome) noexcept override { done_(std::move(outcome)); }

 private:
  impl& c_;
  object_id org_, project_;
  completion<void> done_;
  project_removal removal_;
  std::shared_ptr<const project_list> list_;
};

class delete_organization_op final : public catalog_mutation {
 public:
  delete_organization_op(impl& c, object_id org, completion<std::vector<object_id>> done)
      : c_(c), org_(org), done_(std::move(done)) {}

  result<void> plan(catalog_change& change) override {
    if (!c_.current_organization(org_)) {
      return not_found("Organization " + org_.to_string() + " does not exist.");
    }
    if (const auto projects = c_.current_project_list(org_)) {
      for (const auto& p : *projects) removals_.emplace_back().plan(c_, change, p);
    }
    c_.pending.project_lists[org_] = nullptr;

    // Tokens keep their other organizations: each one that lists this one is rewritten without
    // it (its digest, and so its "td" entry, stays).
    auto tokens = std::make_shared<token_list>(*c_.current_token_list());
    for (auto& t : *tokens) {
      if (std::find(t->organizations.begin(), t->organizations.end(), org_) ==
          t->organizations.end()) {
        continue;
      }
      auto next = std::make_shared<api_token>(*t);
      std::erase(next->organizations, org_);
      t = std::move(next);
      change.put(t);
      c_.pending.tokens[t->id] = t;
      c_.pending.tokens_by_digest[t->digest] = t;
      rewritten_.push_back(t);
    }
    if (!rewritten_.empty()) {
      tokens_ = std::move(tokens);
      c_.pending.tokens_list = tokens_;
    }

    change.erase(c_.current_organization(org_));
    organizations_ = without(*c_.current_organization_list(), org_);
    c_.pending.organizations[org_] = nullptr;
    c_.pending.organizations_list = organizations_;
    return {};
  }
  void publish() override {
    // Lists before ids, as in project_removal.
    (void)c_.all_organizations.exchange(organizations_);
    (void)c_.projects_by_organization.erase(org_);
    (void)c_.organizations.erase(org_);
    for (project_removal& r : removals_) r.publish(c_);
    for (const auto& t : rewritten_) {
      (void)c_.tokens_by_digest.put(t->digest, t);
      (void)c_.tokens.put(t->id, t);
    }
    if (tokens_) (void)c_.all_tokens.exchange(tokens_);
    c_.organization_count.fetch_sub(1);
  }
  void complete(result<void> outcome) noexcept override {
    std::vector<object_id> projects;
    projects.reserve(removals_.size());
    for (const project_removal& r : removals_) projects.push_back(r.id());
    deliver(done_, std::move(outcome), std::move(projects));
  }

 private:
  impl& c_;
  object_id org_;
  completion<std::vector<object_id>> done_;
  std::vector<project_removal> removals_;
  std::vector<std::shared_ptr<const api_token>> rewritten_;
  std::shared_ptr<const token_list> tokens_;  // null when no token listed the organization
  std::shared_ptr<const organization_list> organizations_;
};

// Another node's change (catalog::apply_remote), already committed to the shared store: planned
// into the overlay and published like a local change, but it appends nothing to the group's own
// change, so nothing is written. Each op is checked against what this index holds:
// - a put of the very version held, or of an older one (by updatedAt; tokens, which have none,
//   by content), and an erase of what is not held change nothing, so the same change applied
//   twice, or a change this node has seen through a re-read, is harmless. A put with the same
//   updatedAt as the held version (another copy, e.g. read back from PostgreSQL) replaces it:
//   two changes within one millisecond have the same updatedAt, and skipping the second would
//   leave this node on the first for good, while replacing an equal copy only costs a publish;
// - an erase takes along what hangs off the erased version as this index holds it (a project's
//   webhooks, an organization's projects), as the local deletes do;
// - a project or webhook whose organization or project is not held is refused whole (not_found),
//   and so is a slug or digest held by another entity (conflict): the caller re-reads.
class apply_remote_op final : public catalog_mutation {
 public:
  apply_remote_op(impl& c, catalog_change change, completion<void> done)
      : c_(c), change_(std::move(change)), done_(std::move(done)) {}

  result<void> plan(catalog_change&) override {
    impl::overlay saved = c_.pending;  // put back when the change is refused
    for (const catalog_change::op& op : change_.ops) {
      const bool put = op.what == catalog_change::kind::put;
      result<void> planned =
          std::visit([&](const auto& e) { return put ? plan_put(e) : plan_erase(e); }, op.value);
      if (!planned) {
        c_.pending = std::move(saved);
        steps_.clear();
        return planned;
      }
    }
    return {};
  }
  void publish() override {
    c_.remember_erased(change_);  // erased in the shared store, whatever this index held
    for (const auto& step : steps_) step();
  }
  void complete(result<void> outcome) noexcept override { done_(std::move(outcome)); }

 private:
  result<void> plan_put(const std::shared_ptr<const organization>& o) {
    if (c_.erased_here(c_.pending.organizations, o->id)) return {};
    const auto held = c_.current_organization(o->id);
    if (held && (held == o || held->updated_at > o->updated_at)) return {};
    auto list = held ? with_replaced(*c_.current_organization_list(), o)
                     : with_added(c_.current_organization_list().get(), o);
    c_.pending.organizations[o->id] = o;
    c_.pending.organizations_list = list;
    steps_.push_back([&c = c_, o, list, fresh = !held] {
      (void)c.organizations.put(o->id, o);
      (void)c.all_organizations.exchange(list);
      if (fresh) c.organization_count.fetch_add(1);
    });
    return {};
  }

  result<void> plan_erase(const std::shared_ptr<const organization>& gone) {
    const object_id org = gone->id;
    if (!c_.current_organization(org)) return {};
    std::vector<std::shared_ptr<project_removal>> removals;
    if (const auto projects = c_.current_project_list(org)) {
      catalog_change unused;  // nothing is written
      for (const auto& p : *projects) {
        removals.push_back(std::make_shared<project_removal>());
        removals.back()->plan(c_, unused, p);
      }
    }
    c_.pending.project_lists[org] = nullptr;
    auto list = without(*c_.current_organization_list(), org);
    c_.pending.organizations[org] = nullptr;
    c_.pending.organizations_list = list;
    // Lists before ids, as in delete_organization_op.
    steps_.push_back([&c = c_, org, list, removals = std::move(removals)] {
      (void)c.all_organizations.exchange(list);
      (void)c.projects_by_organization.erase(org);
      (void)c.organizations.erase(org);
      for (const auto& r : removals) r->publish(c);
      c.organization_count.fetch_sub(1);
    });
    return {};
  }

  result<void> plan_put(const std::shared_ptr<const project>& p) {
    if (c_.erased_here(c_.pending.projects, p->id)) return {};
    const object_id org = p->organization;
    if (!c_.current_organization(org)) {
      return not_found("Organization " + org.to_string() + " of project " + p->id.to_string() +
                       " is not known here.");
    }
    const auto held = c_.current_project(p->id);
    if (held) {
      if (held == p || held->updated_at > p->updated_at) return {};
      if (held->organization != org) {
        return make_problem(error_kind::conflict,
                            "Project " + p->id.to_string() + " is held in another organization.");
      }
    }
    const bool new_slug = !held || held->slug != p->slug;
    if (new_slug && c_.slug_taken(org, p->slug)) {
      return make_problem(error_kind::conflict, "The slug \"" + p->slug + "\" of project " +
                                                    p->id.to_string() +
                                                    " is held by another project here.");
    }
    auto list = held ? with_replaced(*c_.current_project_list(org), p)
                     : with_added(c_.current_project_list(org).get(), p);
    c_.pending.projects[p->id] = p;
    if (new_slug) {
      if (held) c_.pending.slugs[{org, held->slug}] = false;
      c_.pending.slugs[{org, p->slug}] = true;
    }
    c_.pending.project_lists[org] = list;
    steps_.push_back([&c = c_, p, held, list, new_slug] {
      (void)c.projects.put(p->id, p);
      if (new_slug) {
        if (held) c.slugs.erase({held->organization, held->slug});
        c.slugs.insert_or_assign(std::make_pair(p->organization, p->slug), p->id);
      }
      (void)c.projects_by_organization.put(p->organization, list);
      if (!held) c.project_count.fetch_add(1);
    });
    return {};
  }

  result<void> plan_erase(const std::shared_ptr<const project>& gone) {
    auto held = c_.current_project(gone->id);
    if (!held) return {};
    const object_id org = held->organization;
    auto removal = std::make_shared<project_removal>();
    catalog_change unused;
    removal->plan(c_, unused, std::move(held));
    auto list = without(*c_.current_project_list(org), gone->id);
    c_.pending.project_lists[org] = list;
    steps_.push_back([&c = c_, org, list, removal] {
      (void)c.projects_by_organization.put(org, list);
      removal->publish(c);
    });
    return {};
  }

  static bool same_token(const api_token& a, const api_token& b) {
    return a.name == b.name && a.organizations == b.organizations && a.scopes == b.scopes &&
           a.digest == b.digest && a.created_at == b.created_at;
  }

  result<void> plan_put(const std::shared_ptr<const api_token>& t) {
    if (c_.erased_here(c_.pending.tokens, t->id)) return {};
    const auto held = c_.current_token(t->id);
    if (held && same_token(*held, *t)) return {};
    if (const auto other = c_.current_token_by_digest(t->digest); other && other->id != t->id) {
      return make_problem(error_kind::conflict,
                          "Token " + t->id.to_string() + " has the digest of another token here.");
    }
    auto list = held ? with_replaced(*c_.current_token_list(), t)
                     : with_added(c_.current_token_list().get(), t);
    c_.pending.tokens[t->id] = t;
    if (held && held->digest != t->digest) c_.pending.tokens_by_digest[held->digest] = nullptr;
    c_.pending.tokens_by_digest[t->digest] = t;
    c_.pending.tokens_list = list;
    steps_.push_back([&c = c_, t, held, list] {
      if (held && held->digest != t->digest) (void)c.tokens_by_digest.erase(held->digest);
      (void)c.tokens_by_digest.put(t->digest, t);
      (void)c.tokens.put(t->id, t);
      (void)c.all_tokens.exchange(list);
      if (!held) c.token_count.fetch_add(1);
      if (held && held->scopes.has(scope::admin)) c.admin_token_count.fetch_sub(1);
      if (t->scopes.has(scope::admin)) c.admin_token_count.fetch_add(1);
    });
    return {};
  }

  result<void> plan_erase(const std::shared_ptr<const api_token>& gone) {
    const auto held = c_.current_token(gone->id);
    if (!held) return {};
    auto list = without(*c_.current_token_list(), held->id);
    c_.pending.tokens[held->id] = nullptr;
    c_.pending.tokens_by_digest[held->digest] = nullptr;
    c_.pending.tokens_list = list;
    // The digest goes first, as in delete_token_op.
    steps_.push_back([&c = c_, held, list] {
      (void)c.tokens_by_digest.erase(held->digest);
      (void)c.tokens.erase(held->id);
      (void)c.all_tokens.exchange(list);
      c.token_count.fetch_sub(1);
      if (held->scopes.has(scope::admin)) c.admin_token_count.fetch_sub(1);
    });
    return {};
  }

  result<void> plan_put(const std::shared_ptr<const webhook>& w) {
    if (c_.erased_here(c_.pending.webhooks, w->id)) return {};
    const auto p = c_.current_project(w->project);
    if (!p || p->organization != w->organization) {
      return not_found("Project " + w->project.to_string() + " of webhook " + w->id.to_string() +
                       " is not known here in organization " + w->organization.to_string() + ".");
    }
    const auto held = c_.current_webhook(w->id);
    if (held) {
      if (held == w || held->updated_at > w->updated_at) return {};
      if (held->project != w->project) {
        return make_problem(error_kind::conflict,
                            "Webhook " + w->id.to_string() + " is held in another project.");
      }
    }
    const auto current = c_.current_webhook_list(w->project);
    auto list = held ? with_replaced(*current, w) : with_added(current.get(), w);
    c_.pending.webhooks[w->id] = w;
    c_.pending.webhook_lists[w->project] = list;
    steps_.push_back([&c = c_, w, list, fresh = !held] {
      (void)c.webhooks.put(w->id, w);
      (void)c.webhooks_by_project.put(w->project, list);
      if (fresh) c.webhook_count.fetch_add(1);
    });
    return {};
  }

  result<void> plan_erase(const std::shared_ptr<const webhook>& gone) {
    const auto held = c_.current_webhook(gone->id);
    if (!held) return {};
    auto list = without(*c_.current_webhook_list(held->project), held->id);
    c_.pending.webhooks[held->id] = nullptr;
    c_.pending.webhook_lists[held->project] = list;
    // Out of the list first, as in delete_webhook_op.
    steps_.push_back([&c = c_, held, list] {
      (void)c.webhooks_by_project.put(held->project, list);
      (void)c.webhooks.erase(held->id);
      c.webhook_count.fetch_sub(1);
    });
    return {};
  }

  impl& c_;
  catalog_change change_;
  completion<void> done_;
  std::vector<std::function<void()>> steps_;  // what publish() installs, in the change's order
};

}  // namespace

// ---------------------------------------------------------------- catalog

void catalog::create_organization(organization_input in,
                                  completion<std::shared_ptr<const organization>> done) {
  impl_->writer.submit(
      std::make_unique<create_organization_op>(*impl_, std::move(in), std::move(done)));
}

void catalog::create_project(object_id org, project_input in,
                             completion<std::shared_ptr<const project>> done) {
  impl_->writer.submit(
      std::make_unique<create_project_op>(*impl_, org, std::move(in), std::move(done)));
}

void catalog::create_token(token_input in, std::optional<std::string> secret,
                           completion<created_token> done) {
  // The random string is made here, on the caller's thread, to keep the writer's path short.
  std::string token = secret ? std::move(*secret) : generate_api_token();
  impl_->writer.submit(
      std::make_unique<create_token_op>(*impl_, std::move(in), std::move(token), std::move(done)));
}

void catalog::delete_token(object_id id, completion<void> done) {
  impl_->writer.submit(std::make_unique<delete_token_op>(*impl_, id, std::move(done)));
}

void catalog::create_webhook(object_id org, object_id project_id, webhook_input in,
                             completion<std::shared_ptr<const webhook>> done) {
  std::string secret = generate_webhook_secret(in.signing);
  impl_->writer.submit(std::make_unique<create_webhook_op>(*impl_, org, project_id, std::move(in),
                                                           std::move(secret), std::move(done)));
}

void catalog::update_webhook(object_id org, object_id project_id, object_id id, webhook_patch patch,
                             completion<std::shared_ptr<const webhook>> done) {
  std::optional<std::string> fresh;
  if (patch.signing) fresh = generate_webhook_secret(*patch.signing);  // used if it switches
  impl_->writer.submit(std::make_unique<update_webhook_op>(
      *impl_, org, project_id, id, std::move(patch), std::move(fresh), std::move(done)));
}

void catalog::rotate_webhook_secret(object_id org, object_id project_id, object_id id,
                                    std::optional<std::string> secret,
                                    completion<std::shared_ptr<const webhook>> done) {
  std::string generated;
  if (!secret) {
    const auto current = find_webhook(id);
    generated = generate_webhook_secret(current ? current->signing : signing_scheme::v1);
  }
  impl_->writer.submit(std::make_unique<rotate_secret_op>(
      *impl_, org, project_id, id, std::move(secret), std::move(generated), std::move(done)));
}

void catalog::disable_webhook(object_id id, std::string reason, timestamp at,
                              completion<std::shared_ptr<const webhook>> done) {
  impl_->writer.submit(
      std::make_unique<disable_webhook_op>(*impl_, id, std::move(reason), at, std::move(done)));
}

void catalog::delete_webhook(object_id org, object_id project_id, object_id id,
                             completion<void> done) {
  impl_->writer.submit(
      std::make_unique<delete_webhook_op>(*impl_, org, project_id, id, std::move(done)));
}

void catalog::delete_project(object_id org, object_id project_id, completion<void> done) {
  impl_->writer.submit(
      std::make_unique<delete_project_op>(*impl_, org, project_id, std::move(done)));
}

void catalog::delete_organization(object_id org, completion<std::vector<object_id>> done) {
  impl_->writer.submit(std::make_unique<delete_organization_op>(*impl_, org, std::move(done)));
}

void catalog::apply_remote(catalog_change change, completion<void> done) {
  impl_->writer.submit(
      std::make_unique<apply_remote_op>(*impl_, std::move(change), std::move(done)));
}

}  // namespace hookd
