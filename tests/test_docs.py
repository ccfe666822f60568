"""The docs: the offline preview of the site (`make docs`, `tools/docs_preview.py`) has a page for every
notebook with the sidebar of `nbs/sidebar.yml`, the signature and docstring of every exported function
and class, links that resolve, every markdown table as a table (the Configuration page's with a row per
setting), and shows in a browser (Debian's Chromium, driven by Selenium)."""
import importlib, inspect, json, os, re, shutil, socket, subprocess, sys, time
from pathlib import Path
from urllib.parse import urlsplit
import pytest, yaml
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT/'_preview'
SITE_URL = 'https://recnb.github.io/recnb/'

@pytest.fixture(scope='module')
def site():
    "Build the preview (nbdev's processing is cached in `_proc/`), then parse every page."
    extra = os.environ.get('RECNB_DOCS_PREVIEW_ARGS', '').split()  # e.g. --skip-proc, to render `_proc/` as it is
    r = subprocess.run([sys.executable, 'tools/docs_preview.py', *extra], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"make docs failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    listing = json.loads((OUT/'pages.json').read_text())
    return listing, {p['output']: BeautifulSoup((OUT/p['output']).read_text(), 'html.parser') for p in listing['pages']}

def notebooks():
    return sorted(str(p.relative_to(ROOT/'nbs')) for p in (ROOT/'nbs').rglob('*.ipynb')
                  if not any(x.startswith(('.', '_')) for x in p.relative_to(ROOT/'nbs').parts))

def test_every_notebook_is_a_page(site):
    listing, pages = site
    assert sorted(p['source'] for p in listing['pages']) == [f'nbs/{n}' for n in notebooks()]
    for p in listing['pages']:
        soup = pages[p['output']]
        assert soup.select_one('h1.title').get_text(strip=True) == p['title'], p
        assert len(soup.select_one('main').get_text(strip=True)) > 200, f"{p['output']} is nearly empty"

def flat(contents):
    for o in contents:
        if isinstance(o, str): yield o
        elif 'section' in o: yield from flat(o['contents'])
        else: yield o['href']

def test_sidebar_follows_sidebar_yml(site):
    listing, pages = site
    out = {p['source'][len('nbs/'):]: p['output'] for p in listing['pages']}
    order = [out[f] for f in flat(yaml.safe_load((ROOT/'nbs/sidebar.yml').read_text())['website']['sidebar']['contents'])]
    assert order[0] == 'index.html' and sorted(order) == sorted(out.values())
    for name, soup in pages.items():
        links = soup.select('#quarto-sidebar a')
        assert [a['href'] for a in links] == order, name
        assert [a['href'] for a in links if 'active' in (a.get('class') or [])] == [name]

def public_api():
    "(module, name, object, page, anchor) of every exported function and class, from `recnb._modidx`."
    from recnb._modidx import d
    for mod, syms in d['syms'].items():
        m = importlib.import_module(mod)
        for full, (url, _) in syms.items():
            name = full[len(mod)+1:]
            if '.' in name or name not in getattr(m, '__all__', []): continue
            o = getattr(m, name)
            if (inspect.isfunction(o) or inspect.isclass(o)) and o.__module__ == mod:
                yield mod, name, o, *url.split('#')

def plain(md:str) -> str:
    "Text of a line of markdown: links to their text, no backticks or emphasis, spaces collapsed."
    md = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', md)
    return ' '.join(re.sub(r'[`*]', '', md).split())

def section(soup, anchor, name):
    """The rendered show_doc output of `name`: under the heading `anchor`, or `anchor-1`, ... when prose
    before it has a heading of the same name (pandoc numbers repeated identifiers, so Quarto does too)."""
    for i in range(5):
        h = soup.find(id=anchor if i == 0 else f'{anchor}-{i}')
        sec = h and h.find_parent(class_='jp-RenderedMarkdown')
        if sec and re.search(rf'\b(def|class)\s+{re.escape(name)}\b', ' '.join(p.get_text() for p in sec.find_all('pre'))): return sec
    return h and h.find_parent(class_='jp-RenderedMarkdown')

def squash(s:str) -> str: return re.sub(r'\s+', '', s)

def test_every_exported_symbol_has_its_signature_and_docstring(site):
    listing, pages = site
    api, errors = list(public_api()), []
    assert len(api) > 50
    for mod, name, o, page, anchor in api:
        sec = section(pages.get(page) or BeautifulSoup('', 'html.parser'), anchor, name)
        if sec is None: errors.append(f'{mod}.{name}: no heading #{anchor} on {page}'); continue
        code = ' '.join(p.get_text() for p in sec.find_all('pre'))
        if not re.search(rf'\b(def|class)\s+{re.escape(name)}\b', code): errors.append(f'{mod}.{name}: no signature on {page}')
        try: params = [p for p in inspect.signature(o).parameters if p != 'self' and not p.startswith('_')]
        except (TypeError, ValueError): params = []
        if re.search(r'\(\s*(__pydantic_self__|\*\*data|\*args, \*\*kwargs)', code): params = []  # show_doc's generic signature of pydantic models and named tuples
        missing = [p for p in params if not re.search(rf'\b{re.escape(p)}\b', code)]
        if missing: errors.append(f'{mod}.{name}: parameters {missing} missing from the signature on {page}')
        doc = o.__doc__ if '__doc__' in vars(o) else None  # its own, not one inherited from a base class
        if doc and squash(plain(inspect.cleandoc(doc).splitlines()[0])) not in squash(sec.get_text()):
            errors.append(f'{mod}.{name}: docstring {doc.splitlines()[0]!r} not on {page}')
    assert not errors, '\n'.join(errors)

def broken_links(out:Path, pages:dict) -> list[str]:
    "Every link, image, script and style sheet in `pages` (name: soup) that does not resolve inside `out`."
    ids = {}
    def ids_of(f):
        if f not in ids: ids[f] = {t['id'] for t in BeautifulSoup((out/f).read_text(), 'html.parser').find_all(id=True)}
        return ids[f]
    errors = []
    for name, soup in pages.items():
        for t in soup.find_all(['a', 'img', 'script', 'link']):
            ref = t.get('href') or t.get('src')
            if not ref: continue
            if ref.startswith(SITE_URL): errors.append(f'{name}: {ref} points at the published site, not at a page here'); continue
            u = urlsplit(ref)
            if u.scheme or ref.startswith('//'): continue
            target = (out/name).parent/u.path if u.path else out/name
            f = target.resolve().relative_to(out.resolve()) if target.resolve().is_relative_to(out.resolve()) else None
            if f is None or not target.is_file(): errors.append(f'{name}: {ref} does not exist'); continue
            if u.fragment and target.suffix == '.html' and u.fragment not in ids_of(str(f)):
                errors.append(f'{name}: {ref}: no #{u.fragment} on {f}')
    return errors

def test_links_resolve(site):
    listing, pages = site
    assert not (errors := broken_links(OUT, pages)), '\n'.join(errors)

def test_the_link_check_can_fail(tmp_path):
    (tmp_path/'a.html').write_text('<h2 id="x">x</h2>')
    soup = BeautifulSoup('<a href="a.html#x">ok</a><a href="a.html#y">1</a><a href="b.html">2</a><a href="02_metrics.ipynb">3</a>'
                         f'<a href="{SITE_URL}config.html">4</a><a href="https://example.org/">external</a>', 'html.parser')
    assert len(broken_links(tmp_path, {'p.html': soup})) == 4

def test_generated_references(site):
    "The configuration and HTTP API pages are generated from `Settings` and the OpenAPI description."
    import tempfile
    from recnb.config import Settings
    from recnb.serving import create_app
    listing, pages = site
    conf = pages['configuration.html'].get_text()
    assert not [f for f in Settings.model_fields if f'RECNB_{f.upper()}' not in conf]
    with tempfile.TemporaryDirectory() as d: spec = create_app(Settings(home=d, monitoring=False)).openapi()
    api = pages['http_api.html'].get_text()
    assert not [f'{m.upper()} {p}' for p, ops in spec['paths'].items() for m in ops if f'{m.upper()} {p}' not in api]

# ---- tables ----

_row = re.compile(r'^\s*\|.*\|\s*$')  # | a | b |
_cells_row = re.compile(r'^\s*\|(?:[^|\n]*\|){2,}\s*$')  # a row of at least two cells
_delim = re.compile(r'^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)+\|?\s*$')  # |---|:--:|
_fence = re.compile(r'^\s*(`{3,}|~{3,})')

def md_tables(md:str) -> list[tuple[str, str]]:
    """The header line of every pipe table in markdown `md` (a `| a | b |` row above a `|---|` row), outside fenced
    code, with the line above it (blank when there is none)."""
    out, fence, lines = [], None, ['', '']
    for line in md.splitlines():
        if m := _fence.match(line):
            if fence is None: fence = m[1]
            elif m[1][0] == fence[0] and len(m[1]) >= len(fence): fence = None
            lines = ['', '']; continue
        if fence is None and _delim.match(line) and _row.match(lines[-1]): out.append((lines[-1], lines[-2]))
        lines = [lines[-1], line if fence is None else '']
    return out

def header_cells(line:str) -> tuple:
    "The text of the cells of a pipe table's header line, as they render."
    import html
    return tuple(plain(html.unescape(c.replace('\\|', '|'))) for c in re.split(r'(?<!\\)\|', line.strip())[1:-1])

def rendered_header(table) -> tuple:
    return tuple(' '.join(c.get_text().split()) for c in table.find('tr').find_all(['th', 'td']))

def shown_markdown(nb:dict):
    "The markdown of a processed notebook that its page shows: markdown cells, and the markdown code cells output."
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': yield src
        if c['cell_type'] != 'code': continue
        opts = dict(re.match(r'#\|\s*([\w-]+)\s*:?\s*(.*)', l).groups() for l in src.splitlines() if re.match(r'#\|\s*[\w-]', l))
        opts = {k: v.strip().strip('"\'') for k, v in opts.items()}
        if 'false' in (opts.get('include'), opts.get('output')): continue
        for o in c.get('outputs', []):
            if 'text/markdown' in o.get('data', {}): yield ''.join(o['data']['text/markdown'])
            elif o.get('output_type') == 'stream' and opts.get('output') == 'asis': yield ''.join(o['text'])

def table_as_text(soup) -> str|None:
    "The first paragraph or list item of `soup` that shows a pipe table as text: a `|---|` row, or two `| x | y |` rows."
    for t in soup.find_all(['p', 'li']):
        lines = t.get_text().splitlines()
        if any(_delim.match(l) for l in lines) or sum(bool(_cells_row.match(l)) for l in lines) >= 2: return t.get_text().strip()

def table_errors(name:str, soup, markdown:list[str]) -> list[str]:
    "What is wrong with the tables of page `name` (its soup) made from `markdown`, the texts its notebook shows."
    from collections import Counter
    main, errors = soup.find('main') or soup, []
    if text := table_as_text(main): errors.append(f'{name}: a table shows as text: {text[:300]!r}')
    have = Counter(rendered_header(t) for t in main.find_all('table'))
    for line, above in (t for md in markdown for t in md_tables(md)):
        if have[h := header_cells(line)] > 0: have[h] -= 1
        else: errors.append(f'{name}: the table {line.strip()[:120]!r} is not an HTML table')
        if above.strip() and not re.match(r'\s*(#|:::)', above):  # mistune lets a table interrupt a paragraph, pandoc does not
            errors.append(f'{name}: the table {line.strip()[:120]!r} follows {above.strip()[:80]!r} without a blank line, so pandoc '
                          '(Quarto) reads it as part of that paragraph')
    if shown := [c.get_text() for c in main.select('table code') if '\\|' in c.get_text()]:
        errors.append(f'{name}: {shown[0]!r} in a table shows the backslash of its \\| (pandoc, like mistune, keeps escapes in backticks)')
    return errors

def test_markdown_tables_render(site):
    "Every pipe table of every page, in markdown cells or generated by a cell, renders as an HTML table."
    listing, pages = site
    errors, n = [], 0
    for p in listing['pages']:
        md = list(shown_markdown(json.loads((ROOT/'_proc'/p['source'][len('nbs/'):]).read_text())))
        n += sum(len(md_tables(m)) for m in md)
        errors += table_errors(p['output'], pages[p['output']], md)
    assert n > 10, f'only {n} tables found in the notebooks'
    assert not errors, '\n'.join(errors)

def test_the_table_check_can_fail():
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    md = '| name | type |\n|---|---|\n| `a` | `str | None` |\n\n```\n| not | a table |\n|---|---|\n```\n'
    assert md_tables(md) == [('| name | type |', '')]
    soup = BeautifulSoup(markdown2html_mistune(md), 'html.parser')  # the preview's reader splits at the pipe inside backticks
    errors = table_errors('p.html', soup, [md])
    assert len(errors) == 2 and 'shows as text' in errors[0] and 'is not an HTML table' in errors[1], errors
    ok = md.replace('`str | None`', '<code>str &#124; None</code>')
    assert table_errors('p.html', BeautifulSoup(markdown2html_mistune(ok), 'html.parser'), [ok]) == []
    escaped = md.replace('`str | None`', '`str \\| None`')
    assert len(table_errors('p.html', BeautifulSoup(markdown2html_mistune(escaped), 'html.parser'), [escaped])) == 1
    assert table_as_text(BeautifulSoup('<p>a | b and c | d</p><p>| one cell |</p>', 'html.parser')) is None
    glued = 'Text.\n' + ok  # a table to mistune, a paragraph to pandoc
    assert ['without a blank line' in e for e in table_errors('p.html', BeautifulSoup(markdown2html_mistune(glued), 'html.parser'), [glued])] == [True]

def test_configuration_table_has_a_row_per_setting(site):
    "The Configuration page's table has one row per `Settings` field, in order, and its types read as written."
    import typing
    from recnb.config import Settings
    listing, pages = site
    tables = [t for t in pages['configuration.html'].select('main table') if rendered_header(t) == ('variable', 'type', 'default', 'meaning')]
    assert len(tables) == 1, f'{len(tables)} tables of settings on configuration.html'
    rows = {r[0]: r for r in ([' '.join(td.get_text().split()) for td in tr.find_all('td')] for tr in tables[0].select('tbody tr'))}
    assert list(rows) == [f'RECNB_{f.upper()}' for f in Settings.model_fields]
    assert {len(r) for r in rows.values()} == {4}
    assert rows['RECNB_QDRANT_URL'][1:3] == ['str | None', 'unset']
    optional = [f'RECNB_{f.upper()}' for f, fi in Settings.model_fields.items() if type(None) in typing.get_args(fi.annotation)]
    assert len(optional) > 3 and not [f for f in optional if not rows[f][1].endswith(' | None')]
    assert not [r for r in rows.values() if re.search(r'\\|&#', r[1] + r[2])], 'escapes show in the table'

# ---- the browser ----

def chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    exe, drv = shutil.which('chromium'), shutil.which('chromedriver')
    if not (exe and drv): pytest.fail('Chromium is missing: `make browser` installs Debian\'s chromium and chromium-driver')
    o = webdriver.ChromeOptions()
    o.binary_location = exe
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
              '--disable-background-networking', '--disable-component-update', '--disable-sync', '--window-size=1280,900'):
        o.add_argument(a)
    return webdriver.Chrome(service=Service(drv), options=o)

@pytest.fixture(scope='module')
def served(site):
    "The preview over HTTP on a free loopback port, as a browser would get the site."
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, '-m', 'http.server', str(port), '--bind', '127.0.0.1', '--directory', str(OUT)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try: socket.create_connection(('127.0.0.1', port), 0.2).close(); break
        except OSError: time.sleep(0.1)
    yield f'http://127.0.0.1:{port}'
    p.terminate(); p.wait(10)

def test_browser_index_and_api_page(served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    b = chrome()
    try:
        b.get(served + '/index.html')
        WebDriverWait(b, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, '.jp-Mermaid svg'))  # the loop, drawn
        assert b.find_element(By.CSS_SELECTOR, 'h1.title').text == 'recnb'
        side = b.find_element(By.ID, 'quarto-sidebar')
        assert side.is_displayed() and 'Configuration' in side.text and 'HTTP API' in side.text
        assert 'make serve' in b.find_element(By.TAG_NAME, 'main').text
        labels = b.find_element(By.CSS_SELECTOR, '.jp-Mermaid svg').text
        assert all(w in labels for w in ('Data', 'Train', 'Evaluate', 'Register', 'Serve', 'Monitor', 'Retrain')), labels
        b.save_screenshot(str(OUT/'screenshot.png'))
        side.find_element(By.LINK_TEXT, 'Model registry').click()
        WebDriverWait(b, 10).until(lambda b: b.current_url.endswith('/registry.html'))
        h = b.find_element(By.ID, 'registry')
        assert h.is_displayed() and h.text.startswith('Registry')
        from recnb.registry import Registry
        assert squash(plain(inspect.getdoc(Registry).splitlines()[0])) in squash(b.find_element(By.TAG_NAME, 'main').text)
        b.save_screenshot(str(OUT/'screenshot-registry.png'))
    finally: b.quit()
