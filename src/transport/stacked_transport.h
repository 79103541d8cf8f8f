// WebSocket inside TLS (a `wss` listener): the outer transport (TLS) turns wire bytes into
// the inner one's wire bytes (WebSocket frames), which the inner turns into MQTT bytes; output
// goes the other way. Either layer's error or close ends the connection. Single-threaded,
// like every Transport.
#pragma once

#include <memory>

#include "transport/transport.h"

namespace coremq::transport {

class StackedTransport final : public Transport {
 public:
  StackedTransport(std::unique_ptr<Transport> outer, std::unique_ptr<Transport> inner)
      : outer_(std::move(outer)), inner_(std::move(inner)) {}

  Status decode(std::span<const uint8_t> wire, base::ByteBuffer& plain, base::ByteBuffer& wire_out) override;
  Status encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) override;
  void encode_close(uint16_t websocket_close_code, base::ByteBuffer& wire_out) override;
  bool established() const override { return outer_->established() && inner_->established(); }
  std::string_view certificate_username() const override { return outer_->certificate_username(); }
  std::string_view error() const override { return error_from_outer_ ? outer_->error() : inner_->error(); }

 private:
  std::unique_ptr<Transport> outer_;
  std::unique_ptr<Transport> inner_;
  bool error_from_outer_ = true;
  // Between the layers; empty between calls (kept only to reuse its memory).
  base::ByteBuffer middle_;
  base::ByteBuffer middle_out_;
};

}  // namespace coremq::transport
