#pragma once
// stash::caching_options: the numbers a user may tune per caching_allocator (stash/caching_allocator.hpp).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "stash/error.hpp"

namespace stash {

/// Numbers a user may tune per allocator; the defaults are what the benchmarks ran with.
struct caching_options {
  /// Paged backends only: address space to reserve up front (0: the backend's
  /// default_reserve_bytes() when it has one, else 1 TiB). Rounded up to the page size.
  std::size_t reserve_bytes = 0;
  /// Paged backends only: how far the pages held may exceed the high tide of pages touched by live
  /// blocks before idle pages are moved to where they are needed instead of new ones being mapped.
  /// 0 holds the least memory; a little slack saves page moves when the same workload repeats.
  double page_slack = 0.02;
  /// Paged backends only: a page move costs tens of microseconds (unmap, map, set access), so moves
  /// are rationed: at most one per this many pages backed. Between moves new pages are mapped, so a
  /// workload whose layout keeps shifting settles on the pages it needs instead of moving them forever.
  std::uint64_t pages_between_moves = 8;
  /// Paged backends only, off when 0: a bound on the pages held, as a multiple of the high tide of
  /// live bytes (1.05: at most 5% more than the most ever live, rounded down to whole pages). Past
  /// it, every page a block needs is an idle page moved there, with no ration (pages_between_moves
  /// and page_slack do not apply); new pages are mapped only when no page is idle. Holds the least
  /// memory a layout allows, and costs page moves in every replay of a workload whose layouts touch
  /// more pages over a run than the bound (bench/RESULTS.md, "a bound on the memory held"). At 1 or
  /// below, every idle page is moved before a new one is mapped.
  double max_held_over_live = 0;
  /// Paged backends that map runs of pages as one physical allocation (chunked_paged_backend): the
  /// unmapped pages of a new block (with edge_pages_in_chunks off, not a first or last page that a
  /// neighbour may share: the block starts or ends off a page boundary) are mapped in chunks of up to
  /// this many pages, two driver calls per chunk instead of two per page (and one access grant for
  /// the block). A chunk is given back or moved away only whole, once none of its pages is touched,
  /// so a block placed later on part of a freed chunk's range keeps the rest of it mapped: the size
  /// bounds that (64 MiB with 2 MiB pages). 1: every page is its own physical allocation.
  std::size_t max_chunk_pages = 32;
  /// Chunked paged backends, with max_chunk_pages above 1: a new block's first and last pages join its
  /// chunks even where the block starts or ends off a page boundary, so that a neighbour placed later
  /// may share the page. A block carved from the untouched rest of the range then costs one physical
  /// allocation instead of two or three (mlp_two_streams' cold replay: 52 instead of 82; every trace's
  /// driver calls 6-36% fewer, no settled figure of the ten simulated compositions higher but
  /// ddp_gpt2_rank0's under small_fill_mapped by 0.0004: bench/RESULTS.md, fourteenth session). The
  /// price is that of any chunk: it goes back and moves only whole, so a neighbour on a freed block's
  /// edge page keeps that block's chunk mapped (at most max_chunk_pages pages) until the neighbour is
  /// freed too, as PyTorch's own segments stay while any block in them lives. Off: such edge pages
  /// are mapped one page each, and empty_cache() leaves mapped only chunks whose pages live blocks
  /// touch, no chunk held for a neighbour's sake.
  bool edge_pages_in_chunks = true;
  /// Chunked paged backends, off when 0 or when max_chunk_pages is 1: a block of more than
  /// max_chunk_pages x this many pages is mapped in chunks of this share of it (rounded down) instead
  /// of max_chunk_pages: a 3 GiB block in 8 allocations of 384 MiB instead of 48 of 64 MiB. A chunk
  /// still goes back only whole, so a block placed later on part of a freed large block keeps at most
  /// that share of it mapped beyond itself. With moves_per_block 8, no benchmark trace holds more over
  /// a cold and three warm replays than with 16 and no share of moves, in host order or with events
  /// two records late (bench/RESULTS.md, seventh session).
  std::size_t chunks_per_block = 8;
  /// Chunked paged backends, off when 0, when max_chunk_pages is 1 or when pages_between_moves is 0
  /// (every page backed may move one): while a block of more than pages_between_moves x this many
  /// pages is backed past the slack, a move comes once per this share of the block's pages instead of
  /// once per pages_between_moves, so that its pages are mostly mapped in chunks: a 3 GiB block makes
  /// about this many page moves at most, instead of one per 9 pages. ddp_gpt2_rank0's cold replay then
  /// makes 896 driver calls instead of 1,944, and gpt2_varlen_e2e's three warm replays 21 instead of
  /// 343 (simulated device). The pages it does not move are new pages, so the first replay of a
  /// workload whose large blocks shift can hold more (gpt2_varlen_e2e 1.112 of its live peak instead
  /// of 1.062); over a cold and three warm replays both hold 1.113.
  std::size_t moves_per_block = 8;
  /// Chunked paged backends that tell their room (room_telling_backend: the device's free memory, or
  /// what a limit leaves), off when 0: a new chunk takes at most this share of that room (rounded
  /// down, at least a page), so that the fuller the device, the smaller the chunks. A chunk goes back
  /// and moves only whole: one that a later block touches in part keeps its other pages mapped, and
  /// when the device runs out those pages cannot move to where they are needed, where pages mapped one
  /// by one can. With 256, on a device with more than 128 GiB free (an idle H200) no benchmark's chunk
  /// is smaller; under a limit near each trace's live peak, the least memory the traces run in
  /// falls from up to 1.076x their live peak to at most 1.040x (bench/RESULTS.md, fifteenth
  /// session). The price is more driver calls where memory is short, and a query of the room
  /// (cudaMemGetInfo, 7-8 µs) where the room told last could bound the chunk, else once per 64 runs of
  /// pages mapped.
  std::size_t chunk_room_share = 256;
  /// Paged backends only: requests of at most half a page (1 MiB with 2 MiB pages, PyTorch's small
  /// requests) are carved from a region of their own, an eighth more address space reserved above
  /// reserve_bytes, and larger ones from the range below it. A small block then never sits inside a
  /// hole a large block left, where it would keep the hole's pages touched and split the hole, so that
  /// the next large request would need new pages elsewhere (PyTorch keeps small and large pools for the
  /// same reason). When the small region is full, small requests are carved from the large one. Off:
  /// one region for every size.
  bool small_region = true;
  /// Paged backends, with small_region: a small request whose own region has no mapped room takes a
  /// free block of the large region whose pages are mapped already (the spare end of a large block's
  /// last page, or idle pages a freed large block left) before a page is mapped for it, so small
  /// blocks fill pages large blocks hold instead of pages of their own. Measured (bench/RESULTS.md,
  /// ninth session): 1-4% less memory held on five of ten traces (bert_infer_varlen 1.185 -> 1.164 of
  /// its live peak on the H200, gpt2_generate_varlen 1.063 -> 1.050, cnn_train 1.066 -> 1.022), up to
  /// 0.001 more on two, for 1-19% more host time per warm operation: in a loop, the small requests
  /// that overflow their region take the slow path every step. Off by default, where host time is the
  /// point; stash.torch turns it on (PyTorch's own allocator takes ten times stash's host time, so
  /// there the memory is worth more). Not with max_held_over_live: there idle pages are what blocks
  /// needing pages are backed with, and taking them for small blocks held ddp_gpt2_rank0 past its bound.
  bool small_fill_mapped = false;
  /// Paged backends, with small_region, when small_fill_mapped is off (SIZE_MAX: off; 8 KiB by
  /// default): a small request fills mapped memory of the large region as small_fill_mapped says,
  /// before a page is mapped for it in its own region, but one of at most this many bytes never into
  /// the large region's top block (the untouched rest of the range). A tiny block at the top's start
  /// keeps the top's first page touched under the next large block, where hundreds like it would share
  /// a page of the small region; a request of 8 KiB up to half a page is a real share of a new page
  /// wherever it goes. At 8 KiB (simulated device) every trace's cold reserved/live is at or under the
  /// code before streams' (issue 7's target; off: bert_infer_varlen 1.1852 against 1.1722,
  /// gpt2_varlen_e2e 1.1116 against 1.1063), the warm replays map pages in the first only, and the
  /// settled figures are lower on 8 traces. The cost is host time: requests that overflow the small
  /// region take the mapped fit and a split and merge in the large region every step (effnet +13%, vit
  /// +8% instructions per warm op over off). On an H200, 16 rounds beside the code before streams and
  /// PyTorch in one run, warm replays took 0.81-1.06x the time of the code before streams on every
  /// trace (off: 0.79-1.06x) and 7.9-9.8x less than PyTorch's (off: 7.6-10.1x; bench/RESULTS.md,
  /// twenty-second session), so it is on by default since that session. Until the twenty-first session
  /// requests of at most the bound never filled; the small region then crept for them while the
  /// layout settled (resnet50 7.6x PyTorch's warm speed on an H200, twentieth session).
  std::size_t fill_mapped_above = 8 * 1024;
  /// Stream-ordered compositions with a segment backend: when no block usable on the requesting
  /// stream T is cached and no other stream's free has completed, take a block freed on another
  /// stream S by making T wait for S's event on the GPU (cudaStreamWaitEvent, RMM's way) before new
  /// memory is asked for. Off: T then never waits for S's unrelated work (README, "Stream order").
  bool cross_stream_wait = false;
  /// Stream-ordered compositions: the free of a block that record_stream named other streams for
  /// records an event on each of those streams itself, so the block comes back once their work is done
  /// even when they never call the allocator (a communication or copy stream). The caller promises that
  /// those streams are alive at the free: PyTorch's contract, whose own allocator records the same
  /// events, and which its plug-in (stash.torch) turns this on for. Off: such a stream's epoch is
  /// closed at its next call, or by empty_cache() or the out-of-memory retry, and the free never uses
  /// its handle (a stream may then be destroyed right after its last call).
  bool free_records_used_streams = false;
  /// Stream-ordered compositions with a backend that can map a chunk at two addresses
  /// (remapping_paged_backend: cuda_vmm_backend, the simulated paged backend): where a block of at
  /// least remap_min_pages pages would move a page and no idle page is free of pending frees, a chunk
  /// under a free block pending on the requesting stream itself is mapped at the new address too
  /// (stream order makes its use there safe); its old address stays out of every free list until that
  /// free's epoch has completed, and is unmapped then, at a later slow path (never a host wait). Off by
  /// default: with events late it lowers ddp_gpt2_rank0 a little and raises gpt2_varlen_e2e's settled
  /// peak by 4% (bench/RESULTS.md, "Remapping pages under pending frees").
  bool remap_pending_pages = false;
  /// With remap_pending_pages: only blocks of at least this many pages remap (512 MiB with 2 MiB
  /// pages); for smaller ones the pages taken were wanted back in place a few requests later.
  std::size_t remap_min_pages = 256;
  /// With remap_pending_pages: only chunks of free blocks at least this many epochs older than the
  /// requesting stream's open epoch. The stream's open epoch is closed before its pages are backed, so
  /// 1 takes every pending free of the stream and 2 spares those of the latest epoch.
  std::uint64_t remap_min_age = 1;
  /// Paged backends that keep a chunk mapped at several addresses (aliasing_paged_backend:
  /// cuda_vmm_backend, the simulated paged backend): an idle chunk moved to where a block needs pages
  /// stays mapped at its old address too, as an inactive alias that no block may use (its pages read as
  /// unmapped). A block placed there later takes the chunk back without a driver call when nothing
  /// uses it at its other address (no live block, no free pending on the GPU); otherwise the alias is
  /// unmapped and the pages backed as today. So a workload whose layout repeats moves its pages by
  /// switching addresses, not by calling the driver: with max_held_over_live (which moves pages in every
  /// replay) the memory held stays at that bound and the moves stop costing. No physical memory is
  /// added; each alias costs a mapping. Not with remap_pending_pages (invalid_option). Off by default.
  bool keep_page_aliases = false;
};

/// Throws invalid_option for a value no allocator can use: page_slack or max_held_over_live negative,
/// infinite or not a number (a finite value of any size is used as given: a slack too large to reach
/// never moves a page). caching_allocator's constructor calls it; the C interface checks its options
/// with it too. Sizes of every kind are used as given (0 for the counts means what each says).
inline void check_options(const caching_options& o) {
  auto check_ratio = [](const char* name, double value) {
    if (!std::isfinite(value) || value < 0)
      throw invalid_option(name, std::to_string(value) + " is not a finite number >= 0");
  };
  check_ratio("page_slack", o.page_slack);
  check_ratio("max_held_over_live", o.max_held_over_live);
  if (o.keep_page_aliases && o.remap_pending_pages)
    throw invalid_option("keep_page_aliases", "cannot be combined with remap_pending_pages");
}

}  // namespace stash
