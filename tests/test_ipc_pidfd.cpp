// A block's handle as text (stash/ipc_pidfd.hpp): what the text says, what ipc_decode refuses, and the
// importer's copies of the exporter's descriptors taken with pidfd_getfd, on the simulated paged device
// (its chunks are memfds). The mapping on a real device, from another process, is in
// tests/cuda/test_ipc.cpp.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/ipc_pidfd.hpp"
#include "stash/lock/null_lock.hpp"
#include "stash/memory_manager.hpp"
#include "stash/stats/basic_stats.hpp"

namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr std::size_t page = 2 * MiB;
using paged = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets,
                                       stash::null_lock, stash::basic_stats>;

stash::caching_options chunks_of_four() {
  stash::caching_options o;
  o.max_chunk_pages = 4;
  o.small_region = false;
  return o;
}

struct stat identity(int fd) {
  struct stat st {};
  REQUIRE(::fstat(fd, &st) == 0);
  return st;
}

/// Whether this process may call pidfd_open: not under valgrind 3.19, which does not know the call and
/// answers ENOSYS, as a kernel before 5.3 does. Where it may not, the tests that need the calls check
/// that ipc_fetch says so instead.
bool pidfd_available() {
  const long fd = ::syscall(SYS_pidfd_open, ::getpid(), 0);
  if (fd >= 0) ::close(static_cast<int>(fd));
  return fd >= 0;
}

/// The errno of the ipc_refused that f throws (0 when it throws none).
template <class F>
int refusal(F&& f) {
  try {
    f();
  } catch (const stash::ipc_refused& e) {
    return e.code();
  }
  return 0;
}

/// A handle text with one piece of `bytes` in a chunk of as many, descriptor fd, file identity st.
std::string one_piece(pid_t pid, int fd, const struct stat& st, std::size_t bytes = page) {
  return "stash-ipc1 " + std::to_string(pid) + " 0 0 " + std::to_string(bytes) + " 1 " + std::to_string(fd) +
         " " + std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) + " 0 " + std::to_string(bytes) +
         " " + std::to_string(bytes);
}

}  // namespace

TEST_CASE("a block's handle as text names this process, its descriptors and the block's pieces",
          "[ipc][pidfd]") {
  paged a(stash::simulated_paged_backend{}, chunks_of_four());
  void* before = a.allocate(1 * MiB);
  const std::size_t size = 9 * page + 3 * MiB;  // over several chunks, from 1 MiB into the first page
  void* p = a.allocate(size);
  stash::ipc_handle h = a.ipc_export(p);
  REQUIRE(h.pieces().size() >= 3);

  const std::string text = stash::ipc_encode(h);
  CHECK(text.find('\0') == std::string::npos);
  CHECK(text.size() < 32768);  // STASH_IPC_HANDLE_MAX
  const stash::ipc_remote_handle r = stash::ipc_decode(text);
  CHECK(r.pid == ::getpid());
  CHECK(r.device == h.device());
  CHECK(r.offset == 1 * MiB);
  CHECK(r.size == size);
  REQUIRE(r.pieces.size() == h.pieces().size());
  for (std::size_t i = 0; i < r.pieces.size(); ++i) {
    CHECK(r.pieces[i].fd == h.fds()[i]);
    CHECK(r.pieces[i].where == h.pieces()[i]);
    const struct stat st = identity(h.fds()[i]);
    CHECK(r.pieces[i].st_dev == static_cast<std::uint64_t>(st.st_dev));
    CHECK(r.pieces[i].st_ino == static_cast<std::uint64_t>(st.st_ino));
  }

  // The importer's copies (here this process's own: pidfd_getfd of itself) are new descriptors of the
  // same memory files, and a handle ipc_mapping accepts.
  if (!pidfd_available()) {
    WARN("no pidfd_open here (valgrind, or a kernel before 5.6): only the refusal is checked");
    try {
      stash::ipc_open_text(text);
      FAIL("ipc_open_text without pidfd_open");
    } catch (const stash::ipc_refused& e) {
      CHECK(e.code() == ENOSYS);
      CHECK(std::string(e.what()).find("Linux 5.6") != std::string::npos);
    }
    a.deallocate(p);
    a.deallocate(before);
    return;
  }
  stash::ipc_handle copy = stash::ipc_open_text(text);
  CHECK(copy.consistent());
  CHECK(copy.size() == size);
  CHECK(copy.offset() == h.offset());
  CHECK(copy.pieces() == h.pieces());
  CHECK(copy.mapping_offset() == h.mapping_offset());
  for (std::size_t i = 0; i < copy.fds().size(); ++i) {
    CHECK(copy.fds()[i] != h.fds()[i]);
    CHECK(identity(copy.fds()[i]).st_ino == identity(h.fds()[i]).st_ino);
    CHECK(static_cast<std::size_t>(identity(copy.fds()[i]).st_size) == h.pieces()[i].chunk_bytes);
    CHECK((::fcntl(copy.fds()[i], F_GETFD) & FD_CLOEXEC) != 0);
  }
  a.deallocate(p);
  a.deallocate(before);
}

TEST_CASE("ipc_decode refuses text that is not a handle", "[ipc][pidfd][errors]") {
  const std::string pid = std::to_string(::getpid());
  const std::string piece = " 5 1 2 0 2097152 2097152";
  CHECK_NOTHROW(stash::ipc_decode("stash-ipc1 " + pid + " 0 0 100 1" + piece));
  const char* bad[] = {
      "",
      "stash-ipc2 1 0 0 100 1 5 1 2 0 2097152 2097152",     // another format
      "e\x01\x02",                                             // PyTorch's own expandable segment handle
      "stash-ipc1 1 0 0 100 1 5 1 2 0 2097152",               // a piece cut short
      "stash-ipc1 1 0 0 100 1 5 1 2 0 2097152 2097152 7",     // text after the last piece
      "stash-ipc1 1 0 0 100 2 5 1 2 0 2097152 2097152",       // fewer pieces than it says
      "stash-ipc1 1 0 0 100 0",                               // no piece
      "stash-ipc1 1 0 0 100 251 5 1 2 0 2097152 2097152",     // more than one message may carry
      "stash-ipc1 0 0 0 100 1 5 1 2 0 2097152 2097152",       // no such process id
      "stash-ipc1 1 -1 0 100 1 5 1 2 0 2097152 2097152",      // no such device
      "stash-ipc1 1 0 0 100 1 -5 1 2 0 2097152 2097152",      // a negative descriptor
      "stash-ipc1 1 0 0 100 1 5 1 2 0 2097152 1048576",       // a piece larger than its chunk
      "stash-ipc1 1 0 0 4194304 1 5 1 2 0 2097152 2097152",   // a block larger than its pieces
      "stash-ipc1 1 0 0 100 2 5 1 2 0 1048576 2097152 6 1 2 0 2097152 2097152",  // a gap between pieces
      "stash-ipc1 1 0 0 1x0 1 5 1 2 0 2097152 2097152",       // not a number
      "stash-ipc1 1 0 0 99999999999999999999999 1 5 1 2 0 2097152 2097152",  // out of range
      "stash-ipc1  1 0 0 100 1 5 1 2 0 2097152 2097152",      // two spaces
      "stash-ipc1 1 0 0 2 2 3 0 0 0 1 1 4 0 0 0 1 18446744073709551615",  // chunks past SIZE_MAX in all
  };
  for (const char* text : bad) {
    INFO(text);
    CHECK_THROWS_AS(stash::ipc_decode(text), stash::invalid_ipc_handle);
  }
}

TEST_CASE("ipc_fetch says why the exporter's descriptors cannot be taken, and leaves none open",
          "[ipc][pidfd][errors]") {
  const int memfd = ::memfd_create("stash-test", MFD_CLOEXEC);
  REQUIRE(memfd >= 0);
  REQUIRE(::ftruncate(memfd, page) == 0);
  const struct stat st = identity(memfd);
  if (!pidfd_available()) {
    WARN("no pidfd_open here (valgrind, or a kernel before 5.6): only that refusal is checked");
    CHECK(refusal([&] { stash::ipc_open_text(one_piece(::getpid(), memfd, st)); }) == ENOSYS);
    ::close(memfd);
    return;
  }

  SECTION("a descriptor the exporter closed (its block freed)") {
    const int spare = ::fcntl(memfd, F_DUPFD_CLOEXEC, 900);  // high: pidfd_open takes the lowest free number
    REQUIRE(spare >= 900);
    ::close(spare);  // a number that is closed now
    CHECK(refusal([&] { stash::ipc_open_text(one_piece(::getpid(), spare, st)); }) == EBADF);
  }
  SECTION("a descriptor number reused for another file") {
    const int other = ::memfd_create("stash-test-other", MFD_CLOEXEC);
    REQUIRE(other >= 0);
    CHECK(refusal([&] { stash::ipc_open_text(one_piece(::getpid(), other, st)); }) == ESTALE);
    ::close(other);
  }
  SECTION("an exporter that has exited") {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(0);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(refusal([&] { stash::ipc_open_text(one_piece(child, memfd, st)); }) == ESRCH);
  }
  SECTION("an importer without ptrace permission over the exporter") {
    // Another user, which ptrace permission never allows (without CAP_SYS_PTRACE): the child drops to
    // nobody when it can; otherwise it asks for pid 1's descriptors, another user's too.
    const std::string ours = one_piece(::getpid(), memfd, st);
    struct stat init {};
    if (::geteuid() != 0 && (::stat("/proc/1", &init) != 0 || init.st_uid == ::geteuid())) {
      WARN("not checked: not root, and pid 1 is this user's");
      ::close(memfd);
      return;
    }
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      std::string text = ours;
      if (::geteuid() == 0) {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
      } else {
        text = one_piece(1, 0, st);
      }
      const int code = refusal([&] { stash::ipc_open_text(text); });
      ::_exit(code == EPERM ? 0 : (code == 0 ? 11 : 12));
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  SECTION("the message says what to do") {
    try {
      stash::ipc_open_text(one_piece(::getpid(), 1 << 20, st));
      FAIL("no refusal");
    } catch (const stash::ipc_refused& e) {
      CHECK(e.code() == EBADF);
      CHECK(std::string(e.what()).find("freed") != std::string::npos);
    }
  }
  ::close(memfd);
}

TEST_CASE("a handle of a freed block is refused once its descriptors are closed", "[ipc][pidfd][errors]") {
  paged a(stash::simulated_paged_backend{}, chunks_of_four());
  void* p = a.allocate(3 * page);
  std::string text;
  {
    const stash::ipc_handle h = a.ipc_export(p);
    text = stash::ipc_encode(h);
    if (pidfd_available()) CHECK_NOTHROW(stash::ipc_open_text(text));
  }  // the exporter closes the descriptors (the C interface does when the block is freed)
  a.deallocate(p);
  const int code = refusal([&] { stash::ipc_open_text(text); });
  if (pidfd_available()) CHECK((code == EBADF || code == ESTALE));
  else CHECK(code == ENOSYS);
}

TEST_CASE("the memory manager finds the live block a pointer lies in", "[ipc][manager]") {
  stash::memory_manager mm(stash::memory_manager::backing::host, 1);
  auto* a = static_cast<char*>(mm.allocate(3 * MiB + 100, stash::memory_type::device));
  auto* b = static_cast<char*>(mm.allocate(5000, stash::memory_type::device));
  void* freed = mm.allocate(7 * MiB, stash::memory_type::device);
  mm.deallocate(freed);
  const auto stats = mm.get_stats(0);
  CHECK(mm.live_block_containing(a) == std::pair<void*, std::size_t>{a, 3 * MiB + 100});
  CHECK(mm.live_block_containing(a + 3 * MiB + 99) == std::pair<void*, std::size_t>{a, 3 * MiB + 100});
  CHECK(mm.live_block_containing(b + 4999) == std::pair<void*, std::size_t>{b, 5000});
  CHECK(mm.live_block_containing(freed).first == nullptr);  // a free block is no live one
  int x = 0;
  CHECK(mm.live_block_containing(&x).first == nullptr);      // not the manager's
  // owns: the start of a live block only (what the C interface's export table checks its entries by)
  CHECK(mm.owns(a));
  CHECK(mm.owns(b));
  CHECK_FALSE(mm.owns(a + 256));
  CHECK_FALSE(mm.owns(freed));
  CHECK_FALSE(mm.owns(&x));
  CHECK_FALSE(mm.owns(nullptr));
  CHECK(mm.get_stats(0).detail == stats.detail);             // finding changes nothing
  mm.deallocate(a);
  CHECK_FALSE(mm.owns(a));
  mm.deallocate(b);
}
