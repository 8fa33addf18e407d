#pragma once
// How the catalog's entities and index entries look in storage. Pure functions, any thread.
//
// Keys are the 12 raw id bytes (they sort like the hex form, so a scan is in id order).
// Values are compact JSON objects with a version field "v":1, timestamps as integer unix
// milliseconds and ids as 24 hex digits. A webhook's signing secret is sealed with the master key
// (AES-256-GCM, the webhook id as associated data, so a sealed secret cannot be moved to another
// webhook) and stored as base64; so are its custom header values, together, as the JSON text
// [["name","value"],...] with "headers:" + id as associated data (no headers: an empty array);
// the secrets a rotation replaced, while they still sign, likewise, as [["secret",expiresAtMs],...]
// with "previous:" + id (field "previousSecrets", only when there are some); a v1a webhook's
// Ed25519 private key is its "secret", sealed like an HMAC secret;
// a token is stored by the SHA-256 digest of its string only. Nothing in a value is a secret in
// plain text. Records written before header values were sealed hold them as a plain array; they
// still decode, and kv_catalog_store::load rewrites them once (kHeadersSealedKey).
//
// Index entries live in table::index under two-letter prefixes:
//   "ps" + organization id + slug     -> project id   (slug unique per organization)
//   "pw" + project id + webhook id    -> ""           (webhooks of a project)
//   "td" + SHA-256 digest (32 bytes)  -> token id     (token by digest)

#include "core/catalog/entities.hpp"
#include "core/common/crypto.hpp"
#include "core/common/error.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace hookd {

inline constexpr int kCodecVersion = 1;

std::string encode(const organization& org);
std::string encode(const project& p);
std::string encode(const api_token& t);
std::string encode(const webhook& w, const aes256gcm_key& master_key);

// `key` is the record's storage key (the 12 id bytes); the id comes from it. Errors are
// error_kind::internal with a detail that says what is wrong with the value, without naming the
// table or key (the caller knows them; see describe_record).
result<organization> decode_organization(std::string_view key, std::string_view value);
result<project> decode_project(std::string_view key, std::string_view value);
result<api_token> decode_token(std::string_view key, std::string_view value);
result<webhook> decode_webhook(std::string_view key, std::string_view value,
                               const aes256gcm_key& master_key);
// The same, except that the signing secret stays sealed, to be opened with `master_key` at its
// first use (webhook_secret), so a secret sealed with another key is not noticed here: for
// start-up, which checks the master key once instead (kMasterKeyCheckKey).
result<webhook> decode_webhook_lazily(std::string_view key, std::string_view value,
                                      const std::shared_ptr<const aes256gcm_key>& master_key);

// Index keys (see the table above).
inline constexpr std::string_view kProjectSlugPrefix = "ps";
inline constexpr std::string_view kProjectWebhookPrefix = "pw";
inline constexpr std::string_view kTokenDigestPrefix = "td";

// Meta table keys. kHeadersSealedKey is present once the webhooks written before header values
// were sealed have been rewritten sealed (kv_catalog_store::load).
inline constexpr std::string_view kHeadersSealedKey = "headers_sealed";
// Meta table key of the master key's check: kMasterKeyCheckText sealed with the master key (and
// this key as associated data). Written by the first start that has verified the master key
// against the webhooks' secrets, so that later starts verify it by opening this alone
// (kv_catalog_store::load).
inline constexpr std::string_view kMasterKeyCheckKey = "master_key_check";
inline constexpr std::string_view kMasterKeyCheckText = "hookd master key check 1";
std::string project_slug_key(const object_id& org, std::string_view slug);
std::string project_webhook_key(const object_id& project, const object_id& webhook);
std::string token_digest_key(const sha256_digest& digest);

// A key fit for an error message: id keys as hex, index keys as their prefix plus hex of the
// rest, e.g. "pw65a0...". Never prints raw bytes.
std::string printable_key(std::string_view key);

}  // namespace hookd
