// bev_pool (camera-to-BEV, as in BEVFusion) on the CPU, without atomics.
//
// The plan sorts the points by cell rank ((b * Z + z) * H + y) * W + x with a stable counting
// sort (parallel over contiguous chunks of points, one histogram per chunk) when the grid is
// small relative to the point count, else with a comparison sort of (rank, index) pairs. Each
// non-empty cell is one interval of the sorted order. The forward sums each interval into its
// cell, the backward copies the cell's gradient to the interval's points; both are parallel
// over intervals, each writing its own memory. The plan depends only on the geometry, so it is
// computed once when the camera geometry is fixed.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "ops.h"

namespace perception {

namespace {

template <typename index_t>
void compute_ranks(const index_t* geo, int64_t N, int64_t B, int64_t Z, int64_t H, int64_t W,
                   int64_t* ranks, int T) {
#pragma omp parallel for num_threads(T) schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const index_t* g = geo + 4 * i;
    const int64_t b = g[0], z = g[1], y = g[2], x = g[3];
    const bool ok = b >= 0 && b < B && z >= 0 && z < Z && y >= 0 && y < H && x >= 0 && x < W;
    ranks[i] = ok ? ((b * Z + z) * H + y) * W + x : -1;
  }
}

}  // namespace

std::vector<at::Tensor> bev_pool_plan_cpu(const at::Tensor& geometry, int64_t batch,
                                          int64_t depth, int64_t height, int64_t width) {
  TORCH_CHECK(geometry.device().is_cpu() && geometry.dim() == 2 && geometry.size(1) == 4 &&
                  geometry.is_contiguous(),
              "geometry must be a contiguous CPU (N, 4) tensor");
  TORCH_CHECK(batch > 0 && depth > 0 && height > 0 && width > 0, "grid must be positive");
  const int64_t N = geometry.size(0);
  const int64_t cells = batch * depth * height * width;
  const int T = N < 32768 ? 1 : op_threads();
  std::vector<int64_t> ranks(static_cast<size_t>(N));
  if (geometry.scalar_type() == at::kInt) {
    compute_ranks(geometry.data_ptr<int32_t>(), N, batch, depth, height, width, ranks.data(), T);
  } else {
    TORCH_CHECK(geometry.scalar_type() == at::kLong, "geometry must be int32 or int64");
    compute_ranks(geometry.data_ptr<int64_t>(), N, batch, depth, height, width, ranks.data(), T);
  }

  auto opts = geometry.options().dtype(at::kLong);
  std::vector<int64_t> order_v, starts_v, lengths_v, ranks_v, dropped_v;
  int64_t K = 0;
  for (int64_t i = 0; i < N; ++i) K += ranks[i] >= 0;
  at::Tensor order = at::empty({K}, opts);
  int64_t* ord = order.data_ptr<int64_t>();

  // Counting sort when the histograms stay small (<= 8M entries in all) and the grid is not
  // much larger than the point count; otherwise a comparison sort.
  int TC = static_cast<int>(std::min<int64_t>(T, (int64_t(8) << 20) / std::max<int64_t>(cells, 1)));
  const bool counting = TC >= 1 && cells <= 4 * N + 65536;
  if (counting) {
    std::vector<int64_t> hist(static_cast<size_t>(TC) * cells, 0);
#pragma omp parallel for num_threads(TC) schedule(static, 1)
    for (int t = 0; t < TC; ++t) {
      int64_t* h = &hist[static_cast<size_t>(t) * cells];
      const int64_t lo = N * t / TC, hi = N * (t + 1) / TC;
      for (int64_t i = lo; i < hi; ++i)
        if (ranks[i] >= 0) ++h[ranks[i]];
    }
    int64_t running = 0;
    for (int64_t r = 0; r < cells; ++r) {
      const int64_t start = running;
      for (int t = 0; t < TC; ++t) {
        int64_t& h = hist[static_cast<size_t>(t) * cells + r];
        const int64_t n = h;
        h = running;
        running += n;
      }
      if (running > start) {
        starts_v.push_back(start);
        lengths_v.push_back(running - start);
        ranks_v.push_back(r);
      }
    }
#pragma omp parallel for num_threads(TC) schedule(static, 1)
    for (int t = 0; t < TC; ++t) {
      int64_t* h = &hist[static_cast<size_t>(t) * cells];
      const int64_t lo = N * t / TC, hi = N * (t + 1) / TC;
      for (int64_t i = lo; i < hi; ++i)
        if (ranks[i] >= 0) ord[h[ranks[i]]++] = i;
    }
  } else {
    std::vector<std::pair<int64_t, int64_t>> pairs;
    pairs.reserve(static_cast<size_t>(K));
    for (int64_t i = 0; i < N; ++i)
      if (ranks[i] >= 0) pairs.emplace_back(ranks[i], i);
    std::sort(pairs.begin(), pairs.end());
    for (int64_t k = 0; k < K; ++k) {
      ord[k] = pairs[k].second;
      if (k == 0 || pairs[k].first != pairs[k - 1].first) {
        starts_v.push_back(k);
        lengths_v.push_back(1);
        ranks_v.push_back(pairs[k].first);
      } else {
        ++lengths_v.back();
      }
    }
  }
  for (int64_t i = 0; i < N; ++i)
    if (ranks[i] < 0) dropped_v.push_back(i);

  auto to_tensor = [&](const std::vector<int64_t>& v) {
    at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, opts);
    if (!v.empty()) std::memcpy(t.data_ptr<int64_t>(), v.data(), sizeof(int64_t) * v.size());
    return t;
  };
  return {order, to_tensor(starts_v), to_tensor(lengths_v), to_tensor(ranks_v),
          to_tensor(dropped_v)};
}

namespace {

template <typename scalar_t>
void bev_forward_impl(const scalar_t* f, int64_t C, const int64_t* order, const int64_t* starts,
                      const int64_t* lengths, const int64_t* ranks, int64_t I, int64_t cells_b,
                      scalar_t* out, int T) {
#pragma omp parallel num_threads(T)
  {
    std::vector<scalar_t> acc(static_cast<size_t>(C));
    scalar_t* a = acc.data();
#pragma omp for schedule(dynamic, 32)
    for (int64_t it = 0; it < I; ++it) {
      const int64_t s = starts[it], e = s + lengths[it];
      const scalar_t* row = f + order[s] * C;
      for (int64_t c = 0; c < C; ++c) a[c] = row[c];
      for (int64_t k = s + 1; k < e; ++k) {
        if (k + 2 < e) __builtin_prefetch(f + order[k + 2] * C);
        row = f + order[k] * C;
        for (int64_t c = 0; c < C; ++c) a[c] += row[c];
      }
      const int64_t r = ranks[it];
      scalar_t* o = out + (r / cells_b) * C * cells_b + (r % cells_b);
      for (int64_t c = 0; c < C; ++c) o[c * cells_b] = a[c];
    }
  }
}

template <typename scalar_t>
void bev_backward_impl(const scalar_t* g, int64_t C, const int64_t* order, const int64_t* starts,
                       const int64_t* lengths, const int64_t* ranks, int64_t I, int64_t cells_b,
                       scalar_t* grad, int T) {
#pragma omp parallel num_threads(T)
  {
    std::vector<scalar_t> buf(static_cast<size_t>(C));
    scalar_t* a = buf.data();
#pragma omp for schedule(dynamic, 32)
    for (int64_t it = 0; it < I; ++it) {
      const int64_t r = ranks[it];
      const scalar_t* gi = g + (r / cells_b) * C * cells_b + (r % cells_b);
      for (int64_t c = 0; c < C; ++c) a[c] = gi[c * cells_b];
      const int64_t s = starts[it], e = s + lengths[it];
      for (int64_t k = s; k < e; ++k) std::memcpy(grad + order[k] * C, a, sizeof(scalar_t) * C);
    }
  }
}

template <typename scalar_t>
void zero_rows(scalar_t* x, int64_t C, const int64_t* rows, int64_t n, int T) {
#pragma omp parallel for num_threads(T) schedule(static)
  for (int64_t k = 0; k < n; ++k) std::memset(x + rows[k] * C, 0, sizeof(scalar_t) * C);
}

void check_plan(const at::Tensor& order, const at::Tensor& starts, const at::Tensor& lengths,
                const at::Tensor& ranks) {
  for (const at::Tensor* t : {&order, &starts, &lengths, &ranks}) {
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kLong && t->dim() == 1 &&
                    t->is_contiguous(),
                "bev_pool plan tensors must be contiguous CPU int64 vectors");
  }
  TORCH_CHECK(starts.size(0) == lengths.size(0) && starts.size(0) == ranks.size(0),
              "bev_pool plan: starts, lengths and ranks differ in length");
}

}  // namespace

at::Tensor bev_pool_forward_cpu(const at::Tensor& features, const at::Tensor& order,
                                const at::Tensor& starts, const at::Tensor& lengths,
                                const at::Tensor& ranks, int64_t batch, int64_t depth,
                                int64_t height, int64_t width) {
  TORCH_CHECK(features.device().is_cpu() && features.dim() == 2 && features.is_contiguous(),
              "features must be a contiguous CPU (N, C) tensor");
  check_plan(order, starts, lengths, ranks);
  const int64_t C = features.size(1), I = starts.size(0);
  const int64_t cells_b = depth * height * width;
  at::Tensor out = at::zeros({batch, C, depth, height, width}, features.options());
  const int T = order.size(0) * C < 65536 ? 1 : op_threads();
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "bev_pool_forward_cpu", [&] {
    bev_forward_impl<scalar_t>(features.data_ptr<scalar_t>(), C, order.data_ptr<int64_t>(),
                               starts.data_ptr<int64_t>(), lengths.data_ptr<int64_t>(),
                               ranks.data_ptr<int64_t>(), I, cells_b, out.data_ptr<scalar_t>(),
                               T);
  });
  return out;
}

at::Tensor bev_pool_backward_cpu(const at::Tensor& grad_out, const at::Tensor& order,
                                 const at::Tensor& starts, const at::Tensor& lengths,
                                 const at::Tensor& ranks, const at::Tensor& dropped,
                                 int64_t num_points) {
  TORCH_CHECK(grad_out.device().is_cpu() && grad_out.dim() == 5 && grad_out.is_contiguous(),
              "grad_out must be a contiguous CPU (B, C, Z, H, W) tensor");
  check_plan(order, starts, lengths, ranks);
  TORCH_CHECK(dropped.device().is_cpu() && dropped.scalar_type() == at::kLong &&
                  dropped.dim() == 1 && dropped.is_contiguous() &&
                  order.size(0) + dropped.size(0) == num_points,
              "bev_pool plan: dropped must be a CPU int64 vector of the points outside");
  const int64_t C = grad_out.size(1), I = starts.size(0);
  const int64_t cells_b = grad_out.size(2) * grad_out.size(3) * grad_out.size(4);
  at::Tensor grad = at::empty({num_points, C}, grad_out.options());
  const int T = num_points * C < 65536 ? 1 : op_threads();
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "bev_pool_backward_cpu", [&] {
    scalar_t* gp = grad.data_ptr<scalar_t>();
    bev_backward_impl<scalar_t>(grad_out.data_ptr<scalar_t>(), C, order.data_ptr<int64_t>(),
                                starts.data_ptr<int64_t>(), lengths.data_ptr<int64_t>(),
                                ranks.data_ptr<int64_t>(), I, cells_b, gp, T);
    zero_rows<scalar_t>(gp, C, dropped.data_ptr<int64_t>(), dropped.numel(), T);
  });
  return grad;
}

}  // namespace perception
