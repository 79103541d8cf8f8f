// Entry point of micro_bench: every bench/micro/*_bench.cc registers into it.
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
