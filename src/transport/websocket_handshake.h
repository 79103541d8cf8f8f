// The server side of the WebSocket opening handshake (RFC 6455 section 4.2): reads a client's
// HTTP/1.1 upgrade request as it arrives, in pieces split anywhere, checks it and writes the
// answer, a 101 Switching Protocols or an HTTP error with a one-line reason.
// Single-threaded: owned by one WebSocketTransport on one shard, and freed as soon as the
// handshake is over, so an established connection does not keep the request buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "base/byte_buffer.h"

namespace coremq::transport {

class WebSocketHandshake {
 public:
  // The most a request may take, request line and headers up to the blank line. Browsers send
  // 400 to 800 bytes (cookies of the page's origin can add more); a request still unfinished at
  // this size is refused with 431, so a peer cannot make a connection hold more before it has
  // said anything MQTT. A constant, not a flag: no real client comes near it.
  static constexpr size_t kRequestBytesMax = 4096;

  enum class Result : uint8_t {
    kNeedMore,  // every byte given was taken; the request is not complete yet
    kAccepted,  // `response` holds the 101; bytes after the request are the first frames
    kRefused,   // `response` holds the HTTP error; error() says why
  };

  // Takes bytes of the request; *consumed says how many of `wire` it used (all of them unless
  // the request ended inside `wire`). Appends the answer to `response` once there is one.
  [[nodiscard]] Result feed(std::span<const uint8_t> wire, size_t* consumed, base::ByteBuffer& response);

  // Why the request was refused (empty while it is not).
  std::string_view error() const { return error_; }
  // The subprotocol answered: "mqtt", "mqttv3.1", or empty when the client offered none.
  std::string_view subprotocol() const { return subprotocol_; }
  // The request grew past kRequestBytesMax before it ended (for a counter).
  bool refused_too_large() const { return refused_too_large_; }

  // Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + RFC 6455's GUID)), 28
  // characters written to `accept`.
  static void accept_key(std::string_view key, char (&accept)[28]);

 private:
  Result evaluate(std::string_view request, base::ByteBuffer& response);
  Result refuse(base::ByteBuffer& response, int status, std::string_view reason);

  base::ByteBuffer request_;
  const char* error_ = "";
  const char* subprotocol_ = "";
  bool refused_too_large_ = false;
};

}  // namespace coremq::transport
