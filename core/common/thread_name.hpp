#pragma once
// Names the calling thread, as `top -H`, `ps -L`, `perf` and /proc/PID/task/TID/comm show it
// (docs/operations.md, "Threads"). Linux keeps 15 bytes of a thread's name; a longer name is cut
// there. Best effort: a platform without thread names leaves the thread as it was.

#include <string_view>

namespace hookd {

void set_thread_name(std::string_view name) noexcept;

}  // namespace hookd
