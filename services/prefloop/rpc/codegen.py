"""Generate the Python gRPC stubs of ``protos/prefloop/v1`` into ``services/prefloop/v1``.

Why a module rather than a Makefile line only: the staleness test regenerates the stubs into a
temporary directory with exactly the same command and compares them with the committed ones, so
an edited ``.proto`` without regenerated stubs fails the test suite. ``python -m
prefloop.rpc.codegen`` (or ``make protos``) regenerates them in place.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
PROTO_ROOT = REPO_ROOT / "protos"
PROTO_PACKAGE = Path("prefloop") / "v1"
SERVICES_ROOT = REPO_ROOT / "services"

INIT_TEXT = (
    '"""Generated gRPC stubs of protos/prefloop/v1 (``python -m prefloop.rpc.codegen``)."""\n'
)


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """The ``.proto`` files of the contract, sorted (a stable generation order)."""
    files = sorted((proto_root / PROTO_PACKAGE).glob("*.proto"))
    if not files:
        raise FileNotFoundError(f"no .proto files under {proto_root / PROTO_PACKAGE}")
    return files


def generate(out_root: Path = SERVICES_ROOT, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc (grpcio-tools) for every proto; return the generated files under ``out_root``.

    Why: message classes, type stubs (``.pyi``) and service stubs come from one protoc call,
    so they always agree with each other and with the contract.
    """
    from grpc_tools import protoc

    out_root.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(p.relative_to(proto_root)) for p in proto_files(proto_root)),
    ]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit status {code}: {' '.join(args)}")
    package_dir = out_root / PROTO_PACKAGE
    (package_dir / "__init__.py").write_text(INIT_TEXT)
    return sorted(p for p in package_dir.iterdir() if p.is_file() and p.suffix in {".py", ".pyi"})


def main(argv: list[str] | None = None) -> int:
    """``python -m prefloop.rpc.codegen [--out DIR]``: regenerate the stubs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SERVICES_ROOT, help="output source root")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
