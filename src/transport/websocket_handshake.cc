// The WebSocket opening handshake, server side (RFC 6455 section 4.2). See websocket_handshake.h.
#include "transport/websocket_handshake.h"

#include <openssl/evp.h>

#include <charconv>
#include <cstring>

#include "base/assert.h"
#include "base/log.h"

namespace coremq::transport {
namespace {

constexpr std::string_view kEndOfRequest = "\r\n\r\n";
// RFC 6455 section 1.3: appended to the client's key before hashing.
constexpr std::string_view kAcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// ASCII only, as HTTP header names and these tokens are (Debian's Abseil has its own string_view).
bool equals_ignore_case(std::string_view text, std::string_view other) {
  if (text.size() != other.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    char a = text[i];
    char b = other[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

bool is_optional_whitespace(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_optional_whitespace(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_optional_whitespace(text.back())) text.remove_suffix(1);
  return text;
}

// RFC 9110 section 5.6.2: the characters of a token (a method, a header name).
bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool is_token(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!is_token_char(c)) return false;
  }
  return true;
}

// Header values may hold visible characters, spaces and tabs, and obs-text; no other controls.
bool is_field_value(std::string_view text) {
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\t') || byte == 0x7f) return false;
  }
  return true;
}

// Calls visit(token) for each element of a comma-separated list (Connection, Upgrade,
// Sec-WebSocket-Protocol), trimmed, skipping empty elements as RFC 9110 section 5.6.1 allows;
// stops early when visit returns true, and returns whether it did.
template <typename Visit>
bool any_list_element(std::string_view value, Visit&& visit) {
  while (true) {
    size_t comma = value.find(',');
    std::string_view element = trim(value.substr(0, comma));
    if (!element.empty() && visit(element)) return true;
    if (comma == std::string_view::npos) return false;
    value.remove_prefix(comma + 1);
  }
}

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// RFC 6455 section 4.1: the key is 16 random bytes, base64 encoded: 22 characters and "==".
bool is_valid_key(std::string_view key) {
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i) {
    if (!is_base64_char(key[i])) return false;
  }
  return true;
}

std::string_view status_text(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 405:
      return "Method Not Allowed";
    case 426:
      return "Upgrade Required";
    case 431:
      return "Request Header Fields Too Large";
  }
  COREMQ_ASSERT_MSG(false, "websocket handshake: unexpected HTTP status");
  return "";
}

void append_decimal(base::ByteBuffer& out, size_t value) {
  char digits[20];
  auto [end, code] = std::to_chars(digits, digits + sizeof digits, value);
  COREMQ_ASSERT(code == std::errc{});
  out.append(digits, static_cast<size_t>(end - digits));
}

}  // namespace

void WebSocketHandshake::accept_key(std::string_view key, char (&accept)[28]) {
  // One SHA-1 per connection, on the shard, a microsecond: cheaper than sending it elsewhere.
  uint8_t input[64];
  COREMQ_ASSERT(key.size() + kAcceptGuid.size() <= sizeof input);
  std::memcpy(input, key.data(), key.size());
  std::memcpy(input + key.size(), kAcceptGuid.data(), kAcceptGuid.size());
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  int hashed = EVP_Digest(input, key.size() + kAcceptGuid.size(), digest, &digest_size, EVP_sha1(), nullptr);
  COREMQ_ASSERT_MSG(hashed == 1 && digest_size == 20, "SHA-1 unavailable in OpenSSL");
  unsigned char encoded[29];  // 28 characters and the NUL EVP_EncodeBlock adds
  int encoded_size = EVP_EncodeBlock(encoded, digest, 20);
  COREMQ_ASSERT(encoded_size == 28);
  std::memcpy(accept, encoded, 28);
}

WebSocketHandshake::Result WebSocketHandshake::feed(std::span<const uint8_t> wire, size_t* consumed,
                                                    base::ByteBuffer& response) {
  COREMQ_ASSERT(*error_ == '\0');
  // Look for the blank line from the last 3 bytes already held, so a terminator split across
  // two reads is found, and never scan a byte twice more than that.
  size_t held = request_.size();
  size_t room = kRequestBytesMax - held;
  size_t take = wire.size() < room ? wire.size() : room;
  request_.append(wire.data(), take);
  std::string_view request = request_.view();
  size_t from = held >= kEndOfRequest.size() - 1 ? held - (kEndOfRequest.size() - 1) : 0;
  size_t end = request.find(kEndOfRequest, from);
  if (end == std::string_view::npos) {
    *consumed = take;
    if (request_.size() < kRequestBytesMax) return Result::kNeedMore;
    refused_too_large_ = true;
    LOG_WARNING_LIMITED("websocket: upgrade request longer than %u bytes refused with 431",
                        static_cast<unsigned>(kRequestBytesMax));
    return refuse(response, 431, "upgrade request too large");
  }
  size_t request_size = end + kEndOfRequest.size();
  COREMQ_ASSERT(request_size > held);
  *consumed = request_size - held;
  Result result = evaluate(request.substr(0, request_size), response);
  request_.shrink();
  return result;
}

WebSocketHandshake::Result WebSocketHandshake::evaluate(std::string_view request,
                                                        base::ByteBuffer& response) {
  // The request line: METHOD SP request-target SP HTTP-version (RFC 9112 section 3).
  size_t line_end = request.find("\r\n");
  std::string_view line = request.substr(0, line_end);
  request.remove_prefix(line_end + 2);
  size_t first_space = line.find(' ');
  size_t second_space = first_space == std::string_view::npos ? first_space : line.find(' ', first_space + 1);
  if (second_space == std::string_view::npos) return refuse(response, 400, "malformed request line");
  std::string_view method = line.substr(0, first_space);
  std::string_view target = line.substr(first_space + 1, second_space - first_space - 1);
  std::string_view version = line.substr(second_space + 1);
  if (!is_token(method)) return refuse(response, 400, "malformed request line");
  if (method != "GET") return refuse(response, 405, "only GET upgrades to WebSocket");
  // Any path is accepted, as Mosquitto does (MQTT.js asks for /mqtt, paho for /mqtt or /).
  if (target.empty() || !is_field_value(target) || target.find(' ') != std::string_view::npos) {
    return refuse(response, 400, "malformed request line");
  }
  if (version != "HTTP/1.1") return refuse(response, 400, "HTTP/1.1 required");

  bool host_seen = false;
  bool upgrade_websocket = false;
  bool connection_upgrade = false;
  std::string_view key;
  int key_count = 0;
  std::string_view websocket_version;
  int version_count = 0;
  bool protocol_offered = false;
  bool offers_mqtt = false;
  bool offers_mqttv31 = false;
  bool has_body = false;
  // The rest is header lines, each ending in CRLF, then the empty line (already found).
  while (!request.empty()) {
    line_end = request.find("\r\n");
    COREMQ_ASSERT(line_end != std::string_view::npos);
    line = request.substr(0, line_end);
    request.remove_prefix(line_end + 2);
    if (line.empty()) break;
    size_t colon = line.find(':');
    // A name must be a token right before the colon; a line starting with whitespace is the
    // obsolete line folding RFC 9112 section 5.2 lets a server refuse.
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
      return refuse(response, 400, "malformed header line");
    }
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim(line.substr(colon + 1));
    if (!is_field_value(value)) return refuse(response, 400, "control character in a header");
    if (equals_ignore_case(name, "Host")) {
      host_seen = true;
    } else if (equals_ignore_case(name, "Upgrade")) {
      upgrade_websocket |= any_list_element(
          value, [](std::string_view element) { return equals_ignore_case(element, "websocket"); });
    } else if (equals_ignore_case(name, "Connection")) {
      connection_upgrade |= any_list_element(
          value, [](std::string_view element) { return equals_ignore_case(element, "Upgrade"); });
    } else if (equals_ignore_case(name, "Sec-WebSocket-Key")) {
      key = value;
      ++key_count;
    } else if (equals_ignore_case(name, "Sec-WebSocket-Version")) {
      websocket_version = value;
      ++version_count;
    } else if (equals_ignore_case(name, "Sec-WebSocket-Protocol")) {
      // Subprotocol names are case-sensitive (RFC 6455 section 11.3.4).
      any_list_element(value, [&](std::string_view element) {
        protocol_offered = true;
        offers_mqtt |= element == "mqtt";
        offers_mqttv31 |= element == "mqttv3.1";
        return false;
      });
    } else if (equals_ignore_case(name, "Content-Length")) {
      has_body |= value != "0";
    } else if (equals_ignore_case(name, "Transfer-Encoding")) {
      has_body = true;
    }
  }
  if (!upgrade_websocket)
    return refuse(response, 400, "not a WebSocket upgrade (Upgrade: websocket missing)");
  if (!connection_upgrade) return refuse(response, 400, "Connection: Upgrade missing");
  if (!host_seen) return refuse(response, 400, "Host missing");
  if (has_body) return refuse(response, 400, "an upgrade request has no body");
  if (key_count != 1 || !is_valid_key(key)) {
    return refuse(response, 400, "Sec-WebSocket-Key must be one base64 value of 16 bytes");
  }
  if (version_count == 0) return refuse(response, 400, "Sec-WebSocket-Version missing");
  if (version_count != 1 || websocket_version != "13") {
    return refuse(response, 426, "only Sec-WebSocket-Version 13 is supported");
  }
  // MQTT 3.1.1 section 6 and 5.0 section 6: the subprotocol is "mqtt"; MQTT.js and paho.js
  // before 2016 asked for "mqttv3.1", which Mosquitto still accepts. A client that offers none
  // is accepted without one (paho and MQTT.js always offer one; some embedded clients do not);
  // a client that offers only others would fail the connection itself on our answer, so it is
  // told why instead.
  if (offers_mqtt) {
    subprotocol_ = "mqtt";
  } else if (offers_mqttv31) {
    subprotocol_ = "mqttv3.1";
  } else if (protocol_offered) {
    return refuse(response, 400, "no supported Sec-WebSocket-Protocol (mqtt, mqttv3.1)");
  }

  char accept[28];
  accept_key(key, accept);
  response.append(
      std::string_view("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: "));
  response.append(accept, sizeof accept);
  response.append(std::string_view("\r\n"));
  if (*subprotocol_ != '\0') {
    response.append(std::string_view("Sec-WebSocket-Protocol: "));
    response.append(std::string_view(subprotocol_));
    response.append(std::string_view("\r\n"));
  }
  response.append(std::string_view("\r\n"));
  return Result::kAccepted;
}

WebSocketHandshake::Result WebSocketHandshake::refuse(base::ByteBuffer& response, int status,
                                                      std::string_view reason) {
  // Every reason is a string literal, so error() can point at it for the connection's lifetime.
  error_ = reason.data();
  request_.shrink();
  response.append(std::string_view("HTTP/1.1 "));
  append_decimal(response, static_cast<size_t>(status));
  response.append_u8(' ');
  response.append(status_text(status));
  response.append(std::string_view("\r\nConnection: close\r\nContent-Type: text/plain\r\n"));
  if (status == 405) response.append(std::string_view("Allow: GET\r\n"));
  if (status == 426) response.append(std::string_view("Sec-WebSocket-Version: 13\r\n"));
  response.append(std::string_view("Content-Length: "));
  append_decimal(response, reason.size() + 1);
  response.append(std::string_view("\r\n\r\n"));
  response.append(reason);
  response.append_u8('\n');
  return Result::kRefused;
}

}  // namespace coremq::transport
