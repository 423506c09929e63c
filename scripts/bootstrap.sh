#!/usr/bin/env bash
# Installs what shaderkit needs on a Debian machine: the shader toolchain and a Vulkan driver
# (Debian packages), then a .venv with the pinned Python dependencies. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(glslc spirv-tools spirv-cross mesa-vulkan-drivers libvulkan1 python3-venv)
missing=()
for tool in glslc spirv-val spirv-cross; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || missing+=(libvulkan1)
ls /usr/share/vulkan/icd.d/*lvp* >/dev/null 2>&1 || ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: missing: ${missing[*]}"
  cmd="apt-get update && apt-get install -y --no-install-recommends ${APT_PACKAGES[*]}"
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing Debian packages: ${APT_PACKAGES[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
  else
    echo "bootstrap: not root; run this, then retry:" >&2
    echo "  sudo sh -c '$cmd'" >&2
    exit 1
  fi
fi

stamp=.venv/.bootstrap-stamp
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: creating .venv with pinned dependencies (requirements.txt)"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
