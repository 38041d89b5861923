//! Browser tests: the pages in headless Chromium, driven over WebDriver (`chromedriver`), against
//! the real application from the API tests' harness. Chromium and ChromeDriver come from Debian's
//! packages (`scripts/ensure-chromium.sh`); without them these tests fail, they never skip.
//! Screenshots land in `tests/artifacts/`; `scripts/screenshots.sh` copies the README's into `docs/screenshots/`.

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod browser;
mod call_page;
