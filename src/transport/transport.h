// A byte filter between a client's socket and the MQTT codec: TLS, WebSocket framing, or
// both stacked (WebSocket inside TLS). Sans-I/O: the shard loop hands it what it read and
// sends what it writes, so OpenSSL and the framing never touch a socket and never block.
// Single-threaded: one Transport belongs to one connection on one shard at a time; it moves
// with the connection when the accepting shard hands it to the client id's owner.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/byte_buffer.h"

namespace coremq::transport {

class Transport {
 public:
  enum class Status : uint8_t {
    kOk,
    // The peer ended the stream cleanly (TLS close_notify, WebSocket close frame); whatever
    // `wire_out` holds (the answering close) is still sent.
    kClosed,
    // Malformed or refused input (a failed handshake, a bad frame, a revoked certificate);
    // error() says why, and `wire_out` may hold an alert or close frame to send first.
    kError,
  };

  virtual ~Transport() = default;

  // Bytes read from the socket: appends the application bytes they carry to `plain`, and to
  // `wire_out` anything that must go back to the peer now (handshake records, a pong, the
  // answer to a close). Bytes of an incomplete record or frame are kept inside.
  [[nodiscard]] virtual Status decode(std::span<const uint8_t> wire, base::ByteBuffer& plain,
                                      base::ByteBuffer& wire_out) = 0;
  // Application bytes to send: appends their wire form to `wire_out`. Only called once
  // established() (the broker says nothing before it has read a CONNECT).
  [[nodiscard]] virtual Status encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) = 0;
  // The last words before the broker closes the connection: a TLS close_notify, a WebSocket
  // close frame with `websocket_close_code` (RFC 6455 section 7.4.1; 1000 normal closure).
  virtual void encode_close(uint16_t websocket_close_code, base::ByteBuffer& wire_out) = 0;

  // The handshake is over: application bytes flow both ways.
  virtual bool established() const = 0;
  // What a client certificate makes the MQTT username (TlsOptions::use_identity_as_username,
  // use_subject_as_username); empty when the listener asks for neither or there is none.
  virtual std::string_view certificate_username() const { return {}; }
  // Why decode or encode answered kError.
  virtual std::string_view error() const = 0;
};

}  // namespace coremq::transport
