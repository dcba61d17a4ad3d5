"""Build and install fusion_perception (Python package ``perception`` + ROS 2 ament_python).

The C++ ops in ``cuda_ops/csrc/*.cpp`` are compiled into ``perception._C`` (OpenMP). When the
installed torch has CUDA and a CUDA toolkit is found, ``cuda_ops/csrc/cuda/*.cu`` and
``cuda_ops/csrc/cuda/*.cpp`` are added and ``WITH_CUDA`` is defined. Install with
``pip install -e . --no-build-isolation --no-deps`` so the build uses the torch already in the
environment (an isolated build would fetch another torch). ``make setup`` does all of this.
Set ``PERCEPTION_SKIP_EXT=1`` to skip the extension; the ops then run their PyTorch reference.
"""

import os
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "fusion_perception"
HERE = Path(__file__).resolve().parent


def _version() -> str:
    for line in (HERE / "perception" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip("\"'")
    raise RuntimeError("perception/__init__.py has no __version__")


def _extensions():
    if os.environ.get("PERCEPTION_SKIP_EXT") == "1":
        return [], {}
    sources = sorted(glob("cuda_ops/csrc/*.cpp"))
    if not sources:
        return [], {}
    import torch
    from torch.utils.cpp_extension import (
        CUDA_HOME,
        BuildExtension,
        CppExtension,
        CUDAExtension,
    )

    cxx_flags = ["-O3", "-fopenmp", "-std=c++17"]
    kwargs = dict(name="perception._C", include_dirs=[str(HERE / "cuda_ops" / "csrc")],
                  extra_link_args=["-fopenmp"])
    cuda_sources = sorted(glob("cuda_ops/csrc/cuda/*.cu") + glob("cuda_ops/csrc/cuda/*.cpp"))
    use_cuda = (torch.version.cuda is not None and CUDA_HOME is not None and bool(cuda_sources)
                and os.environ.get("PERCEPTION_FORCE_CPU") != "1")
    if use_cuda:
        ext = CUDAExtension(sources=sources + cuda_sources, define_macros=[("WITH_CUDA", None)],
                            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3"]}, **kwargs)
    else:
        ext = CppExtension(sources=sources, extra_compile_args={"cxx": cxx_flags}, **kwargs)
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


def _ros_node_executables():
    """Every ``ros_nodes/<name>_node.py`` with a ``main()`` becomes the ``<name>_node`` command."""
    scripts = []
    for path in sorted((HERE / "ros_nodes").glob("*_node.py")):
        if "def main(" in path.read_text():
            scripts.append(f"{path.stem} = ros_nodes.{path.stem}:main")
    return scripts


def _data_files():
    share = f"share/{PACKAGE}"
    files = [
        ("share/ament_index/resource_index/packages", [f"ros_nodes/resource/{PACKAGE}"]),
        # the Fast DDS profile the launch files give their nodes on one machine
        (share, ["package.xml", "ros_nodes/fastdds_loopback.xml"]),
    ]
    # The shipped YAML configs, so that an installed (non-editable) package finds its presets;
    # see perception.config.config_dir.
    for folder in sorted({str(Path(p).parent) for p in glob("configs/**/*.yaml", recursive=True)}):
        files.append((f"{share}/{folder}", sorted(glob(f"{folder}/*.yaml"))))
    for folder in ("launch", "config"):
        found = sorted(glob(f"ros_nodes/{folder}/*.yaml") + glob(f"ros_nodes/{folder}/*.xml")
                       + glob(f"ros_nodes/{folder}/*.py"))
        if found:
            files.append((f"{share}/{folder}", found))
    return files


ext_modules, cmdclass = _extensions()

setup(
    name=PACKAGE,
    version=_version(),
    description="Camera, lidar and radar fusion for 3D detection and tracking, with ROS 2 nodes",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["perception", "perception.*", "ros_nodes", "ros_nodes.*"]),
    package_data={"perception": ["py.typed", "weights/*.pt", "weights/*.yaml"]},
    include_package_data=True,
    data_files=_data_files(),
    # Pins live in .ci/requirements-*.txt and are installed by `make setup`; these ranges keep
    # a plain `pip install .` honest without forcing a torch build on the user.
    install_requires=["numpy>=1.24", "scipy>=1.10", "pyyaml>=6", "tqdm>=4.60", "pillow>=9",
                      "torch>=2.1"],
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    entry_points={
        "console_scripts": ["perception = perception.cli:main"] + _ros_node_executables(),
    },
    zip_safe=False,
)
