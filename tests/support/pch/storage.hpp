// Precompiled for every test executable of tests/storage (tests/CMakeLists.txt): tests/support/pch/
// core.hpp's headers and libpq's, which tests/support/pg_cluster.hpp includes. RocksDB's stay out:
// the storage headers hide them, and only rocksdb_storage_test.cpp includes them. Only headers from
// outside the project belong here (see core.hpp).

#include "support/pch/core.hpp"

#include <libpq-fe.h>
