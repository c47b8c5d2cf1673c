#!/usr/bin/env python3
"""Extract the request constraints of the AWS KMS service model into src/api/model.json.

Usage: scripts/model-constraints.py [path/to/service-2.json]
(default ../shared/reference/kms/service-2.json). Keeps, for every operation's input shape and
the shapes it reaches, only what request validation needs: type, min/max, enum, required
members, member shapes, patterns, sensitivity. No documentation is copied.
"""
import json
import os
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    root, "..", "shared", "reference", "kms", "service-2.json")
model = json.load(open(src))
shapes = model["shapes"]
out_shapes = {}

# AWS lists an enum's values in its error messages in an order of its own, not the model's.
# Where a real AWS answer recorded it, the message uses that order (LocalStack's AWS-validated
# snapshots, test_invalid_generate_mac / test_invalid_verify_mac: macAlgorithm).
RECORDED_ENUM_ORDER = {
    "MacAlgorithmSpec": ["HMAC_SHA_384", "HMAC_SHA_256", "HMAC_SHA_224", "HMAC_SHA_512"],
}


def visit(name):
    if name in out_shapes:
        return
    s = shapes[name]
    o = {"type": s["type"]}
    for k in ("min", "max", "enum", "pattern", "required", "sensitive"):
        if k in s:
            o[k] = s[k]
    if name in RECORDED_ENUM_ORDER:
        assert sorted(RECORDED_ENUM_ORDER[name]) == sorted(o["enum"]), name
        o["enum"] = RECORDED_ENUM_ORDER[name]
    out_shapes[name] = o
    if s["type"] == "structure":
        o["members"] = [[m, v["shape"]] for m, v in s["members"].items()]
        for _, v in s["members"].items():
            visit(v["shape"])
    elif s["type"] == "list":
        o["member"] = s["member"]["shape"]
        visit(o["member"])
    elif s["type"] == "map":
        o["key"] = s["key"]["shape"]
        o["value"] = s["value"]["shape"]
        visit(o["key"])
        visit(o["value"])


ops = {}
for name, op in sorted(model["operations"].items()):
    if "input" in op:
        ops[name] = op["input"]["shape"]
        visit(op["input"]["shape"])
doc = {
    "source": "AWS KMS service model (botocore service-2.json), request constraints only",
    "operations": ops,
    "shapes": dict(sorted(out_shapes.items())),
}
dst = os.path.join(root, "src", "api", "model.json")
with open(dst, "w") as f:
    json.dump(doc, f, indent=0, sort_keys=False)
    f.write("\n")
print(f"wrote {dst}: {len(ops)} operations, {len(out_shapes)} shapes")
