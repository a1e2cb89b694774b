// Token sampling on the device: ge::Sampler's temperature / top-k / top-p / min-p chain over each
// logits row (many CTAs per row), returning only the token id, with a counter-based RNG
// (Philox4x32-10 keyed by seed, counter = step and row) so a captured decode step needs nothing
// from the host.
#pragma once

#include "backend/backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace ge::cuda {

// Bytes of the sampler's device scratch (counters, per-CTA partials, key histograms and candidate
// pools of 128 rows: ~7 MiB). Fixed, so a recorded graph never sees it move; it must be zeroed
// once when allocated, and every launch leaves it zeroed again.
size_t sampler_scratch_bytes();

// Draws one token per row of logits [rows, vocab] into out [rows] (ids in [0, vocab)) and advances
// state->step by one. state and scratch (sampler_scratch_bytes()) live in device memory; launches
// on one scratch must not run concurrently.
cudaError_t launch_sample_tokens(const float* logits, int64_t rows, int64_t vocab, DeviceSamplerState* state,
                                 int32_t* out, void* scratch, const LaunchContext& ctx);

// positions[i] += delta for i < n.
cudaError_t launch_advance_positions(int32_t* positions, int64_t n, int32_t delta, const LaunchContext& ctx);

// The uniform double in [0, 1) (53 random bits) that the sampler draws for (seed, step, row);
// exposed so tests can replay a draw on the host.
double sampler_uniform(uint64_t seed, uint64_t step, uint32_t row);

}  // namespace ge::cuda
