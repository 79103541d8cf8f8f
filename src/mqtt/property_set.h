// The decoded form of an MQTT 5 property block (section 2.2.2): one optional per property that may
// appear at most once, counts of the repeatable ones, and a view of the raw block. Pure data, split
// from properties.h so that packet.h can embed it in every packet that carries properties. Usable
// from any thread; a Properties lives no longer than the bytes it was decoded from.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace coremq::mqtt {

struct UserProperty {
  std::string_view name;
  std::string_view value;
};

// A decoded property block. Each optional is the presence flag and value of one property; absent
// means the spec's default applies (kept out of the struct so that "absent" and "sent with the
// default value" stay distinguishable, which matters when forwarding). The repeatable properties
// are counted here and walked with PropertyCursor over `encoded`.
struct Properties {
  std::optional<uint8_t> payload_format_indicator;  // 0 unspecified bytes, 1 UTF-8
  std::optional<uint32_t> message_expiry_interval_seconds;
  std::optional<std::string_view> content_type;
  std::optional<std::string_view> response_topic;
  std::optional<std::string_view> correlation_data;
  std::optional<uint32_t> subscription_identifier;  // the first one; see subscription_identifier_count
  std::optional<uint32_t> session_expiry_interval_seconds;
  std::optional<std::string_view> assigned_client_identifier;
  std::optional<uint16_t> server_keep_alive_seconds;
  std::optional<std::string_view> authentication_method;
  std::optional<std::string_view> authentication_data;
  std::optional<uint8_t> request_problem_information;
  std::optional<uint32_t> will_delay_interval_seconds;
  std::optional<uint8_t> request_response_information;
  std::optional<std::string_view> response_information;
  std::optional<std::string_view> server_reference;
  std::optional<std::string_view> reason_string;
  std::optional<uint16_t> receive_maximum;
  std::optional<uint16_t> topic_alias_maximum;
  std::optional<uint16_t> topic_alias;
  std::optional<uint8_t> maximum_qos;
  std::optional<uint8_t> retain_available;
  std::optional<uint32_t> maximum_packet_size;
  std::optional<uint8_t> wildcard_subscription_available;
  std::optional<uint8_t> subscription_identifier_available;
  std::optional<uint8_t> shared_subscription_available;

  // Set by the decoder only; the encoder takes repeated properties as separate spans.
  uint32_t user_property_count = 0;
  uint32_t subscription_identifier_count = 0;
  std::span<const uint8_t> encoded;  // the properties themselves, without the Property Length
};

}  // namespace coremq::mqtt
