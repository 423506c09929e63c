#version 450
// Busy work that takes a while, then a marker per invocation: lets a test tell whether the GPU
// has finished. Invocation i (of pc.n): t_out[i] = a hash of t_in and i over pc.iterations x 8
// steps, then t_out[pc.n + i] = pc.marker. (llvmpipe stops a loop after 65535 iterations, so the
// work is spread over invocations and unrolled rather than looped longer.)
layout(local_size_x = 8) in;
layout(push_constant) uniform PC { uint iterations; uint marker; uint n; } pc;
layout(set = 0, binding = 0) buffer Out { uint t_out[]; };
layout(set = 0, binding = 1) readonly buffer In { uint t_in[]; };
#define STEP(k) h = h * 1664525u + 1013904223u + t_in[(i + k) & 63u];
void main() {
    const uint gid = gl_GlobalInvocationID.x;
    if (gid >= pc.n) {
        return;
    }
    uint h = t_in[0] ^ gid;
    for (uint i = 0u; i < pc.iterations; ++i) {
        STEP(0u) STEP(1u) STEP(2u) STEP(3u) STEP(4u) STEP(5u) STEP(6u) STEP(7u)
    }
    t_out[gid] = h;
    memoryBarrierBuffer();
    t_out[pc.n + gid] = pc.marker;
}
