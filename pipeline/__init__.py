"""Stage entry points, the `churn` CLI, typed params, data contracts and the simulator."""
