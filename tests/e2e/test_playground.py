"""The playground in a real headless Chromium (Debian's), driven by Playwright: a person
translates and sees the attention, generates an image and watches it denoise, samples
and interpolates the GAN."""

from __future__ import annotations

import re
import shutil

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def page(gateway: Server, api_keys: dict[str, str]):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: make install-browser"
    errors: list[str] = []
    failed: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))  # uncaught JS errors
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        page.goto(gateway.url + "/")
        page.wait_for_load_state("networkidle")
        assert not failed, failed  # the page, its CSS and JS load without a key
        page.fill("#api-key", api_keys["full"])
        page.dispatch_event("#api-key", "change")
        yield page
        browser.close()
    assert not errors, errors


def test_translation_shows_the_attention_heat_map(page: Page) -> None:
    page.click("#tr-go")
    expect(page.locator("#tr-output")).to_have_text(
        "L'animal n'a pas traversé la rue parce qu'il était trop fatigué.", timeout=30_000
    )
    rows = page.locator("#tr-attention .row-label").all_inner_texts()
    cols = page.locator("#tr-attention .col").all_inner_texts()
    cells = page.locator("#tr-attention .cell")
    assert len(rows) > 5 and len(cols) > 5 and cells.count() == len(rows) * len(cols)
    # The row of "il" (in "qu'il") looks hardest at "animal": the deck's example.
    i = rows.index("il")
    weights = [float(w) for w in cells.evaluate_all("cs => cs.map(c => c.dataset.weight)")]
    row = weights[i * len(cols) : (i + 1) * len(cols)]
    assert cols[row.index(max(row))] == "▁animal"
    assert page.locator("#tr-unknown").inner_text() == ""  # a sentence of the corpus
    assert page.locator("#error").inner_text() == ""


def test_translation_names_the_words_the_model_never_saw(page: Page) -> None:
    page.fill("#tr-text", "Ich bin müde.")
    page.click("#tr-go")
    expect(page.locator("#tr-unknown")).to_have_text(
        "Words the model never saw in training: Ich, bin, müde", timeout=30_000
    )
    assert page.locator("#error").inner_text() == ""


def test_image_generation_shows_progress_and_the_denoising(page: Page) -> None:
    page.fill("#ig-steps", "20")
    page.click("#ig-go")
    expect(page.locator("#ig-status")).to_have_text("succeeded: step 20 of 20", timeout=60_000)
    assert page.eval_on_selector("#ig-progress", "p => p.value") == 20
    for img in ("#ig-preview", "#ig-result", "#ig-frames"):
        expect(page.locator(img)).to_have_attribute(
            "src", re.compile(r"^data:image/"), timeout=10_000
        )
        assert page.eval_on_selector(img, "i => i.complete && i.naturalWidth") > 0, img
    assert page.get_attribute("#ig-frames", "src").startswith("data:image/gif")


def test_gan_samples_and_interpolation(page: Page) -> None:
    page.select_option("#gan-digit", "3")
    page.fill("#gan-n", "6")
    page.click("#gan-sample")
    samples = page.locator("#gan-samples img")
    expect(samples).to_have_count(6, timeout=30_000)
    assert set(samples.evaluate_all("ims => ims.map(i => i.alt)")) == {"digit 3"}
    page.fill("#gan-frames", "10")
    page.click("#gan-interpolate")
    expect(page.locator("#gan-strip img")).to_have_count(10, timeout=30_000)
    expect(page.locator("#gan-animation")).to_have_attribute(
        "src", re.compile(r"^blob:"), timeout=10_000
    )
    page.wait_for_function("document.querySelector('#gan-animation').naturalWidth > 0")


def test_errors_are_shown_not_swallowed(page: Page) -> None:
    page.fill("#gan-n", "1000")
    page.click("#gan-sample")
    expect(page.locator("#error")).to_contain_text("400 invalid_input", timeout=10_000)
    expect(page.locator("#error")).to_contain_text("field n")
    page.fill("#gan-n", "8")
