#version 450
// Writes pc.value to t_out[pc.index]: index == length is one element past the end.
layout(local_size_x = 1) in;
layout(push_constant) uniform PC { uint index; uint value; } pc;
layout(set = 0, binding = 0) buffer Out { uint t_out[]; };
void main() {
    t_out[pc.index] = pc.value;
}
