#version 450
// Plain GLSL (no Jinja): shaderkit wraps it as the family q8_rowsum with no template at all.
// out[r] = sum of the signed int8 values of row r of a (rows x cols) matrix packed 4 per int32,
// each row starting on a word boundary (row_words = ceil(cols / 4)); bytes past `cols` are ignored.
// One workgroup of WG threads per row; the workgroup size is a specialization constant.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int SCALE = 1;  // every sum is multiplied by SCALE (wrapping int32)

layout(set = 0, binding = 0, std430) writeonly buffer Sums { int t_sums[]; };
layout(set = 0, binding = 1, std430) readonly buffer Rows { int t_rows[]; };
layout(push_constant) uniform Params {
  uint rows;
  uint cols;
  uint row_words;
} p;

shared int partial[gl_WorkGroupSize.x];

void main() {
  const uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  const uint lane = gl_LocalInvocationID.x;
  int acc = 0;
  if (row < p.rows) {
    for (uint w = lane; w < p.row_words; w += gl_WorkGroupSize.x) {
      const int word = t_rows[row * p.row_words + w];
      for (uint b = 0u; b < 4u; ++b) {
        if (w * 4u + b < p.cols) {
          acc += bitfieldExtract(word, int(8u * b), 8);
        }
      }
    }
  }
  partial[lane] = acc;
  barrier();
  for (uint step = gl_WorkGroupSize.x / 2u; step > 0u; step /= 2u) {
    if (lane < step) {
      partial[lane] += partial[lane + step];
    }
    barrier();
  }
  if (lane == 0u && row < p.rows) {
    t_sums[row] = partial[0] * SCALE;
  }
}
