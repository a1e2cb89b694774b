// Shared pieces of the CUDA backend: the launch context every host launcher takes, the device-side
// error word (bad token ids, negative positions, windows larger than the KV ring), warp reductions,
// the bf16/fp16 bit helpers, and the cp.async and ldmatrix wrappers the kernels use.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "core/status.h"

namespace ge::cuda {

// Bits of the device error word. Kernels set them with atomicOr when input data (not shapes, which
// the host checks) is invalid; synchronize() reads the word back and turns it into a Status.
enum DeviceErrorBit : uint32_t {
  kErrTokenRange = 1u << 0,  // embed: token id outside [0, table rows)
  kErrPosition = 1u << 1,    // negative position
  kErrKvWindow = 1u << 2,    // attention needs more keys than the ring holds
};

std::string describe_device_errors(uint32_t bits);

// What every host launcher needs: the backend's stream, its error word and the device's size.
struct LaunchContext {
  cudaStream_t stream = nullptr;
  uint32_t* error_word = nullptr;  // device memory
  int num_sms = 0;
  bool programmatic_launch = true;  // let GEMVs overlap their prologue with the previous kernel
};

inline Status cuda_status(cudaError_t err, const std::string& what) {
  if (err == cudaSuccess) return Status::ok();
  if (err == cudaErrorMemoryAllocation) {
    return out_of_memory("cuda: " + what + ": " + cudaGetErrorString(err));
  }
  return internal_error("cuda: " + what + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) +
                        ")");
}

// Owned device allocation (cudaMalloc, never managed memory); freed on destruction.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  ~DeviceMemory() { reset(); }
  DeviceMemory(DeviceMemory&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  DeviceMemory& operator=(DeviceMemory&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = o.ptr_;
      bytes_ = o.bytes_;
      o.ptr_ = nullptr;
      o.bytes_ = 0;
    }
    return *this;
  }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;

  Status allocate(size_t bytes, const std::string& what) {
    reset();
    if (bytes == 0) return Status::ok();
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky-free allocation error
      return out_of_memory("cuda: cannot allocate " + std::to_string(bytes >> 20) + " MiB for " + what +
                           ": " + cudaGetErrorString(err));
    }
    ptr_ = p;
    bytes_ = bytes;
    return Status::ok();
  }
  // Grow-only scratch: keeps the allocation when it is already large enough.
  Status ensure(size_t bytes, const std::string& what) {
    if (bytes <= bytes_) return Status::ok();
    return allocate(bytes, what);
  }
  void reset() {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

inline unsigned blocks_for(int64_t n, int threads, int64_t max_blocks = 65535LL * 32) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > max_blocks) b = max_blocks;
  return static_cast<unsigned>(b);
}

__device__ __forceinline__ void raise_device_error(uint32_t* word, uint32_t bit) {
  if (word != nullptr) atomicOr(word, bit);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ float bf16_bits_to_f32(uint32_t bits16) {
  return __uint_as_float(bits16 << 16);
}

__device__ __forceinline__ float fp16_bits_to_f32(uint32_t bits16) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits16)));
}

// Two floats to a bf16x2 word (round to nearest even), `lo` in the low half.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// Streaming 16-byte load for data read exactly once (weights): skips L1, asks L2 for 256 B lines.
__device__ __forceinline__ uint4 load_stream(const uint4* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

__device__ __forceinline__ uint32_t load_nc_u32(const uint32_t* p) {
  uint32_t r;
  asm volatile("ld.global.nc.u32 %0, [%1];" : "=r"(r) : "l"(p));
  return r;
}

// Asynchronous global -> shared copies (cp.async, sm_80+): the bytes land in shared memory without
// passing through registers, so a kernel can keep many more of them in flight than its registers
// would hold. Each thread waits for its own groups; other threads' copies need a barrier after.
namespace async_copy {
// 16 bytes, bypassing L1, asking L2 for the whole 256-byte line (weights streamed once).
__device__ __forceinline__ void copy16_stream(void* smem, const void* gmem) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
// 16 bytes, bypassing L1, without an L2 prefetch hint (the attention kernels' K/V rows).
__device__ __forceinline__ void copy16(void* smem, const void* gmem) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void copy4(void* smem, const void* gmem) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Returns once at most kPending of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}
}  // namespace async_copy

// ldmatrix (sm_75+): four 8x8 b16 matrices from shared memory into the warp's mma fragments, r[i] from
// matrix i, whose rows lanes 8i..8i+7 address; _trans gives each matrix transposed.
__device__ __forceinline__ void ldmatrix_x4(const void* smem, uint32_t* r) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ void ldmatrix_x4_trans(const void* smem, uint32_t* r) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

// Programmatic dependent launch (sm_90): a kernel launched with the programmatic-serialization
// attribute may start while the previous kernel drains; it must wait before touching that kernel's
// outputs, and lets its own successor start early once its inputs are consumed.
__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void grid_dependency_release() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Launches kernel(p) with programmatic dependent launch when the context allows it: the kernel may
// start while the previous one drains (it waits with grid_dependency_wait before reading its
// inputs) and its successor may start its own prologue early.
template <typename Params>
inline cudaError_t launch_pdl(void (*kernel)(Params), dim3 grid, int threads, size_t smem, const Params& p,
                              const LaunchContext& ctx) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = dim3(static_cast<unsigned>(threads));
  cfg.dynamicSmemBytes = smem;
  cfg.stream = ctx.stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = ctx.programmatic_launch ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, p);
}

}  // namespace ge::cuda
