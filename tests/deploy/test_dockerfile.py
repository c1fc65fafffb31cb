"""The Dockerfile, read statically (there is no Docker engine to build with), and
the wheel it builds, built here from exactly the files it copies and run from a
fresh virtualenv. Its stages: build (the wheel, and the google.rpc protos the
page decodes), web (the console's page, by package.json's scripts) and the
final image."""

import asyncio
import fnmatch
import importlib.metadata
import importlib.util
import json
import shlex
import shutil
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from deploy_model import (
    CONSOLE,
    DOCKERFILE,
    DOCKERIGNORE,
    PROCESSES,
    REPO,
    SERVICES,
    Instruction,
    config_in,
    dockerfile_stages,
    image_env,
)
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from support.service_process import run_to_exit

BASE_IMAGE = "python:3.11-slim"
PACKAGE_JSON = REPO / "package.json"


def _stages() -> list[list[Instruction]]:
    return dockerfile_stages(DOCKERFILE.read_text())


def _stage(alias: str) -> list[Instruction]:
    (stage,) = [s for s in _stages() if s[0].arguments.split()[-1] == alias]
    return stage


def _arguments(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.arguments for i in stage if i.keyword == keyword]


def _copied_sources(alias: str = "build") -> list[str]:
    """What a build stage copies from the build context (COPY without --from)."""
    sources: list[str] = []
    for arguments in _arguments(_stage(alias), "COPY"):
        words = arguments.split()
        if not any(w.startswith("--from") for w in words):
            sources.extend(w.rstrip("/") for w in words[:-1])
    return sources


def _copied_from(stage: list[Instruction], alias: str) -> list[tuple[str, str]]:
    """(source, destination) of each COPY --from=alias in stage."""
    copies = []
    for arguments in _arguments(stage, "COPY"):
        words = arguments.split()
        if words[0] == f"--from={alias}":
            copies.append((words[1].rstrip("/"), words[2].rstrip("/")))
    return copies


def _packaged_roots() -> set[str]:
    """Every top-level package pyproject's packages.find finds, as a path in the
    repository (gen/quoteflow for the generated code)."""
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"][
        "find"
    ]
    roots: set[str] = set()
    for where in find["where"]:
        for init in (REPO / where).glob("*/__init__.py"):
            name = init.parent.name
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in find["include"]):
                roots.add(init.parent.relative_to(REPO).as_posix())
    return roots


def test_the_python_stages_are_the_slim_python_the_project_targets() -> None:
    stages = _stages()
    assert [s[0].arguments.split()[-1] for s in stages[:-1]] == ["build", "web"]
    for stage in (_stage("build"), stages[-1]):
        image = stage[0].arguments.split()[0]
        assert image == BASE_IMAGE
    python = BASE_IMAGE.partition(":")[2].partition("-")[0]
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(python)


def test_the_build_copies_everything_pyproject_packages() -> None:
    sources = _copied_sources()
    # pyproject's readme is the package's long description: without it the
    # build only warns, and the metadata lacks it.
    assert {"pyproject.toml", "README.md"} <= set(sources)
    for root in _packaged_roots():
        assert any(root == s or root.startswith(s + "/") for s in sources), f"{root} not copied"
    for source in sources:
        assert (REPO / source).exists(), source


def test_the_image_installs_the_built_project_not_an_editable_one() -> None:
    build, final = _stage("build"), _stages()[-1]
    (built, *_) = _arguments(build, "RUN")
    assert "pip wheel" in built and built.endswith(" .")
    assert " -e " not in built
    (alias,) = [w for w in build[0].arguments.split() if w not in (BASE_IMAGE, "AS", "as")]
    ((_, wheels),) = _copied_from(final, alias)
    assert any(f"pip install {wheels}/" in run for run in _arguments(final, "RUN"))


def test_the_page_is_built_by_the_scripts_make_web_runs() -> None:
    web = _stage("web")
    node = web[0].arguments.split()[0]
    assert node.startswith("node:") and node.partition(":")[2].split("-")[0].isdigit()
    runs = " && ".join(_arguments(web, "RUN"))
    assert "npm ci " in runs
    scripts = json.loads(PACKAGE_JSON.read_text())["scripts"]
    makefile = (REPO / "Makefile").read_text()
    for script in ("web:generate", "web:bundle"):
        assert script in scripts
        # The same build as `make web`, so the image's page is the tested one.
        assert f"npm run --silent {script}" in runs
        assert f"npm run --silent {script}" in makefile
    for source in _copied_sources("web"):
        assert (REPO / source).exists(), source
    for source in ("package-lock.json", "proto", "web", "buf.gen.web.yaml"):
        assert source in _copied_sources("web")
    # The google.rpc protos come from the build stage, written where the
    # template's second input reads them.
    ((_, protos),) = _copied_from(web, "build")
    assert {"directory": protos} in yaml.safe_load((REPO / "buf.gen.web.yaml").read_text())[
        "inputs"
    ]


def test_the_error_detail_protos_are_of_the_version_the_project_depends_on() -> None:
    build = " ".join(_arguments(_stage("build"), "RUN"))
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (pinned,) = [d for d in dependencies if Requirement(d).name == "googleapis-common-protos"]
    assert f'pip install --no-cache-dir --no-deps "{pinned}"' in build
    assert "python tools/google_rpc_protos.py" in build


def test_the_final_image_holds_the_page_the_console_serves() -> None:
    final = _stages()[-1]
    ((source, destination),) = _copied_from(final, "web")
    assert source == "/src/web/dist"
    # Secure by default, as the services are (test_in_the_image_...).
    with pytest.raises(AssertionError, match="would not start"):
        config_in(CONSOLE, image_env(final))
    config = config_in(CONSOLE, {**image_env(final), "CONSOLE_INSECURE": "true"})
    assert config.page_dir == Path(destination)
    assert config.host == "0.0.0.0"
    assert str(CONSOLE.port) in " ".join(_arguments(final, "EXPOSE")).split()


def test_the_default_command_runs_the_quote_service() -> None:
    final = _stages()[-1]
    # With no ENTRYPOINT, a pod's `command` replaces the CMD whole.
    assert not _arguments(final, "ENTRYPOINT")
    (cmd,) = _arguments(final, "CMD")
    assert json.loads(cmd) == ["python", "-m", "quote_svc"]
    assert importlib.util.find_spec("quote_svc.__main__") is not None


def test_the_user_is_numeric_and_not_root() -> None:
    final = _stages()[-1]
    (user,) = _arguments(final, "USER")
    uid, _, gid = user.partition(":")
    # Numeric, so the kubelet can check runAsNonRoot without the image's passwd.
    assert uid.isdigit() and int(uid) != 0
    assert gid.isdigit() and int(gid) != 0
    # It comes last but for the metadata: everything after it runs as the user.
    after = [i.keyword for i in final[[i.keyword for i in final].index("USER") :]]
    assert set(after) <= {"USER", "EXPOSE", "CMD", "WORKDIR", "LABEL"}


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_in_the_image_every_service_listens_on_every_interface(service) -> None:
    final = _stages()[-1]
    env = image_env(final)
    # Secure by default: on every interface, not without TLS and tokens...
    with pytest.raises(AssertionError, match="would not start"):
        config_in(service, env)
    # ...unless told so by name (the manifests give it both: test_secure_manifests).
    config = config_in(service, {**env, f"{service.env_prefix}_INSECURE": "true"})
    assert config.host == "0.0.0.0"
    assert Path(config.data_dir).is_absolute()
    assert str(service.port) in " ".join(_arguments(final, "EXPOSE")).split()


def _docker_run_examples() -> list[list[str]]:
    """The `docker run` commands the Dockerfile's opening comment shows, as words."""
    examples = []
    for line in DOCKERFILE.read_text().splitlines():
        if not line.startswith("#"):
            break
        command = line.lstrip("#").strip()
        if command.startswith("docker run "):
            examples.append(shlex.split(command.partition("#")[0]))
    return examples


def test_the_docker_run_examples_start_each_process_insecure_by_name() -> None:
    """Each example, run as written: the image's ENV with the example's -e, and
    the module it names (or the CMD's). Each says INSECURE by name and no more:
    the image alone is refused (test_in_the_image_...)."""
    final = _stages()[-1]
    (cmd,) = _arguments(final, "CMD")
    started = []
    for words in _docker_run_examples():
        env: dict[str, str] = {}
        rest = words[2:]
        while rest[0].startswith("-"):
            option, value, rest = rest[0], rest[1], rest[2:]
            assert option in ("-e", "-p", "-v"), words
            if option == "-e":
                key, _, env[key] = value.partition("=")
        image, command = rest[0], rest[1:] or json.loads(cmd)
        assert image.partition(":")[0] == "quoteflow", words
        assert command[:2] == ["python", "-m"] and len(command) == 3, words
        (process,) = [p for p in PROCESSES if p.module == command[2]]
        assert env == {f"{process.env_prefix}_INSECURE": "true"}, words
        config = config_in(process, {**image_env(final), **env})
        assert config.host == "0.0.0.0" and not config.tls and not config.auth
        started.append(process)
    assert sorted(p.name for p in started) == sorted(p.name for p in PROCESSES)


def test_dockerignore_keeps_out_the_local_state_and_nothing_the_build_needs() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not [p for p in patterns if p.startswith("!")]
    # build/ would slip stale modules into the wheel (setuptools reuses it).
    for needed in (".venv", "node_modules", "var", "build", "*.egg-info", ".git"):
        assert needed in patterns
    for source in _copied_sources():
        parts = Path(source).parts
        for prefix in (Path(*parts[: n + 1]).as_posix() for n in range(len(parts))):
            assert not any(fnmatch.fnmatchcase(prefix, p) for p in patterns), source


async def test_the_wheel_from_the_copied_files_runs_from_a_fresh_virtualenv(tmp_path) -> None:
    """What `pip wheel .` then `pip install` does in the image, done here."""
    source = tmp_path / "src"
    for copied in _copied_sources():
        origin = REPO / copied
        if origin.is_dir():
            shutil.copytree(origin, source / copied, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (source / copied).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / copied)
    python = sys.executable
    # No build isolation: the build backend comes from the project's virtualenv
    # (grpcio-tools needs setuptools), not from the network as in the image.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for requirement in map(Requirement, pyproject["build-system"]["requires"]):
        assert requirement.specifier.contains(importlib.metadata.version(requirement.name))
    built = await run_to_exit(
        python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--wheel-dir", str(tmp_path / "wheels"), str(source),
    )  # fmt: skip
    assert built.returncode == 0, built.stderr.decode()
    (wheel,) = (tmp_path / "wheels").glob("quoteflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "quoteflow/__init__.py",
        "quoteflow/quote/v1/quote_service_pb2.py",
        "quoteflow/processor/v1/processor_service_pb2_grpc.py",
        "quoteflow/requestor/v1/requestor_service_pb2.py",
        *(f"{s.module}/__main__.py" for s in SERVICES),
    ):
        assert module in names
    assert not [n for n in names if n.startswith(("gen/", "tests/"))]

    venv = tmp_path / "venv"
    created = await run_to_exit(python, "-m", "venv", "--without-pip", str(venv))
    assert created.returncode == 0, created.stderr.decode()
    fresh = venv / "bin" / "python"
    installed = await run_to_exit(
        python, "-m", "pip", "--python", str(fresh), "install", "--quiet", "--no-deps",
        "--no-index", str(wheel),
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr.decode()
    # The dependencies (grpcio…) from the project's virtualenv, by a plain path:
    # its .pth files, and so its editable install of this repository, stay out.
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path((await run_to_exit(str(fresh), "-c", purelib)).stdout.decode().strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    # -I: no PYTHONPATH, no current directory; only what the venv installed.
    where = await run_to_exit(
        str(fresh), "-I", "-c",
        "import quote_svc, processor_svc, requestor_svc, quoteflow.quote.v1.quote_service_pb2 as g;"
        "print(quote_svc.__file__, processor_svc.__file__, requestor_svc.__file__, g.__file__)",
    )  # fmt: skip
    assert where.returncode == 0, where.stderr.decode()
    for path in where.stdout.decode().split():
        assert Path(path).is_relative_to(site), path
    helps = await asyncio.gather(
        *(run_to_exit(str(fresh), "-I", "-m", s.module, "--help") for s in SERVICES)
    )
    for service, shown in zip(SERVICES, helps, strict=True):
        assert shown.returncode == 0, shown.stderr.decode()
        assert f"{service.env_prefix}_GRACE_SECONDS" in shown.stdout.decode()
