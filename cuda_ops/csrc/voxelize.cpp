// Hard and dynamic voxelization, and the per-voxel scatter reductions (CPU).
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
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>

#include "common.h"
#include "ops.h"

namespace perception {

int op_threads() { return std::max(1, at::get_num_threads()); }

namespace {

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int omp_threads_in_team() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// splitmix64 finalizer: a good mix of all key bits.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

inline int partition_of(uint64_t h, int parts) {
  return static_cast<int>(((h >> 32) * static_cast<uint64_t>(parts)) >> 32);
}

// Open-addressing map from a non-negative int64 key to an int32 value (linear probing).
class KeyMap {
 public:
  explicit KeyMap(int64_t expected) {
    int64_t cap = 16;
    while (cap < 2 * expected + 1) cap <<= 1;
    slots_.assign(static_cast<size_t>(cap), Slot{-1, 0});
    mask_ = static_cast<uint64_t>(cap - 1);
  }
  // Value slot of key; *found tells whether the key was present (else it is inserted).
  int32_t* find_or_insert(int64_t key, uint64_t h, bool* found) {
    uint64_t i = h & mask_;
    while (true) {
      Slot& s = slots_[i];
      if (s.key == key) {
        *found = true;
        return &s.val;
      }
      if (s.key < 0) {
        s.key = key;
        *found = false;
        return &s.val;
      }
      i = (i + 1) & mask_;
    }
  }

 private:
  struct Slot {
    int64_t key;
    int32_t val;
  };
  std::vector<Slot> slots_;
  uint64_t mask_ = 0;
};

// Compact open-addressing index of the voxels of one partition: 4-byte slots hold the voxel
// number, whose key is read back from the voxel list (recent voxels are hot in cache).
class VoxelIndex {
 public:
  // slots is caller-owned storage, reused across calls (its capacity is kept).
  VoxelIndex(int64_t expected, std::vector<int32_t>* slots) : slots_(slots) {
    int64_t cap = 16;
    while (cap < expected + expected / 2 + 1) cap <<= 1;
    slots_->assign(static_cast<size_t>(cap), -1);
    mask_ = static_cast<uint64_t>(cap - 1);
  }
  // Voxel number of key, or -1 after finding the empty slot for it (fill it with `set`).
  int32_t find(int64_t key, uint64_t h, const int64_t* keys, uint64_t* slot) const {
    const int32_t* s = slots_->data();
    uint64_t i = h & mask_;
    while (true) {
      const int32_t v = s[i];
      if (v < 0 || keys[v] == key) {
        *slot = i;
        return v;
      }
      i = (i + 1) & mask_;
    }
  }
  void set(uint64_t slot, int32_t v) { (*slots_)[slot] = v; }

 private:
  std::vector<int32_t>* slots_;
  uint64_t mask_ = 0;
};

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

}  // namespace

VoxelGridSpec make_voxel_grid_spec(const std::vector<double>& voxel_size,
                                   const std::vector<double>& lo,
                                   const std::vector<int64_t>& grid) {
  TORCH_CHECK(voxel_size.size() == 3 && lo.size() == 3 && grid.size() == 3,
              "voxel_size, range_lo and grid must have 3 values");
  VoxelGridSpec g;
  for (int j = 0; j < 3; ++j) {
    g.size[j] = static_cast<float>(voxel_size[j]);
    g.lo[j] = static_cast<float>(lo[j]);
    g.grid[j] = grid[j];
    TORCH_CHECK(g.size[j] > 0.0f && grid[j] > 0 && grid[j] <= std::numeric_limits<int32_t>::max(),
                "invalid voxel grid");
  }
  return g;
}

namespace {

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
#pragma omp for schedule(dynamic, 8192) nowait
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
#pragma omp for schedule(dynamic, 8192) nowait
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
#pragma omp for schedule(dynamic, 8192)
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
  const int T = N < 16384 ? 1 : op_threads();
  resize_no_shrink(s.keys, static_cast<size_t>(N));
  resize_no_shrink(s.local_vid, static_cast<size_t>(N));
  resize_no_shrink(s.rank, static_cast<size_t>(N));
  if (s.parts.size() < static_cast<size_t>(T)) s.parts.resize(static_cast<size_t>(T));
  int64_t* keys = s.keys.data();
  int32_t* local_vid = s.local_vid.data();
  int32_t* rank = s.rank.data();
  std::vector<int64_t> part_count(static_cast<size_t>(T) * T, 0);  // [thread][partition]

  // 1. keys (and the number of points of each partition, to size its index)
  // Dynamic chunks: a thread that is descheduled (a busy machine) does not hold the others up.
  constexpr int64_t kChunk = 8192;
  const int64_t chunks = (N + kChunk - 1) / kChunk;
#pragma omp parallel num_threads(T)
  {
    int64_t* cnt = &part_count[static_cast<size_t>(thread_id()) * T];
#pragma omp for schedule(dynamic, 1)
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t lo = ch * kChunk, hi = std::min(N, lo + kChunk);
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
  const int TO = (N * C < 65536) ? 1 : op_threads();
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
  const int T = N < 16384 ? 1 : op_threads();
#pragma omp parallel num_threads(T)
  {
    const int t = thread_id(), nt = omp_threads_in_team();
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

namespace {

template <typename scalar_t, typename index_t>
std::vector<at::Tensor> scatter_reduce_impl(const at::Tensor& features, const at::Tensor& coords,
                                            int64_t reduce) {
  const int64_t N = features.size(0), C = features.size(1), D = coords.size(1);
  const scalar_t* f = features.data_ptr<scalar_t>();
  const index_t* cd = coords.data_ptr<index_t>();
  const int T = N < 16384 ? 1 : op_threads();

  // Extents of the valid rows (all coordinates >= 0).
  std::vector<int64_t> ext(static_cast<size_t>(D), 0);
  {
    std::vector<int64_t> local(static_cast<size_t>(T) * D, -1);
#pragma omp parallel num_threads(T)
    {
      int64_t* mx = &local[static_cast<size_t>(thread_id()) * D];
#pragma omp for schedule(static)
      for (int64_t i = 0; i < N; ++i) {
        const index_t* row = cd + i * D;
        bool ok = true;
        for (int64_t d = 0; d < D; ++d) ok = ok && row[d] >= 0;
        if (!ok) continue;
        for (int64_t d = 0; d < D; ++d) mx[d] = std::max<int64_t>(mx[d], row[d]);
      }
    }
    for (int t = 0; t < T; ++t)
      for (int64_t d = 0; d < D; ++d)
        ext[d] = std::max<int64_t>(ext[d], local[static_cast<size_t>(t) * D + d] + 1);
  }
  double cells = 1.0;
  for (int64_t d = 0; d < D; ++d) cells *= static_cast<double>(std::max<int64_t>(ext[d], 1));
  TORCH_CHECK(cells < 4.6e18, "scatter_reduce: coordinate extents too large for int64 keys");

  std::vector<int64_t> keys(static_cast<size_t>(N));
#pragma omp parallel for num_threads(T) schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const index_t* row = cd + i * D;
    int64_t k = 0;
    for (int64_t d = 0; d < D; ++d) {
      if (row[d] < 0) {
        k = -1;
        break;
      }
      k = k * ext[d] + row[d];
    }
    keys[i] = k;
  }

  // Unique keys: first-come ids, then sorted.
  std::vector<int32_t> prov(static_cast<size_t>(N), -1);
  std::vector<int64_t> ukeys;
  {
    KeyMap map(N);
    int64_t last_key = -1;
    int32_t last_id = -1;
    for (int64_t i = 0; i < N; ++i) {
      const int64_t k = keys[i];
      if (k < 0) continue;
      if (k != last_key) {
        bool found;
        int32_t* v = map.find_or_insert(k, mix64(static_cast<uint64_t>(k)), &found);
        if (!found) {
          *v = static_cast<int32_t>(ukeys.size());
          ukeys.push_back(k);
        }
        last_key = k;
        last_id = *v;
      }
      prov[i] = last_id;
    }
  }
  const int64_t M = static_cast<int64_t>(ukeys.size());
  std::vector<int32_t> perm(static_cast<size_t>(M));
  std::iota(perm.begin(), perm.end(), 0);
  std::sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return ukeys[a] < ukeys[b]; });
  std::vector<int32_t> rank_of(static_cast<size_t>(M));
  for (int64_t r = 0; r < M; ++r) rank_of[perm[r]] = static_cast<int32_t>(r);

  at::Tensor inverse = at::empty({N}, features.options().dtype(at::kLong));
  int64_t* inv = inverse.data_ptr<int64_t>();
#pragma omp parallel for num_threads(T) schedule(static)
  for (int64_t i = 0; i < N; ++i) inv[i] = prov[i] < 0 ? -1 : rank_of[prov[i]];

  // CSR of the points of each voxel, in input order.
  at::Tensor counts = at::zeros({M}, features.options().dtype(at::kLong));
  int64_t* cnt = counts.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i)
    if (inv[i] >= 0) ++cnt[inv[i]];
  std::vector<int64_t> offs(static_cast<size_t>(M) + 1, 0);
  for (int64_t m = 0; m < M; ++m) offs[m + 1] = offs[m] + cnt[m];
  std::vector<int64_t> fill(offs.begin(), offs.end() - 1);
  std::vector<int64_t> members(static_cast<size_t>(offs[M]));
  for (int64_t i = 0; i < N; ++i)
    if (inv[i] >= 0) members[fill[inv[i]]++] = i;

  at::Tensor vcoords = at::empty({M, D}, coords.options());
  index_t* vc = vcoords.data_ptr<index_t>();
  at::Tensor out = at::empty({M, C}, features.options());
  scalar_t* o = out.data_ptr<scalar_t>();
  at::Tensor argmax = reduce == 2 ? at::empty({M, C}, features.options().dtype(at::kLong))
                                  : at::empty({0}, features.options().dtype(at::kLong));
  int64_t* am = reduce == 2 ? argmax.data_ptr<int64_t>() : nullptr;
  const int TM = M * C < 16384 ? 1 : op_threads();
#pragma omp parallel for num_threads(TM) schedule(dynamic, 64)
  for (int64_t m = 0; m < M; ++m) {
    const int64_t s = offs[m], e = offs[m + 1];
    std::memcpy(vc + m * D, cd + members[s] * D, sizeof(index_t) * D);
    scalar_t* om = o + m * C;
    std::memcpy(om, f + members[s] * C, sizeof(scalar_t) * C);
    if (reduce == 2) {
      int64_t* amm = am + m * C;
      for (int64_t c = 0; c < C; ++c) amm[c] = members[s];
      for (int64_t k = s + 1; k < e; ++k) {
        const scalar_t* row = f + members[k] * C;
        for (int64_t c = 0; c < C; ++c) {
          if (row[c] > om[c]) {
            om[c] = row[c];
            amm[c] = members[k];
          }
        }
      }
    } else {
      for (int64_t k = s + 1; k < e; ++k) {
        const scalar_t* row = f + members[k] * C;
        for (int64_t c = 0; c < C; ++c) om[c] += row[c];
      }
      if (reduce == 1) {
        const scalar_t n = static_cast<scalar_t>(e - s);
        for (int64_t c = 0; c < C; ++c) om[c] /= n;
      }
    }
  }
  return {out, vcoords, inverse, counts, argmax};
}

}  // namespace

std::vector<at::Tensor> scatter_reduce_cpu(const at::Tensor& features, const at::Tensor& coords,
                                           int64_t reduce) {
  TORCH_CHECK(features.device().is_cpu() && coords.device().is_cpu(), "CPU tensors expected");
  TORCH_CHECK(features.dim() == 2 && coords.dim() == 2 && coords.size(0) == features.size(0) &&
                  coords.size(1) >= 1,
              "features (N, C) and coords (N, D) expected");
  TORCH_CHECK(features.is_contiguous() && coords.is_contiguous(), "contiguous tensors expected");
  TORCH_CHECK(reduce >= 0 && reduce <= 2, "reduce must be 0 (sum), 1 (mean) or 2 (max)");
  std::vector<at::Tensor> res;
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "scatter_reduce_cpu", [&] {
    if (coords.scalar_type() == at::kInt) {
      res = scatter_reduce_impl<scalar_t, int32_t>(features, coords, reduce);
    } else {
      TORCH_CHECK(coords.scalar_type() == at::kLong, "coords must be int32 or int64");
      res = scatter_reduce_impl<scalar_t, int64_t>(features, coords, reduce);
    }
  });
  return res;
}

}  // namespace perception
