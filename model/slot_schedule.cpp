#include "model/slot_schedule.hpp"

#include "model/error.hpp"

namespace banyan {

SlotSchedule::SlotSchedule(int positions, int slots)
    : slot_of_(std::size_t(positions), -1), slot_position_(std::size_t(slots), -1), in_use_(std::size_t(slots), false) {
  if (positions < 1 || slots < 1) throw Error("SlotSchedule: needs a unit and a slot");
}

bool SlotSchedule::in_window(int position, int w) const {
  const int k = int(slot_of_.size());
  return (position - w + k) % k < slots();
}

int SlotSchedule::free_slot(int w, bool any) const {
  int taken = -1;
  for (int s = 0; s < slots(); ++s) {
    if (in_use_[std::size_t(s)]) continue;
    const int held = slot_position_[std::size_t(s)];
    if (held < 0 || !in_window(held, w)) return s;
    if (any) taken = s;
  }
  return taken;
}

void SlotSchedule::copy(int position, int slot, std::vector<Copy>& copies) {
  if (const int held = slot_position_[std::size_t(slot)]; held >= 0) slot_of_[std::size_t(held)] = -1;
  slot_position_[std::size_t(slot)] = position;
  slot_of_[std::size_t(position)] = slot;
  copies.push_back({position, slot});
}

void SlotSchedule::fill_window(int w, std::vector<Copy>& copies) {
  const int k = int(slot_of_.size());
  for (int j = 0; j < slots() && j < k; ++j) {
    const int position = (w + j) % k;
    if (slot_of_[std::size_t(position)] >= 0) continue;
    const int s = free_slot(w, false);
    if (s < 0) return;
    copy(position, s, copies);
  }
}

std::optional<int> SlotSchedule::acquire(int position, std::vector<Copy>& copies) {
  int s = slot_of_.at(std::size_t(position));
  if (s < 0) {
    s = free_slot(position, true);
    if (s < 0) return std::nullopt;
    copy(position, s, copies);
  }
  in_use_[std::size_t(s)] = true;
  fill_window(position, copies);
  return s;
}

void SlotSchedule::release(int position, std::vector<Copy>& copies) {
  const int s = slot_of_.at(std::size_t(position));
  if (s < 0 || !in_use_[std::size_t(s)]) return;
  in_use_[std::size_t(s)] = false;
  fill_window((position + 1) % int(slot_of_.size()), copies);
}

}  // namespace banyan
