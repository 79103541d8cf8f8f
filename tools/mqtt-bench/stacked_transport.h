// Two transports stacked: `inner` (WebSocket framing) inside `outer` (TLS), which is what
// wss:// is. MQTT bytes go through inner then outer on the way out, and wire bytes through
// outer then inner on the way in. The inner transport starts once the outer one is
// established: it is given an empty decode() then, which is where a client transport writes
// its opening (the WebSocket upgrade request). Generic over the two transports, so a server
// could use it the same way; mqtt-bench keeps its own copy because src/transport/ has none yet.
// Single-threaded: owned by one client of one worker thread.
#pragma once

#include <memory>
#include <span>
#include <string_view>
#include <utility>

#include "base/assert.h"
#include "base/byte_buffer.h"
#include "transport/transport.h"

namespace coremq::bench {

class StackedTransport final : public transport::Transport {
 public:
  StackedTransport(std::unique_ptr<Transport> outer, std::unique_ptr<Transport> inner)
      : outer_(std::move(outer)), inner_(std::move(inner)) {
    COREMQ_ASSERT(outer_ != nullptr && inner_ != nullptr);
  }

  [[nodiscard]] Status decode(std::span<const uint8_t> wire, base::ByteBuffer& plain,
                              base::ByteBuffer& wire_out) override {
    if (failed_ != nullptr) return Status::kError;
    inner_wire_.clear();
    Status status = outer_->decode(wire, inner_wire_, wire_out);
    if (status == Status::kError) return fail(outer_.get());
    if (!outer_->established()) return status;
    // Also with nothing decoded: the first pass after the outer handshake starts the inner one.
    inner_out_.clear();
    Status inner_status = inner_->decode(inner_wire_.span(), plain, inner_out_);
    if (!inner_out_.empty() && status == Status::kOk) {
      Status sent = outer_->encode(inner_out_.span(), wire_out);
      if (sent == Status::kError) return fail(outer_.get());
    }
    if (inner_status == Status::kError) return fail(inner_.get());
    return inner_status == Status::kClosed ? Status::kClosed : status;
  }

  [[nodiscard]] Status encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) override {
    if (failed_ != nullptr) return Status::kError;
    inner_out_.clear();
    Status status = inner_->encode(plain, inner_out_);
    if (status == Status::kError) return fail(inner_.get());
    Status outer_status = outer_->encode(inner_out_.span(), wire_out);
    if (outer_status == Status::kError) return fail(outer_.get());
    return status == Status::kClosed ? status : outer_status;
  }

  void encode_close(uint16_t websocket_close_code, base::ByteBuffer& wire_out) override {
    if (failed_ != nullptr || !outer_->established()) return;
    inner_out_.clear();
    inner_->encode_close(websocket_close_code, inner_out_);
    if (!inner_out_.empty() && outer_->encode(inner_out_.span(), wire_out) == Status::kError) return;
    outer_->encode_close(websocket_close_code, wire_out);
  }

  bool established() const override { return outer_->established() && inner_->established(); }
  // Why decode or encode failed; after a kClosed, the layer's own words on the close.
  std::string_view error() const override {
    if (failed_ != nullptr) return failed_->error();
    return !inner_->error().empty() ? inner_->error() : outer_->error();
  }

  Transport& outer() { return *outer_; }
  Transport& inner() { return *inner_; }

 private:
  Status fail(const Transport* which) {
    failed_ = which;
    return Status::kError;
  }

  std::unique_ptr<Transport> outer_;
  std::unique_ptr<Transport> inner_;
  const Transport* failed_ = nullptr;  // whose error() explains the failure
  // Between the two layers, reused across calls: decrypted frames in, frames to encrypt out.
  base::ByteBuffer inner_wire_;
  base::ByteBuffer inner_out_;
};

}  // namespace coremq::bench
