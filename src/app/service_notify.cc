// sd_notify(3) messages; see service_notify.h.
#include "app/service_notify.h"

#include <time.h>

#include <cstdint>

#include "absl/strings/str_format.h"

#if COREMQ_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace coremq::app {

namespace {

// A failure to notify is not an operating error of the broker: systemd then times the start out
// and says so in its own log, which is where the operator looks.
void send(const std::string& message) {
#if COREMQ_HAVE_LIBSYSTEMD
  (void)sd_notify(/*unset_environment=*/0, message.c_str());
#else
  (void)message;
#endif
}

}  // namespace

bool service_notify_supported() {
  return COREMQ_HAVE_LIBSYSTEMD != 0;
}

void notify_ready(const std::string& status) {
  send("READY=1\nSTATUS=" + status);
}

void notify_reloading() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t microseconds =
      static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
  send(absl::StrFormat("RELOADING=1\nMONOTONIC_USEC=%u\nSTATUS=reloading", microseconds));
}

void notify_stopping() {
  send("STOPPING=1\nSTATUS=stopping");
}

}  // namespace coremq::app
