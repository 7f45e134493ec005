"""Take the README's screenshot of the web page (docs/web-page.png) with a model of yours.

    python docs/screenshot.py --model runs/imdb/model            # writes docs/web-page.png

Serves the model on a free loopback port, opens the page in headless Chromium (Debian's
``chromium``, driven by Playwright: ``pip install -c constraints.txt -e ".[test]"``), types the
review key by key as a user would, waits for the explanation and saves the page. Re-run it
whenever the default model changes, so the picture shows what a user gets.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

REVIEW = ("An absolute delight: the acting is superb and the story kept me hooked, although the ending felt a "
          "little rushed and the villain was dull.")


@contextlib.contextmanager
def serving(model_dir: str) -> Iterator[str]:
    from reviewsense.export import load_model
    from reviewsense.serving.app import create_app
    from reviewsense.serving.background import in_thread

    with in_thread(create_app(load_model(model_dir), loopback=True)) as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, metavar="DIR")
    parser.add_argument("--output", default=str(Path(__file__).with_name("web-page.png")), metavar="PNG")
    parser.add_argument("--text", default=REVIEW, help="the review typed into the page")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with serving(args.model) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 820})
        page.goto(url)
        page.locator("#review").press_sequentially(args.text, delay=5)
        page.wait_for_function("document.querySelectorAll('#up li').length > 0", timeout=30_000)
        time.sleep(0.5)  # the bar's transition
        page.screenshot(path=args.output, full_page=True)
        browser.close()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
