"""Render variant specs to GLSL with Jinja2, keeping a map from output lines to template lines.

Jinja does not record which template line produced which output line, so the loader appends a
marker comment to every template line that is plain text (no block tag or comment), and the
renderer strips the markers again while building the line map. Markers never reach glslc.
"""

from __future__ import annotations

import hashlib
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from codegen.errors import TemplateError
from codegen.names import template_path_problem

_MARK_RE = re.compile(r"/\*@@(.+?):(\d+)@@\*/")


class TemplateFail(Exception):
    """Raised by the `fail()` template global: a template rejects its inputs."""


@dataclass(frozen=True)
class Rendered:
    glsl: str
    # line_map[i] = (template path, template line) for output line i + 1, when known
    line_map: tuple[tuple[str, int] | None, ...]

    def source_of(self, line: int) -> tuple[str, int] | None:
        """Template location of a 1-based output line; nearest marked line as a fallback."""
        if not 1 <= line <= len(self.line_map):
            return None
        for delta in range(len(self.line_map)):
            for cand in (line - 1 + delta, line - 1 - delta):
                if 0 <= cand < len(self.line_map) and self.line_map[cand] is not None:
                    return self.line_map[cand]
        return None


def _mark_source(source: str, label: str) -> str:
    out = []
    open_tag: str | None = None  # a Jinja tag or comment that continues onto the next line
    for lineno, line in enumerate(source.split("\n"), start=1):
        plain = open_tag is None and not any(t in line for t in ("{%", "%}", "{#", "#}"))
        # track whether a {{ ... }}, {% ... %} or {# ... #} is left open at the end of the line
        for opener, closer in (("{{", "}}"), ("{%", "%}"), ("{#", "#}")):
            if open_tag == closer:
                if closer in line:
                    open_tag = None
            elif line.rfind(opener) > line.rfind(closer):
                open_tag = closer
        if plain and open_tag is None:
            line = f"{line}/*@@{label}:{lineno}@@*/"
        out.append(line)
    return "\n".join(out)


class MarkingLoader(jinja2.FileSystemLoader):
    """A file loader that adds line markers; template names stay as written."""

    def __init__(self, root: Path, label_root: Path) -> None:
        super().__init__(str(root))
        self.root = root
        self.label_root = label_root

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        if filename and not Path(filename).resolve().is_relative_to(self.root.resolve()):
            # a symlink out of the template directory: imports must stay inside it, like variants.yaml's paths
            where = _display_path(Path(filename), self.label_root)
            raise TemplateError(f"{where}: resolves outside the template directory")
        label = _display_path(Path(filename or template), self.label_root)
        return _mark_source(source, label), filename, uptodate


def _display_path(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _fail(message: str) -> None:
    raise TemplateFail(message)


class Renderer:
    """Jinja2 environment over a template directory, with strict undefined names."""

    def __init__(self, template_dir: Path, label_root: Path | None = None) -> None:
        self.template_dir = template_dir
        self.label_root = label_root or template_dir.parent
        self.env = jinja2.Environment(
            loader=MarkingLoader(template_dir, self.label_root),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            autoescape=False,
        )
        self.env.globals["fail"] = _fail
        self._plain_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir)))
        self._dep_hash: dict[str, str] = {}
        self._refs: dict[str, list[str]] = {}

    def template_path(self, name: str) -> Path:
        """The file of template `name`; TemplateError unless it lies inside the template directory
        (after following symlinks), whoever names it: variants.yaml or an import in a template."""
        problem = template_path_problem(name)
        if problem:
            raise TemplateError(f"{problem} (template directory {_display_path(self.template_dir, self.label_root)})")
        path = self.template_dir / name
        root = self.template_dir.resolve()
        if not path.resolve().is_relative_to(root):
            where = _display_path(path, self.label_root)
            raise TemplateError(f"{where}: resolves outside the template directory {root}")
        return path

    def dependency_hash(self, name: str) -> str:
        """sha256 over a template and everything it includes or imports, recursively."""
        if name not in self._dep_hash:
            digest = hashlib.sha256()
            for dep in sorted(self._dependencies(name, set())):
                digest.update(dep.encode() + b"\0" + self.template_path(dep).read_bytes() + b"\0")
            self._dep_hash[name] = digest.hexdigest()
        return self._dep_hash[name]

    def _dependencies(self, name: str, seen: set[str], parent: str | None = None) -> set[str]:
        if name in seen:
            return seen
        try:
            path = self.template_path(name)
        except TemplateError as exc:
            origin = f" (imported by {_display_path(self.template_path(parent), self.label_root)})" if parent else ""
            raise TemplateError(f"{exc}{origin}") from None
        if not path.is_file():
            origin = f" (imported by {_display_path(self.template_path(parent), self.label_root)})" if parent else ""
            raise TemplateError(f"{_display_path(path, self.label_root)}: template not found{origin}")
        seen.add(name)
        for ref in self._references(name, path):
            self._dependencies(ref, seen, name)
        return seen

    def _references(self, name: str, path: Path) -> list[str]:
        """The templates `name` imports or includes by literal name; each file is parsed once per
        build (the shared includes are reached from every family's template)."""
        if is_plain_glsl(name):
            return []
        if name not in self._refs:
            try:
                ast = self._plain_env.parse(path.read_text())
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(
                    f"{_display_path(path, self.label_root)}:{exc.lineno}: template syntax error: {exc.message}"
                ) from None
            self._refs[name] = [ref for ref in jinja2.meta.find_referenced_templates(ast) if ref is not None]
        return self._refs[name]

    def render(self, template: str, context: dict[str, Any], variant: str) -> Rendered:
        """Render one variant; template problems become TemplateError at file:line."""
        try:
            self.template_path(template)
        except TemplateError as exc:
            raise TemplateError(f"{exc} (variant {variant})") from None
        if is_plain_glsl(template):
            return self._plain(template, variant)
        try:
            text = self.env.get_template(template).render(**context)
        except jinja2.TemplateSyntaxError as exc:
            where = _display_path(Path(exc.filename or exc.name or template), self.label_root)
            raise TemplateError(f"{where}:{exc.lineno}: template syntax error: {exc.message}") from None
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(
                f"{_display_path(self.template_dir / str(exc.name or template), self.label_root)}: "
                f"template not found (variant {variant})"
            ) from None
        except (jinja2.UndefinedError, TemplateFail, TypeError, ValueError, KeyError) as exc:
            where = self._template_frame(exc)
            if isinstance(exc, jinja2.UndefinedError):
                what = f"undefined name: {exc.message}"
            elif isinstance(exc, TemplateFail):
                what = str(exc)
            else:
                what = f"{type(exc).__name__}: {exc}"
            raise TemplateError(f"{where}: {what} (variant {variant})") from None
        return _strip_markers(text)

    def _plain(self, name: str, variant: str) -> Rendered:
        """A plain GLSL file, used verbatim: no Jinja, each output line is the same line of the file."""
        path = self.template_path(name)
        try:
            text = path.read_text()
        except OSError as exc:
            raise TemplateError(f"{_display_path(path, self.label_root)}: cannot read ({exc.strerror}) "
                                f"(variant {variant})") from None
        label = _display_path(path, self.label_root)
        return Rendered(glsl=text, line_map=tuple((label, i + 1) for i in range(text.count("\n") + 1)))

    def _template_frame(self, exc: BaseException) -> str:
        frames = traceback.extract_tb(exc.__traceback__)
        tdir = str(self.template_dir.resolve())
        for frame in reversed(frames):
            if frame.filename and str(Path(frame.filename).resolve()).startswith(tdir):
                return f"{_display_path(Path(frame.filename), self.label_root)}:{frame.lineno}"
        return "<template>"


def is_plain_glsl(name: str) -> bool:
    """A `template:` naming a .comp / .glsl file is plain GLSL (no Jinja): a family can wrap an existing
    shader. Jinja templates end in .j2."""
    return name.endswith((".comp", ".glsl"))


def _strip_markers(text: str) -> Rendered:
    lines = text.split("\n")
    clean: list[str] = []
    line_map: list[tuple[str, int] | None] = []
    for line in lines:
        found = _MARK_RE.findall(line)
        clean.append(_MARK_RE.sub("", line))
        # a line built from several template lines (inline macro calls) keeps the first marker
        line_map.append((found[0][0], int(found[0][1])) if found else None)
    return Rendered(glsl="\n".join(clean), line_map=tuple(line_map))
