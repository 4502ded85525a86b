#pragma once
// The options the page-sharing tests run under (host and GPU, aliases and remaps), in one place: every
// page move allowed and pages mapped alone in one region, so that a block's pages are those its bytes
// cover and each test can say which page goes where.
#include <cstddef>

#include "stash/caching_options.hpp"

namespace stash_test {

/// caching_options::keep_page_aliases with every idle page moved before a new one is mapped
/// (max_held_over_live 1), chunks of `chunk_pages`.
inline stash::caching_options aliasing(std::size_t chunk_pages = 1) {
  stash::caching_options o;
  o.keep_page_aliases = true;
  o.max_held_over_live = 1.0;
  o.max_chunk_pages = chunk_pages;
  o.small_region = false;
  return o;
}

/// caching_options::remap_pending_pages for blocks of any size and frees one epoch old, with no slack
/// and no ration of moves, chunks of `chunk_pages`.
inline stash::caching_options remapping(std::size_t chunk_pages = 1) {
  stash::caching_options o;
  o.remap_pending_pages = true;
  o.remap_min_age = 1;
  o.remap_min_pages = 1;
  o.page_slack = 0;
  o.pages_between_moves = 0;
  o.max_chunk_pages = chunk_pages;
  o.small_region = false;
  return o;
}

}  // namespace stash_test
