// The CPU backend: reference ops (plain C++, multithreaded over rows) that every other backend is
// tested against. Weights stay in the mapped file; matmuls decode one weight row at a time.
#pragma once

#include "backend/backend.h"

namespace ge {

Backend* create_cpu_backend(int n_threads);

}  // namespace ge
