// Sending and closing on a shard: one send per connection per turn, short sends, and every
// close (flush, linger, deadline, release). See docs/ARCHITECTURE.md ("Closing a
// connection"). Shard thread only.
#include "shard/shard.h"

#include <sys/socket.h>
#include <unistd.h>

#include <climits>
#include <cerrno>
#include <cstring>
#include <utility>

#include "base/assert.h"
#include "base/log.h"

namespace coremq::shard {

using broker::Connection;
using broker::ConnectionState;
using broker::CrossShardItem;

namespace {
// A connection whose send buffers are idle gives their memory back past this size at
// once, and entirely at the next idle sweep.
constexpr size_t kRetainedSendBufferMax = 64 * 1024;
constexpr size_t kSmallSendBufferMax = 512;
}  // namespace

// ---- sending ---------------------------------------------------------------

void Shard::request_flush(Connection* connection) {
  if (connection->queued_for_flush) return;
  connection->queued_for_flush = true;
  flush_list_.push_back(connection);
}

void Shard::flush_sends() {
  // Index loop: start_send never adds to the list, but on_output_drained callbacks elsewhere may.
  for (size_t i = 0; i < flush_list_.size(); ++i) {
    Connection* connection = flush_list_[i];
    connection->queued_for_flush = false;
    if (connection->socket_shut_down) continue;
    if (!connection->send_in_flight && has_unsent_output(connection)) start_send(connection);
    if (connection->close_after_flush && !connection->send_in_flight && !has_unsent_output(connection)) {
      begin_linger(connection);
    }
  }
  flush_list_.clear();
}

void Shard::start_send(Connection* connection) {
  if (connection->in_process) {
    take_local_output(connection);  // to the delivery thread (shard_local.cc)
    return;
  }
  COREMQ_ASSERT(!connection->send_in_flight);
  broker::OutputReferences* references = connection->references.get();
  if (references != nullptr && !references->sending.empty()) {
    // The rest of a short gathered send: it goes before anything gathered since.
    submit_gathered_send(connection);
    return;
  }
  COREMQ_ASSERT(connection->sending.empty());
  if (connection->channel != nullptr) {
    prepare_channel_send(connection);
    if (connection->sending.empty()) return;
  } else {
    connection->sending.swap(connection->output);
    if (references != nullptr && !references->pending.empty()) {
      references->sending.swap(references->pending);
      references->sending_bytes = std::exchange(references->pending_bytes, 0);
      references->sent = 0;
      submit_gathered_send(connection);
      return;
    }
  }
  io_uring_sqe* sqe = ring_.next_sqe();
  io_uring_prep_send(sqe, connection->fd, connection->sending.data(), connection->sending.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, user_data(connection, Tag::kSend));
  connection->send_in_flight = true;
  ++connection->operations_in_flight;
}

void Shard::submit_gathered_send(Connection* connection) {
  broker::OutputReferences& references = *connection->references;
  // Headers from `sending`, payloads from their messages, in stream order, less what a short
  // send already took.
  references.gather.clear();
  uint64_t skip = references.sent;
  auto add_piece = [&](const void* base, size_t size) {
    if (skip >= size) {
      skip -= size;
      return;
    }
    references.gather.push_back(iovec{const_cast<char*>(static_cast<const char*>(base)) + skip, size - skip});
    skip = 0;
  };
  const uint8_t* headers = connection->sending.data();
  size_t at = 0;
  for (const broker::PayloadReference& reference : references.sending) {
    add_piece(headers + at, reference.offset - at);
    at = reference.offset;
    std::string_view payload = reference.message->payload();
    add_piece(payload.data(), payload.size());
  }
  add_piece(headers + at, connection->sending.size() - at);
  COREMQ_ASSERT(!references.gather.empty() && references.gather.size() <= IOV_MAX);
  references.header = msghdr{};
  references.header.msg_iov = references.gather.data();
  references.header.msg_iovlen = references.gather.size();
  io_uring_sqe* sqe = ring_.next_sqe();
  io_uring_prep_sendmsg(sqe, connection->fd, &references.header, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, user_data(connection, Tag::kSend));
  connection->send_in_flight = true;
  ++connection->operations_in_flight;
}

void Shard::on_send(Connection* connection, int result) {
  COREMQ_ASSERT(connection->send_in_flight && connection->operations_in_flight > 0);
  connection->send_in_flight = false;
  --connection->operations_in_flight;
  broker::OutputReferences* references = connection->references.get();
  bool gathered = references != nullptr && !references->sending.empty();
  if (result < 0) {
    connection->sending.clear();
    if (gathered) drop_gathered_send(references);
    if (result != -EPIPE && result != -ECONNRESET) LOG_DEBUG("send on fd %d: %s", connection->fd, std::strerror(-result));
    state_->on_transport_closed(connection);
    if (connection->close_after_flush) shut_down_socket(connection);
    maybe_release(connection);
    return;
  }
  auto sent = static_cast<size_t>(result);
  state_->counters().bytes_sent += sent;
  if (gathered) {
    references->sent += sent;
    if (references->sent < connection->sending.size() + references->sending_bytes) {
      request_flush(connection);  // a short send: start_send sends the rest first
      return;
    }
    drop_gathered_send(references);
  } else if (sent < connection->sending.size() && connection->channel != nullptr) {
    keep_unsent_wire_bytes(connection, sent);  // wire bytes: never encoded twice
    if (connection->state == ConnectionState::kHandingOff && delayed_hand_offs_.contains(connection)) {
      complete_delayed_hand_off(connection);
      return;
    }
    request_flush(connection);
    return;
  }
  if (!gathered && sent < connection->sending.size()) {
    // A short send: the rest goes first, before anything gathered since.
    connection->sending.consume_front(sent);
    if (connection->references != nullptr) {
      // Payloads staged by reference meanwhile point into `output`, which the rest now precedes.
      for (broker::PayloadReference& reference : connection->references->pending) {
        reference.offset += static_cast<uint32_t>(connection->sending.size());
      }
    }
    if (!connection->output.empty()) {
      connection->sending.append(connection->output.span());
      connection->output.clear();
    }
    connection->output.swap(connection->sending);
    request_flush(connection);
    return;
  }
  connection->sending.clear();
  // A connection that sends little gives its buffer back at once (a fleet of quiet
  // devices then holds no send memory); a busy one keeps a mid-sized buffer for reuse.
  size_t capacity = connection->sending.capacity();
  if (capacity <= kSmallSendBufferMax || capacity > kRetainedSendBufferMax) connection->sending.shrink();
  if (connection->state == ConnectionState::kConnected) state_->on_output_drained(connection);
  if (has_unsent_output(connection) || connection->close_after_flush) request_flush(connection);
  if (connection->state == ConnectionState::kHandingOff && delayed_hand_offs_.contains(connection)) {
    complete_delayed_hand_off(connection);
    return;
  }
  maybe_release(connection);
}

void Shard::drop_gathered_send(broker::OutputReferences* references) {
  references->sending.clear();  // the messages' last references may go here
  references->sending_bytes = 0;
  references->sent = 0;
}

// ---- closing and releasing ---------------------------------------------------

void Shard::close_connection(Connection* connection, bool flush_first) {
  COREMQ_ASSERT(connection->state == ConnectionState::kClosing);
  if (connection->in_process) {
    close_local_connection(connection);  // no socket: released at this turn's end (shard_local.cc)
    return;
  }
  // Input parked or starved for it is never read now: its buffers go back, and no deferred
  // list keeps a pointer to a connection that is about to be freed.
  forget_deferred_input(connection, nullptr);
  if (flush_first && connection->channel != nullptr) encode_transport_close(connection);
  if (flush_first && (connection->send_in_flight || has_unsent_output(connection))) {
    // The client is owed its last packets (a DISCONNECT with a reason, a CONNACK
    // refusal): flush, then linger (begin_linger). Never for longer than --close-linger:
    // a send that cannot complete (zero window, dead peer) must not hold the socket.
    COREMQ_ASSERT(!closing_.contains(connection));
    closing_[connection].deadline_ms = now_ms_ + int64_t{options_.close_linger_seconds} * 1000;
    connection->close_after_flush = true;
    request_flush(connection);
    return;
  }
  shut_down_socket(connection);
}

void Shard::begin_linger(Connection* connection) {
  auto found = closing_.find(connection);
  COREMQ_ASSERT(found != closing_.end());
  Closing& closing = found->second;
  if (closing.lingering || connection->socket_shut_down) return;
  closing.lingering = true;
  // Everything is sent: FIN goes after the last packet, so the client reads it, then the
  // end of the stream. Closing the socket now instead would make the kernel answer any
  // byte the client still writes (a PUBREL for a PUBREC it just read) with RST, and the
  // client would get a broken pipe instead of the reason. So the read side stays open and
  // what arrives is read and dropped until the client closes (or a bound is hit).
  ::shutdown(connection->fd, SHUT_WR);
  // Discarding goes through a plain receive into discard_buffer_, not the provided-buffer
  // ring: a client writing hard while it lingers must not take receive buffers from the
  // shard's live connections (nor be parked by an input pause). The receive still armed
  // on the ring is cancelled; what it still brings is dropped (ShardState ignores input of
  // a closing connection) and its buffers are recycled as usual.
  if (connection->receive_armed) {
    cancel_operation(connection, Tag::kReceive);
  }
  arm_discard(connection);
}

void Shard::arm_discard(Connection* connection) {
  Closing& closing = closing_.at(connection);
  COREMQ_ASSERT(closing.lingering && !closing.discard_armed && !connection->socket_shut_down);
  io_uring_sqe* sqe = ring_.next_sqe();
  io_uring_prep_recv(sqe, connection->fd, discard_buffer_.data(), discard_buffer_.size(), 0);
  io_uring_sqe_set_data64(sqe, user_data(connection, Tag::kDiscard));
  closing.discard_armed = true;
  ++connection->operations_in_flight;
}

void Shard::on_discard(Connection* connection, int result) {
  Closing& closing = closing_.at(connection);
  COREMQ_ASSERT(closing.discard_armed && connection->operations_in_flight > 0);
  closing.discard_armed = false;
  --connection->operations_in_flight;
  if (result > 0 && !connection->socket_shut_down) {
    closing.discarded_bytes += static_cast<uint64_t>(result);
    if (closing.discarded_bytes <= options_.close_linger_bytes) {
      arm_discard(connection);
    } else {
      ++state_->counters().closes_linger_bytes_exceeded;
      LOG_INFO("closing fd %d: the client sent over --close-linger-bytes=%u after its DISCONNECT", connection->fd,
               options_.close_linger_bytes);
      shut_down_socket(connection);
    }
  } else if (!connection->socket_shut_down) {
    // 0: the client closed its side, having read everything; < 0: reset, or cancelled.
    shut_down_socket(connection);
  }
  maybe_release(connection);
}

void Shard::check_close_deadlines() {
  std::vector<Connection*> expired;
  for (const auto& [connection, closing] : closing_) {
    if (now_ms_ >= closing.deadline_ms && !connection->socket_shut_down) expired.push_back(connection);
  }
  for (Connection* connection : expired) force_close(connection);
}

void Shard::force_close(Connection* connection) {
  ++state_->counters().closes_forced_deadline;
  LOG_INFO("closing fd %d: --close-linger=%u s passed %s; resetting the connection", connection->fd,
           options_.close_linger_seconds,
           connection->send_in_flight ? "with its last packets unsent (the client does not read)"
                                      : "and the client has not closed its side");
  // Linger 0 makes the close() at release reset the connection and free the socket with
  // its unsent bytes at once. A plain close would hand them to an orphan socket that keeps
  // probing a zero window for minutes.
  linger abort_on_close{.l_onoff = 1, .l_linger = 0};
  ::setsockopt(connection->fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
  if (connection->send_in_flight) {
    // The send waits for room in the socket buffer that will not come; it must end before
    // the connection (whose buffer it points into) can be freed.
    cancel_operation(connection, Tag::kSend);
  }
  shut_down_socket(connection);
}

void Shard::shut_down_socket(Connection* connection) {
  if (connection->socket_shut_down) return;
  connection->socket_shut_down = true;
  // shutdown() ends the pending receive (it completes with 0) and any send; the fd
  // itself is closed only once no operation refers to it, so it cannot be reused
  // under an operation still in the kernel.
  ::shutdown(connection->fd, SHUT_RDWR);
  if (connection->receive_armed) {
    cancel_operation(connection, Tag::kReceive);
  }
  auto closing = closing_.find(connection);
  if (closing != closing_.end() && closing->second.discard_armed) {
    cancel_operation(connection, Tag::kDiscard);
  }
  maybe_release(connection);
}

void Shard::maybe_release(Connection* connection) {
  bool done = connection->state == ConnectionState::kClosing && connection->socket_shut_down &&
              connection->operations_in_flight == 0;
  bool handed_off = connection->state == ConnectionState::kHandingOff && connection->fd < 0;
  if (!done && !handed_off) return;
  if (!connections_.contains(connection)) return;  // already on the release list
  connections_.erase(connection);
  closing_.erase(connection);  // nothing may refer to a connection once it is freed
  delayed_hand_offs_.erase(connection);
  release_list_.push_back(connection);
}

void Shard::hand_off_connection(Connection* connection, uint32_t target_shard) {
  COREMQ_ASSERT(connection->state == ConnectionState::kHandingOff);
  COREMQ_ASSERT(!connection->receive_armed);  // one receive at a time before CONNECT, none while parked
  if (connection->send_in_flight) {
    // Only a TLS or WebSocket connection sends before its CONNECT (its handshake): the send
    // points into this connection's buffer, so the move waits for it (on_send).
    COREMQ_ASSERT(connection->channel != nullptr);
    delayed_hand_offs_[connection] = target_shard;
    return;
  }
  auto* handoff = new broker::ConnectionHandoff();
  handoff->fd = connection->fd;
  handoff->listener = connection->listener;
  handoff->accepted_at_ms = connection->accepted_at_ms;
  handoff->input = std::move(connection->input);
  handoff->channel = std::move(connection->channel);
  // Bytes parked after the CONNECT go along, in order: a connection holds no parked data
  // once it has moved. A parked end of stream is dropped: the socket reports it again there.
  forget_deferred_input(connection, &handoff->input);
  COREMQ_ASSERT(connection->operations_in_flight == 0);
  connection->fd = -1;
  // Never refused or delayed: post always stages (the bound pauses input instead).
  post(target_shard, CrossShardItem{CrossShardItem::Kind::kAdoptConnection, shard_id_, handoff});
  maybe_release(connection);
}

void Shard::adopt(broker::ConnectionHandoff* handoff) {
  std::unique_ptr<broker::ConnectionHandoff> owned(handoff);
  if (stopping_) {
    ::close(handoff->fd);
    shared_.connections_total.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  Connection* connection = open_connection(handoff->fd, handoff->accepted_at_ms);
  connection->listener = handoff->listener;
  connection->channel = std::move(handoff->channel);
  connection->payloads_by_reference = connection->channel == nullptr;
  if (has_unsent_output(connection)) request_flush(connection);  // handshake bytes not sent there yet
  state_->on_connection_opened(connection);
  if (!handoff->input.empty() && should_park(connection)) {
    // Its CONNECT may take over a session whose input is parked here: it waits its turn.
    connection->input = std::move(handoff->input);
    park(connection, kParkedInput, 0);
  } else {
    state_->on_bytes(connection, handoff->input.span());
  }
  if (wants_receive(connection)) arm_receive(connection);
  maybe_release(connection);
}

void Shard::complete_delayed_hand_off(Connection* connection) {
  auto found = delayed_hand_offs_.find(connection);
  COREMQ_ASSERT(found != delayed_hand_offs_.end());
  uint32_t target = found->second;
  delayed_hand_offs_.erase(found);
  // A short send put its rest back in wire_pending, which moves along and goes out there.
  connection->queued_for_flush = false;
  std::erase(flush_list_, connection);
  hand_off_connection(connection, target);
}

}  // namespace coremq::shard
