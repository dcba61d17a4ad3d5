// Python bindings of the custom ops: the single PYBIND11_MODULE of perception._C.
#include <torch/extension.h>

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
  m.doc() = "fusion_perception custom ops (C++ CPU, CUDA where built)";
  m.def("build_info", &build_info, "How this extension was built: cuda, openmp.");
}
