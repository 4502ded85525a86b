#pragma once
// A runtime-polymorphic view of an allocator, so that the standard-library adapters and the memory
// manager can hold "some caching allocator" without knowing its policies. One virtual call per
// operation; the policies stay compile-time inside.
#include <cstddef>
#include <cstdint>

#include "stash/backend/backend.hpp"
#include "stash/stream.hpp"

namespace stash {

class memory_resource {
 public:
  /// Every allocation is aligned to at least this (cudaMalloc's guarantee, which every stash
  /// allocator gives).
  static constexpr std::size_t alignment = 256;

  virtual ~memory_resource() = default;
  [[nodiscard]] virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* p, std::size_t bytes) = 0;
  /// Stream-ordered forms: the memory is used on stream s (caching_allocator says what that means).
  [[nodiscard]] void* allocate(std::size_t bytes, stream s) { return do_allocate(bytes, s); }
  void deallocate(void* p, std::size_t bytes, stream s) { do_deallocate(p, bytes, s); }
  /// The largest request allocate may accept; a larger one throws stash::invalid_size.
  virtual std::size_t max_size() const noexcept = 0;
  virtual memory_kind kind() const noexcept = 0;
  virtual int device() const noexcept = 0;

 protected:
  /// A host-ordered resource ignores the stream: what these defaults do.
  virtual void* do_allocate(std::size_t bytes, stream s) {
    (void)s;
    return allocate(bytes);
  }
  virtual void do_deallocate(void* p, std::size_t bytes, stream s) {
    (void)s;
    deallocate(p, bytes);
  }
};

/// Views a caching allocator (or anything with allocate(n) / deallocate(p, n)) as a memory_resource.
/// Does not own it: the allocator must outlive the adaptor and every container using it.
template <class Allocator>
class resource_adaptor final : public memory_resource {
 public:
  explicit resource_adaptor(Allocator& upstream) noexcept : upstream_(&upstream) {}
  void* allocate(std::size_t bytes) override { return upstream_->allocate(bytes); }
  void deallocate(void* p, std::size_t bytes) override { upstream_->deallocate(p, bytes); }
  using memory_resource::allocate;
  using memory_resource::deallocate;
  std::size_t max_size() const noexcept override {
    if constexpr (requires(const Allocator& a) { a.max_size(); }) return upstream_->max_size();
    else return SIZE_MAX;
  }
  memory_kind kind() const noexcept override { return Allocator::kind; }
  int device() const noexcept override { return upstream_->device(); }
  Allocator& get_upstream_resource() const noexcept { return *upstream_; }

 private:
  void* do_allocate(std::size_t bytes, stream s) override {
    if constexpr (requires { upstream_->allocate(bytes, s); }) return upstream_->allocate(bytes, s);
    else return upstream_->allocate(bytes);
  }
  void do_deallocate(void* p, std::size_t bytes, stream s) override {
    if constexpr (requires { upstream_->deallocate(p, bytes, s); }) upstream_->deallocate(p, bytes, s);
    else upstream_->deallocate(p, bytes);
  }

  Allocator* upstream_;
};

}  // namespace stash
