// Precompiled for every test executable of tests/http (tests/CMakeLists.txt): tests/support/pch/
// storage.hpp's headers and Asio, Beast and OpenSSL, which tests/support/test_server.hpp and the
// service's headers include; about nine tenths of what an http test file parses. Only headers from
// outside the project belong here (see core.hpp).

#include "support/pch/storage.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
