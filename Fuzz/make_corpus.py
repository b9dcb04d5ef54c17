#!/usr/bin/env python3
"""Rebuilds Fuzz/corpus/<target>/ from Tests/Fixtures (stdlib only).

Usage: python3 Fuzz/make_corpus.py [CKPT_TOOL]
CKPT_TOOL (a built ckpt-tool) converts fixtures into .ckpt and .safetensors seeds; without it those
seeds are left as they are.
"""
import os, random, shutil, sqlite3, struct, subprocess, sys, tempfile, zipfile

root = os.path.dirname(os.path.abspath(__file__))
fixtures = os.path.join(root, "..", "Tests", "Fixtures")
corpus = os.path.join(root, "corpus")
tool = sys.argv[1] if len(sys.argv) > 1 else None
pts = ["pt/archive_minimal.pt", "pt/archive_deflated.pt", "pt/legacy_format.pt", "pt/protocol4.pt",
       "pt/protocol5.pt", "pt/model_tied.pt", "pt/nested.pt", "pt/dtypes.pt", "schedulers/page/save_optim.pt"]


def put(target, name, data):
    os.makedirs(os.path.join(corpus, target), exist_ok=True)
    with open(os.path.join(corpus, target, name), "wb") as f:
        f.write(data)


def read(path):
    with open(os.path.join(fixtures, path), "rb") as f:
        return f.read()


def pickle_seed(path):
    """data.pkl with the trailer fuzz-pickle reads: the data/<k> sizes, then their count."""
    with zipfile.ZipFile(os.path.join(fixtures, path)) as z:
        prefix = z.namelist()[0].split("/")[0] + "/"
        sizes = []
        while prefix + "data/%d" % len(sizes) in z.namelist() and len(sizes) < 8:
            sizes.append(z.getinfo(prefix + "data/%d" % len(sizes)).file_size)
        return z.read(prefix + "data.pkl") + b"".join(struct.pack("<I", s) for s in sizes) + bytes([len(sizes)])


for p in pts:
    name = p.replace("/", "_")
    put("fuzz-zip", name, read(p))
    if zipfile.is_zipfile(os.path.join(fixtures, p)):
        put("fuzz-pickle", name.replace(".pt", ".pkl"), pickle_seed(p))
for p in ["object_python_values.pkl", "object_python_values_p4.pkl", "rejected_big_int.pkl",
          "rejected_frozenset.pkl", "rejected_tuple_key.pkl", "object_os_system.pkl", "object_namespace.pkl"]:
    put("fuzz-pickle", p, read("pickle/" + p))
for p in ["all_dtypes.safetensors", "edge_shapes.safetensors"]:
    put("fuzz-safetensors", p, read("safetensors/" + p))

if tool:
    with tempfile.TemporaryDirectory() as tmp:
        for p in ["pt/archive_minimal.pt", "pt/model_tied.pt", "pt/nested.pt", "safetensors/all_dtypes.safetensors"]:
            base = os.path.basename(p).split(".")[0]
            out = os.path.join(tmp, base + ".ckpt")
            subprocess.run([tool, "convert", os.path.join(fixtures, p), out], check=True, capture_output=True)
            with open(out, "rb") as f:
                put("fuzz-zip", base + ".ckpt", f.read())
            with zipfile.ZipFile(out) as z:
                put("fuzz-manifest", base + ".json", z.read("archive/manifest.json"))
        for p in ["pt/nested.pt", "pt/model_tied.pt"]:
            base = os.path.basename(p).split(".")[0]
            out = os.path.join(tmp, base + ".safetensors")
            subprocess.run([tool, "convert", os.path.join(fixtures, p), out], check=True, capture_output=True)
            with open(out, "rb") as f:
                put("fuzz-safetensors", base + ".safetensors", f.read())

put("fuzz-rename-map", "map.json", read("rename/map.json"))
put("fuzz-rename-map", "composite.json",
    b'{"maps":[{"rules":[{"prefix":"module.","to":""}]},{"rules":[{"regex":"^layer(\\\\d+)\\\\.(.*)$","to":"blocks.$1.$2"},'
    b'{"drop":"^head\\\\."},{"exact":"encoder.layer.0.weight","to":"w"}],"strict":true}]}')

# A catalog as ckpt writes it (schema of Sources/Catalog/CatalogStore+Schema.swift), small pages.
with tempfile.TemporaryDirectory() as tmp:
    db_path = os.path.join(tmp, "catalog.sqlite")
    db = sqlite3.connect(db_path)
    db.executescript("""
        PRAGMA page_size = 512;
        PRAGMA application_id = 1667985524;
        CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
        CREATE TABLE checkpoints (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id),
            step INTEGER NOT NULL CHECK (step >= 0), path TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('writing', 'committed', 'deleting', 'corrupt')),
            bytes INTEGER, manifest_crc32 INTEGER, created REAL NOT NULL, committed REAL, writer TEXT,
            UNIQUE (run_id, step));
        CREATE INDEX checkpoints_by_status ON checkpoints (run_id, status, step);
        CREATE TABLE metrics (checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE,
            name TEXT NOT NULL, value REAL, PRIMARY KEY (checkpoint_id, name)) WITHOUT ROWID;
        CREATE INDEX metrics_by_name ON metrics (name, value);
        INSERT INTO runs VALUES (1, 'main', 1.0), (2, 'other', 2.0);
        INSERT INTO checkpoints VALUES
            (1, 1, 0, 'checkpoints/main/step-00000000.ckpt', 'committed', 3666, 123, 1.0, 1.5, 'host:1'),
            (2, 1, 100, 'checkpoints/main/step-00000100.ckpt', 'writing', NULL, NULL, 2.0, NULL, 'host:2'),
            (3, 2, 5, 'checkpoints/other/step-00000005.ckpt', 'corrupt', 10, 7, 3.0, 3.5, NULL);
        INSERT INTO metrics VALUES (1, 'loss', 0.5), (1, 'accuracy', 0.9), (3, 'loss', NULL);
        PRAGMA user_version = 1;
    """)
    db.commit()
    db.close()
    with open(db_path, "rb") as f:
        put("fuzz-catalog", "catalog.sqlite", f.read())

rng = random.Random(14)
for i in range(8):
    put("fuzz-roundtrip", "random-%d" % i, bytes(rng.randrange(256) for _ in range(64 << (i % 4))))

# fuzz-dcp-metadata: `.metadata` next to the data files of dcp/two_ranks (torch's 2 gloo ranks). torch's
# own files, the hostile variants make_dcp_fixtures.py pickled with torch's dataclasses (made for
# dcp/single: their items fall outside two_ranks' files), and byte-level variants of two_ranks'.
two_ranks = read("dcp/two_ranks/.metadata")
put("fuzz-dcp-metadata", "two_ranks.metadata", two_ranks)
put("fuzz-dcp-metadata", "single.metadata", read("dcp/single/.metadata"))
for name in ["overlap", "outside", "gap", "past_file", "missing_file", "forbidden_global"]:
    put("fuzz-dcp-metadata", "hostile-%s.metadata" % name, read("dcp/hostile/%s.metadata" % name))
for name, old, new in [
    ("missing-rank", b"__1_0.distcp", b"__7_0.distcp"),         # a data file that is not there
    ("bytes-item", b"\x8c\x15TensorStorageMetadata", b"\x8c\x14BytesStorageMetadata"),  # a tensor's item read as a value
    ("other-class", b"ChunkStorageMetadata", b"ChunkStorageMetadatb"),  # a global outside the allow-list
    ("unsafe-name", b"__0_0.distcp", b"../0_0.distcp"),
]:
    assert old in two_ranks, name
    put("fuzz-dcp-metadata", "two_ranks-%s.metadata" % name, two_ranks.replace(old, new))
put("fuzz-dcp-metadata", "two_ranks-truncated.metadata", two_ranks[: len(two_ranks) // 2])

# fuzz-sharded-index: model.safetensors.index.json next to the shards huggingface_hub wrote.
index = read("sharded/safetensors/model.safetensors.index.json")
put("fuzz-sharded-index", "model.safetensors.index.json", index)
put("fuzz-sharded-index", "bin-index.json", read("sharded/bin/pytorch_model.bin.index.json"))
for name, old, new in [
    ("total-size", b'"total_size": 2152', b'"total_size": 2153'),
    ("missing-shard", b'"norm.weight": "model-00003-of-00003', b'"norm.weight": "model-00004-of-00003'),
    ("wrong-shard", b'"norm.weight": "model-00003-of-00003', b'"norm.weight": "model-00001-of-00003'),
    ("duplicate-key", b'"norm.steps"', b'"norm.weight"'),
    ("unsafe-name", b'"embed.weight": "model-00001', b'"embed.weight": "../model-00001'),
    ("unlisted", b',\n    "norm.steps": "model-00003-of-00003.safetensors"', b""),
]:
    assert old in index, name
    put("fuzz-sharded-index", "index-%s.json" % name, index.replace(old, new))
