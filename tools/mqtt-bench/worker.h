// Worker: one thread with its own io_uring, driving its own subset of the clients: paced
// connects, publishing, receiving, keep-alive and the final DISCONNECT. Per loop turn it reaps
// completions in a batch, lets publishers encode into their staging buffers, and flushes with
// at most one send in flight per socket (bytes gathered meanwhile go out in the next send).
// Receives are multishot from a provided-buffer ring when the kernel has them, one plain recv
// per socket otherwise. With --tls or --ws each client has a transport (TLS, WebSocket or
// both) that received bytes pass through before the client reads them, and staged bytes before
// they are sent; plain TCP clients have none. Created and joined by the main thread; between
// start() and join() only the worker thread touches it, except through SharedState.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "client.h"
#include "io/buffer_ring.h"
#include "io/ring.h"
#include "options.h"
#include "plan.h"
#include "shared_state.h"
#include "tls_client_transport.h"
#include "worker_result.h"

struct io_uring_cqe;

namespace coremq::bench {

class Worker {
 public:
  Worker(uint32_t id, const Options& options, const Plan& plan, SharedState& shared,
         std::vector<const ClientSpec*> specs);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  void start();
  void join();
  // After join().
  WorkerResult& result() { return result_; }

 private:
  enum Operation : uint64_t { kConnect = 1, kReceive = 2, kSend = 3 };

  void run();
  [[nodiscard]] bool setup(std::string* error);
  void loop();
  void start_connects(int64_t now_ns);
  void start_connect(Client& client, uint32_t slot);
  // --source-address: binds the socket to the client's source address. False (client failed)
  // when the address cannot be bound.
  [[nodiscard]] bool bind_source(int fd, const Client& client, uint32_t slot);
  bool publish_turn(int64_t now_ns);
  // Open loop: starts every publisher's schedule, then per turn writes what is due, earliest
  // first. Returns how long the loop may wait before the next message is due.
  void start_schedules();
  int64_t scheduled_publish_turn(int64_t now_ns);
  // Writes what is due for one publisher; true when it caught up (or is finished).
  bool publish_due(uint32_t slot, int64_t now_ns);
  void keepalive_turn(int64_t now_ns);
  // --reconnect-every: stages DISCONNECT on every client whose connection is due to go;
  // reconnect() replaces its socket once that was sent.
  void churn_turn(int64_t now_ns);
  void reconnect(uint32_t slot);
  void queue_flush(uint32_t slot);
  void flush_sends(int64_t now_ns);
  void arm_receive(uint32_t slot);
  void submit_send(uint32_t slot);
  void wait_and_reap(int64_t timeout_ns);
  void handle_completion(const io_uring_cqe* cqe);
  void on_connect_done(uint32_t slot, int result);
  void on_receive(uint32_t slot, const io_uring_cqe* cqe);
  void on_send_done(uint32_t slot, int result);
  // --tls/--ws: the client's transport, made when TCP is up; its opening bytes (ClientHello
  // or the upgrade request) go to wire_staging. False when it cannot be made.
  [[nodiscard]] bool start_transport(uint32_t slot);
  // Received bytes through the transport into the Client. False when the client failed or
  // the broker closed (the client is then closed or failed).
  [[nodiscard]] bool receive_through_transport(uint32_t slot, std::span<const uint8_t> wire, int64_t now_ns);
  // What Client staged through encode() into wire_staging (once the handshake is over).
  [[nodiscard]] bool encode_staged(uint32_t slot);
  void note_established(Client& client);
  void broker_closed(uint32_t slot, std::string_view how);
  void fail_client(uint32_t slot, std::string message);
  void close_client(Client& client);
  void end_handshake(uint32_t slot);
  void record_error(std::string message);
  void flush_deliveries();
  void publish_counters();
  void disconnect_all();
  void collect_results();
  bool alive(const Client& client) const;

  uint32_t id_;
  const Options& options_;
  const Plan& plan_;
  SharedState& shared_;
  std::vector<const ClientSpec*> specs_;
  WorkerResult result_;
  WorkerContext context_;
  io::Ring ring_;
  io::BufferRing buffers_;
  bool provided_buffers_ = false;
  std::unique_ptr<TlsClientContext> tls_context_;  // --tls: this thread's own SSL_CTX
  base::ByteBuffer decoded_;  // a transport's decoded bytes, handed to Client at once
  uint64_t mask_seed_ = 0;     // --ws: seeds each connection's frame masks

  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<bool> handshaking_;
  std::vector<uint32_t> publisher_slots_;
  std::vector<uint32_t> flush_queue_;
  uint32_t next_to_connect_ = 0;
  uint32_t handshakes_in_flight_ = 0;
  int64_t connect_start_ns_ = 0;
  int64_t publish_start_ns_ = 0;
  double connect_rate_ = 0;     // this worker's share, per second
  // Open loop: publishers by next due time (a min-heap of {due_ns, slot}), and those whose due
  // messages the window or a full output holds back (retried every turn until caught up).
  std::vector<std::pair<int64_t, uint32_t>> due_heap_;
  std::vector<uint32_t> behind_slots_;
  bool schedules_started_ = false;
  bool catching_up_ = false;  // a publisher wrote kPublishesPerTurnMax this turn: no wait
  int64_t publishing_stopped_ns_ = 0;
  bool window_known_ = false;
  std::thread thread_;
};

}  // namespace coremq::bench
