#version 450
// Converts 8/16-bit storage to 32-bit: needs storageBuffer8BitAccess / 16BitAccess.
#extension GL_EXT_shader_8bit_storage : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
layout(local_size_x = 32) in;
layout(push_constant) uniform PC { uint n; } pc;
layout(set = 0, binding = 0) writeonly buffer OutI { int t_out_i[]; };
layout(set = 0, binding = 1) writeonly buffer OutF { float t_out_f[]; };
layout(set = 0, binding = 2) readonly buffer InI8 { int8_t t_in_i8[]; };
layout(set = 0, binding = 3) readonly buffer InF16 { float16_t t_in_f16[]; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < pc.n) {
        t_out_i[i] = int(t_in_i8[i]);
        t_out_f[i] = float(t_in_f16[i]);
    }
}
