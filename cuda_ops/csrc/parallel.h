// OpenMP thread helpers of the CPU ops, and the sizes below which an op runs on the calling
// thread alone.
//
// The thresholds only decide how many threads share the work, never the result: every op gives
// the same bits with any thread count (tests/ops check 1 and 2 threads). A parallel region costs
// a few microseconds to wake the team when the cores are idle, but when another process holds a
// core a woken thread can wait a whole scheduler slice (milliseconds) and the region with it. So
// small inputs (one frame's boxes, a small point cloud) stay on the calling thread, and an op
// goes parallel once its single-thread work is of the order of a tenth of a millisecond; each
// comment gives that cost at its threshold.
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace perception {

// Threads for an OpenMP region: torch's setting (torch.set_num_threads), so that results can be
// checked for independence of the thread count from Python.
int op_threads();

// Number of the calling thread in its OpenMP team (0 outside a parallel region).
inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Size of the calling thread's OpenMP team (1 outside a parallel region).
inline int threads_in_team() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// op_threads() when there is at least min_work of work, else 1 (the calling thread).
inline int threads_for(int64_t work, int64_t min_work) {
  return work < min_work ? 1 : op_threads();
}

// ---- when the ops go parallel --------------------------------------------------------------
// Points (or rows) of a per-point pass: hard and dynamic voxelization and the keys of
// scatter_reduce. 16k points are about 0.4 ms of hard voxelization and more of scatter_reduce
// on one core; dynamic voxelization (a single key pass, a few ns per point) shares the value so
// that the voxelization ops switch at the same point count.
constexpr int64_t kMinPointsParallel = 16384;

// Elements (points x channels) of a memory-bound copy or sum: the write-out of hard
// voxelization, the bev_pool forward and backward. At a few ns per element, 64k elements are
// about 0.15-0.2 ms on one core.
constexpr int64_t kMinElementsParallel = 65536;

// Output elements (voxels x channels) of the per-voxel reduction of scatter_reduce: each one
// gathers the member rows of its voxel, several times the work of one copied element, so the
// bar is a quarter of kMinElementsParallel.
constexpr int64_t kMinVoxelElementsParallel = 16384;

// Points of the bev_pool plan: its rank pass and counting sort cost about 9 ns per point, so
// 32k points are about 0.3 ms on one core.
constexpr int64_t kMinPlanPointsParallel = 32768;

// Box pairs of an IoU matrix that stays on the calling thread (parallel above it). The tracker
// and the metrics call the IoU once per frame with one frame's boxes (a few hundred at most),
// where the bounding-circle test rejects most pairs: 64k pairs of spread boxes take about
// 0.2 ms on one core.
constexpr int64_t kMaxSerialIouPairs = 65536;

// Later boxes tested against one kept box in greedy NMS that stay on the calling thread
// (parallel above it). The parallel region is entered once per kept box, so it has to pay for
// itself on every entry: a few thousand tests (a circle test, and the exact clip for the
// overlapping ones) are tens of microseconds.
constexpr int64_t kMaxSerialNmsCandidates = 4096;

}  // namespace perception
