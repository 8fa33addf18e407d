#include "core/common/crypto.hpp"

#include "core/common/log.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

namespace hookd {

namespace {

const unsigned char* bytes_of(std::string_view s) noexcept {
  return reinterpret_cast<const unsigned char*>(s.data());
}

[[noreturn]] void crypto_abort(const char* what) noexcept {
  // These calls fail only when OpenSSL itself is broken (no entropy, no memory); carrying on
  // would hand out predictable secrets or unsealed data.
  try {
    log_line({{"level", "fatal"}, {"event", "openssl_failure"}, {"where", what}});
  } catch (...) {
    std::fputs("{\"level\":\"fatal\",\"event\":\"openssl_failure\"}\n", stderr);
  }
  std::abort();
}

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64_with(std::string_view bytes, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  const auto* p = bytes_of(bytes);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const std::uint32_t v = std::uint32_t{p[i]} << 16;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    if (pad) out.append("==");
  } else if (rest == 2) {
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    if (pad) out.push_back('=');
  }
  return out;
}

// Start-up decodes every stored webhook secret: a table, not a chain of range tests.
constexpr std::array<std::int8_t, 256> kBase64Value = [] {
  std::array<std::int8_t, 256> t{};
  t.fill(-1);
  for (std::size_t i = 0; i < 64; ++i) {
    t[static_cast<unsigned char>(kBase64[i])] = static_cast<std::int8_t>(i);
  }
  return t;
}();

int base64_value(char c) noexcept {
  return kBase64Value[static_cast<unsigned char>(c)];
}

struct cipher_ctx_deleter {
  void operator()(EVP_CIPHER_CTX* ctx) const noexcept { EVP_CIPHER_CTX_free(ctx); }
};
using cipher_ctx = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_deleter>;

constexpr std::size_t kNonceSize = 12;
constexpr std::size_t kTagSize = 16;

int as_int(std::size_t n) {
  if (n > static_cast<std::size_t>(INT_MAX)) crypto_abort("length over INT_MAX");
  return static_cast<int>(n);
}

// OpenSSL 3 looks an algorithm up by name ("fetches" it, under a lock) on every call that is
// given a legacy handle such as EVP_sha256(). These paths run per request (token digests) and
// per delivery (signatures), so each algorithm is fetched once per process and each thread keeps
// its own reusable context.
const EVP_MD* sha256_md() noexcept {
  static EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) crypto_abort("EVP_MD_fetch(SHA256)");
    return fetched;
  }();
  return md;
}

EVP_MAC* hmac_mac() noexcept {
  static EVP_MAC* const mac = [] {
    EVP_MAC* fetched = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (fetched == nullptr) crypto_abort("EVP_MAC_fetch(HMAC)");
    return fetched;
  }();
  return mac;
}

const EVP_CIPHER* aes256gcm_cipher() noexcept {
  static EVP_CIPHER* const cipher = [] {
    EVP_CIPHER* fetched = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    if (fetched == nullptr) crypto_abort("EVP_CIPHER_fetch(AES-256-GCM)");
    return fetched;
  }();
  return cipher;
}

struct md_ctx_deleter {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};
struct mac_ctx_deleter {
  void operator()(EVP_MAC_CTX* ctx) const noexcept { EVP_MAC_CTX_free(ctx); }
};

// A per-thread AES-256-GCM context for one direction that keeps the key schedule of the last key
// it was given: each call then only sets the nonce. Start-up opens every stored webhook secret
// with the same master key, and a fresh context and key schedule per call were a fifth of it.
EVP_CIPHER_CTX* gcm_context(bool encrypt, const std::array<std::uint8_t, 32>& key) {
  struct keyed {
    cipher_ctx ctx{EVP_CIPHER_CTX_new()};
    std::array<std::uint8_t, 32> key{};
    bool ready = false;
    ~keyed() { OPENSSL_cleanse(key.data(), key.size()); }
  };
  thread_local keyed contexts[2];
  keyed& k = contexts[encrypt ? 1 : 0];
  if (!k.ctx) crypto_abort("EVP_CIPHER_CTX_new");
  if (!k.ready || k.key != key) {
    k.ready = false;
    if (EVP_CipherInit_ex(k.ctx.get(), aes256gcm_cipher(), nullptr, key.data(), nullptr,
                          encrypt ? 1 : 0) != 1) {
      crypto_abort("AES-256-GCM key");
    }
    k.key = key;
    k.ready = true;
  }
  return k.ctx.get();
}

}  // namespace

sha256_digest sha256(std::string_view data) noexcept {
  thread_local const std::unique_ptr<EVP_MD_CTX, md_ctx_deleter> ctx(EVP_MD_CTX_new());
  sha256_digest out{};
  unsigned int len = 0;
  if (!ctx || EVP_DigestInit_ex2(ctx.get(), sha256_md(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1 || len != out.size()) {
    crypto_abort("SHA-256");
  }
  return out;
}

sha256_digest hmac_sha256(std::string_view key, std::string_view data) noexcept {
  thread_local const std::unique_ptr<EVP_MAC_CTX, mac_ctx_deleter> ctx(EVP_MAC_CTX_new(hmac_mac()));
  static char kDigest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, kDigest, 0),
      OSSL_PARAM_construct_end(),
  };
  // EVP_MAC_init refuses a null key pointer even with length 0, so give an empty key an address.
  static const unsigned char kEmpty = 0;
  const unsigned char* key_ptr = key.empty() ? &kEmpty : bytes_of(key);
  sha256_digest out{};
  std::size_t len = 0;
  if (!ctx || EVP_MAC_init(ctx.get(), key_ptr, key.size(), params) != 1 ||
      EVP_MAC_update(ctx.get(), bytes_of(data), data.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1 || len != out.size()) {
    crypto_abort("HMAC-SHA256");
  }
  return out;
}

sha256_digest hmac_sha256_reused_key(std::string_view key,
                                     std::span<const std::string_view> parts) noexcept {
  static constexpr std::size_t kCachedKeys = 1024;
  using ctx_ptr = std::unique_ptr<EVP_MAC_CTX, mac_ctx_deleter>;
  struct key_hash {
    using is_transparent = void;  // find() by string_view, without a copy of the key
    std::size_t operator()(std::string_view k) const noexcept {
      return std::hash<std::string_view>{}(k);
    }
  };
  thread_local std::unordered_map<std::string, ctx_ptr, key_hash, std::equal_to<>> keyed;
  EVP_MAC_CTX* ctx = nullptr;
  if (const auto it = keyed.find(key); it != keyed.end()) {
    ctx = it->second.get();
    // No key: the context starts over with the key it has (no digest lookup, no pads to hash).
    if (EVP_MAC_init(ctx, nullptr, 0, nullptr) != 1) crypto_abort("HMAC-SHA256");
  } else {
    ctx_ptr fresh(EVP_MAC_CTX_new(hmac_mac()));
    static char kDigest[] = "SHA256";
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, kDigest, 0),
        OSSL_PARAM_construct_end(),
    };
    static const unsigned char kEmpty = 0;  // EVP_MAC_init refuses a null key pointer
    if (!fresh ||
        EVP_MAC_init(fresh.get(), key.empty() ? &kEmpty : bytes_of(key), key.size(), params) != 1) {
      crypto_abort("HMAC-SHA256");
    }
    if (keyed.size() >= kCachedKeys) keyed.clear();
    ctx = keyed.emplace(std::string(key), std::move(fresh)).first->second.get();
  }
  for (const std::string_view part : parts) {
    if (EVP_MAC_update(ctx, bytes_of(part), part.size()) != 1) crypto_abort("HMAC-SHA256");
  }
  sha256_digest out{};
  std::size_t len = 0;
  if (EVP_MAC_final(ctx, out.data(), &len, out.size()) != 1 || len != out.size()) {
    crypto_abort("HMAC-SHA256");
  }
  return out;
}

void random_bytes(std::span<std::uint8_t> out) {
  // RAND_bytes takes an int; fill large requests in pieces.
  std::size_t done = 0;
  while (done < out.size()) {
    const std::size_t chunk = std::min<std::size_t>(out.size() - done, 1u << 20);
    if (RAND_bytes(out.data() + done, static_cast<int>(chunk)) != 1) crypto_abort("RAND_bytes");
    done += chunk;
  }
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  random_bytes(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(out.data()), n));
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  // The length of a digest or token is not secret; only the content comparison must not leak.
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string base64_encode(std::string_view bytes) {
  return base64_with(bytes, kBase64, true);
}

std::string base64url_encode(std::string_view bytes) {
  return base64_with(bytes, kBase64Url, false);
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::string out;
  if (!base64_decode(text, out)) return std::nullopt;
  return out;
}

bool base64_decode(std::string_view text, std::string& out) {
  // Padding is optional, but when present it must complete the last quantum exactly.
  std::size_t padding = 0;
  while (padding < 2 && !text.empty() && text.back() == '=') {
    text.remove_suffix(1);
    ++padding;
  }
  if (padding > 0 && (text.size() + padding) % 4 != 0) return false;
  if (text.size() % 4 == 1) return false;  // one leftover sextet cannot encode a byte

  // Sized once and filled four characters (three bytes) at a time: start-up decodes the sealed
  // secret of every webhook. Any character outside the alphabet sets the sign bit of `bad`.
  out.resize(text.size() / 4 * 3 + (text.size() % 4 == 0 ? 0 : text.size() % 4 - 1));
  char* o = out.data();
  const char* in = text.data();
  const std::size_t whole = text.size() / 4 * 4;
  int bad = 0;
  for (std::size_t i = 0; i < whole; i += 4, o += 3) {
    const int a = base64_value(in[i]), b = base64_value(in[i + 1]), c = base64_value(in[i + 2]),
              d = base64_value(in[i + 3]);
    bad |= a | b | c | d;
    const auto v = (static_cast<std::uint32_t>(a & 63) << 18) |
                   (static_cast<std::uint32_t>(b & 63) << 12) |
                   (static_cast<std::uint32_t>(c & 63) << 6) | static_cast<std::uint32_t>(d & 63);
    o[0] = static_cast<char>(v >> 16);
    o[1] = static_cast<char>((v >> 8) & 0xFF);
    o[2] = static_cast<char>(v & 0xFF);
  }
  // The last 2 or 3 characters (1 or 2 bytes), as the bit accumulator of the general case.
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = whole; i < text.size(); ++i) {
    const int v = base64_value(in[i]);  // also refuses '=' inside the text and any whitespace
    bad |= v;
    acc = (acc << 6) | static_cast<std::uint32_t>(v & 63);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *o++ = static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return bad >= 0;
}

std::string hex_encode(std::string_view bytes) {
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0x0F]);
  }
  return out;
}

std::optional<aes256gcm_key> aes256gcm_key::from_bytes(std::string_view raw) {
  if (raw.size() != kKeySize) return std::nullopt;
  aes256gcm_key k;
  std::copy(raw.begin(), raw.end(), reinterpret_cast<char*>(k.key_.data()));
  return k;
}

aes256gcm_key aes256gcm_key::generate() {
  aes256gcm_key k;
  random_bytes(std::span<std::uint8_t>(k.key_.data(), k.key_.size()));
  return k;
}

std::string aes256gcm_key::seal(std::string_view plaintext, std::string_view aad) const {
  std::string out(kNonceSize + plaintext.size() + kTagSize, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  random_bytes(std::span<std::uint8_t>(nonce, kNonceSize));
  unsigned char* body = nonce + kNonceSize;

  EVP_CIPHER_CTX* ctx = gcm_context(true, key_);
  int len = 0;
  if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) != 1 ||
      (!aad.empty() &&
       EVP_EncryptUpdate(ctx, nullptr, &len, bytes_of(aad), as_int(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx, body, &len, bytes_of(plaintext), as_int(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx, body + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagSize),
                          body + plaintext.size()) != 1) {
    crypto_abort("AES-256-GCM seal");
  }
  return out;
}

std::optional<std::string> aes256gcm_key::open(std::string_view sealed,
                                               std::string_view aad) const {
  if (sealed.size() < kNonceSize + kTagSize) return std::nullopt;
  const auto* nonce = bytes_of(sealed);
  const std::size_t body_size = sealed.size() - kNonceSize - kTagSize;
  const unsigned char* body = nonce + kNonceSize;
  // The tag is const in spirit; OpenSSL's ctrl signature takes void*.
  unsigned char tag[kTagSize];
  std::copy(body + body_size, body + body_size + kTagSize, tag);

  std::string out(body_size, '\0');
  auto* plain = reinterpret_cast<unsigned char*>(out.data());
  EVP_CIPHER_CTX* ctx = gcm_context(false, key_);
  // The expected tag goes in with the nonce: one call into the provider instead of an init and a
  // ctrl, each of which builds and searches a parameter list (start-up opens every secret).
  const OSSL_PARAM with_tag[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, kTagSize),
      OSSL_PARAM_construct_end(),
  };
  int len = 0;
  if (EVP_DecryptInit_ex2(ctx, nullptr, nullptr, nonce, with_tag) != 1 ||
      (!aad.empty() &&
       EVP_DecryptUpdate(ctx, nullptr, &len, bytes_of(aad), as_int(aad.size())) != 1) ||
      EVP_DecryptUpdate(ctx, plain, &len, body, as_int(body_size)) != 1) {
    return std::nullopt;
  }
  if (EVP_DecryptFinal_ex(ctx, plain + len, &len) != 1) {
    OPENSSL_cleanse(out.data(), out.size());  // never hand back unauthenticated plaintext
    return std::nullopt;
  }
  return out;
}

// ---- Ed25519

namespace {

std::shared_ptr<evp_pkey_st> owned(EVP_PKEY* key) {
  return std::shared_ptr<evp_pkey_st>(key, [](EVP_PKEY* k) { EVP_PKEY_free(k); });
}

}  // namespace

ed25519_key ed25519_key::generate() {
  std::array<std::uint8_t, kSeedSize> seed{};
  random_bytes(seed);
  auto key = from_seed(std::string_view(reinterpret_cast<const char*>(seed.data()), seed.size()));
  OPENSSL_cleanse(seed.data(), seed.size());
  if (!key) crypto_abort("Ed25519 key from seed");
  return std::move(*key);
}

std::optional<ed25519_key> ed25519_key::from_seed(std::string_view seed) {
  if (seed.size() != kSeedSize) return std::nullopt;
  EVP_PKEY* key =
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, bytes_of(seed), seed.size());
  if (key == nullptr) return std::nullopt;
  return ed25519_key(owned(key), true);
}

std::optional<ed25519_key> ed25519_key::from_public(std::string_view public_key) {
  if (public_key.size() != kPublicKeySize) return std::nullopt;
  EVP_PKEY* key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes_of(public_key),
                                              public_key.size());
  if (key == nullptr) return std::nullopt;
  return ed25519_key(owned(key), false);
}

std::string ed25519_key::seed() const {
  if (!has_private_) return {};
  std::string out(kSeedSize, '\0');
  std::size_t len = out.size();
  if (EVP_PKEY_get_raw_private_key(key_.get(), reinterpret_cast<unsigned char*>(out.data()),
                                   &len) != 1 ||
      len != kSeedSize) {
    crypto_abort("EVP_PKEY_get_raw_private_key");
  }
  return out;
}

std::string ed25519_key::public_key() const {
  std::string out(kPublicKeySize, '\0');
  std::size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(key_.get(), reinterpret_cast<unsigned char*>(out.data()), &len) !=
          1 ||
      len != kPublicKeySize) {
    crypto_abort("EVP_PKEY_get_raw_public_key");
  }
  return out;
}

std::string ed25519_key::sign(std::string_view message) const {
  if (!has_private_) crypto_abort("Ed25519 sign with a public key");
  // Ed25519 hashes the message itself (no digest to name) and takes it in one call.
  thread_local const std::unique_ptr<EVP_MD_CTX, md_ctx_deleter> ctx(EVP_MD_CTX_new());
  std::string out(kSignatureSize, '\0');
  std::size_t len = out.size();
  // Ed25519 signs once per initialisation: the context is reset and set up again each time.
  if (!ctx || EVP_MD_CTX_reset(ctx.get()) != 1 ||
      EVP_DigestSignInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, key_.get(), nullptr) !=
          1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                     bytes_of(message), message.size()) != 1 ||
      len != kSignatureSize) {
    crypto_abort("Ed25519 sign");
  }
  return out;
}

bool ed25519_key::verify(std::string_view message, std::string_view signature) const noexcept {
  if (signature.size() != kSignatureSize) return false;
  thread_local const std::unique_ptr<EVP_MD_CTX, md_ctx_deleter> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_MD_CTX_reset(ctx.get()) != 1 ||
      EVP_DigestVerifyInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, key_.get(), nullptr) !=
          1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), bytes_of(signature), signature.size(), bytes_of(message),
                          message.size()) == 1;
}

}  // namespace hookd
