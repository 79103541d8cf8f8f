// The hook an embedding program implements to offer MQTT 5 enhanced authentication
// methods (CONNECT with an Authentication Method, then AUTH packets). A method no hook
// supports is refused with CONNACK 0x8C (Bad authentication method).
//
// One exchange is a begin() (or begin_reauthentication()) followed by zero or more next()
// calls, one per AUTH packet the client sends, until a step answers kSuccess or kFailure.
// Every call for one client id happens on the shard that owns the id, one after another.
// An exchange can also end with no final call (the client disconnects or times out, or a
// new connection with the same client id starts its own exchange): a hook that keeps
// state per exchange must replace it on the next begin() and bound it itself.
// Thread-safety: called from every shard thread at once; implementations must be
// thread-safe (the broker holds no lock around the calls).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "coremq/async_hooks.h"

namespace coremq {

// One step's answer (AuthenticationHook::Step), also what a deferred step is answered with
// (HookCompletion::authenticate, include/coremq/async_hooks.h).
struct AuthenticationStep {
  // kDefer: only as the return value of a *_deferrable call that called deferral.defer(); the
  // step is answered later through the handle.
  enum class Result { kSuccess, kContinue, kFailure, kDefer };
  Result result = Result::kFailure;
  // Authentication Data to send: with kContinue in an AUTH packet (Continue authentication),
  // with kSuccess in the CONNACK (or, after a re-authentication, in AUTH Success).
  std::string data;
  // With kFailure: the reason code the client gets, in CONNACK while connecting (0x86 Bad
  // User Name or Password, 0x8A Banned, ...) or in DISCONNECT after a failed
  // re-authentication. A code the packet does not allow (MQTT 5.0 table 2-6; DISCONNECT
  // has neither 0x86 nor 0x8A) or one below 0x80 becomes 0x87 (Not authorized).
  uint8_t failure_reason_code = 0x87;
};

class AuthenticationHook {
 public:
  virtual ~AuthenticationHook() = default;

  using Step = AuthenticationStep;

  virtual bool supports_method(std::string_view method) const = 0;
  // The CONNECT's Authentication Method and Data.
  virtual Step begin(std::string_view client_id, std::string_view method, std::string_view data) = 0;
  // Each AUTH packet (Continue authentication) from the client, while connecting or while
  // re-authenticating.
  virtual Step next(std::string_view client_id, std::string_view method, std::string_view data) = 0;
  // A connected client's AUTH packet with reason Re-authenticate (MQTT 5.0 section 4.12.1),
  // always with the method agreed at CONNECT. The client keeps its previous authentication
  // until this exchange ends; a failure closes the connection. The default treats it as a
  // new begin(), so a hook written before re-authentication existed serves it unchanged.
  virtual Step begin_reauthentication(std::string_view client_id, std::string_view method, std::string_view data) {
    return begin(client_id, method, data);
  }

  // The forms the broker calls. Their default is the synchronous call above; a hook whose
  // step must wait (a remote identity service) overrides them, calls deferral.defer(), returns
  // a Step with result kDefer, and answers later from any thread with
  // HookCompletion::authenticate(step). Meanwhile only that client waits (its CONNECT or AUTH
  // is held, and what it sends after), bounded by Options::hook_timeout_ms (then: CONNACK 0x88
  // Server unavailable, or DISCONNECT 0x87 after a re-authentication) and
  // Options::max_pending_hook_decisions (past it: CONNACK 0x89 Server busy).
  virtual Step begin_deferrable(std::string_view client_id, std::string_view method, std::string_view data,
                                HookDeferral& /*deferral*/) {
    return begin(client_id, method, data);
  }
  virtual Step next_deferrable(std::string_view client_id, std::string_view method, std::string_view data,
                               HookDeferral& /*deferral*/) {
    return next(client_id, method, data);
  }
  virtual Step begin_reauthentication_deferrable(std::string_view client_id, std::string_view method,
                                                 std::string_view data, HookDeferral& /*deferral*/) {
    return begin_reauthentication(client_id, method, data);
  }
};

}  // namespace coremq
