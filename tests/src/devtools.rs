//! A page in a real headless Chromium that a test can type into and click: the browser runs
//! with `--remote-debugging-port`, and the test speaks the DevTools protocol to it over a
//! minimal WebSocket client (text frames only, which is all the protocol uses), to evaluate
//! JavaScript in the page and read back its value. Every wait is bounded, and the browser's
//! process group is killed when the page is dropped.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
};

use crate::browser::{Chromium, HEADLESS_FLAGS};

/// Longest wait for one answer from the browser (or for it to start).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A page open in its own headless Chromium.
#[derive(Debug)]
pub struct Page {
    socket: WebSocket,
    session: String,
    next_id: u64,
    child: Child,
    profile: PathBuf,
}

impl Drop for Page {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = sagactl::process::signal_group(pid, sagactl::process::Signal::Kill);
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Chromium {
    /// Starts a browser of its own and opens `url` in it.
    pub async fn open(&self, url: &str) -> Page {
        let profile = std::env::temp_dir().join(format!("saga-chromium-{}", uuid::Uuid::new_v4().simple()));
        let child = Command::new(self.binary())
            .args(HEADLESS_FLAGS)
            .args(["--window-size=1400,1000", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary().display()));
        // Chromium writes the port it chose, and the browser's WebSocket path, in the profile.
        let active_port = profile.join("DevToolsActivePort");
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
        let socket = WebSocket::connect(port, &path).await;
        let mut page = Page { socket, session: String::new(), next_id: 0, child, profile };
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
        self.socket.send(&message.to_string()).await;
        loop {
            let answer: Value = serde_json::from_str(&self.socket.receive().await).expect("DevTools JSON");
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

    /// Polls `condition` (a JavaScript expression) every 100 ms until it is true. While the
    /// page loads, a condition that throws (no such element yet) counts as false.
    pub async fn wait_until(&mut self, what: &str, condition: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let check = format!("(() => {{ try {{ return Boolean({condition}); }} catch (e) {{ return false; }} }})()");
        while self.eval(&check).await != json!(true) {
            let page = self.eval("document.body ? document.body.innerText : ''").await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not true after {timeout:?}; the page shows:\n{page}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The client side of a WebSocket (RFC 6455), text messages only.
#[derive(Debug)]
struct WebSocket {
    stream: BufReader<TcpStream>,
}

impl WebSocket {
    async fn connect(port: u16, path: &str) -> Self {
        let connect = TcpStream::connect(("127.0.0.1", port));
        let stream = tokio::time::timeout(ANSWER_TIMEOUT, connect).await.expect("connect timeout").expect("connect");
        let mut stream = BufReader::new(stream);
        // Any 16-byte key will do: the browser's answer is not checked beyond its status.
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: c2FnYS1jb25zb2xlLXRlc3Q=\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.get_mut().write_all(request.as_bytes()).await.expect("handshake");
        let mut status = String::new();
        bounded(stream.read_line(&mut status)).await.expect("handshake answer");
        assert!(status.starts_with("HTTP/1.1 101"), "the browser refused the WebSocket: {status}");
        loop {
            let mut header = String::new();
            bounded(stream.read_line(&mut header)).await.expect("handshake headers");
            if header == "\r\n" || header.is_empty() {
                break;
            }
        }
        Self { stream }
    }

    /// Sends one text message. Client frames must be masked; a zero mask is a valid one.
    async fn send(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8]; // FIN, text
        match payload.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len @ 126..=0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        self.stream.get_mut().write_all(&frame).await.expect("WebSocket send");
    }

    /// Receives the next text message (fragments joined; other frames skipped).
    async fn receive(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            bounded(self.stream.read_exact(&mut head)).await.expect("WebSocket frame");
            let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
            let len = match head[1] & 0x7f {
                126 => {
                    let mut len = [0u8; 2];
                    bounded(self.stream.read_exact(&mut len)).await.expect("frame length");
                    u64::from(u16::from_be_bytes(len))
                }
                127 => {
                    let mut len = [0u8; 8];
                    bounded(self.stream.read_exact(&mut len)).await.expect("frame length");
                    u64::from_be_bytes(len)
                }
                len => u64::from(len),
            };
            let mut payload = vec![0u8; usize::try_from(len).expect("frame size")];
            bounded(self.stream.read_exact(&mut payload)).await.expect("frame payload");
            assert_ne!(opcode, 0x8, "the browser closed the DevTools connection");
            if opcode == 0x1 || opcode == 0x0 {
                message.extend_from_slice(&payload);
                if fin {
                    return String::from_utf8(message).expect("UTF-8 message");
                }
            }
        }
    }
}

/// Bounds one read from the browser.
async fn bounded<T>(read: impl std::future::Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    tokio::time::timeout(ANSWER_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| panic!("no answer from the browser within {ANSWER_TIMEOUT:?}"))
}
