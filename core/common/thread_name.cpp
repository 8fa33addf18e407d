#include "core/common/thread_name.hpp"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <cstddef>

namespace hookd {

void set_thread_name(std::string_view name) noexcept {
  // pthread_setname_np refuses (ERANGE) a name of more than 15 bytes rather than cutting it.
  std::array<char, 16> text{};
  const std::size_t n = std::min(name.size(), text.size() - 1);
  std::copy_n(name.data(), n, text.data());
  (void)pthread_setname_np(pthread_self(), text.data());
}

}  // namespace hookd
