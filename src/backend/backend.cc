// The backend registry: creates a backend by name.
#include "backend/backend.h"

#include "backend/cpu/cpu_backend.h"
#ifdef GE_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace ge {

Result<std::unique_ptr<Backend>> create_backend(const std::string& name, int n_threads) {
  if (name == "cpu") return std::unique_ptr<Backend>(create_cpu_backend(n_threads));
  if (name == "cpu-ref") return std::unique_ptr<Backend>(create_cpu_reference_backend(n_threads));
#ifdef GE_HAVE_CUDA
  if (name == "cuda") return create_cuda_backend();
#endif
  if (name == "cuda") return unsupported("this build has no CUDA backend (configure with -DGE_CUDA=ON)");
  return invalid_argument("unknown backend '" + name + "' (expected cpu, cpu-ref or cuda)");
}

}  // namespace ge
