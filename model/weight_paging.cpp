#include "model/weight_paging.hpp"

#include <algorithm>
#include <string>

#include "model/error.hpp"

namespace banyan {

namespace {

std::string mib(std::size_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

}  // namespace

std::size_t PagedUnit::bytes() const {
  std::size_t n = 0;
  for (const auto& r : ranges) n += r.size();
  return n;
}

OffloadPlan plan_offload(const std::vector<PagedUnit>& units, std::size_t budget, std::size_t reserve) {
  OffloadPlan p;
  p.resident.assign(units.size(), false);
  std::size_t total = 0;
  for (const auto& u : units)
    if (!u.on_demand) total += u.bytes();
  if (total <= budget) {  // everything fits: nothing streams
    for (std::size_t i = 0; i < units.size(); ++i) p.resident[i] = !units[i].on_demand;
    p.resident_bytes = total;
    return p;
  }
  // The streamed units in flight at once are consecutive ones; the largest ones together bound them.
  std::vector<std::size_t> sizes;
  for (const auto& u : units)
    if (!u.on_demand) sizes.push_back(u.bytes());
  std::sort(sizes.rbegin(), sizes.rend());
  auto largest = [&](int n) {
    std::size_t sum = 0;
    for (int i = 0; i < n && i < int(sizes.size()); ++i) sum += sizes[std::size_t(i)];
    return sum;
  };
  if (reserve > 0) {
    while (p.in_flight < int(sizes.size()) && largest(p.in_flight + 1) <= reserve) ++p.in_flight;
  } else {
    p.in_flight = budget >= 2 * largest(3) ? 3 : 2;  // a third in flight when it costs at most half the budget
  }
  if (p.in_flight < 2 || budget < largest(p.in_flight))
    throw Error("a memory budget of " + mib(budget) + (reserve > 0 ? " with an offload reserve of " + mib(reserve) : "") +
                " cannot stream this model: its two largest units (" + mib(largest(2)) +
                " together: decoder layers or the classifier) must fit at once");
  p.reserve_bytes = largest(p.in_flight);
  std::size_t left = budget - p.reserve_bytes;
  for (std::size_t i = 0; i < units.size(); ++i)
    if (!units[i].on_demand && units[i].bytes() <= left) {
      p.resident[i] = true;
      left -= units[i].bytes();
      p.resident_bytes += units[i].bytes();
    }
  return p;
}

}  // namespace banyan
