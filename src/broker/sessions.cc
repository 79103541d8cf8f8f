// Session lifetime: lookup, the end of a session (its pending will, its shared
// subscription messages handed to other members), delayed wills and session expiry
// (MQTT 5), kept in a timer heap checked on every tick. Runs on the owning shard.
#include <algorithm>
#include <functional>

#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"

namespace coremq::broker {

Session* ShardState::find_session(std::string_view client_id) {
  auto found = sessions_.find(client_id);
  return found == sessions_.end() ? nullptr : found->second.get();
}

void ShardState::destroy_session(Session* session) {
  COREMQ_ASSERT(session->connection == nullptr);
  // MQTT-3.1.3-9: a will still waiting for its delay goes out when the session ends.
  if (session->will_pending) publish_will_message(session);
  remove_all_subscriptions(session);
  fail_over_shared_deliveries(session);
  journal_session_gone(session);
  auto found = sessions_.find(session->client_id);
  COREMQ_ASSERT(found != sessions_.end() && found->second.get() == session);
  sessions_.erase(found);
}

void ShardState::publish_will_message(Session* session) {
  COREMQ_ASSERT(session->will != nullptr);
  // Taken out first: publishing can reach code that looks at the session's will.
  std::unique_ptr<WillMessage> taken = std::move(session->will);
  session->will_pending = false;
  WillMessage& will = *taken;
  // Mosquitto checks the will against the ACL when it is published, not at CONNECT.
  // No client may publish into $SYS, not even by its will (in-process clients have none).
  if (reserved_for_broker(will.topic) || !may_publish(session, will.topic, will.qos, will.retain)) {
    ++counters_.acl_publishes_denied;
    LOG_INFO_LIMITED("client '%s' may not publish its will on '%s' (ACL file or authorization hook): dropped",
                     session->client_id, will.topic);
    return;
  }
  Message::Extras extras;
  extras.property_bytes = will.property_bytes;
  if (will.retain) extras.retain_stamp = next_retain_stamp();
  if (will.message_expiry_seconds != 0) {
    extras.expires_at_ms = io_.now_ms() + int64_t{will.message_expiry_seconds} * 1000;
  }
  LOG_DEBUG("publishing the will of client '%s' on '%s'", session->client_id, will.topic);
  publish_from_here(MessageRef::adopt(
      Message::create(will.topic, will.payload, will.qos, will.retain, Message::Origin{shard_id_, session}, extras)));
}

void ShardState::schedule(int64_t due_ms, bool is_will, Session* session) {
  if (timers_.size() >= 2 * sessions_.size() + 1024) {
    std::erase_if(timers_, [&](const Timer& timer) {
      Session* owner = find_session(timer.client_id);
      return owner == nullptr || owner->timer_generation != timer.generation;
    });
    std::make_heap(timers_.begin(), timers_.end(), std::greater<Timer>());
  }
  timers_.push_back(Timer{due_ms, session->timer_generation, is_will, session->client_id});
  std::push_heap(timers_.begin(), timers_.end(), std::greater<Timer>());
}

void ShardState::run_due_timers(int64_t now_ms) {
  while (!timers_.empty() && timers_.front().due_ms <= now_ms) {
    std::pop_heap(timers_.begin(), timers_.end(), std::greater<Timer>());
    Timer timer = std::move(timers_.back());
    timers_.pop_back();
    Session* session = find_session(timer.client_id);
    // A reconnect (or a newer disconnect) bumped the generation: this entry is stale.
    if (session == nullptr || session->timer_generation != timer.generation || session->connection != nullptr) {
      continue;
    }
    if (timer.is_will) {
      if (session->will_pending) {
        publish_will_message(session);
        journal_session(session);  // --persistence: the will is not published again after a restart
      }
    } else {
      LOG_DEBUG("session of client '%s' expired", session->client_id);
      ++counters_.sessions_expired;
      destroy_session(session);
    }
  }
}

void ShardState::fail_over_shared_deliveries(Session* session) {
  // Messages a shared subscription gave this session and that it never completed go to
  // another member of the group (MQTT 5 section 4.8.2). A QoS 2 message whose PUBREC
  // came back was received and is not sent again.
  std::vector<std::pair<std::string, MessageRef>> orphans;
  // --persistence: the session's records go with it (journal_session_gone, a range delete).
  release_stored_outgoing(session);
  for (size_t i = 0; i < session->inflight.size(); ++i) {
    OutgoingInflight& inflight = session->inflight[i];
    if (!inflight.delivery.shared_group.empty() && !inflight.pubrec_received) {
      orphans.emplace_back(std::move(inflight.delivery.shared_group), std::move(inflight.message));
    }
  }
  for (size_t i = 0; i < session->queue.size(); ++i) {
    QueuedDelivery& queued = session->queue[i];
    if (!queued.delivery.shared_group.empty() && queued.delivery.qos > 0) {
      orphans.emplace_back(std::move(queued.delivery.shared_group), std::move(queued.message));
    }
  }
  session->inflight.clear();
  session->queue.clear();
  for (auto& [group_key, message] : orphans) {
    SharedSubscriptions::Group* group = shared_.find(group_key);
    if (group == nullptr) continue;
    dispatch_shared(message, *group, 0);
  }
}

}  // namespace coremq::broker
