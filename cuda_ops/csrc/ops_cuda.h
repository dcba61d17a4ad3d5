// Raw-pointer CUDA launchers of the custom ops (cuda/*.cu). No torch and no CUDA headers here:
// the .cu files compile with plain `nvcc -c`, and the torch-facing wrappers (cuda/wrappers.cpp)
// include this header only. Streams are passed as void* (a cudaStream_t, e.g. from
// torch.cuda.current_stream().cuda_stream). Every launcher returns a CUDA error code (0 = ok);
// error_string() turns it into text.
#pragma once

#include <cstdint>

#include "common.h"

namespace perception {
namespace cuda {

using Stream = void*;

const char* error_string(int code);

// ---- voxelization (voxelize.cu) ----------------------------------------------------------------
// keys[i]: linear voxel key of point i (points (n, c) float32), -1 when dropped.
int voxel_keys(const float* points, int64_t n, int64_t c, VoxelGridSpec grid, int64_t* keys,
               Stream stream);
// coords (n, 3) int32 (z, y, x), rows of -1 for dropped points.
int dynamic_voxelize(const float* points, int64_t n, int64_t c, VoxelGridSpec grid,
                     int32_t* coords, Stream stream);
// Hard voxelization scatter: entry e of the sorted order copies point point_of[e] to
// voxels[voxel_of[e]][rank_of[e]] when voxel_of[e] < num_voxels and rank_of[e] < max_points.
// voxels (num_voxels, max_points, c) must be zeroed beforehand.
int hard_voxelize_scatter(const float* points, int64_t c, const int64_t* point_of,
                          const int64_t* voxel_of, const int64_t* rank_of, int64_t entries,
                          int64_t max_points, int64_t num_voxels, float* voxels, Stream stream);
// coords (m, 3) int32 (z, y, x) of voxel keys.
int decode_voxel_keys(const int64_t* keys, int64_t m, VoxelGridSpec grid, int32_t* coords,
                      Stream stream);
// Per-voxel reduction over members[offsets[v] .. offsets[v+1]) (point indices, in input
// order): reduce 0 sum, 1 mean, 2 max (argmax (m, c): first point holding the maximum).
// features (n, c) of dtype (DType); out (m, c) same dtype.
int segment_reduce(int dtype, const void* features, int64_t c, const int64_t* members,
                   const int64_t* offsets, int64_t m, int reduce, void* out, int64_t* argmax,
                   Stream stream);

// ---- bev_pool (bev_pool.cu) ---------------------------------------------------------------
// One level of the chunked interval sums of the forward. Chunk j sums, in order, the rows
// src[gather[q]] (gather given: level 0, features (N, c) in input order) or src[q] (partial rows
// of the previous level) for q in [chunk_start[j], chunk_start[j] + chunk_len[j]). dst_row null:
// the sum is row j of dst (chunks, c); else it goes to the channel-first output
// dst (B, c, cells_per_batch) at cell rank dst_row[j] (zeroed beforehand). dtypes: same on both
// sides, or float16 -> float32 -> float16 (accumulation in float; double for float64).
int bev_pool_chunk_sum(int src_dtype, int dst_dtype, const void* src, int64_t c,
                       const int64_t* gather, const int64_t* chunk_start,
                       const int64_t* chunk_len, int64_t chunks, const int64_t* dst_row,
                       int64_t cells_per_batch, void* dst, Stream stream);
// Backward: grad_features (n, c) row i = grad_rows row point_rank[i] (grad_rows: the output
// gradient channels-last, (B * cells, c)); zero where point_rank[i] < 0.
int bev_pool_gather_rows(int dtype, const void* grad_rows, int64_t c, const int64_t* point_rank,
                         int64_t n, void* grad_features, Stream stream);

// ---- boxes (boxes.cu) ---------------------------------------------------------------------
// out (n, m) of dtype; mode 0 BEV IoU, 1 3D IoU. dtype kFloat32 or kFloat64.
int boxes_iou(int dtype, const void* a, int64_t n, const void* b, int64_t m, int mode, void* out,
              Stream stream);
// NMS suppression masks of boxes sorted by descending score: mask (n, ceil(n / 64)) words, bit
// j of row i set when i < j, same label (labels may be null) and IoU > threshold (nms) or
// centre distance <= distance (circle). Scan with nms_scan_mask (common.h).
int nms_bev_mask(int dtype, const void* boxes, const int64_t* labels, int64_t n,
                 double iou_threshold, uint64_t* mask, Stream stream);
int circle_nms_mask(int dtype, const void* centers, const int64_t* labels, int64_t n,
                    double distance, uint64_t* mask, Stream stream);

}  // namespace cuda
}  // namespace perception
