"""End to end in headless Chromium: upload an image on the web page, see results appear.

Uses Debian's /usr/bin/chromium (installed by scripts/install.sh) through Playwright; the
browser is never downloaded. Every request the page makes must stay on the loopback server.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from _service_support import (
    built_index,
    live_server,
    trained_dense_models,
    trained_model,
    write_gallery,
)

from transferkit.service import create_app

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def index_path(tmp_path_factory, lite0, photos_dir, fashion_mini) -> str:
    return built_index(tmp_path_factory, lite0, photos_dir, fashion_mini)


@pytest.fixture(scope="module")
def server(lite0, index_path):
    with live_server(create_app(index_path=index_path, backbone=lite0)) as url:
        yield url


@pytest.fixture(scope="module")
def model_server(tmp_path_factory, lite0, index_path, fashion_mini):
    model_dir = trained_model(tmp_path_factory, fashion_mini)
    app = create_app(model_dir=model_dir, index_path=index_path, backbone=lite0)
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian chromium missing: run scripts/install.sh"
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 1000})
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        context.close()


@pytest.fixture
def page(browser):
    """A fresh tab that refuses anything but loopback, and records page errors."""
    tab = browser.new_page()
    tab.outside_requests = []
    tab.page_errors = []

    def guard(route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            tab.outside_requests.append(route.request.url)
            route.abort()

    tab.route("**/*", guard)
    tab.on("pageerror", lambda exc: tab.page_errors.append(str(exc)))
    yield tab
    assert tab.outside_requests == [], "page reached outside the local server"
    assert tab.page_errors == [], tab.page_errors
    tab.close()


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def wait_for_loaded_thumbnails(page, count: int) -> None:
    page.wait_for_function(
        """n => { const imgs = [...document.querySelectorAll('#hits li.hit img')];
                  return imgs.length === n
                      && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        arg=count)


def test_upload_shows_predictions_and_similar_images(page, server, photos_dir, tmp_path):
    page.goto(server + "/#classify")
    expect(page.locator("#status")).to_contain_text("index: 125 images")
    page.set_input_files("#file-input", str(photos_dir / "chelsea.jpg"))

    rows = page.locator("#predictions tbody tr.prediction")
    rows.first.wait_for()
    assert rows.count() == 5
    assert "cat" in rows.first.locator("td.label").inner_text()
    assert page.locator("#pred-source").inner_text() == "ImageNet"
    assert page.locator("#preview").evaluate("img => img.naturalWidth") == 451

    wait_for_loaded_thumbnails(page, 8)
    first = page.locator("#hits li.hit").first
    assert first.locator(".hit-name").inner_text() == "chelsea.jpg"
    assert first.locator(".hit-distance").inner_text().startswith("distance 0.00")
    assert page.locator("#error").is_hidden()
    page.screenshot(path=str(tmp_path / "service-page.png"), full_page=True)
    print("screenshot:", tmp_path / "service-page.png")


def test_drop_on_the_zone_uploads_the_file(page, server, photos_dir):
    """Exercises the drag-and-drop handler with a real DataTransfer holding a File."""
    page.goto(server + "/#classify")
    expect(page.locator("#status")).to_contain_text("index:")
    data = base64.b64encode((photos_dir / "coffee.jpg").read_bytes()).decode()
    page.evaluate("""b64 => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'coffee.jpg', {type: 'image/jpeg'}));
        const zone = document.getElementById('dropzone');
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true,
                                                       cancelable: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true,
                                                   cancelable: true}));
    }""", data)
    page.locator("#predictions tbody tr.prediction").first.wait_for()
    labels = page.locator("#predictions td.label").all_inner_texts()
    assert "espresso" in labels[:3], labels
    wait_for_loaded_thumbnails(page, 8)
    assert page.locator("#hits .hit-name").first.inner_text() == "coffee.jpg"


def test_bad_file_shows_a_clear_error(page, server, tmp_path):
    # The name is markup on purpose: the page must show it as text, never run it.
    fake = tmp_path / "<img id=injected src=x onerror=alert(1)>holiday.jpg"
    fake.write_text("definitely not a JPEG\n" * 10)
    page.goto(server + "/#classify")
    expect(page.locator("#status")).to_contain_text("index:")
    page.set_input_files("#file-input", str(fake))
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "<img id=injected src=x onerror=alert(1)>holiday.jpg" in error.inner_text()
    assert "not an image" in error.inner_text()
    assert page.locator("#injected").count() == 0
    assert page.locator("#results").is_hidden()


def test_trained_model_predictions_and_report(page, model_server, fashion_mini, tmp_path):
    page.goto(model_server + "/#model")
    expect(page.locator("#status")).to_contain_text("model: 10 classes")
    report = page.locator("#report")
    report.wait_for(state="visible")
    expect(page.locator("#metrics-table")).to_contain_text("accuracy")
    expect(page.locator("#report-metrics")).to_contain_text("By class")
    page.wait_for_function("""() => { const img = document.getElementById('confusion-matrix');
                                      return img.complete && img.naturalWidth > 200; }""")

    garment = sorted((fashion_mini / "Trouser").glob("*.png"))[0]
    page.click("#tab-classify")
    page.set_input_files("#file-input", str(garment))
    rows = page.locator("#predictions tbody tr.prediction")
    rows.first.wait_for()
    assert page.locator("#pred-source").inner_text() == "trained model"
    classes = {p.name for p in fashion_mini.iterdir()}
    assert set(page.locator("#predictions td.label").all_inner_texts()) <= classes
    wait_for_loaded_thumbnails(page, 8)
    assert page.locator("#hits .hit-folder").first.inner_text() == "Trouser"
    page.screenshot(path=str(tmp_path / "service-model-page.png"), full_page=True)
    print("screenshot:", tmp_path / "service-model-page.png")


@pytest.fixture(scope="module")
def text_server(tmp_path_factory, lite0):
    from transferkit.text import build_text_index

    path = tmp_path_factory.mktemp("browser-text") / "quotes.tkindex"
    texts = ["The starship Enterprise entered orbit around the planet.",
             "Fresh bread and butter make a perfect breakfast.",
             "The court dismissed the lawsuit against the company.",
             "<img src=x onerror=alert(1)> is not markup here"]
    build_text_index(texts, "minilm", method="exact", output=path)
    with live_server(create_app(backbone=lite0, text_index_path=path)) as url:
        yield url


def test_text_search_on_the_page(page, text_server, tmp_path):
    page.goto(text_server + "/")
    expect(page.locator("#status")).to_contain_text("text index: 4 texts (minilm)")
    assert page.locator("#text-search").is_visible()
    page.fill("#text-query", "a spaceship circling a world")
    page.press("#text-query", "Enter")
    hits = page.locator("#text-hits li.text-hit")
    expect(hits).to_have_count(4)
    assert hits.first.locator(".text-hit-text").inner_text().startswith("The starship")
    assert "similarity 0." in hits.first.locator(".hit-distance").inner_text()
    assert "minilm" in page.locator("#text-timing").inner_text()
    # Indexed text is shown as text, never parsed as HTML.
    assert page.locator("#text-hits img").count() == 0
    assert page.get_by_text("<img src=x onerror=alert(1)> is not markup here").count() == 1
    page.screenshot(path=str(tmp_path / "text-search.png"), full_page=True)
    print("screenshot:", tmp_path / "text-search.png")

    page.fill("#text-query", "   ")
    page.press("#text-query", "Enter")  # blank: nothing is sent, the results stay
    expect(hits).to_have_count(4)


@pytest.fixture(scope="module")
def audio_server(tmp_path_factory, lite0):
    from transferkit.audio import build_audio_index, generate_espeak_digits, train_audio_classifier

    root = tmp_path_factory.mktemp("browser-audio")
    generate_espeak_digits(root / "digits", voices=("en-us", "en-gb-x-rp"), variants=("",))
    build_audio_index(root / "digits", "logmel", method="exact", output=root / "a.tkindex")
    train_audio_classifier(root / "digits", "logmel", "logreg", test_size=0.0,
                           output=root / "model")
    app = create_app(backbone=lite0, audio_index_path=root / "a.tkindex",
                     audio_model_dir=root / "model")
    with live_server(app) as url:
        yield url, root / "digits"


def test_audio_upload_on_the_page(page, audio_server, tmp_path):
    url, digits = audio_server
    page.goto(url + "/")
    expect(page.locator("#status")).to_contain_text("audio index: 20 clips (logmel)")
    assert page.locator("#audio").is_visible()
    clip = sorted((digits / "5").iterdir())[0]
    page.set_input_files("#audio-input", str(clip))
    expect(page.locator("#audio-hits li.text-hit")).to_have_count(8)
    assert page.locator("#audio-hits .text-hit-text").first.inner_text() == str(clip)
    expect(page.locator("#audio-predictions li")).to_have_count(3)
    assert page.locator("#audio-predictions li").first.inner_text().startswith("5 ")
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio")
    page.set_input_files("#audio-input", str(bad))
    expect(page.locator("#audio-error")).to_contain_text("broken.wav: not readable audio")


SHOTS = Path(__file__).resolve().parents[1] / "out" / "webapp"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)
    print("screenshot:", SHOTS / name)


def wait_for_thumbnails(page, selector: str, at_least: int) -> None:
    page.wait_for_function(
        """([sel, n]) => { const imgs = [...document.querySelectorAll(sel)].slice(0, n);
                           return imgs.length === n
                               && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        arg=[selector, at_least])


def drag(page, box: dict, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A real mouse drag on the element whose bounding ``box`` is given (fractions of it)."""
    page.mouse.move(box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"])
    page.mouse.down()
    for step in range(1, 9):
        f = step / 8
        page.mouse.move(box["x"] + (start[0] + f * (end[0] - start[0])) * box["width"],
                        box["y"] + (start[1] + f * (end[1] - start[1])) * box["height"])
    page.mouse.up()


def drag_segment(page, box: dict, start, end, first: bool, last: bool) -> None:
    """One stroke of a freehand mouse path (button pressed at the first, released at the last)."""
    if first:
        page.mouse.move(box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"])
        page.mouse.down()
    for step in range(1, 7):
        f = step / 6
        page.mouse.move(box["x"] + (start[0] + f * (end[0] - start[0])) * box["width"],
                        box["y"] + (start[1] + f * (end[1] - start[1])) * box["height"])
    if last:
        page.mouse.up()


def points_in_triangle(page, box: dict, corners) -> int:
    """How many /api/map points the page draws inside the triangle ``corners`` (fractions of
    the canvas), counted here with matplotlib's point-in-polygon, not the page's."""
    from matplotlib.path import Path as Polygon

    points = page.evaluate("() => fetch('/api/map').then(r => r.json()).then(d => d.points)")
    pad, width, height = 14, box["width"], box["height"]
    screen = [(pad + (p["x"] + 1) / 2 * (width - 2 * pad),
               pad + (1 - (p["y"] + 1) / 2) * (height - 2 * pad)) for p in points]
    polygon = Polygon([(x * width, y * height) for x, y in corners])
    return int(polygon.contains_points(screen).sum())


def test_walk_collection_map_model_duplicates(page, model_server):
    """The issue's walk: grid -> label filter -> neighbours -> map + box selection -> mistakes."""
    page.goto(model_server + "/")
    expect(page.locator("#tab-collection")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#page-info")).to_contain_text("1–120 of 125 images")
    wait_for_thumbnails(page, "#grid .tile img", 12)
    expect(page.locator("#label-chips .chip[data-label=Trouser]")).to_contain_text("12")

    page.click("#label-chips .chip[data-label=Trouser]")
    expect(page.locator("#page-info")).to_contain_text("1–12 of 12 images")
    assert set(page.locator("#grid .tile-label").all_inner_texts()) == {"Trouser"}
    wait_for_thumbnails(page, "#grid .tile img", 12)
    page.fill("#name-filter", "train_000")
    expect(page.locator("#page-info")).not_to_contain_text("of 12 images")
    names = page.locator("#grid .tile-name").all_inner_texts()
    assert names and all("train_000" in n for n in names)
    page.fill("#name-filter", "")
    expect(page.locator("#page-info")).to_contain_text("of 12 images")

    page.locator("#grid .tile-button").first.click()
    neighbours = page.locator("#neighbour-list .tile")
    expect(neighbours).to_have_count(12)
    wait_for_thumbnails(page, "#neighbour-list .tile img", 12)
    labels = page.locator("#neighbour-list .tile-label").all_inner_texts()
    assert labels.count("Trouser") >= 6, labels  # the model places trousers together
    assert not page.locator("#selected-path").inner_text().startswith("/")
    shot(page, "collection.png")

    # keyboard: move right from the first image and open the second one's neighbours
    page.locator("#grid .tile-button").first.focus()
    page.keyboard.press("ArrowRight")
    second = page.locator("#grid .tile-name").nth(1).inner_text()
    page.keyboard.press("Enter")
    expect(page.locator("#selected-name")).to_have_text(second)

    page.click("#tab-map")
    expect(page.locator("#map-info")).to_contain_text("125 images", timeout=60_000)
    drawn = page.evaluate("""() => { const c = document.getElementById('map-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
    assert drawn > 500, drawn  # coloured points were painted
    box = page.locator("#map-canvas").bounding_box()
    # hover over a painted pixel: the tooltip shows that point's thumbnail
    x, y = page.evaluate("""() => { const c = document.getElementById('map-canvas');
        const r = c.width / c.clientWidth, d = c.getContext('2d')
            .getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 200) {
            const p = (i - 3) / 4;
            return [(p % c.width) / r + 1, Math.floor(p / c.width) / r + 1]; }
        return [0, 0]; }""")
    page.mouse.move(box["x"] + x, box["y"] + y)
    expect(page.locator("#map-tip")).to_be_visible()
    page.wait_for_function("""() => { const i = document.getElementById('map-tip-image');
                                      return i.complete && i.naturalWidth > 0; }""")
    shot(page, "map-hover.png")
    drag(page, box, (0.005, 0.005), (0.995, 0.995))
    expect(page.locator("#map-selection-title")).to_contain_text("125 selected")
    drag(page, box, (0.3, 0.3), (0.7, 0.7))
    title = page.locator("#map-selection-title").inner_text()
    chosen = int(title.split()[0])
    assert 0 < chosen < 125, title
    expect(page.locator("#map-selection .tile")).to_have_count(chosen)
    shot(page, "map.png")
    # lasso: a freehand triangle (the map's lower-left half) lists exactly the points inside
    page.check("#tool-lasso")
    loop = [(0.005, 0.005), (0.995, 0.995), (0.005, 0.995)]
    for n, (start, end) in enumerate(zip(loop, loop[1:])):
        drag_segment(page, box, start, end, first=n == 0, last=n == len(loop) - 2)
    title = page.locator("#map-selection-title").inner_text()
    lassoed = int(title.split()[0])
    expected = points_in_triangle(page, box, loop)
    assert 0 < lassoed < 125 and abs(lassoed - expected) <= 2, (title, expected)
    names = page.locator("#map-selection .tile-name").all_inner_texts()
    assert len(names) == lassoed and all(n.endswith((".png", ".jpg")) for n in names), names
    shot(page, "map-lasso.png")
    page.check("#tool-box")
    # clicking a point opens it in the collection, with its neighbours
    page.locator("#map-selection .tile-button").first.click()
    expect(page.locator("#tab-collection")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#neighbour-list .tile")).to_have_count(12)
    page.click("#tab-map")
    page.mouse.click(box["x"] + x, box["y"] + y)
    expect(page.locator("#tab-collection")).to_have_attribute("aria-selected", "true")

    page.click("#tab-model")
    mistakes = page.locator("#mistakes .tile")
    mistakes.first.wait_for()
    assert "highest loss first" in page.locator("#mistakes-title").inner_text()
    first = mistakes.first.locator(".verdict").inner_text()
    true_class, predicted = (part.strip() for part in first.split("→"))
    assert true_class != predicted
    page.click(f"#confusion-table button.cell[data-true='{true_class}']"
               f"[data-pred='{predicted}']")
    expect(page.locator("#cell-title")).to_contain_text(f"true {true_class}, predicted "
                                                        f"{predicted}")
    assert page.locator("#cell-images .tile").count() >= 1
    wait_for_thumbnails(page, "#mistakes .tile img", 1)
    shot(page, "model.png")

    page.click("#tab-duplicates")
    expect(page.locator("#dup-info")).to_contain_text("group(s) within distance 0.10")
    page.locator("#dup-threshold").fill("0.3")
    expect(page.locator("#dup-info")).to_contain_text("within distance 0.30")
    assert page.locator("#dup-groups .dup-group").count() >= 1
    shot(page, "duplicates.png")


@pytest.fixture(scope="module")
def dense_server(tmp_path_factory, lite0):
    models = trained_dense_models(tmp_path_factory, lite0)
    gallery = tmp_path_factory.mktemp("browser-gallery")
    write_gallery(gallery)
    app = create_app(model_dir=models["segmenter"], localizer_dir=models["localizer"],
                     gallery_dir=gallery, backbone=lite0)
    with live_server(app) as url:
        yield url, Path(models["images"])


def test_no_gallery_no_dense_model_no_tabs(page, server):
    page.goto(server + "/")
    expect(page.locator("#status")).to_contain_text("index:")
    expect(page.locator("#tab-collection")).to_be_visible()
    assert page.locator("#tab-lab").is_hidden() and page.locator("#tab-dense").is_hidden()


def test_dense_overlays_and_the_lab_tab(page, dense_server):
    url, images = dense_server
    page.goto(url + "/")
    # no index and no classifier: the page opens on the dense view
    expect(page.locator("#tab-dense")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#status")).to_contain_text("segmenter: 2 classes")
    picture = sorted(images.iterdir())[0]
    page.set_input_files("#dense-input", str(picture))
    for overlay in ("#segment-overlay", "#localize-overlay"):
        page.wait_for_function("""sel => { const i = document.querySelector(sel);
            return i.offsetParent !== null && i.complete && i.naturalWidth > 0; }""",
                               arg=overlay)
    assert page.locator("#dense-original").evaluate("i => i.naturalWidth") == 64
    assert page.locator("#localize-overlay").evaluate("i => i.naturalWidth") == 320
    expect(page.locator("#segment-fractions li")).to_have_count(2)
    expect(page.locator("#localize-caption")).to_contain_text("box x ")
    assert page.locator("#dense-error").is_hidden()
    shot(page, "dense.png")

    page.click("#tab-lab")
    card = page.locator("#lab-pictures .lab-picture")
    expect(card).to_have_count(1)
    expect(card.locator("h3")).to_have_text("SVD compression of embeddings")
    expect(card.locator("figcaption")).to_have_text("precision@5 against kept dimensions")
    wait_for_thumbnails(page, "#lab-pictures img", 1)
    expect(card.locator(".lab-numbers")).to_contain_text("precision_at_5: 0.910")
    shot(page, "lab.png")
