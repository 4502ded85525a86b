#pragma once
// Every error stash reports is a typed exception. Out-of-memory derives from std::bad_alloc so code
// written against operator new keeps working; everything else derives from stash::error.
#include <cstddef>
#include <cstdio>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "stash/memory_report.hpp"

namespace stash {

/// Base of every stash error that is not an out-of-memory condition.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A pointer that this allocator never handed out (or one that is not the start of a block).
class invalid_pointer : public error {
 public:
  explicit invalid_pointer(const void* p, const std::string& why = "pointer was not allocated here")
      : error("stash: invalid pointer " + describe(p) + ": " + why), pointer_(p) {}
  const void* pointer() const noexcept { return pointer_; }

 protected:
  static std::string describe(const void* p) {
    char buf[2 + 2 * sizeof(void*) + 1];
    std::snprintf(buf, sizeof buf, "%p", p);
    return buf;
  }

 private:
  const void* pointer_;
};

/// A pointer that lies in memory this allocator holds but is already free: a second free.
class double_free : public invalid_pointer {
 public:
  explicit double_free(const void* p) : invalid_pointer(p, "already freed (double free)") {}
};

/// Size 0, a size larger than max_size(), or a size that does not match the allocation on
/// a sized deallocate.
class invalid_size : public error {
 public:
  invalid_size(std::size_t n, const std::string& why)
      : error("stash: invalid size " + std::to_string(n) + ": " + why), size_(n) {}
  std::size_t size() const noexcept { return size_; }

 private:
  std::size_t size_;
};

/// A device id that is neither -1 (current device) nor in [0, device_count), any device id when no
/// CUDA device is visible, or a device count that cannot be (a host-backed manager of 0 devices).
class invalid_device : public error {
 public:
  invalid_device(int device, int device_count)
      : error(device_count <= 0 ? "stash: no CUDA device is visible (device id " + std::to_string(device) +
                                      " was asked for)"
                                : "stash: invalid device id " + std::to_string(device) + " (device count " +
                                      std::to_string(device_count) + ", -1 means the current device)"),
        device_(device) {}
  /// `why` completes "stash: invalid device id N: ".
  invalid_device(int device, const std::string& why)
      : error("stash: invalid device id " + std::to_string(device) + ": " + why), device_(device) {}
  int device() const noexcept { return device_; }

 private:
  int device_;
};

/// A memory limit that cannot be: a fraction of a device outside (0, 1] or not a number, or a fraction
/// of memory that has no device total (a host-backed memory manager).
class invalid_limit : public error {
 public:
  explicit invalid_limit(const std::string& why) : error("stash: invalid memory limit: " + why) {}
};

/// A caching_options value the allocator cannot use (check_options), named with why.
class invalid_option : public error {
 public:
  invalid_option(std::string option, const std::string& why)
      : error("stash: invalid option " + option + ": " + why), option_(std::move(option)) {}
  const std::string& option() const noexcept { return option_; }

 private:
  std::string option_;
};

/// A CUDA runtime or driver call failed for a reason other than lack of memory.
class cuda_error : public error {
 public:
  cuda_error(int code, const std::string& what) : error("stash: " + what), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

/// A stream handle the ordering policy rejects (CUDA: one the runtime does not know, e.g. destroyed).
class invalid_stream : public error {
 public:
  invalid_stream(const void* handle, const std::string& why)
      : error("stash: invalid stream " + describe(handle) + ": " + why), handle_(handle) {}
  const void* handle() const noexcept { return handle_; }

 private:
  static std::string describe(const void* p) {
    char buf[2 + 2 * sizeof(void*) + 1];
    std::snprintf(buf, sizeof buf, "%p", p);
    return buf;
  }
  const void* handle_;
};

/// A request made while its stream captures a CUDA graph that cannot be served without a call capture
/// forbids: with a segment backend out of memory, giving cached segments back to retry (cudaFree
/// synchronizes the device). Mapping pages and creating segments are allowed during a capture
/// (stash/cuda/capture_mode.hpp).
class capture_error : public error {
 public:
  capture_error(std::size_t requested, const std::string& why)
      : error("stash: cannot allocate " + std::to_string(requested) +
              " bytes during CUDA graph capture: " + why),
        requested_(requested) {}
  std::size_t requested_bytes() const noexcept { return requested_; }

 private:
  std::size_t requested_;
};

/// The backend could not provide memory even after the cache was released and the request retried.
/// Carries the figures at the time of failure. Copying one never throws. Its message is built on the
/// host heap: when that fails, the call throws that std::bad_alloc instead, with what an out_of_memory
/// leaves (the cache released for the retry, oom_retries counted, pending frees waited for): the
/// failure is the same, only its figures are lost.
class out_of_memory : public std::bad_alloc {
 public:
  out_of_memory(std::size_t requested, int device, std::size_t reserved, std::size_t cached)
      : requested_(requested), device_(device), reserved_(reserved), cached_(cached) {
    message_ = std::make_shared<const std::string>(
        "stash: out of memory: requested " + std::to_string(requested) + " bytes on device " +
        std::to_string(device) + " with " + std::to_string(reserved) + " bytes reserved and " +
        std::to_string(cached) + " bytes cached after releasing the cache and retrying once");
  }
  /// The same failure with a memory_report: what the memory held is made of, and what the driver
  /// has left (the memory manager's pools throw this one).
  out_of_memory(const out_of_memory& failure, const memory_report& details)
      : out_of_memory(failure) {
    details_ = std::make_shared<const memory_report>(details);
    message_ = std::make_shared<const std::string>(*message_ + "; " + to_string(details));
  }
  const char* what() const noexcept override { return message_->c_str(); }
  /// nullptr when the thrower attached no report.
  const memory_report* details() const noexcept { return details_.get(); }
  std::size_t requested_bytes() const noexcept { return requested_; }
  int device() const noexcept { return device_; }
  std::size_t reserved_bytes() const noexcept { return reserved_; }
  std::size_t cached_bytes() const noexcept { return cached_; }

 private:
  std::size_t requested_;
  int device_;
  std::size_t reserved_;
  std::size_t cached_;
  // Shared: exceptions are copied (throwing one copies it), and a copy must not need the host heap,
  // which may be what ran out.
  std::shared_ptr<const std::string> message_;
  std::shared_ptr<const memory_report> details_;
};

}  // namespace stash
