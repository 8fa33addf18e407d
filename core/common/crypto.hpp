#pragma once
// Thin, allocation-aware wrappers over OpenSSL: hashes, HMAC, randomness, base64 and AES-256-GCM.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hookd {

using sha256_digest = std::array<std::uint8_t, 32>;

sha256_digest sha256(std::string_view data) noexcept;
sha256_digest hmac_sha256(std::string_view key, std::string_view data) noexcept;

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

}  // namespace hookd
