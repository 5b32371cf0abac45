#include "gpu/nccl_collective.hpp"

#include <mutex>
#include <nccl.h>
#include <set>
#include <string>

#include "gpu/cuda_backend.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/device_memory.hpp"
#include "model/error.hpp"

namespace banyan::gpu {

namespace {

void check_nccl(ncclResult_t status, const std::string& what) {
  if (status != ncclSuccess) throw Error("nccl: " + what + ": " + ncclGetErrorString(status));
}

// A group's communicators, destroyed together once no rank holds them (ncclCommDestroy waits
// for the sums still queued).
struct Communicators {
  std::vector<ncclComm_t> comms;
  ~Communicators() {
    for (ncclComm_t c : comms)
      if (c) ncclCommDestroy(c);
  }
};

class NcclRank final : public Collective {
 public:
  NcclRank(std::shared_ptr<Communicators> group, int rank, Backend& backend)
      : group_(std::move(group)), comm_(group_->comms[std::size_t(rank)]), backend_(backend), queue_(cuda_queue(backend)) {}

  ~NcclRank() override {
    for (const Timing& t : pending_) destroy(t);
    for (const Timing& t : idle_) destroy(t);
  }

  void all_reduce_tensor(Backend& backend, Tensor values) override {
    if (&backend != &backend_) throw Error("nccl: a shard summed a matrix of another backend than its own");
    auto lock = queue_.enter();
    reduce(values.data, std::size_t(values.rows * values.cols));
  }

  // Values in host memory (the interface's; the model sums on the device): through the device.
  void all_reduce_sum(std::span<float> values) override {
    auto lock = queue_.enter();
    const std::size_t bytes = values.size() * sizeof(float);
    if (staging_.bytes() < bytes) {
      check(cudaStreamSynchronize(queue_.stream), "nccl: growing the staging memory");
      staging_ = DeviceMemory();
      staging_ = DeviceMemory(bytes);
    }
    check(cudaMemcpyAsync(staging_.data(), values.data(), bytes, cudaMemcpyHostToDevice, queue_.stream), "nccl: staging");
    reduce(staging_.data(), values.size());
    check(cudaMemcpyAsync(values.data(), staging_.data(), bytes, cudaMemcpyDeviceToHost, queue_.stream), "nccl: staging");
    check(cudaStreamSynchronize(queue_.stream), "nccl: all-reduce");
  }

  // `seconds`: the stream's time inside the sums (the other GPUs' waits included), from events
  // around each; the sums still queued are waited for.
  CollectiveStats stats() const override {
    auto lock = queue_.enter();
    for (const Timing& t : pending_) check(cudaEventSynchronize(t.end), "nccl: timing");
    harvest();
    return stats_;
  }

 private:
  struct Timing {
    cudaEvent_t start, end;
  };

  static void destroy(const Timing& t) {
    cudaEventDestroy(t.start);
    cudaEventDestroy(t.end);
  }

  // Under the backend's lock.
  void reduce(void* data, std::size_t count) {
    harvest();
    Timing t{};
    if (idle_.empty()) {
      check(cudaEventCreate(&t.start), "nccl: creating an event");
      check(cudaEventCreate(&t.end), "nccl: creating an event");
    } else {
      t = idle_.back();
      idle_.pop_back();
    }
    check(cudaEventRecord(t.start, queue_.stream), "nccl: recording an event");
    check_nccl(ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm_, queue_.stream), "all-reduce");
    check(cudaEventRecord(t.end, queue_.stream), "nccl: recording an event");
    pending_.push_back(t);
    ++stats_.calls;
    stats_.bytes += count * sizeof(float);
  }

  // Adds the time of the sums that have finished, in order, and keeps their events for reuse.
  void harvest() const {
    std::size_t done = 0;
    for (; done < pending_.size() && cudaEventQuery(pending_[done].end) == cudaSuccess; ++done) {
      float ms = 0;
      check(cudaEventElapsedTime(&ms, pending_[done].start, pending_[done].end), "nccl: timing");
      stats_.seconds += double(ms) / 1000;
      idle_.push_back(pending_[done]);
    }
    pending_.erase(pending_.begin(), pending_.begin() + long(done));
  }

  std::shared_ptr<Communicators> group_;
  ncclComm_t comm_;
  Backend& backend_;
  CudaQueue queue_;
  DeviceMemory staging_;
  mutable std::vector<Timing> pending_, idle_;  // events around the sums queued, and spare ones
  mutable CollectiveStats stats_;
};

}  // namespace

std::vector<std::shared_ptr<Collective>> nccl_all_reduce(std::span<Backend* const> backends) {
  std::vector<int> devices;
  for (Backend* b : backends) devices.push_back(cuda_queue(*b).device);
  if (std::set<int>(devices.begin(), devices.end()).size() != devices.size())
    throw Error("nccl: tensor shards summing through NCCL need a GPU each; two are on the same one");
  auto group = std::make_shared<Communicators>();
  group->comms.resize(devices.size());
  check_nccl(ncclCommInitAll(group->comms.data(), int(devices.size()), devices.data()),
             "making the communicators of " + std::to_string(devices.size()) + " GPUs");
  std::vector<std::shared_ptr<Collective>> ranks;
  for (std::size_t r = 0; r < backends.size(); ++r) ranks.push_back(std::make_shared<NcclRank>(group, int(r), *backends[r]));
  return ranks;
}

}  // namespace banyan::gpu
