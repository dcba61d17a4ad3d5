// Torch-facing wrappers of the CUDA launchers (compiled only when torch has CUDA; WITH_CUDA).
//
// They use generic ATen ops (sort, unique, cumsum, ...) on the device for the parts that need no
// custom kernel, and the raw-pointer launchers of ops_cuda.h for the rest. No CUDA or c10::cuda
// header is needed: the stream comes from Python as an integer
// (torch.cuda.current_stream().cuda_stream), so this file also compiles, for checking, against
// a CPU-only torch (tests/ops/test_cuda_compile.py).
#include <ATen/ATen.h>

#include <vector>

#include "ops.h"
#include "ops_cuda.h"

namespace perception {

namespace {

cuda::Stream as_stream(int64_t stream) { return reinterpret_cast<cuda::Stream>(stream); }

void check_cuda(int code, const char* what) {
  TORCH_CHECK(code == 0, what, " failed: ", cuda::error_string(code));
}

void check_on_cuda(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

int dtype_code(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return kFloat32;
    case at::kDouble: return kFloat64;
    case at::kHalf: return kFloat16;
    default: TORCH_CHECK(false, "unsupported dtype ", t.scalar_type());
  }
  return -1;
}

}  // namespace

std::vector<at::Tensor> hard_voxelize_cuda(const at::Tensor& points,
                                           std::vector<double> voxel_size,
                                           std::vector<double> range_lo,
                                           std::vector<int64_t> grid, int64_t max_points,
                                           int64_t max_voxels, int64_t stream) {
  check_on_cuda(points, "points");
  TORCH_CHECK(points.scalar_type() == at::kFloat && points.dim() == 2 && points.size(1) >= 3,
              "points must be float32 (N, C>=3)");
  const VoxelGridSpec g = make_voxel_grid_spec(voxel_size, range_lo, grid);
  const int64_t N = points.size(0), C = points.size(1), P = max_points;
  auto lopts = points.options().dtype(at::kLong);
  at::Tensor keys = at::empty({N}, lopts);
  check_cuda(cuda::voxel_keys(points.data_ptr<float>(), N, C, g, keys.data_ptr<int64_t>(),
                              as_stream(stream)),
             "voxel_keys");
  // Stable sort of the kept points by key: points of a voxel stay in input order.
  at::Tensor valid_idx = at::nonzero(keys >= 0).squeeze(1);
  at::Tensor sorted_keys, perm;
  std::tie(sorted_keys, perm) = at::sort(keys.index_select(0, valid_idx), /*stable=*/true,
                                         /*dim=*/0, /*descending=*/false);
  at::Tensor point_of = valid_idx.index_select(0, perm);
  const int64_t K = sorted_keys.numel();
  at::Tensor is_new = at::ones({K}, points.options().dtype(at::kBool));
  if (K > 1) is_new.slice(0, 1).copy_(sorted_keys.slice(0, 1).ne(sorted_keys.slice(0, 0, K - 1)));
  at::Tensor seg = at::cumsum(is_new, 0, at::kLong) - 1;       // voxel segment of each entry
  at::Tensor seg_start = at::nonzero(is_new).squeeze(1);
  at::Tensor rank_of = at::arange(K, lopts) - seg_start.index_select(0, seg);
  at::Tensor first = point_of.index_select(0, seg_start);      // first point of each voxel
  at::Tensor by_first = at::argsort(first, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  const int64_t S = seg_start.numel();
  at::Tensor vid_of_seg = at::empty({S}, lopts);
  vid_of_seg.index_copy_(0, by_first, at::arange(S, lopts));  // first-come voxel order
  at::Tensor voxel_of = vid_of_seg.index_select(0, seg);
  const int64_t M = std::min(S, max_voxels);

  at::Tensor voxels = at::zeros({M, P, C}, points.options());
  check_cuda(cuda::hard_voxelize_scatter(points.data_ptr<float>(), C, point_of.data_ptr<int64_t>(),
                                         voxel_of.data_ptr<int64_t>(),
                                         rank_of.data_ptr<int64_t>(), K, P, M,
                                         voxels.data_ptr<float>(), as_stream(stream)),
             "hard_voxelize_scatter");
  at::Tensor kept_vid = voxel_of.masked_select(voxel_of < M);
  at::Tensor num = at::bincount(kept_vid, {}, M).clamp_max(P).to(at::kInt);
  at::Tensor vkeys = sorted_keys.index_select(0, seg_start)
                         .index_select(0, by_first.slice(0, 0, M)).contiguous();
  at::Tensor coords = at::empty({M, 3}, points.options().dtype(at::kInt));
  check_cuda(cuda::decode_voxel_keys(vkeys.data_ptr<int64_t>(), M, g, coords.data_ptr<int32_t>(),
                                     as_stream(stream)),
             "decode_voxel_keys");
  return {voxels, coords, num};
}

at::Tensor dynamic_voxelize_cuda(const at::Tensor& points, std::vector<double> voxel_size,
                                 std::vector<double> range_lo, std::vector<int64_t> grid,
                                 int64_t stream) {
  check_on_cuda(points, "points");
  TORCH_CHECK(points.scalar_type() == at::kFloat && points.dim() == 2 && points.size(1) >= 3,
              "points must be float32 (N, C>=3)");
  const VoxelGridSpec g = make_voxel_grid_spec(voxel_size, range_lo, grid);
  at::Tensor coords = at::empty({points.size(0), 3}, points.options().dtype(at::kInt));
  check_cuda(cuda::dynamic_voxelize(points.data_ptr<float>(), points.size(0), points.size(1), g,
                                    coords.data_ptr<int32_t>(), as_stream(stream)),
             "dynamic_voxelize");
  return coords;
}

std::vector<at::Tensor> scatter_reduce_cuda(const at::Tensor& features, const at::Tensor& coords,
                                            int64_t reduce, int64_t stream) {
  check_on_cuda(features, "features");
  check_on_cuda(coords, "coords");
  TORCH_CHECK(reduce >= 0 && reduce <= 2, "reduce must be 0 (sum), 1 (mean) or 2 (max)");
  const int64_t N = features.size(0), C = features.size(1), D = coords.size(1);
  auto lopts = features.options().dtype(at::kLong);
  at::Tensor crd = coords.to(at::kLong);
  at::Tensor valid = (crd >= 0).all(1);
  at::Tensor valid_idx = at::nonzero(valid).squeeze(1);
  at::Tensor cv = crd.index_select(0, valid_idx);
  const int64_t K = valid_idx.numel();
  // Linear keys (row-major over the extents of the valid rows): sorted keys = sorted coords.
  at::Tensor key = at::zeros({K}, lopts);
  if (K > 0) {
    at::Tensor ext = (std::get<0>(cv.max(0)) + 1).cpu();
    const int64_t* e = ext.data_ptr<int64_t>();
    for (int64_t d = 0; d < D; ++d) key = key * e[d] + cv.select(1, d);
  }
  at::Tensor uniq, inv, counts;
  std::tie(uniq, inv, counts) = at::_unique2(key, /*sorted=*/true, /*return_inverse=*/true,
                                             /*return_counts=*/true);
  const int64_t M = uniq.numel();
  at::Tensor inverse = at::full({N}, -1, lopts);
  inverse.index_copy_(0, valid_idx, inv);
  // CSR: the points of each voxel in input order (stable sort by voxel).
  at::Tensor by_voxel = at::argsort(inv, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  at::Tensor members = valid_idx.index_select(0, by_voxel).contiguous();
  at::Tensor offsets = at::zeros({M + 1}, lopts);
  if (M > 0) offsets.slice(0, 1).copy_(at::cumsum(counts, 0));
  at::Tensor out = at::empty({M, C}, features.options());
  at::Tensor argmax = reduce == 2 ? at::empty({M, C}, lopts) : at::empty({0}, lopts);
  check_cuda(cuda::segment_reduce(dtype_code(features), features.data_ptr(), C,
                                  members.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(), M,
                                  static_cast<int>(reduce), out.data_ptr(),
                                  reduce == 2 ? argmax.data_ptr<int64_t>() : nullptr,
                                  as_stream(stream)),
             "segment_reduce");
  at::Tensor vcoords =
      coords.index_select(0, members.index_select(0, offsets.slice(0, 0, M))).contiguous();
  return {out, vcoords, inverse, counts.to(at::kLong), argmax};
}

at::Tensor bev_pool_forward_cuda(const at::Tensor& features, const at::Tensor& order,
                                 const at::Tensor& ranks, const std::vector<at::Tensor>& levels,
                                 int64_t batch, int64_t depth, int64_t height, int64_t width,
                                 int64_t stream) {
  check_on_cuda(features, "features");
  for (const at::Tensor* t : {&order, &ranks}) {
    check_on_cuda(*t, "bev_pool plan");
    TORCH_CHECK(t->scalar_type() == at::kLong, "bev_pool plan tensors must be int64");
  }
  TORCH_CHECK(levels.size() % 2 == 0, "bev_pool levels: pairs of (chunk_start, chunk_len)");
  for (const at::Tensor& t : levels) {
    check_on_cuda(t, "bev_pool levels");
    TORCH_CHECK(t.scalar_type() == at::kLong, "bev_pool levels must be int64");
  }
  const int64_t C = features.size(1), cells = depth * height * width;
  at::Tensor out = at::zeros({batch, C, depth, height, width}, features.options());
  const size_t num_levels = levels.size() / 2;
  if (ranks.numel() == 0 || C == 0) return out;
  TORCH_CHECK(num_levels > 0 && levels[2 * (num_levels - 1)].numel() == ranks.numel(),
              "bev_pool levels: the last level must have one chunk per interval");
  // Partial rows accumulate in float (float16 input) or in the input's own dtype.
  const auto acc_type = features.scalar_type() == at::kHalf ? at::kFloat
                                                            : features.scalar_type();
  at::Tensor src = features;
  for (size_t l = 0; l < num_levels; ++l) {
    const at::Tensor& start = levels[2 * l];
    const at::Tensor& len = levels[2 * l + 1];
    TORCH_CHECK(start.numel() == len.numel(), "bev_pool levels: mismatched chunk tables");
    const bool last = l + 1 == num_levels;
    at::Tensor dst = last ? out : at::empty({start.numel(), C}, features.options().dtype(acc_type));
    check_cuda(cuda::bev_pool_chunk_sum(dtype_code(src), dtype_code(dst), src.data_ptr(), C,
                                        l == 0 ? order.data_ptr<int64_t>() : nullptr,
                                        start.data_ptr<int64_t>(), len.data_ptr<int64_t>(),
                                        start.numel(), last ? ranks.data_ptr<int64_t>() : nullptr,
                                        cells, dst.data_ptr(), as_stream(stream)),
               "bev_pool_chunk_sum");
    src = dst;
  }
  return out;
}

at::Tensor bev_pool_backward_cuda(const at::Tensor& grad_out, const at::Tensor& point_rank,
                                  int64_t stream) {
  check_on_cuda(grad_out, "grad_out");
  check_on_cuda(point_rank, "bev_pool plan");
  TORCH_CHECK(grad_out.dim() == 5, "grad_out must be (B, C, Z, H, W)");
  TORCH_CHECK(point_rank.scalar_type() == at::kLong, "bev_pool plan tensors must be int64");
  const int64_t B = grad_out.size(0), C = grad_out.size(1);
  const int64_t cells = grad_out.size(2) * grad_out.size(3) * grad_out.size(4);
  // Channels-last copy (a small transpose): each point then copies one contiguous row.
  at::Tensor rows = grad_out.reshape({B, C, cells}).transpose(1, 2).contiguous();
  at::Tensor grad = at::empty({point_rank.numel(), C}, grad_out.options());
  check_cuda(cuda::bev_pool_gather_rows(dtype_code(grad_out), rows.data_ptr(), C,
                                        point_rank.data_ptr<int64_t>(), point_rank.numel(),
                                        grad.data_ptr(), as_stream(stream)),
             "bev_pool_gather_rows");
  return grad;
}

at::Tensor boxes_iou_cuda(const at::Tensor& a, const at::Tensor& b, int64_t mode, int64_t stream) {
  check_on_cuda(a, "a");
  check_on_cuda(b, "b");
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "box dtypes differ");
  at::Tensor out = at::empty({a.size(0), b.size(0)}, a.options());
  check_cuda(cuda::boxes_iou(dtype_code(a), a.data_ptr(), a.size(0), b.data_ptr(), b.size(0),
                             static_cast<int>(mode), out.data_ptr(), as_stream(stream)),
             "boxes_iou");
  return out;
}

namespace {

// Sort by descending score (stable: ties keep the input order), build the suppression mask on
// the device, scan it on the host.
template <typename MaskFn>
at::Tensor greedy_nms_cuda(const at::Tensor& items, const at::Tensor& scores,
                           const at::Tensor& labels, MaskFn make_mask) {
  const int64_t n = items.size(0);
  auto lopts = items.options().dtype(at::kLong);
  if (n == 0) return at::empty({0}, lopts);
  at::Tensor order = at::argsort(scores, /*stable=*/true, /*dim=*/0, /*descending=*/true);
  at::Tensor sorted = items.index_select(0, order).contiguous();
  at::Tensor sorted_labels =
      labels.numel() ? labels.index_select(0, order).contiguous() : at::Tensor();
  const int64_t col_blocks = (n + 63) / 64;
  at::Tensor mask = at::empty({n, col_blocks}, lopts);
  make_mask(sorted, sorted_labels.defined() ? sorted_labels.data_ptr<int64_t>() : nullptr,
            reinterpret_cast<uint64_t*>(mask.data_ptr<int64_t>()));
  at::Tensor mask_cpu = mask.cpu();
  std::vector<uint64_t> removed(static_cast<size_t>(col_blocks), 0);
  at::Tensor keep_pos = at::empty({n}, at::TensorOptions().dtype(at::kLong));
  const int64_t num = nms_scan_mask(reinterpret_cast<const uint64_t*>(mask_cpu.data_ptr<int64_t>()),
                                    n, col_blocks, removed.data(), keep_pos.data_ptr<int64_t>());
  return order.index_select(0, keep_pos.slice(0, 0, num).to(items.device()));
}

}  // namespace

at::Tensor nms_bev_cuda(const at::Tensor& boxes, const at::Tensor& scores,
                        const at::Tensor& labels, double iou_threshold, int64_t stream) {
  check_on_cuda(boxes, "boxes");
  check_on_cuda(scores, "scores");
  return greedy_nms_cuda(boxes, scores, labels,
                         [&](const at::Tensor& sorted, const int64_t* lab, uint64_t* mask) {
                           check_cuda(cuda::nms_bev_mask(dtype_code(sorted), sorted.data_ptr(),
                                                         lab, sorted.size(0), iou_threshold,
                                                         mask, as_stream(stream)),
                                      "nms_bev_mask");
                         });
}

at::Tensor circle_nms_cuda(const at::Tensor& centers, const at::Tensor& scores,
                           const at::Tensor& labels, double distance, int64_t stream) {
  check_on_cuda(centers, "centers");
  check_on_cuda(scores, "scores");
  return greedy_nms_cuda(centers, scores, labels,
                         [&](const at::Tensor& sorted, const int64_t* lab, uint64_t* mask) {
                           check_cuda(cuda::circle_nms_mask(dtype_code(sorted), sorted.data_ptr(),
                                                            lab, sorted.size(0), distance, mask,
                                                            as_stream(stream)),
                                      "circle_nms_mask");
                         });
}

}  // namespace perception
