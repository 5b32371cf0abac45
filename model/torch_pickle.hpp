#pragma once
// Just enough of Python's pickle virtual machine to read the state dict that torch.save writes:
// dicts of tensors rebuilt by torch._utils._rebuild_tensor_v2 from persistent storage ids.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace banyan {

struct PickledTensor {
  std::string name;          // the state-dict key
  std::string storage_type;  // e.g. "FloatStorage", "HalfStorage", "BFloat16Storage"
  std::string storage_key;   // the member data/<key> of the archive
  std::int64_t storage_offset = 0;  // in elements
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides;
};

// Parses a torch.save pickle (data.pkl) and returns its tensors, in file order. Nested dicts
// (e.g. {"model": state_dict}) are flattened with '.'-joined keys. Throws Error with `where`.
std::vector<PickledTensor> read_torch_pickle(std::span<const std::byte> pickle, const std::string& where);

}  // namespace banyan
