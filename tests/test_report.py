"""gc.report: the teaching page of a compiled function -- its content, that it needs no
network, that it works without Graphviz, and (in headless Chromium) that its script
runs without errors and links a node to its kernel lines and back."""
import ast
import os
import re
import shutil
import textwrap

import numpy as np
import pytest

import graphc as gc
import graphc.view.svg as svgmod
from graphc.passes.pipeline import DEFAULT_PIPELINE
from graphc.tools.workloads import w3_train_step

CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def step():
    w = w3_train_step(batch=8, sizes=(12, 16, 4))
    fn = w.function("cpu")
    fn(*w.data)
    return fn, w.data


@pytest.fixture(scope="module")
def page(step, tmp_path_factory):
    fn, data = step
    before = [np.array(fn.graph.store[v]) for v in fn.updates]
    path = gc.report(fn, str(tmp_path_factory.mktemp("report") / "report.html"), args=data)
    after = [np.array(fn.graph.store[v]) for v in fn.updates]
    assert all(np.array_equal(a, b) for a, b in zip(before, after)), "the report changed the variables"
    return path, open(path, encoding="utf-8").read()


@pytest.fixture(scope="module")
def page_without_dot(step, tmp_path_factory):
    fn, data = step
    mp = pytest.MonkeyPatch()
    mp.setattr(svgmod, "dot_program", lambda: None)
    try:
        path = gc.report(fn, str(tmp_path_factory.mktemp("nodot") / "report.html"), args=data)
    finally:
        mp.undo()
    return path, open(path, encoding="utf-8").read()


def without_user_code(html):
    """The page less section 6, which shows this very file (its text names what we look for)."""
    return html[:html.index('<h2 id="s6">')] + html[html.index('<h2 id="s7">'):]


def generated_kernels(fn):
    """{kernel defined in fn.source: its def line}."""
    return {d.name: d.lineno for d in ast.parse(fn.source).body if isinstance(d, ast.FunctionDef) and d.name != "step"}


def test_page_is_self_contained(page, page_without_dot):
    for _, html in (page, page_without_dot):
        html = without_user_code(html)
        assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html), "a link to the network"
        assert "<link" not in html and "@import" not in html
        assert not re.search(r"""url\(\s*["']?\s*(?:https?:)?//""", html)
        assert "<script>" in html and 'id="data"' in html


def test_sections_and_one_drawing_per_pass(page, step):
    fn, _ = step
    html = without_user_code(page[1])
    assert 'class="code user"' in page[1]                              # section 6: this file
    for k in range(1, 8):
        assert f'<h2 id="s{k}">' in page[1]
    passes = re.findall(r'<section class="pass" data-pass="([^"]+)">(.*?)</section>', html, re.S)
    assert [name for name, _ in passes] == [p.name for p in DEFAULT_PIPELINE]
    for name, body in passes:
        assert body.count("<svg") == 2, f"pass {name}: a picture before and one after"
    assert "forward nodes they reuse" in html                        # the gradient graph
    assert os.path.basename(__file__) + ":" in html                  # the user's file:line
    for kernel in generated_kernels(fn):
        assert f"<code>{kernel}</code>" in html                      # the kernel table
    assert 'class="nf"' in html                                      # Pygments: function names
    assert "cluster_n" in html                                       # fused groups drawn as clusters
    assert 'id="profile"' in html and 'class="bars"' in html
    assert "graphviz-note" not in html or svgmod.dot_program() is None


def test_profile_and_memory_plan(step):
    from graphc.view.report import collect
    fn, data = step
    d = collect(fn, data)
    rows = d["profile"]["rows"]
    assert rows and all(r["us"] >= 0 for r in rows)
    matmuls = [r for r in rows if r["kernel"] == "matmul_into"]
    assert matmuls and all(r["flops"] > 0 and r["bytes"] > 0 for r in matmuls)
    # the first layer's GEMM: x (8, 12) @ W1 (12, 16): 2*8*16*12 flops
    assert 2 * 8 * 16 * 12 in [r["flops"] for r in matmuls]
    assert d["memory"]["buffers"] and d["memory"]["in_place"]       # SGD updates W in place
    assert d["exact"]


def test_the_profile_replays_a_training_step_on_copies_from_the_same_start(step):
    """The step updates W in place: the profile's calls run on copies of the variables, put back
    to their values before each call, and one set of buffers (as the runtime's)."""
    import numpy as np
    from graphc.view import profile as prof
    from graphc.view.report import _compiled
    fn, data = step
    c, feeds = _compiled(fn, data)
    before = [np.array(fn.graph.store[v]) for v in c.var_nodes]
    args, restore = prof.step_arguments(fn, c, feeds)
    copies = args[len(feeds):len(feeds) + len(c.var_nodes)]
    c.step(*args)
    assert any(not np.array_equal(a.reshape(b.shape), b) for a, b in zip(copies, before))   # it trained
    restore()
    assert all(np.array_equal(a.reshape(b.shape), b) for a, b in zip(copies, before))
    calls, real = [], c.step
    c.step = lambda *a: calls.append(a) or real(*a)      # the whole-step timing's calls
    try:
        prof.profile(fn, c, feeds, repeat=3)
    finally:
        c.step = real
    assert all(np.array_equal(np.array(fn.graph.store[v]), b) for v, b in zip(c.var_nodes, before))
    assert len(calls) == 3 and all(x is y for later in calls[1:] for x, y in zip(calls[0], later))   # reused


def test_page_without_graphviz_says_how_to_install(page_without_dot):
    html = without_user_code(page_without_dot[1])
    assert 'id="graphviz-note"' in html and "apt-get install graphviz" in html
    passes = re.findall(r'<section class="pass" data-pass="[^"]+">(.*?)</section>', html, re.S)
    assert len(passes) == len(DEFAULT_PIPELINE) and all(b.count('<g class="node">') > 1 for b in passes)


def test_cli_report_of_a_script(tmp_path):
    from graphc.tools.cli import main
    script = tmp_path / "tiny.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, graphc as gc
        x = gc.placeholder((4, 3), gc.float32, name="x")
        fn = gc.function([x], gc.sum(gc.tanh(x) * 2.0, axis=1), backend="cpu")
        args = [np.ones((4, 3), np.float32)]
    """))
    out = tmp_path / "tiny.html"
    main(["report", str(script), "-o", str(out)])
    html = out.read_text()
    assert "tiny.py:4" in html and "This function computes no gradients" in html


def have_browser():
    return shutil.which("chromium") is not None and os.path.exists(CHROMEDRIVER)


@pytest.fixture(scope="module")
def driver():
    if not have_browser():
        pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield d
    d.quit()


def errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def classes(driver, css):
    return driver.execute_script("return Array.from(document.querySelectorAll(arguments[0]))"
                                 ".map(e => e.getAttribute('class'))", css)


def test_browser_links_nodes_and_kernel_lines(driver, page, step):
    from selenium.webdriver.common.by import By
    fn, _ = step
    path, _ = page
    driver.get("file://" + os.path.abspath(path))
    assert errors(driver) == []
    assert driver.execute_script("return document.querySelectorAll('svg g[data-node]').length") > 20
    kernels = generated_kernels(fn)
    node, (kernel, line) = next((n, kl) for n, kl in fn.kernel_map.items() if kl[0] in kernels)
    # a node of the optimized graph -> its kernel's lines and its step line
    g = driver.find_element(By.CSS_SELECTOR, f'.graph.final g[data-node="{node.id}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", g)
    g.click()
    assert "sel" in g.get_attribute("class").split()
    assert "k-sel" in classes(driver, f'#source .ln[data-line="{kernels[kernel]}"]')[0]
    assert "step-sel" in classes(driver, f'#source .ln[data-line="{line}"]')[0]
    assert "loc-sel" in " ".join(classes(driver, "pre.user .ln"))   # the user's line
    assert all("sel" in c.split() for c in classes(driver, f'g[data-node="{node.id}"]'))
    # the reverse: another node's step line -> that node in the graphs
    other, (_, other_line) = next((n, kl) for n, kl in fn.kernel_map.items()
                                  if kl[0] in kernels and kl[1] != line)
    el = driver.find_element(By.CSS_SELECTOR, f'#source .ln[data-line="{other_line}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
    el.click()
    assert "sel" in classes(driver, f'.graph.final g[data-node="{other.id}"]')[0].split()
    assert "sel" not in classes(driver, f'.graph.final g[data-node="{node.id}"]')[0].split()
    # the profile table sorts by a column
    driver.find_elements(By.CSS_SELECTOR, "#profile th")[2].click()
    us = driver.execute_script("return Array.from(document.querySelectorAll('#profile tbody tr'))"
                               ".map(r => +r.children[2].dataset.v)")
    assert us == sorted(us)
    assert errors(driver) == []


def test_browser_page_without_graphviz(driver, page_without_dot):
    from selenium.webdriver.common.by import By
    path, _ = page_without_dot
    driver.get("file://" + os.path.abspath(path))
    assert errors(driver) == []
    assert driver.find_element(By.ID, "graphviz-note").is_displayed()
    g = driver.find_elements(By.CSS_SELECTOR, ".graph.final g[data-node]")[-1]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", g)
    g.click()
    assert "sel" in g.get_attribute("class").split()
    assert errors(driver) == []
