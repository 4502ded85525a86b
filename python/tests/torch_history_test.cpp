// stash.torch's memory history (python/src/stash/_torch_history.h) without a GPU: built against PyTorch's
// headers and linked with its libc10 by python/tests/torch_hooks_compile.sh (CI's torch_hooks_compile).
// What recordHistory's arguments do to the trace: entries and their fields, the ring of max_entries,
// a smaller limit keeping the latest and a larger one growing after a wrap, clear_history, skip_actions,
// the stacks kept for live blocks under each context level, stacks forgotten, oom and snapshot entries,
// devices, and the order of work when a recorder or the heap fails (operator new fails on demand here).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "_torch_history.h"

// g++ 12 takes the replaced operators below for a new-delete mismatch once they are inlined into the
// library's containers; they are the one pair this program uses.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

/// Counts down the allocations left before operator new fails (negative: never fails).
long allocations_before_failure = -1;

void* operator new(std::size_t size) {
  if (allocations_before_failure == 0) throw std::bad_alloc();
  if (allocations_before_failure > 0) --allocations_before_failure;
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using stash_torch::memory_history;
using stash_torch::record_context;
using stash_torch::trace_entry;

int failures = 0;

#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                                     \
    }                                                                                 \
  } while (0)

/// A stack as PyTorch's recorder gives one, numbered in the order gathered.
struct numbered_stack final : c10::GatheredContext {
  explicit numbered_stack(int n) : n(n) {}
  int n;
};
int stacks_gathered = 0;
std::shared_ptr<c10::GatheredContext> record_stack() { return std::make_shared<numbered_stack>(++stacks_gathered); }
std::shared_ptr<c10::GatheredContext> failing_recorder() { throw std::runtime_error("recorder failed"); }

int stack_number(const std::shared_ptr<c10::GatheredContext>& c) {
  auto* s = dynamic_cast<numbered_stack*>(c.get());
  return s ? s->n : 0;
}

void* at(std::uintptr_t a) { return reinterpret_cast<void*>(a); }
void* const stream = at(0x5000);

/// Allocation as _torch_hooks.cpp's alloc_recorded makes it: the stack first, then the entry.
void allocate(memory_history& h, std::uintptr_t p, std::size_t size, int device = 0) {
  h.allocated(at(p), size, device, stream, h.stack_for_allocation());
}

std::vector<trace_entry::Action> actions(const std::vector<trace_entry>& trace) {
  std::vector<trace_entry::Action> out;
  for (const auto& e : trace) out.push_back(e.action_);
  return out;
}

void off_records_nothing() {
  memory_history h;
  CHECK(!h.recording());
  CHECK(!h.keeps_stacks());
  CHECK(h.stack_for_allocation() == nullptr);
  CHECK(h.traces(1).size() == 1 && h.traces(1)[0].empty());
}

void entries_carry_what_the_hooks_saw() {
  memory_history h;
  stacks_gathered = 0;
  h.configure(true, record_stack, 100, record_context::ALL, false, {});
  CHECK(h.recording());
  allocate(h, 0x1000, 512);
  h.freed(at(0x1000), 512, 0, stream);
  const auto trace = h.traces(1)[0];
  CHECK((actions(trace) == std::vector<trace_entry::Action>{trace_entry::ALLOC, trace_entry::FREE_REQUESTED,
                                                             trace_entry::FREE_COMPLETED}));
  for (const auto& e : trace) {
    CHECK(e.addr_ == 0x1000 && e.size_ == 512 && e.device_ == 0 && e.stream_ == stream);
    CHECK(e.time_.t_ > 1600000000LL * 1000000LL);  // microseconds since the epoch, after 2020
  }
  CHECK(stack_number(trace[0].context_) == 1);  // the stack of the allocation
  CHECK(stack_number(trace[1].context_) == 2);  // context "all": the stack of the free, on both entries
  CHECK(stack_number(trace[2].context_) == 2);
  CHECK(trace[0].time_.t_ <= trace[2].time_.t_);
}

void the_ring_keeps_the_latest_and_a_smaller_limit_keeps_fewer() {
  memory_history h;
  h.configure(true, record_stack, 4, record_context::NEVER, false, {});
  for (std::uintptr_t i = 1; i <= 6; ++i) allocate(h, i * 0x100, i);
  auto trace = h.traces(1)[0];
  CHECK(trace.size() == 4);
  for (std::size_t i = 0; i < trace.size(); ++i) CHECK(trace[i].size_ == i + 3);  // 3, 4, 5, 6: oldest first
  CHECK(trace[0].context_ == nullptr);  // context NEVER: no stacks
  CHECK(!h.keeps_stacks());
  h.configure(true, record_stack, 2, record_context::NEVER, false, {});
  trace = h.traces(1)[0];
  CHECK(trace.size() == 2 && trace[0].size_ == 5 && trace[1].size_ == 6);
  allocate(h, 0x900, 7);
  trace = h.traces(1)[0];
  CHECK(trace.size() == 2 && trace[0].size_ == 6 && trace[1].size_ == 7);
  h.configure(true, record_stack, 0, record_context::NEVER, false, {});  // at least one entry is kept
  CHECK(h.traces(1)[0].size() == 1 && h.traces(1)[0][0].size_ == 7);
}

void a_larger_limit_after_a_wrap_keeps_the_order() {
  memory_history h;
  h.configure(true, record_stack, 4, record_context::NEVER, false, {});
  for (std::uintptr_t i = 1; i <= 6; ++i) allocate(h, i * 0x100, i);  // wrapped: 3, 4, 5, 6
  h.configure(true, record_stack, 10, record_context::NEVER, false, {});
  allocate(h, 0x700, 7);
  auto trace = h.traces(1)[0];
  CHECK(trace.size() == 5);
  for (std::size_t i = 0; i < trace.size(); ++i) CHECK(trace[i].size_ == i + 3);  // 3..7, oldest first
  for (std::uintptr_t i = 8; i <= 14; ++i) allocate(h, i * 0x100, i);  // fills 10, then wraps again
  trace = h.traces(1)[0];
  CHECK(trace.size() == 10);
  for (std::size_t i = 0; i < trace.size(); ++i) CHECK(trace[i].size_ == i + 5);  // 5..14
}

void stopping_or_clear_history_empties_the_trace() {
  memory_history h;
  h.configure(true, record_stack, 10, record_context::NEVER, false, {});
  for (std::uintptr_t i = 1; i <= 3; ++i) allocate(h, i * 0x100, i);
  h.configure(true, record_stack, 2, record_context::NEVER, false, {});  // a smaller ring: the latest
  CHECK(h.traces(1)[0].size() == 2 && h.traces(1)[0][0].size_ == 2);
  h.configure(true, record_stack, 10, record_context::NEVER, true, {});  // clear_history
  CHECK(h.traces(1)[0].empty());
  allocate(h, 0x100, 1);
  h.configure(false, nullptr, 1, record_context::NEVER, false, {});  // enabled=None, as PyTorch passes it
  CHECK(!h.recording());
  CHECK(h.traces(1)[0].empty());  // as PyTorch's own allocator empties it (run X3)
}

void skipped_actions_are_left_out_and_an_unknown_one_changes_nothing() {
  memory_history h;
  h.configure(true, record_stack, 10, record_context::NEVER, false, {"free_requested", "alloc"});
  allocate(h, 0x1000, 8);
  h.freed(at(0x1000), 8, 0, stream);
  CHECK((actions(h.traces(1)[0]) == std::vector<trace_entry::Action>{trace_entry::FREE_COMPLETED}));
  bool threw = false;
  try {
    h.configure(false, nullptr, 10, record_context::NEVER, true, {"no_such_action"});
  } catch (const c10::Error&) {
    threw = true;
  }
  CHECK(threw);
  CHECK(h.recording());                     // still on, as before the call
  CHECK(h.traces(1)[0].size() == 1);        // not cleared
  allocate(h, 0x2000, 8);                   // alloc still skipped
  CHECK(h.traces(1)[0].size() == 1);
}

void stacks_are_kept_for_live_blocks_by_context_level() {
  memory_history h;
  stacks_gathered = 0;
  h.configure(true, record_stack, 10, record_context::STATE, false, {});
  allocate(h, 0x1000, 8);
  CHECK(stack_number(h.stack_of(at(0x1000))) == 1);  // kept for the snapshot's block
  CHECK(h.traces(1)[0][0].context_ == nullptr);      // "state": not in the trace
  CHECK(h.keeps_stacks());
  h.freed(at(0x1000), 8, 0, stream);
  CHECK(h.stack_of(at(0x1000)) == nullptr);
  CHECK(!h.keeps_stacks());
  CHECK(h.traces(1)[0][1].context_ == nullptr);  // no stack gathered for a free below "all"
  CHECK(stacks_gathered == 1);

  h.configure(true, record_stack, 10, record_context::ALLOC, false, {});
  allocate(h, 0x2000, 8);
  CHECK(stack_number(h.traces(1)[0].back().context_) == 2);  // "alloc": in the trace too
  // Recording stops: the live block keeps its stack until its free, which records nothing.
  h.configure(false, nullptr, 10, record_context::NEVER, false, {});
  CHECK(h.keeps_stacks());
  CHECK(stack_number(h.stack_of(at(0x2000))) == 2);
  const std::size_t entries = h.traces(1)[0].size();
  h.freed(at(0x2000), 8, 0, stream);
  CHECK(!h.keeps_stacks());
  CHECK(h.traces(1)[0].size() == entries);
}

void out_of_memory_entries_and_devices() {
  memory_history h;
  h.configure(true, record_stack, 10, record_context::NEVER, false, {});
  h.out_of_memory(std::size_t{1} << 50, 1, stream, 12345);
  allocate(h, 0x1000, 8, 0);
  const auto traces = h.traces(2);
  CHECK(traces.size() == 2 && traces[0].size() == 1 && traces[1].size() == 1);
  CHECK(traces[1][0].action_ == trace_entry::OOM && traces[1][0].addr_ == 12345 &&
        traces[1][0].size_ == std::size_t{1} << 50 && traces[1][0].device_ == 1);
  CHECK(h.traces(1).size() == 1 && h.traces(1)[0].size() == 1);  // devices beyond the count are left out
}

void a_failing_recorder_leaves_no_stale_stack() {
  memory_history h;
  stacks_gathered = 0;
  h.configure(true, record_stack, 10, record_context::ALL, false, {});
  allocate(h, 0x1000, 8);
  CHECK(h.keeps_stacks());
  h.configure(true, failing_recorder, 10, record_context::ALL, false, {});
  bool threw = false;
  try {
    h.stack_for_allocation();  // before anything is allocated: the hook allocates nothing then
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
  threw = false;
  try {
    h.freed(at(0x1000), 8, 0, stream);  // the hook swallows this; the block is freed regardless
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
  CHECK(h.stack_of(at(0x1000)) == nullptr);  // dropped before the recorder ran
  CHECK(!h.keeps_stacks());
  CHECK(h.traces(1)[0].size() == 1);  // the allocation's entry alone
}

void a_failing_heap_records_nothing_and_keeps_no_stack() {
  memory_history h;
  h.configure(true, record_stack, 10, record_context::ALL, false, {});
  auto stack = h.stack_for_allocation();
  allocations_before_failure = 1;  // the stack's map node, then the device's ring fails
  bool threw = false;
  try {
    h.allocated(at(0x1000), 8, 0, stream, stack);
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  allocations_before_failure = -1;
  CHECK(threw);
  CHECK(h.stack_of(at(0x1000)) == nullptr);  // the stack went with the entry: the hook frees the block
  CHECK(!h.keeps_stacks());
  CHECK(h.traces(1)[0].empty());
  allocate(h, 0x1000, 8);  // the heap back: recorded as ever
  CHECK(h.traces(1)[0].size() == 1 && h.keeps_stacks());
}

void forgotten_stacks_and_snapshot_entries() {
  memory_history h;
  h.configure(true, record_stack, 10, record_context::STATE, false, {});
  allocate(h, 0x1000, 8);
  allocate(h, 0x2000, 8);
  h.forget(at(0x1000));  // a checkpoint freed it, past the free hook
  CHECK(h.stack_of(at(0x1000)) == nullptr);
  CHECK(h.stack_of(at(0x2000)) != nullptr && h.keeps_stacks());
  h.forget(at(0x2000));
  CHECK(!h.keeps_stacks());
  CHECK(h.traces(1)[0].size() == 2);  // forgetting records nothing
  h.snapshot_taken(0, 4096, c10::MempoolId_t{7, 1});
  auto trace = h.traces(1)[0];
  CHECK(trace.size() == 3 && trace.back().action_ == trace_entry::SNAPSHOT && trace.back().size_ == 4096 &&
        trace.back().addr_ == 0 && trace.back().mempool_ == c10::MempoolId_t(7, 1));
  h.configure(false, nullptr, 10, record_context::NEVER, false, {});
  h.snapshot_taken(0, 4096, c10::MempoolId_t{0, 0});  // not recording: nothing
  CHECK(h.traces(1)[0].empty());
}

}  // namespace

int main() {
  off_records_nothing();
  entries_carry_what_the_hooks_saw();
  the_ring_keeps_the_latest_and_a_smaller_limit_keeps_fewer();
  stopping_or_clear_history_empties_the_trace();
  skipped_actions_are_left_out_and_an_unknown_one_changes_nothing();
  stacks_are_kept_for_live_blocks_by_context_level();
  out_of_memory_entries_and_devices();
  a_failing_recorder_leaves_no_stale_stack();
  a_larger_limit_after_a_wrap_keeps_the_order();
  a_failing_heap_records_nothing_and_keeps_no_stack();
  forgotten_stacks_and_snapshot_entries();
  if (failures) {
    std::fprintf(stderr, "torch_history_test: %d checks failed\n", failures);
    return 1;
  }
  std::puts("torch_history_test: all checks passed");
  return 0;
}
