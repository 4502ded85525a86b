// The C interface (stash_c.h) over stash's pools. Every entry point catches everything: the callers
// are frameworks written in C, Python and C++ that cannot take a C++ exception through a C frame.
//
// The library keeps its own pools rather than the process-wide memory_manager because the pools are
// made with the options a user passes (page slack, reservation, backend), which the manager's fixed
// compositions do not take. Pools are made on first use and never destroyed: a framework frees its
// last tensors during interpreter shutdown, after static destructors may have run, and the driver
// takes every mapping back at exit anyway.
#include "stash_c.h"

#include <cuda_runtime_api.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include "stash/allocators.hpp"
#include "stash/backend/limited_backend.hpp"
#include "stash/device_manager.hpp"
#include "stash/error.hpp"
#include "stash/memory_manager.hpp"

// Streams: stash::stream is a cudaStream_t without CUDA's headers (stash/stream.hpp).
#include "stash/stream.hpp"

namespace {

// ---------------------------------------------------------------------------------------------------
// Streams: every allocation and free goes to its pool with the caller's stream (PyTorch's and CuPy's
// current stream at allocation); device and pinned pools order reuse by them (cuda_event_ordering),
// host pools need not.
stash::stream to_stream(stash_stream_t s) noexcept { return stash::stream(s); }

/// Records that q, live in p, is also used on s; false when q is not p's.
bool pool_record_stream(stash::pool& p, void* q, stash_stream_t s) {
  if (!p.holds(q)) return false;
  p.record_stream(q, to_stream(s));
  return true;
}

// ---------------------------------------------------------------------------------------------------
// Errors: a message per thread, and a status for each kind of failure.
thread_local std::string last_error;

// Records the message (its parts joined) and returns the status. Building the message may need memory;
// when there is none the status still goes back, which is what callers branch on.
int fail(stash_status status, const char* message, const char* more = "", const char* detail = "",
         const char* last = "") noexcept {
  try {
    last_error.assign(message).append(more).append(detail).append(last);
  } catch (...) {
    last_error.clear();
  }
  return status;
}
int fail(stash_status status, const std::string& message) noexcept { return fail(status, message.c_str()); }

// A failure this layer finds itself (options, unsupported features): its status and message.
struct option_error {
  stash_status status;
  std::string message;
};

// Runs f; turns whatever it throws into a status and a message. `what` names the call for messages.
template <class F>
int guarded(const char* what, F&& f) noexcept {
  try {
    f();
    return STASH_OK;
  } catch (const option_error& e) {
    return fail(e.status, e.message);
  } catch (const stash::out_of_memory& e) {
    return fail(STASH_ERROR_OUT_OF_MEMORY, e.what());
  } catch (const stash::invalid_pointer& e) {
    return fail(STASH_ERROR_INVALID_POINTER, e.what());
  } catch (const stash::invalid_size& e) {
    return fail(STASH_ERROR_INVALID_ARGUMENT, e.what());
  } catch (const stash::invalid_device& e) {
    return fail(STASH_ERROR_INVALID_ARGUMENT, e.what());
  } catch (const stash::cuda_error& e) {
    return fail(STASH_ERROR_CUDA, e.what());
  } catch (const stash::error& e) {
    return fail(STASH_ERROR_INTERNAL, e.what());
  } catch (const std::bad_alloc&) {
    return fail(STASH_ERROR_OUT_OF_MEMORY, "stash: ", what, ": out of host memory");
  } catch (const std::exception& e) {
    return fail(STASH_ERROR_INTERNAL, "stash: ", what, ": ", e.what());
  } catch (...) {
    return fail(STASH_ERROR_INTERNAL, "stash: ", what, ": unknown exception");
  }
}

// A framework that frees memory has nowhere to put an error: say it on stderr too.
void report(const char* what, const void* ptr) noexcept {
  std::fprintf(stderr, "%s [%s(%p)]\n", last_error.c_str(), what, ptr);
}

// ---------------------------------------------------------------------------------------------------
// Options.
enum class backend_choice { vmm, segments };
enum class backing_choice { automatic, host };

constexpr std::size_t no_limit = stash::limited_backend<stash::host_backend>::unlimited;

struct options {
  backend_choice backend = backend_choice::vmm;
  backing_choice backing = backing_choice::automatic;
  int host_devices = 1;
  std::size_t limit_bytes = no_limit;  // per device
  double memory_fraction = 0;          // per device, of its total memory; 0: none
  stash::caching_options caching{};
};

// The pools' compositions: the named ones (allocators.hpp) over a limited_backend, so a per-device
// limit can be set at any time; the ordering is the one the unlimited backend names.
template <class Backend>
using limited_pool = stash::caching_allocator<stash::limited_backend<Backend>, stash::segregated_fit_buckets,
                                              stash::spin_lock, stash::basic_stats, stash::default_ordering_t<Backend>>;
using vmm_pool = limited_pool<stash::cuda_vmm_backend>;
using segment_pool = limited_pool<stash::cuda_device_backend>;
using host_pool = limited_pool<stash::host_backend>;

constexpr const char* option_help_text =
    "backend:vmm|segments        vmm   device pages of CUDA virtual memory, or whole cudaMalloc segments\n"
    "page_slack:FLOAT            0.02  (vmm) how far pages held may exceed the high tide of pages in use\n"
    "reserve:BYTES               0     (vmm) address space reserved per device; 0: twice the device memory\n"
    "                                  (suffixes KB MB GB TB: powers of 1000; KiB MiB GiB TiB: of 1024)\n"
    "pages_between_moves:INT     8     (vmm) at most one page move per this many pages mapped\n"
    "backing:auto|host           auto  host: ordinary host memory even when a GPU is visible (tests)\n"
    "host_devices:INT            1     (backing host) number of pretend devices\n"
    "limit:BYTES                 none  most memory each device's pool may hold from the driver\n"
    "memory_fraction:FLOAT       none  (GPU) the same as a fraction (0-1] of each device's total memory\n";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

[[noreturn]] void bad_value(std::string_view key, std::string_view value, const char* expected) {
  throw option_error{STASH_ERROR_INVALID_ARGUMENT, "stash: option '" + std::string(key) + "': '" +
                                                       std::string(value) + "' is not " + expected};
}

std::uint64_t parse_unsigned(std::string_view key, std::string_view value, const char* expected) {
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc{} || end != value.data() + value.size() || value.empty()) bad_value(key, value, expected);
  return n;
}

double parse_double(std::string_view key, std::string_view value, const char* expected) {
  const std::string text(value);
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno != 0 || !std::isfinite(d)) {
    bad_value(key, value, expected);
  }
  return d;
}

std::uint64_t parse_bytes(std::string_view key, std::string_view value) {
  constexpr const char* expected = "a byte count (an integer, optionally with KB, MB, GB, TB, KiB, MiB, GiB or TiB)";
  std::size_t digits = 0;
  while (digits < value.size() && value[digits] >= '0' && value[digits] <= '9') ++digits;
  const std::uint64_t n = parse_unsigned(key, value.substr(0, digits), expected);
  const std::string_view unit = trim(value.substr(digits));
  struct suffix {
    std::string_view name;
    std::uint64_t factor;
  };
  constexpr std::array<suffix, 9> suffixes{{{"", 1},
                                            {"KB", 1000ull},
                                            {"MB", 1000ull * 1000},
                                            {"GB", 1000ull * 1000 * 1000},
                                            {"TB", 1000ull * 1000 * 1000 * 1000},
                                            {"KiB", 1ull << 10},
                                            {"MiB", 1ull << 20},
                                            {"GiB", 1ull << 30},
                                            {"TiB", 1ull << 40}}};
  for (const suffix& s : suffixes) {
    if (unit == s.name) {
      if (n > UINT64_MAX / s.factor) bad_value(key, value, "a byte count that fits in 64 bits");
      return n * s.factor;
    }
  }
  bad_value(key, value, expected);
}

// Parses "key:value,key:value" on top of `base`. Throws option_error naming the option at fault.
options parse_options(std::string_view conf, options base) {
  options o = base;
  while (!conf.empty()) {
    const std::size_t comma = conf.find(',');
    const std::string_view item = trim(conf.substr(0, comma));
    conf = comma == std::string_view::npos ? std::string_view{} : conf.substr(comma + 1);
    if (item.empty()) continue;
    const std::size_t colon = item.find(':');
    if (colon == std::string_view::npos) {
      throw option_error{STASH_ERROR_INVALID_ARGUMENT,
                         "stash: option '" + std::string(item) + "' has no value (write key:value)"};
    }
    const std::string_view key = trim(item.substr(0, colon));
    const std::string_view value = trim(item.substr(colon + 1));
    if (key == "backend") {
      if (value == "vmm") {
        o.backend = backend_choice::vmm;
      } else if (value == "segments") {
        o.backend = backend_choice::segments;
      } else {
        bad_value(key, value, "one of vmm, segments");
      }
    } else if (key == "page_slack") {
      const double d = parse_double(key, value, "a number >= 0");
      if (d < 0) bad_value(key, value, "a number >= 0");
      o.caching.page_slack = d;
    } else if (key == "reserve") {
      o.caching.reserve_bytes = static_cast<std::size_t>(parse_bytes(key, value));
    } else if (key == "pages_between_moves") {
      o.caching.pages_between_moves = parse_unsigned(key, value, "an integer >= 0");
    } else if (key == "backing") {
      if (value == "auto") {
        o.backing = backing_choice::automatic;
      } else if (value == "host") {
        o.backing = backing_choice::host;
      } else {
        bad_value(key, value, "one of auto, host");
      }
    } else if (key == "host_devices") {
      const std::uint64_t n = parse_unsigned(key, value, "an integer from 1 to 64");
      if (n < 1 || n > 64) bad_value(key, value, "an integer from 1 to 64");
      o.host_devices = static_cast<int>(n);
    } else if (key == "limit") {
      o.limit_bytes = static_cast<std::size_t>(parse_bytes(key, value));
    } else if (key == "memory_fraction") {
      const double f = parse_double(key, value, "a number in (0, 1]");
      if (!(f > 0 && f <= 1)) bad_value(key, value, "a number in (0, 1]");
      o.memory_fraction = f;
    } else {
      throw option_error{STASH_ERROR_INVALID_ARGUMENT,
                         "stash: unknown option '" + std::string(key) +
                             "' (known: backend, page_slack, reserve, pages_between_moves, backing, "
                             "host_devices, limit, memory_fraction)"};
    }
  }
  return o;
}

std::string format_options(const options& o) {
  char slack[32];
  std::snprintf(slack, sizeof slack, "%g", o.caching.page_slack);
  std::string s = std::string("backend:") + (o.backend == backend_choice::vmm ? "vmm" : "segments") +
                  ",page_slack:" + slack + ",reserve:" + std::to_string(o.caching.reserve_bytes) +
                  ",pages_between_moves:" + std::to_string(o.caching.pages_between_moves) +
                  ",backing:" + (o.backing == backing_choice::host ? "host" : "auto");
  if (o.backing == backing_choice::host) s += ",host_devices:" + std::to_string(o.host_devices);
  if (o.limit_bytes != no_limit) s += ",limit:" + std::to_string(o.limit_bytes);
  if (o.memory_fraction > 0) {
    std::snprintf(slack, sizeof slack, "%g", o.memory_fraction);
    s += std::string(",memory_fraction:") + slack;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------------
// The pools. Options may change until the first pool is made ("frozen"); from then on the device
// count and the options are fixed and the fast path reads them without a lock.
class library {
 public:
  static constexpr int max_devices = 64;

  static library& get() {
    static library* const instance = new library();  // never destroyed: see the top of this file
    return *instance;
  }

  /// Throws option_error (a bad option, or options after the first allocation); changes nothing then.
  void configure(const char* conf) {
    std::lock_guard guard(mutex_);
    const options parsed = parse_options(conf ? conf : "", options{});
    if (frozen()) {
      if (format_options(parsed) == format_options(options_)) return;  // the same again
      throw option_error{STASH_ERROR_TOO_LATE, "stash: options must be set before the first allocation (in force: " +
                                                   format_options(options_) + ")"};
    }
    options_ = parsed;
    configured_ = true;
    options_text_ = format_options(options_);
  }

  /// The options in force (or that the first pool would take), as text. Throws for a bad STASH_CONF.
  const char* options_text() {
    std::lock_guard guard(mutex_);
    options_text_ = format_options(frozen() ? options_ : effective_options());
    return options_text_.c_str();
  }

  /// Device count the pools serve, and whether they serve host memory. Does not fix the options.
  int device_count() { return layout().count; }
  bool host_backed() { return layout().host; }

  /// A device id in [0, device_count()); -1 means the current device.
  int resolve(int device) {
    const auto [count, host] = layout();
    if (device == -1) device = host ? 0 : stash::device_manager::current_device();
    if (device < 0 || device >= count) throw stash::invalid_device(device, count);
    return device;
  }

  /// The pool of a device (-1: current), made on first use; the first pool fixes the options.
  stash::pool& device_pool(int device) {
    if (!frozen()) freeze();
    device = resolve(device);
    if (stash::pool* p = pools_[static_cast<std::size_t>(device)].load(std::memory_order_acquire)) return *p;
    return make_device_pool(device);
  }

  /// The pool of a device if it was made, else null.
  stash::pool* existing_pool(int device) {
    device = resolve(device);
    return pools_[static_cast<std::size_t>(device)].load(std::memory_order_acquire);
  }

  stash::pool& pinned_pool() {
    if (!frozen()) freeze();
    if (stash::pool* p = pinned_.load(std::memory_order_acquire)) return *p;
    std::lock_guard guard(mutex_);
    if (stash::pool* p = pinned_.load(std::memory_order_acquire)) return *p;
    stash::pool* made = nullptr;
    if (host_backed_) {
      made = new stash::pool_of<stash::host_caching_allocator>();
    } else {
      try {
        made = new stash::pool_of<stash::pinned_caching_allocator>(stash::cuda_pinned_vmm_backend(-1),
                                                                    options_.caching);
      } catch (const stash::cuda_error&) {
        // No pinned VMM pages (an older driver): whole cudaHostAlloc segments instead.
        made = new stash::pool_of<stash::segment_pinned_allocator>();
      }
    }
    pinned_.store(made, std::memory_order_release);
    return *made;
  }

  void count_oom(int device) {
    if (device >= 0 && device < max_devices) ooms_[static_cast<std::size_t>(device)].fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t ooms(int device) const { return ooms_[static_cast<std::size_t>(device)].load(std::memory_order_relaxed); }
  void count_pinned_oom() { pinned_ooms_.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t pinned_ooms() const { return pinned_ooms_.load(std::memory_order_relaxed); }

  /// The pinned pool if it was made, else null.
  stash::pool* existing_pinned_pool() { return pinned_.load(std::memory_order_acquire); }

  /// A device pool other than `except` that holds p live, or null: a free that named the wrong device.
  stash::pool* pool_owning(const void* p, int except) {
    const int count = device_count();
    for (int d = 0; d < count; ++d) {
      if (d == except) continue;
      stash::pool* pool = pools_[static_cast<std::size_t>(d)].load(std::memory_order_acquire);
      if (pool && pool->holds(p)) return pool;
    }
    return nullptr;
  }

 private:
  library() = default;

  struct layout_type {
    int count;
    bool host;
  };

  bool frozen() const { return device_count_.load(std::memory_order_acquire) != 0; }

  /// The options in force: those set, else STASH_CONF's (read each time until the first pool fixes
  /// them). Throws option_error for a bad STASH_CONF: allocations then fail loudly rather than run
  /// with options the user did not ask for. Called with mutex_ held.
  options effective_options() const {
    if (configured_) return options_;
    const char* env = std::getenv("STASH_CONF");
    if (!env) return options_;
    try {
      return parse_options(env, options{});
    } catch (const option_error& e) {
      throw option_error{e.status, "STASH_CONF: " + e.message};
    }
  }

  static layout_type layout_of(const options& o) {
    const int gpus = stash::device_manager::device_count();
    const bool host = o.backing == backing_choice::host || gpus == 0;
    const int n = host ? o.host_devices : gpus;
    return {n < max_devices ? n : max_devices, host};
  }

  layout_type layout() {
    if (const int n = device_count_.load(std::memory_order_acquire)) return {n, host_backed_};
    std::lock_guard guard(mutex_);
    if (const int n = device_count_.load(std::memory_order_acquire)) return {n, host_backed_};
    return layout_of(effective_options());
  }

  /// Fixes the options and the device count (before the first pool is made).
  void freeze() {
    std::lock_guard guard(mutex_);
    if (frozen()) return;
    options_ = effective_options();
    configured_ = true;
    options_text_ = format_options(options_);
    const layout_type l = layout_of(options_);
    host_backed_ = l.host;
    device_count_.store(l.count, std::memory_order_release);
  }

  stash::pool& make_device_pool(int id) {
    std::lock_guard guard(mutex_);
    std::atomic<stash::pool*>& slot = pools_[static_cast<std::size_t>(id)];
    if (stash::pool* p = slot.load(std::memory_order_acquire)) return *p;
    std::size_t limit = limits_[static_cast<std::size_t>(id)];
    if (limit == unset) limit = initial_limit(id);
    stash::pool* made = nullptr;
    if (host_backed_) {
      made = make_pool<host_pool>(id, stash::host_backend{}, limit);
    } else if (options_.backend == backend_choice::vmm) {
      try {
        made = make_pool<vmm_pool>(id, stash::cuda_vmm_backend(id), limit);
      } catch (const stash::cuda_error&) {
        // No virtual memory management on this device (or driver): whole cudaMalloc segments instead.
        made = make_pool<segment_pool>(id, stash::cuda_device_backend(id), limit);
      }
    } else {
      made = make_pool<segment_pool>(id, stash::cuda_device_backend(id), limit);
    }
    slot.store(made, std::memory_order_release);
    return *made;
  }

  /// The limit the options give device id (none, bytes, or a fraction of its total memory).
  std::size_t initial_limit(int id) const {
    std::size_t limit = options_.limit_bytes;
    if (options_.memory_fraction > 0) {
      if (host_backed_) {
        throw option_error{STASH_ERROR_UNSUPPORTED,
                           "stash: option 'memory_fraction' needs a GPU (host memory has no device total; use limit)"};
      }
      limit = std::min(limit, fraction_of(options_.memory_fraction, id));
    }
    return limit;
  }

  static std::size_t fraction_of(double fraction, int id) {
    return static_cast<std::size_t>(fraction * static_cast<double>(stash::device_manager::memory(id).total_bytes));
  }

  /// Makes the pool of device id over a limited_backend and keeps the way to change its limit.
  template <class Allocator, class Backend>
  stash::pool* make_pool(int id, Backend backend, std::size_t limit) {
    auto* made = new stash::pool_of<Allocator>(stash::limited_backend<Backend>(std::move(backend), limit),
                                               options_.caching);
    limits_[static_cast<std::size_t>(id)] = limit;
    set_limit_[static_cast<std::size_t>(id)] = [made](std::size_t bytes) {
      made->allocator().backend().set_limit(bytes);
    };
    return made;
  }

 public:
  /// Sets device id's limit (no_limit: none); a pool made later starts with it. Throws invalid_device.
  void set_limit(int id, std::size_t bytes) {
    id = resolve(id);
    std::lock_guard guard(mutex_);
    limits_[static_cast<std::size_t>(id)] = bytes == unset ? 1 : bytes;  // 0 and 1 byte both hold nothing
    if (set_limit_[static_cast<std::size_t>(id)]) set_limit_[static_cast<std::size_t>(id)](bytes);
  }

  /// Device id's limit in bytes (no_limit: none).
  std::size_t limit(int id) {
    id = resolve(id);
    std::lock_guard guard(mutex_);
    const std::size_t l = limits_[static_cast<std::size_t>(id)];
    if (l != unset) return l;
    return frozen() ? initial_limit(id) : layout_limit(id);
  }

  /// Sets device id's limit to a fraction of its total memory. Throws option_error without a GPU.
  void set_fraction(int id, double fraction) {
    id = resolve(id);
    if (host_backed()) {
      throw option_error{STASH_ERROR_UNSUPPORTED,
                         "stash: a memory fraction needs a GPU (host memory has no device total; use a limit in bytes)"};
    }
    set_limit(id, fraction_of(fraction, id));
  }

 private:
  std::size_t layout_limit(int id) const {
    const options o = effective_options();
    std::size_t l = o.limit_bytes;
    if (o.memory_fraction > 0 && !layout_of(o).host) l = std::min(l, fraction_of(o.memory_fraction, id));
    return l;
  }

  static constexpr std::size_t unset = 0;  // a limit of 0 bytes is kept as 1: nothing fits either way
  std::array<std::size_t, max_devices> limits_{};                                  // under mutex_
  std::array<std::function<void(std::size_t)>, max_devices> set_limit_{};         // under mutex_

  std::mutex mutex_;  // taken to configure and to make pools, never on the fast path
  options options_{};
  bool configured_ = false;
  std::string options_text_;
  bool host_backed_ = false;
  std::atomic<int> device_count_{0};
  std::array<std::atomic<stash::pool*>, max_devices> pools_{};
  std::atomic<stash::pool*> pinned_{nullptr};
  std::array<std::atomic<std::uint64_t>, max_devices> ooms_{};
  std::atomic<std::uint64_t> pinned_ooms_{0};
};

void fill(stash_stats* out, const stash::stats_snapshot& s, std::uint64_t ooms, std::size_t limit) {
  out->limit_bytes = limit == no_limit ? UINT64_MAX : limit;
  out->allocated_bytes = s.allocated_bytes;
  out->requested_bytes = s.requested_bytes;
  out->cached_bytes = s.cached_bytes;
  out->reserved_bytes = s.reserved_bytes;
  out->peak_allocated_bytes = s.peak_allocated_bytes;
  out->peak_requested_bytes = s.peak_requested_bytes;
  out->peak_reserved_bytes = s.peak_reserved_bytes;
  out->allocations = s.allocations;
  out->deallocations = s.deallocations;
  out->cache_hits = s.cache_hits;
  out->backend_allocations = s.backend_allocations;
  out->backend_frees = s.backend_frees;
  out->oom_retries = s.oom_retries;
  out->num_ooms = ooms;
}

}  // namespace

extern "C" {

void* stash_alloc(ssize_t size, int device, stash_stream_t stream) {
  if (size == 0) return nullptr;  // as cudaMalloc(0): PyTorch asks for 0 bytes for empty tensors
  void* p = nullptr;
  const int status = guarded("stash_alloc", [&] {
    if (size < 0) throw stash::invalid_size(static_cast<std::size_t>(size), "a negative size");
    p = library::get().device_pool(device).allocate(static_cast<std::size_t>(size), to_stream(stream));
  });
  if (status == STASH_ERROR_OUT_OF_MEMORY) {
    try {
      library::get().count_oom(library::get().resolve(device));
    } catch (...) {
      // The count is a statistic; the null return is what matters.
    }
  }
  return p;
}

void stash_free(void* ptr, ssize_t /*size*/, int device, stash_stream_t stream) {
  if (!ptr) return;
  const int status = guarded("stash_free", [&] {
    library& lib = library::get();
    const int id = lib.resolve(device);
    if (stash::pool* pool = lib.existing_pool(id)) {
      try {
        pool->deallocate(ptr, to_stream(stream));
        return;
      } catch (const stash::invalid_pointer&) {
        // Freed with the wrong device id? Then the pool that holds it frees it; else this error stands.
        stash::pool* owner = lib.pool_owning(ptr, id);
        if (!owner) throw;
        owner->deallocate(ptr, to_stream(stream));
        return;
      }
    }
    stash::pool* owner = lib.pool_owning(ptr, id);
    if (!owner) throw stash::invalid_pointer(ptr, "not allocated by stash (device " + std::to_string(id) + " has no pool)");
    owner->deallocate(ptr, to_stream(stream));
  });
  if (status != STASH_OK) report("stash_free", ptr);
}

int stash_record_stream(void* ptr, stash_stream_t stream) {
  return guarded("stash_record_stream", [&] {
    library& lib = library::get();
    for (int d = 0; d < lib.device_count(); ++d) {
      if (stash::pool* pool = lib.existing_pool(d); pool && pool_record_stream(*pool, ptr, stream)) return;
    }
    throw stash::invalid_pointer(ptr, "record_stream: not a live allocation of stash");
  });
}

int stash_stream_ordered(void) { return 1; }

void* stash_alloc_pinned(size_t size) {
  if (size == 0) return nullptr;
  void* p = nullptr;
  const int status = guarded("stash_alloc_pinned", [&] { p = library::get().pinned_pool().allocate(size); });
  if (status == STASH_ERROR_OUT_OF_MEMORY) library::get().count_pinned_oom();
  return p;
}

int stash_free_pinned(void* ptr) {
  if (!ptr) return STASH_OK;
  const int status = guarded("stash_free_pinned", [&] {
    stash::pool* pool = library::get().existing_pinned_pool();
    if (!pool) throw stash::invalid_pointer(ptr, "not allocated by stash (no pinned memory was allocated)");
    pool->deallocate(ptr, stash::stream{});
  });
  if (status != STASH_OK) report("stash_free_pinned", ptr);
  return status;
}

int stash_empty_cache(int device) {
  return guarded("stash_empty_cache", [&] {
    library& lib = library::get();
    if (device != -1) {
      if (stash::pool* pool = lib.existing_pool(device)) pool->empty_cache();
      return;
    }
    for (int d = 0; d < lib.device_count(); ++d) {
      if (stash::pool* pool = lib.existing_pool(d)) pool->empty_cache();
    }
  });
}

int stash_empty_pinned_cache(void) {
  return guarded("stash_empty_pinned_cache", [&] {
    if (stash::pool* pool = library::get().existing_pinned_pool()) pool->empty_cache();
  });
}

int stash_get_stats(int device, stash_stats* out) {
  if (!out) return fail(STASH_ERROR_INVALID_ARGUMENT, "stash_get_stats: out is null");
  return guarded("stash_get_stats", [&] {
    library& lib = library::get();
    const int id = lib.resolve(device);
    const stash::pool* pool = lib.existing_pool(id);
    fill(out, pool ? pool->stats() : stash::stats_snapshot{}, lib.ooms(id), lib.limit(id));
  });
}

int stash_get_pinned_stats(stash_stats* out) {
  if (!out) return fail(STASH_ERROR_INVALID_ARGUMENT, "stash_get_pinned_stats: out is null");
  return guarded("stash_get_pinned_stats", [&] {
    library& lib = library::get();
    const stash::pool* pool = lib.existing_pinned_pool();
    fill(out, pool ? pool->stats() : stash::stats_snapshot{}, lib.pinned_ooms(), no_limit);
  });
}

int stash_reset_peak(int device) {
  return guarded("stash_reset_peak", [&] {
    if (stash::pool* pool = library::get().existing_pool(device)) pool->reset_peak();
  });
}

int stash_set_memory_fraction(double fraction, int device) {
  return guarded("stash_set_memory_fraction", [&] {
    if (!(fraction >= 0.0 && fraction <= 1.0)) {
      throw option_error{STASH_ERROR_INVALID_ARGUMENT,
                         "stash: memory fraction " + std::to_string(fraction) + " is not in [0, 1]"};
    }
    library::get().set_fraction(device, fraction);
  });
}

int stash_set_memory_limit(int device, uint64_t bytes) {
  return guarded("stash_set_memory_limit", [&] {
    library::get().set_limit(device, bytes > no_limit ? no_limit : static_cast<std::size_t>(bytes));
  });
}

int stash_configure(const char* conf) {
  return guarded("stash_configure", [&] { library::get().configure(conf); });
}

const char* stash_options(void) {
  try {
    return library::get().options_text();
  } catch (...) {
    return "";
  }
}

const char* stash_option_help(void) { return option_help_text; }

int stash_device_count(void) {
  int n = 0;
  if (guarded("stash_device_count", [&] { n = library::get().device_count(); }) != STASH_OK) return 0;
  return n;
}

const char* stash_backing(void) {
  bool host = true;
  if (guarded("stash_backing", [&] { host = library::get().host_backed(); }) != STASH_OK) return "";
  return host ? "host" : "cuda";
}

const char* stash_last_error(void) { return last_error.c_str(); }

void stash_clear_error(void) { last_error.clear(); }

}  // extern "C"
