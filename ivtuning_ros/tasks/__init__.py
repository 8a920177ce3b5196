"""The task registry: one module per task, one line here to add one.

from ivtuning_ros.tasks import get_task
task = get_task(cfg.task)          # ValueError naming the known tasks otherwise
head = task.build_head(...); metric = task.metric(class_names)
"""

from __future__ import annotations

from ivtuning_ros.tasks.base import DecodeOptions, Task
from ivtuning_ros.tasks.detection import DetectionTask
from ivtuning_ros.tasks.saliency import SaliencyTask
from ivtuning_ros.tasks.segmentation import SegmentationTask

TASKS: dict[str, Task] = {t.name: t for t in (DetectionTask(), SegmentationTask(), SaliencyTask())}
TASK_NAMES = tuple(TASKS)

__all__ = ["TASKS", "TASK_NAMES", "DecodeOptions", "Task", "get_task", "task_publishing"]


def task_publishing(topic_names: set[str]) -> Task:
    """The task whose output topics a node publishes (last name parts, e.g. "mask"): the
    one with most of its topics present; the first registered on a tie (optional topics,
    such as vision_detections without vision_msgs, may be missing)."""
    return max(TASKS.values(), key=lambda t: len(set(t.output_topics) & topic_names))


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}: expected one of {', '.join(TASKS)}") from None
