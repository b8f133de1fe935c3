"""MkDocs hooks (mkdocs.yml `hooks:`). The library's docstrings use Sphinx roles (:func:`compare`),
which mkdocstrings renders literally as ":func:compare"; keep the code, drop the role."""
import re

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):(<code>)")


def on_page_content(html, page, config, files):
    return _ROLE.sub(r"\1", html)
