// Rotated IoU and NMS masks (CUDA, raw pointers). The geometry is box_geometry.h, shared with
// the CPU code: same clipping, same tolerance, double precision.
#include "box_geometry.h"
#include "cuda_common.cuh"

namespace perception {
namespace cuda {

using namespace detail;

namespace {

constexpr int kBlockBits = 64;

template <typename T>
__global__ void iou_kernel(const T* __restrict__ a, int64_t n, const T* __restrict__ b,
                           int64_t m, int mode, T* __restrict__ out) {
  PERC_GRID_STRIDE(t, n * m) {
    const int64_t i = t / m, j = t % m;
    const double v = mode == 1 ? geom::iou_3d(a + 7 * i, b + 7 * j)
                               : geom::iou_bev(a + 7 * i, b + 7 * j);
    out[t] = static_cast<T>(v);
  }
}

// Block (row block rb, column block cb) of the mask: thread r of the block handles box
// rb * 64 + r against the 64 boxes of column block cb, which are staged in shared memory.
template <typename T, int kDim>
__global__ void suppression_mask_kernel(const T* __restrict__ boxes,
                                        const int64_t* __restrict__ labels, int64_t n,
                                        double threshold, int circle,
                                        uint64_t* __restrict__ mask) {
  const int64_t rb = blockIdx.y, cb = blockIdx.x;
  const int64_t col_blocks = (n + kBlockBits - 1) / kBlockBits;
  if (cb < rb) return;  // only later boxes can be suppressed
  const int64_t rows_left = n - rb * kBlockBits, cols_left = n - cb * kBlockBits;
  const int rows = static_cast<int>(rows_left < kBlockBits ? rows_left : kBlockBits);
  const int cols = static_cast<int>(cols_left < kBlockBits ? cols_left : kBlockBits);
  const int tid = static_cast<int>(threadIdx.x);
  __shared__ T block_boxes[kBlockBits * kDim];
  __shared__ int64_t block_labels[kBlockBits];
  if (tid < cols) {
    const int64_t j = cb * kBlockBits + tid;
    for (int k = 0; k < kDim; ++k) block_boxes[tid * kDim + k] = boxes[j * kDim + k];
    block_labels[tid] = labels ? labels[j] : 0;
  }
  __syncthreads();
  if (tid >= rows) return;
  const int64_t i = rb * kBlockBits + tid;
  const T* bi = boxes + i * kDim;
  const int64_t li = labels ? labels[i] : 0;
  uint64_t bits = 0;
  const int start = rb == cb ? tid + 1 : 0;
  for (int q = start; q < cols; ++q) {
    if (block_labels[q] != li) continue;
    const T* bj = block_boxes + q * kDim;
    bool sup;
    if (circle) {
      const double dx = double(bj[0]) - double(bi[0]), dy = double(bj[1]) - double(bi[1]);
      sup = dx * dx + dy * dy <= threshold * threshold;
    } else {
      sup = geom::iou_bev(bi, bj) > threshold;
    }
    if (sup) bits |= 1ULL << q;
  }
  mask[i * col_blocks + cb] = bits;
}

template <typename T, int kDim>
int launch_mask(const void* boxes, const int64_t* labels, int64_t n, double threshold, int circle,
                uint64_t* mask, cudaStream_t s) {
  if (n == 0) return 0;
  const int64_t col_blocks = (n + kBlockBits - 1) / kBlockBits;
  // Words of blocks below the diagonal are never written by the kernel: clear them all.
  cudaError_t err = cudaMemsetAsync(mask, 0, sizeof(uint64_t) * n * col_blocks, s);
  if (err != cudaSuccess) return static_cast<int>(err);
  const dim3 grid(static_cast<unsigned int>(col_blocks), static_cast<unsigned int>(col_blocks));
  suppression_mask_kernel<T, kDim><<<grid, kBlockBits, 0, s>>>(static_cast<const T*>(boxes),
                                                               labels, n, threshold, circle,
                                                               mask);
  return last_error();
}

}  // namespace

int boxes_iou(int dtype, const void* a, int64_t n, const void* b, int64_t m, int mode, void* out,
              Stream stream) {
  if (n * m == 0) return 0;
  const cudaStream_t s = as_stream(stream);
  if (dtype == kFloat32) {
    iou_kernel<float><<<blocks_for(n * m), kThreads, 0, s>>>(
        static_cast<const float*>(a), n, static_cast<const float*>(b), m, mode,
        static_cast<float*>(out));
  } else if (dtype == kFloat64) {
    iou_kernel<double><<<blocks_for(n * m), kThreads, 0, s>>>(
        static_cast<const double*>(a), n, static_cast<const double*>(b), m, mode,
        static_cast<double*>(out));
  } else {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  return last_error();
}

int nms_bev_mask(int dtype, const void* boxes, const int64_t* labels, int64_t n,
                 double iou_threshold, uint64_t* mask, Stream stream) {
  const cudaStream_t s = as_stream(stream);
  if (dtype == kFloat32) return launch_mask<float, 7>(boxes, labels, n, iou_threshold, 0, mask, s);
  if (dtype == kFloat64) return launch_mask<double, 7>(boxes, labels, n, iou_threshold, 0, mask, s);
  return static_cast<int>(cudaErrorInvalidValue);
}

int circle_nms_mask(int dtype, const void* centers, const int64_t* labels, int64_t n,
                    double distance, uint64_t* mask, Stream stream) {
  const cudaStream_t s = as_stream(stream);
  if (dtype == kFloat32) return launch_mask<float, 2>(centers, labels, n, distance, 1, mask, s);
  if (dtype == kFloat64) return launch_mask<double, 2>(centers, labels, n, distance, 1, mask, s);
  return static_cast<int>(cudaErrorInvalidValue);
}

}  // namespace cuda
}  // namespace perception
