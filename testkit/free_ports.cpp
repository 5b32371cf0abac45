#include "testkit/free_ports.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <stdexcept>

namespace banyan::testkit {
namespace {

// The lowest port the kernel hands out to unbound sockets (32768 unless configured otherwise).
int ephemeral_low() {
  int low = 32768, high = 0;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> low >> high;
  return low;
}

bool binds_on_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return bound;
}

}  // namespace

std::vector<int> free_ports(int count) {
  const int low = 10000, high = std::max(low + 1000, ephemeral_low()) - 1;
  std::mt19937 random(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
  std::uniform_int_distribution<int> draw(low, high);
  std::vector<int> ports;
  for (int tries = 0; int(ports.size()) < count; ++tries) {
    if (tries == 10000) throw std::runtime_error("free_ports: no free loopback port below the ephemeral range");
    const int port = draw(random);
    if (std::find(ports.begin(), ports.end(), port) == ports.end() && binds_on_loopback(port)) ports.push_back(port);
  }
  return ports;
}

}  // namespace banyan::testkit
