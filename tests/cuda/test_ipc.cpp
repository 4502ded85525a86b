// A stash block shared with another process (stash/ipc.hpp, stash/cuda/ipc_mapping.hpp): this test
// binary starts a copy of itself (main.cpp's --ipc-peer) that receives the block over a Unix socket,
// maps it, checks what the parent wrote and rewrites it with a kernel; the parent then reads the
// kernel's result through its own pointer. [no-initcheck]: initcheck follows initialization by
// address within one process, so data written through the other mapping reads as uninitialized there.
#include <catch2/catch.hpp>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/allocators.hpp"
#include "cuda/cuda_support.hpp"
#include "cuda/kernels.hpp"
#include "stash/cuda/driver_api.hpp"
#include "stash/cuda/ipc_mapping.hpp"
#include "stash/ipc.hpp"
#include "stash/memory_manager.hpp"
#include "stash_c.h"

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
    if (cudaMemcpy(host.data(), mapping.get(), n * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess)
      return 3;
    bool right = true;
    for (std::size_t i = 0; i < n; ++i) right = right && host[i] == static_cast<float>(i);
    if (launch_affine_update(static_cast<float*>(mapping.get()), n, 2.0f, 1.0f, nullptr) != cudaSuccess)
      return 4;
    if (cudaDeviceSynchronize() != cudaSuccess) return 5;
    const char answer = right ? 'y' : 'n';
    if (::write(socket, &answer, 1) != 1) return 6;
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipc peer: %s\n", e.what());
    return 2;
  }
}

namespace {

/// Starts this binary again with `mode`, environment `env`, and stdin from `stdin_fd` (-1: inherited).
pid_t spawn_self(const char* mode, char** env, int stdin_fd = -1) {
  char arg0[] = "stash_cuda_tests";
  std::vector<char> arg1(mode, mode + std::strlen(mode) + 1);
  char* argv[] = {arg0, arg1.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdin_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv, env);
  posix_spawn_file_actions_destroy(&actions);
  return spawned == 0 ? pid : -1;
}

/// The exit code of process pid (-1 when it did not exit normally).
int exit_code_of(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

constexpr std::size_t c_shared_floats = (9 * MiB + 12 * KiB) / sizeof(float);

}  // namespace

/// The exporter of "the C interface shares a block by text" (main.cpp calls it for --ipc-c-exporter,
/// started with STASH_CONF=shareable:on): allocates with stash_alloc, writes data[i] = i, exports the
/// block as text, starts the importer (--ipc-c-importer) and hands it the text on its stdin, then
/// checks that the importer's kernel wrote 2i + 1 through its own mapping. Once the block is freed its
/// descriptors are closed, and the text no longer opens. Returns the process's exit code (0: pass).
int run_ipc_c_exporter() {
  const std::size_t bytes = c_shared_floats * sizeof(float);
  auto* data = static_cast<float*>(stash_alloc(static_cast<ssize_t>(bytes), 0, nullptr));
  if (!data) return std::fprintf(stderr, "exporter: stash_alloc: %s\n", stash_last_error()), 20;
  if (launch_affine_fill(data, c_shared_floats, 1.0f, 0.0f) != cudaSuccess ||
      cudaDeviceSynchronize() != cudaSuccess)
    return 21;
  std::vector<char> text(STASH_IPC_HANDLE_MAX);
  std::size_t length = 0;
  std::uint64_t offset = 1;
  if (stash_ipc_export(data, text.data(), text.size(), &length, &offset) != STASH_OK || offset != 0)
    return std::fprintf(stderr, "exporter: stash_ipc_export: %s\n", stash_last_error()), 22;
  if (length != std::strlen(text.data()) + 1) return 23;
  std::vector<char> again(STASH_IPC_HANDLE_MAX);
  std::size_t again_length = 0;
  if (stash_ipc_export(data, again.data(), again.size(), &again_length, nullptr) != STASH_OK ||
      std::strcmp(again.data(), text.data()) != 0)
    return 24;  // one block, one text: the same descriptors
  if (stash_ipc_export(data + 1000, again.data(), again.size(), &again_length, &offset) != STASH_OK ||
      std::strcmp(again.data(), text.data()) != 0 || offset != 1000 * sizeof(float))
    return 33;  // a pointer inside the block: the block's text, and where the pointer lies in it
  if (stash_ipc_export(data, again.data(), length - 1, &again_length, nullptr) !=
          STASH_ERROR_INVALID_ARGUMENT ||
      again_length != length)
    return 25;  // too small a buffer says how much it needs

  int pipe_ends[2];
  if (::pipe(pipe_ends) != 0) return 26;
  const pid_t importer = spawn_self("--ipc-c-importer", environ, pipe_ends[0]);
  ::close(pipe_ends[0]);
  if (importer < 0) return 27;
  // Under Yama ptrace_scope 1 a process may take another's descriptors only from its descendants or
  // from a process that named it; without Yama this fails (EINVAL) and nothing is needed.
  (void)::prctl(PR_SET_PTRACER, static_cast<unsigned long>(importer), 0, 0, 0);
  const std::string line = std::string(text.data()) + "\n";
  const bool sent = ::write(pipe_ends[1], line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(pipe_ends[1]);
  const int importer_code = exit_code_of(importer);
  if (!sent) return 28;
  if (importer_code != 0)
    return std::fprintf(stderr, "exporter: the importer exited with %d\n", importer_code), 29;

  std::vector<float> host(c_shared_floats);
  if (cudaMemcpy(host.data(), data, bytes, cudaMemcpyDeviceToHost) != cudaSuccess) return 30;
  for (std::size_t i = 0; i < c_shared_floats; ++i)
    if (host[i] != 2.0f * static_cast<float>(i) + 1.0f)
      return std::fprintf(stderr, "exporter: data[%zu] = %g\n", i, host[i]), 31;

  stash_free(data, static_cast<ssize_t>(bytes), 0, nullptr);
  void* p = nullptr;
  if (stash_ipc_open(text.data(), &p, nullptr) != STASH_ERROR_IPC || p != nullptr ||
      std::strstr(stash_last_error(), "freed") == nullptr)
    return std::fprintf(stderr, "exporter: the freed block's text: %s\n", stash_last_error()), 32;

  // A graph pool's block freed without stash_free (a checkpoint restored without it, then the pool
  // released and its blocks given back at empty_cache): its export goes with it.
  const auto every_stream = [](void*, stash_stream_t) { return 1; };
  if (stash_graph_pool_begin(0, 7, 7, every_stream, nullptr) != STASH_OK) return 34;
  void* g = stash_alloc(static_cast<ssize_t>(4 * MiB), 0, nullptr);
  if (!g || stash_graph_pool_end(0, 7, 7) != STASH_OK) return 35;
  if (stash_ipc_export(g, text.data(), text.size(), &length, nullptr) != STASH_OK) return 36;
  if (stash_graph_pool_set_live(0, 7, 7, nullptr, 0) != STASH_OK ||
      stash_graph_pool_release(0, 7, 7) != STASH_OK)
    return 37;
  if (stash_empty_cache(0) != STASH_OK) return 38;
  if (stash_ipc_open(text.data(), &p, nullptr) != STASH_ERROR_IPC)
    return std::fprintf(stderr, "exporter: the given-back graph block's text: %s\n", stash_last_error()), 39;
  return 0;
}

/// The importer (--ipc-c-importer): reads the exporter's text from stdin, opens it with
/// stash_ipc_open (pidfd_getfd of the exporter's descriptors), checks data[i] == i, writes 2i + 1
/// with a kernel and closes the mapping. Returns the process's exit code (0: pass).
int run_ipc_c_importer() {
  std::string text;
  for (int c; (c = std::getchar()) != EOF && c != '\n';) text.push_back(static_cast<char>(c));
  void* p = nullptr;
  std::uint64_t size = 0;
  if (stash_ipc_open(text.c_str(), &p, &size) != STASH_OK)
    return std::fprintf(stderr, "importer: stash_ipc_open: %s\n", stash_last_error()), 40;
  if (size != c_shared_floats * sizeof(float)) return 41;
  std::vector<float> host(c_shared_floats);
  if (cudaMemcpy(host.data(), p, size, cudaMemcpyDeviceToHost) != cudaSuccess) return 42;
  for (std::size_t i = 0; i < c_shared_floats; ++i)
    if (host[i] != static_cast<float>(i)) return 43;
  if (launch_affine_update(static_cast<float*>(p), c_shared_floats, 2.0f, 1.0f, nullptr) != cudaSuccess)
    return 44;
  if (cudaDeviceSynchronize() != cudaSuccess) return 45;
  if (stash_ipc_close(p) != STASH_OK) return 46;
  if (stash_ipc_close(p) != STASH_ERROR_INVALID_POINTER) return 47;  // closed already
  return 0;
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

/// Exports the block at data (n floats, data[i] == i) from mm and rewrites it through a second mapping
/// of the export: the handle covers the block, and mm's own pointer sees every write.
void check_rewritten_through_its_export(stash::memory_manager& mm, float* data, std::size_t n) {
  stash::ipc_handle h = mm.ipc_export(data);
  CHECK(h.size() == n * sizeof(float));
  rewrite_through_a_second_mapping(h, data, n);
  CHECK(not_rewritten(data, n) == 0);
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

TEST_CASE("a block shared with another process: the peer reads it and its kernel writes it",
          "[cuda][ipc][no-initcheck]") {
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

TEST_CASE("ipc_mapping maps a block exported in this process at a second address",
          "[cuda][ipc][no-initcheck]") {
  device_vmm a(stash::cuda_vmm_backend(0, 0, true));
  // 65 MiB at the arena's base: pages 0-32, a run of 33 pages mapped in chunks of at most 32: two pieces.
  const std::size_t n = 65 * MiB / sizeof(float);
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
  check_rewritten_through_its_export(mm, data, n);
  mm.deallocate(data);
  CHECK_THROWS_AS(mm.ipc_export(data), stash::invalid_pointer);
  stash::memory_manager plain(stash::memory_manager::backing::cuda);
  void* q = plain.allocate(MiB, stash::memory_type::device, 0);
  CHECK_THROWS_AS(plain.ipc_export(q), stash::error);  // not made shareable
  plain.deallocate(q);
}

TEST_CASE("a memory manager made shareable where supported exports on a device that can export",
          "[cuda][ipc][manager][no-initcheck]") {
  const stash::cuda::driver_api& api = stash::cuda::driver_api::get();
  CUdevice device0 = 0;
  REQUIRE(api.cuDeviceGet(&device0, 0) == CUDA_SUCCESS);
  int can_export = 0;
  REQUIRE(api.cuDeviceGetAttribute(&can_export,
                                   CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED,
                                   device0) == CUDA_SUCCESS);
  stash::manager_options options;
  options.shareable_where_supported = true;
  stash::memory_manager mm(stash::memory_manager::backing::cuda, 1, options);
  const std::size_t n = 6 * MiB / sizeof(float);
  auto* data = static_cast<float*>(mm.allocate(n * sizeof(float), stash::memory_type::device, 0));
  CUDA_REQUIRE(launch_affine_fill(data, n, 1.0f, 0.0f));
  if (!can_export) {  // plain memory instead of a failed allocation
    CHECK_THROWS_AS(mm.ipc_export(data), stash::error);
    mm.deallocate(data);
    WARN("device 0 cannot export POSIX file descriptors: only the fallback was checked");
    return;
  }
  check_rewritten_through_its_export(mm, data, n);
  mm.deallocate(data);
}

TEST_CASE("the C interface shares a block by text: another process takes its descriptors with pidfd_getfd",
          "[cuda][ipc][c_interface][no-initcheck]") {
  // Both sides run in processes of their own: the exporter's library must be made with shareable:on,
  // and this process's library is made with the options of the other C interface tests.
  std::vector<std::string> env_text;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "STASH_CONF=", 11) != 0) env_text.emplace_back(*e);
  env_text.emplace_back("STASH_CONF=shareable:on");
  std::vector<char*> env;
  for (std::string& e : env_text) env.push_back(e.data());
  env.push_back(nullptr);
  const pid_t exporter = spawn_self("--ipc-c-exporter", env.data());
  REQUIRE(exporter > 0);
  CHECK(exit_code_of(exporter) == 0);  // its stderr says what went wrong
}

TEST_CASE("the C interface refuses to export memory that is not shareable, and bad pointers",
          "[cuda][ipc][c_interface]") {
  // This process's library was made without shareable:on (STASH_CONF of the suite, none by default).
  const char* conf = std::getenv("STASH_CONF");
  if (conf && std::strstr(conf, "shareable:on")) {
    WARN("not run: the suite runs with shareable:on");
    return;
  }
  void* p = stash_alloc(static_cast<ssize_t>(4 * MiB), 0, nullptr);
  REQUIRE(p);
  stash_stats before{};
  REQUIRE(stash_get_stats(0, &before) == STASH_OK);
  std::vector<char> text(STASH_IPC_HANDLE_MAX);
  std::size_t length = 0;
  CHECK(stash_ipc_export(p, text.data(), text.size(), &length, nullptr) == STASH_ERROR_UNSUPPORTED);
  CHECK(std::strstr(stash_last_error(), "shareable:on") != nullptr);
  CHECK(stash_ipc_export(static_cast<char*>(p) + 256, text.data(), text.size(), &length, nullptr) ==
        STASH_ERROR_UNSUPPORTED);  // the block it lies in, not shareable
  stash_stats after{};
  REQUIRE(stash_get_stats(0, &after) == STASH_OK);
  CHECK(after.allocations == before.allocations);
  CHECK(after.allocated_bytes == before.allocated_bytes);
  stash_free(p, static_cast<ssize_t>(4 * MiB), 0, nullptr);
  void* q = nullptr;
  CUDA_REQUIRE(cudaMalloc(&q, 4096));
  CHECK(stash_ipc_export(q, text.data(), text.size(), &length, nullptr) ==
        STASH_ERROR_INVALID_POINTER);  // not stash's
  CUDA_REQUIRE(cudaFree(q));
}
