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
