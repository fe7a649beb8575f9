"""A worker's RocksDB memory is bounded per table partition (``kafka.rocksdb_*_mb``), not
Faust's 3 x 64 MiB of write buffers and 2 GiB of block cache per table partition, which let a
worker's memory grow with its writes (the soak in docs/reliability.md)."""

from __future__ import annotations

import pytest

from streams.app.wiring import create_app
from streams.config.loader import load_config
from streams.errors import UserError

MIB = 1024 * 1024


def stores(tmp_path, kafka: dict):
    config = tmp_path / "config.yaml"
    config.write_text("kafka:\n" + "".join(f"  {k}: {v}\n" for k, v in
                                          {"data_dir": str(tmp_path / "data"), **kafka}.items()))
    app = create_app(load_config(str(config)))
    return {name: table._new_store() for name, table in app.tables.items()}


def test_every_table_store_gets_the_bounded_options(tmp_path):
    made = stores(tmp_path, {})
    assert "detector_state" in made and len(made) >= 10  # the core's, its legacy ones, lineage
    for name, store in made.items():
        options = store.rocksdb_options
        assert (options.write_buffer_size, options.max_write_buffer_number,
                options.block_cache_size) == (2 * MIB, 2, 4 * MIB), name


def test_the_bounds_are_configurable(tmp_path):
    options = stores(tmp_path, {"rocksdb_write_buffer_mb": 16, "rocksdb_block_cache_mb": 64}
                     )["detector_state"].rocksdb_options
    assert (options.write_buffer_size, options.block_cache_size) == (16 * MIB, 64 * MIB)


def test_a_bad_bound_is_one_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("kafka:\n  rocksdb_block_cache_mb: 0\n")
    with pytest.raises(UserError, match="kafka.rocksdb_block_cache_mb"):
        load_config(str(config))
