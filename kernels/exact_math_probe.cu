// exact_exp and exact_log over an array: lets the tests compare the device's bits (and the host
// shim's) with the Rust twin directly, not only through the sampler's outputs.

#include "exact_math.cuh"

extern "C" __global__ void exact_math_probe(const float* __restrict__ x,  // [n]
                                            float* __restrict__ exp_out,  // [n]
                                            float* __restrict__ log_out,  // [n]
                                            unsigned int n)
{
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += gridDim.x * blockDim.x) {
        exp_out[i] = exact_exp(x[i]);
        log_out[i] = exact_log(x[i]);
    }
}

#ifdef BATCHSAMPLE_HOST_SIMT
HOST_SIMT_EXPORT(exact_math_probe,
                 (const float* x, float* exp_out, float* log_out, unsigned int n),
                 (x, exp_out, log_out, n))
#endif
