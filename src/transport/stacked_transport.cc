#include "transport/stacked_transport.h"

namespace coremq::transport {

Transport::Status StackedTransport::decode(std::span<const uint8_t> wire, base::ByteBuffer& plain,
                                           base::ByteBuffer& wire_out) {
  middle_.clear();
  Status outer_status = outer_->decode(wire, middle_, wire_out);
  Status inner_status = Status::kOk;
  if (!middle_.empty()) {
    middle_out_.clear();
    inner_status = inner_->decode(middle_.span(), plain, middle_out_);
    // The inner layer's answers (the upgrade response, a pong, a close) go out through TLS.
    if (!middle_out_.empty() && outer_->encode(middle_out_.span(), wire_out) != Status::kOk) {
      error_from_outer_ = true;
      return Status::kError;
    }
  }
  if (middle_.capacity() > 64 * 1024) middle_.shrink();
  if (outer_status == Status::kError) {
    error_from_outer_ = true;
    return Status::kError;
  }
  if (inner_status == Status::kError) {
    error_from_outer_ = false;
    return Status::kError;
  }
  return outer_status == Status::kClosed || inner_status == Status::kClosed ? Status::kClosed : Status::kOk;
}

Transport::Status StackedTransport::encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) {
  middle_.clear();
  if (inner_->encode(plain, middle_) != Status::kOk) {
    error_from_outer_ = false;
    return Status::kError;
  }
  Status status = outer_->encode(middle_.span(), wire_out);
  if (middle_.capacity() > 64 * 1024) middle_.shrink();
  if (status != Status::kOk) error_from_outer_ = true;
  return status;
}

void StackedTransport::encode_close(uint16_t websocket_close_code, base::ByteBuffer& wire_out) {
  middle_.clear();
  if (inner_->established()) inner_->encode_close(websocket_close_code, middle_);
  if (!middle_.empty() && outer_->encode(middle_.span(), wire_out) != Status::kOk) return;
  outer_->encode_close(websocket_close_code, wire_out);
}

}  // namespace coremq::transport
