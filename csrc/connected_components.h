// Shared declarations of the sam2_ext::connected_components op (CPU and CUDA kernels).
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace sam2_ext {

// Checks that `mask` is a (N, 1, H, W) bool or uint8 tensor whose pixel indices fit in int32,
// raising ValueError/TypeError (through TORCH_CHECK_VALUE/TYPE) with a readable message.
void check_mask(const at::Tensor& mask);

// Labels and per-pixel component areas of the 8-connected foreground (non-zero) components.
// labels: int32, 0 for background, else 1 + the raster index (within its image) of the
// component's first pixel. areas: int32, the pixel's component size, 0 for background.
std::tuple<at::Tensor, at::Tensor> connected_components_cpu(const at::Tensor& mask);

// Set by the CUDA translation unit's static initialiser when it is linked in.
void mark_cuda_kernel_compiled();

}  // namespace sam2_ext
