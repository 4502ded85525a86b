// The C interface (stash_c.h) over one stash::memory_manager. Every entry point catches everything:
// the callers are frameworks written in C, Python and C++ that cannot take a C++ exception through a
// C frame.
//
// This layer parses the options, turns errors into statuses and messages, and holds what is asked for
// before the first allocation (options, limits). The pools, their limits, streams and figures are the
// manager's. The manager is its own, not the process-wide instance, because it is made with the options
// a user passes (backend, page slack, reservation, limits); it is made at the first allocation and
// never destroyed: a framework frees its last tensors during interpreter shutdown, after static
// destructors may have run, and the driver takes every mapping back at exit anyway.
#include "stash_c.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "stash/device_manager.hpp"
#include "stash/error.hpp"
#include "stash/cuda/device_synchronize.hpp"
#include "stash/cuda/ipc_mapping.hpp"
#include "stash/detail/covering_walk.hpp"
#include "stash/graph_pools.hpp"
#include "stash/ipc_pidfd.hpp"
#include "stash/memory_manager.hpp"

// Streams: stash::stream is a cudaStream_t without CUDA's headers (stash/stream.hpp).
#include "stash/stream.hpp"

namespace {

// ---------------------------------------------------------------------------------------------------
// Streams: every allocation and free goes to its pool with the caller's stream (PyTorch's and CuPy's
// current stream at allocation); device and pinned pools order reuse by them (cuda_event_ordering),
// host pools need not.
stash::stream to_stream(stash_stream_t s) noexcept { return stash::stream(s); }

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
  } catch (const stash::invalid_limit& e) {
    return fail(STASH_ERROR_INVALID_ARGUMENT, e.what());
  } catch (const stash::invalid_ipc_handle& e) {
    return fail(STASH_ERROR_INVALID_ARGUMENT, e.what());
  } catch (const stash::ipc_refused& e) {
    return fail(STASH_ERROR_IPC, e.what());
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

// Runs f, a call on the graph pools; a stash::error it throws is a call the pools' state does not
// allow (nothing to end or release, a pointer not in the pool), which changed nothing: the caller's
// mistake, reported as STASH_ERROR_INVALID_ARGUMENT.
template <class F>
void graph_pool_call(F&& f) {
  try {
    f();
  } catch (const stash::error& e) {
    throw option_error{STASH_ERROR_INVALID_ARGUMENT, e.what()};
  }
}

// A framework that frees memory has nowhere to put an error: say it on stderr too.
void report(const char* what, const void* ptr) noexcept {
  std::fprintf(stderr, "%s [%s(%p)]\n", last_error.c_str(), what, ptr);
}

// ---------------------------------------------------------------------------------------------------
// Options: the manager's, and where its memory comes from.
constexpr std::size_t no_limit = stash::memory_manager::unlimited;

struct options {
  bool host = false;  // backing:host, host memory even when a GPU is visible (auto: only without one)
  int host_devices = 1;
  stash::manager_options manager{};
};

/// A word an option takes, and what it means.
template <class T>
struct choice {
  std::string_view name;
  T value;
};
constexpr std::array<choice<stash::device_backend_kind>, 2> backend_choices{
    {{"vmm", stash::device_backend_kind::vmm}, {"segments", stash::device_backend_kind::segments}}};
constexpr std::array<choice<bool>, 2> backing_choices{{{"auto", false}, {"host", true}}};
constexpr std::array<choice<stash::peer_access>, 2> peer_access_choices{
    {{"all", stash::peer_access::all}, {"none", stash::peer_access::none}}};
constexpr std::array<choice<bool>, 2> switch_choices{{{"off", false}, {"on", true}}};
enum class shareable_mode { off, on, where_supported };
constexpr std::array<choice<shareable_mode>, 3> shareable_choices{
    {{"off", shareable_mode::off}, {"on", shareable_mode::on}, {"auto", shareable_mode::where_supported}}};

constexpr const char* option_help_text =
    "backend:vmm|segments        vmm   device pages of CUDA virtual memory, or whole cudaMalloc segments\n"
    "page_slack:FLOAT            0.02  (vmm) how far pages held may exceed the high tide of pages in use\n"
    "reserve:BYTES               0     (vmm) address space reserved per device; 0: the device memory x 1.5\n"
    "                                  (suffixes KB MB GB TB: powers of 1000; KiB MiB GiB TiB: of 1024)\n"
    "pages_between_moves:INT     8     (vmm) at most one page move per this many pages mapped\n"
    "max_chunk_pages:INT         32    (vmm) pages inside a new block mapped as one allocation, at most; 1: page by page\n"
    "edge_pages_in_chunks:on|off on    (vmm) a new block's first and last pages join its chunk, though a neighbour may\n"
    "                                  share them (and then hold the chunk); off: those pages mapped one each\n"
    "chunks_per_block:INT        8     (vmm) a block of more than max_chunk_pages x this many pages: chunks of this share of it; 0: off\n"
    "moves_per_block:INT         8     (vmm) past the slack, a large block moves at most about this many idle pages in; 0: off\n"
    "chunk_room_share:INT        256   (vmm) a new chunk takes at most this share of the device's free memory (or of\n"
    "                                  what the limit leaves): the fuller the device, the finer the grain; 0: off\n"
    "small_region:on|off         on    (vmm) requests of at most half a page in an address region of their own\n"
    "small_fill_mapped:on|off    off   (vmm) a small request whose region has no mapped room fills mapped pages of\n"
    "                                  the large region first: less memory, more host time\n"
    "fill_mapped_above:BYTES|off 8KiB  (vmm, small_fill_mapped off) small requests fill mapped pages of the large\n"
    "                                  region before their region maps a page, those of at most BYTES never its\n"
    "                                  top (less memory held, more warm host time; off: no fill)\n"
    "max_held_over_live:FLOAT    0     (vmm) pages held at most this x the peak of live bytes, idle pages moved past it; 0: off\n"
    "peer_access:all|none        all   (vmm) device pages mapped for every GPU that can reach them, or for their own only\n"
    "                                  (stash_grant_peer_access adds one later)\n"
    "shareable:on|off|auto       off   (vmm) device pages another process can map (stash_ipc_export; PyTorch's\n"
    "                                  torch.multiprocessing); on: a device that cannot export them fails\n"
    "                                  allocations; auto: shareable where the device can export (stash.torch: auto)\n"
    "remap_pending_pages:on|off  off   (vmm) a large block that needs pages while none is idle also maps, at its new\n"
    "                                  address, pages under this stream's own pending frees (measured: it does not pay)\n"
    "remap_min_pages:INT         256   (vmm, remap_pending_pages) only blocks of at least this many pages remap\n"
    "remap_min_age:INT           1     (vmm, remap_pending_pages) only frees this many epochs older than the open one\n"
    "keep_page_aliases:on|off    off   (vmm) an idle chunk moved to a block stays mapped where it was, taken back there\n"
    "                                  with no driver call when nothing uses it elsewhere (not with remap_pending_pages)\n"
    "cross_stream_wait:on|off    off   (segments) a stream with no usable block takes one freed on another stream\n"
    "                                  and waits on the GPU for that stream's event (RMM's way)\n"
    "free_records_used_streams:on|off  off  a free records an event on the streams record_stream named\n"
    "                                  (they must be alive then: PyTorch's contract; stash.torch: on)\n"
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
  if (ec != std::errc{} || end != value.data() + value.size() || value.empty())
    bad_value(key, value, expected);
  return n;
}

// std::from_chars, not strtod: the same in every locale (strtod reads "0.5" as 0 under a locale whose
// decimal separator is a comma, such as one a GUI toolkit sets with setlocale(LC_ALL, "")).
double parse_double(std::string_view key, std::string_view value, const char* expected) {
  std::string_view digits = value;
  if (digits.size() > 1 && digits.front() == '+' && digits[1] != '-' && digits[1] != '+')
    digits.remove_prefix(1);
  double d = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), d);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || !std::isfinite(d)) {
    bad_value(key, value, expected);
  }
  return d;
}

// The shortest text that parse_double reads back as exactly d, in every locale ("%g" kept 6 digits, so
// stash_options() named another value than the one in force, and a different value set again after the
// first allocation was taken for the same one; and it wrote "0,02" under a comma locale).
std::string double_text(double d) {
  char text[64];
  const auto [end, ec] = std::to_chars(text, text + sizeof text, d);
  return ec == std::errc{} ? std::string(text, end) : std::string("?");
}

std::uint64_t parse_bytes(std::string_view key, std::string_view value) {
  constexpr const char* expected =
      "a byte count (an integer, optionally with KB, MB, GB, TB, KiB, MiB, GiB or TiB)";
  std::size_t digits = 0;
  while (digits < value.size() && value[digits] >= '0' && value[digits] <= '9') ++digits;
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + digits, n);
  if (digits == 0 || ec != std::errc{}) bad_value(key, value, expected);  // quotes the whole value
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

/// The value `value` names among `choices`. Throws option_error listing them.
template <class T, std::size_t N>
T parse_choice(std::string_view key, std::string_view value, const std::array<choice<T>, N>& choices) {
  for (const choice<T>& c : choices) {
    if (value == c.name) return c.value;
  }
  std::string expected = "one of ";
  for (const choice<T>& c : choices) expected.append(c.name).append(&c == &choices.back() ? "" : ", ");
  bad_value(key, value, expected.c_str());
}

template <class T, std::size_t N>
std::string_view name_of(T value, const std::array<choice<T>, N>& choices) {
  for (const choice<T>& c : choices) {
    if (c.value == value) return c.name;
  }
  return "?";
}

// Parses "key:value,key:value" on top of `base`. Throws option_error naming the option at fault.
options parse_options(std::string_view conf, options base) {
  options o = base;
  stash::caching_options& caching = o.manager.caching;
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
      o.manager.backend = parse_choice(key, value, backend_choices);
    } else if (key == "page_slack") {
      const double d = parse_double(key, value, "a number >= 0");
      if (d < 0) bad_value(key, value, "a number >= 0");
      caching.page_slack = d;
    } else if (key == "reserve") {
      const std::uint64_t n = parse_bytes(key, value);
      if (n > (UINT64_MAX >> 1))
        bad_value(key, value, "a byte count of at most 2^63 (more than any machine addresses)");
      caching.reserve_bytes = static_cast<std::size_t>(n);
    } else if (key == "pages_between_moves") {
      caching.pages_between_moves = parse_unsigned(key, value, "an integer >= 0");
    } else if (key == "max_chunk_pages") {
      const std::uint64_t n = parse_unsigned(key, value, "an integer >= 1");
      if (n < 1) bad_value(key, value, "an integer >= 1");
      caching.max_chunk_pages = static_cast<std::size_t>(n);
    } else if (key == "edge_pages_in_chunks") {
      caching.edge_pages_in_chunks = parse_choice(key, value, switch_choices);
    } else if (key == "chunks_per_block") {
      caching.chunks_per_block = static_cast<std::size_t>(parse_unsigned(key, value, "an integer >= 0"));
    } else if (key == "moves_per_block") {
      caching.moves_per_block = static_cast<std::size_t>(parse_unsigned(key, value, "an integer >= 0"));
    } else if (key == "chunk_room_share") {
      caching.chunk_room_share = static_cast<std::size_t>(parse_unsigned(key, value, "an integer >= 0"));
    } else if (key == "small_region") {
      caching.small_region = parse_choice(key, value, switch_choices);
    } else if (key == "small_fill_mapped") {
      caching.small_fill_mapped = parse_choice(key, value, switch_choices);
    } else if (key == "fill_mapped_above") {
      caching.fill_mapped_above =
          value == "off" ? SIZE_MAX : static_cast<std::size_t>(parse_bytes(key, value));
    } else if (key == "free_records_used_streams") {
      caching.free_records_used_streams = parse_choice(key, value, switch_choices);
    } else if (key == "remap_pending_pages") {
      caching.remap_pending_pages = parse_choice(key, value, switch_choices);
    } else if (key == "remap_min_pages") {
      caching.remap_min_pages = static_cast<std::size_t>(parse_unsigned(key, value, "an integer >= 0"));
    } else if (key == "remap_min_age") {
      caching.remap_min_age = parse_unsigned(key, value, "an integer >= 0");
    } else if (key == "keep_page_aliases") {
      caching.keep_page_aliases = parse_choice(key, value, switch_choices);
    } else if (key == "cross_stream_wait") {
      caching.cross_stream_wait = parse_choice(key, value, switch_choices);
    } else if (key == "max_held_over_live") {
      const double d = parse_double(key, value, "a number >= 0");
      if (d < 0) bad_value(key, value, "a number >= 0");
      caching.max_held_over_live = d;
    } else if (key == "shareable") {
      const shareable_mode mode = parse_choice(key, value, shareable_choices);
      o.manager.shareable = mode == shareable_mode::on;
      o.manager.shareable_where_supported = mode == shareable_mode::where_supported;
    } else if (key == "peer_access") {
      o.manager.peers = parse_choice(key, value, peer_access_choices);
    } else if (key == "backing") {
      o.host = parse_choice(key, value, backing_choices);
    } else if (key == "host_devices") {
      const std::uint64_t n = parse_unsigned(key, value, "an integer from 1 to 64");
      if (n < 1 || n > 64) bad_value(key, value, "an integer from 1 to 64");
      o.host_devices = static_cast<int>(n);
    } else if (key == "limit") {
      o.manager.limit_bytes = static_cast<std::size_t>(parse_bytes(key, value));
    } else if (key == "memory_fraction") {
      const double f = parse_double(key, value, "a number in (0, 1]");
      if (!(f > 0 && f <= 1)) bad_value(key, value, "a number in (0, 1]");
      o.manager.memory_fraction = f;
    } else {
      throw option_error{STASH_ERROR_INVALID_ARGUMENT,
                         "stash: unknown option '" + std::string(key) +
                             "' (known: backend, page_slack, reserve, pages_between_moves, "
                             "max_chunk_pages, edge_pages_in_chunks, chunks_per_block, moves_per_block, "
                             "chunk_room_share, small_region, small_fill_mapped, fill_mapped_above, "
                             "peer_access, shareable, max_held_over_live, free_records_used_streams, "
                             "remap_pending_pages, remap_min_pages, remap_min_age, keep_page_aliases, "
                             "cross_stream_wait, backing, host_devices, limit, memory_fraction)"};
    }
  }
  try {  // what the allocator would refuse, refused here with the option's name
    stash::check_options(o.manager.caching);
  } catch (const stash::invalid_option& e) {
    throw option_error{STASH_ERROR_INVALID_ARGUMENT, e.what()};
  }
  return o;
}

std::string format_options(const options& o) {
  const stash::caching_options& caching = o.manager.caching;
  std::string s = "backend:" + std::string(name_of(o.manager.backend, backend_choices)) +
                  ",page_slack:" + double_text(caching.page_slack) +
                  ",reserve:" + std::to_string(caching.reserve_bytes) +
                  ",pages_between_moves:" + std::to_string(caching.pages_between_moves) +
                  ",max_chunk_pages:" + std::to_string(caching.max_chunk_pages) +
                  ",small_region:" + std::string(name_of(caching.small_region, switch_choices)) +
                  ",free_records_used_streams:" +
                  std::string(name_of(caching.free_records_used_streams, switch_choices)) +
                  ",backing:" + std::string(name_of(o.host, backing_choices));
  if (caching.max_held_over_live > 0) s += ",max_held_over_live:" + double_text(caching.max_held_over_live);
  if (o.host) s += ",host_devices:" + std::to_string(o.host_devices);
  if (o.manager.limit_bytes != no_limit) s += ",limit:" + std::to_string(o.manager.limit_bytes);
  if (o.manager.memory_fraction > 0) s += ",memory_fraction:" + double_text(o.manager.memory_fraction);
  // Named only when changed, like the options above: the defaults suit every trace measured.
  const stash::caching_options defaults;
  if (caching.edge_pages_in_chunks != defaults.edge_pages_in_chunks)
    s += ",edge_pages_in_chunks:" + std::string(name_of(caching.edge_pages_in_chunks, switch_choices));
  if (caching.chunks_per_block != defaults.chunks_per_block)
    s += ",chunks_per_block:" + std::to_string(caching.chunks_per_block);
  if (caching.moves_per_block != defaults.moves_per_block)
    s += ",moves_per_block:" + std::to_string(caching.moves_per_block);
  if (caching.chunk_room_share != defaults.chunk_room_share)
    s += ",chunk_room_share:" + std::to_string(caching.chunk_room_share);
  if (caching.remap_pending_pages != defaults.remap_pending_pages)
    s += ",remap_pending_pages:" + std::string(name_of(caching.remap_pending_pages, switch_choices));
  if (caching.remap_min_pages != defaults.remap_min_pages)
    s += ",remap_min_pages:" + std::to_string(caching.remap_min_pages);
  if (caching.remap_min_age != defaults.remap_min_age)
    s += ",remap_min_age:" + std::to_string(caching.remap_min_age);
  if (caching.keep_page_aliases != defaults.keep_page_aliases)
    s += ",keep_page_aliases:" + std::string(name_of(caching.keep_page_aliases, switch_choices));
  if (caching.small_fill_mapped != defaults.small_fill_mapped)
    s += ",small_fill_mapped:" + std::string(name_of(caching.small_fill_mapped, switch_choices));
  if (caching.fill_mapped_above != defaults.fill_mapped_above)
    s += ",fill_mapped_above:" + (caching.fill_mapped_above == SIZE_MAX
                                      ? std::string("off")
                                      : std::to_string(caching.fill_mapped_above));
  if (caching.cross_stream_wait != defaults.cross_stream_wait)
    s += ",cross_stream_wait:" + std::string(name_of(caching.cross_stream_wait, switch_choices));
  if (o.manager.peers != stash::peer_access::all)
    s += ",peer_access:" + std::string(name_of(o.manager.peers, peer_access_choices));
  if (o.manager.shareable) s += ",shareable:on";
  if (o.manager.shareable_where_supported) s += ",shareable:auto";
  return s;
}

/// `fraction` of device id's total memory, in bytes.
std::size_t fraction_of(double fraction, int id) {
  return static_cast<std::size_t>(fraction *
                                  static_cast<double>(stash::device_manager::memory(id).total_bytes));
}

// ---------------------------------------------------------------------------------------------------
// Sharing blocks with other processes (stash_ipc_*): the blocks this process exported, whose
// descriptors stay open while the block is live (an importer takes its copies with pidfd_getfd, at any
// time until then), and the blocks of other processes mapped here.
class ipc_table {
 public:
  /// The text of mm's live block that ptr lies in, made (with its descriptors) on the block's first
  /// export, and where ptr lies in the block. Throws invalid_pointer for a pointer in no live block,
  /// option_error (unsupported) for memory that cannot be shared.
  std::pair<std::string, std::size_t> export_block(const stash::memory_manager& mm, const void* ptr) {
    std::lock_guard guard(mutex_);
    if (const auto found = exports_.find(ptr); found != exports_.end()) return {found->second.text, 0};
    try {
      return {export_start(mm, ptr), 0};
    } catch (const stash::invalid_pointer&) {
      // Inside a block rather than at its start? Rare: the walk over the pool's blocks is paid here only.
      const auto [start, size] = mm.live_block_containing(ptr);
      if (!start) throw;
      const std::size_t offset =
          static_cast<std::size_t>(static_cast<const char*>(ptr) - static_cast<char*>(start));
      if (const auto found = exports_.find(start); found != exports_.end())
        return {found->second.text, offset};
      return {export_start(mm, start), offset};
    }
  }

  /// Whether any block is exported now: a free need not look otherwise.
  bool any_exported() const noexcept { return exported_.load(std::memory_order_relaxed) != 0; }

  /// ptr is being freed: its export's descriptors close.
  void forget(const void* ptr) noexcept {
    std::lock_guard guard(mutex_);
    if (exports_.erase(ptr) != 0) exported_.store(exports_.size(), std::memory_order_relaxed);
  }

  /// Forgets the exports of blocks that are no longer live (freed by a path other than stash_free: a
  /// released graph pool's blocks given back): one index lookup per export.
  void forget_dead(const stash::memory_manager& mm) {
    std::lock_guard guard(mutex_);
    for (auto it = exports_.begin(); it != exports_.end();) {
      if (mm.owns(it->first)) ++it;
      else it = exports_.erase(it);
    }
    exported_.store(exports_.size(), std::memory_order_relaxed);
  }

  /// Keeps m, a block of another process mapped here, until close(m->get()).
  void add_import(std::unique_ptr<stash::ipc_mapping> m) {
    std::lock_guard guard(mutex_);
    void* const p = m->get();
    imports_.emplace(p, std::move(m));
  }

  /// Unmaps the block mapped at p. Throws invalid_pointer for any other pointer.
  void close(void* p) {
    std::unique_ptr<stash::ipc_mapping> m;
    {
      std::lock_guard guard(mutex_);
      const auto found = imports_.find(p);
      if (found == imports_.end())
        throw stash::invalid_pointer(p, "stash_ipc_close: not a block stash_ipc_open mapped");
      m = std::move(found->second);
      imports_.erase(found);
    }
    // m unmaps here, outside the lock
  }

 private:
  /// Exports the live block that starts at start and keeps its descriptors. Called with mutex_ held.
  std::string export_start(const stash::memory_manager& mm, const void* start) {
    stash::ipc_handle h;
    try {
      h = mm.ipc_export(start);
    } catch (const stash::invalid_pointer&) {
      throw;
    } catch (const stash::cuda_error&) {
      throw;
    } catch (const stash::error& e) {
      throw option_error{STASH_ERROR_UNSUPPORTED,
                         std::string(e.what()) +
                             " (stash_ipc_export needs backend:vmm and the option shareable:on, or "
                             "shareable:auto on a device that can export memory as POSIX file descriptors)"};
    }
    std::string text = stash::ipc_encode(h);
    exports_.emplace(start, exported{std::move(h), text});
    exported_.store(exports_.size(), std::memory_order_relaxed);
    return text;
  }

  struct exported {
    stash::ipc_handle handle;  // owns the descriptors the text names
    std::string text;
  };
  std::mutex mutex_;
  std::unordered_map<const void*, exported> exports_;
  std::atomic<std::size_t> exported_{0};
  std::unordered_map<void*, std::unique_ptr<stash::ipc_mapping>> imports_;
};

// ---------------------------------------------------------------------------------------------------
// The manager. Options and limits may change until it is made, at the first allocation ("frozen");
// from then on they are its, and the fast path reads the manager without a lock.
class library {
 public:
  static library& get() {
    static library* const instance = new library();  // never destroyed: see the top of this file
    return *instance;
  }

  /// Throws option_error (a bad option, or options after the first allocation); changes nothing then.
  void configure(const char* conf) {
    std::lock_guard guard(mutex_);
    const options parsed = parse_options(conf ? conf : "", options{});
    if (existing_manager()) {
      if (format_options(parsed) == format_options(options_)) return;  // the same again
      throw option_error{STASH_ERROR_TOO_LATE,
                         "stash: options must be set before the first allocation (in force: " +
                             format_options(options_) + ")"};
    }
    options_ = parsed;
    configured_ = true;
    set_options_text(format_options(options_));
  }

  /// The options in force (or that the manager would take), as text. Throws for a bad STASH_CONF.
  const char* options_text() {
    std::lock_guard guard(mutex_);
    set_options_text(format_options(existing_manager() ? options_ : effective_options()));
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

  /// The manager, made on first use with the options in force, which it fixes.
  stash::memory_manager& manager() {
    if (stash::memory_manager* m = existing_manager()) return *m;
    return make_manager();
  }
  /// The manager if it was made, else null.
  stash::memory_manager* existing_manager() const noexcept {
    return manager_.load(std::memory_order_acquire);
  }

  /// The CUDA graph pools (stash_graph_pool_begin); their blocks come from the manager's device pools.
  stash::graph_pools& graph_pools() noexcept { return graph_pools_; }
  /// The blocks shared with other processes (stash_ipc_*).
  ipc_table& ipc() noexcept { return ipc_; }

  /// Gives the freed blocks of released graph pools back to their device pools, once every device
  /// with a pool has finished its work: a released graph's last replay may still run, on any stream,
  /// so every such device is synchronized (the pools' empty_cache would wait only for frees pending in
  /// stash, and a graph's blocks are not among them). Not
  /// while a capture routes requests to a pool, nor when a capture elsewhere makes the runtime refuse
  /// the synchronize (the blocks wait for a later call). Returns how many blocks went back. With
  /// `settle` (empty_cache), also where pools in use only have blocks that waited for the work of
  /// several streams: after the synchronize their own streams' requests may take them again
  /// (graph_pools::settle_completed). The out-of-memory retry does not settle: that gives the device
  /// pool no memory.
  std::size_t return_released_graph_blocks(stash::memory_manager& mm, bool settle = false) {
    const bool to_do = graph_pools_.releasable() != 0 || (settle && graph_pools_.waiting() != 0);
    if (!to_do || graph_pools_.routing()) return 0;
    // The frees the synchronize covers: a block another thread frees meanwhile waits for the next call.
    const std::uint64_t freed_by = graph_pools_.frees_so_far();
    if (!host_backed()) {
      for (int d = 0; d < mm.device_count(); ++d)
        if (mm.existing_device_pool(d) && !stash::cuda::synchronize_device(d)) return 0;
    }
    const std::size_t returned = graph_pools_.return_released(freed_by);
    if (settle) graph_pools_.settle_completed(freed_by);
    // Those blocks were freed without stash_free: exports among them must not outlive them.
    if (returned != 0 && ipc_.any_exported()) ipc_.forget_dead(mm);
    return returned;
  }

  /// Sets device id's limit (no_limit: none); before the manager is made, it is made with it. Throws
  /// invalid_device.
  void set_limit(int id, std::size_t bytes) {
    id = resolve(id);
    std::lock_guard guard(mutex_);
    if (stash::memory_manager* m = existing_manager()) return m->set_memory_limit(bytes, id);
    limits_[id] = bytes;
  }

  /// Sets device id's limit to a fraction in [0, 1] of its total memory. Throws option_error without
  /// a GPU.
  void set_fraction(int id, double fraction) {
    id = resolve(id);
    if (host_backed()) {
      throw option_error{
          STASH_ERROR_UNSUPPORTED,
          "stash: a memory fraction needs a GPU (host memory has no device total; use a limit in bytes)"};
    }
    set_limit(id, fraction_of(fraction, id));
  }

  /// Device id's limit in bytes (no_limit: none).
  std::size_t limit(int id) {
    id = resolve(id);
    std::lock_guard guard(mutex_);
    if (stash::memory_manager* m = existing_manager()) return m->memory_limit(id);
    if (const auto set = limits_.find(id); set != limits_.end()) return set->second;
    const options o = effective_options();
    std::size_t l = o.manager.limit_bytes;
    if (o.manager.memory_fraction > 0 && !layout_of(o).host)
      l = std::min(l, fraction_of(o.manager.memory_fraction, id));
    return l;
  }

 private:
  library() = default;

  struct layout_type {
    int count;
    bool host;
  };

  /// The options in force: those set, else STASH_CONF's (read each time until the manager fixes
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
    const bool host = o.host || gpus == 0;
    return {host ? o.host_devices : gpus, host};
  }

  layout_type layout() {
    if (const stash::memory_manager* m = existing_manager())
      return {m->device_count(), m->backed_by() == stash::memory_manager::backing::host};
    std::lock_guard guard(mutex_);
    if (const stash::memory_manager* m = existing_manager())
      return {m->device_count(), m->backed_by() == stash::memory_manager::backing::host};
    return layout_of(effective_options());
  }

  /// Fixes the options and makes the manager with them and the limits set so far.
  stash::memory_manager& make_manager() {
    std::lock_guard guard(mutex_);
    if (stash::memory_manager* m = existing_manager()) return *m;
    const options o = effective_options();
    const layout_type l = layout_of(o);
    if (l.host && o.manager.memory_fraction > 0) {
      throw option_error{
          STASH_ERROR_UNSUPPORTED,
          "stash: option 'memory_fraction' needs a GPU (host memory has no device total; use limit)"};
    }
    auto made = std::make_unique<stash::memory_manager>(
        l.host ? stash::memory_manager::backing::host : stash::memory_manager::backing::cuda, l.count,
        o.manager);
    for (const auto& [id, bytes] : limits_) {
      if (id < l.count) made->set_memory_limit(bytes, id);
    }
    options_ = o;
    configured_ = true;
    set_options_text(format_options(options_));
    manager_.store(made.get(), std::memory_order_release);
    return *made.release();
  }

  /// What stash_options() returns. Its buffer is replaced only when the text changes (a stash_configure
  /// with other options): a pointer stash_options() returned stays valid across later stash_options()
  /// calls and the first allocation, as stash_c.h promises. Called with mutex_ held.
  void set_options_text(std::string text) {
    if (text != options_text_) options_text_ = std::move(text);
  }

  std::mutex mutex_;  // taken to configure and to make the manager, never on the fast path
  options options_{};
  bool configured_ = false;
  std::string options_text_;
  std::map<int, std::size_t> limits_;  // set before the manager is made, by device (under mutex_)
  std::atomic<stash::memory_manager*> manager_{nullptr};
  stash::graph_pools graph_pools_;
  ipc_table ipc_;
};

void fill(stash_stats* out, const stash::memory_stats& m) {
  const stash::stats_snapshot& s = m.detail;
  out->limit_bytes = m.limit_bytes == no_limit ? UINT64_MAX : m.limit_bytes;
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
  out->num_ooms = m.num_ooms;
  out->page_moves = m.page_moves;
}

}  // namespace

extern "C" {

void* stash_alloc(ssize_t size, int device, stash_stream_t stream) {
  if (size == 0) return nullptr;  // as cudaMalloc(0): PyTorch asks for 0 bytes for empty tensors
  void* p = nullptr;
  guarded("stash_alloc", [&] {
    if (size < 0) throw stash::invalid_size(static_cast<std::size_t>(size), "a negative size");
    library& lib = library::get();
    stash::memory_manager& mm = lib.manager();
    stash::pool& pool = mm.device_pool(device);
    const auto bytes = static_cast<std::size_t>(size);
    const stash::stream s = to_stream(stream);
    if (lib.graph_pools().routing()) [[unlikely]] {  // a capture is underway: its requests go to its pool
      if (auto routed = lib.graph_pools().allocate(pool, pool.device(), bytes, s)) {
        p = *routed;
        return;
      }
    }
    // Released graph pools may still hold freed blocks: out of memory gives them back and tries once
    // more, and only a request that fails then is the pool's out of memory (counted in num_ooms, told
    // to the observers).
    try {
      p = pool.allocate_before_fallback(bytes, s);
    } catch (const stash::out_of_memory& first) {
      if (lib.return_released_graph_blocks(mm) == 0) pool.fail_out_of_memory(first);
      try {
        p = pool.allocate_before_fallback(bytes, s);
      } catch (const stash::out_of_memory& again) {
        pool.fail_out_of_memory(again);
      }
    }
  });
  return p;
}

void stash_free(void* ptr, ssize_t /*size*/, int device, stash_stream_t stream) {
  if (!ptr) return;
  const int status = guarded("stash_free", [&] {
    library& lib = library::get();
    const int id = lib.resolve(device);
    stash::memory_manager* mm = lib.existing_manager();
    if (!mm) throw stash::invalid_pointer(ptr, "not allocated by stash (nothing was allocated)");
    if (lib.ipc().any_exported()) [[unlikely]] lib.ipc().forget(ptr);  // its descriptors close
    if (lib.graph_pools().deallocate(ptr, to_stream(stream))) return;  // a graph's
    if (stash::pool* pool = mm->existing_device_pool(id);
        pool && pool->try_deallocate(ptr, to_stream(stream)))
      return;
    // Freed with the wrong device id: the pool that holds it frees it; else the error of the one it lies in.
    mm->deallocate(ptr, to_stream(stream));
  });
  if (status != STASH_OK) report("stash_free", ptr);
}

int stash_record_stream(void* ptr, stash_stream_t stream) {
  return guarded("stash_record_stream", [&] {
    library& lib = library::get();
    stash::memory_manager* mm = lib.existing_manager();
    if (!mm) throw stash::invalid_pointer(ptr, "record_stream: not a live allocation of stash");
    // A graph pool's block first: it checks that the block is live there (its device pool counts it
    // allocated either way), and once freed, no request of the pool takes it.
    (void)lib.graph_pools().record_stream(ptr, to_stream(stream));
    mm->record_stream(ptr, to_stream(stream));
  });
}

int stash_flush_stream(stash_stream_t stream) {
  return guarded("stash_flush_stream", [&] {
    if (stash::memory_manager* mm = library::get().existing_manager()) mm->flush_stream(to_stream(stream));
  });
}

int stash_stream_ordered(void) { return 1; }

void* stash_alloc_pinned(size_t size) {
  if (size == 0) return nullptr;
  void* p = nullptr;
  guarded("stash_alloc_pinned", [&] { p = library::get().manager().allocate_pinned(size); });
  return p;
}

int stash_free_pinned(void* ptr) {
  if (!ptr) return STASH_OK;
  const int status = guarded("stash_free_pinned", [&] {
    stash::memory_manager* mm = library::get().existing_manager();
    stash::pool* pool = mm ? mm->existing_pinned_pool() : nullptr;
    if (!pool) throw stash::invalid_pointer(ptr, "not allocated by stash (no pinned memory was allocated)");
    pool->deallocate(ptr, stash::stream{});
  });
  if (status != STASH_OK) report("stash_free_pinned", ptr);
  return status;
}

int stash_empty_cache(int device) {
  return guarded("stash_empty_cache", [&] {
    library& lib = library::get();
    if (device != -1) lib.resolve(device);
    stash::memory_manager* mm = lib.existing_manager();
    if (!mm) return;
    lib.return_released_graph_blocks(*mm, true);  // after a device-wide synchronize; then the caches empty
    if (device != -1) return mm->empty_cache(device);
    for (int d = 0; d < mm->device_count(); ++d) mm->empty_cache(d);
  });
}

int stash_graph_pool_begin(int device, uint64_t id_first, uint64_t id_second, stash_stream_filter filter,
                           void* context) {
  return guarded("stash_graph_pool_begin", [&] {
    if (!filter) throw option_error{STASH_ERROR_INVALID_ARGUMENT, "stash_graph_pool_begin: filter is null"};
    library& lib = library::get();
    const int id = lib.resolve(device);
    lib.graph_pools().begin(id, {id_first, id_second}, [filter, context](stash::stream s) {
      return filter(context, s.native_handle()) != 0;
    });
  });
}

int stash_graph_pool_end(int device, uint64_t id_first, uint64_t id_second) {
  return guarded("stash_graph_pool_end", [&] {
    library& lib = library::get();
    const int id = lib.resolve(device);
    graph_pool_call([&] { lib.graph_pools().end(id, {id_first, id_second}); });
  });
}

int stash_graph_pool_retain(int device, uint64_t id_first, uint64_t id_second) {
  return guarded("stash_graph_pool_retain", [&] {
    library& lib = library::get();
    lib.graph_pools().retain(lib.resolve(device), {id_first, id_second});
  });
}

int stash_graph_pool_users(int device, uint64_t id_first, uint64_t id_second, size_t* users) {
  return guarded("stash_graph_pool_users", [&] {
    if (!users) throw option_error{STASH_ERROR_INVALID_ARGUMENT, "stash_graph_pool_users: users is null"};
    library& lib = library::get();
    *users = lib.graph_pools().figures(lib.resolve(device), {id_first, id_second}).users;
  });
}

int stash_graph_pool_live_blocks(int device, uint64_t id_first, uint64_t id_second, stash_pool_block* out,
                                 size_t capacity, size_t* count) {
  return guarded("stash_graph_pool_live_blocks", [&] {
    if (!count || (!out && capacity > 0))
      throw option_error{STASH_ERROR_INVALID_ARGUMENT, "stash_graph_pool_live_blocks: count or out is null"};
    library& lib = library::get();
    const auto live = lib.graph_pools().live_blocks(lib.resolve(device), {id_first, id_second});
    for (std::size_t i = 0; i < live.size() && i < capacity; ++i)
      out[i] = stash_pool_block{live[i].ptr, live[i].bytes, live[i].on.native_handle()};
    *count = live.size();
  });
}

int stash_graph_pool_set_live(int device, uint64_t id_first, uint64_t id_second, void* const* live,
                              size_t n) {
  return guarded("stash_graph_pool_set_live", [&] {
    if (!live && n > 0)
      throw option_error{STASH_ERROR_INVALID_ARGUMENT, "stash_graph_pool_set_live: live is null"};
    library& lib = library::get();
    const int id = lib.resolve(device);
    const std::vector<void*> blocks(live, live + n);
    graph_pool_call([&] { lib.graph_pools().set_live(id, {id_first, id_second}, blocks); });
  });
}

int stash_graph_pool_release(int device, uint64_t id_first, uint64_t id_second) {
  return guarded("stash_graph_pool_release", [&] {
    library& lib = library::get();
    const int id = lib.resolve(device);
    graph_pool_call([&] { lib.graph_pools().release(id, {id_first, id_second}); });
  });
}

int stash_empty_pinned_cache(void) {
  return guarded("stash_empty_pinned_cache", [&] {
    if (stash::memory_manager* mm = library::get().existing_manager()) mm->empty_pinned_cache();
  });
}

int stash_get_stats(int device, stash_stats* out) {
  if (!out) return fail(STASH_ERROR_INVALID_ARGUMENT, "stash_get_stats: out is null");
  return guarded("stash_get_stats", [&] {
    library& lib = library::get();
    const int id = lib.resolve(device);
    if (stash::memory_manager* mm = lib.existing_manager()) return fill(out, mm->get_stats(id));
    stash::memory_stats none;  // nothing allocated yet: zeros, and the limit the pool would be made with
    none.limit_bytes = lib.limit(id);
    fill(out, none);
  });
}

int stash_get_pinned_stats(stash_stats* out) {
  if (!out) return fail(STASH_ERROR_INVALID_ARGUMENT, "stash_get_pinned_stats: out is null");
  return guarded("stash_get_pinned_stats", [&] {
    stash::memory_manager* mm = library::get().existing_manager();
    fill(out, mm ? mm->get_pinned_stats() : stash::memory_stats{});
  });
}

int stash_visit_memory(int device, stash_region_visitor region, stash_block_visitor block, void* context) {
  return guarded("stash_visit_memory", [&] {
    if (!region || !block)
      throw option_error{STASH_ERROR_INVALID_ARGUMENT, "stash_visit_memory: region or block is null"};
    library& lib = library::get();
    const int id = lib.resolve(device);
    stash::memory_manager* mm = lib.existing_manager();
    const stash::pool* p = mm ? mm->existing_device_pool(id) : nullptr;
    if (!p) return;
    const int paged = p->paged() ? 1 : 0;
    // Read before the walk, under the graph pools' own lock: while other threads allocate, a block
    // routed to a graph pool between the two reads shows in no pool (0, 0), and one freed in between
    // may still show in its pool. The walk is a moment's picture either way; a quiet device's is exact.
    const auto in_graph_pools = lib.graph_pools().blocks_of(id);
    // The walk is copied under the pool's lock and the callbacks run after it is released: a callback
    // may call stash (a Python callback may free memory from a finalizer that its garbage collection
    // runs), which would wait forever for a lock this thread holds.
    struct visited {
      bool region;
      std::uintptr_t addr;
      std::size_t bytes, requested;
      stash::graph_pool_id pool;
    };
    std::vector<visited> walk;
    stash::detail::visit_covering(
        [&](auto&& on_region, auto&& on_block) { p->visit_memory(on_region, on_block); },
        [&](std::uintptr_t begin, std::size_t bytes) { walk.push_back({true, begin, bytes, 0, {}}); },
        [&](std::uintptr_t addr, std::size_t bytes, std::size_t requested) {
          const auto found = requested != 0 ? in_graph_pools.find(addr) : in_graph_pools.end();
          walk.push_back({false, addr, bytes, requested,
                          found != in_graph_pools.end() ? found->second : stash::graph_pool_id{}});
        });
    for (const visited& v : walk) {
      if (v.region) region(context, reinterpret_cast<void*>(v.addr), v.bytes, paged);
      else block(context, reinterpret_cast<void*>(v.addr), v.bytes, v.requested, v.pool.first, v.pool.second);
    }
  });
}

int stash_reset_peak(int device) {
  return guarded("stash_reset_peak", [&] {
    library& lib = library::get();
    const int id = lib.resolve(device);
    if (stash::memory_manager* mm = lib.existing_manager()) mm->reset_peak(id);
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

int stash_grant_peer_access(int device, int peer) {
  return guarded("stash_grant_peer_access", [&] {
    library& lib = library::get();
    const int id = lib.resolve(device);
    (void)lib.manager().grant_peer_access(id, peer);
  });
}

int stash_ipc_export(const void* ptr, char* handle, size_t capacity, size_t* length, uint64_t* offset) {
  return guarded("stash_ipc_export", [&] {
    if (!length) throw option_error{STASH_ERROR_INVALID_ARGUMENT, "stash_ipc_export: length is null"};
    if (!handle && capacity > 0)
      throw option_error{STASH_ERROR_INVALID_ARGUMENT, "stash_ipc_export: handle is null"};
    library& lib = library::get();
    const stash::memory_manager* mm = lib.existing_manager();
    if (!ptr || !mm) throw stash::invalid_pointer(ptr, "stash_ipc_export: not a live allocation of stash");
    const auto [text, at] = lib.ipc().export_block(*mm, ptr);
    *length = text.size() + 1;
    if (offset) *offset = at;
    if (capacity < text.size() + 1) {
      throw option_error{STASH_ERROR_INVALID_ARGUMENT, "stash_ipc_export: the handle needs " +
                                                           std::to_string(text.size() + 1) + " bytes, " +
                                                           std::to_string(capacity) + " given"};
    }
    std::memcpy(handle, text.c_str(), text.size() + 1);
  });
}

int stash_ipc_open(const char* handle, void** ptr, uint64_t* size) {
  return guarded("stash_ipc_open", [&] {
    if (!handle || !ptr)
      throw option_error{STASH_ERROR_INVALID_ARGUMENT, "stash_ipc_open: handle or ptr is null"};
    *ptr = nullptr;
    const stash::ipc_handle h = stash::ipc_open_text(handle);
    library& lib = library::get();
    if (lib.host_backed())
      throw option_error{STASH_ERROR_UNSUPPORTED,
                         "stash_ipc_open: mapping another process's block needs a GPU"};
    if (h.device() >= lib.device_count()) throw stash::invalid_device(h.device(), lib.device_count());
    auto mapping = std::make_unique<stash::ipc_mapping>(h);  // h's descriptors close when it goes
    void* const p = mapping->get();
    const std::size_t bytes = mapping->size();
    lib.ipc().add_import(std::move(mapping));
    *ptr = p;
    if (size) *size = bytes;
  });
}

int stash_ipc_close(void* ptr) {
  return guarded("stash_ipc_close", [&] { library::get().ipc().close(ptr); });
}

int stash_configure(const char* conf) {
  return guarded("stash_configure", [&] { library::get().configure(conf); });
}

int stash_check_options(const char* conf) {
  return guarded("stash_check_options", [&] { (void)parse_options(conf ? conf : "", options{}); });
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
