// OpenSSL's per-thread error queue turned into the sentences coremq logs and returns
// (TlsContext::create's error, TlsTransport::error()). Any thread; touches only the calling
// thread's queue.
#pragma once

#include <string>

namespace coremq::transport {

// The reasons in the calling thread's OpenSSL error queue, oldest first and joined by ": "
// (at most four, repeats dropped), and empties the queue so that the next connection's
// diagnosis starts clean. "unknown OpenSSL error" when the queue was empty.
std::string take_openssl_errors();

}  // namespace coremq::transport
