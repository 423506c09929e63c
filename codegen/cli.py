"""`python -m codegen build | list | show VARIANT`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codegen.build import Project, build, load_specs
from codegen.cpp import write_cpp_header
from codegen.errors import CodegenError
from codegen.render import Renderer


def _project(args: argparse.Namespace) -> Project:
    default = Project.default()
    return Project(
        variants_file=Path(args.variants) if args.variants else default.variants_file,
        template_dir=Path(args.templates) if args.templates else default.template_dir,
        out_dir=Path(args.out) if args.out else default.out_dir,
    )


def _cmd_build(args: argparse.Namespace) -> int:
    project = _project(args)
    report = build(project, jobs=args.jobs)
    for name, message in sorted(report.failures.items()):
        print(f"error: {name}:\n  " + message.replace("\n", "\n  "), file=sys.stderr)
    if args.emit_cpp and report.ok:
        write_cpp_header(project.out_dir, Path(args.emit_cpp))
    print(report.summary())
    return 0 if report.ok else 1


def _cmd_list(args: argparse.Namespace) -> int:
    _, specs = load_specs(_project(args))
    for spec in specs:
        if args.family and spec.family != args.family:
            continue
        feats = ",".join(spec.features) or "-"
        print(f"{spec.name}\t{spec.family}\t{feats}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    project = _project(args)
    config, specs = load_specs(project)
    by_name = {s.name: s for s in specs}
    spec = by_name.get(args.variant)
    if spec is None:
        close = [n for n in by_name if args.variant in n][:10]
        hint = f"; similar: {', '.join(close)}" if close else "; `python -m codegen list` shows them all"
        raise CodegenError(f"unknown variant {args.variant!r}{hint}")
    rendered = Renderer(project.template_dir).render(spec.template, spec.context(config), spec.name)
    sys.stdout.write(rendered.glsl)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m codegen", description="shaderkit shader codegen")
    p.add_argument("--variants", help="variants file (default: variants.yaml)")
    p.add_argument("--templates", help="template directory (default: templates/)")
    p.add_argument("--out", help="build directory (default: build/)")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="compile every variant to validated SPIR-V and write the manifest")
    b.add_argument("-j", "--jobs", type=int, default=None, help="parallel compiles (default: CPU count)")
    b.add_argument("--emit-cpp", metavar="HEADER", help="also write a C++ header with the SPIR-V and metadata")
    b.set_defaults(func=_cmd_build)
    ls = sub.add_parser("list", help="list variant names, families and required features")
    ls.add_argument("--family")
    ls.set_defaults(func=_cmd_list)
    sh = sub.add_parser("show", help="print the rendered GLSL of one variant")
    sh.add_argument("variant")
    sh.set_defaults(func=_cmd_show)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CodegenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the build dir stays consistent, the next build finishes the job", file=sys.stderr)
        return 130
