// A fixed flag catalog for the config reader's unit tests and its fuzzer: the binary's kinds
// of flags (bool, number with a range, string) with some of their real names and ranges, so
// every path of the mapping is reachable without linking the binary's absl flags (the real
// catalog is built from them in src/app/config_flags.cc). Header-only; shared by
// tests/unit/config and tests/fuzz/fuzz_config.cc.
#pragma once

#include "config/config_file.h"

namespace coremq::testing {

inline const config::FlagCatalog& config_test_catalog() {
  using config::FlagType;
  static const config::FlagCatalog kCatalog = {
      {"bind", {FlagType::kString}},
      {"port", {FlagType::kUint32, 0, 65535}},
      {"threads", {FlagType::kUint32, 0, 256}},
      {"max_connections", {FlagType::kUint32, 1, 50'000'000}},
      {"max_inflight", {FlagType::kUint32, 1, 65535}},
      {"max_queued_messages", {FlagType::kUint32}},
      {"max_packet_size", {FlagType::kUint32, 64, 268'435'460}},
      {"max_keepalive", {FlagType::kUint32, 1, 65535}},
      {"max_topic_levels", {FlagType::kUint32, 1, 65536}},
      {"max_qos", {FlagType::kUint32, 0, 2}},
      {"topic_alias_maximum", {FlagType::kUint32, 0, 65535}},
      {"retain_available", {FlagType::kBool}},
      {"pin_threads", {FlagType::kBool}},
      {"log_level", {FlagType::kString}},
      {"log_dest", {FlagType::kString}},
      {"sys_interval", {FlagType::kUint32, 0, 86400}},
      {"response_information_prefix", {FlagType::kString}},
      {"persistence", {FlagType::kString}},
      {"data_dir", {FlagType::kString}},
  };
  return kCatalog;
}

}  // namespace coremq::testing
