// /proc and getrusage readers; see proc_stats.h. Main thread only.
#include "proc_stats.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_format.h"

namespace coremq::bench {

double self_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& time) { return static_cast<double>(time.tv_sec) + time.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

bool sample_process(int pid, ProcessSample* sample, std::string* error) {
  std::ifstream stat_file(absl::StrFormat("/proc/%d/stat", pid));
  std::string stat_line;
  if (!stat_file || !std::getline(stat_file, stat_line)) {
    *error = absl::StrFormat("cannot read /proc/%d/stat (is --broker-pid=%d running?)", pid, pid);
    return false;
  }
  // The command name (field 2) is in parentheses and may hold spaces: fields are counted
  // from the last ')'. utime and stime are fields 14 and 15, in clock ticks.
  size_t name_end = stat_line.rfind(')');
  if (name_end == std::string::npos) {
    *error = absl::StrFormat("unexpected format of /proc/%d/stat", pid);
    return false;
  }
  std::istringstream fields(stat_line.substr(name_end + 1));
  std::vector<std::string> values;
  for (std::string value; fields >> value && values.size() < 13;) values.push_back(value);
  if (values.size() < 13) {
    *error = absl::StrFormat("unexpected format of /proc/%d/stat", pid);
    return false;
  }
  double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  sample->cpu_s = (std::strtod(values[11].c_str(), nullptr) + std::strtod(values[12].c_str(), nullptr)) / ticks;

  std::ifstream status_file(absl::StrFormat("/proc/%d/status", pid));
  sample->rss_kb = 0;
  for (std::string line; std::getline(status_file, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      sample->rss_kb = std::strtoull(line.c_str() + 6, nullptr, 10);
      break;
    }
  }
  return true;
}

}  // namespace coremq::bench
