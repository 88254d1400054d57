# -*- coding: utf-8 -*-
# SPDX-License-Identifier: BSD-2-Clause
"""Test harness, not product (left out of the built collection): appends
every task result to $SYSUP_TEST_RECORD as a JSON line: which batch (`play`:
each batch of a `serial` play starts as a play of its own), task, host,
status and the module's result. tests/fleet_ansible.rs reads it
(ansible-core's own `json` callback moved to another collection)."""
import json, os
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'record'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.play = -1

    def v2_playbook_on_play_start(self, play):
        self.play += 1

    def _record(self, status, result):
        rec = dict(play=self.play, task=result._task.get_name(),
                   host=result._host.get_name(), status=status, result=result._result)
        with open(os.environ['SYSUP_TEST_RECORD'], 'a') as f:
            f.write(json.dumps(rec, default=str) + '\n')

    def v2_runner_on_ok(self, result):
        self._record('ok', result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record('failed', result)

    def v2_runner_on_skipped(self, result):
        self._record('skipped', result)

    def v2_runner_on_unreachable(self, result):
        self._record('unreachable', result)
