"""ray_cluster.yaml passes Ray's own cluster-launcher validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_ray_cluster_yaml_is_valid():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    validate_config(prepare_config(config))  # Ray's own defaults + schema check; raises when invalid
    broken = dict(config, available_node_types={"head": {**config["available_node_types"]["head"], "gpu": 1}})
    with pytest.raises(Exception, match="gpu"):
        validate_config(prepare_config(broken))  # the check can fail
    workers = config["available_node_types"]
    assert any(t.get("resources", {}).get("GPU", 0) >= 1 for t in workers.values())
    assert any("vidseek" in cmd for cmd in config.get("setup_commands", []))
