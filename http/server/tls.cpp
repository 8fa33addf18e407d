#include "http/server/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <ctime>
#include <fstream>

namespace hookd::http {
namespace {

namespace ssl = boost::asio::ssl;

// Mozilla's "intermediate" TLS 1.2 suites (TLS 1.3 has its own, all fine by default).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// The last OpenSSL error as one line ("no start line", "key values mismatch"); clears the queue.
std::string openssl_reason(const std::string& fallback) {
  unsigned long last = 0;
  while (const unsigned long e = ERR_get_error()) last = e;
  if (last == 0) return fallback;
  const char* reason = ERR_reason_error_string(last);
  return reason != nullptr ? reason : fallback;
}

problem tls_problem(const std::string& what) {
  return make_problem(error_kind::validation, what);
}

// Whether `path` can be opened for reading, so that a missing file is named as such rather than
// by OpenSSL's "system lib".
bool readable(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return static_cast<bool>(in);
}

int select_http11(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
                  unsigned in_len, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_len, kAlpnHttp11, sizeof kAlpnHttp11, in, in_len) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no ALPN then: the client may still speak HTTP/1.1
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

std::string name_of(const X509_NAME* name) {
  if (name == nullptr) return {};
  std::array<char, 512> text{};
  X509_NAME_oneline(name, text.data(), static_cast<int>(text.size()));
  return text.data();
}

}  // namespace

result<tls_context> make_tls_context(const std::string& cert_file, const std::string& key_file) {
  ERR_clear_error();
  for (const auto& [flag, path] : {std::pair{"--tls-cert", &cert_file}, {"--tls-key", &key_file}}) {
    if (!readable(*path)) {
      return tls_problem(std::string(flag) + " " + *path + ": cannot read the file");
    }
  }
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // An idle keep-alive connection gives its read and write buffers back (some 34 KB each).
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
    return tls_problem("cannot set the TLS 1.2 ciphers: " + openssl_reason("unknown error"));
  }
  SSL_CTX_set_alpn_select_cb(native, select_http11, nullptr);
  // OpenSSL would ask for an encrypted key's passphrase on the terminal: refuse it instead.
  context->set_password_callback(
      [](std::size_t, ssl::context::password_purpose) { return std::string(); });

  boost::system::error_code ec;
  context->use_certificate_chain_file(cert_file, ec);
  if (ec) {
    return tls_problem("--tls-cert " + cert_file + ": not a PEM certificate chain (" +
                       openssl_reason(ec.message()) + ")");
  }
  context->use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) {
    const auto reason = openssl_reason(ec.message());
    if (reason.find("mismatch") != std::string::npos) {
      return tls_problem("--tls-key " + key_file + " does not belong to the certificate in " +
                         cert_file + " (" + reason + ")");
    }
    return tls_problem("--tls-key " + key_file + ": not an unencrypted PEM private key (" + reason +
                       ")");
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    return tls_problem("--tls-key " + key_file + " does not belong to the certificate in " +
                       cert_file + " (" + openssl_reason("key values mismatch") + ")");
  }
  return context;
}

boost::json::object describe_certificate(const tls_context& context) {
  boost::json::object out;
  X509* cert = context ? SSL_CTX_get0_certificate(context->native_handle()) : nullptr;
  if (cert == nullptr) return out;
  out["subject"] = name_of(X509_get_subject_name(cert));
  out["issuer"] = name_of(X509_get_issuer_name(cert));
  std::tm expiry{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &expiry) == 1) {
    std::array<char, 32> text{};
    std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &expiry);
    out["notAfter"] = text.data();
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned md_len = 0;
  if (X509_digest(cert, EVP_sha256(), md.data(), &md_len) == 1) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(md_len * 2);
    for (unsigned i = 0; i < md_len; ++i) {
      hex += kHex[md[i] >> 4];
      hex += kHex[md[i] & 0xF];
    }
    out["sha256"] = hex;
  }
  return out;
}

}  // namespace hookd::http
