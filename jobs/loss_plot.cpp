// A minimal raster plot: axes, 5 ticks per axis labelled with a 3×5 pixel font (digits, lowercase letters and
// a few signs), axis titles, the raw curve in light blue, a moving average in dark blue, held-out points in
// orange.
#include "jobs/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "data/io/png_io.h"

namespace starflow::jobs {
namespace {

struct Canvas {
  int w, h;
  std::vector<uint8_t> px;
  Canvas(int w_, int h_) : w(w_), h(h_), px(static_cast<size_t>(w_) * h_ * 3, 255) {}
  void set(int x, int y, const uint8_t* c) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    std::memcpy(&px[(static_cast<size_t>(y) * w + x) * 3], c, 3);
  }
  void line(int x0, int y0, int x1, int y1, const uint8_t* c) {  // Bresenham
    int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) {
      set(x0, y0, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * e;
      if (e2 >= dy) e += dy, x0 += sx;
      if (e2 <= dx) e += dx, y0 += sy;
    }
  }
  // 3×5 glyphs (rows top to bottom), scaled 2×; unknown characters are blank.
  void text(int x, int y, const std::string& s, const uint8_t* c) {
    static const char* digits[] = {"111101101101111", "010110010010111", "111001111100111", "111001111001111",
                                   "101101111001001", "111100111001111", "111100111101111", "111001001001001",
                                   "111101111101111", "111101111001111"};
    static const char* letters[] = {
        "000011101101011", "100110101101110", "000011100100011", "001011101101011", "000111111100111",  // a-e
        "011100110100100", "000011101011110", "100110101101101", "010000010010010", "001000001101010",  // f-j
        "100101110110101", "110010010010111", "000110111101101", "000110101101101", "000010101101010",  // k-o
        "000110101110100", "000011101011001", "000101110100100", "000011110011110", "010111010010011",  // p-t
        "000101101101011", "000101101101010", "000101101111011", "000101010010101", "000101011001110",  // u-y
        "000111011100111"};                                                                          // z
    for (char ch : s) {
      const char* g = nullptr;
      if (ch >= '0' && ch <= '9') g = digits[ch - '0'];
      else if (ch >= 'a' && ch <= 'z') g = letters[ch - 'a'];
      else if (ch == '.') g = "000000000000010";
      else if (ch == '-') g = "000000111000000";
      else if (ch == '+') g = "000010111010000";
      else if (ch == '/') g = "001001010100100";
      if (g)
        for (int r = 0; r < 5; ++r)
          for (int q = 0; q < 3; ++q)
            if (g[r * 3 + q] == '1')
              for (int a = 0; a < 2; ++a)
                for (int b = 0; b < 2; ++b) set(x + q * 2 + a, y + r * 2 + b, c);
      x += 8;
    }
  }
  void dot(int x, int y, const uint8_t* c) {  // a 5×5 marker
    for (int a = -2; a <= 2; ++a)
      for (int b = -2; b <= 2; ++b) set(x + a, y + b, c);
  }
};

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, std::abs(v) >= 1e4 || (std::abs(v) < 1e-2 && v != 0) ? "%.1e" : "%.3g", v);
  return buf;
}

}  // namespace

void write_loss_plot(const std::string& path, const LossPlot& plot, int width, int height) {
  std::vector<CurvePoint> pts, held;
  for (const auto& p : plot.curve)
    if (std::isfinite(p.value) && std::isfinite(p.step)) pts.push_back(p);
  for (const auto& p : plot.heldout)
    if (std::isfinite(p.value) && std::isfinite(p.step)) held.push_back(p);
  Canvas cv(width, height);
  const uint8_t black[3] = {0, 0, 0}, grey[3] = {200, 200, 200}, light[3] = {150, 190, 240}, dark[3] = {20, 60, 160},
                orange[3] = {230, 120, 20};
  const int left = 90, right = width - 20, top = 30, bottom = height - 50;
  cv.line(left, bottom, right, bottom, black);
  cv.line(left, top, left, bottom, black);
  cv.text(right - 8 * static_cast<int>(plot.x_title.size()), bottom + 32, plot.x_title, black);
  cv.text(8, 8, plot.y_title, black);
  if (!held.empty()) {  // the legend, top right
    cv.line(right - 260, 13, right - 245, 13, dark);
    cv.text(right - 238, 8, "training", black);
    cv.dot(right - 150, 13, orange);
    cv.text(right - 140, 8, "held-out", black);
  }
  if (pts.size() + held.size() >= 2) {
    std::vector<CurvePoint> all = pts;
    all.insert(all.end(), held.begin(), held.end());
    double x0 = all[0].step, x1 = all[0].step, y0 = all[0].value, y1 = all[0].value;
    for (const auto& p : all)
      x0 = std::min(x0, p.step), x1 = std::max(x1, p.step), y0 = std::min(y0, p.value), y1 = std::max(y1, p.value);
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y1 = y0 + 1e-9;
    const double pad = 0.05 * (y1 - y0);
    y0 -= pad, y1 += pad;
    auto X = [&](double s) { return left + static_cast<int>((s - x0) / (x1 - x0) * (right - left)); };
    auto Y = [&](double v) { return bottom - static_cast<int>((v - y0) / (y1 - y0) * (bottom - top)); };
    for (int i = 0; i <= 4; ++i) {
      const double fx = x0 + (x1 - x0) * i / 4, fy = y0 + (y1 - y0) * i / 4;
      cv.line(X(fx), top, X(fx), bottom, grey);
      cv.line(left, Y(fy), right, Y(fy), grey);
      cv.text(X(fx) - 12, bottom + 12, fmt(fx), black);
      cv.text(8, Y(fy) - 5, fmt(fy), black);
    }
    for (size_t i = 1; i < pts.size(); ++i) cv.line(X(pts[i - 1].step), Y(pts[i - 1].value), X(pts[i].step), Y(pts[i].value), light);
    // Moving average over ~2% of the run, at least 5 points.
    const size_t k = std::max<size_t>(5, pts.size() / 50);
    double sum = 0;
    std::vector<CurvePoint> avg;
    for (size_t i = 0; i < pts.size(); ++i) {
      sum += pts[i].value;
      if (i >= k) sum -= pts[i - k].value;
      if (i + 1 >= k) avg.push_back({pts[i].step, sum / k});
    }
    for (size_t i = 1; i < avg.size(); ++i) cv.line(X(avg[i - 1].step), Y(avg[i - 1].value), X(avg[i].step), Y(avg[i].value), dark);
    for (size_t i = 0; i < held.size(); ++i) {
      if (i > 0) cv.line(X(held[i - 1].step), Y(held[i - 1].value), X(held[i].step), Y(held[i].value), orange);
      cv.dot(X(held[i].step), Y(held[i].value), orange);
    }
  }
  data::Image img{width, height, 3, std::move(cv.px)};
  data::write_png(path, img);
}

}  // namespace starflow::jobs
