"""Renderers: sections of rows as LaTeX, Markdown, plain text or JSON.

Contract: :func:`render_latex` writes one ``align*`` block per section, each
preceded by a ``%`` comment with the section's title (one alignment point per
line); ``standalone=True`` wraps them in an ``article`` that pdflatex
compiles (amsmath, amssymb). :func:`render_markdown` puts the same blocks in
``$$`` fences under ``##`` titles, :func:`render_text` prints each row's
plain-text line, :func:`render_json` each row's name, LaTeX, index form, text
and SymPy string, plus every gradient of the derivation by name.
"""

from __future__ import annotations

import json


def _block(section) -> str:
    lines = [rf"{lhs} &{relation} {rhs}" for row in section.rows
             for lhs, relation, rhs in row.lines]
    return "\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}"


def _tex_escape(text: str) -> str:
    return text.replace("\\", "").replace("_", r"\_").replace("&", r"\&").replace(
        "%", r"\%").replace("#", r"\#").replace("^", r"\^{}")


def render_latex(sections, title: str, standalone: bool = False) -> str:
    if not standalone:
        return "\n".join(f"% {section.title}\n{_block(section)}" for section in sections) + "\n"
    parts = [f"\\section*{{{_tex_escape(section.title)}}}\n{_block(section)}\n"
             for section in sections]
    return ("\\documentclass{article}\n\\usepackage{amsmath,amssymb}\n"
            "\\usepackage[margin=2cm]{geometry}\n\\allowdisplaybreaks\n"
            f"\\title{{Gradients of {_tex_escape(title)}}}\n\\date{{}}\n\\begin{{document}}\n"
            "\\maketitle\n" + "\n".join(parts) + "\\end{document}\n")


def render_markdown(sections, title: str) -> str:
    out = [f"# Gradients of `{title}`", ""]
    for section in sections:
        out += [f"## {section.title}", "", "$$", _block(section), "$$", ""]
    return "\n".join(out)


def render_text(sections, title: str) -> str:
    out = [f"Gradients of {title}"]
    for section in sections:
        out += ["", section.title, "-" * min(len(section.title), 79)]
        out += [f"  {row.text}" for row in section.rows]
    return "\n".join(out) + "\n"


def render_json(sections, title: str, gradients: list) -> str:
    payload = {
        "network": title,
        "sections": [{"title": section.title, "quantities": [
            {"name": row.name,
             "latex": " ".join(f"{lhs} {relation} {rhs}" for lhs, relation, rhs in row.lines[:1]),
             "index_latex": row.index or None, "text": row.text, "sympy": row.sympy or None}
            for row in section.rows]} for section in sections],
        "gradients": gradients,
    }
    return json.dumps(payload, indent=2) + "\n"


def repr_latex(sections) -> str:
    """Jupyter's ``_repr_latex_``: each section's ``align*`` block in ``$$``."""
    return "\n".join(f"$${_block(section)}$$" for section in sections)
