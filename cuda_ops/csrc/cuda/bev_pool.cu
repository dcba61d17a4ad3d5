// bev_pool kernels (CUDA, raw pointers).
//
// Forward: the sum of every interval of the rank-sorted points, without atomics. BEVFusion's
// kernel gives one thread per (interval, channel) and lets it loop over the whole interval, so
// the longest interval bounds the kernel: real camera frustums are dense near the ego (in the
// benchmark geometry the longest interval holds 54,550 of 2M points, and a quarter of the
// points sit in intervals of more than 1,000), and that kernel ran 10x slower than a plain
// atomic index_add_. Here the sorted points are cut into chunks of at most `chunk` points that
// never cross an interval; one thread per (chunk, group of channels) sums its chunk in order
// into a partial row, and the partial rows of each interval are summed again the same way,
// level after level, until one row per interval remains, which goes to its cell. Every level
// is one launch with bounded work per thread, whatever the skew; the summation order depends
// only on the plan, so results are deterministic. The chunk tables come with the plan
// (perception/ops/bev_pool.py), so a cached plan costs no host work per call.
//
// Backward: every point gets its cell's gradient row, read from a channels-last copy of the
// output gradient, so that both the reads and the writes are whole rows (coalesced).
//
// float16 accumulates in float; partial rows are float (or double for float64 input).
#include <type_traits>

#include "cuda_common.cuh"

namespace perception {
namespace cuda {

using namespace detail;

namespace {

// Adds V consecutive values at p to acc (float4 loads for float32 rows when V == 4).
template <typename S, typename A, int V>
struct RowLoad {
  __device__ __forceinline__ static void add(const S* __restrict__ p, A* acc) {
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] += to_acc(p[v]);
  }
};
template <>
struct RowLoad<float, float, 4> {
  __device__ __forceinline__ static void add(const float* __restrict__ p, float* acc) {
    const float4 x = __ldg(reinterpret_cast<const float4*>(p));
    acc[0] += x.x;
    acc[1] += x.y;
    acc[2] += x.z;
    acc[3] += x.w;
  }
};

template <typename D, typename A, int V>
struct RowStore {
  __device__ __forceinline__ static void put(D* __restrict__ p, const A* acc) {
#pragma unroll
    for (int v = 0; v < V; ++v) p[v] = from_acc<D>(acc[v]);
  }
};
template <>
struct RowStore<float, float, 4> {
  __device__ __forceinline__ static void put(float* __restrict__ p, const float* acc) {
    *reinterpret_cast<float4*>(p) = make_float4(acc[0], acc[1], acc[2], acc[3]);
  }
};

// One level of the chunked interval sums. Thread t handles chunk j = t / cv and channels
// [kv * V, kv * V + V) with kv = t % cv (cv = c / V): adjacent threads read adjacent channels
// of the same row. Rows are src[gather[q]] (level 0, features in input order) or src[q]
// (partial rows of the previous level). dst_row == nullptr: the sum goes to row j of dst
// (chunks, c); else to the channel-first output (B, c, cells) at cell rank dst_row[j].
template <typename S, typename D, typename A, int V, typename I>
__global__ void chunk_sum_kernel(const S* __restrict__ src, int64_t c, I cv,
                                 const int64_t* __restrict__ gather,
                                 const int64_t* __restrict__ chunk_start,
                                 const int64_t* __restrict__ chunk_len, I chunks,
                                 const int64_t* __restrict__ dst_row, int64_t cells,
                                 D* __restrict__ dst) {
  const I total = chunks * cv;
  const I step = static_cast<I>(blockDim.x) * static_cast<I>(gridDim.x);
  for (I t = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + threadIdx.x; t < total;
       t += step) {
    const I j = t / cv;
    const int64_t k0 = static_cast<int64_t>(t - j * cv) * V;
    const int64_t s = chunk_start[j], e = s + chunk_len[j];
    A acc[V];
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] = A(0);
    if (gather != nullptr) {
#pragma unroll 4
      for (int64_t q = s; q < e; ++q) RowLoad<S, A, V>::add(src + __ldg(gather + q) * c + k0, acc);
    } else {
#pragma unroll 4
      for (int64_t q = s; q < e; ++q) RowLoad<S, A, V>::add(src + q * c + k0, acc);
    }
    if (dst_row != nullptr) {
      const int64_t r = dst_row[j];
      const int64_t b = r / cells, cell = r - b * cells;
#pragma unroll
      for (int v = 0; v < V; ++v) dst[(b * c + k0 + v) * cells + cell] = from_acc<D>(acc[v]);
    } else {
      RowStore<D, A, V>::put(dst + static_cast<int64_t>(j) * c + k0, acc);
    }
  }
}

// grad (n, c): row i = src row rank[i] (src (B * cells, c) channels-last), zero where rank < 0.
template <typename T, int V, typename I>
__global__ void gather_rows_kernel(const T* __restrict__ src, int64_t c, I cv,
                                   const int64_t* __restrict__ rank, I n, T* __restrict__ dst) {
  const I total = n * cv;
  const I step = static_cast<I>(blockDim.x) * static_cast<I>(gridDim.x);
  for (I t = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + threadIdx.x; t < total;
       t += step) {
    const I i = t / cv;
    const int64_t k0 = static_cast<int64_t>(t - i * cv) * V;
    const int64_t r = __ldg(rank + i);
    T* out = dst + static_cast<int64_t>(i) * c + k0;
    if constexpr (V == 4) {
      static_assert(sizeof(T) == 4, "float4 rows are float32 only");
      float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
      if (r >= 0) x = __ldg(reinterpret_cast<const float4*>(src + r * c + k0));
      *reinterpret_cast<float4*>(out) = x;
    } else {
      const T zero = from_acc<T>(typename Acc<T>::type(0));
#pragma unroll
      for (int v = 0; v < V; ++v) out[v] = r >= 0 ? src[r * c + k0 + v] : zero;
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

constexpr int64_t kInt32Work = int64_t(1) << 30;  // 32-bit thread indices below this

template <typename S, typename D, typename A, int V>
int launch_chunk_sum(const void* src, int64_t c, const int64_t* gather,
                     const int64_t* chunk_start, const int64_t* chunk_len, int64_t chunks,
                     const int64_t* dst_row, int64_t cells, void* dst, cudaStream_t s) {
  const int64_t cv = c / V, work = chunks * cv;
  if (work == 0) return 0;
  const auto* in = static_cast<const S*>(src);
  auto* out = static_cast<D*>(dst);
  if (work < kInt32Work) {
    chunk_sum_kernel<S, D, A, V, uint32_t><<<blocks_for(work), kThreads, 0, s>>>(
        in, c, static_cast<uint32_t>(cv), gather, chunk_start, chunk_len,
        static_cast<uint32_t>(chunks), dst_row, cells, out);
  } else {
    chunk_sum_kernel<S, D, A, V, int64_t><<<blocks_for(work), kThreads, 0, s>>>(
        in, c, cv, gather, chunk_start, chunk_len, chunks, dst_row, cells, out);
  }
  return last_error();
}

template <typename S, typename D, typename A>
int dispatch_width(const void* src, int64_t c, const int64_t* gather, const int64_t* chunk_start,
                   const int64_t* chunk_len, int64_t chunks, const int64_t* dst_row,
                   int64_t cells, void* dst, cudaStream_t s) {
  // float4 rows need float32 on both sides (or a channel-first output, written per channel),
  // a channel count divisible by 4 and 16-byte aligned bases.
  if constexpr (std::is_same<S, float>::value) {
    const bool vec = c % 4 == 0 && aligned16(src) &&
                     (dst_row != nullptr || (std::is_same<D, float>::value && aligned16(dst)));
    if (vec)
      return launch_chunk_sum<S, D, A, 4>(src, c, gather, chunk_start, chunk_len, chunks,
                                          dst_row, cells, dst, s);
  }
  return launch_chunk_sum<S, D, A, 1>(src, c, gather, chunk_start, chunk_len, chunks, dst_row,
                                      cells, dst, s);
}

template <typename T, int V>
int launch_gather_rows(const void* src, int64_t c, const int64_t* rank, int64_t n, void* dst,
                       cudaStream_t s) {
  const int64_t cv = c / V, work = n * cv;
  if (work == 0) return 0;
  if (work < kInt32Work) {
    gather_rows_kernel<T, V, uint32_t><<<blocks_for(work), kThreads, 0, s>>>(
        static_cast<const T*>(src), c, static_cast<uint32_t>(cv), rank,
        static_cast<uint32_t>(n), static_cast<T*>(dst));
  } else {
    gather_rows_kernel<T, V, int64_t><<<blocks_for(work), kThreads, 0, s>>>(
        static_cast<const T*>(src), c, cv, rank, n, static_cast<T*>(dst));
  }
  return last_error();
}

}  // namespace

int bev_pool_chunk_sum(int src_dtype, int dst_dtype, const void* src, int64_t c,
                       const int64_t* gather, const int64_t* chunk_start,
                       const int64_t* chunk_len, int64_t chunks, const int64_t* dst_row,
                       int64_t cells_per_batch, void* dst, Stream stream) {
  const cudaStream_t s = as_stream(stream);
  if (src_dtype == kFloat32 && dst_dtype == kFloat32)
    return dispatch_width<float, float, float>(src, c, gather, chunk_start, chunk_len, chunks,
                                               dst_row, cells_per_batch, dst, s);
  if (src_dtype == kFloat64 && dst_dtype == kFloat64)
    return dispatch_width<double, double, double>(src, c, gather, chunk_start, chunk_len, chunks,
                                                  dst_row, cells_per_batch, dst, s);
  if (src_dtype == kFloat16 && dst_dtype == kFloat32)
    return dispatch_width<__half, float, float>(src, c, gather, chunk_start, chunk_len, chunks,
                                                dst_row, cells_per_batch, dst, s);
  if (src_dtype == kFloat32 && dst_dtype == kFloat16)
    return dispatch_width<float, __half, float>(src, c, gather, chunk_start, chunk_len, chunks,
                                                dst_row, cells_per_batch, dst, s);
  if (src_dtype == kFloat16 && dst_dtype == kFloat16)
    return dispatch_width<__half, __half, float>(src, c, gather, chunk_start, chunk_len, chunks,
                                                 dst_row, cells_per_batch, dst, s);
  return static_cast<int>(cudaErrorInvalidValue);
}

int bev_pool_gather_rows(int dtype, const void* grad_rows, int64_t c, const int64_t* point_rank,
                         int64_t n, void* grad_features, Stream stream) {
  const cudaStream_t s = as_stream(stream);
  switch (dtype) {
    case kFloat32:
      if (c % 4 == 0 && aligned16(grad_rows) && aligned16(grad_features))
        return launch_gather_rows<float, 4>(grad_rows, c, point_rank, n, grad_features, s);
      return launch_gather_rows<float, 1>(grad_rows, c, point_rank, n, grad_features, s);
    case kFloat64:
      return launch_gather_rows<double, 1>(grad_rows, c, point_rank, n, grad_features, s);
    case kFloat16:
      return launch_gather_rows<__half, 1>(grad_rows, c, point_rank, n, grad_features, s);
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace cuda
}  // namespace perception
