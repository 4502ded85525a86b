// The trace reader of stash-replay (bench/trace_reader.hpp) and the replay loop (bench/replay.hpp).
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "../bench/allocators/ordered_allocator.hpp"
#include "../bench/allocators/stash_allocators.hpp"
#include "../bench/replay.hpp"
#include "../bench/trace_reader.hpp"
#include "stash/allocators.hpp"

using stash::bench::parse_trace_string;
using stash::bench::trace;
using stash::bench::trace_error;
using Catch::Matchers::Contains;

namespace {

constexpr const char* header = "Thread,Time,Action,Pointer,Size,Stream\n";

std::string csv(const std::string& body) { return header + body; }

}  // namespace

TEST_CASE("trace reader: allocations and frees become slot operations", "[trace]") {
  const trace t = parse_trace_string(csv("0,00:00:00.000001,allocate,0x7f0000001000,1000,0x0\n"
                                         "0,00:00:00.000002,allocate,0x7f0000002000,3000,0x0\n"
                                         "0,00:00:00.000003,free,0x7f0000001000,1000,0x0\n"
                                         "0,00:00:00.000004,allocate,0x7f0000003000,500,0x0\n"),
                                     "small");
  CHECK(t.name == "small");
  REQUIRE(t.ops.size() == 4);
  CHECK(t.allocations == 3);
  CHECK(t.frees == 1);
  CHECK(t.skipped_frees == 0);
  CHECK(t.peak_live_bytes == 4000);
  CHECK_FALSE(t.ops[0].is_free);
  CHECK(t.ops[0].size == 1000);
  CHECK(t.ops[1].slot != t.ops[0].slot);
  CHECK(t.ops[2].is_free);
  CHECK(t.ops[2].slot == t.ops[0].slot);
  CHECK(t.ops[2].size == 1000);  // a free carries the size of its allocation
  // The slot freed by op 2 is handed to the next allocation: the slot array stays as small as the
  // most blocks live at once.
  CHECK(t.ops[3].slot == t.ops[0].slot);
  CHECK(t.slot_count == 2);
  REQUIRE(t.live_at_end.size() == 2);
  for (const auto& op : t.live_at_end) CHECK(op.is_free);
}

TEST_CASE("trace reader: an address reused after its free is a new block", "[trace]") {
  const trace t = parse_trace_string(csv("0,1,allocate,0x1000,256,0x0\n"
                                         "0,2,free,0x1000,256,0x0\n"
                                         "0,3,allocate,0x1000,4096,0x0\n"
                                         "0,4,free,0x1000,4096,0x0\n"));
  REQUIRE(t.ops.size() == 4);
  CHECK(t.allocations == 2);
  CHECK(t.frees == 2);
  CHECK(t.ops[3].size == 4096);  // the second life of the address, not the first
  CHECK(t.peak_live_bytes == 4096);
  CHECK(t.live_at_end.empty());
  CHECK(t.slot_count == 1);
}

TEST_CASE("trace reader: frees of addresses that are not live are skipped and counted", "[trace]") {
  const trace t = parse_trace_string(csv("0,1,free,0xdead000,256,0x0\n"     // allocated before recording
                                         "0,2,allocate,0x1000,256,0x0\n"
                                         "0,3,free,0x1000,256,0x0\n"
                                         "0,4,free,0x1000,256,0x0\n"        // second free
                                         "0,5,allocate failure,0x0,1024,0x0\n"));
  CHECK(t.skipped_frees == 2);
  CHECK(t.skipped_failures == 1);
  CHECK(t.ops.size() == 2);
  CHECK(t.frees == 1);
}

TEST_CASE("trace reader: columns are found by name, blank lines and CRLF are accepted", "[trace]") {
  const trace t = parse_trace_string("Action,Size,Pointer\r\n"
                                     "allocate,512,7f00\r\n"
                                     "\r\n"
                                     "free,512,0x7F00\r\n");
  REQUIRE(t.ops.size() == 2);
  CHECK(t.ops[0].size == 512);
  CHECK(t.ops[1].is_free);
}

TEST_CASE("trace reader: a malformed trace is an error naming the line", "[trace]") {
  auto parse = [](const std::string& text) { return parse_trace_string(text, "bad.csv"); };
  CHECK_THROWS_AS(parse(""), trace_error);
  CHECK_THROWS_WITH(parse("0,1,allocate,0x1000,256,0x0\n"), Contains("bad.csv:1") && Contains("header"));
  CHECK_THROWS_WITH(parse(csv("0,1,allocate,0x1000,256\n")),
                    Contains("bad.csv:2") && Contains("6 comma-separated"));
  CHECK_THROWS_WITH(parse(csv("0,1,reallocate,0x1000,256,0x0\n")),
                    Contains("bad.csv:2") && Contains("unknown action"));
  CHECK_THROWS_WITH(parse(csv("0,1,allocate,0xzz,256,0x0\n")),
                    Contains("bad.csv:2") && Contains("bad pointer"));
  CHECK_THROWS_WITH(parse(csv("0,1,allocate,0x1000,12k,0x0\n")),
                    Contains("bad.csv:2") && Contains("bad size"));
  CHECK_THROWS_WITH(parse(csv("0,1,allocate,0x1000,-5,0x0\n")), Contains("bad size"));
  CHECK_THROWS_WITH(parse(csv("0,1,allocate,0x1000,0,0x0\n")), Contains("0 bytes"));
  CHECK_THROWS_WITH(parse(csv("0,1,allocate,0x1000,256,0x0\n0,2,allocate,0x1000,256,0x0\n")),
                    Contains("bad.csv:3") && Contains("already live"));
}

TEST_CASE("trace reader: a missing file is an error naming it", "[trace]") {
  CHECK_THROWS_WITH(stash::bench::read_trace("/nonexistent/trace.csv"), Contains("/nonexistent/trace.csv"));
}

namespace {

// Hands out fake addresses and checks that every free matches a live allocation of the same size.
class checking_allocator final : public stash::bench::replayable<checking_allocator> {
 public:
  std::string_view name() const noexcept override { return "checking"; }
  void* allocate(std::size_t n) override {
    void* p = reinterpret_cast<void*>(next_ += 4096);
    live_.emplace(p, n);
    ++allocations_;
    return p;
  }
  void deallocate(void* p, std::size_t n) override {
    const auto it = live_.find(p);
    if (it == live_.end() || it->second != n) ++mismatches_;
    if (it != live_.end()) live_.erase(it);
    ++frees_;
  }
  void empty_cache() override {}
  std::size_t peak_reserved_bytes() const override { return 6000; }
  std::optional<std::uint64_t> backend_allocs() const override { return allocations_; }

  std::map<void*, std::size_t> live_;
  std::uintptr_t next_ = 0;
  std::uint64_t allocations_ = 0, frees_ = 0, mismatches_ = 0;
};

}  // namespace

TEST_CASE("replay: every op is played, and what the trace leaves live is freed after each replay",
          "[trace]") {
  const trace t = parse_trace_string(csv("0,1,allocate,0x1000,1000,0x0\n"
                                         "0,2,allocate,0x2000,2000,0x0\n"
                                         "0,3,free,0x1000,1000,0x0\n"
                                         "0,4,allocate,0x3000,1000,0x0\n"),
                                     "replayed");
  checking_allocator allocator;
  const auto r = stash::bench::measure_replay(allocator, t, /*warm=*/3);
  CHECK(allocator.mismatches_ == 0);
  CHECK(allocator.live_.empty());
  CHECK(allocator.allocations_ == 4 * 3);  // cold + 3 warm replays, 3 allocations each
  CHECK(allocator.frees_ == 4 * 3);
  CHECK(r.trace == "replayed");
  CHECK(r.allocator == "checking");
  CHECK(r.ops == 4);
  CHECK(r.peak_live_bytes == 3000);
  CHECK(r.peak_reserved_bytes == 6000);
  REQUIRE(r.reserved_over_live.has_value());
  CHECK(*r.reserved_over_live == Approx(2.0));
  CHECK(r.backend_allocs == std::optional<std::uint64_t>(3));  // taken after the cold replay
  REQUIRE(r.ns_per_op_cold.has_value());
  REQUIRE(r.ns_per_op_warm.has_value());
  CHECK(*r.ns_per_op_cold > 0);
  CHECK(*r.ns_per_op_warm > 0);
}

TEST_CASE("replay: figures that are undefined are empty, never inf or nan", "[trace]") {
  checking_allocator allocator;
  // A trace of frees only (all skipped) has no ops and no bytes live.
  const trace empty = parse_trace_string(csv("0,1,free,0x1000,256,0x0\n"), "empty");
  REQUIRE(empty.ops.empty());
  const auto r = stash::bench::measure_replay(allocator, empty, /*warm=*/3);
  CHECK(r.ops == 0);
  CHECK_FALSE(r.ns_per_op_cold.has_value());
  CHECK_FALSE(r.ns_per_op_warm.has_value());
  CHECK_FALSE(r.reserved_over_live.has_value());
  // No warm replay asked for: no warm figure, the cold one stands.
  const trace one = parse_trace_string(csv("0,1,allocate,0x1000,256,0x0\n"), "one");
  const auto cold_only = stash::bench::measure_replay(allocator, one, /*warm=*/0);
  CHECK(cold_only.ns_per_op_cold.has_value());
  CHECK_FALSE(cold_only.ns_per_op_warm.has_value());
  CHECK(cold_only.reserved_over_live.has_value());
}

TEST_CASE("trace reader: sizes are bounded by the allocators' limit and the live count cannot wrap",
          "[trace]") {
  using stash::bench::max_allocation_size;
  STATIC_REQUIRE(max_allocation_size == stash::simulated_caching_allocator::max_size());
  STATIC_REQUIRE(max_allocation_size == stash::simulated_pow2_allocator::max_size());
  auto parse = [](const std::string& text) { return parse_trace_string(text, "big.csv"); };
  const std::string limit = std::to_string(max_allocation_size);
  const std::string above = std::to_string(max_allocation_size + 1);

  const trace at_limit = parse(csv("0,1,allocate,0x1000," + limit + ",0x0\n"));
  CHECK(at_limit.peak_live_bytes == max_allocation_size);
  CHECK_THROWS_WITH(parse(csv("0,1,allocate,0x1000," + above + ",0x0\n")),
                    Contains("big.csv:2") && Contains("above the allocators' limit"));
  CHECK_THROWS_WITH(parse(csv("0,1,allocate,0x1000,9223372036854775808,0x0\n")),  // 2^63
                    Contains("above the allocators' limit"));
  CHECK_THROWS_WITH(parse(csv("0,1,allocate,0x1000,18446744073709551616,0x0\n")),  // 2^64
                    Contains("bad size"));
  // Four live blocks at the limit would be 2^64 bytes live: the fourth is refused, not wrapped.
  const std::string four = csv("0,1,allocate,0x1000," + limit + ",0x0\n0,2,allocate,0x2000," + limit +
                               ",0x0\n0,3,allocate,0x3000," + limit + ",0x0\n0,4,allocate,0x4000," + limit +
                               ",0x0\n");
  CHECK_THROWS_WITH(parse(four), Contains("big.csv:5") && Contains("more bytes live"));
  // Freed in between, the same sizes are fine.
  const trace reused = parse(csv("0,1,allocate,0x1000," + limit + ",0x0\n0,2,free,0x1000," + limit +
                                 ",0x0\n0,3,allocate,0x2000," + limit + ",0x0\n"));
  CHECK(reused.peak_live_bytes == max_allocation_size);
}

TEST_CASE("trace reader: the Stream column gives each op the index of its stream", "[trace][stream]") {
  const trace t = parse_trace_string(csv("0,1,allocate,0x1000,256,0x0\n"
                                         "0,2,allocate,0x2000,512,0x7f00aa\n"
                                         "0,3,free,0x1000,256,0x7f00aa\n"  // freed on another stream
                                         "0,4,allocate,0x3000,1024,0x7f00bb\n"
                                         "0,5,allocate,0x4000,1024,0x0\n"));
  REQUIRE(t.streams == std::vector<std::uint64_t>{0x0, 0x7f00aa, 0x7f00bb});
  REQUIRE(t.ops.size() == 5);
  CHECK(t.ops[0].stream == 0);
  CHECK(t.ops[1].stream == 1);
  CHECK(t.ops[2].stream == 1);
  CHECK(t.ops[3].stream == 2);
  CHECK(t.ops[4].stream == 0);
  // Blocks left live are freed on the stream they were allocated on.
  REQUIRE(t.live_at_end.size() == 3);
  CHECK(t.live_at_end[0].stream == 2);  // by slot: 0x3000 took the slot 0x1000 freed
  CHECK(t.live_at_end[1].stream == 1);  // 0x2000
  CHECK(t.live_at_end[2].stream == 0);  // 0x4000

  CHECK_THROWS_AS(parse_trace_string(csv("0,1,allocate,0x1000,256,stream7\n")), stash::bench::trace_error);
  const trace none = parse_trace_string("Action,Pointer,Size\nallocate,0x1000,256\n");
  CHECK(none.streams == std::vector<std::uint64_t>{0});
  CHECK(none.ops[0].stream == 0);
}

TEST_CASE("replay: warm_page_work counts a paged stash's page operations in the warm replays alone",
          "[trace][paged]") {
  // 6 MiB, a 2 MiB guard above it, the 6 MiB freed, then 8 MiB: under a bound at the live peak the idle
  // pages below the guard move up to the 8 MiB block, and every replay starts the dance again.
  const trace t = parse_trace_string(csv("0,1,allocate,0x1000,6291456,0x0\n"
                                         "0,2,allocate,0x2000,2097152,0x0\n"
                                         "0,3,free,0x1000,6291456,0x0\n"
                                         "0,4,allocate,0x3000,8388608,0x0\n"
                                         "0,5,free,0x3000,8388608,0x0\n"
                                         "0,6,free,0x2000,2097152,0x0\n"),
                                     "moves");
  using adapter = stash::bench::stash_adapter<stash::simulated_caching_allocator>;
  stash::caching_options bound;
  bound.max_held_over_live = 1.0;
  bound.small_region = false;
  const bool bounded = GENERATE(false, true);
  INFO((bounded ? "bound 1.0" : "default rules"));
  const stash::caching_options o = bounded ? bound : stash::caching_options{};
  adapter warmed("stash", o), cold_only("stash", o);
  const auto r = stash::bench::measure_replay(warmed, t, /*warm=*/3);
  const auto cold = stash::bench::measure_replay(cold_only, t, /*warm=*/0);
  REQUIRE(r.warm_page_work.has_value());
  REQUIRE(cold.warm_page_work.has_value());
  CHECK(*cold.warm_page_work == 0);  // no warm replay
  const auto s = warmed.allocator().stats();
  CHECK(*warmed.page_work() == s.backend_allocations + s.backend_frees + warmed.allocator().page_moves() +
                                   warmed.allocator().alias_unmaps());
  CHECK(*cold_only.page_work() > 0);  // the cold replay mapped the pages
  CHECK(*r.warm_page_work == *warmed.page_work() - *cold_only.page_work());
  if (bounded) CHECK(*r.warm_page_work > 0);
  else CHECK(*r.warm_page_work == 0);  // served from the cache alone
}

TEST_CASE("replay: allocators that do not tell their page work report none", "[trace]") {
  const trace t = parse_trace_string(csv("0,1,allocate,0x1000,1000,0x0\n"), "none");
  checking_allocator allocator;
  CHECK_FALSE(stash::bench::measure_replay(allocator, t, /*warm=*/2).warm_page_work.has_value());
}

TEST_CASE("replay: warm_events counts the events a stream-ordered stash records in the warm replays alone",
          "[trace][streams]") {
  // More frees on one stream than an epoch holds: every replay closes the stream's epoch at least once.
  using layer = stash::detail::stream_layer<stash::bench::counting_ordering>;
  std::string lines;
  for (std::size_t i = 0; i < layer::frees_per_epoch + 100; ++i)
    lines += "0," + std::to_string(2 * i) + ",allocate,0x1000,4096,0x0\n0," + std::to_string(2 * i + 1) +
             ",free,0x1000,4096,0x0\n";
  const trace t = parse_trace_string(csv(lines), "one epoch and more");
  using ordered = stash::bench::stash_adapter<stash::bench::simulated_ordered_allocator>;
  ordered warmed("stash-ordered"), cold_only("stash-ordered");
  const auto r = stash::bench::measure_replay(warmed, t, /*warm=*/3);
  const auto cold = stash::bench::measure_replay(cold_only, t, /*warm=*/0);
  REQUIRE(r.warm_events.has_value());
  CHECK(*warmed.events_recorded() == warmed.allocator().ordering().stats().records);
  CHECK(*cold.warm_events == 0);
  CHECK(*r.warm_events == *warmed.events_recorded() - *cold_only.events_recorded());
  CHECK(*r.warm_events >= 3);  // a close at least per warm replay

  stash::bench::stash_adapter<stash::simulated_caching_allocator> host("stash");
  const auto h = stash::bench::measure_replay(host, t, /*warm=*/3);
  REQUIRE(h.warm_events.has_value());
  CHECK(*h.warm_events == 0);  // host order records no event
  checking_allocator other;
  CHECK_FALSE(stash::bench::measure_replay(other, t, /*warm=*/1).warm_events.has_value());
}
