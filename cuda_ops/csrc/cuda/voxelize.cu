// Voxelization kernels (CUDA, raw pointers). The CUDA wrapper (wrappers.cpp) orders the points
// with a stable sort of their voxel keys, so that the result is the CPU one: voxels in
// first-come order, points in input order inside a voxel, mmcv's deterministic truncation.
#include "cuda_common.cuh"

namespace perception {
namespace cuda {

using namespace detail;

const char* error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

namespace {

__global__ void voxel_keys_kernel(const float* __restrict__ points, int64_t n, int64_t c,
                                  VoxelGridSpec grid, int64_t* __restrict__ keys) {
  PERC_GRID_STRIDE(i, n) { keys[i] = voxel_key(points + i * c, grid); }
}

__global__ void dynamic_voxelize_kernel(const float* __restrict__ points, int64_t n, int64_t c,
                                        VoxelGridSpec grid, int32_t* __restrict__ coords) {
  PERC_GRID_STRIDE(i, n) {
    int64_t idx[3];
    int32_t* out = coords + 3 * i;
    if (voxel_index(points + i * c, grid, idx)) {
      out[0] = static_cast<int32_t>(idx[2]);
      out[1] = static_cast<int32_t>(idx[1]);
      out[2] = static_cast<int32_t>(idx[0]);
    } else {
      out[0] = out[1] = out[2] = -1;
    }
  }
}

// One thread per (entry, channel).
__global__ void hard_scatter_kernel(const float* __restrict__ points, int64_t c,
                                    const int64_t* __restrict__ point_of,
                                    const int64_t* __restrict__ voxel_of,
                                    const int64_t* __restrict__ rank_of, int64_t entries,
                                    int64_t max_points, int64_t num_voxels,
                                    float* __restrict__ voxels) {
  PERC_GRID_STRIDE(t, entries * c) {
    const int64_t e = t / c, k = t % c;
    const int64_t v = voxel_of[e], r = rank_of[e];
    if (v < num_voxels && r < max_points) {
      voxels[(v * max_points + r) * c + k] = points[point_of[e] * c + k];
    }
  }
}

__global__ void decode_keys_kernel(const int64_t* __restrict__ keys, int64_t m,
                                   VoxelGridSpec grid, int32_t* __restrict__ coords) {
  PERC_GRID_STRIDE(i, m) { voxel_key_decode(keys[i], grid, coords + 3 * i); }
}

// One thread per (voxel, channel); members in input order, so sums are deterministic.
template <typename T>
__global__ void segment_reduce_kernel(const T* __restrict__ features, int64_t c,
                                      const int64_t* __restrict__ members,
                                      const int64_t* __restrict__ offsets, int64_t m, int reduce,
                                      T* __restrict__ out, int64_t* __restrict__ argmax) {
  using A = typename Acc<T>::type;
  PERC_GRID_STRIDE(t, m * c) {
    const int64_t v = t / c, k = t % c;
    const int64_t s = offsets[v], e = offsets[v + 1];
    A acc = to_acc(features[members[s] * c + k]);
    if (reduce == 2) {
      int64_t best = members[s];
      for (int64_t q = s + 1; q < e; ++q) {
        const A x = to_acc(features[members[q] * c + k]);
        if (x > acc) {
          acc = x;
          best = members[q];
        }
      }
      argmax[t] = best;
    } else {
      for (int64_t q = s + 1; q < e; ++q) acc += to_acc(features[members[q] * c + k]);
      if (reduce == 1) acc = acc / static_cast<A>(e - s);
    }
    out[t] = from_acc<T>(acc);
  }
}

template <typename T>
int launch_segment_reduce(const void* features, int64_t c, const int64_t* members,
                          const int64_t* offsets, int64_t m, int reduce, void* out,
                          int64_t* argmax, cudaStream_t stream) {
  if (m * c == 0) return 0;
  segment_reduce_kernel<T><<<blocks_for(m * c), kThreads, 0, stream>>>(
      static_cast<const T*>(features), c, members, offsets, m, reduce, static_cast<T*>(out),
      argmax);
  return last_error();
}

}  // namespace

int voxel_keys(const float* points, int64_t n, int64_t c, VoxelGridSpec grid, int64_t* keys,
               Stream stream) {
  if (n == 0) return 0;
  voxel_keys_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(points, n, c, grid, keys);
  return last_error();
}

int dynamic_voxelize(const float* points, int64_t n, int64_t c, VoxelGridSpec grid,
                     int32_t* coords, Stream stream) {
  if (n == 0) return 0;
  dynamic_voxelize_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(points, n, c, grid,
                                                                               coords);
  return last_error();
}

int hard_voxelize_scatter(const float* points, int64_t c, const int64_t* point_of,
                          const int64_t* voxel_of, const int64_t* rank_of, int64_t entries,
                          int64_t max_points, int64_t num_voxels, float* voxels, Stream stream) {
  if (entries * c == 0 || num_voxels == 0) return 0;
  hard_scatter_kernel<<<blocks_for(entries * c), kThreads, 0, as_stream(stream)>>>(
      points, c, point_of, voxel_of, rank_of, entries, max_points, num_voxels, voxels);
  return last_error();
}

int decode_voxel_keys(const int64_t* keys, int64_t m, VoxelGridSpec grid, int32_t* coords,
                      Stream stream) {
  if (m == 0) return 0;
  decode_keys_kernel<<<blocks_for(m), kThreads, 0, as_stream(stream)>>>(keys, m, grid, coords);
  return last_error();
}

int segment_reduce(int dtype, const void* features, int64_t c, const int64_t* members,
                   const int64_t* offsets, int64_t m, int reduce, void* out, int64_t* argmax,
                   Stream stream) {
  const cudaStream_t s = as_stream(stream);
  switch (dtype) {
    case kFloat32:
      return launch_segment_reduce<float>(features, c, members, offsets, m, reduce, out, argmax, s);
    case kFloat64:
      return launch_segment_reduce<double>(features, c, members, offsets, m, reduce, out, argmax,
                                           s);
    case kFloat16:
      return launch_segment_reduce<__half>(features, c, members, offsets, m, reduce, out, argmax,
                                           s);
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace cuda
}  // namespace perception
