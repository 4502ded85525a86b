// stash-replay: replays allocation traces (RMM logging_resource_adaptor CSV) against stash and the
// allocators it is measured against, and runs three micro-benchmarks (threads, pinned, cross-stream). README.md in
// this folder says what each figure means.
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "allocators/registry.hpp"
#include "least_memory.hpp"
#include "micro.hpp"
#include "peer_access.hpp"
#include "replay.hpp"
#include "timeline_replay.hpp"
#include "torch_snapshot_replay.hpp"
#include "trace_reader.hpp"

namespace {

using namespace stash::bench;

constexpr std::string_view usage = R"(usage: stash-replay [options] [TRACE.csv | DIR]...

Replays each trace (every *.csv of a DIR) with each allocator: a cold replay on an empty cache, then
--warm replays with the cache kept. Reports ops, peak live bytes (from the trace), peak reserved
bytes (held from the driver, cold replay), reserved/live, host ns per op cold and warm (median), and
backend allocation calls.

options:
  --backend simulated|cuda   default: cuda when a CUDA device is present, else simulated
  --allocators a,b,c         default: all available (--list shows them)
  --warm N                   warm replays per trace and allocator (default 5)
  --json                     one JSON object per line instead of the table
  --json-file PATH           also write the JSON objects to PATH (the table stays on stdout)
  --torch-snapshot PATH      replay the first trace with stash up to its peak of live bytes and write
                             the allocator's state then as a PyTorch memory snapshot (a pickle for
                             pytorch.org/memory_viz; docs/ecosystem.md)
  --timeline PATH            also write an HTML page of live and reserved bytes after every op, per
                             trace and allocator (one more untimed replay each; docs/ecosystem.md)
  --threads N                also run the threads micro-benchmark with N threads
  --pairs N                  alloc+free pairs per thread for --threads (default 20000)
  --pinned                   also run the pinned micro-benchmark (cuda backend)
  --pinned-pairs N           allocations in the pinned benchmark (default 200)
  --cross-stream N           also run the cross-stream micro-benchmark with N pairs (cuda backend):
                             1 MiB allocated and freed on stream S, then allocated on stream T; host
                             ns of that allocate and how often it returned S's address, with and
                             without a host wait for S first (allocators that take streams only)
  --peer-access              (cuda backend) every other device that can reach device 0 enables peer
                             access to it first (cudaDeviceEnablePeerAccess), as a program sharing
                             buffers between GPUs does: cudaMalloc'd memory is then mapped for those
                             devices too, as stash's pages are by default (README, "Peers")
  --least-memory             instead of the timed replays: the least memory each trace runs in with
                             each allocator that takes a limit (the stash compositions, torch): the
                             least limit, in steps of 2 MiB, at which a fresh allocator completes the
                             cold replay and the --warm replays, found by bisection between the peak
                             of live bytes and what it holds with no limit (stash is made as the
                             memory manager's pools are, over limited_backend; torch is limited by its
                             memory fraction)
  --list                     print the allocators available on each backend and exit
  -h, --help

Counts are whole numbers (--warm from 0, the others from 1). Figures that are undefined (per op of a
trace with no operations, reserved/live with nothing live, warm with --warm 0) print as - in the
table and null in JSON. Exit status: 0 done, 1 a replay failed, 2 bad usage or a bad trace (or a
folder with no trace).
)";

struct options {
  std::optional<backend_kind> backend;
  std::vector<std::string> allocators;
  int warm = 5;
  bool json = false;
  std::string json_file;
  std::string timeline;
  std::string torch_snapshot;
  int threads = 0;
  std::size_t pairs = 20000;
  bool pinned = false;
  std::size_t pinned_pairs = 200;
  std::size_t cross_stream = 0;
  bool list = false;
  bool peer_access = false;
  bool least_memory = false;
  std::vector<std::filesystem::path> inputs;
};

[[noreturn]] void die(const std::string& why, int code = 2) {
  std::fprintf(stderr, "stash-replay: %s\n", why.c_str());
  std::exit(code);
}

/// A whole decimal number in [least, the largest Int]; anything else (a sign, a fraction, trailing
/// text, too large) is a usage error.
template <class Int>
Int parse_count(std::string_view flag, std::string_view text, Int least) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  const auto most = static_cast<std::uint64_t>(std::numeric_limits<Int>::max());
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < static_cast<std::uint64_t>(least) ||
      value > most)
    die(fmt::format("{} expects a whole number from {} to {}, got '{}'", flag, least, most, text));
  return static_cast<Int>(value);
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    if (comma != 0) out.emplace_back(text.substr(0, comma));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

options parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) die(fmt::format("{} needs a value", arg));
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(usage.data(), stdout);
      std::exit(0);
    } else if (arg == "--backend") {
      const auto b = value();
      if (b == "cuda") o.backend = backend_kind::cuda;
      else if (b == "simulated") o.backend = backend_kind::simulated;
      else die(fmt::format("--backend must be simulated or cuda, got '{}'", b));
    } else if (arg == "--allocators") {
      o.allocators = split_list(value());
    } else if (arg == "--warm") {
      o.warm = parse_count<int>(arg, value(), 0);
    } else if (arg == "--json") {
      o.json = true;
    } else if (arg == "--json-file") {
      o.json_file = value();
    } else if (arg == "--timeline") {
      o.timeline = value();
    } else if (arg == "--torch-snapshot") {
      o.torch_snapshot = value();
    } else if (arg == "--threads") {
      o.threads = parse_count<int>(arg, value(), 1);
    } else if (arg == "--pairs") {
      o.pairs = parse_count<std::size_t>(arg, value(), 1);
    } else if (arg == "--pinned") {
      o.pinned = true;
    } else if (arg == "--pinned-pairs") {
      o.pinned_pairs = parse_count<std::size_t>(arg, value(), 1);
    } else if (arg == "--cross-stream") {
      o.cross_stream = parse_count<std::size_t>(arg, value(), 1);
    } else if (arg == "--list") {
      o.list = true;
    } else if (arg == "--peer-access") {
      o.peer_access = true;
    } else if (arg == "--least-memory") {
      o.least_memory = true;
    } else if (arg.starts_with("-")) {
      die(fmt::format("unknown option '{}' (--help lists them)", arg));
    } else {
      o.inputs.emplace_back(arg);
    }
  }
  return o;
}

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;  // no driver, or no device
  return count;
}

std::string device_description() {
  int device = 0, driver = 0, runtime = 0;
  cudaDeviceProp prop{};
  cudaGetDevice(&device);
  cudaGetDeviceProperties(&prop, device);
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  return fmt::format("device {}: {} ({:.1f} GiB, sm_{}{}), CUDA driver {}.{}, runtime {}.{}", device, prop.name,
                     static_cast<double>(prop.totalGlobalMem) / (1 << 30), prop.major, prop.minor, driver / 1000,
                     driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
}

void synchronize_device() { cudaDeviceSynchronize(); }

/// The trace's streams as CUDA streams (non-blocking), for the cuda backend: the Stream value 0 is the
/// legacy default stream, every other value a stream of its own. On the simulated backend they are
/// distinct handles that no CUDA call sees (simulated_stream_handles).
class trace_streams {
 public:
  trace_streams(const trace& t, bool cuda) : cuda_(cuda) {
    if (!cuda) {
      handles_ = simulated_stream_handles(t);
      return;
    }
    for (const std::uint64_t value : t.streams) {
      cudaStream_t s = nullptr;
      if (value != 0) STASH_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      handles_.push_back(s);
    }
  }
  ~trace_streams() {
    if (!cuda_) return;
    cudaDeviceSynchronize();
    for (void* s : handles_)
      if (s) cudaStreamDestroy(static_cast<cudaStream_t>(s));
  }
  trace_streams(const trace_streams&) = delete;
  trace_streams& operator=(const trace_streams&) = delete;
  const std::vector<void*>& handles() const noexcept { return handles_; }

 private:
  bool cuda_;
  std::vector<void*> handles_;
};

/// The length of the well-formed UTF-8 sequence at the start of s, 0 when it is not one (a file name
/// is bytes, JSON is UTF-8).
std::size_t utf8_sequence(std::string_view s) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b = byte(0);
  const std::size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || n > s.size()) return 0;
  for (std::size_t i = 1; i < n; ++i)
    if ((byte(i) >> 6) != 0x2) return 0;
  std::uint32_t cp = n == 1 ? b : b & (0x7F >> n);
  for (std::size_t i = 1; i < n; ++i) cp = (cp << 6) | (byte(i) & 0x3F);
  const std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;  // overlong, beyond, surrogate
  return n;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  while (!s.empty()) {
    const std::size_t n = utf8_sequence(s);
    if (n == 0) {  // not UTF-8: the replacement character, so the output stays JSON
      out += "\\ufffd";
      s.remove_prefix(1);
      continue;
    }
    const char c = s[0];
    if (c == '"' || c == '\\') out += '\\';
    if (n == 1 && static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    else out.append(s.substr(0, n));
    s.remove_prefix(n);
  }
  return out + "\"";
}

std::string json_count(const std::optional<std::uint64_t>& n) { return n ? std::to_string(*n) : "null"; }

/// A figure with `decimals` digits, or null where it is undefined (JSON has no inf or nan).
std::string json_number(const std::optional<double>& x, int decimals) {
  return x ? fmt::format("{:.{}f}", *x, decimals) : "null";
}

/// A figure for the table, or "-" where it is undefined.
std::string table_number(const std::optional<double>& x, int decimals) {
  return x ? fmt::format("{:.{}f}", *x, decimals) : "-";
}

double mib(std::size_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

void print_replay_header() {
  fmt::print("{:<22} {:<16} {:>9} {:>12} {:>14} {:>9} {:>9} {:>11} {:>11} {:>10}\n", "trace", "allocator", "ops",
             "live MiB", "reserved MiB", "res/live", "settled", "cold ns/op", "warm ns/op", "backend");
}

/// Where results go: the table on stdout unless --json; JSON lines to stdout (--json), to a file
/// (--json-file), or both.
struct output {
  bool table = true;
  std::FILE* json = nullptr;       // stdout with --json
  std::FILE* json_file = nullptr;  // --json-file
  bool wants_json() const noexcept { return json || json_file; }
  void write_json(const std::string& line) const {
    for (std::FILE* f : {json, json_file}) {
      if (!f) continue;
      std::fputs(line.c_str(), f);
      std::fflush(f);
    }
  }
};

void print_replay(const replay_result& r, backend_kind backend, const output& out) {
  if (out.wants_json()) {
    out.write_json(fmt::format(
        "{{\"trace\":{},\"allocator\":{},\"backend\":\"{}\",\"ops\":{},\"peak_live_bytes\":{},"
        "\"peak_reserved_bytes\":{},\"reserved_over_live\":{},\"settled_reserved_over_live\":{},"
        "\"ns_per_op_cold\":{},"
        "\"ns_per_op_warm\":{},\"backend_allocs\":{},\"warm_page_work\":{},\"warm_events\":{},"
        "\"streams\":{},\"device_syncs\":{},\"host_waits\":{}}}\n",
        json_string(r.trace), json_string(r.allocator), to_string(backend), r.ops, r.peak_live_bytes,
        r.peak_reserved_bytes, json_number(r.reserved_over_live, 4), json_number(r.settled_reserved_over_live, 4),
        json_number(r.ns_per_op_cold, 1),
        json_number(r.ns_per_op_warm, 1), json_count(r.backend_allocs), json_count(r.warm_page_work),
        json_count(r.warm_events), r.streams, json_count(r.device_syncs), json_count(r.host_waits)));
  }
  if (out.table) {
    fmt::print("{:<22} {:<16} {:>9} {:>12.1f} {:>14.1f} {:>9} {:>9} {:>11} {:>11} {:>10}\n", r.trace, r.allocator,
               r.ops, mib(r.peak_live_bytes), mib(r.peak_reserved_bytes), table_number(r.reserved_over_live, 3),
               table_number(r.settled_reserved_over_live, 3),
               table_number(r.ns_per_op_cold, 1), table_number(r.ns_per_op_warm, 1),
               r.backend_allocs ? std::to_string(*r.backend_allocs) : "-");
  }
  std::fflush(stdout);
}

void print_least_memory(const least_memory_result& r, backend_kind backend, const output& out) {
  const auto over_live = [&](std::size_t bytes) {
    return r.peak_live_bytes ? std::optional<double>(static_cast<double>(bytes) / static_cast<double>(r.peak_live_bytes))
                             : std::nullopt;
  };
  if (out.wants_json()) {
    out.write_json(fmt::format(
               "{{\"benchmark\":\"least_memory\",\"trace\":{},\"allocator\":{},\"backend\":\"{}\","
               "\"peak_live_bytes\":{},\"unlimited_bytes\":{},\"least_bytes\":{},\"least_over_live\":{},"
               "\"unlimited_over_live\":{},\"probes\":{}}}\n",
               json_string(r.trace), json_string(r.allocator), to_string(backend), r.peak_live_bytes,
               r.unlimited_bytes, r.least_bytes, json_number(over_live(r.least_bytes), 4),
               json_number(over_live(r.unlimited_bytes), 4), r.probes));
  }
  if (out.table) {
    fmt::print("{:<24} {:<18} {:>10.1f} {:>14.1f} {:>11.1f} {:>10} {:>10} {:>7}\n", r.trace, r.allocator,
               mib(r.peak_live_bytes), mib(r.unlimited_bytes), mib(r.least_bytes),
               table_number(over_live(r.least_bytes), 4), table_number(over_live(r.unlimited_bytes), 4), r.probes);
  }
  std::fflush(stdout);
}

void print_threads(const threads_result& r, backend_kind backend, const output& out) {
  if (out.wants_json()) {
    out.write_json(fmt::format("{{\"bench\":\"threads\",\"allocator\":{},\"backend\":\"{}\",\"threads\":{},\"pairs\":{},"
               "\"ns_per_pair\":{}}}\n",
               json_string(r.allocator), to_string(backend), r.threads, r.pairs, json_number(r.ns_per_pair, 1)));
  }
  if (out.table) {
    fmt::print("{:<16} {:>8} {:>10} {:>14}\n", r.allocator, r.threads, r.pairs, table_number(r.ns_per_pair, 1));
  }
  std::fflush(stdout);
}

void print_cross_stream(const cross_stream_result& r, const output& out) {
  if (out.wants_json()) {
    out.write_json(fmt::format(
               "{{\"benchmark\":\"cross_stream\",\"allocator\":{},\"backend\":\"cuda\",\"synchronized\":{},"
               "\"pairs\":{},\"bytes\":{},\"ns_per_allocate\":{},\"reused\":{}}}\n",
               json_string(r.allocator), r.synchronized, r.pairs, r.bytes, json_number(r.ns_per_allocate, 1),
               r.reused));
  }
  if (out.table) {
    fmt::print("{:<20} {:>8} {:>10} {:>16} {:>10}\n", r.allocator, r.synchronized ? "yes" : "no", r.pairs,
               table_number(r.ns_per_allocate, 1), r.reused);
  }
  std::fflush(stdout);
}

/// Two non-blocking CUDA streams for --cross-stream, synchronized and destroyed at the end.
class stream_pair {
 public:
  stream_pair() {
    STASH_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    STASH_CUDA_CHECK(cudaStreamCreateWithFlags(&t, cudaStreamNonBlocking));
  }
  ~stream_pair() {
    cudaDeviceSynchronize();
    cudaStreamDestroy(s);
    cudaStreamDestroy(t);
  }
  stream_pair(const stream_pair&) = delete;
  stream_pair& operator=(const stream_pair&) = delete;
  cudaStream_t s = nullptr;
  cudaStream_t t = nullptr;
};

bool is_pinned(std::string_view name) {
  const auto pinned = pinned_allocators();
  return std::find(pinned.begin(), pinned.end(), name) != pinned.end();
}

bool selected_explicitly(const options& o, std::string_view name) {
  for (const auto& a : o.allocators)
    if (a == name) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const options opt = parse_options(argc, argv);
  const int devices = cuda_device_count();

  if (opt.list) {
    fmt::print("simulated: {}\ncuda: {}\npinned (cuda, --pinned): {}\nCUDA devices here: {}\n",
               join(available_allocators(backend_kind::simulated)), join(available_allocators(backend_kind::cuda)),
               join(pinned_allocators()), devices);
    return 0;
  }
  const backend_kind backend = opt.backend.value_or(devices > 0 ? backend_kind::cuda : backend_kind::simulated);
  if (backend == backend_kind::cuda && devices == 0) die("--backend cuda: no CUDA device found");
  if (opt.cross_stream > 0 && backend != backend_kind::cuda)
    die("--cross-stream needs the cuda backend (a CUDA device): it times allocations on CUDA streams");
  if (opt.inputs.empty() && opt.threads == 0 && !opt.pinned && opt.cross_stream == 0)
    die("nothing to do: give trace files or directories, --threads N, --pinned or --cross-stream N (--help)");
  if (opt.pinned && backend != backend_kind::cuda) die("--pinned needs the cuda backend");
  if (opt.peer_access && backend != backend_kind::cuda) die("--peer-access needs the cuda backend");

  std::vector<std::string> allocators = opt.allocators.empty() ? available_allocators(backend) : opt.allocators;
  for (const auto& name : allocators) {
    const auto known = available_allocators(backend);
    if (is_pinned(name) && !(opt.pinned && backend == backend_kind::cuda))
      die(fmt::format("allocator '{}' serves pinned host memory: it runs with --pinned on the cuda backend", name));
    if (std::find(known.begin(), known.end(), name) == known.end() && !is_pinned(name))
      die(fmt::format("allocator '{}' is not available on the {} backend (available: {})", name,
                      to_string(backend), join(known)));
  }

  if (backend == backend_kind::cuda) {
    STASH_CUDA_CHECK(cudaSetDevice(0));
    STASH_CUDA_CHECK(cudaFree(nullptr));
    // With --json, stdout holds only the result objects; the card goes to stderr.
    fmt::print(opt.json ? stderr : stdout, "# {}\n", device_description());
    if (opt.peer_access) {
      fmt::print(opt.json ? stderr : stdout, "# peer access to device 0 enabled on {} device(s)\n",
                 enable_peer_access_with_device0(devices, false));
    }
  }
  output out;
  out.table = !opt.json;
  if (opt.json) out.json = stdout;
  void (*before_clock)() = backend == backend_kind::cuda ? synchronize_device : nullptr;

  std::vector<trace> traces;
  try {
    for (const auto& input : opt.inputs) {
      if (std::filesystem::is_directory(input)) {
        const auto files = list_traces(input);
        if (files.empty()) die(fmt::format("{}: a folder with no *.csv trace in it", input.string()));
        for (const auto& file : files) traces.push_back(read_trace(file));
      } else {
        traces.push_back(read_trace(input));
      }
    }
  } catch (const std::exception& e) {
    die(e.what());
  }
  // Opened once every trace has been read: a bad trace leaves a results file as it was.
  if (!opt.json_file.empty()) {
    out.json_file = std::fopen(opt.json_file.c_str(), "w");
    if (out.json_file == nullptr) die(fmt::format("--json-file: cannot write '{}'", opt.json_file));
  }
  // What each trace skipped, on stdout with the table, else on stderr (stdout holds only JSON then).
  for (const auto& t : traces)
    if (t.skipped_frees || t.skipped_failures)
      fmt::print(out.table ? stdout : stderr, "note: {} skipped {} frees of addresses not live and {} failed allocations\n",
                 t.name, t.skipped_frees, t.skipped_failures);

  int failures = 0;
  auto report_failure = [&](std::string_view what, std::string_view allocator, const std::exception& e) {
    ++failures;
    std::fprintf(stderr, "stash-replay: %.*s with %.*s failed: %s\n", static_cast<int>(what.size()), what.data(),
                 static_cast<int>(allocator.size()), allocator.data(), e.what());
  };

  if (!traces.empty() && opt.least_memory) {
    constexpr std::size_t step = std::size_t{2} << 20;
    if (out.table) {
      fmt::print("backend {}: the least memory each trace runs in (cold and {} warm replays, limits in steps of "
                 "2 MiB)\n{:<24} {:<18} {:>10} {:>14} {:>11} {:>10} {:>10} {:>7}\n",
                 to_string(backend), opt.warm, "trace", "allocator", "live MiB", "unlimited MiB", "least MiB",
                 "least/live", "unlim/live", "probes");
    }
    for (const auto& t : traces) {
      for (const auto& name : allocators) {
        if (is_pinned(name)) continue;
        try {
          const trace_streams streams(t, backend == backend_kind::cuda);  // outlives the allocators
          auto make = [&]() -> std::unique_ptr<replay_allocator> {
            auto a = make_limited_allocator(name, backend);
            if (a) a->use_streams(streams.handles());
            return a;
          };
          if (before_clock) before_clock();
          const auto r = least_memory(make, t, opt.warm, step);
          if (r) print_least_memory(*r, backend, out);
          else std::fprintf(stderr, "stash-replay: --least-memory leaves out %s (it takes no limit)\n", name.c_str());
        } catch (const std::exception& e) {
          report_failure("least memory " + t.name, name, e);
        }
      }
    }
  } else if (!traces.empty()) {
    if (out.table) {
      fmt::print("backend {}, {} warm replays (median), host time, each allocate or free one op\n",
                 to_string(backend), opt.warm);
      print_replay_header();
    }
    for (const auto& t : traces) {
      for (const auto& name : allocators) {
        if (is_pinned(name)) continue;
        try {
          const trace_streams streams(t, backend == backend_kind::cuda);  // outlives the allocator
          auto allocator = make_allocator(name, backend);
          allocator->use_streams(streams.handles());
          print_replay(measure_replay(*allocator, t, opt.warm, before_clock), backend, out);
        } catch (const std::exception& e) {
          report_failure(t.name, name, e);
        }
      }
    }
  }

  if (!opt.torch_snapshot.empty()) {
    if (traces.empty()) die("--torch-snapshot needs a trace");
    try {
      const std::size_t ops =
          write_torch_snapshot_at_peak(traces.front(), opt.torch_snapshot, backend == backend_kind::cuda);
      std::fprintf(stderr, "stash-replay: %s: snapshot after %zu of %zu operations (the peak of live bytes)\n",
                   opt.torch_snapshot.c_str(), ops, traces.front().ops.size());
    } catch (const std::exception& e) {
      report_failure("torch snapshot " + traces.front().name, "stash", e);
    }
  }

  if (!opt.timeline.empty()) {
    stash::timeline tl("operations");
    for (const auto& t : traces) {
      for (const auto& name : allocators) {
        if (is_pinned(name)) continue;
        try {
          auto allocator = make_allocator(name, backend);
          if (before_clock) before_clock();
          if (!record_timeline(tl, *allocator, t))
            std::fprintf(stderr, "stash-replay: --timeline leaves out %s (it does not tell its reserved bytes)\n",
                         name.c_str());
        } catch (const std::exception& e) {
          report_failure("timeline " + t.name, name, e);
        }
      }
    }
    try {
      tl.write_html(opt.timeline, fmt::format("stash-replay: memory over time ({} backend)", to_string(backend)));
    } catch (const std::exception& e) {
      die(e.what());
    }
  }

  if (opt.threads > 0) {
    if (out.table) {
      fmt::print("\nthreads: {} threads share one allocator, {} allocate+free pairs each, sizes 256 B - 4 MiB\n",
                 opt.threads, opt.pairs);
      fmt::print("{:<16} {:>8} {:>10} {:>14}\n", "allocator", "threads", "pairs", "ns/pair (agg)");
    }
    for (const auto& name : allocators) {
      if (name == "cudaMalloc" || is_pinned(name)) continue;
      try {
        auto allocator = make_allocator(name, backend, /*shared_by_threads=*/true);
        if (before_clock) before_clock();
        print_threads(measure_threads(*allocator, opt.threads, opt.pairs), backend, out);
      } catch (const std::exception& e) {
        report_failure("threads", name, e);
      }
    }
  }

  if (opt.pinned) {
    const trace pinned = window_trace("pinned_mix", opt.pinned_pairs, 8, 4 << 10, 64 << 20);
    if (out.table) {
      fmt::print("\npinned: {} allocations of 4 KiB - 64 MiB, 8 live at a time; ns/pair = 2 x ns/op\n",
                 opt.pinned_pairs);
      print_replay_header();
    }
    // --allocators filters the pinned benchmark only when it names one of its allocators.
    bool names_pinned = false;
    for (const auto& name : pinned_allocators()) names_pinned = names_pinned || selected_explicitly(opt, name);
    for (const auto& name : pinned_allocators()) {
      if (names_pinned && !selected_explicitly(opt, name)) continue;
      try {
        auto allocator = make_pinned_allocator(name);
        print_replay(measure_replay(*allocator, pinned, opt.warm, before_clock), backend, out);
      } catch (const std::exception& e) {
        report_failure("pinned", name, e);
      }
    }
  }
  if (opt.cross_stream > 0) {
    constexpr std::size_t bytes = 1 << 20;
    if (out.table) {
      fmt::print("\ncross-stream: {} pairs of 1 MiB allocated+freed on stream S, then allocated on stream T; "
                 "host ns of the allocate on T (mean), reused = it returned S's address\n",
                 opt.cross_stream);
      fmt::print("{:<20} {:>8} {:>10} {:>16} {:>10}\n", "allocator", "sync S", "pairs", "ns/allocate on T",
                 "reused");
    }
    // Stash's segment design as well (cross_stream_wait works on segments), with and without the wait.
    std::vector<std::pair<std::string, std::function<std::unique_ptr<replay_allocator>()>>> makers;
    for (const auto& name : allocators)
      if (!is_pinned(name)) makers.emplace_back(name, [&name, backend] { return make_allocator(name, backend); });
    if (opt.allocators.empty()) {
      makers.emplace_back("stash-segment", [] {
        return std::make_unique<stash_adapter<stash::segment_device_allocator>>("stash-segment");
      });
      makers.emplace_back("stash-segment+wait", [] {
        stash::caching_options wait;
        wait.cross_stream_wait = true;
        return std::make_unique<stash_adapter<stash::segment_device_allocator>>("stash-segment+wait", wait);
      });
    }
    const stream_pair streams;  // outlives every allocator
    for (const auto& [name, make] : makers) {
      for (const bool synchronize : {true, false}) {
        try {
          auto allocator = make();
          if (!allocator->takes_streams()) break;
          synchronize_device();
          print_cross_stream(measure_cross_stream(*allocator, streams.s, streams.t, opt.cross_stream, bytes,
                                                  synchronize), out);
        } catch (const std::exception& e) {
          report_failure("cross-stream", name, e);
        }
      }
    }
  }
  if (out.json_file) std::fclose(out.json_file);
  return failures == 0 ? 0 : 1;
}
