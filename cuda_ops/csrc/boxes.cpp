// Rotated BEV / 3D IoU and NMS (rotated BEV, class-aware; circle NMS) on the CPU.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "box_geometry.h"
#include "ops.h"
#include "parallel.h"

namespace perception {

namespace {

template <typename T>
void iou_impl(const T* a, int64_t N, const T* b, int64_t M, int64_t mode, T* out, int nt) {
  std::vector<double> rb(static_cast<size_t>(M)), sb(static_cast<size_t>(M));
  for (int64_t j = 0; j < M; ++j) {
    const T* bj = b + 7 * j;
    rb[j] = 0.5 * std::hypot(double(bj[3]), double(bj[4]));
    sb[j] = double(bj[3]) * double(bj[4]) * (mode == 1 ? double(bj[5]) : 1.0);
  }
#pragma omp parallel for num_threads(nt) schedule(dynamic, 8)
  for (int64_t i = 0; i < N; ++i) {
    const T* ai = a + 7 * i;
    const double ax = ai[0], ay = ai[1], az = ai[2], ah = ai[5];
    const double ra = 0.5 * std::hypot(double(ai[3]), double(ai[4]));
    const double sa = double(ai[3]) * double(ai[4]) * (mode == 1 ? ah : 1.0);
    T* row = out + i * M;
    for (int64_t j = 0; j < M; ++j) {
      const T* bj = b + 7 * j;
      const double dx = double(bj[0]) - ax, dy = double(bj[1]) - ay, r = ra + rb[j];
      if (dx * dx + dy * dy > r * r * (1.0 + 1e-9)) {
        row[j] = T(0);
        continue;
      }
      double h = 1.0;
      if (mode == 1) {
        const double bz = bj[2], bh = bj[5];
        h = std::min(az + 0.5 * ah, bz + 0.5 * bh) - std::max(az - 0.5 * ah, bz - 0.5 * bh);
        if (!(h > 0.0)) {
          row[j] = T(0);
          continue;
        }
      }
      const double inter = geom::bev_intersection_exact(ai, bj) * h;
      row[j] = static_cast<T>(geom::iou_from_inter(inter, sa, sb[j]));
    }
  }
}

// Positions of the boxes by descending score; ties keep the input order.
template <typename T>
std::vector<int64_t> score_order(const T* scores, int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t i, int64_t j) { return scores[i] > scores[j]; });
  return order;
}

// Greedy NMS over boxes in score order. suppress(p, q) says whether the kept box at sorted
// position p suppresses the box at sorted position q > p.
template <typename Suppress>
at::Tensor greedy_nms(const std::vector<int64_t>& order, const int64_t* labels,
                      Suppress suppress, const at::TensorOptions& opts) {
  const int64_t n = static_cast<int64_t>(order.size());
  std::vector<uint8_t> removed(static_cast<size_t>(n), 0);
  std::vector<int64_t> keep;
  const int nt = op_threads();
  for (int64_t p = 0; p < n; ++p) {
    if (removed[p]) continue;
    keep.push_back(order[p]);
    const int64_t lp = labels ? labels[order[p]] : 0;
#pragma omp parallel for num_threads(nt) if (n - p > kMaxSerialNmsCandidates) schedule(static)
    for (int64_t q = p + 1; q < n; ++q) {
      if (removed[q]) continue;
      if (labels && labels[order[q]] != lp) continue;
      if (suppress(p, q)) removed[q] = 1;
    }
  }
  at::Tensor out = at::empty({static_cast<int64_t>(keep.size())}, opts.dtype(at::kLong));
  std::copy(keep.begin(), keep.end(), out.data_ptr<int64_t>());
  return out;
}

void check_scores_labels(const at::Tensor& scores, const at::Tensor& labels, int64_t n) {
  TORCH_CHECK(scores.device().is_cpu() && scores.dim() == 1 && scores.size(0) == n &&
                  scores.is_contiguous(),
              "scores must be a contiguous CPU (N,) tensor");
  TORCH_CHECK(labels.numel() == 0 ||
                  (labels.device().is_cpu() && labels.dim() == 1 && labels.size(0) == n &&
                   labels.scalar_type() == at::kLong && labels.is_contiguous()),
              "labels must be empty or a contiguous CPU (N,) int64 tensor");
}

}  // namespace

at::Tensor boxes_iou_cpu(const at::Tensor& a, const at::Tensor& b, int64_t mode) {
  TORCH_CHECK(a.device().is_cpu() && b.device().is_cpu(), "CPU tensors expected");
  TORCH_CHECK(a.dim() == 2 && a.size(1) == 7 && b.dim() == 2 && b.size(1) == 7,
              "boxes must be (N, 7)");
  TORCH_CHECK(a.is_contiguous() && b.is_contiguous(), "boxes must be contiguous");
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "box dtypes differ");
  TORCH_CHECK(mode == 0 || mode == 1, "mode must be 0 (BEV) or 1 (3D)");
  const int64_t N = a.size(0), M = b.size(0);
  at::Tensor out = at::empty({N, M}, a.options());
  // Small matrices (one frame's boxes) run on the calling thread (parallel.h).
  const int nt = N * M > kMaxSerialIouPairs ? op_threads() : 1;
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "boxes_iou_cpu", [&] {
    iou_impl<scalar_t>(a.data_ptr<scalar_t>(), N, b.data_ptr<scalar_t>(), M, mode,
                       out.data_ptr<scalar_t>(), nt);
  });
  return out;
}

at::Tensor nms_bev_cpu(const at::Tensor& boxes, const at::Tensor& scores,
                       const at::Tensor& labels, double iou_threshold) {
  TORCH_CHECK(boxes.device().is_cpu() && boxes.dim() == 2 && boxes.size(1) == 7 &&
                  boxes.is_contiguous(),
              "boxes must be a contiguous CPU (N, 7) tensor");
  const int64_t n = boxes.size(0);
  check_scores_labels(scores, labels, n);
  TORCH_CHECK(scores.scalar_type() == boxes.scalar_type(), "scores and boxes dtypes differ");
  at::Tensor keep;
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "nms_bev_cpu", [&] {
    const scalar_t* bx = boxes.data_ptr<scalar_t>();
    const std::vector<int64_t> order = score_order(scores.data_ptr<scalar_t>(), n);
    // Boxes in score order, with their bounding radius and area, for locality.
    std::vector<scalar_t> sorted(static_cast<size_t>(7 * n));
    std::vector<double> radius(static_cast<size_t>(n)), area(static_cast<size_t>(n));
    for (int64_t p = 0; p < n; ++p) {
      std::copy(bx + 7 * order[p], bx + 7 * order[p] + 7, sorted.begin() + 7 * p);
      const scalar_t* b = sorted.data() + 7 * p;
      radius[p] = 0.5 * std::hypot(double(b[3]), double(b[4]));
      area[p] = double(b[3]) * double(b[4]);
    }
    const scalar_t* sb = sorted.data();
    auto suppress = [&](int64_t p, int64_t q) {
      const scalar_t* a = sb + 7 * p;
      const scalar_t* b = sb + 7 * q;
      const double dx = double(b[0]) - double(a[0]), dy = double(b[1]) - double(a[1]);
      const double r = radius[p] + radius[q];
      if (dx * dx + dy * dy > r * r * (1.0 + 1e-9)) return false;
      const double inter = geom::bev_intersection_exact(a, b);
      return geom::iou_from_inter(inter, area[p], area[q]) > iou_threshold;
    };
    keep = greedy_nms(order, labels.numel() ? labels.data_ptr<int64_t>() : nullptr, suppress,
                      boxes.options());
  });
  return keep;
}

at::Tensor circle_nms_cpu(const at::Tensor& centers, const at::Tensor& scores,
                          const at::Tensor& labels, double distance) {
  TORCH_CHECK(centers.device().is_cpu() && centers.dim() == 2 && centers.size(1) == 2 &&
                  centers.is_contiguous(),
              "centers must be a contiguous CPU (N, 2) tensor");
  const int64_t n = centers.size(0);
  check_scores_labels(scores, labels, n);
  TORCH_CHECK(scores.scalar_type() == centers.scalar_type(), "scores and centers dtypes differ");
  at::Tensor keep;
  const double d2 = distance * distance;
  AT_DISPATCH_FLOATING_TYPES(centers.scalar_type(), "circle_nms_cpu", [&] {
    const scalar_t* c = centers.data_ptr<scalar_t>();
    const std::vector<int64_t> order = score_order(scores.data_ptr<scalar_t>(), n);
    std::vector<double> xy(static_cast<size_t>(2 * n));
    for (int64_t p = 0; p < n; ++p) {
      xy[2 * p] = c[2 * order[p]];
      xy[2 * p + 1] = c[2 * order[p] + 1];
    }
    auto suppress = [&](int64_t p, int64_t q) {
      const double dx = xy[2 * q] - xy[2 * p], dy = xy[2 * q + 1] - xy[2 * p + 1];
      return dx * dx + dy * dy <= d2;
    };
    keep = greedy_nms(order, labels.numel() ? labels.data_ptr<int64_t>() : nullptr, suppress,
                      centers.options());
  });
  return keep;
}

}  // namespace perception
