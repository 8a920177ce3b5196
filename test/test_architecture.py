"""The house rules, checked on the source: layers import downwards only, and nothing
outside `tasks/` branches on a task's name (ask the task instead)."""

import ast
import re
from pathlib import Path

import pytest

from ivtuning_ros.tasks import TASKS, get_task, task_publishing

PACKAGE = Path(__file__).resolve().parents[1] / "ivtuning_ros"
ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "vision_msgs",
               "rcl_interfaces", "message_filters", "cv_bridge", "ivtuning_ros.msg",
               "ivtuning_ros.ros")  # fmt: skip


def imports_of(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved in the package)."""
    tree = ast.parse(path.read_text())
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(parts[: len(parts) - node.level])
                found.add(f"{base}.{node.module}" if node.module else base)
            else:
                found.add(node.module)
    return found


def files_in(*folders: str) -> list[Path]:
    return [p for f in folders for p in sorted((PACKAGE / f).rglob("*.py"))]


def offenders(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in files:
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return bad


def test_model_engine_tasks_and_data_know_no_ros():
    files = files_in("model", "engine", "tasks", "data", "train", "evaluation")
    assert offenders(files, ROS_MODULES) == []


def test_ros_knows_no_training_and_library_code_no_benchmarks():
    assert offenders(files_in("ros"), ("ivtuning_ros.train",)) == []
    library = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0]
               not in ("bench", "tools")]  # fmt: skip
    assert offenders(library, ("ivtuning_ros.bench",)) == []


def test_only_tasks_branch_on_a_task_name():
    pattern = re.compile(r"""task\s*(==|!=)\s*["']|task\s+(not\s+)?in\s*\(\s*["']""")
    hits = [
        f"{p.relative_to(PACKAGE)}:{i}"
        for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0] != "tasks"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


def test_every_task_names_topics_the_node_can_publish():
    from ivtuning_ros.ros.topics import EVERY_TASK, all_topics

    for task in TASKS.values():
        assert set(task.output_topics) <= set(all_topics()) - set(EVERY_TASK), task.name
    with pytest.raises(ValueError, match=r"'depth'.*detection, segmentation, saliency"):
        get_task("depth")
    # replay tells an external node's task from the topics it publishes
    assert task_publishing({"detections", "overlay", "label_map"}).name == "detection"
    assert task_publishing({"detections", "label_map", "mask"}).name == "segmentation"
    assert task_publishing({"detections", "overlay", "saliency"}).name == "saliency"
