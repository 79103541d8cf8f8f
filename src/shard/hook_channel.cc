// HookCompletion (include/coremq/async_hooks.h) and the ring it answers through
// (hook_channel.h). Host threads; Shard::wake_from_outside is the only call into the shard.
#include "shard/hook_channel.h"

#include "coremq/authentication.h"
#include "coremq/interception.h"
#include "shard/shard.h"

namespace coremq {

namespace internal {

void HookChannel::push(broker::HookAnswer&& answer) {
  std::lock_guard lock(mutex);
  if (shard == nullptr) return;  // the broker stopped: nobody waits for it
  if (!answers.try_push(std::move(answer))) {
    answers_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  shard->wake_from_outside();
}

void HookChannelAccess::send(HookCompletion& completion, broker::HookAnswer::Kind kind, uint8_t reason_code,
                             std::unique_ptr<MessageRewrite> rewrite, std::string data) {
  if (completion.channel_ == nullptr) return;
  broker::HookAnswer answer;
  answer.token = completion.token_;
  answer.index = completion.index_;
  answer.kind = kind;
  answer.reason_code = reason_code;
  answer.rewrite = std::move(rewrite);
  answer.data = std::move(data);
  std::shared_ptr<HookChannel> channel = std::move(completion.channel_);
  completion.channel_ = nullptr;
  channel->push(std::move(answer));
}

}  // namespace internal

using internal::HookChannelAccess;
using Kind = broker::HookAnswer::Kind;

HookCompletion::HookCompletion(HookCompletion&& other) noexcept
    : channel_(std::move(other.channel_)), token_(other.token_), index_(other.index_) {
  other.channel_ = nullptr;
}

HookCompletion& HookCompletion::operator=(HookCompletion&& other) noexcept {
  if (this != &other) {
    // An unanswered handle being replaced answers first, as its destructor would.
    HookChannelAccess::send(*this, Kind::kTimedOut, 0, nullptr);
    channel_ = std::move(other.channel_);
    other.channel_ = nullptr;
    token_ = other.token_;
    index_ = other.index_;
  }
  return *this;
}

HookCompletion::~HookCompletion() { HookChannelAccess::send(*this, Kind::kTimedOut, 0, nullptr); }

void HookCompletion::allow() { HookChannelAccess::send(*this, Kind::kAllow, 0, nullptr); }

void HookCompletion::deny(uint8_t reason_code) { HookChannelAccess::send(*this, Kind::kDeny, reason_code, nullptr); }

void HookCompletion::complete(const InterceptionVerdict& verdict, MessageRewrite&& rewrite) {
  switch (verdict.action) {
    case InterceptionVerdict::Action::kPass:
      HookChannelAccess::send(*this, Kind::kAllow, 0,
                              rewrite.empty() ? nullptr : std::make_unique<MessageRewrite>(std::move(rewrite)));
      return;
    case InterceptionVerdict::Action::kDrop: HookChannelAccess::send(*this, Kind::kDeny, verdict.reason_code, nullptr); return;
    case InterceptionVerdict::Action::kDisconnect:
      HookChannelAccess::send(*this, Kind::kDisconnect, verdict.reason_code, nullptr);
      return;
    case InterceptionVerdict::Action::kDefer: break;
  }
  // "Defer" again is no answer: the decision is refused as a broken hook's would be.
  HookChannelAccess::send(*this, Kind::kDeny, 0x83, nullptr);
}

void HookCompletion::authenticate(const AuthenticationStep& step) {
  switch (step.result) {
    case AuthenticationStep::Result::kSuccess: HookChannelAccess::send(*this, Kind::kAllow, 0, nullptr, step.data); return;
    case AuthenticationStep::Result::kContinue:
      HookChannelAccess::send(*this, Kind::kContinue, 0, nullptr, step.data);
      return;
    case AuthenticationStep::Result::kFailure:
      HookChannelAccess::send(*this, Kind::kDeny, step.failure_reason_code, nullptr);
      return;
    case AuthenticationStep::Result::kDefer: break;
  }
  HookChannelAccess::send(*this, Kind::kDeny, 0x83, nullptr);  // "defer" again is no answer
}

}  // namespace coremq
