// Token sampling on the device: ge::Sampler's temperature / top-k / top-p / min-p chain over one
// logits row per CTA, returning only the token id, with a counter-based RNG (Philox4x32-10 keyed
// by seed, counter = step and row) so a captured decode step needs nothing from the host.
#pragma once

#include "backend/backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace ge::cuda {

// Draws one token per row of logits [rows, vocab] into out [rows] (ids in [0, vocab)) and advances
// state->step by one. state lives in device memory.
cudaError_t launch_sample_tokens(const float* logits, int64_t rows, int64_t vocab, DeviceSamplerState* state,
                                 int32_t* out, const LaunchContext& ctx);

// positions[i] += delta for i < n.
cudaError_t launch_advance_positions(int32_t* positions, int64_t n, int32_t delta, const LaunchContext& ctx);

// The uniform double in [0, 1) (53 random bits) that the sampler draws for (seed, step, row);
// exposed so tests can replay a draw on the host.
double sampler_uniform(uint64_t seed, uint64_t step, uint32_t row);

}  // namespace ge::cuda
