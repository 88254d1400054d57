#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sysup developers
# SPDX-License-Identifier: BSD-2-Clause
"""sysup.sysup.facts: `sysup status --json` as the `sysup` host fact.

Invariant: read only (never changed); every fact is a field of sysup's
status document, fields of newer sysup versions passed through.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: facts
short_description: What sysup has installed on a host, as facts
description:
  - Runs C(sysup status --json) and sets the C(sysup) fact to its document,
    with C(installed), a map from dist name to installed id, added.
  - Read only; never changed.
version_added: "0.1.0"
options:
  root:
    description: The root to look at (sysup C(--root)).
    type: path
    default: /
  binary:
    description: Path of the sysup binary on the host, or a name looked up in PATH.
    type: str
    default: sysup
author:
  - sysup developers
"""

EXAMPLES = r"""
- name: Read what sysup installed
  sysup.sysup.facts:

- name: Hosts with an interrupted apply
  ansible.builtin.debug:
    msg: "{{ ansible_facts.sysup.pending.command }}"
  when: ansible_facts.sysup.pending
"""

RETURN = r"""
ansible_facts:
  description: Facts set.
  returned: always
  type: complex
  contains:
    sysup:
      description: >-
        The C(sysup status --json) document (docs/json.md: C(names), C(pending),
        C(running), and C(config_pending) where the sysup version reports it),
        plus C(installed), {name: id}.
      type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sysup.sysup.plugins.module_utils.sysup import (
    SysupError,
    binary_path,
    installed_ids,
    status,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", default="/"),
            binary=dict(type="str", default="sysup"),
        ),
        supports_check_mode=True,
    )
    try:
        doc = status(module, binary_path(module), module.params["root"])
    except SysupError as e:
        e.fail(module)
    doc["installed"] = installed_ids(doc)
    module.exit_json(changed=False, ansible_facts=dict(sysup=doc))


if __name__ == "__main__":
    main()
