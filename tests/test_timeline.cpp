// stash::timeline: what it records and the page it writes (the browser test renders the page).
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "stash/allocators.hpp"
#include "stash/timeline.hpp"
#include "support/compositions.hpp"

namespace {

/// Polls `done` every millisecond for at most half a second; whether it came true.
template <class Predicate>
bool within_half_a_second(Predicate done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("timeline: a page with one panel per series, peaks marked, nothing fetched", "[timeline]") {
  stash::timeline tl("operations");
  const auto a = tl.add_series("segments <a&b>");
  const auto b = tl.add_series("paged", 2 << 20);
  tl.record(a, 0, 0, 0);
  tl.record(a, 1, 3 << 20, 4 << 20);
  tl.record(a, 2, 1 << 20, 4 << 20);
  tl.record(b, 0, 0, 0);
  tl.record(b, 1, 1 << 20, 6 << 20);
  tl.record(b, 2, 0, 2 << 20);
  const std::string page = tl.html("title \"<x>\"");

  CHECK(page.starts_with("<!DOCTYPE html>"));
  CHECK(page.find("<title>title &quot;&lt;x&gt;&quot;</title>") != std::string::npos);
  CHECK(page.find("<h2>segments &lt;a&amp;b&gt;</h2>") != std::string::npos);
  CHECK(count(page, "<svg") == 2);
  CHECK(count(page, "<polyline") == 2 + 3);  // live, reserved; the paged one also pages
  CHECK(page.find("peak live 3.00 MiB") != std::string::npos);
  CHECK(page.find("peak reserved 4.00 MiB") != std::string::npos);
  CHECK(page.find("peak reserved 6.00 MiB (3 pages)") != std::string::npos);
  CHECK(page.find("peak live 3145728 bytes, peak reserved 4194304 bytes, reserved/live 1.333") !=
        std::string::npos);
  CHECK(page.find(">operations</text>") != std::string::npos);
  // Self-contained: no script, nothing loaded from anywhere.
  CHECK(page.find("<script") == std::string::npos);
  CHECK(page.find("http") == std::string::npos);
  CHECK(page.find("src=") == std::string::npos);
  CHECK(page.find("url(") == std::string::npos);
}

TEST_CASE("timeline: x so large that a step does not move it still gives a page; x not finite is refused",
          "[timeline][errors]") {
  stash::timeline tl("ns");
  const auto a = tl.add_series("a");
  tl.record(a, 1e16, 1 << 20, 2 << 20);  // x_min + 1 == x_min: the ticks once never ended
  tl.record(a, 1e16, 2 << 20, 2 << 20);
  const std::string page = tl.html("large x");
  CHECK(count(page, "<svg") == 1);
  CHECK(page.find("peak live 2.00 MiB") != std::string::npos);
  for (const double bad : {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                           std::numeric_limits<double>::quiet_NaN()}) {
    CHECK_THROWS_AS(tl.record(a, bad, 0, 0), stash::error);
    CHECK_THROWS_AS(tl.record(a, bad, 0, 0, 0), stash::error);
  }
  CHECK(tl.html("large x") == page);  // nothing was recorded
}

TEST_CASE("timeline: finite x however far apart gives a finite page", "[timeline][errors]") {
  // x_max - x_min of two finite x overflowed to infinity, and the x axis' step search never ended.
  stash::timeline tl("ns");
  const auto a = tl.add_series("a");
  const auto b = tl.add_series("b", 0, "other");
  tl.record(a, -std::numeric_limits<double>::max(), 1 << 20, 2 << 20);
  tl.record(a, -1e308, 2 << 20, 2 << 20);
  tl.record(a, 1e308, 3 << 20, 4 << 20);
  tl.record(a, std::numeric_limits<double>::max(), 1 << 20, 4 << 20);
  tl.record(b, 1e300, 1 << 20, 2 << 20);  // one x, so large that x + 1 == x
  tl.record(b, 1e300, 2 << 20, 2 << 20);
  const std::string page = tl.html("far apart");
  CHECK(count(page, "<svg") == 2);
  CHECK(page.find("nan") == std::string::npos);
  CHECK(page.find("inf") == std::string::npos);
  CHECK(page.find("peak live 3.00 MiB") != std::string::npos);
  CHECK(page.find(">-1e+308</text>") != std::string::npos);  // ticks every 5e307
  CHECK(page.find(">5e+307</text>") != std::string::npos);
}

TEST_CASE("timeline: x labels of large x read as the number", "[timeline]") {
  // fixed()'s 32-byte buffer cut "%.0f" of 2e40 to its first 31 digits, which read as 2e30.
  stash::timeline tl("ns");
  const auto a = tl.add_series("a");
  tl.record(a, 1e40, 1 << 20, 2 << 20);
  tl.record(a, 2e40, 2 << 20, 2 << 20);
  const std::string page = tl.html("large x");
  CHECK(page.find(">2e+40</text>") != std::string::npos);
  CHECK(page.find(">1.4e+40</text>") != std::string::npos);
  CHECK(page.find("1999999999999999") == std::string::npos);
}

TEST_CASE("timeline: a series it did not make and a page of no points are refused with stash::error",
          "[timeline][errors]") {
  stash::timeline tl;
  const auto a = tl.add_series("a");
  tl.record(a, 1, 2, 3);
  stash::host_caching_allocator pool;
  CHECK_THROWS_AS(tl.record(a + 1, 1, 2, 3), stash::error);
  CHECK_THROWS_AS(tl.record(7, 1, 2, 3, 4), stash::error);
  CHECK_THROWS_AS(tl.sample(a + 1, pool), stash::error);
  CHECK_THROWS_AS(tl.samples(a + 1), stash::error);
  CHECK_THROWS_WITH(tl.record(9, 1, 2, 3), Catch::Contains("no series 9"));
  CHECK(tl.samples(a).size() == 1);  // nothing was recorded
  CHECK_THROWS_AS(tl.html("zero", 0), stash::error);
  CHECK_NOTHROW(tl.html("one", 1));
}

TEST_CASE("timeline: many samples are drawn as their maxima, so the peak survives", "[timeline]") {
  stash::timeline tl("operations");
  const auto s = tl.add_series("spiky");
  for (int i = 0; i < 100000; ++i) tl.record(s, i, i == 55555 ? 999 << 20 : 1 << 20, 1000 << 20);
  const std::string page = tl.html("t", 500);
  // One polyline per value: its points are the pairs "x,y ".
  const std::regex polyline(R"(<polyline[^>]*points="([^"]*)\")");
  std::size_t lines = 0;
  for (std::sregex_iterator it(page.begin(), page.end(), polyline), end; it != end; ++it) {
    ++lines;
    CHECK(count((*it)[1].str(), ",") <= 500);
  }
  CHECK(lines == 2);
  CHECK(page.find("peak live 999.00 MiB") != std::string::npos);
  // The live line reaches the spike's height: the plot's top is 1000 MiB, the spike 999 MiB, so some
  // point of the blue line lies within 1% of the plot's top edge (y = 20 .. 256).
  const auto live_line = page.find("stroke=\"#1f77b4\"");
  REQUIRE(live_line != std::string::npos);
  const auto points = page.substr(live_line, page.find("\"/>", live_line) - live_line);
  bool near_top = false;
  const std::regex point(R"(([0-9.]+),([0-9.]+) )");
  for (std::sregex_iterator it(points.begin(), points.end(), point), end; it != end; ++it)
    near_top = near_top || std::stod((*it)[2]) < 20 + 236 * 0.01 + 0.1;
  CHECK(near_top);
}

TEST_CASE("timeline: sample() reads an allocator's figures, and paged pools get pages", "[timeline]") {
  stash::simulated_caching_allocator pool;
  stash_test::host_segregated segments;
  stash::timeline tl;
  const auto p = tl.add_series("paged", pool);
  const auto s = tl.add_series("segments", segments);
  void* a = pool.allocate(5 << 20);
  void* b = segments.allocate(1000);
  tl.sample(p, pool);
  tl.sample(s, segments);
  pool.deallocate(a);
  tl.sample(p, pool);
  const auto paged = tl.samples(p);
  REQUIRE(paged.size() == 2);
  CHECK(paged[0].live_bytes == 5 << 20);
  CHECK(paged[0].reserved_bytes == pool.stats().peak_reserved_bytes);
  CHECK(paged[0].reserved_bytes == 6 << 20);  // three 2 MiB pages
  CHECK(paged[1].live_bytes == 0);
  CHECK(paged[1].x >= paged[0].x);
  CHECK(tl.samples(s).at(0).live_bytes == 1000);
  const std::string page = tl.html("t");
  CHECK(page.find(" pages</text>") != std::string::npos);  // the paged panel's right axis
  CHECK(count(page, "<polyline") == 3 + 2);
  CHECK(
      page.find("the allocator's own peaks (every operation, since its last reset_peak): live 5242880 bytes, "
                "reserved 6291456 bytes") != std::string::npos);
  segments.deallocate(b);
}

TEST_CASE("timeline: the sampler samples on its own thread and once more when it stops",
          "[timeline][threads]") {
  stash::simulated_caching_allocator pool;
  stash::timeline tl;
  const auto id = tl.add_series("pool", pool);
  void* p = nullptr;
  {
    stash::timeline_sampler sampler(std::chrono::milliseconds(1), [&] { tl.sample(id, pool); });
    for (int i = 0; i < 20; ++i) {
      pool.deallocate(pool.allocate(1 << 20));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    p = pool.allocate(3 << 20);
    CHECK(sampler.failure() == nullptr);  // the callback never threw
    CHECK_NOTHROW(sampler.rethrow_if_failed());
  }
  const auto samples = tl.samples(id);
  CHECK(samples.size() >= 2);
  CHECK(samples.back().live_bytes == 3 << 20);  // the last sample is taken when the sampler stops
  pool.deallocate(p);
}

TEST_CASE("timeline: a sampler whose callback throws stops sampling, keeps the exception, and is destroyed "
          "without a throw or another call", "[timeline][threads][errors]") {
  constexpr int throws_at = 3;
  std::atomic<int> calls{0};
  std::optional<stash::timeline_sampler> sampler;
  sampler.emplace(std::chrono::milliseconds(1), [&] {
    if (++calls == throws_at) throw stash::error("sampling failed at call 3");
  });
  REQUIRE(within_half_a_second([&] { return sampler->failure() != nullptr; }));
  CHECK(calls == throws_at);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // twenty intervals: no call in them
  CHECK(calls == throws_at);
  try {
    sampler->rethrow_if_failed();
    FAIL("rethrow_if_failed did not throw");
  } catch (const stash::error& e) {
    CHECK(std::string(e.what()) == "sampling failed at call 3");
  }
  CHECK_THROWS_AS(std::rethrow_exception(sampler->failure()), stash::error);
  CHECK_NOTHROW(sampler.reset());  // no final sample once sampling has failed
  CHECK(calls == throws_at);
}

TEST_CASE("timeline: a final sample that throws in the sampler's destructor is dropped",
          "[timeline][threads][errors]") {
  const auto destroying_thread = std::this_thread::get_id();
  std::atomic<int> on_thread{0}, final_calls{0};
  std::optional<stash::timeline_sampler> sampler;
  sampler.emplace(std::chrono::milliseconds(1), [&] {
    if (std::this_thread::get_id() != destroying_thread) return void(++on_thread);
    ++final_calls;
    throw stash::error("the final sample failed");  // the final sample runs on the destroying thread
  });
  REQUIRE(within_half_a_second([&] { return on_thread > 0; }));
  CHECK(sampler->failure() == nullptr);
  CHECK_NOTHROW(sampler.reset());
  CHECK(final_calls == 1);
}

TEST_CASE("timeline: write_html writes the page and reports a file it cannot write", "[timeline][errors]") {
  stash::timeline tl;
  tl.record(tl.add_series("s"), 0, 1, 2);
  const auto file = std::filesystem::temp_directory_path() / "stash_timeline_test.html";
  tl.write_html(file, "t");
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  CHECK(text.str() == tl.html("t"));
  std::filesystem::remove(file);
  CHECK_THROWS_AS(tl.write_html("/nonexistent-dir/t.html", "t"), stash::error);
  stash::timeline empty;
  CHECK(empty.html("t").find("No samples were recorded.") != std::string::npos);
}

TEST_CASE("timeline: the largest free block, when asked for, is a line of its own", "[timeline][report]") {
  stash::simulated_caching_allocator pool;
  stash::timeline tl;
  const auto id = tl.add_series("pool", pool);
  void* a = pool.allocate(2 << 20);
  void* b = pool.allocate(2 << 20);
  void* c = pool.allocate(2 << 20);
  pool.deallocate(a);
  pool.deallocate(c);  // two 2 MiB free blocks apart (and the arena's unmapped rest, not held)
  tl.sample(id, pool, true);
  tl.sample(id, pool);  // without: 0
  const auto samples = tl.samples(id);
  REQUIRE(samples.size() == 2);
  CHECK(samples[0].largest_free == (2u << 20));
  CHECK(samples[0].largest_free == stash::describe_memory(pool).largest_free_block);
  CHECK(samples[1].largest_free == 0);
  const std::string page = tl.html("t");
  CHECK(count(page, "<polyline") == 4);  // live, reserved, pages, largest free
  CHECK(page.find("largest free block held") != std::string::npos);
  stash::timeline without;
  without.record(without.add_series("s"), 0, 1, 2);
  CHECK(without.html("t").find("largest free block held") == std::string::npos);
  pool.deallocate(b);
}
