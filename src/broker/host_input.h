// Checks of what an embedding program hands the broker (an in-process client's PUBLISH, a
// message interceptor's rewrite): the same rules a network client's PUBLISH is held to, so
// nothing a host gives can put a packet on the wire that a client would be refused for.
// Any thread.
#pragma once

#include <cstdint>
#include <string_view>

#include "coremq/local_client.h"

namespace coremq::broker {

// A UTF-8 string MQTT can carry (at most 65,535 bytes, no U+0000, well formed).
bool valid_host_text(std::string_view text);
// A topic name (no wildcards) of at most `max_levels` levels.
bool valid_host_topic(std::string_view topic, uint32_t max_levels);
// MQTT 5 message properties: payload format 0/1, UTF-8 strings, a topic-name response topic,
// correlation data and user properties within their lengths.
bool valid_host_properties(const MessageProperties& properties);

}  // namespace coremq::broker
