#pragma once
// pytorch_model.bin: the zip archive torch.save writes (<dir>/data.pkl + <dir>/data/<key>).
#include <filesystem>

#include "model/tensor_table.hpp"

namespace banyan {

void add_torch_file(TensorTable& table, const std::filesystem::path& file);

}  // namespace banyan
