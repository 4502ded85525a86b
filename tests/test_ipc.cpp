// Sharing a block with another process (stash/ipc.hpp), on the simulated paged device: which
// physical allocations a block's handle names and which part of each, and the handle's trip over a
// Unix socket with its descriptors. The mapping on a real device is tests/cuda/test_ipc.cpp.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/ipc.hpp"
#include "stash/lock/null_lock.hpp"
#include "stash/memory_manager.hpp"
#include "stash/stats/basic_stats.hpp"

namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr std::size_t page = 2 * MiB;
using paged = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets,
                                       stash::null_lock, stash::basic_stats>;

stash::caching_options options_with_chunks_of(std::size_t pages) {
  stash::caching_options o;
  o.max_chunk_pages = pages;
  o.small_region = false;  // the 1 MiB block below shares the one region with the large ones
  return o;
}

std::size_t file_size(int fd) {
  struct stat st {};
  REQUIRE(::fstat(fd, &st) == 0);
  return static_cast<std::size_t>(st.st_size);
}

/// The chunks the backend mapped that overlap [begin, end), as (address, pages).
std::vector<std::pair<std::uintptr_t, std::size_t>> chunks_over(const stash::simulated_paged_backend& b,
                                                                std::uintptr_t begin, std::uintptr_t end) {
  std::vector<std::pair<std::uintptr_t, std::size_t>> out;
  b.for_each_chunk([&](std::uintptr_t a, std::size_t pages) {
    if (a < end && a + pages * page > begin) out.emplace_back(a, pages);
  });
  return out;
}

struct socket_pair {
  int ends[2] = {-1, -1};
  socket_pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) == 0); }
  ~socket_pair() {
    for (const int fd : ends)
      if (fd >= 0) ::close(fd);
  }
};

}  // namespace

TEST_CASE("ipc_export names each physical allocation under a block, and the part of it the block uses",
          "[ipc]") {
  paged a(stash::simulated_paged_backend{}, options_with_chunks_of(4));
  void* before = a.allocate(1 * MiB);                 // page 0, first half
  const std::size_t size = 9 * page + 3 * MiB;       // from 1 MiB into page 0 to half of page 10
  auto* p = static_cast<unsigned char*>(a.allocate(size));
  const auto base = reinterpret_cast<std::uintptr_t>(before);
  REQUIRE(reinterpret_cast<std::uintptr_t>(p) == base + 1 * MiB);
  const auto stats = a.stats();

  stash::ipc_handle h = a.ipc_export(p);
  CHECK(h.device() == 0);
  CHECK(h.offset() == 1 * MiB);
  CHECK(h.size() == size);
  CHECK(h.consistent());
  CHECK(a.stats() == stats);  // exporting changes no figure
  CHECK(a.backend().misuses() == 0);

  // One piece per chunk the backend mapped under the block's pages [page 0, page 10], in order.
  const auto chunks = chunks_over(a.backend(), base, base + 11 * page);
  REQUIRE(h.pieces().size() == chunks.size());
  REQUIRE(h.fds().size() == chunks.size());
  CHECK(a.backend().export_calls() == chunks.size());
  std::uintptr_t at = base;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    const auto [chunk, pages] = chunks[i];
    const stash::ipc_piece& piece = h.pieces()[i];
    CHECK(piece.chunk_bytes == pages * page);
    CHECK(file_size(h.fds()[i]) == pages * page);  // the descriptor is that chunk's
    CHECK(piece.handle_offset == at - chunk);
    const std::uintptr_t stop = std::min(chunk + pages * page, base + 11 * page);
    CHECK(piece.bytes == stop - at);
    at = stop;
  }
  CHECK(at == base + 11 * page);  // the pieces cover the block's pages, whole
  CHECK(h.mapping_offset() == h.pieces().front().handle_offset + 1 * MiB);

  a.deallocate(p);
  a.deallocate(before);
}

TEST_CASE("ipc_export refuses what is not a live block and changes nothing", "[ipc][errors]") {
  paged a(stash::simulated_paged_backend{}, options_with_chunks_of(4));
  void* p = a.allocate(3 * MiB);
  const auto stats = a.stats();
  CHECK_THROWS_AS(a.ipc_export(nullptr), stash::invalid_pointer);
  CHECK_THROWS_AS(a.ipc_export(static_cast<char*>(p) + 256),
                  stash::invalid_pointer);  // inside, not the start
  a.deallocate(p);
  const auto freed = a.stats();
  CHECK_THROWS_AS(a.ipc_export(p), stash::double_free);
  CHECK(a.stats() == freed);
  CHECK(stats.allocated_bytes > freed.allocated_bytes);
  CHECK(a.backend().export_calls() == 0);
}

TEST_CASE("an ipc_handle crosses a Unix socket with its descriptors", "[ipc]") {
  paged a(stash::simulated_paged_backend{}, options_with_chunks_of(4));
  void* p = a.allocate(7 * page);
  stash::ipc_handle sent = a.ipc_export(p);
  socket_pair s;
  stash::ipc_send(s.ends[0], sent);
  stash::ipc_handle got = stash::ipc_receive(s.ends[1]);

  CHECK(got.device() == sent.device());
  CHECK(got.offset() == sent.offset());
  CHECK(got.size() == sent.size());
  CHECK(got.pieces() == sent.pieces());
  REQUIRE(got.fds().size() == sent.fds().size());
  for (std::size_t i = 0; i < got.fds().size(); ++i) {
    struct stat mine {}, theirs {};
    REQUIRE(::fstat(sent.fds()[i], &mine) == 0);
    REQUIRE(::fstat(got.fds()[i], &theirs) == 0);
    CHECK(got.fds()[i] != sent.fds()[i]);  // a descriptor of the receiver's own
    CHECK(theirs.st_ino == mine.st_ino);   // for the same file
    CHECK(theirs.st_dev == mine.st_dev);
  }
  a.deallocate(p);
}

TEST_CASE("ipc_receive refuses what is not a handle, and a closed socket", "[ipc][errors]") {
  {
    socket_pair s;
    const char junk[] = "not a handle";
    REQUIRE(::send(s.ends[0], junk, sizeof junk, 0) == static_cast<ssize_t>(sizeof junk));
    CHECK_THROWS_AS(stash::ipc_receive(s.ends[1]), stash::error);
  }
  {
    socket_pair s;
    ::close(s.ends[0]);
    s.ends[0] = -1;
    CHECK_THROWS_AS(stash::ipc_receive(s.ends[1]), stash::error);
  }
  {
    // Pieces that cannot be one block: a middle piece starting inside its chunk.
    stash::ipc_handle h(0, 0, 4 * MiB);
    h.add(::open("/dev/null", O_RDONLY | O_CLOEXEC), {0, page, page});
    h.add(::open("/dev/null", O_RDONLY | O_CLOEXEC), {MiB, MiB, page});
    REQUIRE(h.fds()[0] >= 0);
    REQUIRE(h.fds()[1] >= 0);
    CHECK_FALSE(h.consistent());
    socket_pair s;
    stash::ipc_send(s.ends[0], h);
    CHECK_THROWS_AS(stash::ipc_receive(s.ends[1]), stash::error);
  }
}

TEST_CASE("the memory manager exports only from pools whose memory can be shared", "[ipc][manager][errors]") {
  stash::memory_manager mm(stash::memory_manager::backing::host, 1);
  void* p = mm.allocate(4 * MiB, stash::memory_type::device);
  const auto stats = mm.get_stats(0);
  CHECK_THROWS_AS(mm.ipc_export(p), stash::error);  // host memory stands in for the device: no handles
  int x = 0;
  CHECK_THROWS_AS(mm.ipc_export(&x), stash::invalid_pointer);
  CHECK(mm.get_stats(0).detail == stats.detail);
  mm.deallocate(p);
}
