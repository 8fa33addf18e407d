#pragma once
// UTF-8 checks shared by whatever puts text from outside into JSON: Boost.JSON writes a string's
// bytes as they are, so text that is not valid UTF-8 would make the document invalid JSON. Pure;
// any thread.

#include <cstddef>
#include <string>
#include <string_view>

namespace hookd {

// Length of the valid UTF-8 sequence starting at s[i] (i < s.size()), or 0 when the bytes there
// are not one (overlong forms, surrogates and code points above U+10FFFF included).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept;

// `text` with every byte that is not part of valid UTF-8 replaced by U+FFFD; valid text comes
// back unchanged.
std::string valid_utf8(std::string_view text);

}  // namespace hookd
