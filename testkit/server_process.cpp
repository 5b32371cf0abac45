#include "testkit/server_process.hpp"

namespace banyan::testkit {

namespace {

std::vector<std::string> serve_argv(const std::filesystem::path& banyan, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {banyan.string(), "serve", "--port", "0"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

}  // namespace

ServerProcess::ServerProcess(const std::filesystem::path& banyan, const std::vector<std::string>& args,
                             std::chrono::seconds timeout)
    : ChildProcess(serve_argv(banyan, args)) {
  port_ = std::stoi(wait_for_output(std::regex("listening on http://[^:]+:([0-9]+)"), timeout)[1]);
}

}  // namespace banyan::testkit
