// libFuzzer harness for the text form of an IPC handle (include/stash/ipc_pidfd.hpp: ipc_decode), and
// stash_ipc_open's refusal path through the C interface (host-backed: no GPU).
// Contract: ipc_decode either throws stash::invalid_ipc_handle (nothing else), or returns a handle whose
// fields are in range (pid > 0, device >= 0, 1..max_pieces pieces, fd >= 0, pieces consistent, the
// mapping's sums and offsets do not wrap) and which re-encodes to text that decodes to the same handle.
// stash_ipc_open: never crashes; text that ipc_decode refuses gives STASH_ERROR_INVALID_ARGUMENT, *ptr null,
// and no descriptor is left open.
#include <dirent.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "stash_c.cpp"  // build with -I<repo>/integrations/c

namespace {
[[noreturn]] void fail_here(const char* what, const std::string& in) {
  std::fprintf(stderr, "CONTRACT: %s\ninput: [%s]\n", what, in.c_str());
  std::abort();
}
std::string encode(const stash::ipc_remote_handle& r) {
  std::string t = "stash-ipc1";
  auto put = [&t](auto v) { t += " " + std::to_string(v); };
  put(r.pid); put(r.device); put(r.offset); put(r.size); put(r.pieces.size());
  for (const auto& p : r.pieces) {
    put(p.fd); put(p.st_dev); put(p.st_ino); put(p.where.handle_offset); put(p.where.bytes); put(p.where.chunk_bytes);
  }
  return t;
}
int open_fds() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++n;
    closedir(d);
  }
  return n;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  bool ok = false;
  stash::ipc_remote_handle r;
  try {
    r = stash::ipc_decode(in);
    ok = true;
  } catch (const stash::invalid_ipc_handle&) {
  } catch (...) {
    fail_here("ipc_decode threw something other than invalid_ipc_handle", in);
  }
  if (ok) {
    if (r.pid <= 0 || r.device < 0 || r.pieces.empty() || r.pieces.size() > stash::ipc_handle::max_pieces)
      fail_here("field out of range", in);
    std::vector<stash::ipc_piece> where;
    std::size_t mapped = 0;
    for (const auto& p : r.pieces) {
      if (p.fd < 0) fail_here("negative fd", in);
      if (p.where.bytes == 0 || p.where.handle_offset + p.where.bytes > p.where.chunk_bytes ||
          p.where.handle_offset + p.where.bytes < p.where.handle_offset)
        fail_here("piece outside its chunk", in);
      if (mapped + p.where.chunk_bytes < mapped) fail_here("mapped bytes wrap", in);
      mapped += p.where.chunk_bytes;
      where.push_back(p.where);
    }
    if (!stash::ipc_pieces_consistent(where, r.offset, r.size)) fail_here("inconsistent accepted", in);
    // Where the block lies in the importer's mapping, and its end, stay inside the mapping.
    const std::size_t start = r.pieces.front().where.handle_offset + r.offset;
    if (start < r.offset || start >= mapped || r.size > mapped - start) fail_here("block outside the mapping", in);
    const std::string text = encode(r);
    const stash::ipc_remote_handle again = stash::ipc_decode(text);
    if (encode(again) != text) fail_here("re-encoding differs", in);
  }
  // The C entry point (a C string), host-backed: refused, nothing open afterwards.
  const std::string c(in.c_str());
  bool c_decodes = true;
  try {
    (void)stash::ipc_decode(c);
  } catch (const stash::invalid_ipc_handle&) {
    c_decodes = false;
  }
  const int fds_before = open_fds();
  void* ptr = reinterpret_cast<void*>(1);
  std::uint64_t bytes = 7;
  const int status = stash_ipc_open(c.c_str(), &ptr, &bytes);
  if (status == STASH_OK) fail_here("stash_ipc_open succeeded without a GPU", in);
  if (ptr != nullptr) fail_here("*ptr not null on failure", in);
  if (!c_decodes && status != STASH_ERROR_INVALID_ARGUMENT) fail_here("undecodable text not INVALID_ARGUMENT", in);
  if (open_fds() != fds_before) fail_here("descriptor leak", in);
  return 0;
}
