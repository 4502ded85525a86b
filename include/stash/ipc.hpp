#pragma once
// Sharing a live block with another process, as cudaIpcGetMemHandle shares cudaMalloc'd memory.
//
// A paged allocator whose backend creates its physical memory with shareable handles (CUDA's
// CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR: cuda_vmm_backend built with `shareable`) exports a live
// block as an ipc_handle: one file descriptor per physical allocation (chunk) under the block, and
// which part of each chunk the block's pages are. The handle travels to the other process over a Unix
// domain socket (ipc_send, ipc_receive: the descriptors go as SCM_RIGHTS, which is how a process hands a
// file descriptor to another), and the other process maps it (stash/cuda/ipc_mapping.hpp).
//
// What the exporter promises, as with cudaIpc: the block stays allocated while the importer uses it.
// Freeing it early is not undefined on the importer's side: its mapping holds the physical memory, so
// the memory stays, and the exporter's allocator may hand the same pages to a new block (the two
// processes then share them). The physical memory is returned to the driver only once both processes
// have unmapped it, so until the importer closes its mapping the exporter's figures may show less than
// the device holds for it.
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "stash/error.hpp"
#include "stash/ipc_handle.hpp"

namespace stash {

namespace detail {

/// What goes in the message's bytes; the descriptors go alongside, in SCM_RIGHTS.
struct ipc_wire_header {
  std::uint32_t magic = 0x73746831;  // "sth1"
  std::int32_t device = -1;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  std::uint64_t pieces = 0;
};
struct ipc_wire_piece {
  std::uint64_t handle_offset = 0;
  std::uint64_t bytes = 0;
  std::uint64_t chunk_bytes = 0;
};

[[noreturn]] inline void throw_errno(const char* what) {
  throw error(std::string("stash: ") + what + ": " + std::strerror(errno));
}

}  // namespace detail

/// Sends h (its figures and a duplicate of each descriptor) in one message over the connected Unix
/// domain socket `socket`; h stays valid. Throws stash::error when the socket refuses it.
inline void ipc_send(int socket, const ipc_handle& h) {
  detail::ipc_wire_header header;
  header.device = h.device();
  header.offset = h.offset();
  header.size = h.size();
  header.pieces = h.pieces().size();
  std::vector<detail::ipc_wire_piece> pieces;
  for (const ipc_piece& p : h.pieces()) pieces.push_back({p.handle_offset, p.bytes, p.chunk_bytes});
  iovec parts[2] = {{&header, sizeof header},
                    {pieces.data(), pieces.size() * sizeof(detail::ipc_wire_piece)}};

  const std::size_t fd_bytes = h.fds().size() * sizeof(int);
  std::vector<char> control(CMSG_SPACE(fd_bytes == 0 ? sizeof(int) : fd_bytes), 0);
  msghdr message{};
  message.msg_iov = parts;
  message.msg_iovlen = pieces.empty() ? 1 : 2;
  if (fd_bytes != 0) {
    message.msg_control = control.data();
    message.msg_controllen = CMSG_SPACE(fd_bytes);
    cmsghdr* c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fd_bytes);
    std::memcpy(CMSG_DATA(c), h.fds().data(), fd_bytes);
  }
  const std::size_t total = sizeof header + pieces.size() * sizeof(detail::ipc_wire_piece);
  ssize_t sent;
  do {
    sent = ::sendmsg(socket, &message, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) detail::throw_errno("ipc_send");
  if (static_cast<std::size_t>(sent) != total)
    throw error("stash: ipc_send: the socket took part of the message");
}

/// Receives one handle sent by ipc_send over `socket` (blocking); the descriptors it carries are this
/// process's own, owned by the handle. Throws stash::error on a closed socket or a message that is not
/// a handle (its descriptors are closed then).
inline ipc_handle ipc_receive(int socket) {
  detail::ipc_wire_header header;
  std::vector<detail::ipc_wire_piece> pieces(ipc_handle::max_pieces);
  iovec parts[2] = {{&header, sizeof header},
                    {pieces.data(), pieces.size() * sizeof(detail::ipc_wire_piece)}};
  std::vector<char> control(CMSG_SPACE(ipc_handle::max_pieces * sizeof(int)), 0);
  msghdr message{};
  message.msg_iov = parts;
  message.msg_iovlen = 2;
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  ssize_t got;
  do {
    got = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
  } while (got < 0 && errno == EINTR);
  if (got < 0) detail::throw_errno("ipc_receive");

  std::vector<int> fds;  // every descriptor that arrived, whatever the message says
  for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const std::size_t before = fds.size();
    fds.resize(before + n);
    std::memcpy(fds.data() + before, CMSG_DATA(c), n * sizeof(int));
  }
  auto refuse = [&fds](const std::string& why) {
    for (const int fd : fds) ::close(fd);
    throw error("stash: ipc_receive: " + why);
  };
  if (got == 0) refuse("the socket was closed");
  if (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) refuse("the message was cut short");
  if (static_cast<std::size_t>(got) < sizeof header || header.magic != detail::ipc_wire_header{}.magic)
    refuse("the message is not a stash ipc_handle");
  if (header.pieces > ipc_handle::max_pieces ||
      static_cast<std::size_t>(got) != sizeof header + header.pieces * sizeof(detail::ipc_wire_piece) ||
      fds.size() != header.pieces)
    refuse("the message's pieces and descriptors do not match");
  for (std::size_t i = 0; i < fds.size(); ++i)
    if (fds[i] < 0) refuse("the message carries a bad descriptor");

  ipc_handle h(header.device, header.offset, header.size);
  for (std::size_t i = 0; i < fds.size(); ++i) {
    const int fd = std::exchange(fds[i], -1);
    try {
      h.add(fd, {pieces[i].handle_offset, pieces[i].bytes, pieces[i].chunk_bytes});
    } catch (...) {
      for (std::size_t j = i + 1; j < fds.size(); ++j) ::close(fds[j]);
      throw;
    }
  }
  if (!h.consistent()) throw error("stash: ipc_receive: the message's pieces do not describe one block");
  return h;
}

}  // namespace stash
