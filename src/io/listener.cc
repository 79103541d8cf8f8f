// Listener sockets; see listener.h.
#include "io/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace coremq::io {

int open_listener(const std::string& address, uint16_t port, int backlog, bool join_group, uint16_t* bound_port,
                  std::string* error, int* error_number) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(sockaddr_in6);
  } else {
    *error = "not a numeric IPv4 or IPv6 address: '" + address + "'";
    return -1;
  }

  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (error_number != nullptr) *error_number = errno;
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  // See listener.h for why the first listener sets SO_REUSEPORT only once it listens.
  int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  // IPv6 only: an IPv4 listener on the same port (127.0.0.1 beside ::1) is its own socket.
  if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
  bool ok = (!join_group || ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == 0) &&
            ::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) == 0 && ::listen(fd, backlog) == 0 &&
            (join_group || ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == 0);
  if (!ok) {
    int saved = errno;
    if (error_number != nullptr) *error_number = saved;
    std::string shown = family == AF_INET6 ? "[" + address + "]" : address;
    *error = "cannot listen on " + shown + ":" + std::to_string(port) + ": " + std::strerror(saved);
    if (saved == EADDRINUSE) *error += " (is another broker running there?)";
    ::close(fd);
    return -1;
  }
  sockaddr_storage actual{};
  socklen_t actual_length = sizeof(actual);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&actual), &actual_length);
  *bound_port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&actual)->sin_port
                                        : reinterpret_cast<sockaddr_in6*>(&actual)->sin6_port);
  return fd;
}

}  // namespace coremq::io
