// The catalog's start-up: load() takes every entity the store holds (catalog_store::load), checks
// the references between them and builds the index.
//
// The store names a record that does not decode by where it lives (the embedded store also checks
// its own index table: kv_catalog_store.cpp). The checks here hold for every store: a project's
// organization, a webhook's project and organization, a slug once per organization, a digest
// once.

#include "core/catalog/catalog_impl.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hookd {

namespace {

template <class T>
void sort_oldest_first(snapshot_list<T>& list) {
  std::sort(list.begin(), list.end(), older<T>);
}

problem load_problem(std::string what) {
  return make_problem(error_kind::internal, "Cannot load the catalog: " + std::move(what));
}

}  // namespace

result<catalog_counts> catalog::impl::load() {
  if (loaded || started) {
    return make_problem(error_kind::internal,
                        "catalog::load() must be called once, before start()");
  }

  std::vector<std::shared_ptr<const organization>> orgs;
  std::vector<std::shared_ptr<const project>> project_records;
  std::vector<std::shared_ptr<const api_token>> token_records;
  std::vector<std::shared_ptr<const webhook>> webhook_records;
  // The sink may be called from several threads at once (catalog_store.hpp); one lock for all,
  // never contended by a store that hands over from one thread.
  std::mutex mutex;
  catalog_load_sink sink{
      .organization =
          [&](std::shared_ptr<organization> o) {
            std::lock_guard lock(mutex);
            orgs.push_back(std::move(o));
          },
      .project =
          [&](std::shared_ptr<project> p) {
            std::lock_guard lock(mutex);
            project_records.push_back(std::move(p));
          },
      .token =
          [&](std::shared_ptr<api_token> t) {
            std::lock_guard lock(mutex);
            token_records.push_back(std::move(t));
          },
      .webhook =
          [&](std::shared_ptr<webhook> w) {
            std::lock_guard lock(mutex);
            webhook_records.push_back(std::move(w));
          },
  };
  if (auto stored = store.load(sink, options.load_threads); !stored) return stored.error();

  std::unordered_map<object_id, std::shared_ptr<const organization>> org_by_id;
  org_by_id.reserve(orgs.size());
  for (const auto& o : orgs) org_by_id.emplace(o->id, o);
  std::map<std::pair<object_id, std::string>, object_id> slug_owner;
  std::unordered_map<object_id, std::size_t> project_slot;  // index in project_records
  project_slot.reserve(project_records.size());
  for (std::size_t i = 0; i < project_records.size(); ++i) {
    const project& p = *project_records[i];
    if (!org_by_id.contains(p.organization)) {
      return load_problem("the organization " + p.organization.to_string() + " of project " +
                          p.id.to_string() + " does not exist");
    }
    auto [it, fresh] = slug_owner.emplace(std::make_pair(p.organization, p.slug), p.id);
    if (!fresh) {
      return load_problem("the slug \"" + p.slug + "\" of project " + p.id.to_string() +
                          " is also used by project " + it->second.to_string());
    }
    project_slot.emplace(p.id, i);
  }
  {
    std::unordered_map<sha256_digest, object_id, digest_hash> digests;
    digests.reserve(token_records.size());
    for (const auto& t : token_records) {
      if (!digests.emplace(t->digest, t->id).second) {
        return load_problem("token " + t->id.to_string() + " has the digest of another token");
      }
    }
  }

  // Each project's webhooks. A store may hand them over project by project (the embedded one
  // does), so the last project found is tried first.
  std::vector<webhook_list> webhooks_of(project_records.size());
  {
    std::vector<std::uint32_t> slot_of_webhook(webhook_records.size());
    std::vector<std::size_t> sizes(project_records.size());
    object_id last_project;
    std::size_t last_slot = project_records.size();
    for (std::size_t i = 0; i < webhook_records.size(); ++i) {
      const webhook& w = *webhook_records[i];
      if (last_slot == project_records.size() || w.project != last_project) {
        const auto p = project_slot.find(w.project);
        if (p == project_slot.end() || project_records[p->second]->organization != w.organization) {
          return load_problem("the project " + w.project.to_string() + " of webhook " +
                              w.id.to_string() + " does not exist in organization " +
                              w.organization.to_string());
        }
        last_project = w.project;
        last_slot = p->second;
      }
      slot_of_webhook[i] = static_cast<std::uint32_t>(last_slot);
      ++sizes[last_slot];
    }
    for (std::size_t slot = 0; slot < sizes.size(); ++slot) webhooks_of[slot].reserve(sizes[slot]);
    for (std::size_t i = 0; i < webhook_records.size(); ++i) {
      webhooks_of[slot_of_webhook[i]].push_back(std::move(webhook_records[i]));
    }
  }
  const std::size_t webhook_total = webhook_records.size();
  webhook_records = {};

  // Publish. Nothing reads yet, but the same structures serve from here on.
  sort_oldest_first(orgs);
  sort_oldest_first(project_records);
  sort_oldest_first(token_records);

  organizations.reserve(orgs.size());
  for (const auto& o : orgs) (void)organizations.put(o->id, o);
  (void)all_organizations.exchange(std::make_shared<const organization_list>(orgs));

  projects.reserve(project_records.size());
  slugs = std::move(slug_owner);
  std::unordered_map<object_id, project_list> projects_of;
  for (const auto& p : project_records) {
    (void)projects.put(p->id, p);
    projects_of[p->organization].push_back(p);
  }
  projects_by_organization.reserve(projects_of.size());
  for (auto& [org, list] : projects_of) {
    (void)projects_by_organization.put(org, std::make_shared<const project_list>(std::move(list)));
  }

  std::size_t admins = 0;
  tokens.reserve(token_records.size());
  tokens_by_digest.reserve(token_records.size());
  for (const auto& t : token_records) {
    (void)tokens.put(t->id, t);
    (void)tokens_by_digest.put(t->digest, t);
    if (t->scopes.has(scope::admin)) ++admins;
  }
  (void)all_tokens.exchange(std::make_shared<const token_list>(token_records));

  // Published in the order every list is kept in, oldest first.
  webhooks.reserve(webhook_total);
  webhooks_by_project.reserve(project_records.size());
  for (webhook_list& list : webhooks_of) {
    if (list.empty()) continue;
    const object_id project_id = list.front()->project;
    for (const auto& w : list) (void)webhooks.put(w->id, w);
    sort_oldest_first(list);
    (void)webhooks_by_project.put(project_id,
                                  std::make_shared<const webhook_list>(std::move(list)));
  }

  organization_count = orgs.size();
  project_count = project_records.size();
  token_count = token_records.size();
  webhook_count = webhook_total;
  admin_token_count = admins;
  loaded = true;
  return catalog_counts{orgs.size(), project_records.size(), token_records.size(), webhook_total};
}

result<catalog_counts> catalog::load() {
  return impl_->load();
}

}  // namespace hookd
