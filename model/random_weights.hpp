#pragma once
// A WeightSource of random weights for a given shape, made tensor by tensor when read (so a
// 1.1B-parameter model never exists twice in memory). Deterministic: the same seed and name
// give the same tensor. Scaled so activations stay O(1): unit-variance embeddings, linear
// layers with variance 1/fan_in, norms near 1. Benchmarks and tests use it.
#include "model/weight_source.hpp"

namespace banyan {

class RandomWeights : public WeightSource {
 public:
  RandomWeights(LlamaConfig config, std::uint64_t seed);

  const LlamaConfig& config() const override { return config_; }
  const std::filesystem::path& origin() const override { return origin_; }
  bool contains(const std::string& name) const override;
  std::vector<std::string> tensor_names() const override;
  HostTensor read(const std::string& name) const override;

 private:
  std::vector<std::int64_t> shape_of(const std::string& name) const;

  LlamaConfig config_;
  std::uint64_t seed_;
  std::filesystem::path origin_;
};

// The shapes the benchmarks use.
LlamaConfig llama_68m_shape();
LlamaConfig llama_160m_shape();
LlamaConfig tinyllama_1b_shape();

}  // namespace banyan
