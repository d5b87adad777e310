# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The options of every module that runs the docker CLI (``_buildx.DOCKER_CLI_ARGS``)."""

    DOCUMENTATION = r"""
requirements:
  - the docker CLI with its buildx plugin (M(fleet.multiarch.buildx_plugin)) on the host that runs the module
options:
  docker_cli:
    description:
      - Path of the docker CLI. Defaults to C(docker) on PATH.
    type: path
  docker_host:
    description:
      - The engine the docker CLI talks to (C(DOCKER_HOST)), for example C(unix:///var/run/fleet-docker2.sock) or
        C(ssh://user@host). Unset, the C(DOCKER_HOST) of the module's environment, else the current docker context.
    type: str
  docker_context:
    description:
      - The docker context to use (C(DOCKER_CONTEXT)).
    type: str
  docker_config:
    description:
      - The docker CLI configuration directory (C(DOCKER_CONFIG)) the commands run with - it holds the contexts,
        the buildx builders and the C(config.json) that C(docker login) writes. Defaults to C($DOCKER_CONFIG), else
        C(~/.docker) of the user the module runs as.
    type: path
"""
