//! A headless Chromium for one test: `chromedriver` on a free loopback port, a fresh profile,
//! one WebDriver session. The session and the processes end when the test does, pass or fail.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One browser at a time: the machine has two cores, and each test also runs the app.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn installed(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "{} is missing: the browser tests need headless Chromium and ChromeDriver. Install them with \
         scripts/ensure-chromium.sh (Debian packages chromium and chromium-driver), or point {var} at the binary.",
        path.display()
    );
    path
}

/// The chromedriver process, in its own process group so that ending it also ends the Chromium
/// it started if the session could not be closed.
struct Driver {
    child: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

async fn start(profile: &Path) -> (Driver, Client) {
    use std::os::unix::process::CommandExt;
    let chromium = installed("FIRSTCALL_CHROMIUM", CHROMIUM);
    let chromedriver = installed("FIRSTCALL_CHROMEDRIVER", CHROMEDRIVER);
    let port = free_port();
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", profile.join("chromedriver.log").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
    let driver = Driver { child };
    let url = format!("http://127.0.0.1:{port}");
    // chromedriver takes a moment to listen; this waits for it, it asserts nothing about speed.
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--window-size=1280,900",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.join("chromium").display()));
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": chromium, "args": args},
    });
    let serde_json::Value::Object(caps) = caps else { unreachable!() };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&url)
        .await
        .unwrap_or_else(|e| {
            panic!("chromedriver did not open a Chromium session: {e} (log: {})", profile.join("chromedriver.log").display())
        });
    (driver, client)
}

/// Runs `scenario` with a fresh browser and ends the browser afterwards, also when the scenario
/// fails (its panic is then passed on).
pub async fn with_browser<F, Fut>(scenario: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures_util::FutureExt;
    let _turn = ONE_AT_A_TIME.lock().await;
    let profile = tempfile::tempdir().expect("a profile directory");
    let (driver, client) = start(profile.path()).await;
    let outcome = std::panic::AssertUnwindSafe(scenario(client.clone())).catch_unwind().await;
    let _ = client.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The text of the element with `id`, waiting for it to appear (after a navigation).
pub async fn text_of(client: &Client, id: &str) -> String {
    match client.wait().at_most(Duration::from_secs(20)).for_element(Locator::Id(id)).await {
        Ok(el) => el.text().await.expect("element text"),
        Err(e) => {
            let at = client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            let page = client.source().await.unwrap_or_default();
            panic!("no #{id} on {at}: {e}\n{page}")
        }
    }
}

/// Sizes the window so that the page itself (the viewport) is `width` × `height` CSS pixels:
/// headless Chromium still counts a window frame around it.
pub async fn set_viewport(client: &Client, width: u32, height: u32) {
    client.set_window_size(width, height).await.expect("window size");
    let inner = client.execute("return [window.innerWidth, window.innerHeight]", vec![]).await.expect("viewport size");
    let (w, h) = (inner[0].as_u64().unwrap_or(0) as u32, inner[1].as_u64().unwrap_or(0) as u32);
    client.set_window_size(2 * width - w.min(width), 2 * height - h.min(height)).await.expect("window size");
}

/// Where screenshots go: `tests/artifacts/` (ignored by git).
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
    std::fs::create_dir_all(&dir).expect("tests/artifacts");
    dir
}

/// Width and height of a PNG, from its header; panics when `bytes` is not a PNG.
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "not a PNG ({} bytes)",
        bytes.len()
    );
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}
