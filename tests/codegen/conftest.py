"""One build of the real variants.yaml per test session, shared by the codegen tests that only
read it (or copy it before changing anything): it is the slowest step of the folder."""

from __future__ import annotations

import pytest

from codegen.build import BuildReport, Project, build
from tests.codegen.codegen_fixtures import REAL_TEMPLATES, REAL_VARIANTS, Quiet


@pytest.fixture(scope="session")
def real_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, BuildReport]:
    project = Project(REAL_VARIANTS, REAL_TEMPLATES, tmp_path_factory.mktemp("real") / "out")
    return project, build(project, jobs=2, progress=Quiet)
