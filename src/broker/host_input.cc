// See host_input.h.
#include "broker/host_input.h"

#include "mqtt/decoder.h"
#include "topic/topic.h"

namespace coremq::broker {

bool valid_host_text(std::string_view text) { return text.size() <= 65535 && mqtt::is_valid_utf8_string(text); }

bool valid_host_topic(std::string_view topic, uint32_t max_levels) {
  uint32_t levels = 0;
  return valid_host_text(topic) && topic::is_valid_topic_name(topic, &levels) && levels <= max_levels;
}

bool valid_host_properties(const MessageProperties& properties) {
  if (properties.payload_format_indicator && *properties.payload_format_indicator > 1) return false;
  if (properties.content_type && !valid_host_text(*properties.content_type)) return false;
  if (properties.response_topic &&
      (!valid_host_text(*properties.response_topic) || !topic::is_valid_topic_name(*properties.response_topic))) {
    return false;
  }
  if (properties.correlation_data && properties.correlation_data->size() > 65535) return false;
  for (const UserProperty& property : properties.user_properties) {
    if (!valid_host_text(property.name) || !valid_host_text(property.value)) return false;
  }
  return true;
}

}  // namespace coremq::broker
