#pragma once
// Thin, allocation-aware wrappers over OpenSSL: hashes, HMAC, randomness, base64, AES-256-GCM and
// Ed25519.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

struct evp_pkey_st;  // OpenSSL's EVP_PKEY, kept out of this header

namespace hookd {

using sha256_digest = std::array<std::uint8_t, 32>;

sha256_digest sha256(std::string_view data) noexcept;
sha256_digest hmac_sha256(std::string_view key, std::string_view data) noexcept;
// HMAC-SHA256 of the concatenation of `parts`, for a key that is used over and over (a
// webhook's signing secret): each thread keeps the keyed contexts of the keys it used last, at
// most 1024 (then it starts over), so that a key used again costs no keying (deriving it, hashing
// its two pads); hmac_sha256 keys afresh on every call. The contexts hold nothing the caller does
// not hold already.
sha256_digest hmac_sha256_reused_key(std::string_view key,
                                     std::span<const std::string_view> parts) noexcept;

// Cryptographically secure random bytes (RAND_bytes); aborts if the RNG fails.
void random_bytes(std::span<std::uint8_t> out);
std::string random_bytes(std::size_t n);

// Length-independent comparison for secrets and digests (CRYPTO_memcmp).
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

std::string base64_encode(std::string_view bytes);                // standard alphabet, padded
std::string base64url_encode(std::string_view bytes);             // URL-safe alphabet, no padding
std::optional<std::string> base64_decode(std::string_view text);  // standard, padded or not
// The same into `out` (its buffer reused); false, with `out` unspecified, where the above is
// nullopt.
bool base64_decode(std::string_view text, std::string& out);
std::string hex_encode(std::string_view bytes);  // lowercase

// AES-256-GCM with a random 96-bit nonce. The sealed form is nonce | ciphertext | 16-byte tag.
// `aad` binds the ciphertext to its context (e.g. the webhook id) so it cannot be moved.
class aes256gcm_key {
 public:
  static constexpr std::size_t kKeySize = 32;
  static std::optional<aes256gcm_key> from_bytes(std::string_view raw);  // exactly 32 bytes
  static aes256gcm_key generate();

  std::string seal(std::string_view plaintext, std::string_view aad = {}) const;
  // nullopt when the tag does not verify (wrong key, tampering, wrong aad) or the input is short.
  std::optional<std::string> open(std::string_view sealed, std::string_view aad = {}) const;
  std::string_view raw() const noexcept {
    return {reinterpret_cast<const char*>(key_.data()), key_.size()};
  }

 private:
  std::array<std::uint8_t, kKeySize> key_{};
};

// An Ed25519 key (RFC 8032, OpenSSL's EVP_PKEY_ED25519): a private key (its 32-byte seed, with
// the public key derived from it) or a public key alone, which can only verify. Immutable once
// made; copies share the key; sign and verify are safe from many threads at once.
class ed25519_key {
 public:
  static constexpr std::size_t kSeedSize = 32, kPublicKeySize = 32, kSignatureSize = 64;

  static ed25519_key generate();                                        // a random seed
  static std::optional<ed25519_key> from_seed(std::string_view seed);   // exactly 32 bytes
  static std::optional<ed25519_key> from_public(std::string_view key);  // exactly 32 bytes

  [[nodiscard]] bool has_private() const noexcept { return has_private_; }
  [[nodiscard]] std::string seed() const;        // the 32 private bytes; empty for a public key
  [[nodiscard]] std::string public_key() const;  // the 32 public bytes
  // The 64-byte signature of `message`; aborts for a public-only key (a caller's bug).
  [[nodiscard]] std::string sign(std::string_view message) const;
  [[nodiscard]] bool verify(std::string_view message, std::string_view signature) const noexcept;

 private:
  ed25519_key(std::shared_ptr<evp_pkey_st> key, bool has_private) noexcept
      : key_(std::move(key)), has_private_(has_private) {}

  std::shared_ptr<evp_pkey_st> key_;
  bool has_private_ = false;
};

}  // namespace hookd
