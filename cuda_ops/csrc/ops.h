// Torch-facing declarations of the CPU ops (and, under WITH_CUDA, of the CUDA wrappers).
// Argument checking with readable messages happens in Python (perception/ops); the TORCH_CHECKs
// here only guard against misuse of the raw bindings.
#pragma once

#include <ATen/ATen.h>

#include "common.h"

#include <tuple>
#include <vector>

namespace perception {

// ---- shared by the CPU ops and the CUDA wrappers (common.cpp) -----------------------------------
// The voxel grid of voxel_size, range_lo (3,) x y z and grid (3,) x y z, checked (sizes > 0,
// grid within int32).
VoxelGridSpec make_voxel_grid_spec(const std::vector<double>& voxel_size,
                                   const std::vector<double>& lo,
                                   const std::vector<int64_t>& grid);

// ---- voxelization (voxelize.cpp) --------------------------------------------------------------
// points (N, C) float32 contiguous; voxel_size, range_lo (3,) x y z; grid (3,) x y z.
// Returns voxels (M, P, C), coords (M, 3) int32 (z, y, x), num_points (M,) int32.
std::tuple<at::Tensor, at::Tensor, at::Tensor> hard_voxelize_cpu(
    const at::Tensor& points, std::vector<double> voxel_size, std::vector<double> range_lo,
    std::vector<int64_t> grid, int64_t max_points, int64_t max_voxels);

// Per-point (z, y, x) int32, -1 rows for dropped points.
at::Tensor dynamic_voxelize_cpu(const at::Tensor& points, std::vector<double> voxel_size,
                                std::vector<double> range_lo, std::vector<int64_t> grid);

// ---- per-voxel reductions (scatter.cpp) -----------------------------------------------------
// reduce: 0 sum, 1 mean, 2 max. features (N, C) float32/float64, coords (N, D) int32/int64.
// Returns (out (M, C), voxel_coords (M, D) same dtype as coords, inverse (N,) int64 (-1 for
// rows with a negative coordinate), counts (M,) int64, argmax (M, C) int64 (max only, else
// empty)). Voxels are sorted by their linear key, i.e. lexicographically.
std::vector<at::Tensor> scatter_reduce_cpu(const at::Tensor& features, const at::Tensor& coords,
                                           int64_t reduce);

// ---- bev_pool (bev_pool.cpp) --------------------------------------------------------------------
// geometry (N, 4) int32/int64 (b, z, y, x). Returns (order int64 (K,), starts int64 (I,),
// lengths int64 (I,), ranks int64 (I,), dropped int64 (N - K,), point_rank int64 (N,)): points
// sorted by cell rank (stable), one interval per non-empty cell, the points outside the grid and
// the cell rank of every point (-1 outside).
std::vector<at::Tensor> bev_pool_plan_cpu(const at::Tensor& geometry, int64_t batch,
                                          int64_t depth, int64_t height, int64_t width);

// features (N, C) -> (B, C, Z, H, W).
at::Tensor bev_pool_forward_cpu(const at::Tensor& features, const at::Tensor& order,
                                const at::Tensor& starts, const at::Tensor& lengths,
                                const at::Tensor& ranks, const at::Tensor& point_rank,
                                int64_t batch, int64_t depth, int64_t height, int64_t width);

// grad_out (B, C, Z, H, W) -> grad features (N, C); dropped points get 0.
at::Tensor bev_pool_backward_cpu(const at::Tensor& grad_out, const at::Tensor& order,
                                 const at::Tensor& starts, const at::Tensor& lengths,
                                 const at::Tensor& ranks, const at::Tensor& point_rank,
                                 int64_t num_points);

// ---- boxes (boxes.cpp) -------------------------------------------------------------------
// a (N, 7), b (M, 7) float32/float64 -> (N, M) same dtype. mode 0 BEV, 1 3D.
at::Tensor boxes_iou_cpu(const at::Tensor& a, const at::Tensor& b, int64_t mode);

// Kept indices (int64), sorted by descending score (ties: lower index first). labels: (N,)
// int64 or an empty tensor (class-agnostic). Suppress when IoU > threshold.
at::Tensor nms_bev_cpu(const at::Tensor& boxes, const at::Tensor& scores,
                       const at::Tensor& labels, double iou_threshold);

// centers (N, 2); suppress when the centre distance <= distance.
at::Tensor circle_nms_cpu(const at::Tensor& centers, const at::Tensor& scores,
                          const at::Tensor& labels, double distance);

#ifdef WITH_CUDA
// ---- CUDA wrappers (cuda/wrappers.cpp). `stream` is torch.cuda.current_stream().cuda_stream.
std::vector<at::Tensor> hard_voxelize_cuda(const at::Tensor& points,
                                           std::vector<double> voxel_size,
                                           std::vector<double> range_lo,
                                           std::vector<int64_t> grid, int64_t max_points,
                                           int64_t max_voxels, int64_t stream);
at::Tensor dynamic_voxelize_cuda(const at::Tensor& points, std::vector<double> voxel_size,
                                 std::vector<double> range_lo, std::vector<int64_t> grid,
                                 int64_t stream);
std::vector<at::Tensor> scatter_reduce_cuda(const at::Tensor& features, const at::Tensor& coords,
                                            int64_t reduce, int64_t stream);
// bev_pool forward: levels = [chunk_start_0, chunk_len_0, chunk_start_1, ...] int64 (the chunk
// tables of the plan, perception/ops/bev_pool.py); the last level has one chunk per interval,
// whose sum goes to cell rank ranks[i]. Returns (B, C, Z, H, W).
at::Tensor bev_pool_forward_cuda(const at::Tensor& features, const at::Tensor& order,
                                 const at::Tensor& ranks, const std::vector<at::Tensor>& levels,
                                 int64_t batch, int64_t depth, int64_t height, int64_t width,
                                 int64_t stream);
// grad_out (B, C, Z, H, W) -> grad features (N, C) (N = point_rank.numel()), 0 for dropped
// points (point_rank -1).
at::Tensor bev_pool_backward_cuda(const at::Tensor& grad_out, const at::Tensor& point_rank,
                                  int64_t stream);
at::Tensor boxes_iou_cuda(const at::Tensor& a, const at::Tensor& b, int64_t mode, int64_t stream);
at::Tensor nms_bev_cuda(const at::Tensor& boxes, const at::Tensor& scores,
                        const at::Tensor& labels, double iou_threshold, int64_t stream);
at::Tensor circle_nms_cuda(const at::Tensor& centers, const at::Tensor& scores,
                           const at::Tensor& labels, double distance, int64_t stream);
#endif

}  // namespace perception
