// bev_pool (camera-to-BEV, as in BEVFusion) on the CPU, without atomics.
//
// The plan sorts the points by cell rank ((b * Z + z) * H + y) * W + x with a stable counting
// sort (parallel over contiguous chunks of points, one histogram per chunk) when the grid is
// small relative to the point count, else with a comparison sort of (rank, index) pairs. Each
// non-empty cell is one interval of the sorted order. The plan depends only on the geometry, so
// it is computed once when the camera geometry is fixed.
//
// On the CPU the sums are taken per interval (cell) in input order, but the feature rows are
// read in address order rather than gathered in rank order (see bev_forward_impl): this reads
// memory sequentially and is about twice as fast as the gather on a memory-bound CPU
// (docs/ops.md). The sums are the interval sums, independent of the thread count. The CUDA
// kernels sum the intervals directly.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "ops.h"
#include "parallel.h"

namespace perception {

namespace {

// An uninitialised tensor; above 64 MiB its memory is 2 MiB-aligned and advised as
// transparent huge pages (Linux), which halves the cost of first touching a fresh gradient of
// hundreds of MiB (page faults dominate it). Below that, or elsewhere, at::empty.
at::Tensor empty_large(at::IntArrayRef sizes, const at::TensorOptions& opts) {
#ifdef __linux__
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  const size_t bytes =
      static_cast<size_t>(numel) * at::elementSize(at::typeMetaToScalarType(opts.dtype()));
  constexpr size_t kHuge = size_t(2) << 20;
  if (bytes >= (size_t(64) << 20)) {
    const size_t alloc = (bytes + kHuge - 1) / kHuge * kHuge;
    void* p = nullptr;
    if (posix_memalign(&p, kHuge, alloc) == 0) {
      madvise(p, alloc, MADV_HUGEPAGE);  // advice only: ignored where THP is off
      return at::from_blob(p, sizes, [](void* q) { std::free(q); }, opts);
    }
  }
#endif
  return at::empty(sizes, opts);
}

}  // namespace

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
  const int T = threads_for(N, kMinPlanPointsParallel);
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
          to_tensor(dropped_v), to_tensor(ranks)};
}

namespace {

// Contiguous cell ranges, one per thread, holding about the same number of points: the
// intervals are sorted by rank, so a prefix of them is a prefix of the cells.
std::vector<int64_t> split_cells(const int64_t* lengths, const int64_t* ranks, int64_t I,
                                 int64_t cells, int T) {
  int64_t K = 0;
  for (int64_t i = 0; i < I; ++i) K += lengths[i];
  std::vector<int64_t> bound(static_cast<size_t>(T) + 1, cells);
  bound[0] = 0;
  int64_t acc = 0;
  int t = 1;
  for (int64_t i = 0; i < I && t < T; ++i) {
    acc += lengths[i];
    while (t < T && acc * T >= K * t) bound[t++] = ranks[i] + 1;
  }
  for (int u = 1; u <= T; ++u) bound[u] = std::max(bound[u], bound[u - 1]);
  return bound;
}

// Software prefetch of the rows a few points ahead: the scan reads only part of the rows
// (its channels, or its cells), which the hardware prefetcher follows poorly.
constexpr int64_t kAhead = 12;

inline void prefetch_bytes(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b);
  __builtin_prefetch(c + bytes - 1);
}

// Transpose a channels-last accumulator acc (total, cw) into channels [c0, c0 + cw) of out
// (B, C, cells_b), in tiles of 64 cells.
template <typename scalar_t>
void transpose_to_out(const scalar_t* acc, int64_t total, int64_t cw, int64_t c0, int64_t C,
                      int64_t cells_b, scalar_t* out, int64_t tile_lo, int64_t tile_hi) {
  for (int64_t tile = tile_lo; tile < tile_hi; ++tile) {
    const int64_t r0 = tile * 64, r1 = std::min(total, r0 + 64);
    for (int64_t r = r0; r < r1;) {
      const int64_t b = r / cells_b, cell0 = r % cells_b;
      const int64_t run = std::min(r1 - r, cells_b - cell0);  // same batch within the run
      for (int64_t c = 0; c < cw; ++c) {
        scalar_t* o = out + (b * C + c0 + c) * cells_b + cell0;
        const scalar_t* a = acc + r * cw + c;
        for (int64_t q = 0; q < run; ++q) o[q] = a[q * cw];
      }
      r += run;
    }
  }
}

// Forward. The points are scanned in input order, so the feature rows are read in address
// order (gathering them in rank order is about 2x slower on a memory-bound CPU), and each
// cell's sum runs in input order, as over a stable-sorted interval: the result is the interval
// sum, bit for bit, whatever the thread count. The work is split without atomics:
//  * by channels when there are at least 8 per thread: thread t owns channels [c0, c1) of
//    every cell, in its own channels-last accumulator, and reads only its part of each row;
//  * otherwise by cells: the interval table gives each thread a contiguous range of cells
//    holding about the same number of points.
// Finally the accumulators are transposed to (B, C, Z, H, W).
template <typename scalar_t>
void bev_forward_impl(const scalar_t* f, int64_t N, int64_t C, const int64_t* point_rank,
                      const int64_t* lengths, const int64_t* ranks, int64_t I, int64_t total,
                      int64_t cells_b, scalar_t* out, int T) {
  const int64_t tiles = (total + 63) / 64;
  if (T > 1 && C >= 8 * T) {
    std::vector<int64_t> cb(static_cast<size_t>(T) + 1);
    for (int t = 0; t <= T; ++t) cb[t] = std::min(C, (C * t / T + 4) / 8 * 8);
    cb[T] = C;
#pragma omp parallel num_threads(T)
    {
#pragma omp for schedule(static, 1)
      for (int t = 0; t < T; ++t) {
        const int64_t c0 = cb[t], cw = cb[t + 1] - cb[t];
        if (cw == 0) continue;
        std::vector<scalar_t> acc(static_cast<size_t>(total * cw), scalar_t(0));
        scalar_t* a0 = acc.data();
        const int64_t slice_bytes = cw * static_cast<int64_t>(sizeof(scalar_t));
        for (int64_t i = 0; i < N; ++i) {
          if (i + kAhead < N) prefetch_bytes(f + (i + kAhead) * C + c0, slice_bytes);
          const int64_t r = point_rank[i];
          if (r < 0) continue;
          scalar_t* a = a0 + r * cw;
          const scalar_t* row = f + i * C + c0;
          for (int64_t c = 0; c < cw; ++c) a[c] += row[c];
        }
        transpose_to_out(a0, total, cw, c0, C, cells_b, out, 0, tiles);
      }
    }
    return;
  }
  const std::vector<int64_t> bound = split_cells(lengths, ranks, I, total, T);
  std::vector<scalar_t> acc(static_cast<size_t>(total * C));
  scalar_t* a0 = acc.data();
#pragma omp parallel num_threads(T)
  {
#pragma omp for schedule(static, 1)
    for (int t = 0; t < T; ++t) {
      const uint64_t lo = static_cast<uint64_t>(bound[t]);
      const uint64_t width = static_cast<uint64_t>(bound[t + 1]) - lo;
      std::memset(a0 + lo * C, 0, sizeof(scalar_t) * width * C);
      const int64_t row_bytes = C * static_cast<int64_t>(sizeof(scalar_t));
      for (int64_t i = 0; i < N; ++i) {
        const uint64_t r = static_cast<uint64_t>(point_rank[i]);  // -1 becomes huge
        if (i + kAhead < N && static_cast<uint64_t>(point_rank[i + kAhead]) - lo < width)
          prefetch_bytes(f + (i + kAhead) * C, row_bytes);
        if (r - lo >= width) continue;
        scalar_t* a = a0 + r * C;
        const scalar_t* row = f + i * C;
        for (int64_t c = 0; c < C; ++c) a[c] += row[c];
      }
    }
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < tiles; ++tile)
      transpose_to_out(a0, total, C, 0, C, cells_b, out, tile, tile + 1);
  }
}

// Backward: every point copies its cell's gradient (a row of the channels-last gradient);
// rows are written in input order, dropped points get zeros.
template <typename scalar_t>
void bev_backward_impl(const scalar_t* g_last, int64_t N, int64_t C, const int64_t* point_rank,
                       scalar_t* grad, int T) {
#pragma omp parallel for num_threads(T) schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const int64_t r = point_rank[i];
    if (r < 0) {
      std::memset(grad + i * C, 0, sizeof(scalar_t) * C);
    } else {
      std::memcpy(grad + i * C, g_last + r * C, sizeof(scalar_t) * C);
    }
  }
}

void check_plan(const at::Tensor& order, const at::Tensor& starts, const at::Tensor& lengths,
                const at::Tensor& ranks, const at::Tensor& point_rank) {
  for (const at::Tensor* t : {&order, &starts, &lengths, &ranks, &point_rank}) {
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
                                const at::Tensor& ranks, const at::Tensor& point_rank,
                                int64_t batch, int64_t depth, int64_t height, int64_t width) {
  TORCH_CHECK(features.device().is_cpu() && features.dim() == 2 && features.is_contiguous(),
              "features must be a contiguous CPU (N, C) tensor");
  check_plan(order, starts, lengths, ranks, point_rank);
  TORCH_CHECK(point_rank.size(0) == features.size(0), "bev_pool plan: wrong number of points");
  const int64_t N = features.size(0), C = features.size(1), I = starts.size(0);
  const int64_t cells_b = depth * height * width, total = batch * cells_b;
  at::Tensor out = at::empty({batch, C, depth, height, width}, features.options());
  const int T = threads_for(N * C, kMinElementsParallel);
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "bev_pool_forward_cpu", [&] {
    bev_forward_impl<scalar_t>(features.data_ptr<scalar_t>(), N, C,
                               point_rank.data_ptr<int64_t>(), lengths.data_ptr<int64_t>(),
                               ranks.data_ptr<int64_t>(), I, total, cells_b,
                               out.data_ptr<scalar_t>(), T);
  });
  return out;
}

at::Tensor bev_pool_backward_cpu(const at::Tensor& grad_out, const at::Tensor& order,
                                 const at::Tensor& starts, const at::Tensor& lengths,
                                 const at::Tensor& ranks, const at::Tensor& point_rank,
                                 int64_t num_points) {
  TORCH_CHECK(grad_out.device().is_cpu() && grad_out.dim() == 5 && grad_out.is_contiguous(),
              "grad_out must be a contiguous CPU (B, C, Z, H, W) tensor");
  check_plan(order, starts, lengths, ranks, point_rank);
  TORCH_CHECK(point_rank.size(0) == num_points, "bev_pool plan: wrong number of points");
  const int64_t C = grad_out.size(1);
  // (B, C, cells) -> (B * cells, C): one contiguous row per cell.
  at::Tensor g_last = grad_out.reshape({grad_out.size(0), C, -1}).transpose(1, 2).contiguous();
  at::Tensor grad = empty_large({num_points, C}, grad_out.options());
  const int T = threads_for(num_points * C, kMinElementsParallel);
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "bev_pool_backward_cpu", [&] {
    bev_backward_impl<scalar_t>(g_last.data_ptr<scalar_t>(), num_points, C,
                                point_rank.data_ptr<int64_t>(), grad.data_ptr<scalar_t>(), T);
  });
  return grad;
}

}  // namespace perception
