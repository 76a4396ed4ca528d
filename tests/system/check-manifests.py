#!/usr/bin/python3
"""Checks deploy/*.yaml against the Kubernetes API's object models
(python3-kubernetes), without a cluster: every document deserializes into
its kind's model, with no unknown field and no missing required one, and
the vmpoolfs-specific parts are there. Usage: check-manifests.py FILE..."""
import sys
import yaml
from kubernetes import client
from kubernetes.client import ApiClient

KINDS = {("apps/v1", "DaemonSet"): "V1DaemonSet", ("v1", "Pod"): "V1Pod"}


def strict(data, klass, path):
    """Raises on a key the model does not know, recursively; the models'
    own setters (client_side_validation) raise on a missing required one."""
    cls = getattr(client, klass) if isinstance(klass, str) and hasattr(client, klass) else None
    if isinstance(klass, str) and klass.startswith("list["):
        for i, v in enumerate(data):
            strict(v, klass[5:-1], f"{path}[{i}]")
        return
    if isinstance(klass, str) and klass.startswith("dict("):
        return
    if cls is None:
        return
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object for {klass}")
    known = {v: k for k, v in cls.attribute_map.items()}
    for key, val in data.items():
        if key not in known:
            raise ValueError(f"{path}.{key}: unknown field for {klass}")
        strict(val, cls.openapi_types[known[key]], f"{path}.{key}")


class Resp:
    def __init__(self, doc):
        import json
        self.data = json.dumps(doc)


def load(path):
    out = []
    for doc in yaml.safe_load_all(open(path)):
        if doc is None:
            continue
        klass = KINDS[(doc["apiVersion"], doc["kind"])]
        strict(doc, klass, f"{path}:{doc['kind']}")
        out.append(ApiClient().deserialize(Resp(doc), klass))
    return out


def mounts(pod_spec):
    return {m.name: m for c in pod_spec.containers for m in c.volume_mounts}


def main():
    objs = [o for f in sys.argv[1:] for o in load(f)]
    ds = [o for o in objs if isinstance(o, client.V1DaemonSet)]
    pods = [o for o in objs if isinstance(o, client.V1Pod)]
    assert len(ds) == 1 and pods, "want one DaemonSet and a job Pod"
    spec = ds[0].spec.template.spec
    c = spec.containers[0]
    vols = {v.name: v for v in spec.volumes}
    m = mounts(spec)
    assert any(v.host_path and v.host_path.path == "/dev/fuse" and v.host_path.type == "CharDevice"
               and m[n].mount_path == "/dev/fuse" for n, v in vols.items()), "/dev/fuse"
    bidi = [x for x in m.values() if x.mount_propagation == "Bidirectional"]
    assert len(bidi) == 1, "one Bidirectional mount"
    host_mnt = vols[bidi[0].name].host_path.path
    assert c.security_context.privileged, "Bidirectional needs privileged"
    probe = " ".join(c.readiness_probe._exec.command)
    mnt = bidi[0].mount_path
    assert probe.endswith("/config") and mnt in probe, f"probe reads MNT/config: {probe}"
    assert mnt in " ".join(c.command), "daemon mounts under the propagated path"
    assert c.resources.requests and c.resources.limits, "resources"
    env = {e.name for e in c.env}
    assert {"VMPOOL_MIN", "VMPOOL_MAX"} <= env, "pool size from env"
    for p in pods:
        pm = mounts(p.spec)
        pv = {v.name: v for v in p.spec.volumes}
        h2c = [x for x in pm.values() if x.mount_propagation == "HostToContainer"]
        assert h2c and pv[h2c[0].name].host_path.path == host_mnt, "job mounts the host path HostToContainer"
    print(f"ok: {len(objs)} objects")


if __name__ == "__main__":
    main()
