// Python bindings of the custom ops: the single PYBIND11_MODULE of perception._C.
// The user-facing functions, with argument checking, are in perception/ops.
#include <torch/extension.h>

#include "ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

pybind11::dict build_info() {
  pybind11::dict info;
#ifdef WITH_CUDA
  info["cuda"] = true;
#else
  info["cuda"] = false;
#endif
#ifdef _OPENMP
  info["openmp"] = true;
  info["openmp_max_threads"] = omp_get_max_threads();
#else
  info["openmp"] = false;
  info["openmp_max_threads"] = 1;
#endif
  return info;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace p = perception;
  m.doc() = "fusion_perception custom ops (C++ CPU, CUDA where built)";
  m.def("build_info", &build_info, "How this extension was built: cuda, openmp.");

  m.def("hard_voxelize_cpu", &p::hard_voxelize_cpu, "hard voxelization (CPU)");
  m.def("dynamic_voxelize_cpu", &p::dynamic_voxelize_cpu, "dynamic voxelization (CPU)");
  m.def("scatter_reduce_cpu", &p::scatter_reduce_cpu, "per-voxel sum/mean/max (CPU)");
  m.def("bev_pool_plan_cpu", &p::bev_pool_plan_cpu, "bev_pool rank sort and intervals (CPU)");
  m.def("bev_pool_forward_cpu", &p::bev_pool_forward_cpu, "bev_pool forward (CPU)");
  m.def("bev_pool_backward_cpu", &p::bev_pool_backward_cpu, "bev_pool backward (CPU)");
  m.def("boxes_iou_cpu", &p::boxes_iou_cpu, "rotated BEV / 3D IoU (CPU)");
  m.def("nms_bev_cpu", &p::nms_bev_cpu, "rotated BEV NMS (CPU)");
  m.def("circle_nms_cpu", &p::circle_nms_cpu, "circle NMS (CPU)");

#ifdef WITH_CUDA
  m.def("hard_voxelize_cuda", &p::hard_voxelize_cuda, "hard voxelization (CUDA)");
  m.def("dynamic_voxelize_cuda", &p::dynamic_voxelize_cuda, "dynamic voxelization (CUDA)");
  m.def("scatter_reduce_cuda", &p::scatter_reduce_cuda, "per-voxel sum/mean/max (CUDA)");
  m.def("bev_pool_forward_cuda", &p::bev_pool_forward_cuda, "bev_pool forward (CUDA)");
  m.def("bev_pool_backward_cuda", &p::bev_pool_backward_cuda, "bev_pool backward (CUDA)");
  m.def("boxes_iou_cuda", &p::boxes_iou_cuda, "rotated BEV / 3D IoU (CUDA)");
  m.def("nms_bev_cuda", &p::nms_bev_cuda, "rotated BEV NMS (CUDA)");
  m.def("circle_nms_cuda", &p::circle_nms_cuda, "circle NMS (CUDA)");
#endif
}
