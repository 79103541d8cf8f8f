// coremq-relay: the kernel's floor for the fleet benchmarks (scripts/bench-floor). One io_uring
// loop on one thread, set up like a coremq shard (the same Ring and provided-buffer ring,
// multishot accept and receive, one send per connection per turn), that forwards each PUBLISH
// from a publisher's socket to the sockets subscribed to exactly its topic. It speaks only as
// much MQTT as a load generator needs to get going: CONNACK, SUBACK, PINGRESP and, at QoS 1,
// a PUBACK to the publisher; it keeps no session, matches no wildcard, and forwards the packet
// bytes as they arrived. What it spends per message is what a perfect broker still spends in the
// kernel and in one copy into the subscriber's send buffer.
//
// --direct: sockets are accepted as registered (direct) descriptors into a table of
// RLIMIT_NOFILE entries, and receives and sends name them by index (IOSQE_FIXED_FILE): the
// experiment docs/SCALING.md reports (what a fixed file saves per operation, and that each
// ring's table is bounded by RLIMIT_NOFILE on its own, not by the process's descriptors).
//
// Usage: coremq-relay [--port=N] [--cpu=N] [--direct]   (prints "listening on 127.0.0.1:PORT";
// stops on SIGINT/SIGTERM). Loopback only.
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "io/buffer_ring.h"
#include "io/listener.h"
#include "io/ring.h"

namespace {

// A subscriber that does not read is cut off here rather than growing without bound.
constexpr size_t kMaxOutputBytes = 16u << 20;
// A single packet larger than this closes the connection (bench-compare sends up to 1 MiB payloads).
constexpr size_t kMaxPacketBytes = 2u << 20;

enum class Tag : uint64_t { kAccept = 0, kReceive = 1, kSend = 2, kIgnore = 3 };

struct Connection {
  int fd = -1;
  std::string input;    // a packet split across receive buffers, until it is whole
  std::string output;   // gathered this turn
  std::string sending;  // in the kernel
  size_t sent = 0;
  bool send_in_flight = false;
  bool receive_armed = false;
  bool closed = false;
  bool queued_for_send = false;
  int operations = 0;
  std::vector<std::string> topics;  // to unsubscribe on close
};

volatile sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

uint64_t user_data(void* pointer, Tag tag) { return reinterpret_cast<uint64_t>(pointer) | uint64_t(tag); }

class Relay {
 public:
  explicit Relay(bool direct) : direct_(direct) {}

  bool set_up(uint16_t port, std::string* error) {
    if (!ring_.init(4096, error)) return false;
    if (!buffers_.init(ring_, 0, 1024, 2048, error)) return false;
    uint16_t bound = 0;
    listen_fd_ = coremq::io::open_listener("127.0.0.1", port, 4096, false, &bound, error);
    if (listen_fd_ < 0) return false;
    // Accepted sockets inherit TCP_NODELAY from the listener: a direct descriptor has no fd
    // to call setsockopt on.
    int one = 1;
    setsockopt(listen_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (direct_) {
      rlimit limit{};
      getrlimit(RLIMIT_NOFILE, &limit);
      int result = io_uring_register_files_sparse(ring_.raw(), static_cast<unsigned>(limit.rlim_cur));
      if (result < 0) {
        *error = std::string("registering a table of ") + std::to_string(limit.rlim_cur) +
                 " direct descriptors: " + std::strerror(-result);
        return false;
      }
      std::printf("direct descriptors: a table of %llu\n", static_cast<unsigned long long>(limit.rlim_cur));
    }
    std::printf("listening on 127.0.0.1:%u\n", bound);
    std::fflush(stdout);
    arm_accept();
    return true;
  }

  void run() {
    while (stop_requested == 0) {
      __kernel_timespec timeout{.tv_sec = 0, .tv_nsec = 250'000'000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(ring_.raw(), &cqe, 1, &timeout, nullptr);
      unsigned head = 0;
      unsigned seen = 0;
      io_uring_for_each_cqe(ring_.raw(), head, cqe) {
        handle(cqe);
        ++seen;
      }
      io_uring_cq_advance(ring_.raw(), seen);
      end_of_turn();
    }
    std::printf("messages forwarded %llu, connections cut for output over %zu bytes %llu\n",
                static_cast<unsigned long long>(forwarded_), kMaxOutputBytes,
                static_cast<unsigned long long>(cut_for_output_));
  }

 private:
  void arm_accept() {
    io_uring_sqe* sqe = ring_.next_sqe();
    if (direct_) {
      io_uring_prep_multishot_accept_direct(sqe, listen_fd_, nullptr, nullptr, 0);
    } else {
      io_uring_prep_multishot_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
    io_uring_sqe_set_data64(sqe, user_data(&listen_fd_, Tag::kAccept));
  }

  void arm_receive(Connection* connection) {
    io_uring_sqe* sqe = ring_.next_sqe();
    io_uring_prep_recv_multishot(sqe, connection->fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT | (direct_ ? IOSQE_FIXED_FILE : 0);
    sqe->buf_group = buffers_.group_id();
    io_uring_sqe_set_data64(sqe, user_data(connection, Tag::kReceive));
    connection->receive_armed = true;
    ++connection->operations;
  }

  void handle(const io_uring_cqe* cqe) {
    auto tag = static_cast<Tag>(cqe->user_data & 7);
    void* pointer = reinterpret_cast<void*>(cqe->user_data & ~uint64_t{7});
    switch (tag) {
      case Tag::kAccept:
        if (cqe->res >= 0) {
          auto connection = std::make_unique<Connection>();
          connection->fd = cqe->res;
          arm_receive(connection.get());
          Connection* key = connection.get();
          connections_.emplace(key, std::move(connection));
        }
        if ((cqe->flags & IORING_CQE_F_MORE) == 0) arm_accept();
        break;
      case Tag::kReceive:
        on_receive(static_cast<Connection*>(pointer), cqe);
        break;
      case Tag::kSend:
        on_send(static_cast<Connection*>(pointer), cqe->res);
        break;
      case Tag::kIgnore:
        break;
    }
  }

  void on_receive(Connection* connection, const io_uring_cqe* cqe) {
    bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (!more) {
      connection->receive_armed = false;
      --connection->operations;
    }
    if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER) != 0) {
      auto buffer_id = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
      std::string_view bytes(reinterpret_cast<const char*>(buffers_.buffer(buffer_id)), static_cast<size_t>(cqe->res));
      if (!connection->closed) consume(connection, bytes);
      buffers_.recycle(buffer_id);
    } else if (cqe->res == 0 || (cqe->res < 0 && cqe->res != -ENOBUFS)) {
      close(connection);
    }
    // Out of buffers: re-armed at the end of the turn, once buffers went back.
    if (!connection->receive_armed && !connection->closed) rearm_.push_back(connection);
  }

  // Whole packets straight from the receive buffer; a split one is gathered in `input`.
  void consume(Connection* connection, std::string_view bytes) {
    if (!connection->input.empty()) {
      connection->input.append(bytes);
      std::string gathered;
      gathered.swap(connection->input);
      size_t used = consume_packets(connection, gathered);
      if (!connection->closed) connection->input.assign(gathered, used);
      return;
    }
    size_t used = consume_packets(connection, bytes);
    if (!connection->closed && used < bytes.size()) connection->input.assign(bytes.substr(used));
  }

  // Returns the bytes of the whole packets handled.
  size_t consume_packets(Connection* connection, std::string_view bytes) {
    size_t at = 0;
    while (at + 2 <= bytes.size() && !connection->closed) {
      size_t length = 0;
      size_t header = 1;
      int shift = 0;
      bool complete = false;
      while (at + header < bytes.size() && header <= 4) {
        auto byte = static_cast<uint8_t>(bytes[at + header]);
        length |= size_t(byte & 0x7F) << shift;
        shift += 7;
        ++header;
        if ((byte & 0x80) == 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (header > 4) close(connection);
        return at;
      }
      if (length > kMaxPacketBytes) {
        close(connection);
        return at;
      }
      if (at + header + length > bytes.size()) return at;
      handle_packet(connection, bytes.substr(at, header + length), header);
      at += header + length;
    }
    return at;
  }

  static uint16_t read_u16(std::string_view bytes, size_t at) {
    return static_cast<uint16_t>((static_cast<uint8_t>(bytes[at]) << 8) | static_cast<uint8_t>(bytes[at + 1]));
  }

  void handle_packet(Connection* connection, std::string_view packet, size_t header) {
    auto type = static_cast<uint8_t>(packet[0]) >> 4;
    std::string_view body = packet.substr(header);
    switch (type) {
      case 1: {  // CONNECT: MQTT 5 (protocol level 5 after the 6-byte name) gets an empty property length
        bool v5 = body.size() > 6 && body[6] == 5;
        answer(connection, v5 ? std::string_view("\x20\x03\x00\x00\x00", 5) : std::string_view("\x20\x02\x00\x00", 4));
        break;
      }
      case 3: {  // PUBLISH: forwarded as it came; QoS 1 acknowledged to the publisher
        if (body.size() < 2) return close(connection);
        uint16_t topic_length = read_u16(body, 0);
        if (body.size() < 2u + topic_length) return close(connection);
        std::string_view topic = body.substr(2, topic_length);
        unsigned qos = (static_cast<uint8_t>(packet[0]) >> 1) & 3;
        if (auto found = subscribers_.find(absl::string_view(topic.data(), topic.size())); found != subscribers_.end()) {
          for (Connection* subscriber : found->second) send(subscriber, packet);
          ++forwarded_;
        }
        if (qos == 1 && body.size() >= 4u + topic_length) {
          uint16_t id = read_u16(body, 2 + topic_length);
          char puback[4] = {0x40, 0x02, static_cast<char>(id >> 8), static_cast<char>(id & 0xFF)};
          answer(connection, std::string_view(puback, 4));
        }
        break;
      }
      case 8: {  // SUBSCRIBE (3.1.1 layout): each filter subscribed exactly, granted QoS as asked
        if (body.size() < 2) return close(connection);
        uint16_t id = read_u16(body, 0);
        std::string suback = {static_cast<char>(0x90), 0, static_cast<char>(id >> 8), static_cast<char>(id & 0xFF)};
        for (size_t at = 2; at + 3 <= body.size();) {
          uint16_t length = read_u16(body, at);
          if (at + 2 + length + 1 > body.size()) return close(connection);
          std::string filter(body.substr(at + 2, length));
          suback.push_back(static_cast<char>(body[at + 2 + length] & 3));
          subscribers_[filter].push_back(connection);
          connection->topics.push_back(std::move(filter));
          at += 2 + length + 1;
        }
        suback[1] = static_cast<char>(suback.size() - 2);
        answer(connection, suback);
        break;
      }
      case 12:  // PINGREQ
        answer(connection, std::string_view("\xD0\x00", 2));
        break;
      case 14:  // DISCONNECT
        close(connection);
        break;
      default:  // acknowledgements from subscribers: nothing to track
        break;
    }
  }

  void answer(Connection* connection, std::string_view packet) { send(connection, packet); }

  void send(Connection* connection, std::string_view packet) {
    if (connection->closed) return;
    if (connection->output.size() + packet.size() > kMaxOutputBytes) {
      ++cut_for_output_;
      close(connection);
      return;
    }
    connection->output.append(packet);
    if (!connection->queued_for_send) {
      connection->queued_for_send = true;
      to_send_.push_back(connection);
    }
  }

  void start_send(Connection* connection) {
    connection->sending.swap(connection->output);
    connection->output.clear();
    connection->sent = 0;
    submit_send(connection);
  }

  void submit_send(Connection* connection) {
    io_uring_sqe* sqe = ring_.next_sqe();
    io_uring_prep_send(sqe, connection->fd, connection->sending.data() + connection->sent,
                       connection->sending.size() - connection->sent, MSG_NOSIGNAL);
    if (direct_) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, user_data(connection, Tag::kSend));
    connection->send_in_flight = true;
    ++connection->operations;
  }

  void on_send(Connection* connection, int result) {
    connection->send_in_flight = false;
    --connection->operations;
    if (result <= 0 || connection->closed) {
      close(connection);
      return;
    }
    connection->sent += static_cast<size_t>(result);
    if (connection->sent < connection->sending.size()) {
      submit_send(connection);
      return;
    }
    connection->sending.clear();
    if (!connection->output.empty() && !connection->queued_for_send) {
      connection->queued_for_send = true;
      to_send_.push_back(connection);
    }
  }

  void close(Connection* connection) {
    if (connection->closed) return;
    connection->closed = true;
    for (const std::string& topic : connection->topics) {
      auto found = subscribers_.find(topic);
      if (found == subscribers_.end()) continue;
      std::erase(found->second, connection);
      if (found->second.empty()) subscribers_.erase(found);
    }
    // The fd goes once the kernel holds no operation on it (shutdown ends the receive).
    if (direct_) {
      io_uring_sqe* sqe = ring_.next_sqe();
      io_uring_prep_shutdown(sqe, connection->fd, SHUT_RDWR);
      sqe->flags |= IOSQE_FIXED_FILE;
      io_uring_sqe_set_data64(sqe, user_data(nullptr, Tag::kIgnore));
    } else {
      ::shutdown(connection->fd, SHUT_RDWR);
    }
    closed_.push_back(connection);
  }

  void end_of_turn() {
    for (Connection* connection : rearm_) {
      if (!connection->closed && !connection->receive_armed) arm_receive(connection);
    }
    rearm_.clear();
    buffers_.publish();
    for (Connection* connection : to_send_) {
      connection->queued_for_send = false;
      if (!connection->closed && !connection->send_in_flight && !connection->output.empty()) start_send(connection);
    }
    to_send_.clear();
    if (closed_.empty()) return;
    std::erase_if(closed_, [this](Connection* connection) {
      if (connection->operations > 0) return false;
      if (direct_) {
        io_uring_sqe* sqe = ring_.next_sqe();
        io_uring_prep_close_direct(sqe, static_cast<unsigned>(connection->fd));
        io_uring_sqe_set_data64(sqe, user_data(nullptr, Tag::kIgnore));
      } else {
        ::close(connection->fd);
      }
      connections_.erase(connection);
      return true;
    });
  }

  const bool direct_;
  coremq::io::Ring ring_;
  coremq::io::BufferRing buffers_;
  int listen_fd_ = -1;
  absl::flat_hash_map<Connection*, std::unique_ptr<Connection>> connections_;
  absl::flat_hash_map<std::string, std::vector<Connection*>> subscribers_;
  std::vector<Connection*> closed_;  // waiting for the kernel to let go of them
  std::vector<Connection*> to_send_;
  std::vector<Connection*> rearm_;
  uint64_t forwarded_ = 0;
  uint64_t cut_for_output_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  uint16_t port = 0;
  int cpu = -1;
  bool direct = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--direct") {
      direct = true;
    } else if (arg.starts_with("--port=")) {
      port = static_cast<uint16_t>(std::strtoul(argv[i] + 7, nullptr, 10));
    } else if (arg.starts_with("--cpu=")) {
      cpu = static_cast<int>(std::strtol(argv[i] + 6, nullptr, 10));
    } else {
      std::fprintf(stderr, "coremq-relay: unknown argument %s (usage: coremq-relay [--port=N] [--cpu=N] [--direct])\n", argv[i]);
      return 2;
    }
  }
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  Relay relay(direct);
  std::string error;
  if (!relay.set_up(port, &error)) {
    std::fprintf(stderr, "coremq-relay: %s\n", error.c_str());
    return 1;
  }
  relay.run();
  return 0;
}
