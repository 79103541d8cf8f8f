// Retained message bookkeeping; see retained_store.h.
#include "broker/retained_store.h"

namespace coremq::broker {

RetainedStore::Update RetainedStore::update(const MessageRef& message) {
  COREMQ_ASSERT(message);
  std::string_view topic = message->topic();
  auto found = messages_.find(topic);
  if (message->payload().empty()) {
    if (found == messages_.end()) return Update::kNothingToClear;
    messages_.erase(found);
    return Update::kCleared;
  }
  if (found != messages_.end()) {
    found->second = message;
    return Update::kReplaced;
  }
  if (messages_.size() >= max_messages_) return Update::kLimitReached;
  messages_.emplace(std::string(topic), message);
  return Update::kStored;
}

}  // namespace coremq::broker
