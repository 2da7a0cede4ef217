// 8-connected component labelling of binary masks on the CPU, the op's registration, and the
// Python module `sam2._ext` whose import registers the op as torch.ops.sam2_ext.*.
//
// Each image is labelled in two raster sweeps: the first gives every foreground pixel a
// provisional label taken from its earlier neighbours (a new one when it has none) and records
// which provisional labels meet in a small union-find table; the table is then resolved to
// final labels and areas, and the second sweep looks every pixel up in it. Images of a batch
// are independent and run in parallel.
#include <Python.h>

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

#include "connected_components.h"

namespace sam2_ext {
namespace {

bool cuda_kernel_compiled = false;

// Union-find over provisional labels, which are numbered in the order of their first pixel.
// Parents always point to smaller labels, so a root is the earliest provisional label of its
// component, and the root's first pixel is the component's first pixel in raster order.
struct Equivalences {
  std::vector<int32_t> parent;  // parent label; after resolve(): final label (0 = background)
  std::vector<int32_t> count;  // pixels per label; after resolve(): the component's area
  std::vector<int32_t> first;  // raster index of the label's first pixel

  void reset() {
    // Label 0 is the background: it maps to label 0 with area 0.
    parent.assign(1, 0);
    count.assign(1, 0);
    first.assign(1, -1);
  }

  int32_t add(int32_t pixel) {
    const auto label = static_cast<int32_t>(parent.size());
    parent.push_back(label);
    count.push_back(0);
    first.push_back(pixel);
    return label;
  }

  // Root of x's tree, halving the path on the way (a grandparent is still a smaller label).
  int32_t find(int32_t x) {
    while (parent[x] != x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  }

  void unite(int32_t a, int32_t b) {
    a = find(a);
    b = find(b);
    if (a < b) {
      parent[b] = a;
    } else if (b < a) {
      parent[a] = b;
    }
  }

  // Turns `parent` into final labels (1 + first pixel of the component) and `count` into
  // component areas, per provisional label. Parents precede children, so ascending sweeps
  // see every parent already resolved.
  void resolve() {
    const auto size = static_cast<int32_t>(parent.size());
    for (int32_t l = 1; l < size; ++l) {
      const int32_t root = parent[parent[l]];  // the parent is an earlier, resolved label
      parent[l] = root;
      if (root != l) {
        count[root] += count[l];
      }
    }
    for (int32_t l = 1; l < size; ++l) {
      const int32_t root = parent[l];
      count[l] = count[root];
      parent[l] = first[root] + 1;
    }
  }
};

// Labels one H x W image into `labels` and `areas` (H*W int32 buffers each).
void label_image(
    const uint8_t* image,
    int32_t* labels,
    int32_t* areas,
    int64_t H,
    int64_t W,
    Equivalences& eq) {
  eq.reset();
  // Pass 1: provisional labels from the already-visited neighbours (up-left, up, up-right,
  // left), recording which provisional labels touch.
  for (int64_t r = 0; r < H; ++r) {
    const uint8_t* row = image + r * W;
    const uint8_t* up = r > 0 ? row - W : nullptr;
    int32_t* out = labels + r * W;
    const int32_t* out_up = up != nullptr ? out - W : nullptr;
    for (int64_t c = 0; c < W; ++c) {
      if (!row[c]) {
        out[c] = 0;
        continue;
      }
      const bool has_left = c > 0;
      const bool has_right = c + 1 < W;
      int32_t label;
      if (up != nullptr && up[c]) {
        // The other three neighbours touch `up`, so they already share its label's tree.
        label = out_up[c];
      } else if (has_left && row[c - 1]) {
        // up-left touches left; up-right does not (up is background) and may be another tree.
        label = out[c - 1];
        if (up != nullptr && has_right && up[c + 1]) {
          eq.unite(label, out_up[c + 1]);
        }
      } else if (up != nullptr && has_left && up[c - 1]) {
        label = out_up[c - 1];
        if (has_right && up[c + 1]) {
          eq.unite(label, out_up[c + 1]);
        }
      } else if (up != nullptr && has_right && up[c + 1]) {
        label = out_up[c + 1];
      } else {
        label = eq.add(static_cast<int32_t>(r * W + c));
      }
      out[c] = label;
      eq.count[label] += 1;
    }
  }
  eq.resolve();
  // Pass 2: provisional label -> final label and area (background maps to 0 and 0).
  const int64_t size = H * W;
  for (int64_t i = 0; i < size; ++i) {
    const int32_t provisional = labels[i];
    labels[i] = eq.parent[provisional];
    areas[i] = eq.count[provisional];
  }
}

}  // namespace

void check_mask(const at::Tensor& mask) {
  TORCH_CHECK_VALUE(
      mask.dim() == 4 && mask.size(1) == 1,
      "connected_components expects a (N, 1, H, W) mask, got shape ",
      mask.sizes());
  TORCH_CHECK_TYPE(
      mask.scalar_type() == at::kBool || mask.scalar_type() == at::kByte,
      "connected_components expects a bool or uint8 mask, got ",
      mask.scalar_type());
  TORCH_CHECK_VALUE(
      mask.size(2) * mask.size(3) <= std::numeric_limits<int32_t>::max(),
      "connected_components labels are int32, so an image may hold at most 2**31 - 1 pixels, "
      "got ",
      mask.size(2),
      " x ",
      mask.size(3));
}

std::tuple<at::Tensor, at::Tensor> connected_components_cpu(const at::Tensor& mask) {
  check_mask(mask);
  const at::Tensor input = mask.contiguous();
  const int64_t N = input.size(0);
  const int64_t H = input.size(2);
  const int64_t W = input.size(3);
  const auto options = input.options().dtype(at::kInt);
  at::Tensor labels = at::empty(input.sizes(), options);
  at::Tensor areas = at::empty(input.sizes(), options);
  if (input.numel() == 0) {
    return {labels, areas};
  }
  // bool and uint8 are both one byte per pixel; any non-zero byte is foreground.
  const auto* image = static_cast<const uint8_t*>(input.const_data_ptr());
  int32_t* label_data = labels.mutable_data_ptr<int32_t>();
  int32_t* area_data = areas.mutable_data_ptr<int32_t>();
  const int64_t size = H * W;
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    Equivalences eq;  // one table per worker, reused across its images
    for (int64_t n = begin; n < end; ++n) {
      label_image(image + n * size, label_data + n * size, area_data + n * size, H, W, eq);
    }
  });
  return {labels, areas};
}

void mark_cuda_kernel_compiled() {
  cuda_kernel_compiled = true;
}

}  // namespace sam2_ext

TORCH_LIBRARY(sam2_ext, m) {
  m.def("connected_components(Tensor mask) -> (Tensor labels, Tensor areas)");
}

TORCH_LIBRARY_IMPL(sam2_ext, CPU, m) {
  m.impl("connected_components", &sam2_ext::connected_components_cpu);
}

// The Python module only exists to be imported: importing it loads this library, whose static
// initialisers above register the op. `with_cuda` says whether the CUDA kernel is linked in.
extern "C" PyMODINIT_FUNC PyInit__ext(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_ext",
      "Registers torch.ops.sam2_ext.connected_components (8-connected labelling).",
      -1,
      nullptr,
  };
  PyObject* module = PyModule_Create(&module_def);
  if (module != nullptr &&
      PyModule_AddIntConstant(module, "with_cuda", sam2_ext::cuda_kernel_compiled ? 1 : 0) < 0) {
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}
