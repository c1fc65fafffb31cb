"""buf.gen.yaml: `buf generate` runs offline (its plugins are protoc builtins run by the
virtualenv's grpc_tools) and describes the same API as gen/, which `make gen` writes."""

import ast
from pathlib import Path

from ecosystem.support import REPO, buf_executable, run_killed_on_failure
from google.protobuf import descriptor_pb2

GEN = REPO / "gen"


def serialized_file(module: Path) -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto a generated _pb2.py registers (read, not imported: the
    default pool already holds gen/'s version of it)."""
    for node in ast.walk(ast.parse(module.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "AddSerializedFile"
        ):
            return descriptor_pb2.FileDescriptorProto.FromString(ast.literal_eval(node.args[0]))
    raise AssertionError(f"{module} registers no serialized file")


def without_json_names(file: descriptor_pb2.FileDescriptorProto):
    """buf fills in each field's json_name (protoc leaves it to the runtime, which
    derives the same lowerCamelCase name); nothing else may differ."""
    pending = list(file.message_type)
    while pending:
        message = pending.pop()
        for field in message.field:
            field.ClearField("json_name")
        pending.extend(message.nested_type)
    return file


async def test_buf_generate_writes_the_python_that_make_gen_does(tmp_path: Path):
    finished = await run_killed_on_failure(
        [buf_executable(), "generate", "--template", "buf.gen.yaml", "--output", str(tmp_path)]
    )
    assert finished.returncode == 0, finished.stderr

    out = tmp_path / "stubs" / "python"
    generated = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    expected = sorted(
        p.relative_to(GEN) for p in GEN.rglob("*_pb2.py*") if "__pycache__" not in p.parts
    )
    assert generated == expected
    assert len(generated) == 6  # a _pb2.py and a .pyi for each of the three protos
    for relative in generated:
        if relative.suffix == ".pyi":
            assert (out / relative).read_text() == (GEN / relative).read_text(), relative
        else:
            assert without_json_names(serialized_file(out / relative)) == without_json_names(
                serialized_file(GEN / relative)
            ), relative
