#version 450
// Counts, per invocation id, how often it ran: t_out[linear id] += 1 for ids < pc.size.
// Uses the workgroup-base spec constants of templates/include/common.glsl.j2 (workgroup_ids),
// so the runtime may split a dispatch over maxComputeWorkGroupCount into pieces.
layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 103) const uint WORKGROUP_BASE_X = 0u;
layout(constant_id = 104) const uint WORKGROUP_BASE_Y = 0u;
layout(constant_id = 105) const uint WORKGROUP_BASE_Z = 0u;
#define WORKGROUP_ID (gl_WorkGroupID + uvec3(WORKGROUP_BASE_X, WORKGROUP_BASE_Y, WORKGROUP_BASE_Z))
#define GLOBAL_ID (WORKGROUP_ID * gl_WorkGroupSize + gl_LocalInvocationID)
layout(push_constant) uniform PC { uvec4 size; } pc;
layout(set = 0, binding = 0) buffer Out { uint t_out[]; };
void main() {
    const uvec3 id = GLOBAL_ID;
    if (any(greaterThanEqual(id, pc.size.xyz))) {
        return;
    }
    atomicAdd(t_out[(id.z * pc.size.y + id.y) * pc.size.x + id.x], 1u);
}
