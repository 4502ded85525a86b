#pragma once
// stash::timeline: memory over time, per allocator, written as one self-contained HTML page (inline
// SVG, no script, nothing fetched from the network) that any browser opens.
//
//   stash::timeline tl;                                  // x axis: seconds since tl was made
//   auto dev = tl.add_series("device 0", pool);          // paged pools also show mapped pages
//   stash::timeline_sampler sampler(std::chrono::milliseconds(10), [&] { tl.sample(dev, pool); });
//   ... run the program ...
//   tl.write_html("memory.html", "my training run");
//
// Each series is one panel: live bytes (as asked for), reserved bytes (held from the driver) and, for
// a paged allocator, the mapped pages on the right axis; the peak of each is marked with its value.
// Panels of one group share their scales, so allocators compare at a glance. stash-replay --timeline
// records one series per allocator and trace, one sample per operation.
//
// Samples are kept whole; the page draws at most `max_points` per line, each point the largest value
// of the samples it stands for, so a peak is never smoothed away.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "stash/backend/backend.hpp"
#include "stash/error.hpp"
#include "stash/memory_report.hpp"

namespace stash {

struct timeline_sample {
  double x;                     // seconds, operations, or whatever the timeline's x axis counts
  std::size_t live_bytes;       // as asked for by the callers
  std::size_t reserved_bytes;   // held from the backend
  std::size_t largest_free = 0;  // the largest free block held, where it was sampled (else 0)
};

class timeline {
 public:
  using series_id = std::size_t;

  /// `x_label` names the x axis; sample() records seconds since the timeline was made.
  explicit timeline(std::string x_label = "seconds") : x_label_(std::move(x_label)) {}

  /// A series of its own; `page_bytes` > 0 adds the mapped pages (reserved / page_bytes). Series of
  /// one `group` share their axes' ranges (stash-replay groups by trace).
  series_id add_series(std::string name, std::size_t page_bytes = 0, std::string group = {}) {
    std::lock_guard guard(lock_);
    series_.push_back({std::move(name), page_bytes, std::move(group), {}, 0, 0, false});
    return series_.size() - 1;
  }
  /// A series for `allocator`: its page size when its backend is paged.
  template <class Allocator>
    requires requires(const Allocator& a) { a.stats(); }
  series_id add_series(std::string name, const Allocator& allocator) {
    return add_series(std::move(name), page_bytes_of(allocator));
  }

  /// Records one sample. Thread-safe. Throws stash::error for an x that is not finite or a series
  /// this timeline did not make (nothing is recorded).
  void record(series_id series, double x, std::size_t live_bytes, std::size_t reserved_bytes) {
    check_x(x);
    std::lock_guard guard(lock_);
    at(series).samples.push_back({x, live_bytes, reserved_bytes});
  }
  /// The same with the largest free block held, drawn as a line of its own.
  void record(series_id series, double x, std::size_t live_bytes, std::size_t reserved_bytes,
              std::size_t largest_free) {
    check_x(x);
    std::lock_guard guard(lock_);
    auto& target = at(series);
    target.samples.push_back({x, live_bytes, reserved_bytes, largest_free});
    target.has_largest_free = true;
  }
  /// Records `allocator`'s figures now (live as requested_bytes, reserved), at the seconds elapsed
  /// since the timeline was made.
  /// The allocator's own peaks (which see every operation, not only the sampled moments) are kept
  /// too and printed under the panel.
  /// `largest_free`: also the largest free block held (describe_memory: a walk over every block, and
  /// for a paged allocator over its page table; tens of microseconds to milliseconds per sample).
  template <class Allocator>
  void sample(series_id series, const Allocator& allocator, bool largest_free = false) {
    std::size_t largest = 0;
    if constexpr (requires { describe_memory(allocator); })
      if (largest_free) largest = describe_memory(allocator, 0).largest_free_block;
    const auto s = allocator.stats();
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
    std::lock_guard guard(lock_);
    auto& target = at(series);
    target.samples.push_back({elapsed.count(), s.requested_bytes, s.reserved_bytes, largest});
    target.has_largest_free = target.has_largest_free || largest_free;
    target.reported_peak_live = s.peak_requested_bytes;
    target.reported_peak_reserved = s.peak_reserved_bytes;
  }

  std::size_t series_count() const {
    std::lock_guard guard(lock_);
    return series_.size();
  }
  std::vector<timeline_sample> samples(series_id series) const {
    std::lock_guard guard(lock_);
    return at(series).samples;
  }

  /// The page, as text. `max_points` (at least 1, else stash::error) bounds the points drawn per line.
  std::string html(std::string_view title, std::size_t max_points = 1200) const;

  /// Writes html(title) to `file`; throws stash::error when it cannot.
  void write_html(const std::filesystem::path& file, std::string_view title,
                  std::size_t max_points = 1200) const {
    const std::string page = html(title, max_points);
    std::ofstream out(file, std::ios::binary);
    out.write(page.data(), static_cast<std::streamsize>(page.size()));
    if (!out.flush()) throw error("timeline: cannot write " + file.string());
  }

  template <class Allocator>
  static std::size_t page_bytes_of(const Allocator& allocator) {
    if constexpr (requires { allocator.backend().page_size(); }) {
      if constexpr (paged_backend<std::remove_cvref_t<decltype(allocator.backend())>>)
        return allocator.backend().page_size();
    }
    return 0;
  }

 private:
  static constexpr int max_x_ticks = 64;  // nice_step asks for about 8
  static void check_x(double x) {
    if (!std::isfinite(x)) throw error("timeline: a sample's x must be finite, got " + std::to_string(x));
  }

  struct series {
    std::string name;
    std::size_t page_bytes;
    std::string group;
    std::vector<timeline_sample> samples;
    std::size_t reported_peak_live = 0, reported_peak_reserved = 0;  // from the allocator, by sample()
    bool has_largest_free = false;
  };

  /// The series `id` names; stash::error for an id add_series did not return. Under lock_.
  series& at(series_id id) {
    if (id >= series_.size())
      throw error("timeline: no series " + std::to_string(id) + " (this timeline has " +
                  std::to_string(series_.size()) + ")");
    return series_[id];
  }
  const series& at(series_id id) const { return const_cast<timeline*>(this)->at(id); }

  std::string x_label_;
  std::vector<series> series_;
  mutable std::mutex lock_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

/// Calls `sample` every `interval` on a thread of its own until destroyed (and once more then, so the
/// last state is on the page).
///
/// A callback that throws on the sampler's thread ends the sampling there: the thread calls it no more,
/// and keeps the exception, which failure() returns and rethrow_if_failed() throws (both thread-safe,
/// at any time). The destructor never throws: it skips the final sample once sampling has failed, and
/// an exception from the final sample itself is dropped (a destructor has no way to report it).
class timeline_sampler {
 public:
  timeline_sampler(std::chrono::nanoseconds interval, std::function<void()> sample)
      : sample_(std::move(sample)), thread_([this, interval] { run(interval); }) {}
  timeline_sampler(const timeline_sampler&) = delete;
  timeline_sampler& operator=(const timeline_sampler&) = delete;
  ~timeline_sampler() {
    {
      std::lock_guard guard(lock_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
    if (failure_) return;  // joined: the thread no longer writes it
    try {
      sample_();
    } catch (...) {  // nobody to tell: a throwing destructor would end the program
    }
  }

  /// The exception the callback threw on the sampler's thread, which stopped the sampling; null while
  /// it has thrown none.
  std::exception_ptr failure() const {
    std::lock_guard guard(lock_);
    return failure_;
  }
  /// Throws failure() again, when there is one.
  void rethrow_if_failed() const {
    if (const std::exception_ptr e = failure()) std::rethrow_exception(e);
  }

 private:
  void run(std::chrono::nanoseconds interval) {
    std::unique_lock guard(lock_);
    while (!stop_) {
      guard.unlock();
      try {
        sample_();
      } catch (...) {  // an exception leaving the thread's function would call std::terminate
        guard.lock();
        failure_ = std::current_exception();
        return;
      }
      guard.lock();
      wake_.wait_for(guard, interval, [this] { return stop_; });
    }
  }

  std::function<void()> sample_;
  mutable std::mutex lock_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::exception_ptr failure_;  // under lock_; set once, by the thread, which then ends
  std::thread thread_;  // last: starts once everything it uses is made
};

namespace detail {

inline std::string html_escape(std::string_view s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

/// Bytes in the unit that keeps the number short: "5.48 GiB".
inline std::string human_bytes(double bytes, const char* format = "%.2f %s") {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : format, bytes, units[u]);
  return buf;
}

inline std::string fixed(double v, int decimals = 1) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

/// An x axis label: fixed decimals while the number fits fixed()'s buffer (below 1e21), else in
/// exponent form with the digits that tell one tick from the next ("%.0f" of 2e40 was cut to 31
/// digits, which read as 2e30).
inline std::string tick_label(double x, double step) {
  if (std::abs(x) < 1e21) return fixed(x, step < 1 ? 2 : 0);
  const int digits = std::clamp(static_cast<int>(std::ceil(std::log10(std::abs(x) / step))) + 1, 1, 17);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", digits, x);
  return buf;
}

/// 1, 2 or 5 times a power of ten, so that about `count` steps cover `range`.
inline double nice_step(double range, int count) {
  if (range <= 0) return 1;
  const double raw = range / count;
  double p = 1;
  while (p * 10 <= raw) p *= 10;
  while (p > raw) p /= 10;
  for (const double m : {1.0, 2.0, 5.0, 10.0})
    if (p * m >= raw) return p * m;
  return p * 10;
}

/// At most `max_points` (x, y) pairs: each the largest y of the samples in its stretch of x.
template <class Value>
std::vector<std::pair<double, double>> max_envelope(const std::vector<timeline_sample>& samples, Value value,
                                                    std::size_t max_points) {
  std::vector<std::pair<double, double>> out;
  if (samples.empty()) return out;
  const std::size_t per_point =
      std::max<std::size_t>(1, (samples.size() + max_points - 1) / std::max<std::size_t>(max_points, 1));
  for (std::size_t i = 0; i < samples.size(); i += per_point) {
    const std::size_t end = std::min(samples.size(), i + per_point);
    std::size_t best = i;
    for (std::size_t j = i; j < end; ++j)
      if (value(samples[j]) > value(samples[best])) best = j;
    out.emplace_back(samples[best].x, static_cast<double>(value(samples[best])));
  }
  return out;
}

}  // namespace detail

inline std::string timeline::html(std::string_view title, std::size_t max_points) const {
  if (max_points == 0) throw error("timeline: max_points must be at least 1");
  std::lock_guard guard(lock_);
  using detail::fixed;
  using detail::human_bytes;

  bool any = false;
  for (const auto& s : series_) any = any || !s.samples.empty();
  double x_min = 0, x_max = 1, y_step = 1, y_top = 1, x_step = 1, x_half_span = 0.5;
  // One y scale (bytes) and one x range for every panel of `group`.
  auto set_scales = [&](const std::string& group) {
    double y_max = 0;
    bool first = true;
    for (const auto& s : series_) {
      if (s.group != group) continue;
      for (const auto& p : s.samples) {
        if (first) x_min = x_max = p.x, first = false;
        x_min = std::min(x_min, p.x);
        x_max = std::max(x_max, p.x);
        y_max = std::max(y_max, static_cast<double>(std::max(p.live_bytes, p.reserved_bytes)));
      }
    }
    if (x_max <= x_min) {  // one x: a range around it that stays finite and wider than its rounding
      const double d = std::max(1.0, std::abs(x_min) * 1e-6);
      x_max = x_min + d;
      if (!std::isfinite(x_max)) x_max = x_min, x_min -= d;
    }
    // Grid steps of 1, 2 or 5 times a power of ten in the unit the largest value is shown in.
    double unit = 1;
    while (y_max / unit >= 1024 && unit < 1024.0 * 1024 * 1024 * 1024) unit *= 1024;
    y_step = detail::nice_step(y_max > 0 ? y_max / unit : 1, 5) * unit;
    y_top = std::max(1.0, std::ceil(y_max / y_step)) * y_step;
    // Half the range: x_max - x_min of finite values may overflow to infinity (nice_step never ended).
    x_half_span = x_max / 2 - x_min / 2;
    x_step = detail::nice_step(x_half_span, 4);
  };

  constexpr double width = 960, height = 300, left = 90, right = 80, top = 20, bottom = 44;
  constexpr double plot_w = width - left - right, plot_h = height - top - bottom;
  auto px = [&](double x) { return left + (x / 2 - x_min / 2) / x_half_span * plot_w; };
  auto py = [&](double y) { return top + plot_h - y / y_top * plot_h; };

  std::string out;
  out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>";
  out += detail::html_escape(title);
  out += "</title>\n<style>\n"
         "body{font-family:sans-serif;margin:16px;background:#fff;color:#222}\n"
         "h1{font-size:20px} h2{font-size:16px;margin:18px 0 4px}\n"
         ".legend span{display:inline-block;margin-right:18px}\n"
         ".sw{display:inline-block;width:14px;height:4px;vertical-align:middle;margin-right:5px}\n"
         "svg text{font-size:11px;fill:#444}\n"
         "</style></head><body>\n<h1>";
  out += detail::html_escape(title);
  out +=
      "</h1>\n<p class=\"legend\"><span><i class=\"sw\" style=\"background:#1f77b4\"></i>live bytes "
      "(as asked for)</span><span><i class=\"sw\" style=\"background:#ff7f0e\"></i>reserved bytes (held from "
      "the driver)</span><span><i class=\"sw\" style=\"background:#2ca02c\"></i>mapped pages (paged "
      "allocators, right axis)</span>";
  bool any_largest_free = false;
  for (const auto& s : series_) any_largest_free = any_largest_free || s.has_largest_free;
  if (any_largest_free)
    out += "<span><i class=\"sw\" style=\"background:#9467bd\"></i>largest free block held</span>";
  out += "<span>&#9679; peak</span></p>\n";
  if (!any) out += "<p>No samples were recorded.</p>\n";

  const std::string* group = nullptr;
  for (const auto& s : series_) {
    if (!group || *group != s.group) {
      group = &s.group;
      set_scales(s.group);
    }
    out += "<h2>" + detail::html_escape(s.name) + "</h2>\n";
    out += "<svg width=\"" + fixed(width, 0) + "\" height=\"" +
           fixed(height, 0) + "\" viewBox=\"0 0 " + fixed(width, 0) + " " + fixed(height, 0) + "\">\n";
    out += "<rect x=\"" + fixed(left) + "\" y=\"" + fixed(top) + "\" width=\"" + fixed(plot_w) +
           "\" height=\"" + fixed(plot_h) + "\" fill=\"#fafafa\" stroke=\"#bbb\"/>\n";
    // Grid and axes.
    for (double y = 0; y <= y_top + y_step / 2; y += y_step) {
      out += "<line x1=\"" + fixed(left) + "\" x2=\"" + fixed(left + plot_w) + "\" y1=\"" + fixed(py(y)) +
             "\" y2=\"" + fixed(py(y)) + "\" stroke=\"#e4e4e4\"/>";
      out += "<text x=\"" + fixed(left - 6) + "\" y=\"" + fixed(py(y) + 4) + "\" text-anchor=\"end\">" +
             human_bytes(y, "%g %s") + "</text>\n";
      if (s.page_bytes > 0)
        out += "<text x=\"" + fixed(left + plot_w + 6) + "\" y=\"" + fixed(py(y) + 4) + "\">" +
               fixed(y / static_cast<double>(s.page_bytes), 0) + " pages</text>\n";
    }
    // Ticks by index: where x is so large that adding x_step leaves it unchanged, x += x_step would
    // never end; at most max_x_ticks of them.
    const double first_tick = std::ceil(x_min / x_step) * x_step;
    for (int i = 0; i < max_x_ticks; ++i) {
      const double x = 2 * (first_tick / 2 + i * (x_step / 2));  // halves: i * x_step may overflow
      if (!std::isfinite(x) || x - x_step / 1000 > x_max) break;  // x_max + x_step may overflow
      out += "<text x=\"" + fixed(px(x)) + "\" y=\"" + fixed(top + plot_h + 16) +
             "\" text-anchor=\"middle\">" + detail::tick_label(x, x_step) + "</text>\n";
    }
    out += "<text x=\"" + fixed(left + plot_w / 2) + "\" y=\"" + fixed(height - 6) +
           "\" text-anchor=\"middle\">" + detail::html_escape(x_label_) + "</text>\n";
    if (s.samples.empty()) {
      out += "<text x=\"" + fixed(left + 10) + "\" y=\"" + fixed(top + 20) + "\">no samples</text>\n</svg>\n";
      continue;
    }

    auto line = [&](auto value, const char* colour, const char* dash) {
      out += "<polyline fill=\"none\" stroke=\"" + std::string(colour) + "\" stroke-width=\"1.6\"" +
             (dash ? std::string(" stroke-dasharray=\"") + dash + "\"" : std::string()) + " points=\"";
      for (const auto& [x, y] : detail::max_envelope(s.samples, value, max_points))
        out += fixed(px(x)) + "," + fixed(py(y)) + " ";
      out += "\"/>\n";
    };
    auto peak = [&](auto value, const char* colour, const std::string& label, double dy) {
      const auto it = std::max_element(s.samples.begin(), s.samples.end(),
                                       [&](const auto& a, const auto& b) { return value(a) < value(b); });
      const double x = px(it->x), y = py(static_cast<double>(value(*it)));
      out += "<circle cx=\"" + fixed(x) + "\" cy=\"" + fixed(y) + "\" r=\"4.5\" fill=\"" + colour +
             "\" stroke=\"#fff\"><title>" + label + "</title></circle>";
      const bool right_half = x > left + plot_w * 0.7;
      out += "<text x=\"" + fixed(right_half ? x - 8 : x + 8) + "\" y=\"" +
             fixed(std::max(top + 10, y + dy)) + "\"" + (right_half ? " text-anchor=\"end\"" : "") +
             " style=\"fill:" + colour + "\">" + label + "</text>\n";
    };
    auto live = [](const timeline_sample& p) { return p.live_bytes; };
    auto reserved = [](const timeline_sample& p) { return p.reserved_bytes; };
    line(reserved, "#ff7f0e", nullptr);
    if (s.page_bytes > 0) line(reserved, "#2ca02c", "5,4");  // pages = reserved / page size: same curve
    if (s.has_largest_free)
      line([](const timeline_sample& p) { return p.largest_free; }, "#9467bd", "2,3");
    line(live, "#1f77b4", nullptr);
    std::size_t peak_live = 0, peak_reserved = 0;
    for (const auto& p : s.samples) {
      peak_live = std::max(peak_live, p.live_bytes);
      peak_reserved = std::max(peak_reserved, p.reserved_bytes);
    }
    std::string reserved_label = "peak reserved " + human_bytes(static_cast<double>(peak_reserved));
    if (s.page_bytes > 0) reserved_label += " (" + std::to_string(peak_reserved / s.page_bytes) + " pages)";
    peak(reserved, "#ff7f0e", reserved_label, -8);
    peak(live, "#1f77b4", "peak live " + human_bytes(static_cast<double>(peak_live)), 14);
    out += "</svg>\n";
    out += "<p>" + std::to_string(s.samples.size()) + " samples; peak live " + std::to_string(peak_live) +
           " bytes, peak reserved " + std::to_string(peak_reserved) + " bytes";
    if (peak_live > 0)
      out +=
          ", reserved/live " + fixed(static_cast<double>(peak_reserved) / static_cast<double>(peak_live), 3);
    if (s.reported_peak_live > 0 || s.reported_peak_reserved > 0)
      out += "; the allocator's own peaks (every operation, since its last reset_peak): live " +
             std::to_string(s.reported_peak_live) + " bytes, reserved " +
             std::to_string(s.reported_peak_reserved) + " bytes";
    out += "</p>\n";
  }
  out += "</body></html>\n";
  return out;
}

}  // namespace stash
