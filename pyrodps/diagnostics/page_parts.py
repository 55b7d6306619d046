"""HTML building blocks of ``report.html``: the inline style, tables whose cells carry their exact
value (``data-key``, and the JSON value in ``data-value``), and figures as base64 PNG ``data:`` URIs."""

from __future__ import annotations

import base64
import html
import io
import json
import math

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { background: #fde8e8; }
.verdict { padding: .7em 1em; border-radius: 4px; font-weight: 600; }
.pass { background: #e6f4e6; border: 1px solid #7c7; } .fail { background: #fde8e8; border: 1px solid #d77; }
.note { background: #f4f4f8; border-left: 4px solid #99a; padding: .5em 1em; }
figure { margin: 1em 0; } figcaption { font-size: .85em; color: #555; } img { max-width: 100%; }
"""


def format_value(value: object) -> str:
    """How the page prints a value: floats to 6 significant digits, ``-`` for ``None``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    """Nested dicts as dotted keys (``machine.python``); lists stay values."""
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (closes the figure)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def figure_html(fig: Figure, caption: str, dpi: int = 80) -> str:
    """``<figure>`` with the figure as a base64 PNG ``data:`` URI (closes the figure)."""
    return png_html(figure_png(fig, dpi), caption)


def png_html(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = html.escape(caption)
    return f'<figure><img alt="{cap}" src="data:image/png;base64,{data}"><figcaption>{cap}</figcaption></figure>'


def table(header: list[str], rows: list[list[str]], row_classes: list[str] | None = None,
          table_id: str | None = None) -> str:
    """A table of pre-rendered cells (``<th>``/``<td>`` strings), one list per row."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, cells in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def cell(value: object, key: str | None = None) -> str:
    """A ``<td>``; with ``key`` it carries ``data-key`` and the exact JSON value in ``data-value``."""
    cls = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    attrs = ""
    if key is not None:
        attrs = f' data-key="{html.escape(key)}" data-value="{html.escape(json.dumps(value))}"'
    return f"<td{cls}{attrs}>{html.escape(format_value(value))}</td>"


def head_cell(text: str) -> str:
    return f"<th>{html.escape(text)}</th>"


def key_value_table(d: dict, table_id: str) -> str:
    rows = [[head_cell(k), cell(v, k)] for k, v in flatten(d).items()]
    return table(["name", "value"], rows, table_id=table_id)
