"""The node's camera inputs on a hidden helper node with its own executor thread.

rclpy's executor rebuilds its wait set in Python at every wake-up, at a cost that grows
with the number of entities it waits on. A lifecycle node with parameter services waits
on about fifteen services besides its subscriptions, which put about 0.1-0.2 ms on every
camera frame's way in on these 2-core machines. The subscriptions (and the
synchroniser's poll timer) therefore live on a minimal hidden node (`_<node>_inputs`: no
parameter, type-description or rosout entities) whose own thread waits on nothing else,
while the main node keeps its services and diagnostics on the main executor.

Topic names are resolved through the owner node, so remaps and the namespace given to
`ivtuning_node` apply to its inputs exactly as if it subscribed itself.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rclpy.type_description_service import START_TYPE_DESCRIPTION_SERVICE_PARAM

JOIN_TIMEOUT_S = 5.0


def bare_node(name: str, namespace: str = "", context=None, **options: Any) -> Node:
    """A node without parameter or type-description services: every entity a node has is
    one more the executor's per-wake-up wait set is rebuilt with."""
    return Node(
        name,
        namespace=namespace,
        context=context,
        start_parameter_services=False,
        parameter_overrides=[Parameter(START_TYPE_DESCRIPTION_SERVICE_PARAM, value=False)],
        **options,
    )


@dataclass(frozen=True)
class Input:
    msg_type: Any
    topic: str  # relative or absolute, resolved by the owner node
    callback: Callable[[Any], None]
    events: SubscriptionEventCallbacks | None = None


class InputNode:
    """Subscriptions and timers of `owner`, spun on a dedicated thread until `close`."""

    def __init__(
        self,
        owner: Node,
        inputs: list[Input],
        qos: QoSProfile,
        timers: tuple[tuple[float, Callable[[], None]], ...] = (),
    ) -> None:
        self.node = bare_node(
            f"_{owner.get_name()}_inputs",  # a leading underscore hides it from node lists
            owner.get_namespace(),
            owner.context,
            use_global_arguments=False,  # names arrive already remapped by the owner
            enable_rosout=False,
        )
        for item in inputs:
            self.node.create_subscription(
                item.msg_type,
                owner.resolve_topic_name(item.topic),
                item.callback,
                qos,
                event_callbacks=item.events,
            )
        for period_s, callback in timers:
            self.node.create_timer(period_s, callback)
        self._executor = SingleThreadedExecutor(context=owner.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(
            target=self._spin, name=f"{owner.get_name()}_inputs", daemon=True
        )
        self._thread.start()

    def _spin(self) -> None:
        with contextlib.suppress(ExternalShutdownException):  # context shut down under us
            self._executor.spin()

    def close(self) -> None:
        """Stop the thread (callbacks in flight finish first) and destroy the node."""
        self._executor.shutdown(timeout_sec=JOIN_TIMEOUT_S)
        self._thread.join(timeout=JOIN_TIMEOUT_S)
        self.node.destroy_node()
