//! A thin HTTP client for tests: every call returns status, headers and parsed JSON body.

use std::time::Duration;

use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;

/// The answer to one request.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body parsed as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Answer {
    /// The `content-type` header.
    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// Asserts this is a problem+json answer with `status`, and returns its `type`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        assert_eq!(self.content_type(), "application/problem+json", "body: {}", self.body);
        assert_eq!(self.body["status"], status, "body: {}", self.body);
        assert!(self.body["title"].is_string(), "problem without title: {}", self.body);
        self.body["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// An HTTP client with a bounded timeout on every call.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    /// A client whose every request times out after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder().timeout(timeout).build().expect("http client");
        Self { client }
    }

    /// Sends a request with an optional JSON body.
    pub async fn send(&self, method: Method, url: &str, body: Option<&Value>) -> reqwest::Result<Answer> {
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        Self::answer(request.send().await?).await
    }

    /// Sends raw bytes with the given content type (for malformed-input tests).
    pub async fn send_raw(
        &self,
        method: Method,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Result<Answer> {
        let request = self.client.request(method, url).header("content-type", content_type).body(body);
        Self::answer(request.send().await?).await
    }

    /// The underlying client, for requests with extra headers.
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// Reads a response into an [`Answer`].
    pub async fn answer(response: reqwest::Response) -> reqwest::Result<Answer> {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, headers, body })
    }

    /// `GET url`, panicking on transport errors.
    pub async fn get(&self, url: &str) -> Answer {
        self.send(Method::GET, url, None).await.expect("GET failed")
    }

    /// `PUT url` with a JSON body, panicking on transport errors.
    pub async fn put(&self, url: &str, body: &Value) -> Answer {
        self.send(Method::PUT, url, Some(body)).await.expect("PUT failed")
    }

    /// `DELETE url`, panicking on transport errors.
    pub async fn delete(&self, url: &str) -> Answer {
        self.send(Method::DELETE, url, None).await.expect("DELETE failed")
    }
}
