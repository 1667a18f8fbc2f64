"""What real rcl makes of command-line arguments: the reference our own readers are tested against."""

from __future__ import annotations


def rcl_parameter_overrides(argv: list[str], name: str = "detector", namespace: str = "/") -> dict:
    """The parameter overrides rcl gives a node ``namespace``/``name`` started with ``argv``."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(args=argv, context=context)
    try:
        node = rclpy.create_node(name, namespace=namespace, context=context)
        try:
            return {key: p.value for key, p in node._parameter_overrides.items()}
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
