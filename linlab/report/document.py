"""A report as a list of blocks, written both as Markdown and as one self-contained HTML page.

Blocks are headings, paragraphs, tables, code and images; the HTML embeds every image as
base64 PNG data and its own stylesheet, so the page opens anywhere without a network.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem;
       margin: 2rem auto; padding: 0 1rem; color: #1d1d1f; }
h1 { font-size: 1.7rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f5f5f7; } td { white-space: nowrap; } td:first-child, th:first-child { text-align: left; }
pre { background: #f5f5f7; padding: 0.7rem; overflow-x: auto; font-size: 0.82rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; }
"""


@dataclass
class Document:
    """Blocks in order: ``("h", level, text)``, ``("p", text)``, ``("table", header, rows)``,
    ``("code", text)``, ``("img", path, caption)``, ``("link", href, text)``.

    Examples
    --------
    >>> doc = Document("Title")
    >>> doc.p("Hello.")
    >>> doc.table(["a", "b"], [[1, 2]])
    >>> print(doc.markdown())
    # Title
    <BLANKLINE>
    Hello.
    <BLANKLINE>
    | a | b |
    |---|---|
    | 1 | 2 |
    <BLANKLINE>
    """

    title: str
    blocks: list = field(default_factory=list)

    def h(self, text: str, level: int = 2) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header, rows) -> None:
        self.blocks.append(("table", [str(h) for h in header], [[str(c) for c in row] for row in rows]))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def img(self, path, caption: str) -> None:
        self.blocks.append(("img", Path(path), caption))

    def link(self, href: str, text: str) -> None:
        self.blocks.append(("link", href, text))

    def markdown(self) -> str:
        """The report as Markdown (images by their file name, beside report.md)."""
        out = [f"# {self.title}", ""]
        for kind, *rest in self.blocks:
            if kind == "h":
                out += ["#" * rest[0] + " " + rest[1], ""]
            elif kind == "p":
                out += [rest[0], ""]
            elif kind == "table":
                header, rows = rest
                out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                out += ["| " + " | ".join(row) + " |" for row in rows] + [""]
            elif kind == "code":
                out += ["```", rest[0], "```", ""]
            elif kind == "img":
                out += [f"![{rest[1]}]({rest[0].name})", "", f"*{rest[1]}*", ""]
            elif kind == "link":
                out += [f"[{rest[1]}]({rest[0]})", ""]
        return "\n".join(out)

    def html(self) -> str:
        """The report as one HTML page with its images embedded (base64 PNG)."""
        esc = html.escape
        body = [f"<h1>{esc(self.title)}</h1>"]
        for kind, *rest in self.blocks:
            if kind == "h":
                body.append(f"<h{rest[0]}>{esc(rest[1])}</h{rest[0]}>")
            elif kind == "p":
                body.append(f"<p>{_inline(rest[0])}</p>")
            elif kind == "table":
                header, rows = rest
                body.append("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead>"
                            "<tbody>" + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                                                for row in rows) + "</tbody></table>")
            elif kind == "code":
                body.append(f"<pre>{esc(rest[0])}</pre>")
            elif kind == "img":
                data = base64.b64encode(rest[0].read_bytes()).decode("ascii")
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(rest[1])}">'
                            f"<figcaption>{esc(rest[1])}</figcaption></figure>")
            elif kind == "link":
                body.append(f'<p><a href="{esc(rest[0])}">{esc(rest[1])}</a></p>')
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(self.title)}"
                f"</title><style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _inline(text: str) -> str:
    # `code` and **bold** of the Markdown, in HTML
    import re

    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
