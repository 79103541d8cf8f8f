// Receiving on a shard: receives armed and re-armed, data handed to ShardState, and input
// parked (the cross-shard pause, held connections, arrival order behind parked input),
// starved receives, and replay. See shard.h and docs/ARCHITECTURE.md ("Back-pressure
// between shards, parked input and holds"). Shard thread only.
#include "shard/shard.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "base/assert.h"
#include "base/log.h"

namespace coremq::shard {

using broker::Connection;
using broker::ConnectionState;
using broker::CrossShardItem;

// ---- receiving -------------------------------------------------------------

void Shard::arm_receive(Connection* connection) {
  COREMQ_ASSERT(!connection->receive_armed && !connection->receive_starved);
  if (connection->state == ConnectionState::kClosing || connection->state == ConnectionState::kHandingOff) return;
  io_uring_sqe* sqe = ring_.next_sqe();
  // Until CONNECT is handled, one receive at a time: the connection may still move to
  // another shard, and no receive of this ring may be pending on it when it does.
  bool multishot = connection->state == ConnectionState::kConnected && ring_.features().recv_multishot;
  if (multishot) {
    io_uring_prep_recv_multishot(sqe, connection->fd, nullptr, 0, 0);
  } else {
    io_uring_prep_recv(sqe, connection->fd, nullptr, 0, 0);
  }
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_.group_id();
  io_uring_sqe_set_data64(sqe, user_data(connection, Tag::kReceive));
  connection->receive_armed = true;
  ++connection->operations_in_flight;
}

bool Shard::wants_receive(const Connection* connection) const {
  if (connection->receive_armed || connection->receive_starved || connection->socket_shut_down) return false;
  switch (connection->state) {
    case ConnectionState::kConnected: return true;
    // Before CONNECT is done (and during an MQTT 5 AUTH exchange) a connection reads with one
    // one-shot receive at a time, and none while it has input parked: when its parked CONNECT
    // is replayed it may move to another shard, and no receive may then be pending on it here.
    case ConnectionState::kAwaitingConnect:
    case ConnectionState::kAuthenticating: return connection->parked_count == 0;
    case ConnectionState::kHandingOff:
    case ConnectionState::kClosing: return false;
  }
  return false;
}

void Shard::on_receive(Connection* connection, const io_uring_cqe* cqe) {
  bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  if (!more) {
    connection->receive_armed = false;
    COREMQ_ASSERT(connection->operations_in_flight > 0);
    --connection->operations_in_flight;
  }
  int result = cqe->res;
  if (result > 0) {
    COREMQ_ASSERT(cqe->flags & IORING_CQE_F_BUFFER);
    auto buffer_id = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    state_->counters().bytes_received += static_cast<uint32_t>(result);
    if (should_park(connection)) {
      park(connection, buffer_id, static_cast<uint32_t>(result));
    } else {
      deliver_received(connection, buffer_id, static_cast<uint32_t>(result));
    }
    if (!connection->receive_armed) rearm_list_.push_back(connection);
  } else if (result == -ENOBUFS) {
    // Every receive buffer is in use. While some are parked (input paused or held) they come
    // back only with a replay, so the receive waits for that (starve); otherwise they come
    // back at this turn's end and the receive is armed again then.
    if (input_paused_ || parked_live_ > 0) {
      starve(connection);
    } else {
      rearm_list_.push_back(connection);
    }
  } else {
    if (result < 0 && result != -ECONNRESET && result != -ECANCELED && result != -EPIPE) {
      LOG_DEBUG("receive on fd %d: %s", connection->fd, std::strerror(-result));
    }
    // The end of the stream waits behind the data parked before it: a DISCONNECT in that
    // data must be read before the connection counts as lost (and its will goes out).
    if (should_park(connection)) {
      park(connection, kParkedEndOfStream, 0);
    } else {
      state_->on_transport_closed(connection);
    }
  }
  maybe_release(connection);
}

bool Shard::should_park(const Connection* connection) const {
  switch (connection->state) {
    case ConnectionState::kConnected:
      // Behind the pause, behind a held answer, or behind its own parked input (order).
      return input_paused_ || connection->input_held || connection->parked_count > 0;
    case ConnectionState::kAwaitingConnect:
    case ConnectionState::kAuthenticating:
      // A CONNECT may take a session over, ending the old connection: it must not be handled
      // before anything parked earlier (that connection's DISCONNECT, say), so while anything
      // is parked it waits too, and the replay keeps arrival order. A CONNECT waiting for its
      // password check holds what follows it the same way (and then reads no more).
      return input_paused_ || parked_live_ > 0 || connection->input_held || handshake_waits(connection);
    case ConnectionState::kHandingOff:
    case ConnectionState::kClosing: return false;
  }
  return false;
}

void Shard::park(Connection* connection, uint16_t buffer_id, uint32_t length) {
  ++connection->operations_in_flight;  // the connection outlives what is parked for it
  ++connection->parked_count;
  ++parked_live_;
  // Parked bytes are activity: the client did send within its keep-alive, the broker chose
  // not to read yet (ShardState::on_tick also spares a connection with parked input).
  if (buffer_id != kParkedEndOfStream) connection->last_packet_at_ms = now_ms_;
  // Without a pause or a hold it waits only behind other parked input: try at the turn's end.
  if (!input_paused_ && !connection->input_held) replay_wanted_ = true;
  parked_.push_back(ParkedReceive{connection, buffer_id, length});
}

Shard::ParkedReceive Shard::take_parked(size_t index) {
  ParkedReceive entry = parked_[index];
  COREMQ_ASSERT(entry.connection != nullptr && parked_live_ > 0);
  COREMQ_ASSERT(entry.connection->parked_count > 0 && entry.connection->operations_in_flight > 0);
  parked_[index].connection = nullptr;  // compacted away by compact_parked()
  --entry.connection->parked_count;
  --entry.connection->operations_in_flight;
  --parked_live_;
  return entry;
}

void Shard::recycle_parked(const ParkedReceive& entry) {
  if (entry.buffer_id >= kFirstParkedMarker) return;  // holds no receive buffer
  buffers_.recycle(entry.buffer_id);
  buffers_returned_ = true;
}

void Shard::compact_parked() {
  if (replay_depth_ > 0) return;  // a replay walks parked_ by index: compact only after it
  std::erase_if(parked_, [](const ParkedReceive& entry) { return entry.connection == nullptr; });
  COREMQ_ASSERT(parked_.size() == parked_live_);
}

void Shard::replay(const ParkedReceive& entry) {
  Connection* connection = entry.connection;
  bool one_shot = connection->state != ConnectionState::kConnected;
  deliver_received(connection, entry.buffer_id, entry.length);
  // A connection before CONNECT was not read while it had input parked (wants_receive). One
  // connected since its input was parked (a CONNECT held for its password check, accepted)
  // was not either, though its state no longer says so: without a receive it is armed too
  // (the re-arm asks wants_receive, so an armed multishot receive is left alone).
  if (one_shot || !connection->receive_armed) rearm_list_.push_back(connection);
  maybe_release(connection);
}

void Shard::deliver_received(Connection* connection, uint16_t buffer_id, uint32_t length) {
  if (buffer_id == kParkedEndOfStream) {
    state_->on_transport_closed(connection);
    return;
  }
  if (buffer_id == kParkedInput) {
    // An adopted connection's bytes, kept in its input while they were parked.
    state_->on_bytes(connection, {});
    return;
  }
  if (connection->channel != nullptr) {
    deliver_through_channel(connection, {buffers_.buffer(buffer_id), length});
  } else {
    state_->on_bytes(connection, {buffers_.buffer(buffer_id), length});
  }
  buffers_.recycle(buffer_id);
  buffers_returned_ = true;
}

void Shard::replay_parked() {
  replay_wanted_ = false;
  ++replay_depth_;
  // Arrival order, except that a held connection's input stays (until resume_input), and
  // a connection before CONNECT parked after held input stays behind it (takeover order).
  bool behind_held = false;
  for (size_t i = 0; i < parked_.size() && !input_paused_; ++i) {
    Connection* connection = parked_[i].connection;
    if (connection == nullptr) continue;
    if (connection->state == ConnectionState::kClosing) {
      recycle_parked(take_parked(i));  // closed meanwhile (by an earlier entry, say): never replayed
      maybe_release(connection);
      continue;
    }
    if (connection->input_held) {
      // Only a connected client's held input can hide a DISCONNECT that a later CONNECT's
      // takeover must follow; a CONNECT held for its password check hides nothing.
      if (connection->state == ConnectionState::kConnected) behind_held = true;
      continue;
    }
    if (behind_held && connection->state != ConnectionState::kConnected) continue;
    if (handshake_waits(connection)) {
      if (!handshakes_deferred_) ++state_->counters().handshakes_deferred;
      handshakes_deferred_ = true;
      continue;
    }
    replay(take_parked(i));
  }
  --replay_depth_;
  compact_parked();
}

void Shard::resume_input(Connection* connection) {
  COREMQ_ASSERT(!connection->input_held);
  if (connection->in_process) {
    resume_local_input(connection);  // its input waits in the local intake (shard_local.cc)
    return;
  }
  if (connection->state == ConnectionState::kClosing) return;  // its entries are purged
  // Whatever waited behind this connection's input may go too, at the end of the turn.
  if (parked_live_ > 0) replay_wanted_ = true;
  // During a pause its input waits for the pause's end, in order with everyone else's.
  if (connection->parked_count == 0 || input_paused_) return;
  ++replay_depth_;
  for (size_t i = 0; i < parked_.size() && connection->parked_count > 0; ++i) {
    if (connection->input_held || input_paused_ || connection->state == ConnectionState::kClosing) break;
    if (parked_[i].connection == connection) replay(take_parked(i));
  }
  --replay_depth_;
  compact_parked();
}

void Shard::move_parked_input(Connection* connection, base::ByteBuffer& into) {
  for (size_t i = 0; i < parked_.size() && connection->parked_count > 0; ++i) {
    if (parked_[i].connection != connection) continue;
    ParkedReceive entry = take_parked(i);
    if (entry.buffer_id < kFirstParkedMarker) {
      into.append(std::span<const uint8_t>(buffers_.buffer(entry.buffer_id), entry.length));
    }
    recycle_parked(entry);
  }
  COREMQ_ASSERT(connection->parked_count == 0);
  // A connection before CONNECT parked behind this one may now be replayed.
  if (parked_live_ > 0) replay_wanted_ = true;
  compact_parked();
}

void Shard::starve(Connection* connection) {
  COREMQ_ASSERT(!connection->receive_starved && !connection->receive_armed);
  connection->receive_starved = true;
  ++connection->operations_in_flight;  // kept alive while on starved_ (removed on close)
  starved_.push_back(connection);
}

void Shard::unstarve(Connection* connection) {
  COREMQ_ASSERT(connection->receive_starved && connection->operations_in_flight > 0);
  connection->receive_starved = false;
  --connection->operations_in_flight;
}

void Shard::forget_deferred_input(Connection* connection, base::ByteBuffer* moved_input) {
  if (connection->receive_starved) {
    // Left on starved_ until this turn's end, which drops it before anything is freed: no
    // search per close (a shutdown under a pause closes every starved connection at once).
    unstarve(connection);
    starved_stale_ = true;
  }
  if (connection->parked_count == 0) return;
  if (moved_input != nullptr) {
    move_parked_input(connection, *moved_input);  // a hand-off: the bytes go along now
  } else {
    // A closed connection's entries are never replayed (replays skip a closing connection)
    // and are dropped by one pass at the turn's end, for every close of the turn at once.
    // Until then they keep the connection alive (they count as operations in flight).
    parked_purge_wanted_ = true;
  }
}

void Shard::purge_closed_parked() {
  if (!parked_purge_wanted_) return;
  parked_purge_wanted_ = false;
  COREMQ_ASSERT(replay_depth_ == 0);
  for (size_t i = 0; i < parked_.size(); ++i) {
    Connection* connection = parked_[i].connection;
    if (connection == nullptr || connection->state != ConnectionState::kClosing) continue;
    recycle_parked(take_parked(i));
    maybe_release(connection);
  }
  compact_parked();
  // A connection before CONNECT parked behind a closed one may now be replayed.
  if (parked_live_ > 0) replay_wanted_ = true;
}

void Shard::update_input_pause() {
  // Pausing happens where items are staged (post); here the pause ends, once the peers have
  // taken all but half of the bound.
  if (!input_paused_) return;
  size_t staged = 0;
  for (const auto& items : staged_) staged = std::max(staged, items.size());
  if (staged > options_.cross_shard_queue_capacity / 2) return;
  input_paused_ = false;
  replay_wanted_ = true;
}

void Shard::pause_input(size_t staged) {
  input_paused_ = true;
  ++state_->counters().cross_shard_queue_full;
  LOG_DEBUG("pausing input: %u items staged for a peer shard (--cross-shard-queue-capacity=%u)", staged,
            options_.cross_shard_queue_capacity);
}

}  // namespace coremq::shard
