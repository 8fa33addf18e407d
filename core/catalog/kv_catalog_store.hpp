#pragma once
// The embedded catalog store: the catalog's entities as records and index entries in the
// key-value tables of core/durable/storage.hpp, laid out as codec.hpp describes.
//
// commit() turns one catalog_change into ONE write_batch, op by op in order:
//   put organization  -> its record
//   put project       -> its record and "ps" + organization + slug -> project id
//   put token         -> its record and "td" + digest -> token id
//   put webhook       -> its record and "pw" + project + webhook -> ""
//   erase (any kind)  -> the record and the index entry derived from the erased version
// A put that replaces an entity writes its index entry again, with the same value: a project's
// organization and slug, a token's digest and a webhook's project never change.
//
// load() reads the four tables (webhooks decoded on `threads` threads), checks every reference
// and that the index table holds exactly the entries the records imply, seals header values an
// older hookd stored in plain text (once), then hands the entities to the sink: organizations,
// projects and tokens, then the webhooks project by project, all from the calling thread.
//
// Thread safety: commit() from one thread at a time (the catalog's writer); load() before any
// commit().

#include "core/catalog/catalog_store.hpp"
#include "core/common/crypto.hpp"
#include "core/durable/storage.hpp"

namespace hookd {

class kv_catalog_store final : public catalog_store {
 public:
  // `master_key` seals webhook secrets, header values and previous secrets (codec.hpp).
  kv_catalog_store(storage& store, aes256gcm_key master_key);

  result<void> commit(const catalog_change& change) override;
  result<void> load(const catalog_load_sink& sink, unsigned threads) override;

  // The batch commit() writes for `change` (exposed for tests).
  write_batch batch_of(const catalog_change& change) const;

 private:
  storage& store_;
  const aes256gcm_key master_key_;
};

}  // namespace hookd
