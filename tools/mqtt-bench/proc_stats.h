// CPU time and memory of this process (getrusage) and of the broker under test (/proc/PID/stat
// and /proc/PID/status), sampled by the main thread at the edges of the measurement window so
// a report can tell whether the tool or the broker ran out of CPU.
#pragma once

#include <cstdint>
#include <string>

namespace coremq::bench {

struct ProcessSample {
  double cpu_s = 0;     // user + system
  uint64_t rss_kb = 0;
};

// This process, all threads.
double self_cpu_seconds();

// False (with a message) when the process is gone or /proc cannot be read.
[[nodiscard]] bool sample_process(int pid, ProcessSample* sample, std::string* error);

}  // namespace coremq::bench
