// libFuzzer harness for the C interface's option parser (integrations/c/stash_c.cpp).
// The .cpp is included so parse_options/format_options (anonymous namespace) are reachable.
// Contract checked:
//  * parse_options throws only option_error, with STASH_ERROR_INVALID_ARGUMENT and a message naming an option;
//  * a parsed result re-checks (check_options) and round-trips through format_options exactly
//    (STASH_FUZZ_EXACT=0 turns the exact-double check off, to keep fuzzing past the known %g finding);
//  * the C entry points: stash_check_options agrees with parse_options; a refused stash_configure leaves
//    stash_options() unchanged; an accepted one makes stash_options() == format_options(parse).
#include "stash_c.cpp"  // build with -I<repo>/integrations/c

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {
bool exact() {
  static const bool e = [] { const char* v = std::getenv("STASH_FUZZ_EXACT"); return !v || v[0] != '0'; }();
  return e;
}
void fail_here(const char* what, const std::string& in) {
  std::fprintf(stderr, "CONTRACT: %s\ninput: [%s]\n", what, in.c_str());
  std::abort();
}
bool same(const options& a, const options& b) {
  const auto& x = a.manager.caching;
  const auto& y = b.manager.caching;
  return a.host == b.host && (!a.host || a.host_devices == b.host_devices) && a.manager.backend == b.manager.backend &&
         a.manager.limit_bytes == b.manager.limit_bytes && a.manager.memory_fraction == b.manager.memory_fraction &&
         a.manager.peers == b.manager.peers && a.manager.shareable == b.manager.shareable &&
         a.manager.shareable_where_supported == b.manager.shareable_where_supported && x.page_slack == y.page_slack &&
         x.reserve_bytes == y.reserve_bytes && x.pages_between_moves == y.pages_between_moves &&
         x.max_chunk_pages == y.max_chunk_pages && x.edge_pages_in_chunks == y.edge_pages_in_chunks &&
         x.chunks_per_block == y.chunks_per_block && x.moves_per_block == y.moves_per_block &&
         x.chunk_room_share == y.chunk_room_share && x.small_region == y.small_region &&
         x.small_fill_mapped == y.small_fill_mapped && x.free_records_used_streams == y.free_records_used_streams &&
         x.remap_pending_pages == y.remap_pending_pages && x.remap_min_pages == y.remap_min_pages &&
         x.remap_min_age == y.remap_min_age && x.cross_stream_wait == y.cross_stream_wait &&
         x.max_held_over_live == y.max_held_over_live;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  // 1. The parser itself, on the raw bytes (embedded NULs included).
  bool ok = false;
  options parsed;
  try {
    parsed = parse_options(in, options{});
    ok = true;
  } catch (const option_error& e) {
    if (e.status != STASH_ERROR_INVALID_ARGUMENT) fail_here("status is not INVALID_ARGUMENT", in);
    if (e.message.find("option") == std::string::npos && e.message.find("page_slack") == std::string::npos &&
        e.message.find("max_held_over_live") == std::string::npos)
      fail_here("message names no option", in);
  } catch (...) {
    fail_here("parse_options threw something other than option_error", in);
  }
  if (ok) {
    try {
      stash::check_options(parsed.manager.caching);
    } catch (...) {
      fail_here("accepted options fail check_options", in);
    }
    const std::string text = format_options(parsed);
    options again;
    try {
      again = parse_options(text, options{});
    } catch (const option_error& e) {
      fail_here(("format_options text does not parse back: " + text + " : " + e.message).c_str(), in);
    }
    if (format_options(again) != text) fail_here("format/parse is not a fixed point", in);
    if (exact() && !same(parsed, again)) fail_here(("format_options loses a value: " + text).c_str(), in);
  }
  // 2. The C entry points (a C string: up to the first NUL). No allocation is made, so configure stays open.
  const std::string c(in.c_str());
  bool c_ok = true;
  try {
    (void)parse_options(c, options{});
  } catch (const option_error&) {
    c_ok = false;
  }
  stash_clear_error();
  const int checked = stash_check_options(c.c_str());
  if ((checked == STASH_OK) != c_ok) fail_here("stash_check_options disagrees with parse_options", in);
  if (checked != STASH_OK && *stash_last_error() == '\0') fail_here("no message", in);
  const std::string before = stash_options();
  const int configured = stash_configure(c.c_str());
  if (configured != checked) fail_here("stash_configure and stash_check_options disagree", in);
  const std::string after = stash_options();
  if (configured != STASH_OK && after != before) fail_here("a refused configure changed the options", in);
  if (configured == STASH_OK && after != format_options(parse_options(c, options{})))
    fail_here("options in force differ from those parsed", in);
  return 0;
}
