// Hard and dynamic voxelization (CPU). The per-voxel reductions are in scatter.cpp.
//
// Hard voxelization is deterministic and independent of the thread count:
//   1. (parallel) each point gets the linear key of its voxel, or -1 when dropped;
//   2. (parallel) the keys are split into T partitions by a hash of the key. Each partition is
//      scanned in point order by one thread, which assigns its voxels in first-come order (a
//      compact open-addressing index) and gives each point its rank inside its voxel;
//   3. (serial, O(M T)) the partitions' voxel lists, each sorted by first point index, are
//      merged by first point index: voxel i is the i-th distinct voxel met in point order, and
//      the merge stops at max_voxels (later voxels, with all their points, are dropped);
//   4. (parallel) points are copied to (voxel, rank) when rank < max_points, the unused slots
//      are zeroed.
// This is exactly mmcv's sequential hard voxelization (deterministic=True), and memory is
// O(N) whatever the grid size (mmcv and spconv index a dense table of the whole grid). The
// scratch arrays are kept per calling thread between calls.
#include <algorithm>
#include <cstring>
#include <limits>

#include "ops.h"
#include "parallel.h"
#include "voxel_hash.h"

namespace perception {

namespace {

using hash::mix64;
using hash::partition_of;
using hash::VoxelIndex;

// Iterations per chunk of the dynamically scheduled loops over points or voxels: a thread that
// is descheduled (a busy machine) holds up at most one chunk while the others take the rest, and
// chunks this long make the cost of handing them out (one atomic increment each) negligible.
constexpr int64_t kDynamicChunk = 8192;

// Per-partition state of hard voxelization.
struct Partition {
  std::vector<int32_t> slots;  // VoxelIndex storage
  std::vector<int64_t> first;  // first point of each voxel
  std::vector<int64_t> vkey;   // key of each voxel
  std::vector<int32_t> count;  // points met in each voxel
  std::vector<int32_t> gmap;   // voxel -> output row, or -1
};

// Scratch memory of hard voxelization, kept per calling thread so that repeated calls (one per
// frame) do not pay for fresh pages: O(N) of the largest input seen, freed at thread exit.
struct HardVoxScratch {
  std::vector<int64_t> keys;
  std::vector<int32_t> local_vid, rank;
  std::vector<Partition> parts;
};

template <typename V>
void resize_no_shrink(V& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// Voxel indices of points [lo, hi), with the divisions done in blocks so that they vectorise
// (IEEE division is correctly rounded in SIMD as in scalar code, so the result is that of
// voxel_index). emit(i, ok, c) receives each point's validity and (x, y, z) index.
template <int kC, typename Emit>
void block_indices(const float* pts, int64_t lo, int64_t hi, int64_t C, const VoxelGridSpec& g,
                   Emit emit) {
  constexpr int kBlock = 256;
  alignas(64) float q[3][kBlock];
  const int64_t stride = kC > 0 ? kC : C;
  for (int64_t b0 = lo; b0 < hi; b0 += kBlock) {
    const int n = static_cast<int>(std::min<int64_t>(kBlock, hi - b0));
    const float* p = pts + b0 * stride;
    for (int j = 0; j < 3; ++j) {
      const float l = g.lo[j], sz = g.size[j];
      for (int i = 0; i < n; ++i) q[j][i] = (p[i * stride + j] - l) / sz;
    }
    for (int i = 0; i < n; ++i) {
      int64_t c[3];
      bool ok = true;
      for (int j = 0; j < 3; ++j) {
        const float v = q[j][i];
        ok = ok && v >= 0.0f && v < 2147483648.0f;
        c[j] = ok ? static_cast<int64_t>(v) : 0;
        ok = ok && c[j] < g.grid[j];
      }
      emit(b0 + i, ok, c);
    }
  }
}

template <typename Emit>
void block_indices_any(const float* pts, int64_t lo, int64_t hi, int64_t C,
                       const VoxelGridSpec& g, Emit emit) {
  switch (C) {
    case 3: block_indices<3>(pts, lo, hi, C, g, emit); break;
    case 4: block_indices<4>(pts, lo, hi, C, g, emit); break;
    case 5: block_indices<5>(pts, lo, hi, C, g, emit); break;
    default: block_indices<0>(pts, lo, hi, C, g, emit);
  }
}

void compute_keys_any(const float* pts, int64_t lo, int64_t hi, int64_t C,
                      const VoxelGridSpec& g, int64_t* keys) {
  const int64_t gx = g.grid[0], gy = g.grid[1];
  block_indices_any(pts, lo, hi, C, g, [&](int64_t i, bool ok, const int64_t* c) {
    keys[i] = ok ? (c[2] * gy + c[1]) * gx + c[0] : -1;
  });
}

template <int kC>
inline void copy_point(float* dst, const float* src, int64_t C) {
  if (kC > 0) {
    for (int k = 0; k < kC; ++k) dst[k] = src[k];
  } else {
    std::memcpy(dst, src, sizeof(float) * C);
  }
}

void check_points(const at::Tensor& points) {
  TORCH_CHECK(points.device().is_cpu(), "points must be a CPU tensor");
  TORCH_CHECK(points.dim() == 2 && points.size(1) >= 3, "points must be (N, C>=3)");
  TORCH_CHECK(points.scalar_type() == at::kFloat, "points must be float32");
  TORCH_CHECK(points.is_contiguous(), "points must be contiguous");
}

// Step 4 of hard voxelization for a compile-time (kC > 0) or run-time (kC == 0) width.
template <int kC>
void write_outputs(const float* pts, int64_t N, int64_t C, int64_t P, int T,
                   const VoxelGridSpec& g, const HardVoxScratch& s, int64_t M, float* vox,
                   int32_t* crd, int32_t* nump, int TO) {
  const int64_t* keys = s.keys.data();
  const int32_t* local_vid = s.local_vid.data();
  const int32_t* rank = s.rank.data();
#pragma omp parallel num_threads(TO)
  {
#pragma omp for schedule(dynamic, kDynamicChunk) nowait
    for (int64_t i = 0; i < N; ++i) {
      const int32_t lv = local_vid[i];
      if (lv < 0 || rank[i] >= P) continue;
      const int p = T == 1 ? 0 : partition_of(mix64(static_cast<uint64_t>(keys[i])), T);
      const int32_t gid = s.parts[p].gmap[lv];
      if (gid < 0) continue;
      copy_point<kC>(vox + (static_cast<int64_t>(gid) * P + rank[i]) * C, pts + i * C, C);
    }
    for (int p = 0; p < T; ++p) {
      const Partition& part = s.parts[p];
      const int64_t nv = static_cast<int64_t>(part.gmap.size());
#pragma omp for schedule(dynamic, kDynamicChunk) nowait
      for (int64_t j = 0; j < nv; ++j) {
        const int32_t gid = part.gmap[j];
        if (gid < 0) continue;
        int64_t c[3] = {0, 0, 0};
        voxel_index(pts + part.first[j] * C, g, c);  // same point, same arithmetic: same voxel
        int32_t* out = crd + 3 * static_cast<int64_t>(gid);
        out[0] = static_cast<int32_t>(c[2]);
        out[1] = static_cast<int32_t>(c[1]);
        out[2] = static_cast<int32_t>(c[0]);
        nump[gid] = std::min<int32_t>(part.count[j], static_cast<int32_t>(P));
      }
    }
#pragma omp barrier
#pragma omp for schedule(dynamic, kDynamicChunk)
    for (int64_t m = 0; m < M; ++m) {
      float* v = vox + m * P * C;
      for (int64_t k = static_cast<int64_t>(nump[m]) * C; k < P * C; ++k) v[k] = 0.0f;
    }
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> hard_voxelize_cpu(
    const at::Tensor& points, std::vector<double> voxel_size, std::vector<double> range_lo,
    std::vector<int64_t> grid, int64_t max_points, int64_t max_voxels) {
  check_points(points);
  TORCH_CHECK(max_points >= 1, "max_points must be >= 1");
  TORCH_CHECK(max_voxels >= 0 && max_voxels <= std::numeric_limits<int32_t>::max(),
              "max_voxels must be in [0, 2^31)");
  TORCH_CHECK(points.size(0) < std::numeric_limits<int32_t>::max(), "too many points");
  const VoxelGridSpec g = make_voxel_grid_spec(voxel_size, range_lo, grid);
  const int64_t N = points.size(0), C = points.size(1), P = max_points;
  const float* pts = points.data_ptr<float>();

  // A reference, so that the OpenMP threads below use the calling thread's scratch.
  static thread_local HardVoxScratch tls_scratch;
  HardVoxScratch& s = tls_scratch;
  const int T = threads_for(N, kMinPointsParallel);
  resize_no_shrink(s.keys, static_cast<size_t>(N));
  resize_no_shrink(s.local_vid, static_cast<size_t>(N));
  resize_no_shrink(s.rank, static_cast<size_t>(N));
  if (s.parts.size() < static_cast<size_t>(T)) s.parts.resize(static_cast<size_t>(T));
  int64_t* keys = s.keys.data();
  int32_t* local_vid = s.local_vid.data();
  int32_t* rank = s.rank.data();
  std::vector<int64_t> part_count(static_cast<size_t>(T) * T, 0);  // [thread][partition]

  // 1. keys (and the number of points of each partition, to size its index), in dynamic chunks
  const int64_t chunks = (N + kDynamicChunk - 1) / kDynamicChunk;
#pragma omp parallel num_threads(T)
  {
    int64_t* cnt = &part_count[static_cast<size_t>(thread_id()) * T];
#pragma omp for schedule(dynamic, 1)
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t lo = ch * kDynamicChunk, hi = std::min(N, lo + kDynamicChunk);
      compute_keys_any(pts, lo, hi, C, g, keys);
      for (int64_t i = lo; i < hi; ++i) {
        const int64_t k = keys[i];
        if (k >= 0) {
          ++cnt[T == 1 ? 0 : partition_of(mix64(static_cast<uint64_t>(k)), T)];
        } else {
          local_vid[i] = -1;  // no partition visits the points outside the grid
        }
      }
    }
  }

  // 2. first-come voxels per partition, and each point's rank inside its voxel
#pragma omp parallel for num_threads(T) schedule(static, 1)
  for (int p = 0; p < T; ++p) {
    int64_t expected = 0;
    for (int t = 0; t < T; ++t) expected += part_count[static_cast<size_t>(t) * T + p];
    Partition& part = s.parts[p];
    VoxelIndex index(expected, &part.slots);
    auto& fst = part.first;
    auto& vk = part.vkey;
    auto& cnt = part.count;
    fst.clear();
    vk.clear();
    cnt.clear();
    int64_t last_key = -1;
    int32_t last_vid = -1;
    for (int64_t i = 0; i < N; ++i) {
      const int64_t k = keys[i];
      if (k < 0) continue;
      int32_t vid;
      if (k == last_key) {
        vid = last_vid;
      } else {
        const uint64_t h = mix64(static_cast<uint64_t>(k));
        if (T > 1 && partition_of(h, T) != p) continue;
        uint64_t slot;
        vid = index.find(k, h, vk.data(), &slot);
        if (vid < 0) {
          vid = static_cast<int32_t>(vk.size());
          index.set(slot, vid);
          fst.push_back(i);
          vk.push_back(k);
          cnt.push_back(0);
        }
        last_key = k;
        last_vid = vid;
      }
      local_vid[i] = vid;
      rank[i] = cnt[vid]++;
    }
  }

  // 3. merge by first point index; voxels after the first max_voxels get -1
  int64_t M = 0;
  if (T == 1) {
    Partition& part = s.parts[0];
    const int64_t n = static_cast<int64_t>(part.first.size());
    M = std::min(n, max_voxels);
    part.gmap.resize(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) part.gmap[j] = j < M ? static_cast<int32_t>(j) : -1;
  } else {
    for (int p = 0; p < T; ++p) s.parts[p].gmap.assign(s.parts[p].first.size(), -1);
    std::vector<size_t> head(T, 0);
    while (M < max_voxels) {
      int best = -1;
      int64_t best_first = std::numeric_limits<int64_t>::max();
      for (int p = 0; p < T; ++p) {
        const auto& fst = s.parts[p].first;
        if (head[p] < fst.size() && fst[head[p]] < best_first) {
          best_first = fst[head[p]];
          best = p;
        }
      }
      if (best < 0) break;
      s.parts[best].gmap[head[best]++] = static_cast<int32_t>(M++);
    }
  }

  // 4. outputs, in one parallel region: points to their slots, voxel coordinates and counts,
  // then zeros in the unused slots (which need the counts).
  at::Tensor voxels = at::empty({M, P, C}, points.options());
  at::Tensor coords = at::empty({M, 3}, points.options().dtype(at::kInt));
  at::Tensor num = at::empty({M}, points.options().dtype(at::kInt));
  float* vox = voxels.data_ptr<float>();
  int32_t* crd = coords.data_ptr<int32_t>();
  int32_t* nump = num.data_ptr<int32_t>();
  const int TO = threads_for(N * C, kMinElementsParallel);
  switch (C) {
    case 3: write_outputs<3>(pts, N, C, P, T, g, s, M, vox, crd, nump, TO); break;
    case 4: write_outputs<4>(pts, N, C, P, T, g, s, M, vox, crd, nump, TO); break;
    case 5: write_outputs<5>(pts, N, C, P, T, g, s, M, vox, crd, nump, TO); break;
    case 6: write_outputs<6>(pts, N, C, P, T, g, s, M, vox, crd, nump, TO); break;
    default: write_outputs<0>(pts, N, C, P, T, g, s, M, vox, crd, nump, TO);
  }
  return {voxels, coords, num};
}

at::Tensor dynamic_voxelize_cpu(const at::Tensor& points, std::vector<double> voxel_size,
                                std::vector<double> range_lo, std::vector<int64_t> grid) {
  check_points(points);
  const VoxelGridSpec g = make_voxel_grid_spec(voxel_size, range_lo, grid);
  const int64_t N = points.size(0), C = points.size(1);
  at::Tensor coords = at::empty({N, 3}, points.options().dtype(at::kInt));
  const float* pts = points.data_ptr<float>();
  int32_t* out = coords.data_ptr<int32_t>();
  const int T = threads_for(N, kMinPointsParallel);
#pragma omp parallel num_threads(T)
  {
    const int t = thread_id(), nt = threads_in_team();
    const int64_t lo = N * t / nt, hi = N * (t + 1) / nt;
    block_indices_any(pts, lo, hi, C, g, [&](int64_t i, bool ok, const int64_t* c) {
      int32_t* o = out + 3 * i;
      o[0] = ok ? static_cast<int32_t>(c[2]) : -1;
      o[1] = ok ? static_cast<int32_t>(c[1]) : -1;
      o[2] = ok ? static_cast<int32_t>(c[0]) : -1;
    });
  }
  return coords;
}

}  // namespace perception
