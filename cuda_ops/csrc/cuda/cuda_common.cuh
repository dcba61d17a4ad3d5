// Helpers shared by the .cu files (raw pointers, no torch).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops_cuda.h"

namespace perception {
namespace cuda {
namespace detail {

constexpr int kThreads = 256;

inline cudaStream_t as_stream(Stream s) { return reinterpret_cast<cudaStream_t>(s); }

inline unsigned int blocks_for(int64_t work) {
  int64_t b = (work + kThreads - 1) / kThreads;
  if (b < 1) b = 1;
  if (b > (int64_t(1) << 20)) b = int64_t(1) << 20;  // grid-stride loops cover the rest
  return static_cast<unsigned int>(b);
}

inline int last_error() { return static_cast<int>(cudaGetLastError()); }

// Accumulation type and conversions: float16 accumulates in float.
template <typename T>
struct Acc {
  using type = T;
};
template <>
struct Acc<__half> {
  using type = float;
};

__device__ __forceinline__ float to_acc(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }

template <typename T>
__device__ __forceinline__ T from_acc(typename Acc<T>::type x) {
  return static_cast<T>(x);
}
template <>
__device__ __forceinline__ __half from_acc<__half>(float x) {
  return __float2half(x);
}

#define PERC_GRID_STRIDE(i, n)                                                       \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

}  // namespace detail
}  // namespace cuda
}  // namespace perception
