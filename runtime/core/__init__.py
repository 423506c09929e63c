"""The core: run manifest variants on Vulkan. Imports no family.

errors, vkapi      exception types; lazy access to the `vulkan` bindings
context, features  instance / device / queue set-up; feature discovery and enabling
buffers            host-visible buffers with optional guard bands
glsl_types         GLSL type names -> bytes (push and spec constants, buffer element checks)
manifest           the typed build manifest (VariantEntry, Binding, ...)
pipelines          compute pipelines from a manifest entry + specialization
dispatch           recording and submitting steps (Runner, Step)
device             Device and default_device: the public face of the above
invoke             run_variant: any variant on NumPy arrays, by reflected names
layouts, packed    tensor layouts of variants.yaml; pack / unpack / Packed
select             picking a variant by role, axes and device support
registry           where families register; discovery of runtime/families/*
"""
