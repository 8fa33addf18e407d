#include "http/api/token_digest_cache.hpp"

#include <openssl/crypto.h>

#include <cstring>
#include <functional>

namespace hookd::http {

token_digest_cache::~token_digest_cache() {
  for (auto& s : slots_) wipe(s);
}

token_digest_cache::slot& token_digest_cache::slot_for(std::string_view token) noexcept {
  return slots_[std::hash<std::string_view>{}(token) % kSlots];
}

void token_digest_cache::wipe(slot& s) noexcept {
  if (s.length == 0) return;
  OPENSSL_cleanse(s.text.data(), s.length);
  s.length = 0;
  s.digest = {};
}

const sha256_digest& token_digest_cache::digest(std::string_view token) {
  if (token.empty() || token.size() > kMaxTokenBytes) return uncached_ = sha256(token);
  slot& s = slot_for(token);
  if (s.token() != token) {
    wipe(s);
    std::memcpy(s.text.data(), token.data(), token.size());
    s.length = token.size();
    s.digest = sha256(token);
  }
  return s.digest;
}

void token_digest_cache::forget(std::string_view token) noexcept {
  if (token.empty() || token.size() > kMaxTokenBytes) return;
  slot& s = slot_for(token);
  if (s.token() == token) wipe(s);
}

bool token_digest_cache::contains(std::string_view token) const noexcept {
  if (token.empty() || token.size() > kMaxTokenBytes) return false;
  const slot& s = slots_[std::hash<std::string_view>{}(token) % kSlots];
  return s.token() == token;
}

std::size_t token_digest_cache::size() const noexcept {
  std::size_t n = 0;
  for (const auto& s : slots_) n += s.length != 0 ? 1 : 0;
  return n;
}

token_digest_cache& this_thread_token_digests() {
  thread_local token_digest_cache cache;
  return cache;
}

}  // namespace hookd::http
