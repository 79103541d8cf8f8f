// libFuzzer target for the store's record decoders (src/persist/records.h): what the loader
// reads back from a RocksDB database that may be damaged. The first byte picks the record type
// (modulo 7: retained, session, message body, outgoing message, incoming QoS 2 id, and format 1's
// outgoing message and incoming QoS 2 id keyed by client id), the second gives the length of the
// key's identity that follows (for the last five, the key's bytes after its type byte, so key
// parsing is fuzzed too), the rest is the value.
//
// Checked on every input: no crash, sanitizer report or assertion; a refused record has an
// error message; an accepted one encodes back to exactly the bytes it was decoded from, and
// its key too (one encoding per record, so a record that reloads is the record that was
// written).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "persist/records.h"

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  int type = static_cast<uint8_t>(input[0]) % 7;
  input.remove_prefix(1);
  if (input.empty()) return 0;
  size_t identity_size = std::min<size_t>(static_cast<uint8_t>(input[0]), input.size() - 1);
  std::string_view identity = input.substr(1, identity_size);
  std::string_view value = input.substr(1 + identity_size);
  std::string error;
  std::string encoded;
  namespace persist = coremq::persist;
  switch (type) {
    case 0: {
      std::string key = persist::retained_key(identity);
      persist::RetainedRecord record;
      if (persist::decode_retained(key, value, &record, &error)) {
        require(record.topic == identity);
        persist::encode_retained(record, &encoded);
        require(encoded == value);
      } else {
        require(!error.empty());
      }
      break;
    }
    case 1: {
      std::string key = persist::session_key(identity);
      persist::SessionRecord record;
      if (persist::decode_session(key, value, &record, &error)) {
        require(record.client_id == identity);
        persist::encode_session(record, &encoded);
        require(encoded == value);
      } else {
        require(!error.empty());
      }
      break;
    }
    case 2: {
      std::string key = std::string(persist::key_prefix(persist::RecordType::kBody)) + std::string(identity);
      persist::BodyRecord record;
      if (persist::decode_body(key, value, &record, &error)) {
        require(persist::body_key(record.id) == key);
        persist::encode_body(record, &encoded);
        require(encoded == value);
      } else {
        require(!error.empty());
      }
      break;
    }
    case 3: {
      std::string key = std::string(persist::key_prefix(persist::RecordType::kOutgoing)) + std::string(identity);
      persist::OutgoingRecord record;
      if (persist::decode_outgoing(key, value, &record, &error)) {
        require(record.session_number != 0);
        require(persist::outgoing_key(record.session_number, record.sequence) == key);
        persist::encode_outgoing(record, &encoded);
        require(encoded == value);
      } else {
        require(!error.empty());
      }
      break;
    }
    case 4: {
      std::string key = std::string(persist::key_prefix(persist::RecordType::kIncomingQos2)) + std::string(identity);
      uint64_t session_number = 0;
      uint16_t packet_id = 0;
      if (persist::decode_incoming_qos2(key, value, &session_number, &packet_id, &error)) {
        require(persist::incoming_qos2_key(session_number, packet_id) == key);
      } else {
        require(!error.empty());
      }
      break;
    }
    case 5: {
      std::string key =
          std::string(persist::key_prefix(persist::RecordType::kLegacyOutgoing)) + std::string(identity);
      persist::OutgoingRecord record;
      std::string client_id;
      if (persist::decode_legacy_outgoing(key, value, &record, &client_id, &error)) {
        require(persist::legacy_outgoing_key(client_id, record.sequence) == key);
        persist::encode_outgoing(record, &encoded);
        require(encoded == value);
      } else {
        require(!error.empty());
      }
      break;
    }
    default: {
      std::string key =
          std::string(persist::key_prefix(persist::RecordType::kLegacyIncomingQos2)) + std::string(identity);
      std::string client_id;
      uint16_t packet_id = 0;
      if (persist::decode_legacy_incoming_qos2(key, value, &client_id, &packet_id, &error)) {
        require(persist::legacy_incoming_qos2_key(client_id, packet_id) == key);
      } else {
        require(!error.empty());
      }
      break;
    }
  }
  return 0;
}
