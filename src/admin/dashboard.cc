// Dashboard (see dashboard.h).
#include "admin/dashboard.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "base/log.h"

namespace coremq::admin {

Dashboard Dashboard::load() {
  Dashboard dashboard;
  struct stat status {};
  if (stat(kChartJsPath, &status) == 0 && S_ISREG(status.st_mode) &&
      static_cast<size_t>(status.st_size) <= kChartJsBytesMax) {
    std::ifstream file(kChartJsPath, std::ios::binary);
    std::ostringstream contents;
    contents << file.rdbuf();
    dashboard.chart_js_ = contents.str();
  }
  if (dashboard.chart_js_.empty()) {
    LOG_WARNING("dashboard: %s is missing or unreadable (apt-get install libjs-chart.js): no charts",
                kChartJsPath);
    dashboard.chart_js_ = "/* Chart.js is not installed: the dashboard shows numbers only. */\n";
  }
  return dashboard;
}

std::optional<HttpResponse> Dashboard::serve(std::string_view path) const {
  HttpResponse response;
  std::string_view asset;
  if (path == "/" || path == "/index.html") {
    asset = "Index";
    response.content_type = "text/html; charset=utf-8";
  } else if (path == "/dashboard.css") {
    asset = "Css";
    response.content_type = "text/css; charset=utf-8";
  } else if (path == "/dashboard.js") {
    asset = "Js";
    response.content_type = "text/javascript; charset=utf-8";
  } else if (path == "/chart.min.js") {
    response.content_type = "text/javascript; charset=utf-8";
    response.body = chart_js_;
    return response;
  } else {
    return std::nullopt;
  }
  const EmbeddedAsset* embedded = embedded_asset(asset);
  if (embedded == nullptr) return std::nullopt;
  response.body = std::string(embedded->bytes);
  return response;
}

}  // namespace coremq::admin
