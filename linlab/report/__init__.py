"""Reports: plots (matplotlib, Agg) and a Markdown + self-contained HTML document.
Nothing here trains; it reads a study's results or a sweep table."""
