"""The web page, end to end in headless Chromium (Debian's chromium, driven by Playwright).

Types a positive review, then a negative one, as a user would (key by key, so the page's
debounce is exercised), and checks the label, the bar and the highlighted words; with an API
key, the page asks for it. Saves screenshots to ``artifacts/browser/`` (or
``$REVIEWSENSE_ARTIFACTS/browser``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

from reviewsense.models import nblinear
from reviewsense.models.calibration import fit_length_calibration

CHROMIUM = os.environ.get("REVIEWSENSE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("REVIEWSENSE_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))
WORDS = (["great", "wonderful", "loved", "superb", "brilliant"], ["awful", "boring", "hated", "dull", "terrible"],
         ["the", "film", "plot", "was", "acting", "and", "a", "story", "it"])
KEY = "page-key-8f3a"

if os.environ.get("REVIEWSENSE_REQUIRE_BROWSER"):  # CI: a missing browser is a failure, not a skip
    from playwright import sync_api

    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}"
else:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def model(sentiment_corpus):
    train, validation = (sentiment_corpus(n, seed, WORDS, filler_count=8, noise=0) for n, seed in ((400, 0), (200, 1)))
    model, held_out = nblinear.fit(train, validation, nblinear.NBLinearParams(hash_bits=14))
    model.length_calibration = fit_length_calibration(held_out, validation, train.labels)  # as `train` does
    return model


@contextlib.contextmanager
def _serving(model, api_key=None):
    from reviewsense.serving.app import create_app
    from reviewsense.serving.background import in_thread

    # as `reviewsense serve` runs it on 127.0.0.1: a loopback Host only, no other page's Origin
    with in_thread(create_app(model, api_key=api_key, loopback=True), timeout=30) as url:
        yield url


@pytest.fixture(scope="module")
def server(model):
    with _serving(model) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        yield browser
        browser.close()


def _new_page(browser, url):
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(url)
    return page


@pytest.fixture(scope="module")
def page(browser, server):
    page = _new_page(browser, server)
    yield page
    page.context.close()


def _type_and_wait(page, text: str, label: str) -> None:
    box = page.locator("#review")
    box.fill("")
    box.press_sequentially(text, delay=15)
    sync_api.expect(page.locator("#label")).to_have_text(label)


def _screenshot(page, name: str) -> Path:
    out = ARTIFACTS / "browser" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    return out


def test_positive_review_gets_a_positive_label_and_green_words(page):
    _type_and_wait(page, "A wonderful film, I loved the acting and the story was great.", "positive")
    assert float(page.locator("#probability").inner_text().split("=")[1]) > 0.5
    width = page.locator("#bar-fill").evaluate("e => parseFloat(e.style.width)")
    assert width > 50
    green = page.locator("#highlighted span.pos")
    assert "loved" in [w.lower() for w in green.all_inner_texts()]
    # highlighting keeps the review's own text, character for character
    assert page.locator("#highlighted").inner_text() == page.locator("#review").input_value()
    assert page.locator("#up li").count() > 0
    shot = _screenshot(page, "positive.png")
    assert shot.stat().st_size > 5_000


def test_negative_review_gets_the_opposite(page):
    _type_and_wait(page, "Boring and dull. I hated it, the plot was awful.", "negative")
    assert float(page.locator("#probability").inner_text().split("=")[1]) < 0.5
    red = [w.lower() for w in page.locator("#highlighted span.neg").all_inner_texts()]
    assert "hated" in red and "boring" in red
    assert page.locator("#label").get_attribute("data-label") == "0"
    _screenshot(page, "negative.png")


def test_review_text_is_never_interpreted_as_html(page):
    _type_and_wait(page, "<img src=x onerror=alert(1)> great <b>film</b>", "positive")
    assert page.locator("#highlighted img").count() == 0
    assert "<img src=x" in page.locator("#highlighted").inner_text()


def test_one_word_gets_a_sensible_bar_and_shade(page):
    """One word: a word with no sentiment stays pale with the bar near the middle (the
    length calibration); a sentiment word is marked and moves the bar."""
    box = page.locator("#review")
    box.fill("")
    box.press_sequentially("plot", delay=15)
    sync_api.expect(page.locator("#highlighted")).to_have_text("plot")
    sync_api.expect(page.locator("#probability")).not_to_have_text("")
    width = page.locator("#bar-fill").evaluate("e => parseFloat(e.style.width)")
    assert 30 < width < 70
    assert page.locator("#highlighted span.pos, #highlighted span.neg").count() == 0
    box.fill("")
    box.press_sequentially("loved", delay=15)
    sync_api.expect(page.locator("#highlighted span.pos")).to_have_text(["loved"])
    sync_api.expect(page.locator("#label")).to_have_text("positive")
    assert page.locator("#bar-fill").evaluate("e => parseFloat(e.style.width)") > 60
    _screenshot(page, "one-word.png")


@pytest.mark.parametrize("text", [
    "🎬🎬 A great film, 👍🏽 I loved it! 👩\u200d👩\u200d👧 great 𝔊 acting",
    "İstanbul was great. İİ the plot, DİYARBAKIR: awful; Straße ẞ e\u0301 great",
], ids=["emoji", "dotted-capital-I"])
def test_highlighting_slices_any_unicode_text_at_the_apis_spans(page, server, text):
    """The API's spans count code points; the page's highlighted words are exactly the text's
    code points at those spans (emoji are two UTF-16 units in JS; İ lowercases to two code
    points), and the highlighted text is the review itself."""
    import httpx

    tokens = httpx.post(f"{server}v1/predict", json={"texts": [text], "explain": True, "top_k": 8},
                        timeout=10).json()["predictions"][0]["explanation"]["tokens"]
    expected = [text[t["start"]:t["end"]] for t in tokens]
    assert "great" in expected and all(word.lower() == t["token"] for word, t in zip(expected, tokens, strict=True))
    if "İ" in text:
        assert "İstanbul" in expected and "DİYARBAKIR" in expected
    box = page.locator("#review")
    box.fill(text)  # an input event: the page scores it after its debounce
    sync_api.expect(page.locator("#highlighted span.w")).to_have_text(expected)
    assert page.locator("#highlighted").inner_text() == text
    assert page.locator("#highlighted span.pos").first.inner_text() in {"great", "loved"}


def test_clearing_the_box_resets_the_page(page):
    page.locator("#review").fill("")
    page.locator("#review").dispatch_event("input")
    sync_api.expect(page.locator("#label")).to_have_text("–")
    assert page.locator("#highlighted span").count() == 0


def test_without_a_key_the_page_shows_no_key_field(page):
    """A server without an API key: the page looks as it always did (no key field)."""
    sync_api.expect(page.locator("#model")).to_contain_text("model: nblinear")
    sync_api.expect(page.get_by_label("API key")).to_be_hidden()
    assert page.locator("#key-form").is_hidden()


def test_with_an_api_key_the_page_asks_for_it_and_sends_it(browser, model):
    """A server with an API key: the page (served without the key) shows a password field
    "API key"; a review typed before the key is not sent; a wrong key is refused with a message
    and can be entered again; the right key scores reviews (sent as 'Authorization: Bearer',
    kept in sessionStorage, never localStorage, so a reload in the tab keeps it); a key the
    server stops accepting is reported on the next review."""
    with _serving(model, api_key=KEY) as url:
        page = _new_page(browser, url)
        try:
            key = page.get_by_label("API key")
            sync_api.expect(key).to_be_visible()
            assert key.get_attribute("type") == "password"
            sync_api.expect(page.locator("#key-hint")).to_contain_text("needs an API key")
            sync_api.expect(key).to_be_focused()
            sent = []
            page.on("request", lambda r: sent.append((r.url, r.headers.get("authorization")))
                    if "/v1/" in r.url else None)

            page.locator("#review").press_sequentially("great", delay=15)
            sync_api.expect(page.locator("#status")).to_have_text("Enter the API key above to score reviews.")
            assert not any(u.endswith("/v1/predict") for u, _ in sent)

            key.fill("wrong-key")
            key.press("Enter")
            sync_api.expect(page.locator("#key-note")).to_contain_text("Wrong API key")
            sync_api.expect(key).to_have_attribute("aria-invalid", "true")
            assert page.evaluate("sessionStorage.getItem('reviewsense.apiKey')") is None
            _screenshot(page, "api-key-wrong.png")

            key.fill(KEY)
            page.get_by_role("button", name="Use key").click()
            sync_api.expect(page.locator("#key-note")).to_have_text("Key accepted.")
            sync_api.expect(key).to_have_attribute("aria-invalid", "false")
            sync_api.expect(page.locator("#model")).to_contain_text("model: nblinear")
            sync_api.expect(page.locator("#highlighted")).to_have_text("great")  # the review typed before
            sync_api.expect(page.locator("#label")).to_have_text("positive")
            review = "A wonderful film, I loved the acting and the story was great."
            _type_and_wait(page, review, "positive")
            sync_api.expect(page.locator("#highlighted")).to_have_text(review)  # this review's answer
            assert float(page.locator("#probability").inner_text().split("=")[1]) > 0.5
            assert page.locator("#highlighted span.pos").count() > 0
            predicts = [auth for u, auth in sent if u.endswith("/v1/predict")]
            assert predicts and predicts[-1] == f"Bearer {KEY}"
            assert page.evaluate("sessionStorage.getItem('reviewsense.apiKey')") == KEY
            assert page.evaluate("localStorage.length") == 0
            _screenshot(page, "api-key-accepted.png")

            page.reload()  # the same tab remembers the key
            sync_api.expect(page.locator("#key-note")).to_have_text("Key accepted.")
            sync_api.expect(page.get_by_label("API key")).to_have_value(KEY)
            _type_and_wait(page, "Boring and dull. I hated it.", "negative")
            sync_api.expect(page.locator("#highlighted")).to_have_text("Boring and dull. I hated it.")

            # the server stops accepting the key (a new one, say): the page says so, and a
            # key entered again is used at once
            page.route("**/v1/predict", lambda route: route.fulfill(
                status=401, content_type="application/json", headers={"www-authenticate": "Bearer"},
                body='{"detail": "missing or wrong API key"}'))
            page.locator("#review").fill("A great film.")
            sync_api.expect(page.locator("#key-note")).to_contain_text("Wrong API key")
            sync_api.expect(page.locator("#status")).to_have_text("Not scored: the API key was not accepted.")
            assert page.evaluate("sessionStorage.getItem('reviewsense.apiKey')") is None
            page.unroute("**/v1/predict")
            key = page.get_by_label("API key")
            key.fill(KEY)
            key.press("Enter")
            sync_api.expect(page.locator("#highlighted")).to_have_text("A great film.")
            sync_api.expect(page.locator("#label")).to_have_text("positive")
            sync_api.expect(page.locator("#status")).to_have_text("")
            sync_api.expect(page.locator("#review")).to_be_focused()
        finally:
            page.context.close()
