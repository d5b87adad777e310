# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: release_record
author:
  - fleet.multiarch contributors (@fleet-multiarch)
version_added: 0.2.0
short_description: Read a release record on the controller, validated by the code that writes it
description:
  - Reads the release record (schema 1) that M(fleet.multiarch.release) writes, through the same code that writes
    it, and returns it as a dict. A file that is not JSON, has another schema or lacks what a rollout needs
    (C(repository), C(index_digest)) fails with a message that names the file.
  - A relative path is looked up as M(ansible.builtin.file) does (the role's and the playbook's C(files/)
    directories, then the playbook's directory).
options:
  _terms:
    description: The record file(s).
    required: true
    type: list
    elements: path
"""

EXAMPLES = r"""
- name: The index digest of the last release
  ansible.builtin.debug:
    msg: "{{ lookup('fleet.multiarch.release_record', 'releases/demo-app.json').index_digest }}"
"""

RETURN = r"""
_raw:
  description: The record of each file, as a dict (keys in C(docs/release.md)).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.fleet.multiarch.plugins.module_utils._release_record import (
    ReleaseRecord,
    ReleaseRecordError,
)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        records = []
        for term in terms:
            path = self.find_file_in_search_path(variables, "files", term, ignore_missing=True)
            try:
                record = ReleaseRecord.load(path) if path else None
            except ReleaseRecordError as exc:
                raise AnsibleLookupError(str(exc)) from None
            if record is None:
                raise AnsibleLookupError(
                    f"the release record {term} does not exist: release first (the fleet.multiarch.release role"
                    " writes it to release_record_path), or give the path of the record"
                )
            records.append(record.to_dict())
        return records
