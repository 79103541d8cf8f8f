// Asynchronous hook decisions (include/coremq/async_hooks.h) on the protocol side: a hook that
// defers gets a handle bound to this shard's answer ring; the connection keeps the packet that
// asked (PendingDecision) and its input is held, as for a CONNECT waiting for the password
// checker (password_check.cc); the answer, or the timeout, handles the packet again from the
// start with the answers gathered so far. Shard thread only.
#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"

namespace coremq::broker {

using mqtt::ReasonCode;

HookCompletion ShardState::Deferral::defer() {
  if (asked_) return {};
  asked_ = true;
  if (state_.pending_decisions_.size() >= state_.options_.max_pending_hook_decisions) {
    over_bound_ = true;
    return {};
  }
  uint64_t token = ++state_.decision_token_last_;
  HookCompletion completion = state_.io_.defer_decision(token, 0);
  if (!completion) {
    over_bound_ = true;  // an I/O side without an answer ring: as busy
    return {};
  }
  token_ = token;
  return completion;
}

ShardState::Held ShardState::hold_for_decision(Connection* connection, Deferral& deferral,
                                               PendingDecision::Stage stage) {
  COREMQ_ASSERT(connection->state == ConnectionState::kConnected && !connection->input_held);
  const char* client_id = connection->session != nullptr ? connection->session->client_id.c_str() : "";
  if (deferral.over_bound()) {
    ++counters_.hook_decisions_refused_busy;
    LOG_WARNING_LIMITED("client '%s': a hook deferred its decision while this shard waits for "
                        "max_pending_hook_decisions=%u already: refused",
                        client_id, options_.max_pending_hook_decisions);
    return Held::kBusy;
  }
  if (deferral.token() == 0) {
    ++counters_.hook_defers_without_handle;
    LOG_WARNING_LIMITED("client '%s': a hook answered 'defer' without calling defer(): refused", client_id);
    return Held::kBroken;
  }
  std::unique_ptr<PendingDecision>& record = connection->pending_decision;
  if (record == nullptr) {
    // The packet is kept whole: it is handled again from the start once the answer is in.
    record = std::make_unique<PendingDecision>();
    record->type = current_packet_type_;
    record->flags = current_packet_flags_;
    record->body.append(current_packet_body_);
  }
  COREMQ_ASSERT(record->waiting == PendingDecision::Stage::kNone && record->token == 0);
  record->token = deferral.token();
  record->waiting = stage;
  record->deadline_ms = io_.now_ms() + int64_t{options_.hook_timeout_ms};
  pending_decisions_[record->token] = connection;
  // What the client sends meanwhile waits, in order (the loop parks it; the rest of this read
  // stays in connection->input).
  connection->input_held = true;
  ++counters_.hook_decisions_deferred;
  return Held::kHeld;
}

HookAnswer* ShardState::stored_answer(Connection* connection, PendingDecision::Stage stage) {
  PendingDecision* record = connection->pending_decision.get();
  if (record == nullptr) return nullptr;
  auto pick = [](std::optional<HookAnswer>& slot) { return slot.has_value() ? &*slot : nullptr; };
  switch (stage) {
    case PendingDecision::Stage::kPublishAuthorization: return pick(record->publish_authorization);
    case PendingDecision::Stage::kInterception: return pick(record->interception);
    case PendingDecision::Stage::kSubscribe: return pick(record->subscribe_answer);
    case PendingDecision::Stage::kNone:
    case PendingDecision::Stage::kAuthentication: break;
  }
  return nullptr;
}

void ShardState::on_hook_answer(HookAnswer answer) {
  auto found = pending_decisions_.find(answer.token);
  if (found == pending_decisions_.end()) return;  // timed out, or the client left meanwhile
  Connection* connection = found->second;
  pending_decisions_.erase(found);
  PendingDecision* record = connection->pending_decision.get();
  COREMQ_ASSERT(record != nullptr && record->token == answer.token && connection->input_held);
  if (record->waiting == PendingDecision::Stage::kAuthentication) {
    apply_authentication_answer(connection, answer);
    return;
  }
  switch (record->waiting) {
    case PendingDecision::Stage::kPublishAuthorization: record->publish_authorization = std::move(answer); break;
    case PendingDecision::Stage::kInterception: record->interception = std::move(answer); break;
    case PendingDecision::Stage::kSubscribe: record->subscribe_answer = std::move(answer); break;
    case PendingDecision::Stage::kNone:
    case PendingDecision::Stage::kAuthentication: COREMQ_ASSERT_MSG(false, "an answer for no question"); break;
  }
  replay_decision(connection);
}

void ShardState::replay_decision(Connection* connection) {
  PendingDecision* record = connection->pending_decision.get();
  record->token = 0;
  record->waiting = PendingDecision::Stage::kNone;
  connection->input_held = false;
  mqtt::FixedHeader header{};
  header.type = record->type;
  header.flags = record->flags;
  header.remaining_length = static_cast<uint32_t>(record->body.size());
  // The record (and the body the handler decodes from) outlives this call even if the
  // connection ends inside it (forget_pending_decision leaves it to us).
  replaying_ = record;
  Next next = handle_packet(connection, header, record->body.span());
  replaying_ = nullptr;
  if (record->waiting == PendingDecision::Stage::kNone) connection->pending_decision.reset();
  if (next != Next::kStop && connection->state == ConnectionState::kConnected && !connection->input_held) {
    resume_held_input(connection);
  }
}

bool ShardState::hold_authentication(Connection* connection, Deferral& deferral) {
  COREMQ_ASSERT(connection->state == ConnectionState::kAuthenticating ||
                connection->state == ConnectionState::kConnected);
  if (deferral.over_bound()) {
    ++counters_.hook_decisions_refused_busy;
    LOG_WARNING_LIMITED("an authentication step was deferred while this shard waits for max_pending_hook_decisions=%u "
                        "already: refused",
                        options_.max_pending_hook_decisions);
    end_authentication(connection, ReasonCode::kServerBusy, "too many authentication steps waiting");
    return false;
  }
  if (deferral.token() == 0) {
    ++counters_.hook_defers_without_handle;
    LOG_WARNING_LIMITED("the authentication hook answered 'defer' without calling defer(): refused");
    end_authentication(connection, ReasonCode::kImplementationSpecificError, "authentication hook error");
    return false;
  }
  COREMQ_ASSERT(connection->pending_decision == nullptr && !connection->input_held);
  auto record = std::make_unique<PendingDecision>();
  record->token = deferral.token();
  record->waiting = PendingDecision::Stage::kAuthentication;
  record->deadline_ms = io_.now_ms() + int64_t{options_.hook_timeout_ms};
  pending_decisions_[record->token] = connection;
  connection->pending_decision = std::move(record);
  // What the client sends meanwhile (an AUTH, or anything once connected) waits for the step.
  connection->input_held = true;
  ++counters_.hook_decisions_deferred;
  return true;
}

void ShardState::apply_authentication_answer(Connection* connection, HookAnswer& answer) {
  connection->pending_decision.reset();
  connection->input_held = false;
  bool connected = connection->state == ConnectionState::kConnected;
  AuthenticationHook::Step step;
  switch (answer.kind) {
    case HookAnswer::Kind::kAllow:
      step.result = AuthenticationHook::Step::Result::kSuccess;
      step.data = std::move(answer.data);
      break;
    case HookAnswer::Kind::kContinue:
      step.result = AuthenticationHook::Step::Result::kContinue;
      step.data = std::move(answer.data);
      break;
    case HookAnswer::Kind::kTimedOut:
      // The identity service did not answer: the server is unavailable to this client, which
      // may try again (a re-authentication's DISCONNECT cannot carry 0x88: Not authorized).
      step.failure_reason_code = static_cast<uint8_t>(ReasonCode::kServerUnavailable);
      break;
    default: step.failure_reason_code = answer.reason_code; break;
  }
  bool open = connected ? apply_reauthentication_step(connection, checked(std::move(step)))
                        : apply_connecting_step(connection, checked(std::move(step)));
  if (!open || connection->state == ConnectionState::kClosing || connection->input_held) return;
  // What waited: the rest of the held read, then what the loop parked (resume_held_input asks
  // the loop only for a connected client; an exchange that goes on is asked here).
  resume_held_input(connection);
  if (connection->state == ConnectionState::kAuthenticating && !connection->input_held) io_.resume_input(connection);
}

void ShardState::forget_pending_decision(Connection* connection) {
  PendingDecision* record = connection->pending_decision.get();
  if (record == nullptr) return;
  if (record->token != 0) {
    pending_decisions_.erase(record->token);
    record->token = 0;
    record->waiting = PendingDecision::Stage::kNone;
    connection->input_held = false;  // held for the decision, not for a barrier answer
  }
  if (record != replaying_) connection->pending_decision.reset();
}

void ShardState::expire_pending_decisions(int64_t now_ms) {
  if (pending_decisions_.empty()) return;
  std::vector<uint64_t> expired;
  for (const auto& [token, connection] : pending_decisions_) {
    if (connection->pending_decision->deadline_ms <= now_ms) expired.push_back(token);
  }
  for (uint64_t token : expired) {
    auto found = pending_decisions_.find(token);
    if (found == pending_decisions_.end()) continue;
    ++counters_.hook_decisions_timed_out;
    LOG_WARNING_LIMITED("client '%s': a hook did not answer within hook_timeout_ms=%u: refused",
                        found->second->session != nullptr ? found->second->session->client_id : std::string(),
                        options_.hook_timeout_ms);
    HookAnswer answer;
    answer.token = token;
    answer.kind = HookAnswer::Kind::kTimedOut;
    on_hook_answer(std::move(answer));
  }
}

}  // namespace coremq::broker
