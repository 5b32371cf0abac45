#include "actors/transport/same_host.hpp"

#include <arpa/inet.h>
#include <fstream>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

namespace banyan::transport {

std::string memory_identity() {
  std::string boot;
  std::getline(std::ifstream("/proc/sys/kernel/random/boot_id"), boot);
  if (boot.empty()) return {};
  std::string id = boot;
  for (const char* ns : {"/proc/self/ns/ipc", "/proc/self/ns/pid", "/proc/self/ns/net"}) {
    char target[128] = {};
    if (::readlink(ns, target, sizeof target - 1) <= 0) return {};
    id += std::string("|") + target;
  }
  return id;
}

bool is_local_address(const std::string& host) {
  in_addr wanted{};
  if (::inet_pton(AF_INET, host.c_str(), &wanted) != 1) return false;
  if ((ntohl(wanted.s_addr) >> 24) == 127) return true;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return false;
  bool found = false;
  for (ifaddrs* i = list; i && !found; i = i->ifa_next)
    found = i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
            reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr == wanted.s_addr;
  ::freeifaddrs(list);
  return found;
}

}  // namespace banyan::transport
