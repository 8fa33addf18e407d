// The catalog: its lifecycle and its reads. The index they read, and why it is built the way it
// is, are in catalog_impl.hpp; the writes are in catalog_writes.cpp, start-up loading in
// catalog_load.cpp.

#include "core/catalog/catalog.hpp"

#include "core/catalog/catalog_impl.hpp"
#include "core/catalog/kv_catalog_store.hpp"

#include <memory>
#include <utility>
#include <vector>

namespace hookd {

catalog::catalog(catalog_store& store, catalog_options options)
    : impl_(std::make_unique<impl>(store, nullptr, std::move(options))) {}

catalog::catalog(storage& store, catalog_options options) {
  auto owned = std::make_unique<kv_catalog_store>(store, options.master_key);
  catalog_store& s = *owned;
  impl_ = std::make_unique<impl>(s, std::move(owned), std::move(options));
}

catalog::~catalog() {
  stop();
}

void catalog::start() {
  impl_->started = true;
  impl_->writer.start();
}

void catalog::stop() {
  impl_->writer.stop();
}

std::shared_ptr<const organization> catalog::find_organization(const object_id& id) const {
  return impl_->organizations.find(id);
}

std::vector<std::shared_ptr<const organization>> catalog::list_organizations() const {
  const auto list = impl_->all_organizations.load();
  return list ? *list : std::vector<std::shared_ptr<const organization>>{};
}

std::shared_ptr<const project> catalog::find_project(const object_id& id) const {
  return impl_->projects.find(id);
}

std::vector<std::shared_ptr<const project>> catalog::list_projects(const object_id& org) const {
  const auto list = impl_->projects_by_organization.find(org);
  return list ? *list : std::vector<std::shared_ptr<const project>>{};
}

std::shared_ptr<const api_token> catalog::find_token(const object_id& id) const {
  return impl_->tokens.find(id);
}

std::shared_ptr<const api_token> catalog::find_token_by_digest(const sha256_digest& digest) const {
  return impl_->tokens_by_digest.find(digest);
}

std::vector<std::shared_ptr<const api_token>> catalog::list_tokens() const {
  const auto list = impl_->all_tokens.load();
  return list ? *list : std::vector<std::shared_ptr<const api_token>>{};
}

std::shared_ptr<const webhook> catalog::find_webhook(const object_id& id) const {
  return impl_->webhooks.find(id);
}

std::shared_ptr<const webhook_list> catalog::list_webhooks(const object_id& project_id) const {
  auto list = impl_->webhooks_by_project.find(project_id);
  return list ? list : empty_webhook_list();
}

catalog_counts catalog::counts() const {
  return catalog_counts{impl_->organization_count.load(), impl_->project_count.load(),
                        impl_->token_count.load(), impl_->webhook_count.load()};
}

commit_stats catalog::stats() const {
  return impl_->writer.stats();
}

bool catalog::has_admin_token() const {
  return impl_->admin_token_count.load() > 0;
}

}  // namespace hookd
