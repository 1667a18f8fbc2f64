"""rclpy QoS objects from the plain QoS values of ros/qos_settings.py."""

from __future__ import annotations

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

from togethernet_ros.ros.qos_settings import QosEntity, QosSettings


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
