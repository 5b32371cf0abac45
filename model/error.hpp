#pragma once
// The error every loader and validator throws: one message that already names its context
// (file, tensor, key), so it can go to the user unchanged.
#include <stdexcept>
#include <string>

namespace banyan {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace banyan
