#pragma once
// State of every page of a paged backend's reservation: how many live blocks touch it, whether
// physical memory backs it, and, for backed pages that no live block touches ("idle" pages, the
// paged allocator's cache), a least-recently-idled list. Idle pages are what the allocator moves to
// where it needs memory, or gives back on empty_cache/trim_cache.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace stash::detail {

class page_table {
 public:
  static constexpr std::uint32_t nil = UINT32_MAX;

  void resize(std::size_t pages) {
    refs_.assign(pages, 0);
    mapped_.assign(pages, 0);
    older_.assign(pages, nil);
    newer_.assign(pages, nil);
  }
  std::size_t size() const noexcept { return refs_.size(); }

  std::uint32_t& refs(std::size_t page) noexcept { return refs_[page]; }
  bool mapped(std::size_t page) const noexcept { return mapped_[page] != 0; }
  void set_mapped(std::size_t page, bool m) noexcept {
    mapped_[page] = m ? 1 : 0;
    mapped_count_ += m ? 1 : -1;
  }
  std::size_t mapped_count() const noexcept { return mapped_count_; }
  std::size_t idle_count() const noexcept { return idle_count_; }

  /// Appends a page that just became idle (the newest end).
  void push_idle(std::size_t page) noexcept {
    const auto p = static_cast<std::uint32_t>(page);
    older_[page] = newest_;
    newer_[page] = nil;
    if (newest_ != nil) newer_[newest_] = p;
    else oldest_ = p;
    newest_ = p;
    ++idle_count_;
  }
  void remove_idle(std::size_t page) noexcept {
    const std::uint32_t o = older_[page], n = newer_[page];
    if (o != nil) newer_[o] = n;
    else oldest_ = n;
    if (n != nil) older_[n] = o;
    else newest_ = o;
    older_[page] = newer_[page] = nil;
    --idle_count_;
  }
  /// The page idle for longest, or nil.
  std::uint32_t oldest_idle() const noexcept { return oldest_; }

 private:
  std::vector<std::uint32_t> refs_;
  std::vector<std::uint8_t> mapped_;
  std::vector<std::uint32_t> older_, newer_;
  std::uint32_t oldest_ = nil, newest_ = nil;
  std::size_t mapped_count_ = 0;
  std::size_t idle_count_ = 0;
};

}  // namespace stash::detail
