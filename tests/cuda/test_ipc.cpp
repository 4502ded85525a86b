// A stash block shared with another process (stash/ipc.hpp, stash/cuda/ipc_mapping.hpp): this test
// binary starts a copy of itself (main.cpp's --ipc-peer) that receives the block over a Unix socket,
// maps it, checks what the parent wrote and rewrites it with a kernel; the parent then reads the
// kernel's result through its own pointer. [no-initcheck]: initcheck follows initialization by
// address within one process, so data written through the other mapping reads as uninitialized there.
#include <catch2/catch.hpp>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "cuda/allocators.hpp"
#include "cuda/cuda_support.hpp"
#include "cuda/kernels.hpp"
#include "stash/cuda/ipc_mapping.hpp"
#include "stash/ipc.hpp"
#include "stash/memory_manager.hpp"

extern char** environ;

using namespace stash_test;

namespace stash_test {

/// The peer's side (main.cpp calls it for --ipc-peer FD): receives one handle on `socket`, maps it,
/// checks that element i holds i, writes 2i + 1 with a kernel, and answers one byte: 'y' when the
/// contents were right, 'n' when not. Returns the process's exit code.
int run_ipc_peer(int socket) {
  try {
    stash::ipc_handle h = stash::ipc_receive(socket);
    stash::ipc_mapping mapping(h);
    const std::size_t n = mapping.size() / sizeof(float);
    std::vector<float> host(n);
    if (cudaMemcpy(host.data(), mapping.get(), n * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess) return 3;
    bool right = true;
    for (std::size_t i = 0; i < n; ++i) right = right && host[i] == static_cast<float>(i);
    if (launch_affine_update(static_cast<float*>(mapping.get()), n, 2.0f, 1.0f, nullptr) != cudaSuccess) return 4;
    if (cudaDeviceSynchronize() != cudaSuccess) return 5;
    const char answer = right ? 'y' : 'n';
    if (::write(socket, &answer, 1) != 1) return 6;
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipc peer: %s\n", e.what());
    return 2;
  }
}

}  // namespace stash_test

namespace {

/// How many of data's n elements do not hold 2i + 1 (what the rewrite through a mapping writes over
/// data[i] == i); read back through the exporter's own pointer.
std::size_t not_rewritten(const float* data, std::size_t n) {
  std::vector<float> host(n);
  CUDA_REQUIRE(cudaMemcpy(host.data(), data, n * sizeof(float), cudaMemcpyDeviceToHost));
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < n; ++i) wrong += host[i] != 2.0f * static_cast<float>(i) + 1.0f;
  return wrong;
}

/// Maps h a second time in this process (at another address than data) and rewrites its n floats
/// there with a kernel: x -> 2x + 1.
void rewrite_through_a_second_mapping(const stash::ipc_handle& h, const float* data, std::size_t n) {
  stash::ipc_mapping m(h);
  REQUIRE(m.get() != static_cast<const void*>(data));
  CUDA_REQUIRE(launch_affine_update(static_cast<float*>(m.get()), n, 2.0f, 1.0f, nullptr));
  CUDA_REQUIRE(cudaDeviceSynchronize());
}

/// The peer process, started on one end of a socket pair.
struct peer {
  pid_t pid = -1;
  int socket = -1;

  peer() {
    int ends[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) == 0);
    const int child_end = ::dup(ends[1]);  // without close-on-exec: the peer inherits this one
    REQUIRE(child_end >= 0);
    ::close(ends[1]);
    const std::string fd = std::to_string(child_end);
    char arg0[] = "stash_cuda_tests";
    char arg1[] = "--ipc-peer";
    std::vector<char> arg2(fd.begin(), fd.end());
    arg2.push_back('\0');
    char* argv[] = {arg0, arg1, arg2.data(), nullptr};
    const int spawned = ::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, environ);
    ::close(child_end);
    socket = ends[0];
    REQUIRE(spawned == 0);
  }
  /// Waits for the peer to end; its exit code (-1 when it did not exit normally).
  int wait() {
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) return -1;
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  ~peer() {
    if (socket >= 0) ::close(socket);
    if (pid > 0) (void)wait();
  }
};

}  // namespace

TEST_CASE("a block shared with another process: the peer reads it and its kernel writes it", "[cuda][ipc][no-initcheck]") {
  stash::caching_options options;
  options.small_region = false;  // the first block below puts the shared one in the middle of a page
  device_vmm a(stash::cuda_vmm_backend(0, 0, /*shareable=*/true), options);
  void* before = a.allocate(1 * MiB);
  const std::size_t n = (9 * MiB + 12 * KiB) / sizeof(float);
  auto* data = static_cast<float*>(a.allocate(n * sizeof(float)));
  CUDA_REQUIRE(launch_affine_fill(data, n, 1.0f, 0.0f));  // data[i] = i
  CUDA_REQUIRE(cudaDeviceSynchronize());
  const auto stats = a.stats();

  stash::ipc_handle h = a.ipc_export(data);
  CHECK(h.device() == 0);
  CHECK(h.size() == n * sizeof(float));
  CHECK(h.consistent());
  CHECK(h.offset() == 1 * MiB);  // behind the 1 MiB block, in the same page
  CHECK(a.stats() == stats);     // exporting changes no figure

  peer p;
  stash::ipc_send(p.socket, h);
  char answer = 0;
  CHECK(::read(p.socket, &answer, 1) == 1);
  CHECK(answer == 'y');  // the peer saw data[i] == i
  CHECK(p.wait() == 0);

  CHECK(not_rewritten(data, n) == 0);  // the peer's kernel wrote through its own mapping of the same pages

  a.deallocate(data);
  a.deallocate(before);
  CHECK_THROWS_AS(a.ipc_export(data), stash::invalid_pointer);  // no longer live
  a.empty_cache();
  CHECK(a.stats().reserved_bytes == 0);
}

TEST_CASE("ipc_mapping maps a block exported in this process at a second address", "[cuda][ipc][no-initcheck]") {
  device_vmm a(stash::cuda_vmm_backend(0, 0, true));
  const std::size_t n = 40 * MiB / sizeof(float);  // interior pages in chunks: several pieces
  auto* data = static_cast<float*>(a.allocate(n * sizeof(float)));
  CUDA_REQUIRE(launch_affine_fill(data, n, 1.0f, 0.0f));
  stash::ipc_handle h = a.ipc_export(data);
  CHECK(h.pieces().size() >= 2);
  rewrite_through_a_second_mapping(h, data, n);
  CHECK(not_rewritten(data, n) == 0);
  a.deallocate(data);
  a.empty_cache();
  CHECK(a.stats().reserved_bytes == 0);
}

TEST_CASE("a backend not made shareable refuses to export", "[cuda][ipc]") {
  device_vmm a{stash::cuda_vmm_backend(0)};
  void* p = a.allocate(4 * MiB);
  const auto stats = a.stats();
  CHECK_THROWS_AS(a.ipc_export(p), stash::error);
  CHECK(a.stats() == stats);
  a.deallocate(p);
}

TEST_CASE("a memory manager made shareable exports its device blocks", "[cuda][ipc][manager][no-initcheck]") {
  stash::manager_options options;
  options.shareable = true;
  stash::memory_manager mm(stash::memory_manager::backing::cuda, 1, options);
  const std::size_t n = 6 * MiB / sizeof(float);
  auto* data = static_cast<float*>(mm.allocate(n * sizeof(float), stash::memory_type::device, 0));
  CUDA_REQUIRE(launch_affine_fill(data, n, 1.0f, 0.0f));
  stash::ipc_handle h = mm.ipc_export(data);
  CHECK(h.size() == n * sizeof(float));
  rewrite_through_a_second_mapping(h, data, n);
  CHECK(not_rewritten(data, n) == 0);
  mm.deallocate(data);
  CHECK_THROWS_AS(mm.ipc_export(data), stash::invalid_pointer);
  stash::memory_manager plain(stash::memory_manager::backing::cuda);
  void* q = plain.allocate(MiB, stash::memory_type::device, 0);
  CHECK_THROWS_AS(plain.ipc_export(q), stash::error);  // not made shareable
  plain.deallocate(q);
}
