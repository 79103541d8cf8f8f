// libFuzzer target for mqtt-bench's WebSocket client (tools/mqtt-bench/ws_client_transport):
// what a broker sends it, the upgrade response and then frames, from arbitrary bytes. Built
// with ASan + UBSan (tests/fuzz/meson.build); a crash, a sanitizer report or a failed
// COREMQ_ASSERT is a bug in the client.
//
// Input: byte 0 picks the mode (bit 0: 0 = the input follows a valid 101 answer, so it is all
// frames; 1 = the input is the upgrade response itself, where the token "@ACCEPT@" in its head
// stands for the right Sec-WebSocket-Accept of the key the client chose where it is that header's
// value, and is left as it is elsewhere); byte 1 is the piece
// size (1-64) for the split run; the rest is what the broker sent.
//
// Oracles beyond "no crash":
//   - split invariance: the bytes fed whole and fed in pieces give the same status, the same
//     MQTT bytes out, the same answers (pongs, close echo: the masks come from the same seed)
//     and the same error (up to any quoted broker bytes, which hold the run's random key);
//   - never more MQTT bytes out than bytes in;
//   - an error or a close is final: feeding more gives the same status and no more bytes.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "../../tools/mqtt-bench/ws_client_transport.h"
#include "base/assert.h"
#include "base/byte_buffer.h"

namespace {

using coremq::base::ByteBuffer;
using coremq::bench::WsClientTransport;
using Status = coremq::transport::Transport::Status;

constexpr std::string_view kAcceptToken = "@ACCEPT@";

struct Run {
  Status status = Status::kOk;
  ByteBuffer plain;
  ByteBuffer answers;
  std::string error;
};

std::span<const uint8_t> bytes_of(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// Whether a header line's text before a value is "Sec-WebSocket-Accept:" (any case, blanks
// around), where the token stands for the right value.
bool is_accept_header_start(std::string_view text) {
  constexpr std::string_view kName = "sec-websocket-accept";
  size_t at = 0;
  for (char expected : kName) {
    if (at >= text.size() || std::tolower(static_cast<unsigned char>(text[at])) != expected) return false;
    ++at;
  }
  while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) ++at;
  if (at >= text.size() || text[at] != ':') return false;
  ++at;
  while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) ++at;
  return at == text.size();
}

// The broker's bytes for this client: the token replaced by the accept for its key.
std::string broker_bytes(std::string_view input, std::string_view request, bool response_mode) {
  size_t at = request.find("Sec-WebSocket-Key: ");
  COREMQ_ASSERT(at != std::string_view::npos);
  std::string key(request.substr(at + 19, 24));
  std::string accept = WsClientTransport::accept_for_key(key);
  if (!response_mode) {
    return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Accept: " +
           accept + "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n" + std::string(input);
  }
  // Only in the head, and only as the value of a Sec-WebSocket-Accept line: frame payloads
  // behind the head stay the same bytes in both runs, and so does every other place where the
  // two runs' different accept values could change what the client does (the status line
  // "HTTP/1.1 10@ACCEPT@" read as a 101 when the value began with '1': a finding).
  size_t head_end = input.find("\r\n\r\n");
  std::string head(input.substr(0, head_end));
  for (size_t found = head.find(kAcceptToken); found != std::string::npos;
       found = head.find(kAcceptToken, found + 1)) {
    size_t line_start = head.rfind("\r\n", found);
    line_start = line_start == std::string::npos ? 0 : line_start + 2;
    if (!is_accept_header_start(std::string_view(head).substr(line_start, found - line_start))) continue;
    head.replace(found, kAcceptToken.size(), accept);
  }
  return head_end == std::string_view::npos ? head : head + std::string(input.substr(head_end));
}

Run feed(std::string_view input, bool response_mode, size_t piece) {
  Run run;
  WsClientTransport transport("127.0.0.1:1", "/mqtt", 12345);
  ByteBuffer request;
  COREMQ_ASSERT(transport.decode({}, run.plain, request) == Status::kOk);
  std::string wire = broker_bytes(input, request.view(), response_mode);
  size_t header_bytes = response_mode ? 0 : wire.size() - input.size();
  for (size_t at = 0; at < wire.size() && run.status == Status::kOk; at += piece) {
    std::string_view chunk = std::string_view(wire).substr(at, piece);
    run.status = transport.decode(bytes_of(chunk), run.plain, run.answers);
  }
  // Never more MQTT bytes than the broker sent after its 101.
  COREMQ_ASSERT(run.plain.size() + header_bytes <= wire.size());
  // Errors may quote broker bytes, which hold this run's random accept value: the two runs'
  // errors are compared up to the quote.
  run.error = std::string(transport.error());
  run.error = run.error.substr(0, run.error.find('\''));
  if (run.status != Status::kOk) {
    size_t plain_before = run.plain.size();
    size_t answers_before = run.answers.size();
    static const uint8_t more[] = {0x82, 0x01, 0x00};
    COREMQ_ASSERT(transport.decode(more, run.plain, run.answers) == run.status);
    COREMQ_ASSERT(run.plain.size() == plain_before && run.answers.size() == answers_before);
  }
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  bool response_mode = (data[0] & 1) != 0;
  size_t piece = 1 + data[1] % 64;
  std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);
  Run whole = feed(input, response_mode, input.size() + 4096);
  Run split = feed(input, response_mode, piece);
  COREMQ_ASSERT(whole.status == split.status);
  COREMQ_ASSERT(whole.plain.view() == split.plain.view());
  COREMQ_ASSERT(whole.answers.view() == split.answers.view());
  COREMQ_ASSERT(whole.error == split.error);
  return 0;
}
