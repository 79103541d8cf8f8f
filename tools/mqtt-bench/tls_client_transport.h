// mqtt-bench's TLS client (--tls): the shared client transport of src/transport (also the
// broker bridges'), set from the tool's flags. Main thread (the flag check) and each worker.
#pragma once

#include "options.h"
#include "transport/tls_client_transport.h"

namespace coremq::bench {

using transport::TlsClientContext;
using transport::TlsClientTransport;

// The flags' TLS settings; errors name the flags (--cafile, --cert, --key, --tls-version).
inline transport::TlsClientSettings tls_client_settings(const Options& options) {
  transport::TlsClientSettings settings;
  settings.ca_file = options.tls_ca_file;
  settings.cert_file = options.tls_cert_file;
  settings.key_file = options.tls_key_file;
  settings.insecure = options.tls_insecure;
  settings.version_min = options.tls_version_min;
  settings.version_max = options.tls_version_max;
  settings.server_name = options.tls_server_name;
  settings.resume = options.tls_resume;
  // `conn` holds thousands of idle connections.
  settings.release_buffers = options.command == Command::kConn;
  return settings;
}

}  // namespace coremq::bench
