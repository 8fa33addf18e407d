#pragma once
// A throwaway PKI for the TLS tests, made at test time by the `openssl` command (Debian's openssl
// package): a CA, and a server certificate it signs for 127.0.0.1, ::1 and localhost (P-256
// keys, valid two days). Nothing is checked in, so nothing expires in the repository.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace hookd::test {

struct test_pki {
  std::filesystem::path ca_cert;      // PEM, what a client trusts (curl --cacert)
  std::filesystem::path server_cert;  // PEM, the server's certificate (hookd --tls-cert)
  std::filesystem::path server_key;   // PEM, unencrypted (hookd --tls-key)
};

// Creates the files under `dir` named after `name` ("a" -> a-ca.pem, a-cert.pem, a-key.pem); the
// CA's subject names `name` too, so that a test can tell two of them apart. Fails the test (and
// returns paths that do not exist) when openssl does.
inline test_pki make_test_pki(const std::filesystem::path& dir, const std::string& name) {
  const auto at = [&](const std::string& file) {
    return dir / (name + "-" + file);
  };
  test_pki out{at("ca.pem"), at("cert.pem"), at("key.pem")};
  std::ofstream(at("ext.cnf")) << "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
                                  "basicConstraints=critical,CA:FALSE\n"
                                  "keyUsage=critical,digitalSignature\n"
                                  "extendedKeyUsage=serverAuth\n";
  const std::string quiet = " >" + at("openssl.log").string() + " 2>&1";
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
  const std::string commands[] = {
      "openssl req -x509" + ec + " -keyout " + at("ca-key.pem").string() + " -out " +
          out.ca_cert.string() + " -days 2 -subj '/CN=hookd test CA " + name +
          "' -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign",
      "openssl req" + ec + " -keyout " + out.server_key.string() + " -out " +
          at("csr.pem").string() + " -subj '/CN=localhost'",
      "openssl x509 -req -in " + at("csr.pem").string() + " -CA " + out.ca_cert.string() +
          " -CAkey " + at("ca-key.pem").string() + " -CAcreateserial -out " +
          out.server_cert.string() + " -days 2 -extfile " + at("ext.cnf").string(),
  };
  for (const auto& command : commands) {
    if (std::system((command + quiet).c_str()) != 0) {
      std::ifstream log(at("openssl.log"));
      ADD_FAILURE() << "failed: " << command << "\n" << log.rdbuf();
      break;
    }
  }
  return out;
}

}  // namespace hookd::test
