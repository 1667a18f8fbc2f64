"""rclpy QoS objects from the plain QoS values of ros/qos_settings.py, and the policy names
the installed rclpy knows."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from rclpy.duration import Duration
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.qos_overriding_options import QoSOverridingOptions

from togethernet_ros.ros.qos_settings import POLICY_CHOICES, QosEntity, QosSettings

# The enum rclpy looks a policy's override value up in (QoSOverridingOptions: Enum[value.upper()]).
RCLPY_POLICY_ENUMS: dict[str, type[Enum]] = {
    "reliability": ReliabilityPolicy,
    "history": HistoryPolicy,
    "durability": DurabilityPolicy,
    "liveliness": LivelinessPolicy,
}


def policy_choices(enums: Mapping[str, type[Enum]]) -> dict[str, tuple[str, ...]]:
    """The names of POLICY_CHOICES that ``enums`` (policy -> rclpy enum class) have."""
    return {
        policy: tuple(name for name in names if name.upper() in enums[policy].__members__)
        for policy, names in POLICY_CHOICES.items()
    }


def available_policy_choices() -> dict[str, tuple[str, ...]]:
    """The policy names the installed rclpy accepts (Humble's has no ``best_available``)."""
    return policy_choices(RCLPY_POLICY_ENUMS)


def qos_profile(settings: QosSettings) -> QoSProfile:
    """The QoSProfile of ``settings``, every policy set."""
    return QoSProfile(
        reliability=ReliabilityPolicy[settings.reliability.upper()],
        history=HistoryPolicy[settings.history.upper()],
        depth=settings.depth,
        durability=DurabilityPolicy[settings.durability.upper()],
        deadline=Duration(nanoseconds=settings.deadline),
        lifespan=Duration(nanoseconds=settings.lifespan),
        liveliness=LivelinessPolicy[settings.liveliness.upper()],
        liveliness_lease_duration=Duration(nanoseconds=settings.liveliness_lease_duration),
    )


def overriding_options(entity: QosEntity) -> QoSOverridingOptions:
    """Declare the standard ``qos_overrides.*`` parameters of every policy of ``entity``."""
    return QoSOverridingOptions([QoSPolicyKind[policy.upper()] for policy in entity.policies])


def publisher_without_default_event_handlers() -> Any:
    """Event callbacks for an output publisher: none, not rclpy's two default warners.

    rclpy gives every publisher two event handlers (incompatible QoS, incompatible type) that
    its Python executor walks on every wake-up: 42 of the node's 52 waitables with four
    cameras, ~0.1 ms at p50 of each delivery (docs/benchmarks.md, "Where the receive delay
    goes"). A subscriber whose QoS or type does not match still warns on its own side; the
    camera subscriptions keep theirs, where a best-effort driver meets a reliable reader.
    """
    try:
        from rclpy.event_handler import PublisherEventCallbacks
    except ImportError:  # Humble: the same class in its older module
        from rclpy.qos_event import PublisherEventCallbacks
    return PublisherEventCallbacks(use_default_callbacks=False)
