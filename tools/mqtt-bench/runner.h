// The run controller: starts the workers, walks the phases (connect, publish with warm-up and
// measurement, drain, stop) against the bounds in Options, prints progress, and assembles the
// Report. Runs on the main thread; SIGINT/SIGTERM stop the run early but still report.
#pragma once

#include "options.h"
#include "plan.h"
#include "report.h"

namespace coremq::bench {

// Runs the benchmark and fills *report. Never returns before every worker was joined.
void run_benchmark(const Options& options, const Plan& plan, Report* report);

}  // namespace coremq::bench
