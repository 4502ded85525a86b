// stash::stream and the ordering policies on their own: the host policy completes everything at
// once, the simulated one completes exactly what the test says, in stream order.
#include <catch2/catch.hpp>

#include <functional>
#include <stdexcept>
#include <type_traits>

#include "stash/error.hpp"
#include "stash/ordering/host_ordering.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "stash/stream.hpp"

namespace {

// What a cudaStream_t is, declared as CUDA declares it (this file does not include CUDA).
using fake_cuda_stream_t = CUstream_st*;

fake_cuda_stream_t handle(std::uintptr_t v) { return reinterpret_cast<fake_cuda_stream_t>(v); }

void takes_stream(stash::stream) {}

}  // namespace

TEST_CASE("stream: a value naming a cudaStream_t, default is the legacy default stream", "[stream]") {
  STATIC_REQUIRE(std::is_convertible_v<fake_cuda_stream_t, stash::stream>);
  STATIC_REQUIRE(std::is_trivially_copyable_v<stash::stream>);
  STATIC_REQUIRE(sizeof(stash::stream) == sizeof(void*));
  takes_stream(handle(0x1234));  // implicit from cudaStream_t

  const stash::stream legacy;
  CHECK(legacy.native_handle() == nullptr);
  CHECK(legacy.key() == 0);
  CHECK(legacy == stash::stream(nullptr));

  const stash::stream per_thread = stash::stream::per_thread();
  CHECK(per_thread.key() == 2);  // cudaStreamPerThread
  CHECK(per_thread != legacy);

  const stash::stream s = handle(0x7f00'1000);
  CHECK(s.native_handle() == handle(0x7f00'1000));
  CHECK(s == stash::stream(handle(0x7f00'1000)));
  CHECK(s != legacy);
  CHECK(std::hash<stash::stream>{}(s) == std::hash<stash::stream>{}(stash::stream(handle(0x7f00'1000))));
}

TEST_CASE("host_ordering: every event is complete when recorded and nothing costs a thing", "[ordering]") {
  STATIC_REQUIRE(stash::ordering_policy<stash::host_ordering>);
  STATIC_REQUIRE(stash::host_ordering::host_ordered);
  STATIC_REQUIRE(std::is_empty_v<stash::host_ordering>);
  stash::host_ordering o;
  const auto e = o.record(handle(0x40));
  CHECK(o.query(e));
  CHECK_FALSE(o.is_capturing(handle(0x40)));
  CHECK_NOTHROW(o.check(handle(0xdead)));  // streams are names only
  constexpr bool complete_at_compile_time = stash::host_ordering{}.query({});
  STATIC_REQUIRE(complete_at_compile_time);
}

TEST_CASE("simulated_ordering: an event completes when the test says, and in stream order", "[ordering]") {
  STATIC_REQUIRE(stash::ordering_policy<stash::simulated_ordering>);
  STATIC_REQUIRE_FALSE(stash::simulated_ordering::host_ordered);
  stash::simulated_ordering o;
  const stash::stream s = o.make_stream(), t = o.make_stream();
  REQUIRE(s != t);

  const auto s1 = o.record(s), t1 = o.record(t), s2 = o.record(s), s3 = o.record(s);
  CHECK(o.records() == 4);
  CHECK(o.recorded_on(s) == 3);
  CHECK(o.stream_of(t1) == t);
  CHECK_FALSE(o.query(s1));
  CHECK_FALSE(o.query(t1));
  CHECK(o.queries() == 2);

  o.complete(s2);  // and s1 before it on s; not s3 after it, not t1 on another stream
  CHECK(o.query(s1));
  CHECK(o.query(s2));
  CHECK_FALSE(o.query(s3));
  CHECK_FALSE(o.query(t1));

  o.complete_stream(t);
  CHECK(o.query(t1));
  CHECK_FALSE(o.query(s3));

  CHECK(o.host_waits() == 0);
  o.synchronize(s3);  // a host wait completes what it waits for
  CHECK(o.host_waits() == 1);
  CHECK(o.query(s3));
}

TEST_CASE("simulated_ordering: waits are logged, releases counted, capture misuse counted", "[ordering]") {
  stash::simulated_ordering o;
  const stash::stream s = o.make_stream(), t = o.make_stream();
  const auto e = o.record(s);
  o.wait(t, e);
  REQUIRE(o.waits().size() == 1);
  CHECK(o.waits()[0].waiter == t);
  CHECK(o.waits()[0].event == e);
  CHECK_FALSE(o.query(e));  // a wait makes t wait, not e complete

  CHECK(o.unreleased_events() == 1);
  o.release(e);
  CHECK(o.unreleased_events() == 0);
  CHECK(o.bad_releases() == 0);
  o.release(e);
  CHECK(o.bad_releases() == 1);

  o.set_capturing(s, true);
  CHECK(o.is_capturing(s));
  CHECK_FALSE(o.is_capturing(t));
  CHECK(o.capture_violations() == 0);
  (void)o.record(s);  // CUDA forbids recording for ordering on a capturing stream
  o.wait(s, o.record(t));  // and a capture may not wait on an outside event
  CHECK(o.capture_violations() == 2);
  o.set_capturing(s, false);
  CHECK_FALSE(o.is_capturing(s));
  (void)o.record(s);
  CHECK(o.capture_violations() == 2);
}

TEST_CASE("simulated_ordering: check() knows the default streams and the ones made, nothing else",
          "[ordering]") {
  stash::simulated_ordering o;
  CHECK_NOTHROW(o.check(stash::stream{}));
  CHECK_NOTHROW(o.check(stash::stream::per_thread()));
  CHECK_NOTHROW(o.check(handle(1)));  // cudaStreamLegacy
  const stash::stream s = o.make_stream();
  CHECK_NOTHROW(o.check(s));
  try {
    o.check(handle(0xbad0));
    FAIL("a handle never made was accepted");
  } catch (const stash::invalid_stream& e) {
    CHECK(e.handle() == handle(0xbad0));
  }
  CHECK(o.rejected_streams() == 1);
  CHECK(o.destroyed_stream_uses() == 0);
}

TEST_CASE("simulated_ordering: every call that passes a destroyed stream's handle is a hard failure",
          "[ordering]") {
  stash::simulated_ordering o;
  const stash::stream s = o.make_stream(), t = o.make_stream();
  const auto before = o.record(s);  // events outlive their stream, as in CUDA
  o.destroy(s);
  CHECK_THROWS_AS(o.check(s), std::logic_error);
  CHECK_THROWS_AS(o.is_capturing(s), std::logic_error);
  CHECK_THROWS_AS(o.record(s), std::logic_error);
  CHECK_THROWS_AS(o.wait(s, before), std::logic_error);
  CHECK(o.destroyed_stream_uses() == 4);
  CHECK(o.records() == 1);
  CHECK(o.waits().empty());

  CHECK_FALSE(o.query(before));  // the event itself is still valid: queried, waited for, released
  o.wait(t, before);
  CHECK(o.synchronize_device());
  CHECK(o.query(before));
  o.release(before);
  CHECK(o.destroyed_stream_uses() == 4);
  CHECK(o.bad_releases() == 0);

  const stash::stream again = o.reuse_handle(s);  // a new stream the runtime gave the same handle
  CHECK(again == s);
  CHECK_NOTHROW(o.check(again));
  CHECK(o.destroyed_stream_uses() == 4);
}

TEST_CASE(
    "simulated_ordering: a device-wide synchronize completes every event, and is refused during capture",
    "[ordering]") {
  stash::simulated_ordering o;
  const stash::stream s = o.make_stream(), t = o.make_stream();
  const auto on_s = o.record(s), on_t = o.record(t);
  o.set_capturing(t, true);
  CHECK_FALSE(o.synchronize_device());
  CHECK_FALSE(o.query(on_s));
  CHECK(o.device_syncs() == 0);
  CHECK(o.host_waits() == 0);
  o.set_capturing(t, false);
  CHECK(o.synchronize_device());
  CHECK(o.query(on_s));
  CHECK(o.query(on_t));
  CHECK(o.device_syncs() == 1);
  CHECK(o.host_waits() == 1);
  o.release(on_s);
  o.release(on_t);
}
