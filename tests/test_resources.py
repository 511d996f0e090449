"""Stage resource plans: every default plan must be placeable on the cluster it was made for."""

from __future__ import annotations

import pytest

from vidseek.pipeline.resources import plan_resources


def placeable(plan, node_cpus: list[float]) -> bool:
    """Can Ray place the encoder on any one node and then every decoder (first fit)?"""
    for enc_node in range(len(node_cpus)):
        free = list(node_cpus)
        free[enc_node] -= plan.encode.num_cpus
        if free[enc_node] < -1e-9:
            continue
        for _ in range(plan.decode.pool_size):
            fit = next((i for i, f in enumerate(free) if f + 1e-9 >= plan.decode.num_cpus), None)
            if fit is None:
                return False
            free[fit] -= plan.decode.num_cpus
        return True
    return False


def worst_case_placeable(plan, node_cpus: list[float]) -> bool:
    """Placeable whichever node the encoder lands on (Ray picks it, not us)."""
    for enc_node in range(len(node_cpus)):
        rotated = [node_cpus[enc_node]] + node_cpus[:enc_node] + node_cpus[enc_node + 1 :]
        if not placeable(plan, rotated):
            return False
    return True


@pytest.mark.parametrize("node_cpus", [[2.0], [1.0, 1.0], [16.0], [4.0, 4.0, 2.0], [1.0], [3.0, 1.0]])
def test_cpu_plan_one_decoder_per_core_and_always_placeable(node_cpus):
    plan = plan_resources(sum(node_cpus), 0, node_cpus=node_cpus)
    assert plan.decode.pool_size == int(sum(node_cpus))  # small models: every core can decode
    assert plan.decode.tasks  # tasks: nothing for Ray Data's actor autoscaler to cancel mid-start
    assert worst_case_placeable(plan, node_cpus)
    assert plan.encode.num_gpus == 0 and plan.write.num_cpus == 0


def test_cpu_plan_user_decode_pool_caps_concurrent_tasks():
    plan = plan_resources(2, 0, decode_pool=6, node_cpus=[2.0])
    assert plan.decode.pool_size == 6 and plan.decode.tasks


def test_gpu_plan_one_encoder_per_gpu_and_spare_cores_decode():
    plan = plan_resources(16, 1, node_cpus=[16.0])
    assert (plan.encode.num_gpus, plan.encode.pool_size, plan.encode.batch_size) == (1, 1, 512)
    assert plan.decode.pool_size == 15 and plan.decode.num_cpus * plan.decode.pool_size <= 15 + 1e-9


def test_no_cpus_is_a_clear_error():
    with pytest.raises(ValueError, match="no CPUs"):
        plan_resources(0, 0)
