#include "scheduler/request.hpp"

#include <numeric>

namespace banyan {

std::string_view state_name(RequestState s) {
  switch (s) {
    case RequestState::queued: return "queued";
    case RequestState::prefilling: return "prefilling";
    case RequestState::decoding: return "decoding";
    case RequestState::finished: return "finished";
    case RequestState::failed: return "failed";
    case RequestState::cancelled: return "cancelled";
  }
  return "?";
}

std::string_view finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::none: return "none";
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::cancelled: return "cancelled";
    case FinishReason::error: return "error";
  }
  return "?";
}

double RequestStats::mean_accepted() const {
  if (accepted_per_step.empty()) return 0;
  return double(std::accumulate(accepted_per_step.begin(), accepted_per_step.end(), 0)) / double(accepted_per_step.size());
}

}  // namespace banyan
