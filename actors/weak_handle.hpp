#pragma once
// Detached actors are held weakly by those that use them without owning them: a strong handle
// keeps a detached actor's thread, and the actor system's shutdown, waiting. A strong handle for
// one call, or an Error saying `gone`.
#include <caf/all.hpp>
#include <string>

#include "model/error.hpp"

namespace banyan::actors {

template <class Handle>
Handle lock_weak(const caf::weak_actor_ptr& weak, const std::string& gone) {
  auto handle = caf::actor_cast<Handle>(weak.lock());
  if (!handle) throw Error(gone);
  return handle;
}

}  // namespace banyan::actors
