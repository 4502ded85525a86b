// Randomized, model-checked driver for stash::timeline (and timeline_sampler).
// Usage: timeline_driver SEED STEPS [threads]   (threads > 0: that many recorders + a page writer + a
// sampler at once, for TSan; the figures are checked once they have all stopped)
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/timeline.hpp"

static unsigned long long g_seed;
static long g_step;
#define CHECKF(c, what)                                                                                         \
  do {                                                                                                          \
    if (!(c)) {                                                                                                 \
      std::fprintf(stderr, "FAIL seed=%llu step=%ld line %d: %s :: %s\n", g_seed, g_step, __LINE__, #c, std::string(what).c_str()); \
      std::exit(1);                                                                                             \
    }                                                                                                           \
  } while (0)

static std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

struct model_sample {
  double x;
  std::size_t live, reserved;
};

static double random_x(std::mt19937_64& rng, int regime) {
  std::uniform_real_distribution<double> u(0, 1);
  switch (regime) {
    case 0: return std::floor(u(rng) * 1000);
    case 1: return u(rng) * 1e-9;
    case 2: return (u(rng) - 0.5) * 1e308 * 3.5;  // the whole finite range, both signs
    case 3: return 1e300;                          // one x again and again
    case 4: return (u(rng) - 0.5) * 1e40;
    default: return std::numeric_limits<double>::max() * (rng() % 2 ? 1 : -1);
  }
}

static void check_page(const std::string& page, const std::vector<std::vector<model_sample>>& model, std::size_t max_points) {
  CHECKF(page.starts_with("<!DOCTYPE html>") && page.ends_with("</body></html>\n"), "page shape");
  CHECKF(count(page, "<svg") == model.size(), "one panel per series");
  for (const char* bad : {"nan", "inf"})
    if (auto at = page.find(bad); at != std::string::npos)
      CHECKF(false, std::string(bad) + " in the page: ..." + page.substr(at > 80 ? at - 80 : 0, 160));
  // Every polyline has at most max_points points.
  static const std::regex poly("points=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(page.begin(), page.end(), poly); it != std::sregex_iterator(); ++it) {
    const std::string pts = (*it)[1];
    CHECKF(count(pts, ",") <= max_points, "more points than max_points");
    (void)0;
  }
  for (std::size_t i = 0; i < model.size(); ++i) {
    if (model[i].empty()) continue;
    std::size_t pl = 0, pr = 0;
    for (const auto& s : model[i]) pl = std::max(pl, s.live), pr = std::max(pr, s.reserved);
    const std::string want = std::to_string(model[i].size()) + " samples; peak live " + std::to_string(pl) +
                             " bytes, peak reserved " + std::to_string(pr) + " bytes";
    CHECKF(page.find(want) != std::string::npos, "caption of series " + std::to_string(i) + ": " + want);
  }
}

int main(int argc, char** argv) {
  g_seed = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 1;
  const long steps = argc > 2 ? std::strtol(argv[2], nullptr, 0) : 2000;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 0;
  std::mt19937_64 rng(g_seed);
  alarm(120);  // a page that never ends is a failure (SIGALRM)

  if (threads > 0) {
    stash::timeline tl;
    stash::host_caching_allocator pool;
    std::vector<stash::timeline::series_id> ids;
    for (int t = 0; t < threads; ++t) ids.push_back(tl.add_series("t" + std::to_string(t)));
    const auto pool_id = tl.add_series("pool", pool);
    std::atomic<bool> stop{false};
    std::atomic<long> sampled{0};
    std::vector<std::thread> ts;
    {
      stash::timeline_sampler sampler(std::chrono::microseconds(200), [&] {
        tl.sample(pool_id, pool, true);
        ++sampled;
      });
      for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
          std::mt19937_64 r(g_seed * 31 + t);
          std::vector<void*> mine;
          for (long k = 0; k < steps; ++k) {
            tl.record(ids[t], static_cast<double>(k), r() % 1000, r() % 1000);
            if (k % 7 == 0) mine.push_back(pool.allocate(1 + r() % 100000));
            if (k % 11 == 0 && !mine.empty()) pool.deallocate(mine.back()), mine.pop_back();
            try {
              tl.record(ids.size() + 5, 0, 0, 0);
              CHECKF(false, "bad series accepted");
            } catch (const stash::error&) {
            }
          }
          for (void* p : mine) pool.deallocate(p);
        });
      std::thread writer([&] {
        while (!stop) (void)tl.html("t", 1 + rng() % 50);
      });
      for (auto& t : ts) t.join();
      stop = true;
      writer.join();
    }
    for (int t = 0; t < threads; ++t) CHECKF(tl.samples(ids[t]).size() == static_cast<std::size_t>(steps), "samples lost");
    CHECKF(tl.samples(pool_id).size() == static_cast<std::size_t>(sampled.load()), "sampler samples");
    std::printf("timeline threads=%d seed %llu: ok, %ld sampler samples\n", threads, g_seed, sampled.load());
    return 0;
  }

  stash::timeline tl("steps");
  std::vector<std::vector<model_sample>> model;
  long pages = 0, refused = 0;
  for (g_step = 0; g_step < steps; ++g_step) {
    const unsigned op = rng() % 100;
    if (op < 5 || model.empty()) {
      const std::size_t page = rng() % 3 == 0 ? (std::size_t{2} << 20) : 0;
      const auto id = tl.add_series("series " + std::to_string(model.size()), page, "g" + std::to_string(rng() % 3));
      CHECKF(id == model.size(), "series id");
      model.emplace_back();
    } else if (op < 80) {
      const std::size_t id = rng() % model.size();
      const int regime = static_cast<int>(rng() % 6);
      const double x = random_x(rng, regime);
      const std::size_t live = rng() % 4 == 0 ? SIZE_MAX - rng() % 5 : rng() % (std::size_t{1} << (rng() % 64));
      const std::size_t reserved = rng() % 4 == 0 ? SIZE_MAX - rng() % 5 : rng() % (std::size_t{1} << (rng() % 64));
      if (rng() % 2) tl.record(id, x, live, reserved);
      else tl.record(id, x, live, reserved, rng() % 1000);
      model[id].push_back({x, live, reserved});
    } else if (op < 88) {  // refused input changes nothing
      const unsigned k = rng() % 4;
      try {
        if (k == 0) tl.record(model.size() + rng() % 3, 1, 1, 1);
        else if (k == 1) tl.record(0, std::numeric_limits<double>::quiet_NaN(), 1, 1);
        else if (k == 2) (void)tl.samples(model.size() + rng() % 100);
        else tl.record(rng() % model.size(), -std::numeric_limits<double>::infinity(), 1, 1, 1);
        CHECKF(false, "refused input accepted");
      } catch (const stash::error&) {
        ++refused;
      } catch (const std::exception& e) {
        CHECKF(false, std::string("not a stash::error: ") + e.what());
      }
    } else if (op < 95) {
      const std::size_t max_points = rng() % 3 == 0 ? 1 + rng() % 4 : 1 + rng() % 2000;
      const std::string page = tl.html("page", max_points);
      check_page(page, model, max_points);
      ++pages;
    } else {
      const std::size_t id = rng() % model.size();
      const auto v = tl.samples(id);
      CHECKF(v.size() == model[id].size(), "sample count");
      for (std::size_t i = 0; i < v.size(); ++i)
        CHECKF(v[i].x == model[id][i].x && v[i].live_bytes == model[id][i].live && v[i].reserved_bytes == model[id][i].reserved, "sample");
    }
  }
  try {
    (void)tl.html("zero", 0);
    CHECKF(false, "max_points 0 accepted");
  } catch (const stash::error&) {
  }
  std::printf("timeline seed %llu: %ld steps ok, %zu series, %ld pages checked, %ld refusals\n", g_seed, steps, model.size(), pages, refused);
  return 0;
}
