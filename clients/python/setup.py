"""Generates the auth.v1 stubs into the built package (``auth_verifier/_proto``).

The .proto files are read from ``AUTH_PROTO_DIR`` or, by default, the repository's ``proto/``
two folders up: install from the repository (``pip install ./clients/python``).
"""

import os
import re
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def generate_stubs(out: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    proto_dir = Path(os.environ.get("AUTH_PROTO_DIR", HERE.parent.parent / "proto")).resolve()
    source = proto_dir / "auth" / "v1" / "auth.proto"
    if not source.is_file():
        raise SystemExit(f"auth-verifier: {source} not found (set AUTH_PROTO_DIR)")
    staging = out / "_staging"
    staging.mkdir(parents=True, exist_ok=True)
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"-I{include}",
        f"--python_out={staging}",
        f"--pyi_out={staging}",
        f"--grpc_python_out={staging}",
        "auth/v1/auth.proto",
    ]
    if protoc.main(args) != 0:
        raise SystemExit("auth-verifier: grpc_tools.protoc failed")
    generated = staging / "auth" / "v1"
    for name in ("auth_pb2.py", "auth_pb2.pyi", "auth_pb2_grpc.py"):
        text = (generated / name).read_text()
        # The generated import is absolute (`from auth.v1 import auth_pb2`): make it relative.
        text = re.sub(r"^from auth\.v1 import auth_pb2", "from . import auth_pb2", text, flags=re.M)
        (out / name).write_text(text)
    (out / "__init__.py").write_text('"""Generated from proto/auth/v1/auth.proto at build time."""\n')
    for path in sorted(staging.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    staging.rmdir()


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        generate_stubs(Path(self.build_lib) / "auth_verifier" / "_proto")


setup(cmdclass={"build_py": BuildPyWithStubs})
