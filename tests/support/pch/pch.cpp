// The one source of each <folder>_test_pch target (tests/CMakeLists.txt): CMake makes a target's
// precompiled header only for a target with a source of its own, and the test executables reuse it.
