// Connections on TLS and WebSocket listeners: their Transport decodes what the socket
// brings before ShardState reads it, and encodes what ShardState writes before it is sent
// (see transport/channel.h). Plain TCP connections never come here. Shard thread only.
//
// The wire bytes a transport produces while decoding (handshake records, a pong, a close
// answer) wait in Channel::wire_pending and go out ahead of the next encoded output. A
// short send's rest is wire bytes too: it goes back to the front of wire_pending, never to
// Connection::output, which holds only plain bytes still to be encoded.
#include <utility>

#include "base/assert.h"
#include "base/log.h"
#include "shard/shard.h"

namespace coremq::shard {

using broker::Connection;
using broker::ConnectionState;
using transport::Transport;

void Shard::set_transport_factories(std::vector<std::unique_ptr<transport::TransportFactory>> factories) {
  transport_factories_ = std::move(factories);
}

bool Shard::attach_channel(Connection* connection) {
  if (connection->listener >= transport_factories_.size()) return true;
  transport::TransportFactory* factory = transport_factories_[connection->listener].get();
  if (factory == nullptr) return true;
  std::unique_ptr<transport::Transport> transport = factory->make();
  if (transport == nullptr) return false;  // logged by the factory
  connection->channel = std::make_unique<transport::Channel>();
  connection->channel->transport = std::move(transport);
  return true;
}

bool Shard::has_unsent_output(const Connection* connection) {
  if (!connection->output.empty()) return true;
  // The rest of a short gathered send (its headers are in `sending`, not `output`).
  if (connection->references != nullptr && !connection->send_in_flight && !connection->references->sending.empty()) {
    return true;
  }
  return connection->channel != nullptr && !connection->channel->wire_pending.empty();
}

bool Shard::handshake_waits(const Connection* connection) const {
  return handshake_budget_ == 0 && connection->channel != nullptr &&
         !connection->channel->transport->established();
}

void Shard::start_turn_handshakes() {
  handshake_budget_ = options_.max_handshakes_per_turn;
  if (handshakes_deferred_) {
    handshakes_deferred_ = false;
    replay_wanted_ = true;
  }
}

void Shard::deliver_through_channel(Connection* connection, std::span<const uint8_t> wire) {
  transport::Channel& channel = *connection->channel;
  bool was_established = channel.transport->established();
  if (!was_established && handshake_budget_ > 0) --handshake_budget_;
  decoded_.clear();
  Transport::Status status = channel.transport->decode(wire, decoded_, channel.wire_pending);
  if (!channel.wire_pending.empty()) request_flush(connection);
  if (!was_established && channel.transport->established()) ++state_->counters().transport_handshakes;
  if (!decoded_.empty()) {
    state_->on_bytes(connection, decoded_.span());
    // on_bytes may have moved the connection to another shard (its channel went along) or
    // closed it: then the transport's end of stream is no longer this shard's concern.
    if (connection->state == ConnectionState::kHandingOff || connection->state == ConnectionState::kClosing)
      return;
  }
  switch (status) {
    case Transport::Status::kOk:
      break;
    case Transport::Status::kClosed:
      state_->on_transport_closed(connection, /*flush_answer=*/true);  // the echoed close goes out first
      break;
    case Transport::Status::kError:
      state_->on_transport_error(connection, channel.transport->error());
      break;
  }
}

void Shard::prepare_channel_send(Connection* connection) {
  transport::Channel& channel = *connection->channel;
  COREMQ_ASSERT(connection->sending.empty());
  connection->sending.swap(channel.wire_pending);
  if (connection->output.empty()) return;
  if (!channel.transport->established()) {
    // The broker answers nothing before CONNECT, which only an established transport
    // delivers; output now would be a bug upstream, and it waits rather than leak in clear.
    LOG_WARNING_LIMITED("fd %d: %u bytes of output before the transport's handshake ended; held",
                        connection->fd, connection->output.size());
    return;
  }
  if (channel.transport->encode(connection->output.span(), connection->sending) != Transport::Status::kOk) {
    LOG_INFO_LIMITED("fd %d: the transport refused output: %s", connection->fd, channel.transport->error());
    connection->output.clear();
    state_->on_transport_error(connection, channel.transport->error());
    return;
  }
  connection->output.clear();
}

void Shard::keep_unsent_wire_bytes(Connection* connection, size_t sent) {
  transport::Channel& channel = *connection->channel;
  connection->sending.consume_front(sent);
  if (!channel.wire_pending.empty()) connection->sending.append(channel.wire_pending.span());
  channel.wire_pending.clear();
  channel.wire_pending.swap(connection->sending);
}

void Shard::encode_transport_close(Connection* connection) {
  transport::Channel& channel = *connection->channel;
  if (!channel.transport->established()) return;
  // The close goes after everything already written (a CONNACK refusal, a DISCONNECT).
  if (!connection->output.empty() &&
      channel.transport->encode(connection->output.span(), channel.wire_pending) == Transport::Status::kOk) {
    connection->output.clear();
  }
  channel.transport->encode_close(/*websocket_close_code=*/1000, channel.wire_pending);
}

}  // namespace coremq::shard
