"""The lifecycle services of a managed node, keeping every call.

rcl_lifecycle creates ``~/change_state``, ``~/get_state``, ``~/get_available_states``,
``~/get_available_transitions`` and ``~/get_transition_graph`` itself, with the default service QoS
(keep last 10): 20 ``change_state`` calls at once (a supervisor retrying, several tools) left the
10 oldest unanswered, their requests overwritten before the executor took them (issue 28). So the
node is created with ``enable_communication_interface=False`` and ``serve_lifecycle`` creates the
same services with the QoS the node's own services use (keep all), and the ``~/transition_event``
publisher that rcl would have owned: one ``lifecycle_msgs/TransitionEvent`` per transition, as rcl
publishes it. A transition that is not available in the current state is refused at once
(``success: false``) with the reason in the log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lifecycle_msgs.msg import State, Transition, TransitionDescription, TransitionEvent
from lifecycle_msgs.srv import ChangeState, GetAvailableStates, GetAvailableTransitions, GetState
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import QoSProfile

Log = Callable[[str, str, bool, str], None]  # level, text, throttled, throttle key (ThrottledLog)

TRIGGERS = {
    Transition.TRANSITION_CONFIGURE: "trigger_configure",
    Transition.TRANSITION_CLEANUP: "trigger_cleanup",
    Transition.TRANSITION_ACTIVATE: "trigger_activate",
    Transition.TRANSITION_DEACTIVATE: "trigger_deactivate",
    Transition.TRANSITION_UNCONFIGURED_SHUTDOWN: "trigger_shutdown",
    Transition.TRANSITION_INACTIVE_SHUTDOWN: "trigger_shutdown",
    Transition.TRANSITION_ACTIVE_SHUTDOWN: "trigger_shutdown",
}
"""The public LifecycleNode method of each transition a client may request."""


class _NotifyingStateMachine:
    """A node's rcl state machine that publishes a TransitionEvent per transition (rcl does so
    only when it owns the communication interface); everything else is the machine's."""

    def __init__(self, machine: Any, node: LifecycleNode, publisher: Any):
        self._machine, self._node, self._publisher = machine, node, publisher

    def __getattr__(self, name: str) -> Any:
        return getattr(self._machine, name)

    def trigger_transition_by_id(self, transition_id: int, publish: bool) -> None:
        self._trigger(self._machine.trigger_transition_by_id, 0, transition_id, publish)

    def trigger_transition_by_label(self, label: str, publish: bool) -> None:
        self._trigger(self._machine.trigger_transition_by_label, 1, label, publish)

    def _trigger(self, trigger: Callable[[Any, bool], None], field: int, key: Any, publish: bool) -> None:
        start = self._machine.current_state
        described = {t[field]: t for t in self._machine.available_transitions}
        trigger(key, False)  # raises RCLError when the transition is not available: nothing happened
        if publish and key in described:
            goal = self._machine.current_state
            self._publisher.publish(
                TransitionEvent(
                    timestamp=self._node.get_clock().now().nanoseconds,
                    transition=Transition(id=described[key][0], label=described[key][1]),
                    start_state=State(id=start[0], label=start[1]),
                    goal_state=State(id=goal[0], label=goal[1]),
                )
            )


def _descriptions(transitions: list[tuple]) -> list[TransitionDescription]:
    return [
        TransitionDescription(
            transition=Transition(id=t_id, label=t_label),
            start_state=State(id=s_id, label=s_label),
            goal_state=State(id=g_id, label=g_label),
        )
        for t_id, t_label, s_id, s_label, g_id, g_label in transitions
    ]


def serve_lifecycle(node: LifecycleNode, qos_profile: QoSProfile, log: Log) -> None:
    """Create ``node``'s lifecycle services with ``qos_profile`` and its ``~/transition_event``
    publisher; ``node`` was created with ``enable_communication_interface=False``."""
    publisher = node.create_publisher(TransitionEvent, "~/transition_event", 10)
    node._state_machine = _NotifyingStateMachine(node._state_machine, node, publisher)
    machine = node._state_machine

    def change_state(request: ChangeState.Request, response: ChangeState.Response) -> ChangeState.Response:
        available = {t[0]: t[1] for t in machine.available_transitions if t[0] in TRIGGERS}
        wanted = request.transition
        by_label = {label: t_id for t_id, label in available.items()}
        transition_id = by_label.get(wanted.label, -1) if wanted.label else wanted.id
        if transition_id not in available:
            state = machine.current_state[1]
            log(
                "warning",
                f"change_state refused: transition id={wanted.id} label={wanted.label!r} is not available "
                f"in state '{state}'; expected one of {[f'{i} {label}' for i, label in available.items()]}",
                True,
                "change_state",
            )
            response.success = False
            return response
        result = getattr(node, TRIGGERS[transition_id])()
        response.success = result == TransitionCallbackReturn.SUCCESS
        return response

    def get_state(request: GetState.Request, response: GetState.Response) -> GetState.Response:
        response.current_state = State(id=machine.current_state[0], label=machine.current_state[1])
        return response

    def get_available_states(
        request: GetAvailableStates.Request, response: GetAvailableStates.Response
    ) -> GetAvailableStates.Response:
        response.available_states = [State(id=s_id, label=label) for s_id, label in machine.available_states]
        return response

    def get_available_transitions(
        request: GetAvailableTransitions.Request, response: GetAvailableTransitions.Response
    ) -> GetAvailableTransitions.Response:
        response.available_transitions = _descriptions(machine.available_transitions)
        return response

    def get_transition_graph(
        request: GetAvailableTransitions.Request, response: GetAvailableTransitions.Response
    ) -> GetAvailableTransitions.Response:
        response.available_transitions = _descriptions(machine.transition_graph)
        return response

    for srv_type, name, callback in (
        (ChangeState, "change_state", change_state),
        (GetState, "get_state", get_state),
        (GetAvailableStates, "get_available_states", get_available_states),
        (GetAvailableTransitions, "get_available_transitions", get_available_transitions),
        (GetAvailableTransitions, "get_transition_graph", get_transition_graph),
    ):
        node.create_service(srv_type, f"~/{name}", callback, qos_profile=qos_profile)
