// Exact BEV intersection of rotated rectangles, shared by the C++ and CUDA IoU / NMS code.
//
// Boxes are (x, y, z, length, width, height, heading), centre-z (DESIGN.md). The intersection
// is the Sutherland-Hodgman clip of box a by the four edge half-planes of box b, in double
// precision with coordinates taken relative to a's centre. This mirrors the NumPy reference
// perception/geometry/iou.py (same corner order, same tolerance), so both agree to rounding.
#pragma once

#include <math.h>

#include "common.h"

namespace perception {
namespace geom {

constexpr int kMaxPolyVerts = 16;  // 8 in exact arithmetic; slack for near-degenerate input

struct P2 {
  double x, y;
};

// BEV corners of box (counter-clockwise, front-left first) relative to the origin (ox, oy).
template <typename T>
PERC_HD void bev_corners(const T* box, double ox, double oy, P2* out) {
  const double cx = static_cast<double>(box[0]) - ox;
  const double cy = static_cast<double>(box[1]) - oy;
  const double hl = 0.5 * static_cast<double>(box[3]);
  const double hw = 0.5 * static_cast<double>(box[4]);
  const double c = cos(static_cast<double>(box[6]));
  const double s = sin(static_cast<double>(box[6]));
  const double lx[4] = {hl, -hl, -hl, hl};
  const double ly[4] = {hw, hw, -hw, -hw};
  for (int k = 0; k < 4; ++k) {
    out[k].x = lx[k] * c - ly[k] * s + cx;
    out[k].y = lx[k] * s + ly[k] * c + cy;
  }
}

PERC_HD double polygon_area(const P2* p, int n) {
  if (n < 3) return 0.0;
  double acc = 0.0;
  for (int k = 0; k < n; ++k) {
    const P2& a = p[k];
    const P2& b = p[(k + 1) % n];
    acc += a.x * b.y - a.y * b.x;
  }
  return 0.5 * fabs(acc);
}

// Keep the part of convex polygon `in` (n vertices) left of the directed edge e0 -> e1.
PERC_HD int clip_half_plane(const P2* in, int n, P2 e0, P2 e1, P2* out) {
  if (n == 0) return 0;
  const double ex = e1.x - e0.x, ey = e1.y - e0.y;
  double scale = fabs(ex) + fabs(ey);
  if (scale < 1e-12) scale = 1e-12;
  const double tol = -1e-12 * scale;
  P2 prev = in[n - 1];
  double sp = ex * (prev.y - e0.y) - ey * (prev.x - e0.x);
  bool ip = sp >= tol;
  int m = 0;
  for (int k = 0; k < n; ++k) {
    const P2 cur = in[k];
    const double sc = ex * (cur.y - e0.y) - ey * (cur.x - e0.x);
    const bool ic = sc >= tol;
    if (ic != ip && m < kMaxPolyVerts) {
      const double denom = sp - sc;
      double t = denom != 0.0 ? sp / denom : 0.0;
      t = t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
      out[m].x = prev.x + t * (cur.x - prev.x);
      out[m].y = prev.y + t * (cur.y - prev.y);
      ++m;
    }
    if (ic && m < kMaxPolyVerts) out[m++] = cur;
    prev = cur;
    sp = sc;
    ip = ic;
  }
  return m;
}

// True when the bounding circles of a and b are apart: they cannot intersect.
template <typename T>
PERC_HD bool bev_far_apart(const T* a, const T* b) {
  const double ra = 0.5 * hypot(static_cast<double>(a[3]), static_cast<double>(a[4]));
  const double rb = 0.5 * hypot(static_cast<double>(b[3]), static_cast<double>(b[4]));
  const double dx = static_cast<double>(b[0]) - static_cast<double>(a[0]);
  const double dy = static_cast<double>(b[1]) - static_cast<double>(a[1]);
  return dx * dx + dy * dy > (ra + rb) * (ra + rb) * (1.0 + 1e-9);
}

// BEV intersection area of rotated boxes a and b, without the bounding-circle test.
template <typename T>
PERC_HD double bev_intersection_exact(const T* a, const T* b) {
  const double ox = static_cast<double>(a[0]), oy = static_cast<double>(a[1]);
  P2 cb[4];
  P2 buf0[kMaxPolyVerts], buf1[kMaxPolyVerts];
  bev_corners(a, ox, oy, buf0);
  bev_corners(b, ox, oy, cb);
  int n = 4;
  P2* cur = buf0;
  P2* nxt = buf1;
  for (int k = 0; k < 4 && n > 0; ++k) {
    n = clip_half_plane(cur, n, cb[k], cb[(k + 1) % 4], nxt);
    P2* t = cur;
    cur = nxt;
    nxt = t;
  }
  return polygon_area(cur, n);
}

// BEV intersection area of rotated boxes a and b.
template <typename T>
PERC_HD double bev_intersection(const T* a, const T* b) {
  return bev_far_apart(a, b) ? 0.0 : bev_intersection_exact(a, b);
}

// IoU from a known intersection area (inter), as in the NumPy reference.
PERC_HD double iou_from_inter(double inter, double size_a, double size_b) {
  const double uni = size_a + size_b - inter;
  return uni > 0.0 ? inter / fmax(uni, 1e-12) : 0.0;
}

template <typename T>
PERC_HD double iou_bev(const T* a, const T* b) {
  const double inter = bev_intersection(a, b);
  const double uni = static_cast<double>(a[3]) * static_cast<double>(a[4]) +
                     static_cast<double>(b[3]) * static_cast<double>(b[4]) - inter;
  return uni > 0.0 ? inter / fmax(uni, 1e-12) : 0.0;
}

// 3D IoU of yaw-only, centre-z boxes: BEV intersection times the vertical overlap.
template <typename T>
PERC_HD double iou_3d(const T* a, const T* b) {
  const double az = static_cast<double>(a[2]), ah = static_cast<double>(a[5]);
  const double bz = static_cast<double>(b[2]), bh = static_cast<double>(b[5]);
  const double top = fmin(az + 0.5 * ah, bz + 0.5 * bh);
  const double bottom = fmax(az - 0.5 * ah, bz - 0.5 * bh);
  const double h = top - bottom;
  if (!(h > 0.0)) return 0.0;
  const double inter = bev_intersection(a, b) * h;
  const double va = static_cast<double>(a[3]) * static_cast<double>(a[4]) * ah;
  const double vb = static_cast<double>(b[3]) * static_cast<double>(b[4]) * bh;
  const double uni = va + vb - inter;
  return uni > 0.0 ? inter / fmax(uni, 1e-12) : 0.0;
}

}  // namespace geom
}  // namespace perception
