// See tls_errors.h.
#include "transport/tls_errors.h"

#include <openssl/err.h>

namespace coremq::transport {

std::string take_openssl_errors() {
  std::string text;
  int kept = 0;
  unsigned long previous = 0;
  while (unsigned long code = ERR_get_error()) {
    if (code == previous || kept == 4) continue;  // keep draining: the queue must end empty
    previous = code;
    const char* reason = ERR_reason_error_string(code);
    if (!text.empty()) text += ": ";
    if (reason != nullptr) {
      text += reason;
    } else {
      char buffer[256];
      ERR_error_string_n(code, buffer, sizeof(buffer));
      text += buffer;
    }
    ++kept;
  }
  return text.empty() ? std::string("unknown OpenSSL error") : text;
}

}  // namespace coremq::transport
