# -*- coding: utf-8 -*-
# Copyright: sysup developers
# SPDX-License-Identifier: BSD-2-Clause
"""Running the sysup binary for the collection's modules.

Every fact the modules return comes from one of sysup's ``--json``
documents (docs/json.md in the sysup repository), never from its human
output: the exit code says whether a command worked (0 success, 1 failure
with the reason on stderr, 2 usage error), the document what happened.
Fields added by newer sysup versions are passed through, never required.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json


class SysupError(Exception):
    """A sysup command failed: its exit code, its message, the command."""

    def __init__(self, msg, rc=None, cmd=None, stdout="", stderr=""):
        super(SysupError, self).__init__(msg)
        self.msg = msg
        self.rc = rc
        self.cmd = cmd
        self.stdout = stdout
        self.stderr = stderr

    def fail(self, module, **extra):
        """Fail the module with sysup's own message and what was run."""
        module.fail_json(
            msg=self.msg,
            rc=self.rc,
            cmd=self.cmd,
            stdout=self.stdout,
            stderr=self.stderr,
            **extra
        )


def sysup_message(stderr, rc):
    """sysup's error: its `error: ...` lines (stderr without progress noise)."""
    lines = [l for l in stderr.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("error")]
    text = "\n".join(errors or lines).strip()
    return text or "sysup exited with status %s and printed no message" % rc


def run_json(module, argv):
    """Run sysup with `argv` (sysup's path first) and return its document."""
    rc, out, err = module.run_command(argv, check_rc=False)
    if rc != 0:
        raise SysupError(sysup_message(err, rc), rc=rc, cmd=argv, stdout=out, stderr=err)
    try:
        return json.loads(out)
    except ValueError as e:
        raise SysupError(
            "sysup printed no JSON document (%s); is %s a sysup binary?" % (e, argv[0]),
            rc=rc,
            cmd=argv,
            stdout=out,
            stderr=err,
        )


def binary_path(module):
    """sysup's path: the `binary` option, looked up in PATH when bare."""
    binary = module.params["binary"]
    if "/" in binary:
        return binary
    found = module.get_bin_path(binary, required=False, opt_dirs=["/usr/local/sbin", "/usr/sbin"])
    if not found:
        module.fail_json(msg="sysup binary %r not found in PATH; set the binary option" % binary)
    return found


def status(module, sysup, root):
    """`sysup status --root ROOT --json`."""
    return run_json(module, [sysup, "status", "--root", root, "--json"])


def installed_ids(status_doc):
    """{name: installed id} from a status document."""
    ids = {}
    for entry in status_doc.get("names", []):
        installed = entry.get("installed") or {}
        if "id" in installed:
            name = installed["id"].rsplit("-", 2)[0]
            ids[name] = installed["id"]
    return ids
