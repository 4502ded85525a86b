#pragma once
// stash::logging_adaptor<Allocator>: writes every allocate and free of an allocator as one line of the
// CSV that RMM's logging_resource_adaptor writes, `Thread,Time,Action,Pointer,Size,Stream`, so a
// program's allocations can be recorded with stash and replayed by stash-replay against every
// allocator it measures (bench/README.md).
//
// It is a separate type over the allocator, not a policy of the core: a program that does not wrap its
// allocator pays nothing, not even a branch.
//
//   stash::device_caching_allocator pool;
//   std::ofstream file("trace.csv");
//   stash::logging_adaptor logged(pool, file);   // writes the header line
//   void* p = logged.allocate(1 << 20);          // 0,00:00:00.000004,allocate,0x7f3a00000000,1048576,0x0
//   logged.deallocate(p);                        // 0,00:00:00.000009,free,0x7f3a00000000,1048576,0x0
//
// The columns:
//   Thread   a small number per thread, in the order threads first log (0, 1, ...);
//   Time     since the adaptor was made, HH:MM:SS.microseconds (steady clock);
//   Action   allocate, free, or `allocate failure` (the allocation threw; the error is rethrown);
//   Pointer  hexadecimal;  Size  the bytes asked for (a free repeats the size of its allocation);
//   Stream   the stream handle for the stream-ordered calls, 0x0 otherwise.
// An allocation is written after it is made; a free is written once the allocator accepted it, with
// the log held from before the memory is given back, so with several threads the log never shows an
// address allocated twice without a free between, and a free the allocator rejects leaves no line.
// A stream that fails (a full disk, a stream set to throw) never fails the allocation or the free it
// logs: the line is counted as lost (lines_lost()), and the log is then incomplete.
#include <atomic>
#include <charconv>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string_view>
#include <type_traits>

#include "stash/error.hpp"

namespace stash {

/// What the adaptor needs of the allocator it logs: allocate(n) and deallocate(p).
template <class A>
concept loggable_allocator = requires(A& a, void* p, std::size_t n) {
  { a.allocate(n) } -> std::same_as<void*>;
  a.deallocate(p);
};

namespace detail {

/// The number a stream is logged as: a CUDA stream handle (a pointer), or anything that gives one
/// through native_handle() (stash::stream), value() or get().
template <class Stream>
std::uintptr_t stream_handle(const Stream& s) noexcept {
  if constexpr (std::is_pointer_v<Stream>) {
    return reinterpret_cast<std::uintptr_t>(s);
  } else if constexpr (std::is_integral_v<Stream>) {
    return static_cast<std::uintptr_t>(s);
  } else if constexpr (requires { s.native_handle(); }) {
    return stream_handle(s.native_handle());
  } else if constexpr (requires { s.value(); }) {
    return stream_handle(s.value());
  } else {
    return stream_handle(s.get());
  }
}


/// Allocator::kind where the upstream has it as a static member (every caching allocator): a
/// logging_adaptor then has it too, for the std adapters over it. The manager's stash::pool tells its
/// kind only at run time (kind()), and a logging_adaptor over it has none.
template <class A>
struct static_kind {};
template <class A>
  requires requires { A::kind; }
struct static_kind<A> {
  static constexpr auto kind = A::kind;
};

}  // namespace detail

template <loggable_allocator Allocator>
class logging_adaptor : public detail::static_kind<Allocator> {
 public:
  using upstream_type = Allocator;
  static constexpr std::string_view header = "Thread,Time,Action,Pointer,Size,Stream";

  /// Logs to `out`, which must outlive the adaptor. Writes the header line now.
  logging_adaptor(Allocator& upstream, std::ostream& out) : upstream_(&upstream), out_(&out) {
    write_header();
  }
  /// Logs to `file` (created or truncated). Throws stash::error when it cannot be opened.
  logging_adaptor(Allocator& upstream, const std::filesystem::path& file)
      : upstream_(&upstream), owned_(std::make_unique<std::ofstream>(file)), out_(owned_.get()) {
    if (!*owned_) throw error("logging_adaptor: cannot write " + file.string());
    write_header();
  }
  logging_adaptor(const logging_adaptor&) = delete;
  logging_adaptor& operator=(const logging_adaptor&) = delete;
  ~logging_adaptor() { flush(); }  // never throws: flush() does not

  /// The upstream's largest request (what resource_adaptor and the std adapters report).
  static constexpr std::size_t max_size() noexcept
    requires requires { Allocator::max_size(); }
  {
    return Allocator::max_size();
  }

  /// As the upstream allocate(n); a failure is logged as `allocate failure` and rethrown. allocate(0)
  /// allocates nothing (the upstream returns nullptr), so nothing is logged.
  [[nodiscard]] void* allocate(std::size_t n) {
    if (n == 0) return upstream_->allocate(0);
    void* p;
    try {
      p = upstream_->allocate(n);
    } catch (...) {
      write(failure, nullptr, n, 0);
      throw;
    }
    write(allocated, p, n, 0);
    return p;
  }

  /// As the upstream deallocate(p). The size logged is the upstream's allocation_size(p) when it has
  /// one, else 0. A free the upstream rejects throws its error and is not logged.
  void deallocate(void* p) {
    if (!p) return;
    const auto n = live_size(p);
    if (!n) return upstream_->deallocate(p);  // throws the upstream's error
    logged_free(p, *n, 0, [&] { upstream_->deallocate(p); });
  }

  /// As the upstream deallocate(p, n), or deallocate(p) when it has no sized form. A free the upstream
  /// rejects throws its error and is not logged.
  void deallocate(void* p, std::size_t n) {
    if (!p) return;
    logged_free(p, n, 0, [&] {
      if constexpr (requires { upstream_->deallocate(p, n); }) upstream_->deallocate(p, n);
      else upstream_->deallocate(p);
    });
  }

  /// Stream-ordered forms, where the upstream has them: the stream is logged.
  template <class Stream>
    requires requires(Allocator& a, std::size_t n, Stream s) { { a.allocate(n, s) } -> std::same_as<void*>; }
  [[nodiscard]] void* allocate(std::size_t n, Stream stream) {
    if (n == 0) return upstream_->allocate(0, stream);  // allocates nothing, so nothing is logged
    void* p;
    try {
      p = upstream_->allocate(n, stream);
    } catch (...) {
      write(failure, nullptr, n, detail::stream_handle(stream));
      throw;
    }
    write(allocated, p, n, detail::stream_handle(stream));
    return p;
  }
  template <class Stream>
    requires requires(Allocator& a, void* p, Stream s) { a.deallocate(p, s); } &&
             (!std::is_integral_v<Stream>)
  void deallocate(void* p, Stream stream) {
    if (!p) return;
    const auto n = live_size(p);
    if (!n) return upstream_->deallocate(p, stream);  // throws the upstream's error
    logged_free(p, *n, detail::stream_handle(stream), [&] { upstream_->deallocate(p, stream); });
  }
  /// Sized and stream-ordered (what resource_adaptor calls for a stream-ordered free): as the
  /// upstream deallocate(p, n, stream), or deallocate(p, stream) when it has no sized form. The stream
  /// is logged, and the upstream gets the free on it.
  template <class Stream>
    requires(requires(Allocator& a, void* p, std::size_t n, Stream s) { a.deallocate(p, n, s); } ||
             requires(Allocator& a, void* p, Stream s) { a.deallocate(p, s); }) &&
            (!std::is_integral_v<Stream>)
  void deallocate(void* p, std::size_t n, Stream stream) {
    if (!p) return;
    logged_free(p, n, detail::stream_handle(stream), [&] {
      if constexpr (requires { upstream_->deallocate(p, n, stream); }) upstream_->deallocate(p, n, stream);
      else upstream_->deallocate(p, stream);
    });
  }

  /// Writes what is buffered to the stream or file.
  /// Flushes the stream; false when a line was lost or the stream has failed (the log is incomplete).
  bool flush() noexcept {
    std::lock_guard guard(lock_);
    try {
      out_->flush();
    } catch (...) {  // a stream set to throw: its state says it failed
    }
    return lines_lost_ == 0 && out_->good();
  }

  /// Lines the stream did not take (it had failed, or threw): each is an allocate or free that
  /// happened and is missing from the log.
  std::uint64_t lines_lost() const noexcept {
    std::lock_guard guard(lock_);
    return lines_lost_;
  }

  Allocator& get_upstream_resource() const noexcept { return *upstream_; }
  int device() const noexcept
    requires requires(const Allocator& a) { a.device(); }
  {
    return upstream_->device();
  }

 private:
  static constexpr std::string_view allocated = "allocate";
  static constexpr std::string_view freed = "free";
  static constexpr std::string_view failure = "allocate failure";

  /// The size p was allocated with, asked of an upstream that keeps it (allocation_size), before the
  /// line is written: nullopt when the upstream does not know p as live, so a free it will reject
  /// leaves no line. An upstream that keeps no sizes is trusted, and the size is logged as 0.
  std::optional<std::size_t> live_size(const void* p) const {
    if constexpr (requires { upstream_->allocation_size(p); }) {
      try {
        return upstream_->allocation_size(p);
      } catch (const error&) {
        return std::nullopt;
      }
    } else {
      return 0;
    }
  }

  /// Frees through `free` and logs the free once it succeeded (a rejected free throws and leaves no
  /// line). The log is held throughout, so no other thread can log an allocation of p before this free.
  template <class Free>
  void logged_free(const void* p, std::size_t n, std::uintptr_t stream, Free&& free) {
    const line text = format(freed, p, n, stream);
    std::lock_guard guard(lock_);
    free();
    write_locked(text);
  }

  void write_header() {
    try {
      out_->write(header.data(), static_cast<std::streamsize>(header.size()));
      out_->put('\n');
    } catch (...) {  // the stream's state says it failed; flush() reports it
    }
  }

  struct line {
    char text[160];
    std::size_t size;
  };

  /// One line, formatted on the stack.
  line format(std::string_view action, const void* p, std::size_t n, std::uintptr_t stream) const {
    const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::steady_clock::now() - start_)
                             .count();
    line out;
    char* it = out.text;
    char* const end = out.text + sizeof out.text;
    auto number = [&](std::uint64_t v, int base = 10) { it = std::to_chars(it, end, v, base).ptr; };
    auto text = [&](std::string_view s) {
      for (const char c : s) *it++ = c;
    };
    auto two_digits = [&](std::uint64_t v) {
      *it++ = static_cast<char>('0' + v / 10 % 10);
      *it++ = static_cast<char>('0' + v % 10);
    };
    number(thread_number());
    *it++ = ',';
    const auto micros = static_cast<std::uint64_t>(elapsed);
    const std::uint64_t seconds = micros / 1000000;
    if (seconds / 3600 < 10) *it++ = '0';
    number(seconds / 3600);
    *it++ = ':';
    two_digits(seconds / 60 % 60);
    *it++ = ':';
    two_digits(seconds % 60);
    *it++ = '.';
    char frac[8];
    const auto frac_end = std::to_chars(frac, frac + sizeof frac, 1000000 + micros % 1000000).ptr;
    for (const char* f = frac + 1; f < frac_end; ++f) *it++ = *f;  // six digits, zero padded
    *it++ = ',';
    text(action);
    text(",0x");
    number(reinterpret_cast<std::uintptr_t>(p), 16);
    *it++ = ',';
    number(n);
    text(",0x");
    number(stream, 16);
    *it++ = '\n';
    out.size = static_cast<std::size_t>(it - out.text);
    return out;
  }

  void write(std::string_view action, const void* p, std::size_t n, std::uintptr_t stream) {
    const line text = format(action, p, n, stream);
    std::lock_guard guard(lock_);
    write_locked(text);
  }
  void write_locked(const line& text) noexcept {
    try {
      if (out_->write(text.text, static_cast<std::streamsize>(text.size))) return;
    } catch (...) {  // a stream set to throw: the allocation or free it logs has happened all the same
    }
    ++lines_lost_;
  }

  static std::uint64_t thread_number() noexcept {
    static std::atomic<std::uint64_t> next{0};
    thread_local const std::uint64_t mine = next.fetch_add(1, std::memory_order_relaxed);
    return mine;
  }

  Allocator* upstream_;
  std::unique_ptr<std::ofstream> owned_;  // when the adaptor opened the file itself
  std::ostream* out_;
  mutable std::mutex lock_;  // one line at a time
  std::uint64_t lines_lost_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace stash
