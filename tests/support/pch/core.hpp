// Precompiled for every test executable of tests/core (tests/CMakeLists.txt): the third-party and
// standard headers the core tests share, parsed once per build instead of once per test file. Only
// headers from outside the project belong here, so that editing a project header rebuilds the tests
// that include it and not this header. Each test file still includes what it uses.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>
