"""The package builds the ROS 2 way too: CMake install layout as colcon produces it."""

import ast
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)


def test_package_xml_is_format_3_and_lists_every_message():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "ivtuning_ros"
    assert root.find("export/build_type").text == "ament_cmake"
    assert "rosidl_interface_packages" in [e.text for e in root.findall("member_of_group")]
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for msg in sorted((ROOT / "msg").glob("*.msg")):
        assert f'"msg/{msg.name}"' in cmake, f"{msg.name} is not in rosidl_generate_interfaces"


def test_compat_vision_msgs_stays_out_of_colcon_workspaces():
    """compat/vision_msgs is for pip-only venvs; in a colcon workspace it would shadow the
    real vision_msgs, which package.xml names for rosdep to install instead."""
    root = ET.parse(ROOT / "package.xml").getroot()
    assert "vision_msgs" in [e.text for e in root.findall("exec_depend")]
    from catkin_pkg.packages import find_packages  # the crawler rosdep and colcon use

    found = find_packages(str(ROOT), exclude_paths=[str(ROOT / ".venv"), str(ROOT / "build")])
    assert [p.name for p in found.values()] == ["ivtuning_ros"]  # nothing nested is crawled
    assert (ROOT / "compat" / "COLCON_IGNORE").is_file()  # nor compat/ as a base path
    compat = ROOT / "compat" / "vision_msgs"
    assert ET.parse(compat / "package.xml").getroot().findtext("name") == "vision_msgs"
    cmake = (compat / "CMakeLists.txt").read_text()
    for msg in sorted((compat / "msg").glob("*.msg")):
        assert f'"msg/{msg.name}"' in cmake, f"{msg.name} is not in rosidl_generate_interfaces"


def test_console_scripts_are_registered():
    setup = ast.parse((ROOT / "setup.py").read_text())
    text = ast.unparse(setup)
    for script in (
        "ivtuning = ivtuning_ros.tools.cli:main",
        "ivtuning_node = ivtuning_ros.ros.node:main",
    ):
        assert script in text
    for exe in ("ivtuning", "ivtuning_node"):
        assert os.access(ROOT / "scripts" / exe, os.X_OK)
        assert (VENV / "bin" / exe).exists()


def test_cli_help_lists_subcommands():
    out = subprocess.run(
        [str(VENV / "bin" / "ivtuning"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "bench" in out.stdout


def test_colcon_style_install_merges_messages_and_python_package(tmp_path):
    """CMake install with the Python package (as colcon builds it): one ivtuning_ros folder
    holds both the generated msg/ and our modules, and both import from a fresh process."""
    # A copy of the sources, as in a colcon workspace: CMake refuses exported include
    # paths inside the source tree, and this checkout's .venv lives inside it.
    src = tmp_path / "src" / "ivtuning_ros"
    src.mkdir(parents=True)
    for part in (
        "CMakeLists.txt",
        "package.xml",
        "msg",
        "ivtuning_ros",
        "scripts",
        "launch",
        "config",
        "models",
    ):
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, src / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / part, src / part)
    prefix = tmp_path / "install"
    env = dict(os.environ, PREFIX=str(prefix), WITH_PYTHON="ON", BUILD_DIR=str(tmp_path / "build"))
    build = subprocess.run(
        [str(src / "scripts" / "build_msgs.sh"), str(VENV)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    site = next(prefix.glob("lib/python3*/site-packages"))
    assert (site / "ivtuning_ros" / "msg" / "_detection_array.py").is_file()
    assert "extend_path" in (site / "ivtuning_ros" / "__init__.py").read_text()
    assert os.access(prefix / "lib" / "ivtuning_ros" / "ivtuning_node", os.X_OK)
    assert (prefix / "share" / "ivtuning_ros" / "package.xml").is_file()
    code = (
        "import ivtuning_ros.msg, ivtuning_ros.tools.cli as cli; "
        "print(ivtuning_ros.msg.__file__); print(cli.__file__)"
    )
    run_env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(site),
        "LD_LIBRARY_PATH": f"{prefix / 'lib'}:{VENV / 'lib'}",
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the checkout: its ivtuning_ros/ would come first on sys.path
    )
    assert out.returncode == 0, out.stderr
    msg_file, cli_file = out.stdout.split()
    assert msg_file.startswith(str(site)) and cli_file.startswith(str(site))


# Third-party imports of the runtime package -> where a robot install gets them: a
# rosdep key in package.xml or a pin in requirements-robot.txt. Optional extras
# (TensorRT, its int8 calibration) install with `pip install -e ".[tensorrt]"`.
IMPORT_SOURCES = {
    "PIL": ("python3-pil", "pillow"), "cv2": ("python3-opencv", "opencv-python-headless"),
    "numpy": ("python3-numpy", "numpy"), "yaml": ("python3-yaml", "PyYAML"),
    "tqdm": ("python3-tqdm", "tqdm"), "matplotlib": ("python3-matplotlib", "matplotlib"),
    "filelock": ("python3-filelock", "filelock"), "torch": (None, "torch"),
    "torchvision": (None, "torchvision"), "timm": (None, "timm"), "onnx": (None, "onnx"),
    "onnxruntime": (None, "onnxruntime"), "onnxscript": (None, "onnxscript"),
    "safetensors": (None, "safetensors"), "pycocotools": (None, "pycocotools"),
    "py_sod_metrics": (None, "pysodmetrics"), "rosbags": (None, "rosbags"),
    "trackers": (None, "trackers"), "supervision": (None, "supervision"),
    "motmetrics": (None, "motmetrics"), "openvino": (None, "openvino"),
}  # fmt: skip
ROS_PACKAGES = {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "vision_msgs",
                "builtin_interfaces", "rcl_interfaces", "rosgraph_msgs", "cv_bridge",
                "ament_index_python"}  # fmt: skip
OPTIONAL = {"torch_tensorrt", "modelopt"}  # the [tensorrt] extra


def test_every_runtime_import_has_an_install_source():
    """A new import without a rosdep key or a pinned requirement fails here, before a
    robot install finds out."""
    imported = set()
    for path in (ROOT / "ivtuning_ros").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"ivtuning_ros"}
    unknown = third_party - set(IMPORT_SOURCES) - ROS_PACKAGES - OPTIONAL
    assert not unknown, f"imports with no install source: {sorted(unknown)}"
    root = ET.parse(ROOT / "package.xml").getroot()
    keys = {e.text for tag in ("depend", "exec_depend") for e in root.findall(tag)}
    pins = {
        line.split("==")[0].strip().lower()
        for name in ("requirements-robot.txt", "requirements-nodeps.txt")
        for line in (ROOT / name).read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for module in sorted(third_party & set(IMPORT_SOURCES)):
        key, pin = IMPORT_SOURCES[module]
        assert pin.lower() in pins, f"{module}: {pin} is not pinned in requirements-*.txt"
        assert key is None or key in keys, f"{module}: rosdep key {key} not in package.xml"
    for package in sorted(third_party & ROS_PACKAGES):
        assert package in keys, f"{package} is not a dependency in package.xml"
    extras = (ROOT / "setup.py").read_text()
    assert "torch-tensorrt" in extras and "nvidia-modelopt" in extras


def test_colcon_test_runs_the_pytest_suite():
    """`colcon test` on a ROS install: ament_cmake_pytest registered over test/, and the
    PyPI-wheel build (no ament_cmake_pytest there) configures with testing off."""
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert "find_package(ament_cmake_pytest REQUIRED)" in cmake
    assert "ament_add_pytest_test(ivtuning_ros_pytest test" in cmake
    assert cmake.index("if(BUILD_TESTING)") < cmake.index("ament_add_pytest_test")
    root = ET.parse(ROOT / "package.xml").getroot()
    assert "ament_cmake_pytest" in [e.text for e in root.findall("test_depend")]
    assert "-DBUILD_TESTING=OFF" in (ROOT / "scripts" / "build_msgs.sh").read_text()
