# cmake -DIN=<file> -DOUT=<file.cpp> -DFUNCTION=<qualified::name> -P embed_file.cmake
# Writes a C++ source defining `std::string_view FUNCTION() noexcept` that returns the bytes of IN.
# The bytes become a hex array, so no content of IN can break the generated code.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)"
       "\\1\n" bytes "${bytes}")
string(REGEX MATCH "^(.*)::([^:]+)$" _ "${FUNCTION}")
set(namespace "${CMAKE_MATCH_1}")
set(name "${CMAKE_MATCH_2}")
file(WRITE "${OUT}.tmp" "// Generated from ${IN} by embed_file.cmake; do not edit.
#include <string_view>

namespace ${namespace} {
namespace {
// One extra NUL so that the array is never empty.
constexpr unsigned char kBytes[] = {
${bytes}0x00};
}  // namespace

std::string_view ${name}() noexcept {
  return {reinterpret_cast<const char*>(kBytes), ${size}};
}

}  // namespace ${namespace}
")
# Only touch OUT when the content changed, so an unchanged document does not recompile.
configure_file("${OUT}.tmp" "${OUT}" COPYONLY)
file(REMOVE "${OUT}.tmp")
