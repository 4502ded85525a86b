// stash::logging_adaptor: the lines it writes, errors, threads, and the round trip through
// stash-replay's trace reader and replay loop.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../bench/allocators/stash_allocators.hpp"
#include "../bench/replay.hpp"
#include "../bench/trace_reader.hpp"
#include "stash/allocators.hpp"
#include "stash/logging_adaptor.hpp"
#include "stash/memory_manager.hpp"
#include "stash/memory_resource.hpp"
#include "stash/stream_allocator.hpp"
#include "support/compositions.hpp"
#include "support/traces.hpp"

namespace {

using stash::logging_adaptor;
using logged_pool = stash::simulated_caching_allocator;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string hex(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx",
                static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(p)));
  return buf;
}

using stash_test::traces_dir;

/// An allocator with stream-ordered calls, to see the stream logged.
struct stream_allocator {
  static constexpr stash::memory_kind kind = stash::memory_kind::host;
  stash_test::host_segregated pool;
  void* allocate(std::size_t n) { return pool.allocate(n); }
  void* allocate(std::size_t n, void* /*stream*/) { return pool.allocate(n); }
  void deallocate(void* p) { pool.deallocate(p); }
  void deallocate(void* p, void* /*stream*/) { pool.deallocate(p); }
  std::size_t allocation_size(const void* p) const { return pool.allocation_size(p); }
};

}  // namespace

TEST_CASE("logging_adaptor: one RMM CSV line per allocate and free", "[logging]") {
  logged_pool pool;
  std::ostringstream out;
  void *a, *b;
  {
    logging_adaptor logged(pool, out);
    a = logged.allocate(1000);
    b = logged.allocate(3 << 20);
    logged.deallocate(a);           // unsized: the size comes from the allocator
    logged.deallocate(b, 3 << 20);  // sized
    logged.deallocate(nullptr);     // a no-op, not logged
  }
  const auto lines = lines_of(out.str());
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == "Thread,Time,Action,Pointer,Size,Stream");
  const std::regex line(R"((\d+),(\d\d+:\d\d:\d\d\.\d{6}),([a-z ]+),(0x[0-9a-f]+),(\d+),(0x[0-9a-f]+))");
  const std::string expected[4][3] = {{"allocate", hex(a), "1000"},
                                      {"allocate", hex(b), "3145728"},
                                      {"free", hex(a), "1000"},
                                      {"free", hex(b), "3145728"}};
  std::string previous_time;
  for (int i = 0; i < 4; ++i) {
    std::smatch m;
    INFO(lines[i + 1]);
    REQUIRE(std::regex_match(lines[i + 1], m, line));
    CHECK(m[1] == lines_of(out.str())[1].substr(0, m[1].length()));  // one thread: one number
    CHECK(m[3] == expected[i][0]);
    CHECK(m[4] == expected[i][1]);
    CHECK(m[5] == expected[i][2]);
    CHECK(m[6] == "0x0");
    CHECK(m[2].str() >= previous_time);  // fixed width: text order is time order
    previous_time = m[2];
  }
  CHECK(pool.stats().allocations == 2);
  CHECK(pool.stats().deallocations == 2);
  CHECK(pool.stats().allocated_bytes == 0);
}

TEST_CASE("logging_adaptor: rejected frees are not logged and change nothing", "[logging][errors]") {
  logged_pool pool;
  std::ostringstream out;
  logging_adaptor logged(pool, out);
  void* p = logged.allocate(4096);
  const std::string before = out.str();
  int local = 0;
  CHECK_THROWS_AS(logged.deallocate(&local), stash::invalid_pointer);
  CHECK_THROWS_AS(logged.deallocate(static_cast<char*>(p) + 256), stash::invalid_pointer);
  CHECK_THROWS_AS(logged.deallocate(p, 4095), stash::invalid_size);  // sized: the allocator checks
  CHECK(out.str() == before);
  CHECK(pool.stats().allocations == 1);
  CHECK(pool.stats().deallocations == 0);
  logged.deallocate(p);
  const std::string after_free = out.str();
  CHECK_THROWS_AS(logged.deallocate(p), stash::double_free);
  CHECK_THROWS_AS(logged.deallocate(p, 4096), stash::double_free);
  CHECK(out.str() == after_free);
  CHECK(pool.stats().deallocations == 1);
  const auto lines = lines_of(after_free.substr(before.size()));
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find(",free," + hex(p) + ",4096,") != std::string::npos);
}

TEST_CASE("logging_adaptor: a zero-byte allocation on a stream is not logged either", "[logging]") {
  stream_allocator upstream;
  std::ostringstream out;
  logging_adaptor logged(upstream, out);
  const std::string header = out.str();
  int stream_tag = 0;
  CHECK(logged.allocate(0, static_cast<void*>(&stream_tag)) == nullptr);
  CHECK(out.str() == header);  // a log the trace reader would reject ("allocation of 0 bytes") otherwise
  void* p = logged.allocate(512, static_cast<void*>(&stream_tag));
  logged.deallocate(p, static_cast<void*>(&stream_tag));
  const auto t = stash::bench::parse_trace_string(out.str());
  CHECK(t.allocations == 1);
  CHECK(t.frees == 1);
}

namespace {
/// A stream buffer that takes nothing: every write fails (a full disk).
struct refusing_buffer : std::streambuf {
  int_type overflow(int_type) override { return traits_type::eof(); }
  std::streamsize xsputn(const char*, std::streamsize) override { return 0; }
};
}  // namespace

TEST_CASE("logging_adaptor: a failing stream loses lines, never an allocation or a free",
          "[logging][errors]") {
  for (const bool throwing : {false, true}) {
    INFO((throwing ? "the stream throws" : "the stream fails quietly"));
    logged_pool pool;
    refusing_buffer buffer;
    std::ostream out(&buffer);
    if (throwing) out.exceptions(std::ios::badbit);
    {
      logging_adaptor logged(pool, out);  // the header is lost too
      void* p = logged.allocate(1024);    // made, and not lost behind an exception
      REQUIRE(p != nullptr);
      CHECK(pool.owns(p));
      logged.deallocate(p);  // freed once, with no exception after the free
      CHECK_FALSE(pool.owns(p));
      CHECK(logged.lines_lost() == 2);
      CHECK_FALSE(logged.flush());
    }  // the destructor's flush does not throw
    CHECK(pool.stats().allocations == 1);
    CHECK(pool.stats().deallocations == 1);
    CHECK(pool.stats().allocated_bytes == 0);
  }
}

TEST_CASE("logging_adaptor: a failed allocation is logged as `allocate failure` and rethrown",
          "[logging][errors]") {
  logged_pool pool;
  std::ostringstream out;
  logging_adaptor logged(pool, out);
  CHECK(logged.allocate(0) == nullptr);  // nothing allocated, nothing logged
  CHECK_THROWS_AS(logged.allocate(logged_pool::max_size() + 1), stash::invalid_size);
  CHECK_THROWS_AS(logged.allocate(logged_pool::max_size() + 2), stash::invalid_size);
  void* p = logged.allocate(512);
  logged.deallocate(p);
  const auto t = stash::bench::parse_trace_string(out.str());
  CHECK(t.skipped_failures == 2);
  CHECK(t.allocations == 1);
  CHECK(t.frees == 1);
  CHECK(pool.stats().allocations == 1);
}

TEST_CASE("logging_adaptor: stream-ordered calls log their stream", "[logging]") {
  stream_allocator upstream;
  std::ostringstream out;
  logging_adaptor logged(upstream, out);
  void* stream = reinterpret_cast<void*>(std::uintptr_t{0xabc0});
  void* p = logged.allocate(100, stream);
  logged.deallocate(p, stream);
  const auto lines = lines_of(out.str());
  REQUIRE(lines.size() == 3);
  CHECK(lines[1].ends_with(",allocate," + hex(p) + ",100,0xabc0"));
  CHECK(lines[2].ends_with(",free," + hex(p) + ",100,0xabc0"));
  CHECK(upstream.pool.stats().allocated_bytes == 0);
}

// resource_adaptor hands a stream-ordered free to its upstream as deallocate(p, bytes, stream): through
// a logging_adaptor the free must keep its stream, in the log and on the way to the pool.
TEST_CASE("logging_adaptor: a container on a stream, through resource_adaptor, frees on its stream",
          "[logging][streams]") {
  using pool_type = stash::simulated_stream_allocator;
  pool_type pool;
  const stash::stream s = pool.ordering().make_stream();
  std::ostringstream out;
  logging_adaptor<pool_type> logged(pool, out);
  stash::resource_adaptor<logging_adaptor<pool_type>> resource(logged);
  const float* data = nullptr;
  {
    std::vector<float, stash::stream_allocator<float>> v(stash::stream_allocator<float>(resource, s));
    v.reserve(1000);  // simulated device memory: allocated, never written
    data = v.data();
  }
  const auto lines = lines_of(out.str());
  REQUIRE(lines.size() == 3);
  CHECK(lines[1].ends_with(",allocate," + hex(data) + ",4000," + hex(s.native_handle())));
  CHECK(lines[2].ends_with(",free," + hex(data) + ",4000," + hex(s.native_handle())));
  CHECK(pool.stats().allocated_bytes == 0);
  CHECK(pool.stats().deallocations == 1);
  // The pool saw the free on the block's own stream (not the legacy default stream): s reuses it at once.
  void* again = pool.allocate(4000, s);
  CHECK(again == data);
  pool.deallocate(again, s);
}

TEST_CASE("logging_adaptor: over a memory manager's pool", "[logging][manager]") {
  stash::memory_manager mm{stash::memory_manager::backing::host, 1};
  std::ostringstream out;
  logging_adaptor<stash::pool> logged(mm.device_pool(0), out);
  void* p = logged.allocate(1000);
  CHECK(mm.device_pool(0).owns(p));
  logged.deallocate(p);
  const auto lines = lines_of(out.str());
  REQUIRE(lines.size() == 3);
  CHECK(lines[1].ends_with(",allocate," + hex(p) + ",1000,0x0"));
  CHECK(lines[2].find(",free," + hex(p) + ",") != std::string::npos);
  CHECK(mm.device_pool(0).stats().allocated_bytes == 0);
}

TEST_CASE("logging_adaptor: writes a file and refuses one it cannot open", "[logging]") {
  const auto file = std::filesystem::temp_directory_path() / "stash_logging_adaptor_test.csv";
  logged_pool pool;
  {
    logging_adaptor logged(pool, file);
    logged.deallocate(logged.allocate(2 << 20));
  }
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  const auto t = stash::bench::parse_trace_string(text.str());
  CHECK(t.allocations == 1);
  CHECK(t.frees == 1);
  CHECK(t.peak_live_bytes == (2 << 20));
  std::filesystem::remove(file);
  CHECK_THROWS_AS(logging_adaptor(pool, std::filesystem::path("/nonexistent-dir/x.csv")), stash::error);
}

TEST_CASE("logging_adaptor: threads never interleave an address's allocate and free", "[logging][threads]") {
  stash_test::host_segregated pool;
  std::ostringstream out;
  constexpr int threads = 4, rounds = 2000;
  {
    logging_adaptor logged(pool, out);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([&, t] {
        std::vector<void*> mine;
        for (int i = 0; i < rounds; ++i) {
          mine.push_back(logged.allocate(static_cast<std::size_t>(256 * (1 + (i + t) % 7))));
          if (mine.size() > 3) {
            logged.deallocate(mine.front());
            mine.erase(mine.begin());
          }
        }
        for (void* p : mine) logged.deallocate(p);
      });
    for (auto& w : workers) w.join();
  }
  // The reader throws on an address allocated while live; every free must find its allocation.
  const auto t = stash::bench::parse_trace_string(out.str());
  CHECK(t.allocations == threads * rounds);
  CHECK(t.frees == threads * rounds);
  CHECK(t.skipped_frees == 0);
  CHECK(t.live_at_end.empty());
  std::set<std::string> thread_ids;
  for (const auto& line : lines_of(out.str())) thread_ids.insert(line.substr(0, line.find(',')));
  CHECK(thread_ids.size() == threads + 1);  // and the header's "Thread"
}

TEST_CASE("logging_adaptor: a recorded trace replays with the same operations and peak", "[logging][trace]") {
  // Play a real trace through a logged allocator, read the log back as stash-replay does, and replay
  // it: the log must carry every operation, in order, with its size.
  const auto original = stash::bench::read_trace(traces_dir() / "bert_infer_varlen.csv");
  std::ostringstream out;
  {
    logged_pool pool;
    logging_adaptor logged(pool, out);
    std::vector<void*> slots(original.slot_count, nullptr);
    for (const auto& op : original.ops) {
      if (op.is_free) logged.deallocate(slots[op.slot]);
      else slots[op.slot] = logged.allocate(op.size);
    }
    for (const auto& op : original.live_at_end) logged.deallocate(slots[op.slot]);
  }
  const auto recorded = stash::bench::parse_trace_string(out.str(), "recorded");
  REQUIRE(recorded.ops.size() == original.ops.size() + original.live_at_end.size());
  CHECK(recorded.allocations == original.allocations);
  CHECK(recorded.frees == original.frees + original.live_at_end.size());
  CHECK(recorded.peak_live_bytes == original.peak_live_bytes);
  CHECK(recorded.skipped_frees == 0);
  CHECK(recorded.live_at_end.empty());
  for (std::size_t i = 0; i < original.ops.size(); ++i) {
    INFO("op " << i);
    REQUIRE(recorded.ops[i].is_free == original.ops[i].is_free);
    REQUIRE(recorded.ops[i].size == original.ops[i].size);
  }

  // stash-replay's measurement over the recorded trace: same op count, same peak live, and the same
  // memory held as replaying the original (the allocator sees the same requests).
  stash::bench::stash_adapter<logged_pool> a("stash"), b("stash");
  const auto from_original = stash::bench::measure_replay(a, original, 0);
  const auto from_recorded = stash::bench::measure_replay(b, recorded, 0);
  CHECK(from_recorded.ops == recorded.ops.size());
  CHECK(from_recorded.peak_live_bytes == original.peak_live_bytes);
  CHECK(from_recorded.peak_reserved_bytes == from_original.peak_reserved_bytes);
}
