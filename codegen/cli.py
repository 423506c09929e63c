"""`python -m codegen build | list | show VARIANT`.

Only stdlib modules load before a command runs: a no-op `build` is answered from the build dir's
stamp (codegen/stamp.py) without pydantic or Jinja2, which cost more than the check itself.
"""

from __future__ import annotations

import argparse
import os
import sys

from codegen.errors import CodegenError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from codegen.project import Project

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """Usage errors as one `error: ...` line (plus where to read more), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of parallel compiles, got {text!r}")
    return value


def _paths(args: argparse.Namespace) -> tuple[str, str, str]:
    """variants file, template dir, build dir: plain strings, so the fast path needs no pathlib."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return (
        args.variants or os.path.join(root, "variants.yaml"),
        args.templates or os.path.join(root, "templates"),
        args.out or os.path.join(root, "build"),
    )


def _project(args: argparse.Namespace) -> Project:
    from pathlib import Path

    from codegen.project import Project

    variants, templates, out = _paths(args)
    return Project(Path(variants), Path(templates), Path(out))


def _cmd_build(args: argparse.Namespace) -> int:
    if not args.emit_cpp:
        from codegen.stamp import up_to_date

        summary = up_to_date(*_paths(args), optimize=args.optimize)
        if summary is not None:
            print(summary)
            return 0
    from pathlib import Path

    from codegen.build import BuildInterrupted, build

    project = _project(args)

    try:
        report = build(project, jobs=args.jobs, optimize=args.optimize)
    except BuildInterrupted as exc:
        print(exc.report.summary())
        print(
            "interrupted: the manifest keeps every variant that finished; the next build does the rest", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    for name, message in sorted(report.failures.items()):
        print(f"error: {name}:\n  " + message.replace("\n", "\n  "), file=sys.stderr)
    if args.emit_cpp and report.ok:
        from codegen.cpp import write_cpp_header

        write_cpp_header(project.out_dir, Path(args.emit_cpp))
    print(report.summary())
    return 0 if report.ok else 1


def _cmd_list(args: argparse.Namespace) -> int:
    from codegen.build import load_specs

    config, specs = load_specs(_project(args))
    if args.family and args.family not in config.families:
        known = ", ".join(config.families)
        print(f"error: unknown family {args.family!r}; known families: {known}", file=sys.stderr)
        return EXIT_USAGE
    for spec in specs:
        if args.family and spec.family != args.family:
            continue
        feats = ",".join(spec.features) or "-"
        print(f"{spec.name}\t{spec.family}\t{feats}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from codegen.build import load_specs
    from codegen.render import Renderer

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


def _add_paths(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument("--variants", default=default, help="variants file (default: variants.yaml)")
    p.add_argument("--templates", default=default, help="template directory (default: templates/)")
    p.add_argument("--out", default=default, help="build directory (default: build/)")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m codegen", description="shaderkit shader codegen")
    _add_paths(p, None)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="compile every variant to validated SPIR-V and write the manifest")
    b.add_argument("-j", "--jobs", type=_positive_int, default=None, help="parallel compiles (default: CPU count)")
    b.add_argument("--emit-cpp", metavar="HEADER", help="also write a C++ header with the SPIR-V and metadata")
    b.add_argument(
        "-O", "--optimize", action="store_true", help="ship glslc -O SPIR-V (reflection still from the plain compile)"
    )
    b.set_defaults(func=_cmd_build)
    ls = sub.add_parser("list", help="list variant names, families and required features")
    ls.add_argument("--family")
    ls.set_defaults(func=_cmd_list)
    sh = sub.add_parser("show", help="print the rendered GLSL of one variant")
    sh.add_argument("variant")
    sh.set_defaults(func=_cmd_show)
    for command in (b, ls, sh):  # `build --out DIR` as well as `--out DIR build`
        _add_paths(command, argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CodegenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file the build must read or write, named by the OS
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the build dir stays consistent, the next build finishes the job", file=sys.stderr)
        return EXIT_INTERRUPTED
