// CI memory guard: replays every benchmark trace (bench/traces/*.csv) on the simulated backend, which
// needs no GPU and gives the same memory figures as a GPU would, once cold and three times warm, and
// fails when an allocator's peak over those replays is more over the live bytes than the figure
// committed in bench/memory_baseline.json (plus its tolerance). The peak over several replays is what
// a job that repeats its steps holds: a rule that settles its layout in the first replay and one that
// settles it in the second hold the same there, and the cold replay's peak is never above it. An
// improvement passes, with a note asking for the baseline to be lowered.
//
// Where the files are: the traces in $STASH_TRACES_DIR when it is set (a copy of the repo on another
// machine), else in the bench/traces folder of the source tree the suite was built from; the
// baseline is memory_baseline.json in the folder above the traces (bench/).
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "../bench/allocators/ordered_allocator.hpp"
#include "../bench/allocators/stash_allocators.hpp"
#include "../bench/least_memory.hpp"
#include "../bench/replay.hpp"
#include "../bench/trace_reader.hpp"
#include "support/traces.hpp"

namespace {

using stash_test::traces_dir;

struct baseline_entry {
  std::string trace;
  std::string allocator;
  double settled_reserved_over_live;
};

struct baseline {
  double tolerance = 0;
  std::vector<baseline_entry> entries;
  std::map<std::string, std::uint64_t> cold_before_streams;  // trace -> 039b03f's cold peak reserved bytes

  const baseline_entry* find(const std::string& trace, const std::string& allocator) const {
    for (const auto& e : entries)
      if (e.trace == trace && e.allocator == allocator) return &e;
    return nullptr;
  }
};

// The file is plain JSON written by hand (or from `stash-replay --json`); the guard reads the few
// fields it needs with patterns instead of depending on a JSON library.
baseline read_baseline(const std::filesystem::path& file) {
  std::ifstream in(file);
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  const std::string json = text.str();

  baseline b;
  std::smatch m;
  const std::regex tolerance(R"re("tolerance"\s*:\s*([0-9.eE+-]+))re");
  REQUIRE(std::regex_search(json, m, tolerance));
  b.tolerance = std::stod(m[1]);

  const std::regex object(R"re(\{[^{}]*\})re");
  const std::regex trace(R"re("trace"\s*:\s*"([^"]*)")re");
  const std::regex allocator(R"re("allocator"\s*:\s*"([^"]*)")re");
  const std::regex ratio(R"re("settled_reserved_over_live"\s*:\s*([0-9.eE+-]+))re");
  const std::regex cold_bytes(R"re("peak_reserved_bytes"\s*:\s*([0-9]+))re");
  for (auto it = std::sregex_iterator(json.begin(), json.end(), object); it != std::sregex_iterator(); ++it) {
    const std::string o = it->str();
    std::smatch t, a, r;
    if (std::regex_search(o, t, trace) && std::regex_search(o, a, allocator) &&
        std::regex_search(o, r, ratio))
      b.entries.push_back({t[1], a[1], std::stod(r[1])});
    else if (std::smatch c; std::regex_search(o, t, trace) && std::regex_search(o, c, cold_bytes))
      b.cold_before_streams[t[1]] = std::stoull(c[1]);
  }
  return b;
}

/// Every *.csv of traces_dir(), which must hold some.
std::vector<std::filesystem::path> benchmark_traces() {
  const auto dir = traces_dir();
  if (!std::filesystem::is_directory(dir)) FAIL("no trace folder at " << dir.string());
  auto traces = stash::bench::list_traces(dir);
  REQUIRE_FALSE(traces.empty());
  return traces;
}

}  // namespace

TEST_CASE(
    "memory guard: reserved/live over a cold and three warm replays stays within the committed baseline",
    "[trace][memory]") {
  const auto dir = traces_dir();
  if (!std::filesystem::is_directory(dir))
    FAIL("no trace folder at " << dir.string() << ": set STASH_TRACES_DIR to the bench/traces folder of a "
         "copy of the repository");
  INFO("traces: " << dir.string() << " (STASH_TRACES_DIR to change)");
  const auto traces = stash::bench::list_traces(dir);
  REQUIRE_FALSE(traces.empty());
  const baseline base = read_baseline((dir / ".." / "memory_baseline.json").lexically_normal());
  REQUIRE(base.tolerance >= 0);

  for (const auto& file : traces) {
    const auto t = stash::bench::read_trace(file);
    stash::bench::stash_adapter<stash::simulated_caching_allocator> stash_default("stash");
    stash::bench::stash_adapter<stash::simulated_pow2_allocator> stash_pow2("stash-pow2");
    stash::caching_options fill;  // every small request fills, no rule for
                                  // the top (stash.torch's, until 2026-11-30)
    fill.small_fill_mapped = true;
    stash::bench::stash_adapter<stash::simulated_caching_allocator> stash_small_fill("stash-small-fill",
                                                                                     fill);
    stash::caching_options no_fill;  // no small request fills (the default until 2026-11-30)
    no_fill.fill_mapped_above = SIZE_MAX;
    stash::bench::stash_adapter<stash::simulated_caching_allocator> stash_no_fill("stash-no-fill", no_fill);
    // Every trace is also replayed stream-ordered with events completing at once (the GPU composition,
    // as a replay on the GPU holds), each stream on a handle of its own; a trace of several streams
    // also with events two records late: where its streams' frees wait for each other, it holds more
    // than in host order, as on the GPU.
    using ordered = stash::bench::stash_adapter<stash::bench::simulated_ordered_allocator>;
    ordered stash_ordered("stash-ordered");
    std::optional<ordered> stash_lagged;
    std::vector<stash::bench::replay_allocator*> allocators{&stash_default, &stash_pow2, &stash_small_fill,
                                                            &stash_no_fill, &stash_ordered};
    if (t.streams.size() > 1) {
      stash_lagged.emplace("stash-lagged", stash::caching_options{},
                           stash::bench::counting_ordering{stash::bench::lagged_records});
      allocators.push_back(&*stash_lagged);
    }
    for (stash::bench::replay_allocator* allocator : allocators) {
      const auto r = stash::bench::measure_replay(*allocator, t, /*warm=*/3);
      REQUIRE(r.settled_reserved_over_live.has_value());  // every benchmark trace has bytes live
      REQUIRE(r.reserved_over_live.has_value());
      CHECK(*r.reserved_over_live <= *r.settled_reserved_over_live);
      const double ratio = *r.settled_reserved_over_live;
      const auto* expected = base.find(r.trace, r.allocator);
      INFO(r.trace << " / " << r.allocator << ": peak live " << r.peak_live_bytes << " B, peak reserved "
                   << r.settled_peak_reserved_bytes << " B (cold replay " << r.peak_reserved_bytes
                   << " B), reserved/live " << ratio);
      if (expected == nullptr)
        FAIL_CHECK("no figure in memory_baseline.json: add one for this trace and allocator");
      if (expected == nullptr) continue;
      INFO("baseline " << expected->settled_reserved_over_live << " + tolerance " << base.tolerance);
      CHECK(ratio <= expected->settled_reserved_over_live + base.tolerance);
      if (ratio < expected->settled_reserved_over_live - base.tolerance)
        WARN("better than the baseline: lower the figure in bench/memory_baseline.json to keep the gain");
      // Issue 7: by default (fill_mapped_above at 8 KiB), host and stream ordered, the cold replay holds
      // no more than the code before streams did (byte for byte, no tolerance). With the fill off,
      // 7 traces hold more.
      if (r.allocator == "stash" || r.allocator == "stash-ordered") {
        const auto before = base.cold_before_streams.find(r.trace);
        if (before != base.cold_before_streams.end()) {
          INFO("cold replay: " << r.peak_reserved_bytes << " B held; before streams (039b03f) "
                               << before->second << " B");
          CHECK(r.peak_reserved_bytes <= before->second);
        }
      }
    }
  }
}

// caching_options::max_held_over_live is a bound, not a figure to keep: every trace stays within it on
// its cold replay and on a warm one (where the idle pages keep moving instead of new ones being mapped).
TEST_CASE(
    "memory guard: with max_held_over_live = 1.05, no trace holds more than 1.05x its peak of live bytes",
    "[trace][memory]") {
  const auto traces = benchmark_traces();
  for (const auto& file : traces) {
    const auto t = stash::bench::read_trace(file);
    stash::caching_options options;
    options.max_held_over_live = 1.05;
    stash::bench::stash_adapter<stash::simulated_caching_allocator> lean("stash-lean", options);
    const auto r = stash::bench::measure_replay(lean, t, /*warm=*/1);
    REQUIRE(r.reserved_over_live.has_value());
    // Both peaks are read after the warm replay too. The bound is on the bytes of live blocks (requests
    // rounded to 256 bytes), which the trace's own peak of requested bytes can be a little under.
    const auto stats = lean.allocator().stats();
    INFO(r.trace << ": peak live " << stats.peak_allocated_bytes << " B, peak reserved "
                 << stats.peak_reserved_bytes << " B over the cold and the warm replay");
    CHECK(static_cast<double>(stats.peak_reserved_bytes) <=
          1.05 * static_cast<double>(stats.peak_allocated_bytes));
    CHECK(stats.peak_allocated_bytes >= t.peak_live_bytes);
  }
}

// Under a memory limit, stash gives up its cache: idle pages move to where blocks need them, and since
// chunks shrink as the room does (caching_options::chunk_room_share) few stay stuck in chunks that live
// blocks touch in part. A bound, not a figure to keep: every trace completes a cold and two warm replays
// under a limit of 1.045x its live peak (rounded up to whole pages), host and stream ordered, as the memory
// manager's pools are made (limited_backend). The least limits are at most 1.0396 (gpt2_varlen_e2e;
// stash-replay --least-memory), 1.0759 before chunk_room_share (bench/RESULTS.md, fifteenth session).
TEST_CASE(
    "memory guard: under a limit of 1.045x its live peak, every trace completes a cold and two warm replays",
    "[trace][memory][limit]") {
  const auto traces = benchmark_traces();
  using limited_device = stash::limited_backend<stash::simulated_paged_backend>;
  using host_ordered =
      stash::bench::stash_adapter<stash::limited_caching_allocator<stash::simulated_paged_backend>>;
  using stream_ordered = stash::bench::stash_adapter<
      stash::caching_allocator<limited_device, stash::segregated_fit_buckets, stash::spin_lock,
                               stash::basic_stats, stash::bench::counting_ordering>>;
  constexpr std::size_t page = std::size_t{2} << 20;
  for (const auto& file : traces) {
    const auto t = stash::bench::read_trace(file);
    const std::size_t limit =
        (static_cast<std::size_t>(1.045 * static_cast<double>(t.peak_live_bytes)) + page - 1) / page * page;
    host_ordered stash_default("stash", stash::caching_options{});
    stream_ordered stash_ordered("stash-ordered", stash::caching_options{},
                                 stash::bench::counting_ordering{0});
    for (stash::bench::replay_allocator* a : {static_cast<stash::bench::replay_allocator*>(&stash_default),
                                              static_cast<stash::bench::replay_allocator*>(&stash_ordered)}) {
      a->use_streams(stash::bench::simulated_stream_handles(t));
      REQUIRE(a->set_memory_limit(limit));
      INFO(t.name << " / " << a->name() << ": limit " << limit << " B for a live peak of "
                  << t.peak_live_bytes << " B");
      CHECK(stash::bench::replay_within(*a, t, /*warm=*/2));
      CHECK(a->peak_reserved_bytes() <= limit);
    }
  }
}

// PyTorch's multistream workload (scripts/e2e: a copy stream moves each batch and calls record_stream
// onto the compute stream), captured under native PyTorch (run Z5), replayed with that record_stream
// and stash.torch's options, events at once. Filing blocks apart below the small region's top with two
// streams sent a 256 KiB request into a large free block, and a 64 MiB block later needed new pages:
// 1.0505 of the live peak, where 1.0229 is what it held before and holds with the small region filing
// only while one stream allocates (caching_allocator::tag_of). On the H200: 378 -> 386 MiB (run Z4).
TEST_CASE("memory guard: a copy stream with record_stream holds what the small region's layout allows",
          "[trace-memory][streams]") {
  const auto file =
      traces_dir().parent_path() / "experiments" / "2026-11-29-record-stream-drift" / "multistream_e2e.csv";
  const auto t = stash::bench::read_trace(file.string());
  REQUIRE(t.streams.size() == 2);
  stash::caching_options o;
  o.small_fill_mapped = true;
  o.free_records_used_streams = true;
  stash::bench::simulated_ordered_allocator a(stash::simulated_paged_backend{}, o,
                                              stash::bench::counting_ordering{0});
  const auto handles = stash::bench::simulated_stream_handles(t);
  auto on = [&](std::uint8_t i) {
    return stash::stream{static_cast<stash::stream::native_handle_type>(handles[i])};
  };
  std::vector<void*> slots(t.slot_count);
  for (int replay = 0; replay < 4; ++replay) {
    for (const auto& op : t.ops) {
      if (op.is_free) {
        a.deallocate(slots[op.slot], on(op.stream));
        continue;
      }
      slots[op.slot] = a.allocate(op.size, on(op.stream));
      if (op.stream != 0) a.record_stream(slots[op.slot], on(0));
    }
    for (const auto& op : t.live_at_end) a.deallocate(slots[op.slot], on(op.stream));
  }
  const double held = double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes);
  CHECK(held < 1.03);
}
