"""Records keep landing where any Kafka client puts them: the remembered hashes change
nothing about which partition a key goes to."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from shared.platform.kafka import KeyPartitioner


@given(keys=st.lists(st.binary(min_size=0, max_size=80), min_size=1, max_size=50),
       partitions=st.integers(min_value=1, max_value=64))
def test_a_key_goes_to_the_partition_the_default_partitioner_picks(keys: list[bytes], partitions: int) -> None:
    ours = KeyPartitioner(keys_max=8)  # small, so that the bound is crossed too
    all_partitions = list(range(partitions))
    for key in keys + keys:  # the second time from the remembered hash
        assert ours(key, all_partitions, all_partitions) == DefaultPartitioner()(key, all_partitions, all_partitions)


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    assert KeyPartitioner()(None, [0, 1, 2], [2]) == 2
