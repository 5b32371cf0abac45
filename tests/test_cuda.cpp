// The CUDA build links and runs: device discovery and the library versions. Reports
// "skipped: no CUDA device" on machines without one (CTest shows it as skipped).
#define BOOST_TEST_MODULE test_cuda
#include <boost/test/unit_test.hpp>

#include "gpu/cuda_backend.hpp"
#include "model/error.hpp"
#include "tests/support/test_support.hpp"

using namespace banyan;

namespace {
struct RequireDevice {
  RequireDevice() {
    std::string why;
    if (gpu::cuda_device_count(&why) == 0) test::skip_program("no CUDA device (" + why + ")");
  }
};
}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(RequireDevice);

BOOST_AUTO_TEST_CASE(libraries_report_versions) {
  const auto v = gpu::cuda_library_versions();
  BOOST_TEST_MESSAGE(v);
  BOOST_TEST(v.find("cuBLAS") != std::string::npos);
  BOOST_TEST(v.find("NCCL 2") != std::string::npos);
  BOOST_TEST(gpu::cuda_device_count() > 0);
}
