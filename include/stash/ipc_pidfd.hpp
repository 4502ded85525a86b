#pragma once
// A block's ipc_handle as text alone, for callers that carry only bytes between processes (PyTorch's
// shareIpcHandle and getIpcDevPtr; any queue or pipe), where ipc_send's socket is not available.
//
// The text names the exporting process and the numbers of its descriptors, not the descriptors: the
// importer takes its own copies with pidfd_open and pidfd_getfd (Linux 5.6 or later), as PyTorch's
// expandable segments do. So the exporter must keep the descriptors open until the importer has taken
// them (the C interface keeps them while the block is live), and the importer needs the kernel's
// ptrace permission over the exporter (PTRACE_MODE_ATTACH_REALCREDS): the same user, and, under Yama's
// ptrace_scope 1 (Ubuntu's default), being the exporter's ancestor or named by the exporter's
// prctl(PR_SET_PTRACER); or CAP_SYS_PTRACE. ipc_fetch says which of these failed (ipc_refused).
//
// Each descriptor's file identity (device and inode) travels too, and the importer compares it with
// the copy it took: a number the exporter closed and reused for another file is refused rather than
// mapped. Two exports of CUDA memory may share an identity (the driver's descriptors can be of one
// inode), so this catches a reused number only when it now names another kind of file.
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stash/error.hpp"
#include "stash/ipc_handle.hpp"

// Older C libraries name neither call; their numbers are the same on every architecture since Linux 5.1.
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

namespace stash {

/// Text that is not a handle ipc_encode wrote (or that names pieces no block can have).
class invalid_ipc_handle : public error {
 public:
  explicit invalid_ipc_handle(const std::string& why) : error("stash: not a stash ipc handle: " + why) {}
};

/// The importer could not take the exporter's descriptors. code(): the errno of the refusal (EPERM no
/// permission, ESRCH the exporter has exited, EBADF or ESTALE the exporter closed the descriptor,
/// its block was freed, ENOSYS a kernel without pidfd_getfd).
class ipc_refused : public error {
 public:
  ipc_refused(int code, const std::string& what) : error(what), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

/// A handle as ipc_decode reads it: what ipc_fetch needs to take the descriptors.
struct ipc_remote_handle {
  struct piece {
    int fd = -1;              // the exporter's descriptor number
    std::uint64_t st_dev = 0;  // and the identity of the file it names there
    std::uint64_t st_ino = 0;
    ipc_piece where;
  };
  pid_t pid = 0;
  int device = -1;
  std::size_t offset = 0;
  std::size_t size = 0;
  std::vector<piece> pieces;
};

namespace detail {

constexpr std::string_view ipc_text_magic = "stash-ipc1";

inline std::string errno_text(int code) { return std::strerror(code); }

}  // namespace detail

/// h as text another process of this machine can open with ipc_decode and ipc_fetch while this
/// process (`pid`) keeps h's descriptors open. Plain ASCII, no NUL. Throws stash::error when a
/// descriptor cannot be examined.
inline std::string ipc_encode(const ipc_handle& h, pid_t pid = ::getpid()) {
  std::string text(detail::ipc_text_magic);
  auto put = [&text](auto value) { text.append(" ").append(std::to_string(value)); };
  put(pid);
  put(h.device());
  put(h.offset());
  put(h.size());
  put(h.pieces().size());
  for (std::size_t i = 0; i < h.pieces().size(); ++i) {
    struct stat st {};
    if (::fstat(h.fds()[i], &st) != 0) throw error("stash: ipc_encode: fstat: " + detail::errno_text(errno));
    const ipc_piece& p = h.pieces()[i];
    put(h.fds()[i]);
    put(static_cast<std::uint64_t>(st.st_dev));
    put(static_cast<std::uint64_t>(st.st_ino));
    put(p.handle_offset);
    put(p.bytes);
    put(p.chunk_bytes);
  }
  return text;
}

/// Reads text that ipc_encode wrote. Throws invalid_ipc_handle for anything else: another format, a
/// number out of range, a count that does not match, pieces no block can have.
inline ipc_remote_handle ipc_decode(std::string_view text) {
  if (text.substr(0, detail::ipc_text_magic.size()) != detail::ipc_text_magic)
    throw invalid_ipc_handle("it does not start with \"" + std::string(detail::ipc_text_magic) + "\"");
  std::string_view rest = text.substr(detail::ipc_text_magic.size());
  auto next = [&rest](auto& value, const char* name) {
    if (rest.empty() || rest.front() != ' ') throw invalid_ipc_handle(std::string("no ") + name);
    rest.remove_prefix(1);
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
    if (ec != std::errc{} || end == rest.data()) throw invalid_ipc_handle(std::string("a bad ") + name);
    rest.remove_prefix(static_cast<std::size_t>(end - rest.data()));
  };
  ipc_remote_handle r;
  std::size_t count = 0;
  next(r.pid, "process id");
  next(r.device, "device");
  next(r.offset, "offset");
  next(r.size, "size");
  next(count, "piece count");
  if (r.pid <= 0) throw invalid_ipc_handle("a bad process id");
  if (r.device < 0) throw invalid_ipc_handle("a bad device");
  if (count == 0 || count > ipc_handle::max_pieces) throw invalid_ipc_handle("a bad piece count");
  std::vector<ipc_piece> where;
  for (std::size_t i = 0; i < count; ++i) {
    ipc_remote_handle::piece p;
    next(p.fd, "descriptor");
    next(p.st_dev, "file device");
    next(p.st_ino, "file inode");
    next(p.where.handle_offset, "piece offset");
    next(p.where.bytes, "piece size");
    next(p.where.chunk_bytes, "chunk size");
    if (p.fd < 0) throw invalid_ipc_handle("a bad descriptor");
    r.pieces.push_back(p);
    where.push_back(p.where);
  }
  if (!rest.empty()) throw invalid_ipc_handle("text after the last piece");
  if (!ipc_pieces_consistent(where, r.offset, r.size))
    throw invalid_ipc_handle("its pieces do not describe one block");
  return r;
}

/// Takes this process's own copies of the descriptors r names (pidfd_open, pidfd_getfd), as an
/// ipc_handle that ipc_mapping maps. Throws ipc_refused, saying why, when the kernel refuses or a
/// descriptor no longer names the file it named at export; nothing is left open then.
inline ipc_handle ipc_fetch(const ipc_remote_handle& r) {
  const std::string exporter = "process " + std::to_string(r.pid);
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, r.pid, 0));
  if (pidfd < 0) {
    const int e = errno;
    if (e == ESRCH) throw ipc_refused(e, "stash: " + exporter + ", which exported the block, has exited");
    if (e == ENOSYS)
      throw ipc_refused(
          e, "stash: this kernel has no pidfd_open, which opening a shared block needs (Linux 5.6 or later)");
    throw ipc_refused(e, "stash: pidfd_open(" + exporter + "): " + detail::errno_text(e));
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } const close_pidfd{pidfd};
  ipc_handle h(r.device, r.offset, r.size);
  for (const ipc_remote_handle::piece& p : r.pieces) {
    const int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, p.fd, 0));  // close-on-exec
    if (fd < 0) {
      const int e = errno;
      const std::string theirs = "descriptor " + std::to_string(p.fd) + " of " + exporter;
      if (e == EPERM)
        throw ipc_refused(
            e, "stash: pidfd_getfd: not permitted to take " + theirs +
                   ": the importer needs ptrace permission over the exporter (same user, and under "
                   "Yama ptrace_scope 1 be its ancestor or be named by its prctl(PR_SET_PTRACER), "
                   "or have CAP_SYS_PTRACE)");
      if (e == EBADF)
        throw ipc_refused(e, "stash: " + theirs +
                                 " is closed: the block was freed there (the exporter must keep "
                                 "it allocated until every importer has opened it)");
      if (e == ENOSYS)
        throw ipc_refused(e, "stash: this kernel has no pidfd_getfd, which opening a shared block needs "
                             "(Linux 5.6 or later)");
      throw ipc_refused(e, "stash: pidfd_getfd(" + theirs + "): " + detail::errno_text(e));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_dev) != p.st_dev ||
        static_cast<std::uint64_t>(st.st_ino) != p.st_ino) {
      ::close(fd);
      throw ipc_refused(ESTALE, "stash: descriptor " + std::to_string(p.fd) + " of " + exporter +
                                    " no longer names the block's memory: the block was freed there");
    }
    h.add(fd, p.where);  // owns fd from here, also when it throws
  }
  return h;
}

/// ipc_fetch(ipc_decode(text)).
inline ipc_handle ipc_open_text(std::string_view text) { return ipc_fetch(ipc_decode(text)); }

}  // namespace stash
