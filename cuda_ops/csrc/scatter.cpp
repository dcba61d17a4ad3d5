// Per-voxel sum / mean / max of point features (CPU), scatter_reduce_cpu.
//
// The rows' coordinates become linear keys over the extents of the valid rows (every
// coordinate >= 0); a hash map gives each distinct key a first-come id in row order, the ids are
// ranked by key (so the voxels come out sorted lexicographically by coordinates), and each
// voxel's members are listed in row order. Each voxel is then reduced by one thread, over its
// members in row order: the sums are those of a sequential scan, whatever the thread count.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "ops.h"
#include "parallel.h"
#include "voxel_hash.h"

namespace perception {

namespace {

template <typename scalar_t, typename index_t>
std::vector<at::Tensor> scatter_reduce_impl(const at::Tensor& features, const at::Tensor& coords,
                                            int64_t reduce) {
  const int64_t N = features.size(0), C = features.size(1), D = coords.size(1);
  const scalar_t* f = features.data_ptr<scalar_t>();
  const index_t* cd = coords.data_ptr<index_t>();
  const int T = threads_for(N, kMinPointsParallel);

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
    hash::KeyMap map(N);
    int64_t last_key = -1;
    int32_t last_id = -1;
    for (int64_t i = 0; i < N; ++i) {
      const int64_t k = keys[i];
      if (k < 0) continue;
      if (k != last_key) {
        bool found;
        int32_t* v = map.find_or_insert(k, hash::mix64(static_cast<uint64_t>(k)), &found);
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
  const int TM = threads_for(M * C, kMinVoxelElementsParallel);
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
