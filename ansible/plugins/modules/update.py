#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sysup developers
# SPDX-License-Identifier: BSD-2-Clause
"""sysup.sysup.update: `sysup update` as an Ansible module.

Invariants: `changed` comes from installed ids (sysup's `status --json`
before and after a real run; the plans' installed vs target ids in check
mode), never from message text; check mode runs sysup's own dry run, which
fetches, records and applies nothing; a failed sysup fails the module with
sysup's message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: update
short_description: Update a host with sysup from a signed mirror
description:
  - Runs C(sysup update --json) against a mirror, which fetches the cheapest
    verified chain of patches (or the full dist) and applies it crash-safely.
  - C(changed) is decided from the installed ids (C(sysup status --json)
    before and after), not from sysup's messages.
  - In check mode runs C(sysup update --dry-run --json), which verifies the
    mirror's signed INDEX and plans, but fetches, records and applies nothing;
    C(changed) then says whether an update is available.
  - sysup never restarts anything; the C(restart) result says what needs a
    restart or a reboot when the sysup version reports it.
version_added: "0.1.0"
options:
  root:
    description: The root to update (sysup C(--root)). Tests use a temporary directory.
    type: path
    default: /
  mirror:
    description: Mirror base URL (C(--mirror)); default from the root's C(etc/sysup.conf).
    type: str
  pubkey:
    description: Public key file on the host (C(--pubkey)); default from C(etc/sysup.conf).
    type: path
  to:
    description: Id to update to (C(--to)), instead of the newest on the mirror.
    type: str
  binary:
    description: Path of the sysup binary on the host, or a name looked up in PATH.
    type: str
    default: sysup
author:
  - sysup developers
notes:
  - Supports check mode through sysup's real dry run.
"""

EXAMPLES = r"""
- name: Update the system from the site mirror
  sysup.sysup.update:
    mirror: https://mirror.example.org/sysup/
    pubkey: /etc/sysup/minisign.pub
  register: up

- name: Update a staged root to one release
  sysup.sysup.update:
    root: /srv/stage
    to: world-6.4.2-20260301
"""

RETURN = r"""
ids:
  description: >-
      Per dist name installed before or after, the installed id before (C(from), null
      on a first install) and after (C(to)); in check mode C(to) is the id an update
      would install. C(changed) is true exactly when some C(from) differs from its C(to).
  type: dict
  returned: always
  sample: {"world": {"from": "world-1-20260101", "to": "world-2-20260102"}}
fetched_bytes:
  description: Bytes of dists and patches fetched (in check mode, that would be fetched).
  type: int
  returned: always
config_kept:
  description: Locally modified config files kept, each with the new version beside it as C(<path>.sysupnew).
  type: list
  elements: str
  returned: always
config_merged:
  description: Config files merged three ways, when the sysup version reports them (empty otherwise).
  type: list
  elements: str
  returned: always
restart:
  description: >-
    What needs a restart after the apply (C(reboot_needed), C(reboot_reasons),
    C(processes)), merged over the names applied; null when nothing was applied
    or the sysup version does not report it.
  type: dict
  returned: always
result:
  description: sysup's result, C(up-to-date), C(applied), C(would-apply).
  type: str
  returned: always
serial:
  description: Serial of the INDEX accepted.
  type: int
  returned: always
report:
  description: The whole C(sysup update --json) document (docs/json.md).
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sysup.sysup.plugins.module_utils.sysup import (
    SysupError,
    binary_path,
    installed_ids,
    run_json,
    status,
)


def update_argv(sysup, params, dry_run):
    """The `sysup update` command line for the module's options."""
    argv = [sysup, "update", "--root", params["root"], "--json"]
    for option in ("mirror", "pubkey", "to"):
        if params[option]:
            argv += ["--" + option, params[option]]
    if dry_run:
        argv.append("--dry-run")
    return argv


def planned_ids(report, before):
    """{name: {from, to}}: every installed name, and what the plans would install."""
    ids = dict((name, {"from": id_, "to": id_}) for name, id_ in before.items())
    for plan in report.get("plans", []):
        if plan.get("how") in ("patches", "dist"):
            ids[plan["name"]] = {"from": plan.get("installed"), "to": plan.get("target")}
    return ids


def installed_change(before, after):
    """{name: {from, to}} over every name installed before or after."""
    return dict(
        (name, {"from": before.get(name), "to": after.get(name)})
        for name in sorted(set(before) | set(after))
    )


def any_change(ids):
    """Whether any name's installed id differs between from and to."""
    return any(v["from"] != v["to"] for v in ids.values())


def merge_restart(applied):
    """One restart report over the apply reports that carry one: a reboot if
    any name needs it, and each process once, with every replaced file it
    still uses."""
    reports = [a["restart"] for a in applied if isinstance(a.get("restart"), dict)]
    if not reports:
        return None
    merged = {"reboot_needed": False, "reboot_reasons": [], "processes": []}
    by_pid = {}
    for r in reports:
        merged["reboot_needed"] = merged["reboot_needed"] or bool(r.get("reboot_needed"))
        for reason in r.get("reboot_reasons") or []:
            if reason not in merged["reboot_reasons"]:
                merged["reboot_reasons"].append(reason)
        for p in r.get("processes") or []:
            seen = by_pid.get(p.get("pid"))
            if seen is None:
                seen = by_pid[p.get("pid")] = dict(p, files=list(p.get("files") or []))
                merged["processes"].append(seen)
            else:
                seen["files"] += [f for f in p.get("files") or [] if f not in seen["files"]]
    return merged


def summary(report, ids):
    """The module's result from sysup's update document."""
    applied = report.get("applied", [])
    return dict(
        ids=ids,
        fetched_bytes=report.get("fetched_bytes", 0),
        config_kept=[p for a in applied for p in a.get("config_kept", [])],
        config_merged=[p for a in applied for p in a.get("config_merged", [])],
        restart=merge_restart(applied),
        result=report.get("result"),
        serial=report.get("serial"),
        report=report,
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", default="/"),
            mirror=dict(type="str"),
            pubkey=dict(type="path"),
            to=dict(type="str"),
            binary=dict(type="str", default="sysup"),
        ),
        supports_check_mode=True,
    )
    sysup = binary_path(module)
    root = module.params["root"]
    try:
        before = installed_ids(status(module, sysup, root))
        report = run_json(module, update_argv(sysup, module.params, module.check_mode))
        if module.check_mode:
            ids = planned_ids(report, before)
            changed = any_change(ids)
        else:
            ids = installed_change(before, installed_ids(status(module, sysup, root)))
            # An interrupted apply finished first changes the root even when
            # the installed id ends where it was.
            changed = any_change(ids) or bool(report.get("finished_interrupted"))
    except SysupError as e:
        e.fail(module)
    module.exit_json(changed=changed, **summary(report, ids))


if __name__ == "__main__":
    main()
