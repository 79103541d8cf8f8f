// Telling systemd how the service is doing (sd_notify(3)): READY=1 once every listener accepts
// connections (the unit is Type=notify, so `systemctl start` returns only then and units ordered
// after coremq find it listening), RELOADING=1 ... READY=1 around a SIGHUP reload, STOPPING=1 at
// shutdown. Without libsystemd at build time (meson's dependency('libsystemd', required: false))
// or without $NOTIFY_SOCKET at run time (not started by systemd) each call does nothing.
// Main thread only.
#pragma once

#include <string>

namespace coremq::app {

// Whether this build can notify systemd (it was built with libsystemd).
bool service_notify_supported();

// READY=1 with a STATUS= line shown by `systemctl status`.
void notify_ready(const std::string& status);

// RELOADING=1 with MONOTONIC_USEC= (what systemd 253's Type=notify-reload asks for; earlier
// versions ignore it); the caller sends notify_ready when the reload is done.
void notify_reloading();

// STOPPING=1: the service is shutting down on purpose.
void notify_stopping();

}  // namespace coremq::app
