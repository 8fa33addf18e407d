#pragma once
// The SHA-256 of recently presented API tokens, so that a client sending the same token with
// every request does not pay for hashing it each time (it was a tenth of a GET's instructions).
// Internal to http/api/auth.cpp, which keeps one per thread; declared here so that its tests can
// see what it keeps. Not thread-safe: one instance per thread.
//
// It holds plain token text, so it keeps as little as it can: direct-mapped, kSlots slots, tokens
// stored inline (no heap copy that a reallocation could leave behind), and a slot's old token is
// wiped (OPENSSL_cleanse) before the slot is reused or forgotten. Whether a token is valid is
// never decided here: the catalog is asked on every request.

#include "core/common/crypto.hpp"

#include <array>
#include <cstddef>
#include <string_view>

namespace hookd::http {

class token_digest_cache {
 public:
  static constexpr std::size_t kSlots = 16;
  static constexpr std::size_t kMaxTokenBytes = 256;  // longer tokens are hashed every time

  token_digest_cache() = default;
  ~token_digest_cache();  // wipes every slot
  token_digest_cache(const token_digest_cache&) = delete;
  token_digest_cache& operator=(const token_digest_cache&) = delete;

  // SHA-256 of `token`, remembered in its slot (wiping the token that held it); valid until the
  // next call on this cache.
  const sha256_digest& digest(std::string_view token);
  // Wipes the slot holding `token`, if one does: authenticate calls this for a token the catalog
  // does not know (unknown or revoked), so that its text does not stay behind.
  void forget(std::string_view token) noexcept;

  bool contains(std::string_view token) const noexcept;
  std::size_t size() const noexcept;  // slots holding a token

 private:
  struct slot {
    std::array<char, kMaxTokenBytes> text{};
    std::size_t length = 0;  // 0: empty
    sha256_digest digest{};
    std::string_view token() const noexcept { return {text.data(), length}; }
  };
  slot& slot_for(std::string_view token) noexcept;
  static void wipe(slot& s) noexcept;

  std::array<slot, kSlots> slots_{};
  sha256_digest uncached_{};
};

// The calling thread's cache, the one authenticate() uses.
token_digest_cache& this_thread_token_digests();

}  // namespace hookd::http
