// The hook an embedding program implements to offer MQTT 5 enhanced authentication
// methods (CONNECT with an Authentication Method, then AUTH packets). A method no hook
// supports is refused with CONNACK 0x8C (Bad authentication method).
// Thread-safety: called from every shard thread at once; implementations must be
// thread-safe (the broker holds no lock around the calls).
#pragma once

#include <string>
#include <string_view>

namespace coremq {

class AuthenticationHook {
 public:
  virtual ~AuthenticationHook() = default;

  struct Step {
    enum class Result { kSuccess, kContinue, kFailure };
    Result result = Result::kFailure;
    // Authentication Data to send: with kContinue in an AUTH packet, with kSuccess in CONNACK.
    std::string data;
  };

  virtual bool supports_method(std::string_view method) const = 0;
  // The CONNECT's Authentication Method and Data.
  virtual Step begin(std::string_view client_id, std::string_view method, std::string_view data) = 0;
  // Each AUTH packet (Continue authentication) from the client.
  virtual Step next(std::string_view client_id, std::string_view method, std::string_view data) = 0;
};

}  // namespace coremq
