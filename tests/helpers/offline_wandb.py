"""Read back what offline wandb wrote: the ``run-*.wandb`` files of a job, no server.

(Not named ``wandb.py``: that would shadow the ``wandb`` package for a reader.)
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768  # the .wandb file is a LevelDB-style log: 32 KiB blocks of framed records


def read_records(path: Path) -> list[pb.Record]:
    """Every protobuf record of a ``run-*.wandb`` file (header ``:W&B``, then framed chunks)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    records, pending, pos = [], b"", 7
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # block trailer / padding
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # FULL/FIRST, MIDDLE/LAST
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def offline_run(job_dir: Path) -> dict:
    """The one offline run a job wrote: its run record, config, history keys and metric defs."""
    files = list(job_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files  # one wandb run per Hydra job (wandb.finish in between)
    out: dict = {"config": {}, "history": set(), "globs": [], "types": {}, "exit": False}
    for record in read_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
        elif kind == "config":
            out["config"].update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif kind == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                out["history"].add(key)
                if key.endswith("/_type"):
                    out["types"][key[: -len("/_type")]] = json.loads(item.value_json)
        elif kind == "metric" and record.metric.glob_name:
            out["globs"].append((record.metric.glob_name, record.metric.step_metric))
        elif kind == "exit":
            out["exit"] = True
    return out
