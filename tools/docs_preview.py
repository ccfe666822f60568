#!/usr/bin/env python
"""Render an offline preview of the docs site from nbdev's processed notebooks.

Quarto builds the real site (`nbdev-docs`), but it cannot be installed everywhere. This script runs
nbdev's docs processing (what `nbdev-proc-nbs` does: `show_doc` for every exported symbol, links,
front matter) into `_proc/`, then renders each processed notebook with nbconvert into `_preview/`,
inside a page laid out like the site: the sidebar from `nbs/sidebar.yml`, the title block from the
front matter, links rewritten as Quarto rewrites them (`.ipynb` to the page's `output-file`, links to
the site's own address made relative) and headings given pandoc's identifiers, so that the links
nbdev makes (`config.html#settings`) resolve. `_preview/pages.json` lists the pages for the checks
in `tests/test_docs.py`.

Markdown is read by nbconvert's mistune, not pandoc. Their pipe tables differ: mistune, like GFM and
JupyterLab, splits a row at every `|` a backslash does not escape, inside backticks too, and lets a table
interrupt a paragraph; pandoc splits at neither and keeps the backslash of a `\|` inside backticks. The
preview does not paper over this: `tests/test_docs.py` holds every table to what renders in both.

Usage: python tools/docs_preview.py [--out _preview] [--n-workers 2] [--skip-proc]
"""
from __future__ import annotations
import argparse, html, json, os, re, shutil, subprocess, sys, tarfile, tempfile
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
TOOLS = Path(__file__).resolve().parent
MERMAID = '11.10.0'  # the version nbconvert's lab template loads

def process(n_workers:int=2) -> Path:
    "nbdev's docs processing into `_proc/` (as `nbdev-proc-nbs`, without its attempt to install Quarto)."
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
    from nbdev.serve import proc_nbs
    os.chdir(ROOT)
    cfg = get_config()
    if not cfg.get('custom_sidebar'): sys.exit('pyproject.toml: [tool.nbdev] needs custom_sidebar = true, or nbdev overwrites nbs/sidebar.yml')
    refresh_quarto_yml()
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path)  # a no-op with custom_sidebar, as in nbdev-docs
    return proc_nbs(cfg.nbs_path, n_workers=n_workers)

# ---- the sidebar ----

def read_sidebar(path:Path) -> list:
    "`website.sidebar.contents` of a Quarto sidebar.yml: file names, `{href, text}` and `{section, contents}`."
    import yaml
    sb = yaml.safe_load(path.read_text())['website']['sidebar']
    if isinstance(sb, list): sb = sb[0]
    return sb['contents']

def sidebar_files(contents) -> list[str]:
    "Every file the sidebar links to, in order."
    out = []
    for o in contents:
        if isinstance(o, str): out.append(o)
        elif 'section' in o: out += sidebar_files(o.get('contents', []))
        elif 'href' in o: out.append(o['href'])
    return out

def sidebar_html(contents, pages:dict, current:str) -> str:
    "The sidebar as nested lists, the current page marked `active`, as Quarto marks it."
    def item(src, text=None):
        p = pages[src]
        cls = ' class="active"' if src == current else ''
        return f'<li class="sidebar-item"><a{cls} href="{p["output"]}">{html.escape(text or p["title"])}</a></li>'
    def walk(cs):
        out = []
        for o in cs:
            if isinstance(o, str): out.append(item(o))
            elif 'section' in o:
                out.append(f'<li class="sidebar-section"><span class="sidebar-section-title">{html.escape(o["section"])}</span>'
                           f'<ul>{walk(o.get("contents", []))}</ul></li>')
            else: out.append(item(o['href'], o.get('text')))
        return ''.join(out)
    return f'<ul class="sidebar-menu">{walk(contents)}</ul>'

# ---- notebooks: Quarto's reading of cells, for nbconvert ----

_re_dir = re.compile(r'^#\|\s*([\w-]+)(?:\s*:\s*(.*?))?\s*$')

def directives(src:str) -> tuple[dict, str]:
    "Quarto cell options (`#| key: value` lines at the top of a cell) and the source without them."
    lines, opts = src.splitlines(), {}
    while lines and (m := _re_dir.match(lines[0])):
        opts[m[1]] = (m[2] or '').strip('"\'').lower(); lines.pop(0)
    return opts, '\n'.join(lines)

_re_attrs = re.compile(r'(\]\([^)\s]*\))\{[^}\n]*\}')  # pandoc link attributes: [source](url){target="_blank" ...}
_re_div = re.compile(r'^:::+\s*(?:\{([^}]*)\})?\s*$', re.M)  # fenced divs

def quarto_md(text:str) -> str:
    "Markdown as pandoc reads it, for mistune: `{mermaid}` fences, link attributes, fenced divs."
    text = re.sub(r'^(\s*```+)\s*\{(\w+)[^}]*\}', r'\1\2', text, flags=re.M)
    text = _re_attrs.sub(r'\1', text)
    def div(m):
        if m[1] is None: return '\n</div>\n'
        classes = ' '.join(c[1:] for c in m[1].split() if c.startswith('.'))
        return f'\n<div class="{html.escape(classes)}">\n'
    return _re_div.sub(div, text)

def frontmatter(nb) -> dict:
    "The YAML front matter nbdev puts in the first raw cell (title, description, output-file); the cell is removed."
    import yaml
    for i, c in enumerate(nb.cells):
        if c.cell_type == 'raw' and c.source.strip().startswith('---'):
            del nb.cells[i]
            return yaml.safe_load(c.source.strip().strip('-')) or {}
    return {}

_cell_keys = dict(code={'cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count'},
                  markdown={'cell_type', 'id', 'metadata', 'source', 'attachments'},
                  raw={'cell_type', 'id', 'metadata', 'source', 'attachments'})

def quarto_cells(nb):
    "Apply Quarto's cell options (`echo`, `output`, `include`) and markdown reading to `nb`, in place."
    keep = []
    for c in nb.cells:
        if c.cell_type == 'markdown': c.source = quarto_md(c.source)
        elif c.cell_type == 'code':
            opts, c.source = directives(c.source)
            if opts.get('include') == 'false': continue
            tags = set(c.metadata.get('tags', []))
            if opts.get('echo') == 'false' or not c.source.strip(): tags.add('remove_input')
            if opts.get('output') == 'false': tags.add('remove_output')
            c.metadata['tags'] = sorted(tags)
            for o in c.get('outputs', []):
                if o.output_type == 'stream' and opts.get('output') == 'asis':  # printed markdown
                    o.output_type, o.data, o.metadata = 'display_data', {'text/markdown': o.pop('text')}, {}
                    o.pop('name', None)
                if 'data' in o and 'text/markdown' in o.data:
                    o.data['text/markdown'] = quarto_md(o.data['text/markdown'])
        for k in set(c) - _cell_keys[c.cell_type]: del c[k]  # nbdev's own marks (`has_sd`), not nbformat
        c.metadata.pop('execution', None)  # nbdev's timings, which nbformat's schema refuses
        keep.append(c)
    nb.cells = keep
    return nb

# ---- HTML: pandoc's identifiers and Quarto's link resolution ----

def pandoc_id(text:str) -> str:
    "Pandoc's auto identifier: lower case, only letters, digits and `_-.`, spaces to `-`, from the first letter."
    s = re.sub(r'[^\w\s.-]', '', text.strip().lower())
    s = re.sub(r'\s+', '-', s)
    s = re.sub(r'^[^a-z_]+', '', s)  # up to the first letter (or `_`, which nbdev's private names start with)
    return s or 'section'

def fix_html(page_html:str, pages_by_src:dict, site_url:str) -> str:
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(page_html, 'html.parser')
    main = soup.find('main')
    seen = {}
    for a in soup.select('a.anchor-link'): a.decompose()
    for h in main.find_all(re.compile(r'^h[1-6]$')):
        if 'title' in (h.get('class') or []): continue
        i = pandoc_id(h.get_text())
        n = seen.get(i, 0); seen[i] = n + 1
        h['id'] = i if n == 0 else f'{i}-{n}'
        h.append(soup.new_tag('a', attrs={'class': 'anchor-link', 'href': '#' + h['id']})); h.a.string = '#'
    outputs = {p['output'] for p in pages_by_src.values()}
    for a in soup.find_all('a', href=True):
        href = a['href']
        if site_url and href.startswith(site_url):  # nbdev's links to the site itself (`config.html#settings`)
            href = href[len(site_url):].lstrip('/') or 'index.html'
            if href.endswith('.html.md'): href = href[:-3]
        u = urlsplit(href)
        if not u.scheme and u.path:
            path = u.path
            if path.endswith('.ipynb') and Path(path).name in pages_by_src: path = pages_by_src[Path(path).name]['output']
            elif path.endswith(('.qmd', '.md')) and Path(path).with_suffix('.html').name in outputs: path = str(Path(path).with_suffix('.html'))
            href = path + (f'#{u.fragment}' if u.fragment else '')
        if a.get_text(strip=True) == 'source' and u.scheme: a['class'] = a.get('class', []) + ['source-link']
        a['href'] = href
    return str(soup)

# ---- assets ----

def mermaid_js(dest:Path):
    "mermaid.min.js from the npm registry (`npm pack`), kept in `dest` between builds."
    f = dest/'mermaid.min.js'
    if f.exists(): return
    if not shutil.which('npm'): sys.exit('npm is needed once to fetch mermaid.min.js (apt-get install npm)')
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(['npm', 'pack', f'mermaid@{MERMAID}', '--silent'], cwd=d, check=True, stdout=subprocess.DEVNULL)
        with tarfile.open(Path(d)/f'mermaid-{MERMAID}.tgz') as t:
            src = t.extractfile('package/dist/mermaid.min.js').read()
    dest.mkdir(parents=True, exist_ok=True)
    f.write_bytes(src)

# ---- the build ----

def render(proc:Path, out:Path) -> dict:
    "Render every notebook in `proc` into `out`; return the page list written to `out/pages.json`."
    import nbformat, yaml
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    site = (yaml.safe_load((proc/'nbdev.yml').read_text()) or {}).get('website', {})
    site_url = site.get('site-url', '').rstrip('/') + '/'
    nbs = sorted(p for p in proc.rglob('*.ipynb') if not any(x.startswith(('.', '_')) for x in p.relative_to(proc).parts))
    books, pages = {}, {}
    for p in nbs:
        nb = nbformat.read(p, as_version=4)
        fm = frontmatter(nb)
        src = str(p.relative_to(proc))
        pages[src] = dict(source=f'nbs/{src}', output=fm.get('output-file') or p.with_suffix('.html').name,
                          title=str(fm.get('title', p.stem)), description=str(fm.get('description', '') or ''))
        books[src] = nb
    contents = read_sidebar(proc/'sidebar.yml')
    listed = sidebar_files(contents)
    errors = [f'nbs/sidebar.yml lists {f}, which is not a notebook in nbs/' for f in listed if f not in pages]
    errors += [f'nbs/{f} is not in nbs/sidebar.yml: add it where it belongs in the story' for f in pages if f not in listed]
    if errors: sys.exit('\n'.join(errors))

    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_input_tags = {'remove_input'}
    c.TagRemovePreprocessor.remove_all_outputs_tags = {'remove_output'}
    c.HTMLExporter.exclude_input_prompt = c.HTMLExporter.exclude_output_prompt = True
    exp = HTMLExporter(config=c, template_name='docs_template', extra_template_basedirs=[str(TOOLS)])
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    for f in out.glob('*.html'): f.unlink()
    for src, nb in books.items():
        page = pages[src]
        res = dict(site=dict(title=site.get('title', 'docs')), page=dict(page, description_html=markdown2html_mistune(page['description']).strip()[3:-4]),
                   sidebar_html=sidebar_html(contents, pages, src))
        body, _ = exp.from_notebook_node(quarto_cells(nb), resources=res)
        (out/page['output']).write_text(fix_html(body, pages, site_url))
    for f in ('styles.css',):
        if (proc/f).exists(): shutil.copy(proc/f, out/f)
    shutil.copy(TOOLS/'docs_preview.css', out/'assets'/'preview.css')
    listing = dict(sidebar=[pages[f]['output'] for f in listed], pages=list(pages.values()))
    (out/'pages.json').write_text(json.dumps(listing, indent=1))
    return listing

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=str(ROOT/'_preview'), help='output folder')
    ap.add_argument('--n-workers', type=int, default=2, help='processes for nbdev\'s notebook processing')
    ap.add_argument('--skip-proc', action='store_true', help='render `_proc/` as it is')
    a = ap.parse_args()
    out = Path(a.out).resolve()
    if not a.skip_proc:
        try: process(a.n_workers)
        except Exception as e: sys.exit(f'nbdev could not process the notebooks for the docs:\n{e}')
    os.chdir(ROOT)
    (out/'assets').mkdir(parents=True, exist_ok=True)
    mermaid_js(out/'assets')
    listing = render(ROOT/'_proc', out)
    print(f"{len(listing['pages'])} pages in {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/ (open index.html)")

if __name__ == '__main__': main()
