//! A reader of server-sent events (`text/event-stream`) for tests of the console's stream: each
//! event's name and its data as JSON, with a bound on every wait.

use std::time::Duration;

use serde_json::Value;

/// An open event stream.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

/// What a stream gave on one read.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// An event: its name and its data (JSON).
    Event(String, Value),
    /// The server ended the stream.
    Ended,
}

impl EventStream {
    /// Opens `url`, which must answer 200 with `text/event-stream`.
    pub async fn open(url: &str) -> Self {
        let response = reqwest::Client::new().get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(response.status(), 200, "GET {url}");
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(content_type.starts_with("text/event-stream"), "GET {url}: {content_type}");
        Self { response, buffer: String::new() }
    }

    /// The next event (comments and `retry:` lines skipped), or the stream's end; panics when
    /// neither comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Next {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block.lines().filter_map(|line| line.strip_prefix(name)).map(str::trim_start).collect::<Vec<_>>()
                };
                let (names, data) = (field("event:"), field("data:"));
                if data.is_empty() {
                    continue; // a keep-alive comment, or the retry delay alone
                }
                let name = names.first().copied().unwrap_or("message").to_owned();
                let json = serde_json::from_str(&data.join("\n")).unwrap_or_else(|e| panic!("{name}: {e}: {block}"));
                return Next::Event(name, json);
            }
            match tokio::time::timeout(wait, self.response.chunk()).await {
                Err(_) => panic!("no event within {wait:?}"),
                Ok(Err(err)) => panic!("the event stream broke: {err}"),
                Ok(Ok(None)) => return Next::Ended,
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
            }
        }
    }

    /// The next event named `name` (others skipped), within `wait` of each read.
    pub async fn next_named(&mut self, name: &str, wait: Duration) -> Value {
        loop {
            match self.next(wait).await {
                Next::Event(event, data) if event == name => return data,
                Next::Event(..) => {}
                Next::Ended => panic!("the stream ended before a {name} event"),
            }
        }
    }
}
