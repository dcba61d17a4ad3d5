// Small definitions shared by the C++ (CPU) and CUDA sources. No torch headers here: this file
// is included by the raw-pointer .cu files, which must compile with plain `nvcc -c`.
#pragma once

#include <math.h>

#include <cstdint>

#if defined(__CUDACC__)
#define PERC_HD __host__ __device__ inline
#else
#define PERC_HD inline
#endif

namespace perception {

// Element types understood by the raw-pointer CUDA launchers (the bindings map torch dtypes).
enum DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2 };

// Voxel grid description shared by the voxelization kernels. Indices are
// floor((p - lo) / size) computed in float32 (spconv/mmcv convention); a point whose index
// falls outside [0, grid) on any axis is dropped (upper bound exclusive).
struct VoxelGridSpec {
  float size[3];    // voxel size x, y, z
  float lo[3];      // lower corner of the range x, y, z
  int64_t grid[3];  // number of voxels along x, y, z
};

// Integer voxel index of point p along the 3 axes (x, y, z) in c; false when the point is
// dropped (outside the grid, NaN or inf). Equivalent to floor((p - lo) / size) in float32 with
// a [0, grid) test: for q >= 0, floor(q) == trunc(q), and floor(q) < 2^31 <=> q < 2^31, so no
// floorf call is needed; NaN fails q >= 0.
PERC_HD bool voxel_index(const float* p, const VoxelGridSpec& g, int64_t* c) {
  for (int j = 0; j < 3; ++j) {
    const float q = (p[j] - g.lo[j]) / g.size[j];
    if (!(q >= 0.0f) || !(q < 2147483648.0f)) return false;
    c[j] = static_cast<int64_t>(q);
    if (c[j] >= g.grid[j]) return false;
  }
  return true;
}

// Linear key of the voxel holding point p (x, y, z first), or -1 when the point is dropped.
// key = (z * gy + y) * gx + x.
PERC_HD int64_t voxel_key(const float* p, const VoxelGridSpec& g) {
  int64_t c[3];
  if (!voxel_index(p, g, c)) return -1;
  return (c[2] * g.grid[1] + c[1]) * g.grid[0] + c[0];
}

// Key -> (z, y, x).
PERC_HD void voxel_key_decode(int64_t key, const VoxelGridSpec& g, int32_t* zyx) {
  const int64_t x = key % g.grid[0];
  const int64_t rest = key / g.grid[0];
  zyx[2] = static_cast<int32_t>(x);
  zyx[1] = static_cast<int32_t>(rest % g.grid[1]);
  zyx[0] = static_cast<int32_t>(rest / g.grid[1]);
}

// Greedy scan of an NMS suppression bit mask (row i: which later boxes, in score order, box i
// suppresses). Writes the kept positions (in score order) to keep, returns their number.
// col_blocks = ceil(n / 64). removed must hold col_blocks zeroed words.
inline int64_t nms_scan_mask(const uint64_t* mask, int64_t n, int64_t col_blocks,
                             uint64_t* removed, int64_t* keep) {
  int64_t num = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t block = i / 64, bit = i % 64;
    if (removed[block] & (1ULL << bit)) continue;
    keep[num++] = i;
    const uint64_t* row = mask + i * col_blocks;
    for (int64_t j = block; j < col_blocks; ++j) removed[j] |= row[j];
  }
  return num;
}

}  // namespace perception
