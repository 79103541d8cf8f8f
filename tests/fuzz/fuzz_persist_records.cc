// libFuzzer target for the store's record decoders (src/persist/records.h): what the loader
// reads back from a RocksDB database that may be damaged. The first byte picks the record type
// (even: retained, odd: session), the next up to 32 bytes (to the first NUL) are the key's
// identity, the rest is the value.
//
// Checked on every input: no crash, sanitizer report or assertion; a refused record has an
// error message; an accepted one encodes back to exactly the bytes it was decoded from (one
// encoding per record, so a record that reloads is the record that was written).
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
  bool session = (input[0] & 1) != 0;
  input.remove_prefix(1);
  size_t identity_end = input.find('\0');
  if (identity_end == std::string_view::npos || identity_end > 32) identity_end = std::min<size_t>(input.size(), 8);
  std::string_view identity = input.substr(0, identity_end);
  std::string_view value = input.substr(std::min(input.size(), identity_end + 1));
  std::string error;
  std::string encoded;
  if (session) {
    std::string key = coremq::persist::session_key(identity);
    coremq::persist::SessionRecord record;
    if (coremq::persist::decode_session(key, value, &record, &error)) {
      require(record.client_id == identity);
      coremq::persist::encode_session(record, &encoded);
      require(encoded == value);
    } else {
      require(!error.empty());
    }
  } else {
    std::string key = coremq::persist::retained_key(identity);
    coremq::persist::RetainedRecord record;
    if (coremq::persist::decode_retained(key, value, &record, &error)) {
      require(record.topic == identity);
      coremq::persist::encode_retained(record, &encoded);
      require(encoded == value);
    } else {
      require(!error.empty());
    }
  }
  return 0;
}
