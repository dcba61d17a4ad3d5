// Definitions shared by the CPU ops and the CUDA wrappers (declared in parallel.h and ops.h).
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>

#include "ops.h"
#include "parallel.h"

namespace perception {

int op_threads() { return std::max(1, at::get_num_threads()); }

VoxelGridSpec make_voxel_grid_spec(const std::vector<double>& voxel_size,
                                   const std::vector<double>& lo,
                                   const std::vector<int64_t>& grid) {
  TORCH_CHECK(voxel_size.size() == 3 && lo.size() == 3 && grid.size() == 3,
              "voxel_size, range_lo and grid must have 3 values");
  VoxelGridSpec g;
  for (int j = 0; j < 3; ++j) {
    g.size[j] = static_cast<float>(voxel_size[j]);
    g.lo[j] = static_cast<float>(lo[j]);
    g.grid[j] = grid[j];
    TORCH_CHECK(g.size[j] > 0.0f && grid[j] > 0 && grid[j] <= std::numeric_limits<int32_t>::max(),
                "invalid voxel grid");
  }
  return g;
}

}  // namespace perception
