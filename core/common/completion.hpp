#pragma once
// completion<T>: how hookd's single-writer components (the catalog, the delivery log) hand back
// the outcome of a write; and wait_for, the one blocking way to turn a completion into a value.

#include "core/common/error.hpp"

#include <functional>
#include <future>
#include <utility>

namespace hookd {

// Called exactly once with the outcome of an asynchronous operation.
template <class T>
using completion = std::function<void(result<T>)>;

// Calls `start` with a completion<T>, blocks the calling thread until that completion has run,
// and returns the result it was given:
//
//   auto org = wait_for<std::shared_ptr<const organization>>(
//       [&](auto done) { cat.create_organization(std::move(in), std::move(done)); });
//
// Never call it on the thread that runs the completion (a writer thread, an I/O thread): it would
// wait for itself. It is meant for a test thread, set-up and start-up.
template <class T, class Start>
result<T> wait_for(Start start) {
  std::promise<result<T>> done;
  auto future = done.get_future();
  start(completion<T>([&done](result<T> r) { done.set_value(std::move(r)); }));
  return future.get();
}

}  // namespace hookd
