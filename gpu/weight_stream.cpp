#include "gpu/weight_stream.hpp"

#include <cstring>

#include "gpu/cuda_check.hpp"
#include "model/error.hpp"

namespace banyan::gpu {

namespace {

constexpr std::size_t kAlign = 256;  // each weight's offset in a unit: cudaMalloc's alignment

std::size_t aligned(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

CudaWeight& cuda_weight(DeviceWeight* w) { return *static_cast<CudaWeight*>(w); }

}  // namespace

CudaWeightPaging::Event CudaWeightPaging::event(bool timing) {
  cudaEvent_t e = nullptr;
  check(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming), "creating an event");
  return Event(e);
}

void CudaWeightPaging::HostUnit::point_at(const std::byte* base) {
  for (auto& [w, offset] : weights) w->view.data = base + offset;
}

CudaWeightPaging::HostUnit CudaWeightPaging::to_host(const PagedUnit& u) {
  HostUnit h;
  h.file_bytes = u.bytes();
  for (DeviceWeight* w : u.weights) {
    h.weights.emplace_back(&cuda_weight(w), h.bytes);
    h.bytes += aligned(cuda_weight(w).host.bytes.size());
  }
  void* host = nullptr;
  check(cudaHostAlloc(&host, h.bytes, cudaHostAllocMapped | cudaHostAllocPortable),
        "allocating pinned host memory for offloaded weights");
  h.host.reset(static_cast<std::byte*>(host));
  void* mapped = nullptr;
  check(cudaHostGetDevicePointer(&mapped, host, 0), "mapping pinned host memory");
  h.mapped = static_cast<const std::byte*>(mapped);
  for (auto& [w, offset] : h.weights) {
    std::memcpy(h.host.get() + offset, w->host.bytes.data(), w->host.bytes.size());
    w->view = view_at(w->host, nullptr);
    w->host = {};  // the file's pages are no longer needed
  }
  h.point_at(h.mapped);
  return h;
}

CudaWeightPaging::CudaWeightPaging(std::vector<PagedUnit> units, const OffloadPlan& plan, Enter enter,
                                   cudaStream_t compute)
    : enter_(std::move(enter)), compute_(compute), position_(units.size(), -1) {
  if (plan.resident.size() != units.size()) throw Error("cuda: the offload plan is for other units");
  auto lock = enter_();
  std::size_t slot_bytes = 0;
  for (std::size_t i = 0; i < units.size(); ++i) {
    const PagedUnit& u = units[i];
    stats_.disk_bytes += u.bytes();
    if (plan.resident[i]) {
      for (DeviceWeight* w : u.weights) {
        CudaWeight& cw = cuda_weight(w);
        upload_resident(cw.host, cw);
        cw.host = {};
      }
      continue;
    }
    HostUnit h = to_host(u);
    stats_.host_bytes += h.bytes;
    if (u.on_demand) {
      on_demand_.push_back(std::move(h));
      continue;
    }
    slot_bytes = std::max(slot_bytes, h.bytes);
    position_[i] = int(streamed_units_.size());
    streamed_units_.push_back(std::move(h));
  }
  stats_.resident_bytes = plan.resident_bytes;
  if (streamed_units_.empty()) return;
  const int count = int(streamed_units_.size()), slots = std::min(std::max(plan.in_flight, 2), count);
  schedule_.emplace(count, slots);
  slots_.resize(std::size_t(slots));
  for (Slot& slot : slots_) {
    slot.memory = DeviceMemory(slot_bytes);
    slot.arrived = event(false);
    slot.freed = event(false);
  }
  stats_.reserve_bytes = slots_.size() * slot_bytes;
  // Last: nothing after it throws, so the destructor always runs once it exists.
  check(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking), "creating a copy stream");
}

CudaWeightPaging::~CudaWeightPaging() {
  auto lock = enter_();
  // Queued copies and kernels may still read the slots and the pinned blocks.
  cudaStreamSynchronize(compute_);
  if (copy_) {
    cudaStreamSynchronize(copy_);
    cudaStreamDestroy(copy_);
  }
}

void CudaWeightPaging::queue(const std::vector<SlotSchedule::Copy>& copies) {
  if (copies.empty()) return;
  auto lock = enter_();
  for (const auto& [position, s] : copies) {
    const Slot& slot = slots_[std::size_t(s)];
    const HostUnit& unit = streamed_units_[std::size_t(position)];
    check(cudaStreamWaitEvent(copy_, slot.freed.get(), 0), "waiting for a streaming slot");
    check(cudaMemcpyAsync(slot.memory.data(), unit.host.get(), unit.bytes, cudaMemcpyHostToDevice, copy_),
          "streaming offloaded weights");
    check(cudaEventRecord(slot.arrived.get(), copy_), "recording a copy's event");
    stats_.streamed_bytes += unit.file_bytes;
    ++stats_.units_streamed;
  }
}

void CudaWeightPaging::acquire(int unit) {
  const int position = position_.at(std::size_t(unit));
  if (position < 0) return;
  std::unique_lock lock(m_);
  std::vector<SlotSchedule::Copy> copies;
  std::optional<int> s;
  slot_released_.wait(lock, [&] { return (s = schedule_->acquire(position, copies)).has_value(); });
  queue(copies);  // this unit's own copy, if any, comes first
  const Slot& slot = slots_[std::size_t(*s)];
  HostUnit& u = streamed_units_[std::size_t(position)];
  u.acquired_slot = *s;
  u.point_at(slot.memory.as<std::byte>());
  StallTiming t;
  if (spare_timing_.empty()) {
    t = {event(true), event(true)};
  } else {
    t = std::move(spare_timing_.front());
    spare_timing_.pop_front();
  }
  {
    auto device = enter_();
    check(cudaEventRecord(t.before.get(), compute_), "recording an event");
    check(cudaStreamWaitEvent(compute_, slot.arrived.get(), 0), "waiting for streamed weights");
    check(cudaEventRecord(t.after.get(), compute_), "recording an event");
  }
  timing_.push_back(std::move(t));
  collect_stalls();
}

void CudaWeightPaging::release(int unit) {
  const int position = position_.at(std::size_t(unit));
  if (position < 0) return;
  std::lock_guard lock(m_);
  HostUnit& u = streamed_units_[std::size_t(position)];
  if (u.acquired_slot < 0) return;
  {
    auto device = enter_();  // before any copy into the slot is queued, which waits for this
    check(cudaEventRecord(slots_[std::size_t(u.acquired_slot)].freed.get(), compute_), "recording an event");
  }
  u.acquired_slot = -1;
  u.point_at(u.mapped);  // the slot may take another unit before a kernel reads this one again
  std::vector<SlotSchedule::Copy> copies;
  schedule_->release(position, copies);
  queue(copies);
  slot_released_.notify_all();
}

void CudaWeightPaging::collect_stalls() const {
  auto device = enter_();
  while (!timing_.empty()) {
    StallTiming& t = timing_.front();
    const cudaError_t done = cudaEventQuery(t.after.get());
    if (done == cudaErrorNotReady) {
      (void)cudaGetLastError();  // not an error: keep it from a later launch check
      return;
    }
    check(done, "timing a wait for streamed weights");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, t.before.get(), t.after.get()), "timing a wait for streamed weights");
    stats_.stall_seconds += double(ms) / 1e3;
    spare_timing_.push_back(std::move(timing_.front()));
    timing_.pop_front();
  }
}

OffloadStats CudaWeightPaging::stats() const {
  std::lock_guard lock(m_);
  collect_stalls();
  return stats_;
}

}  // namespace banyan::gpu
