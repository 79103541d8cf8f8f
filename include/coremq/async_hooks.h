// Asynchronous hook decisions: a hook that cannot decide at once (it asks an external
// service, a database, a human) takes the decision out of its call with HookDeferral::defer(),
// returns "deferred", and answers later, from any thread, through the HookCompletion it got.
// Used by AuthorizationHook::decide_publish / decide_subscribe (authorization.h),
// MessageInterceptor::on_publish (interception.h) and AuthenticationHook's *_deferrable steps
// (authentication.h).
//
// While a decision is pending only that client waits: the broker holds the client's input
// (what it sends next is read once the answer came, in order), and every other client goes
// on. In-process clients (Broker::connect_local) of the same shard share one intake, so they
// wait with it. Bounds (Options):
// - hook_timeout_ms: a decision not answered by then is taken as a refusal with 0x80
//   Unspecified error in the PUBACK/PUBREC/SUBACK, 0x88 Server unavailable in the CONNACK
//   (counter hook_decisions_timed_out, a log line); a later answer is ignored.
// - max_pending_hook_decisions: decisions one shard may wait for at once; past it defer()
//   gives an empty handle and the broker refuses at once (PUBLISH: 0x97 Quota exceeded;
//   SUBSCRIBE filter: 0x97; CONNECT: 0x89 Server busy; counter hook_decisions_refused_busy).
// A handle destroyed unanswered answers as a timeout would, at once. A handle answered after
// the broker stopped, or after its client left, is ignored. The answer reaches the shard
// through a bounded lock-free ring per shard (the answering thread takes a short mutex of its
// own side only; the shard never waits): a full ring drops the answer, counted as
// hook_answers_dropped, and the decision then times out.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#ifndef COREMQ_API
#define COREMQ_API __attribute__((visibility("default")))
#endif

namespace coremq {

struct InterceptionVerdict;
struct MessageRewrite;
struct AuthenticationStep;

namespace internal {
struct HookChannel;
struct HookChannelAccess;
}  // namespace internal

// One pending decision. Move-only; answer it once, from any thread.
class COREMQ_API HookCompletion {
 public:
  HookCompletion() = default;
  HookCompletion(HookCompletion&& other) noexcept;
  HookCompletion& operator=(HookCompletion&& other) noexcept;
  HookCompletion(const HookCompletion&) = delete;
  HookCompletion& operator=(const HookCompletion&) = delete;
  ~HookCompletion();

  // False for an empty handle (the broker could not wait for one more decision) or one
  // already answered.
  explicit operator bool() const { return channel_ != nullptr; }

  // Authorization: allowed. Interception: the message passes unchanged.
  void allow();
  // Authorization: refused (a PUBLISH is dropped and acknowledged with 0x87, a SUBSCRIBE
  // filter gets 0x87; `reason_code` is not used). Interception: dropped with `reason_code`
  // (see InterceptionVerdict::drop).
  void deny(uint8_t reason_code = 0x87);
  // Interception only: the whole verdict, with a rewrite for kPass.
  void complete(const InterceptionVerdict& verdict, MessageRewrite&& rewrite);
  // Authentication only: the deferred step (kSuccess, kContinue or kFailure; kDefer is taken
  // as a failure with 0x83).
  void authenticate(const AuthenticationStep& step);

 private:
  friend struct internal::HookChannelAccess;
  HookCompletion(std::shared_ptr<internal::HookChannel> channel, uint64_t token, uint32_t index)
      : channel_(std::move(channel)), token_(token), index_(index) {}
  std::shared_ptr<internal::HookChannel> channel_;
  uint64_t token_ = 0;
  uint32_t index_ = 0;
};

// Passed to a hook that may answer later. Valid during the hook's call only.
class HookDeferral {
 public:
  // The handle to answer with; the hook must then return its "deferred" answer. Only the
  // first call in one hook call gives a handle; later ones give an empty handle.
  virtual HookCompletion defer() = 0;

 protected:
  ~HookDeferral() = default;
};

}  // namespace coremq
