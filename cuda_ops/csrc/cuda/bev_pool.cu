// bev_pool kernels (CUDA, raw pointers), as in BEVFusion: one thread per (interval, channel)
// sums the interval's points in sorted order (no atomics, deterministic); the backward copies
// the cell's gradient to the interval's points. float16 accumulates in float.
#include "cuda_common.cuh"

namespace perception {
namespace cuda {

using namespace detail;

namespace {

template <typename T>
__global__ void bev_forward_kernel(const T* __restrict__ feats, int64_t c,
                                   const int64_t* __restrict__ order,
                                   const int64_t* __restrict__ starts,
                                   const int64_t* __restrict__ lengths,
                                   const int64_t* __restrict__ ranks, int64_t intervals,
                                   int64_t cells, T* __restrict__ out) {
  using A = typename Acc<T>::type;
  PERC_GRID_STRIDE(t, intervals * c) {
    const int64_t it = t / c, k = t % c;
    const int64_t s = starts[it], e = s + lengths[it];
    A acc = A(0);
    for (int64_t q = s; q < e; ++q) acc += to_acc(feats[order[q] * c + k]);
    const int64_t r = ranks[it];
    out[((r / cells) * c + k) * cells + (r % cells)] = from_acc<T>(acc);
  }
}

template <typename T>
__global__ void bev_backward_kernel(const T* __restrict__ grad_out, int64_t c,
                                    const int64_t* __restrict__ order,
                                    const int64_t* __restrict__ starts,
                                    const int64_t* __restrict__ lengths,
                                    const int64_t* __restrict__ ranks, int64_t intervals,
                                    int64_t cells, T* __restrict__ grad) {
  PERC_GRID_STRIDE(t, intervals * c) {
    const int64_t it = t / c, k = t % c;
    const int64_t r = ranks[it];
    const T g = grad_out[((r / cells) * c + k) * cells + (r % cells)];
    const int64_t s = starts[it], e = s + lengths[it];
    for (int64_t q = s; q < e; ++q) grad[order[q] * c + k] = g;
  }
}

template <typename T>
int launch_forward(const void* feats, int64_t c, const int64_t* order, const int64_t* starts,
                   const int64_t* lengths, const int64_t* ranks, int64_t intervals, int64_t cells,
                   void* out, cudaStream_t s) {
  if (intervals * c == 0) return 0;
  bev_forward_kernel<T><<<blocks_for(intervals * c), kThreads, 0, s>>>(
      static_cast<const T*>(feats), c, order, starts, lengths, ranks, intervals, cells,
      static_cast<T*>(out));
  return last_error();
}

template <typename T>
int launch_backward(const void* grad_out, int64_t c, const int64_t* order, const int64_t* starts,
                    const int64_t* lengths, const int64_t* ranks, int64_t intervals,
                    int64_t cells, void* grad, cudaStream_t s) {
  if (intervals * c == 0) return 0;
  bev_backward_kernel<T><<<blocks_for(intervals * c), kThreads, 0, s>>>(
      static_cast<const T*>(grad_out), c, order, starts, lengths, ranks, intervals, cells,
      static_cast<T*>(grad));
  return last_error();
}

}  // namespace

int bev_pool_forward(int dtype, const void* features, int64_t c, const int64_t* order,
                     const int64_t* starts, const int64_t* lengths, const int64_t* ranks,
                     int64_t intervals, int64_t cells_per_batch, void* out, Stream stream) {
  const cudaStream_t s = as_stream(stream);
  switch (dtype) {
    case kFloat32:
      return launch_forward<float>(features, c, order, starts, lengths, ranks, intervals,
                                   cells_per_batch, out, s);
    case kFloat64:
      return launch_forward<double>(features, c, order, starts, lengths, ranks, intervals,
                                    cells_per_batch, out, s);
    case kFloat16:
      return launch_forward<__half>(features, c, order, starts, lengths, ranks, intervals,
                                    cells_per_batch, out, s);
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

int bev_pool_backward(int dtype, const void* grad_out, int64_t c, const int64_t* order,
                      const int64_t* starts, const int64_t* lengths, const int64_t* ranks,
                      int64_t intervals, int64_t cells_per_batch, void* grad_features,
                      Stream stream) {
  const cudaStream_t s = as_stream(stream);
  switch (dtype) {
    case kFloat32:
      return launch_backward<float>(grad_out, c, order, starts, lengths, ranks, intervals,
                                    cells_per_batch, grad_features, s);
    case kFloat64:
      return launch_backward<double>(grad_out, c, order, starts, lengths, ranks, intervals,
                                     cells_per_batch, grad_features, s);
    case kFloat16:
      return launch_backward<__half>(grad_out, c, order, starts, lengths, ranks, intervals,
                                     cells_per_batch, grad_features, s);
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace cuda
}  // namespace perception
