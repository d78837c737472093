#!/usr/bin/env python3
"""Smoke test: drive the lab's Proxmox VE emulator with proxmoxer, a
maintained third-party Proxmox API client from PyPI.

Environment (set by the Rust test that starts the lab):
  PVE_HOST, PVE_PORT          127.0.0.1 and a node's port
  PVE_USER, PVE_TOKEN_NAME    token owner (user@realm) and token name
  PVE_TOKEN_VALUE             the token secret
  PVE_CA_PEM                  path of the lab certificate (TLS is verified)
Prints one "ok: ..." line per check; exits non-zero on the first failure.
Never prints the token secret or note contents.
"""

import os
import sys

from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException


def check(condition, what):
    if not condition:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def api(token_value):
    return ProxmoxAPI(
        os.environ["PVE_HOST"],
        port=int(os.environ["PVE_PORT"]),
        user=os.environ["PVE_USER"],
        token_name=os.environ["PVE_TOKEN_NAME"],
        token_value=token_value,
        verify_ssl=os.environ["PVE_CA_PEM"],
        service="PVE",
        timeout=20,
    )


def main():
    px = api(os.environ["PVE_TOKEN_VALUE"])

    version = px.version.get()
    check(version["release"].count(".") == 1, "read /version")

    guests = px.cluster.resources.get(type="vm")
    vmids = sorted(g["vmid"] for g in guests)
    check(100 in vmids and 200 in vmids, "listed guests via /cluster/resources")
    check(all(g["type"] in ("qemu", "lxc") for g in guests), "type=vm filter honoured")

    vms = px.nodes("pve1").qemu.get()
    check(any(v["vmid"] == 100 for v in vms), "listed VMs of pve1")

    config = px.nodes("pve1").qemu(100).config.get()
    check(len(config["digest"]) == 40, "read a VM config with its digest")
    check(config["net0"].startswith("virtio=BC:24:11:"), "config has net0 with a Proxmox MAC")

    px.nodes("pve1").qemu(100).config.put(description="written by proxmoxer", digest=config["digest"])
    after = px.nodes("pve1").qemu(100).config.get()
    check(after["description"] == "written by proxmoxer", "wrote notes with the digest")
    check(after["digest"] != config["digest"], "digest changed after the write")

    try:
        px.nodes("pve1").qemu(100).config.put(description="stale", digest=config["digest"])
        check(False, "stale digest refused")
    except ResourceException as e:
        check(e.status_code == 500, "stale digest refused with 500")

    agent = px.nodes("pve1").qemu(100).agent("network-get-interfaces").get()
    check(isinstance(agent["result"], list) and agent["result"][0]["name"] == "lo", "guest agent interfaces")

    ifaces = px.nodes("pve1").lxc(200).interfaces.get()
    check(any(i["name"] == "eth0" for i in ifaces), "container interfaces")

    try:
        px.nodes("pve1").qemu(999).config.get()
        check(False, "missing VM raises")
    except ResourceException as e:
        check(e.status_code == 500, "missing VM gives 500")

    try:
        api("00000000-0000-4000-8000-000000000000").version.get()
        check(False, "wrong token refused")
    except Exception as e:  # proxmoxer wraps 401 in its own exception types
        check("401" in str(e) or getattr(e, "status_code", None) == 401, "wrong token gives 401")

    print("proxmoxer smoke test passed")


if __name__ == "__main__":
    main()
