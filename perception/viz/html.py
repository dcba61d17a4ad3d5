"""A single self-contained HTML page that shows a run's pictures and tables, opened straight
from the file system (relative links, no server, no network, no external scripts)."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_text_atomic

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; background: #fafafa; color: #222; }}
h1 {{ font-size: 1.5em; }}
h2 {{ font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ccc; }}
pre {{ background: #fff; border: 1px solid #ddd; padding: 0.6em; overflow-x: auto;
       font-size: 0.85em; }}
figure {{ display: inline-block; margin: 0.4em; vertical-align: top; }}
figure img {{ max-width: 100%; border: 1px solid #ccc; }}
figcaption {{ font-size: 0.8em; color: #555; }}
</style>
</head>
<body data-images-loaded="pending">
<h1>{title}</h1>
{body}
<script>
// Report on the page itself whether every picture loaded (read by the page's test).
window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }});
  document.body.setAttribute("data-images-loaded", ok.length + "/" + images.length);
}});
</script>
</body>
</html>
"""


@dataclass
class Section:
    """One heading with text (shown preformatted) and pictures (paths of files)."""

    title: str
    text: str = ""
    images: list[Path] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)


def write_index(out_dir: str | Path, title: str, sections: list[Section]) -> Path:
    """Write ``out_dir/index.html``; pictures are linked relative to ``out_dir``.

    Raises:
        FileNotFoundError: a picture does not exist (a page with a broken image is never
            written).
    """
    out_dir = Path(out_dir)
    parts = []
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<pre>{html.escape(section.text)}</pre>")
        for i, image in enumerate(section.images):
            image = Path(image)
            if not image.is_file():
                raise FileNotFoundError(f"index.html: picture {image} does not exist")
            rel = Path(os.path.relpath(image.resolve(), out_dir.resolve())).as_posix()
            caption = section.captions[i] if i < len(section.captions) else image.name
            parts.append(f'<figure><a href="{html.escape(rel)}"><img src="{html.escape(rel)}" '
                         f'alt="{html.escape(caption)}"></a>'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    page = _PAGE.format(title=html.escape(title), body="\n".join(parts))
    path = out_dir / "index.html"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, page)
    return path
