#!/usr/bin/env python3
"""Smoke test: drive the lab's Guacamole emulator with guacapy, a maintained
third-party Guacamole REST client from PyPI.

Environment (set by the Rust test that starts the lab):
  GUAC_HOST, GUAC_PORT      127.0.0.1 and the lab's Guacamole port
  GUAC_CONTEXT              path before "api", e.g. "/guacamole/"
  GUAC_USERNAME, GUAC_PASSWORD
  GUAC_CA_PEM               path of the lab certificate (TLS is verified)
Prints one "ok: ..." line per check; exits non-zero on the first failure.
"""

import copy
import os
import sys

from guacapy import Guacamole
from guacapy.managers.connections import ConnectionManager


def check(condition, what):
    if not condition:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def main():
    client = Guacamole(
        hostname=os.environ["GUAC_HOST"],
        username=os.environ["GUAC_USERNAME"],
        password=os.environ["GUAC_PASSWORD"],
        connection_protocol="https",
        connection_port=int(os.environ["GUAC_PORT"]),
        base_url_path=os.environ["GUAC_CONTEXT"],
        # requests accepts a CA bundle path here: verify against the lab cert.
        ssl_verify=os.environ["GUAC_CA_PEM"],
    )
    check(len(client.token) == 64, "login returned a 64-character token")
    check(client.primary_datasource == "postgresql", "primary data source is postgresql")

    connections = client.connections.list()
    check(isinstance(connections, dict) and len(connections) >= 1, "listed seeded connections")
    check(
        any(c["name"] == "hand-made" for c in connections.values()),
        "seeded connection 'hand-made' is listed",
    )
    groups = client.connection_groups.list()
    check(any(g["name"] == "Office" for g in groups.values()), "listed connection groups")
    root = client.connection_groups.details("ROOT")
    check(root["identifier"] == "ROOT", "read the ROOT group")

    payload = copy.deepcopy(ConnectionManager.RDP_TEMPLATE)
    payload.update({"name": "from-guacapy"})
    payload["parameters"]["hostname"] = "192.0.2.50"
    created = client.connections.create(payload)
    check(created is not None and created["identifier"].isdigit(), "created a connection")
    params = client.connections.parameters(created["identifier"])
    check(params.get("hostname") == "192.0.2.50", "empty template values were not stored")
    check("username" not in params, "parameters read back without blanks")

    me = client.users.self_details()
    check(me["username"] == os.environ["GUAC_USERNAME"], "read /self")
    client.logout()
    print("guacapy smoke test passed")


if __name__ == "__main__":
    main()
