// 8-connected component labelling of binary masks on the GPU (CUDA kernel of the
// sam2_ext::connected_components op). Same output as the CPU kernel, bit for bit.
//
// Union-find over pixels, one thread per pixel, the whole batch in each launch:
//   1. every foreground pixel is its own tree (parent = its index within the image);
//   2. each foreground pixel joins the trees of its earlier neighbours with a lock-free union
//      that only ever lowers a root's parent (atomicMin), so a root is its component's first
//      pixel, as on the CPU;
//   3. every pixel points straight at its root;
//   4. roots count their pixels (atomicAdd);
//   5. labels become root + 1 and every pixel reads its root's count.
// Kernel boundaries separate the steps, so each step sees the previous one finished.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>

#include "connected_components.h"

namespace sam2_ext {
namespace {

constexpr int kThreads = 256;

// Root of x's tree. Reads are volatile: other threads relink roots while we walk.
__device__ int32_t find_root(const int32_t* parent, int32_t x) {
  const volatile int32_t* p = parent;
  int32_t next = p[x];
  while (next != x) {
    x = next;
    next = p[x];
  }
  return x;
}

// Joins the trees of a and b: the larger root is hung under the smaller one, unless another
// thread relinked it first, in which case we retry from where it now points.
__device__ void unite(int32_t* parent, int32_t a, int32_t b) {
  while (true) {
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a == b) {
      return;
    }
    if (a > b) {
      const int32_t t = a;
      a = b;
      b = t;
    }
    const int32_t old = atomicMin(parent + b, a);
    if (old == b) {
      return;
    }
    b = old;
  }
}

__global__ void init_parents(const uint8_t* image, int32_t* parent, int64_t total, int64_t size) {
  for (int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; g < total;
       g += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    parent[g] = image[g] ? static_cast<int32_t>(g % size) : -1;
  }
}

__global__ void link_neighbours(
    const uint8_t* image, int32_t* parent, int64_t total, int64_t H, int64_t W) {
  const int64_t size = H * W;
  for (int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; g < total;
       g += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (!image[g]) {
      continue;
    }
    const int64_t base = g - g % size;
    const uint8_t* img = image + base;
    int32_t* par = parent + base;
    const int32_t p = static_cast<int32_t>(g - base);
    const int64_t r = p / W;
    const int64_t c = p % W;
    const int32_t w = static_cast<int32_t>(W);
    const bool has_up = r > 0;
    const bool fg_up = has_up && img[p - w];
    const bool fg_left = c > 0 && img[p - 1];
    const bool fg_up_left = has_up && c > 0 && img[p - w - 1];
    const bool fg_up_right = has_up && c + 1 < W && img[p - w + 1];
    // As on the CPU, edges implied by the neighbours' own links are skipped: up touches the
    // other three; left touches up-left.
    if (fg_up) {
      unite(par, p, p - w);
      continue;
    }
    if (fg_left) {
      unite(par, p, p - 1);
    } else if (fg_up_left) {
      unite(par, p, p - w - 1);
    }
    if (fg_up_right) {
      unite(par, p, p - w + 1);
    }
  }
}

__global__ void point_to_roots(int32_t* parent, int64_t total, int64_t size) {
  for (int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; g < total;
       g += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (parent[g] >= 0) {
      const int64_t base = g - g % size;
      parent[g] = find_root(parent + base, parent[g]);
    }
  }
}

__global__ void count_pixels(const int32_t* parent, int32_t* areas, int64_t total, int64_t size) {
  for (int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; g < total;
       g += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (parent[g] >= 0) {
      atomicAdd(areas + (g - g % size) + parent[g], 1);
    }
  }
}

// Background parents are -1, so `parent + 1` is already the 0 background label. A root's own
// thread rewrites its count with the same value, so readers never see a torn count.
__global__ void finish(int32_t* labels, int32_t* areas, int64_t total, int64_t size) {
  for (int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; g < total;
       g += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t root = labels[g];
    if (root >= 0) {
      areas[g] = areas[(g - g % size) + root];
    }
    labels[g] = root + 1;
  }
}

std::tuple<at::Tensor, at::Tensor> connected_components_cuda(const at::Tensor& mask) {
  check_mask(mask);
  const c10::cuda::CUDAGuard device_guard(mask.device());
  const at::Tensor input = mask.contiguous();
  const int64_t H = input.size(2);
  const int64_t W = input.size(3);
  const auto options = input.options().dtype(at::kInt);
  at::Tensor labels = at::empty(input.sizes(), options);
  at::Tensor areas = at::zeros(input.sizes(), options);
  const int64_t total = input.numel();
  if (total == 0) {
    return {labels, areas};
  }
  const int64_t size = H * W;
  const auto* image = static_cast<const uint8_t*>(input.const_data_ptr());
  int32_t* label_data = labels.mutable_data_ptr<int32_t>();
  int32_t* area_data = areas.mutable_data_ptr<int32_t>();
  const int blocks = static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 65535));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  init_parents<<<blocks, kThreads, 0, stream>>>(image, label_data, total, size);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  link_neighbours<<<blocks, kThreads, 0, stream>>>(image, label_data, total, H, W);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  point_to_roots<<<blocks, kThreads, 0, stream>>>(label_data, total, size);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  count_pixels<<<blocks, kThreads, 0, stream>>>(label_data, area_data, total, size);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  finish<<<blocks, kThreads, 0, stream>>>(label_data, area_data, total, size);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {labels, areas};
}

// Tells the Python module that this kernel is linked in (runs when the library is loaded).
const bool cuda_kernel_marked = (mark_cuda_kernel_compiled(), true);

}  // namespace
}  // namespace sam2_ext

TORCH_LIBRARY_IMPL(sam2_ext, CUDA, m) {
  m.impl("connected_components", &sam2_ext::connected_components_cuda);
}
