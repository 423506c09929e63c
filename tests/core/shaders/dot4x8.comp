#version 450
// Packed signed int8 dot product (OpSDot, SPV_KHR_integer_dot_product) with a
// uniform-block accumulator; glslc 2023.2 has no GL_EXT_integer_dot_product,
// so the instruction is spelled with GL_EXT_spirv_intrinsics.
#extension GL_EXT_spirv_intrinsics : require
layout(local_size_x = 16) in;
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4x8(uint a, uint b, spirv_literal int packed_format);
layout(set = 0, binding = 0) writeonly buffer Out { int t_out[]; };
layout(set = 0, binding = 1) readonly buffer A { uint t_a[]; };
layout(set = 0, binding = 2) readonly buffer B { uint t_b[]; };
layout(set = 0, binding = 3) uniform Params { ivec4 bias; uint n; } params;
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < params.n) {
        t_out[i] = sdot4x8(t_a[i], t_b[i], 0) + params.bias.x;
    }
}
