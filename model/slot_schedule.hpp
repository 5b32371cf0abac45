#pragma once
// Which streamed unit goes into which slot, for a backend that copies offloaded units into a
// few slots of its own memory (a GPU, gpu/weight_stream.hpp). Nothing is copied here: acquire
// and release say what to copy where, and the backend queues it. Units are known by their
// position among the streamed units; passes use them in order, wrapping round to the next pass.
// The window at position w: the slot count of positions from w on.
//   acquire(p): p's slot — the one still holding it, else a free one (empty, or holding a unit
//     outside the window, or for an out-of-order p any not in use) — then the window's units
//     that no slot holds, into free slots that hold nothing in the window.
//   release(p): the slot is free again; the window at p + 1 fills the same way.
// A unit stays in its slot after release until another takes the slot, so with as many slots
// as units nothing is copied after the first pass.
#include <optional>
#include <vector>

namespace banyan {

class SlotSchedule {
 public:
  struct Copy {
    int position, slot;
    bool operator==(const Copy&) const = default;
  };

  SlotSchedule(int positions, int slots);

  int slots() const { return int(slot_position_.size()); }
  // Marks `position` in use and returns its slot, appending the copies to queue, in order (its
  // own first when no slot holds it). nullopt, changing nothing, when every slot is in use.
  std::optional<int> acquire(int position, std::vector<Copy>& copies);
  // `position` is done with (nothing happens unless it was acquired); appends the copies its
  // freed slot makes possible.
  void release(int position, std::vector<Copy>& copies);

 private:
  bool in_window(int position, int w) const;
  int free_slot(int w, bool any) const;
  void copy(int position, int slot, std::vector<Copy>& copies);
  void fill_window(int w, std::vector<Copy>& copies);

  std::vector<int> slot_of_;        // per position: its slot, or -1
  std::vector<int> slot_position_;  // per slot: the position it holds (copied or being copied), or -1
  std::vector<bool> in_use_;        // per slot
};

}  // namespace banyan
