#pragma once
// stash::ipc_handle: a live block as another process can map it (stash/ipc.hpp says how it is made,
// sent and received; stash/cuda/ipc_mapping.hpp maps it).
#include <unistd.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "stash/error.hpp"

namespace stash {

/// A run of the block's pages inside one exported physical allocation (a chunk of chunk_bytes): bytes
/// from handle_offset. CUDA maps a handle only whole (cuMemMap's offset must be zero), so the importer
/// maps every chunk whole, back to back: only the first piece may start inside its chunk and only the
/// last may end before its chunk does, and the block is contiguous there as it is here. As with
/// cudaIpcGetMemHandle, whose handle opens the whole cudaMalloc allocation, the importer can reach the
/// rest of those chunks too.
struct ipc_piece {
  std::size_t handle_offset = 0;
  std::size_t bytes = 0;
  std::size_t chunk_bytes = 0;
  bool operator==(const ipc_piece&) const = default;
};

/// Whether `pieces` can be what an allocator exported for a block of `size` bytes starting `offset`
/// bytes into the first: each inside its chunk, every one but the first starting its chunk and every
/// one but the last ending it, and the block inside them.
inline bool ipc_pieces_consistent(const std::vector<ipc_piece>& pieces, std::size_t offset,
                                  std::size_t size) noexcept {
  std::size_t covered = 0, mapped = 0;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const ipc_piece& p = pieces[i];
    if (p.bytes == 0 || p.chunk_bytes < p.bytes || p.chunk_bytes - p.bytes < p.handle_offset) return false;
    if (i > 0 && p.handle_offset != 0) return false;
    if (i + 1 < pieces.size() && p.handle_offset + p.bytes != p.chunk_bytes) return false;
    // Sizes from a handle another process wrote: neither sum may wrap (mapped_bytes() is the second).
    if (covered + p.bytes < covered || mapped + p.chunk_bytes < mapped) return false;
    covered += p.bytes;
    mapped += p.chunk_bytes;
  }
  return !pieces.empty() && offset < covered && size <= covered - offset;
}

/// A live block as another process can map it. Owns its file descriptors (one per piece) and closes
/// them when destroyed; move-only.
class ipc_handle {
 public:
  /// The most pieces one handle may have: what one sendmsg may carry (the kernel's SCM_MAX_FD is 253).
  static constexpr std::size_t max_pieces = 250;

  ipc_handle() = default;
  ipc_handle(int device, std::size_t offset, std::size_t size) noexcept
      : device_(device), offset_(offset), size_(size) {}
  ipc_handle(ipc_handle&& other) noexcept { *this = std::move(other); }
  ipc_handle& operator=(ipc_handle&& other) noexcept {
    if (this != &other) {
      close_all();
      device_ = other.device_;
      offset_ = other.offset_;
      size_ = other.size_;
      pieces_ = std::move(other.pieces_);
      fds_ = std::move(other.fds_);
      other.pieces_.clear();
      other.fds_.clear();
    }
    return *this;
  }
  ipc_handle(const ipc_handle&) = delete;
  ipc_handle& operator=(const ipc_handle&) = delete;
  ~ipc_handle() { close_all(); }

  /// Takes ownership of fd, the descriptor of the piece's physical allocation.
  void add(int fd, ipc_piece piece) {
    if (fds_.size() == max_pieces) {
      ::close(fd);
      throw error("stash: ipc_handle: a block over more than " + std::to_string(max_pieces) +
                  " physical allocations cannot be shared");
    }
    try {
      pieces_.push_back(piece);
      fds_.push_back(fd);
    } catch (...) {
      if (pieces_.size() > fds_.size()) pieces_.pop_back();
      ::close(fd);
      throw;
    }
  }

  /// The device of the memory.
  int device() const noexcept { return device_; }
  /// Where the block starts inside its first page, and its size in bytes (as asked for).
  std::size_t offset() const noexcept { return offset_; }
  std::size_t size() const noexcept { return size_; }
  /// The pieces in address order; together they are the block's pages, whole.
  const std::vector<ipc_piece>& pieces() const noexcept { return pieces_; }
  const std::vector<int>& fds() const noexcept { return fds_; }
  /// The bytes of the chunks the pieces lie in: what the importer maps.
  std::size_t mapped_bytes() const noexcept {
    std::size_t n = 0;
    for (const ipc_piece& p : pieces_) n += p.chunk_bytes;
    return n;
  }
  /// Whether the pieces can be what an allocator exported: each inside its chunk, every one but the
  /// first starting its chunk and every one but the last ending it, and the block inside them.
  bool consistent() const noexcept { return ipc_pieces_consistent(pieces_, offset_, size_); }
  /// Where the block starts in the importer's mapping of the chunks.
  std::size_t mapping_offset() const noexcept {
    return pieces_.empty() ? 0 : pieces_.front().handle_offset + offset_;
  }

 private:
  void close_all() noexcept {
    for (const int fd : fds_) ::close(fd);
    fds_.clear();
  }

  int device_ = -1;
  std::size_t offset_ = 0;
  std::size_t size_ = 0;
  std::vector<ipc_piece> pieces_;
  std::vector<int> fds_;
};

}  // namespace stash
