// The web dashboard at / of the HTTP admin listener: static HTML, CSS and JavaScript
// (src/admin/dashboard/) embedded in the binary at build time (embed_assets.py), plus
// Debian's Chart.js (libjs-chart.js), read once at start from kChartJsPath. The page reads the
// JSON admin API only. Built on the controlling thread; serve() runs on the admin thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "admin/http_server.h"

namespace coremq::admin {

struct EmbeddedAsset {
  std::string_view name;  // "Index", "Css", "Js"
  std::string_view bytes;
};
// Defined in the generated dashboard_assets.cc; null for an unknown name.
const EmbeddedAsset* embedded_asset(std::string_view name);

class Dashboard {
 public:
  // Where Debian's libjs-chart.js installs Chart.js 3 (UMD build: defines window.Chart).
  static constexpr const char* kChartJsPath = "/usr/share/javascript/chart.js/chart.min.js";
  // Chart.js bigger than this is not read (a sanity bound; Debian's is about 200 KB).
  static constexpr size_t kChartJsBytesMax = 4 << 20;

  // Reads Chart.js (a warning and a stub script if it is missing: the page then shows numbers
  // without charts).
  static Dashboard load();
  // The response for `path` if it is one of the dashboard's, else nullopt.
  std::optional<HttpResponse> serve(std::string_view path) const;

 private:
  std::string chart_js_;
};

}  // namespace coremq::admin
