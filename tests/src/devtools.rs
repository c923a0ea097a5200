//! A page in a real headless Chromium that a test can type into and click: the browser runs
//! with `--remote-debugging-port`, and the test speaks the DevTools protocol to it over a
//! WebSocket (tokio-tungstenite), to evaluate JavaScript in the page and read back its value.
//! Every wait is bounded, and the browser's process group is killed (and its profile removed)
//! when the page is dropped.

use saga_suite::poll::Poll;
use std::{process::Stdio, time::Duration};

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::{
    net::TcpStream,
    process::{Child, Command},
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

use crate::browser::{Chromium, HEADLESS_FLAGS};

/// Longest wait for one answer from the browser (or for it to start).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A page open in its own headless Chromium.
#[derive(Debug)]
pub struct Page {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    child: Child,
    /// Removed after the browser is killed (fields drop after `Drop::drop`).
    _profile: tempfile::TempDir,
}

impl Drop for Page {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = saga_suite::process::signal_group(pid, saga_suite::process::Signal::Kill);
        }
    }
}

impl Chromium {
    /// Starts a browser of its own and opens `url` in it.
    pub async fn open(&self, url: &str) -> Page {
        let profile = tempfile::Builder::new().prefix("saga-chromium-").tempdir().expect("profile directory");
        let child = Command::new(self.binary())
            .args(HEADLESS_FLAGS)
            .args(["--window-size=1400,1000", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary().display()));
        // Chromium writes the port it chose, and the browser's WebSocket path, in the profile.
        let active_port = profile.path().join("DevToolsActivePort");
        let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
        let (port, path) = loop {
            let text = std::fs::read_to_string(&active_port).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                break (port.parse::<u16>().expect("DevTools port"), path.to_owned());
            }
            assert!(tokio::time::Instant::now() < deadline, "Chromium did not open its DevTools port");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let connect = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}{path}"));
        let (socket, _) = bounded(connect).await.expect("the browser's DevTools WebSocket");
        let mut page = Page { socket, session: String::new(), next_id: 0, child, _profile: profile };
        let target = page.call("Target.createTarget", json!({ "url": url })).await;
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = page.call("Target.attachToTarget", json!({ "targetId": target_id, "flatten": true })).await;
        page.session = attached["sessionId"].as_str().expect("sessionId").to_owned();
        page
    }
}

impl Page {
    /// Sends a DevTools command (to the page once attached) and returns its result.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.socket.send(Message::text(message.to_string())).await.expect("WebSocket send");
        loop {
            let answer: Value = serde_json::from_str(&self.receive().await).expect("DevTools JSON");
            if answer["id"] != id {
                continue; // an event, or the answer to nothing we wait for
            }
            assert!(answer["error"].is_null(), "{method} failed: {}", answer["error"]);
            return answer["result"].clone();
        }
    }

    /// Evaluates `expression` in the page (awaiting it if it is a promise) and returns its value;
    /// a JavaScript exception fails the test.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let params = json!({ "expression": expression, "awaitPromise": true, "returnByValue": true });
        let result = self.call("Runtime.evaluate", params).await;
        assert!(result["exceptionDetails"].is_null(), "{expression} threw: {}", result["exceptionDetails"]);
        result["result"]["value"].clone()
    }

    /// The page's DOM, serialized.
    pub async fn html(&mut self) -> String {
        let html = self.eval("document.documentElement.outerHTML").await;
        format!("<!doctype html>{}", html.as_str().expect("outerHTML is a string"))
    }

    /// A PNG of the whole page (1400 wide, as long as the page) in `path` (its directory is
    /// created).
    pub async fn screenshot(&mut self, path: &std::path::Path) {
        use base64::Engine as _;
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let clip = json!({ "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1 });
        let params = json!({ "format": "png", "captureBeyondViewport": true, "clip": clip });
        let shot = self.call("Page.captureScreenshot", params).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Polls `condition` (a JavaScript expression) every 100 ms until it is true. While the
    /// page loads, a condition that throws (no such element yet) counts as false.
    pub async fn wait_until(&mut self, what: &str, condition: &str, timeout: Duration) {
        let check = format!("(() => {{ try {{ return Boolean({condition}); }} catch (e) {{ return false; }} }})()");
        let held =
            Poll::new(timeout, Duration::from_millis(100)).holds(async || self.eval(&check).await == json!(true)).await;
        if !held {
            let page = self.eval("document.body ? document.body.innerText : ''").await;
            panic!("{what}: not true after {timeout:?}; the page shows:\n{page}");
        }
    }
}

impl Page {
    /// The next text message from the browser (pings are answered by the library; other
    /// frames skipped).
    async fn receive(&mut self) -> String {
        loop {
            match bounded(self.socket.next()).await {
                Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
                Some(Ok(Message::Close(_))) | None => panic!("the browser closed the DevTools connection"),
                Some(Ok(_)) => {}
                Some(Err(err)) => panic!("DevTools WebSocket: {err}"),
            }
        }
    }
}

/// Bounds one wait for the browser.
async fn bounded<T>(wait: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(ANSWER_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| panic!("no answer from the browser within {ANSWER_TIMEOUT:?}"))
}
