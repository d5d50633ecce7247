"""mkdocs hook: the docstrings' reST roles, rendered for the API reference.

The docstrings are NumPy style with Sphinx roles (``:func:`name```, ``:math:`x^2```), which
markdown renders as a role name before inline code.  On each page, a cross-reference role keeps
only its code (``~a.b.C`` shows ``C``, as in Sphinx) and ``:math:`` becomes inline math for
MathJax (pymdownx.arithmatex's markup).
"""

from __future__ import annotations

import re

ROLES = ("func", "class", "meth", "mod", "data", "attr", "exc", "obj")
_REFERENCE = re.compile(r":(?:py:)?(?:%s):<code>(~?)([^<]*)</code>" % "|".join(ROLES))
_MATH = re.compile(r":math:<code>([^<]*)</code>")


def render_roles(page_html: str) -> str:
    """Replace the role markup of ``page_html`` (see the module docstring)."""
    def reference(match: re.Match) -> str:
        tilde, target = match.groups()
        return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"

    def math(match: re.Match) -> str:
        return f'<span class="arithmatex">\\({match.group(1)}\\)</span>'  # still HTML-escaped

    return _MATH.sub(math, _REFERENCE.sub(reference, page_html))


def on_page_content(html_text: str, **_kwargs) -> str:
    return render_roles(html_text)
