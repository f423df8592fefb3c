// fp32 flash attention for the CPU on oneDNN's brgemm: see dit/cpu_flash.py for why.
// Built on first use by torch.utils.cpp_extension.load (dit/cpu_flash.py::_extension).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/native/CPUBlas.h>
#include <ATen/native/cpu/utils.h>
#include <limits>
#include <vector>

using Vec = at::vec::Vectorized<float>;
constexpr int64_t kQueryBlock = 64;

// q: (B, H, Nq, Dh), k and v: (B, H, Nk, Dh), any strides with a contiguous last dim.
// mask: (B, Nk) bool (True = attend) or an empty tensor. Returns (B, H, Nq, Dh) as a view
// of a (B, Nq, H, Dh) buffer, the layout SDPA's CPU kernel returns too.
torch::Tensor attention(torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor mask) {
  const int64_t B = q.size(0), H = q.size(1), Nq = q.size(2), Dh = q.size(3), Nk = k.size(2);
  TORCH_CHECK(q.stride(3) == 1 && k.stride(3) == 1 && v.stride(3) == 1,
              "attention: the last dim of q, k, v must be contiguous");
  auto out = torch::empty({B, Nq, H, Dh}, q.options());
  const bool masked = mask.numel() > 0;
  auto mask_u8 = masked ? mask.to(torch::kUInt8).contiguous() : mask;
  const uint8_t* mp = masked ? mask_u8.data_ptr<uint8_t>() : nullptr;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  // Even blocks of at most kQueryBlock queries: 272 = 4 x 68, not 4 x 64 + a slow 16.
  const int64_t q_blocks = (Nq + kQueryBlock - 1) / kQueryBlock;
  const int64_t q_block = (Nq + q_blocks - 1) / q_blocks;
  const float* qp = q.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, B * H * q_blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(q_block * Nk), kt(Dh * Nk);
    int64_t kt_of = -1;  // the (batch, head) whose K^T is in kt
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bh = task / q_blocks, b = bh / H, h = bh % H;
      if (bh != kt_of) {  // brgemm's B operand is row-major: K^T (Dh, Nk), once per head
        const float* kb = kp + b * k.stride(0) + h * k.stride(1);
        at::native::utils::transpose(Nk, Dh, kb, k.stride(2), kt.data(), Nk);  // fbgemm SIMD
        kt_of = bh;
      }
      const int64_t q0 = (task % q_blocks) * q_block, m = std::min(q_block, Nq - q0);
      const float* qb = qp + b * q.stride(0) + h * q.stride(1) + q0 * q.stride(2);
      // scores (m, Nk) = q block (m, Dh) @ K^T (Dh, Nk)
      at::native::cpublas::brgemm(m, Nk, Dh, q.stride(2), Nk, Nk, false, qb,
                                  kt.data(), scores.data(), false);
      std::vector<float> inv_sum(m);
      for (int64_t i = 0; i < m; ++i) {
        float* row = scores.data() + i * Nk;
        if (mp) {
          const uint8_t* mrow = mp + b * Nk;
          for (int64_t j = 0; j < Nk; ++j)
            if (!mrow[j]) row[j] = -std::numeric_limits<float>::infinity();
        }
        // softmax(scale * row): the max, then exp and the sum in one pass
        float mx = at::vec::reduce_all<float>(
            [](Vec& a, Vec& c) { return at::vec::maximum(a, c); }, row, Nk);
        const Vec vmx(mx * scale), vscale(scale);
        Vec vsum(0.0f);
        int64_t j = 0;
        for (; j + Vec::size() <= Nk; j += Vec::size()) {
          Vec e = (Vec::loadu(row + j) * vscale - vmx).exp_u20();
          e.store(row + j);
          vsum = vsum + e;
        }
        float sum = at::vec::vec_reduce_all<float>([](Vec& a, Vec& c) { return a + c; }, vsum);
        for (; j < Nk; ++j) {
          row[j] = std::exp(row[j] * scale - mx * scale);
          sum += row[j];
        }
        inv_sum[i] = 1.0f / sum;
      }
      // out block (m, Dh) = probabilities (m, Nk) @ V (Nk, Dh), written in place, then scaled
      float* ob = op + ((b * Nq + q0) * H + h) * Dh;
      at::native::cpublas::brgemm(m, Dh, Nk, Nk, v.stride(2), H * Dh, false, scores.data(),
                                  vp + b * v.stride(0) + h * v.stride(1), ob, false);
      for (int64_t i = 0; i < m; ++i) {
        float* row = ob + i * H * Dh;
        at::vec::map([s = inv_sum[i]](Vec x) { return x * Vec(s); }, row, row, Dh);
      }
    }
    at::native::cpublas::brgemm_release(false);
  });
  return out.transpose(1, 2);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("attention", &attention); }
