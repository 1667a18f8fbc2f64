"""The QoS of the detector node's publishers and subscriptions, as plain values.

The node's own parameters (``input_reliability``/``input_depth`` for the cameras,
``output_reliability``/``output_depth`` for the outputs) give each entity's QoS; the standard
ROS 2 parameters ``qos_overrides./<topic>.<publisher|subscription>.<policy>`` (read-only, from a
params file or ``-p``) override it policy by policy, exactly as rclpy's ``QoSOverridingOptions``
applies them. Plain Python so the node, ``bag replay`` and the tests derive one QoS from the
same settings; ros/qos_profiles.py turns it into rclpy objects and says which policy names the
installed rclpy has (only :meth:`QosEntity.resolve` without ``choices`` asks it).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from togethernet_ros.bag.output_topics import output_topics
from togethernet_ros.ros.settings_error import SettingsError

QOS_OVERRIDES_PREFIX = "qos_overrides."
PUBLISHER = "publisher"
SUBSCRIPTION = "subscription"
# rclpy's policy enums by their parameter spelling (rclpy matches them case-insensitively), as
# the newest rclpy has them: best_available came with Iron, Humble's rclpy has no such member.
POLICY_CHOICES: dict[str, tuple[str, ...]] = {
    "reliability": ("system_default", "reliable", "best_effort", "best_available"),
    "history": ("system_default", "keep_last", "keep_all"),
    "durability": ("system_default", "transient_local", "volatile", "best_available"),
    "liveliness": ("system_default", "automatic", "manual_by_topic", "best_available"),
}
# In nanoseconds, as rclpy declares them; 0 is the middleware default (no deadline, ...).
DURATION_POLICIES = ("deadline", "lifespan", "liveliness_lease_duration")
PUBLISHER_POLICIES = (
    "reliability",
    "history",
    "depth",
    "durability",
    "deadline",
    "lifespan",
    "liveliness",
    "liveliness_lease_duration",
)
# rclpy declares no lifespan for a subscription: it is a publisher's policy.
SUBSCRIPTION_POLICIES = tuple(policy for policy in PUBLISHER_POLICIES if policy != "lifespan")


@dataclass(frozen=True)
class QosSettings:
    """One publisher's or subscription's QoS, policies spelt as their override parameters."""

    reliability: str = "reliable"
    history: str = "keep_last"
    depth: int = 10
    durability: str = "volatile"
    deadline: int = 0
    lifespan: int = 0
    liveliness: str = "system_default"
    liveliness_lease_duration: int = 0


def camera_qos(values: Mapping[str, Any]) -> QosSettings:
    """The camera subscriptions' QoS from ``input_reliability`` and ``input_depth``."""
    return QosSettings(reliability=values["input_reliability"], depth=values["input_depth"])


def output_qos(values: Mapping[str, Any]) -> QosSettings:
    """The outputs' QoS from ``output_reliability`` and ``output_depth``."""
    return QosSettings(reliability=values["output_reliability"], depth=values["output_depth"])


LATCHED_QOS = QosSettings(depth=1, durability="transient_local")
DIAGNOSTICS_QOS = QosSettings(depth=10)


def override_name(topic: str, entity: str, policy: str) -> str:
    """The standard override parameter of ``policy`` for ``entity`` on ``topic`` (resolved)."""
    return f"{QOS_OVERRIDES_PREFIX}{topic}.{entity}.{policy}"


@dataclass(frozen=True)
class QosEntity:
    """A publisher or subscription of the node: its resolved topic and the QoS it starts from."""

    topic: str
    entity: str  # PUBLISHER or SUBSCRIPTION
    base: QosSettings

    @property
    def policies(self) -> tuple[str, ...]:
        """The policies that can be overridden (rclpy's list for this kind of entity)."""
        return PUBLISHER_POLICIES if self.entity == PUBLISHER else SUBSCRIPTION_POLICIES

    def parameter_names(self) -> list[str]:
        """The override parameters rclpy declares for this entity."""
        return [override_name(self.topic, self.entity, policy) for policy in self.policies]

    def resolve(
        self, given: Mapping[str, Any], choices: Mapping[str, Sequence[str]] | None = None
    ) -> QosSettings:
        """The QoS once the overrides in ``given`` (parameter name -> value) apply.

        ``choices``: the names each enum policy accepts, by default the installed rclpy's
        (ros/qos_profiles.py). SettingsError naming the parameter for a value rclpy would
        refuse or fail on.
        """
        if choices is None:
            # Imported here: qos_profiles imports this module, and only it imports rclpy.
            from togethernet_ros.ros.qos_profiles import available_policy_choices

            choices = available_policy_choices()
        changes = {}
        for policy in self.policies:
            name = override_name(self.topic, self.entity, policy)
            if name in given:
                changes[policy] = check_policy_value(name, policy, given[name], choices)
        return dataclasses.replace(self.base, **changes)


def check_policy_value(
    name: str, policy: str, value: Any, choices: Mapping[str, Sequence[str]]
) -> str | int:
    """One override value as rclpy applies it (enum names lower-cased); else SettingsError.

    ``choices`` gives the names each enum policy accepts in the installed rclpy (a subset of
    POLICY_CHOICES): rclpy fails with a bare KeyError on a name its enum lacks.
    """
    where = f"parameter '{name}'"
    if policy in POLICY_CHOICES:
        accepted = list(choices[policy])
        if not isinstance(value, str) or value.lower() not in POLICY_CHOICES[policy]:
            raise SettingsError(f"{where} must be one of {accepted}, got {value!r}")
        if value.lower() not in accepted:
            raise SettingsError(
                f"{where} is {value!r}, which is not available in this ROS 2 distribution's "
                f"rclpy (it came with Iron); use one of {accepted}"
            )
        return value.lower()
    if isinstance(value, bool) or not isinstance(value, int):
        unit = "a depth" if policy == "depth" else "nanoseconds"
        raise SettingsError(f"{where} must be an integer ({unit}), got {value!r}")
    if value < 0:
        raise SettingsError(f"{where} must be >= 0, got {value!r}")
    return value


def detector_entities(
    values: Mapping[str, Any],
    camera_topics: Mapping[str, str],
    resolve: Callable[[str], str],
) -> list[QosEntity]:
    """Every publisher and subscription the detector node creates, with its base QoS.

    ``camera_topics`` maps each ``image_topics`` entry to the topic subscribed (namespace and
    remapping applied); ``resolve`` does the same for an output's name.
    """
    entities = []
    for topic, subscribed in camera_topics.items():
        entities.append(QosEntity(subscribed, SUBSCRIPTION, camera_qos(values)))
        names = output_topics(topic)
        for output in (names.detections, names.detections_raw, names.dehazed, names.debug_image):
            entities.append(QosEntity(resolve(output), PUBLISHER, output_qos(values)))
        if values["publish_label_info"]:
            entities.append(QosEntity(resolve(names.label_info), PUBLISHER, LATCHED_QOS))
    entities.append(QosEntity(resolve("/diagnostics"), PUBLISHER, DIAGNOSTICS_QOS))
    return entities


def unmatched_overrides(names: Iterable[str], entities: Iterable[QosEntity]) -> dict[str, str]:
    """The ``qos_overrides.*`` names among ``names`` that no entity has, each with a hint."""
    entities = list(entities)
    known = {name for entity in entities for name in entity.parameter_names()}
    by_key = {(entity.topic, entity.entity): entity for entity in entities}
    unmatched = {}
    for name in names:
        if not name.startswith(QOS_OVERRIDES_PREFIX) or name in known:
            continue
        topic, _, rest = name.removeprefix(QOS_OVERRIDES_PREFIX).rpartition(".")
        topic, _, entity_kind = topic.rpartition(".")
        entity = by_key.get((topic, entity_kind))
        if entity is not None:
            unmatched[name] = f"a {entity_kind} has no policy {rest!r}: {list(entity.policies)}"
            continue
        # Compared without the prefix every name shares, which would make any two look alike.
        close = difflib.get_close_matches(
            name.removeprefix(QOS_OVERRIDES_PREFIX),
            [known_name.removeprefix(QOS_OVERRIDES_PREFIX) for known_name in known],
            n=1,
            cutoff=0.8,
        )
        unmatched[name] = (
            f"did you mean {QOS_OVERRIDES_PREFIX}{close[0]}?"
            if close
            else "no such topic or policy"
        )
    return unmatched
