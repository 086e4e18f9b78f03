"""Griffe extension for the API pages: mmdf's docstrings use Sphinx roles, shown here as code.

``:class:`~mmdf.x.Name``` becomes ```Name```, ``:func:`mmdf.x.f``` becomes
```mmdf.x.f```: the docstrings stay as they are for readers of the source.
"""

import re

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def _plain(match: re.Match) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_plain, obj.docstring.value)
