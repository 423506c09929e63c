#version 450
// t_out[i] = t_in[i] * pc.scale + ADD (+ BIAS when FLAG); workgroup size is a spec constant.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int ADD = 0;
layout(constant_id = 2) const bool FLAG = false;
layout(constant_id = 3) const float BIAS = 0.25;
layout(push_constant) uniform PC { uint n; float scale; } pc;
layout(set = 0, binding = 0) writeonly buffer Out { float t_out[]; };
layout(set = 0, binding = 1) readonly buffer In { float t_in[]; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < pc.n) {
        t_out[i] = t_in[i] * pc.scale + float(ADD) + (FLAG ? BIAS : 0.0);
    }
}
