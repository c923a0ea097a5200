//! Traces: one trace per saga, from `POST /orders` through every step and compensation into
//! each participant's request and its SQL, exported over OTLP/HTTP to a receiver in this test
//! (it decodes the protobuf bodies the services send, as a collector would).

use saga_suite::poll::Poll;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{KeyValue, any_value::Value as AnyValue},
};
use prost::Message;
use saga_tests::{Service, Suite, happy_order, order_body};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// One exported span, as the receiver decoded it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    attributes: HashMap<String, String>,
}

impl Span {
    fn order_id(&self) -> Option<&str> {
        self.attributes.get("order_id").map(String::as_str)
    }
}

/// An OTLP/HTTP trace receiver on a free loopback port: `POST /v1/traces`, protobuf.
struct Receiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
    requests: Arc<Mutex<u32>>,
}

impl Receiver {
    async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(0));
        let app =
            Router::new().route("/v1/traces", post(receive)).with_state((Arc::clone(&spans), Arc::clone(&requests)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { endpoint, spans, requests }
    }

    /// The whole suite, its exporters pointed here (and `extra` settings per service).
    async fn suite(&self, extra: &[(Service, &str, &str)]) -> Suite {
        let env = self.env();
        let mut env: Vec<(Service, &str, &str)> = env.iter().map(|(s, k, v)| (*s, *k, v.as_str())).collect();
        env.extend_from_slice(extra);
        Suite::start_with_env(&Service::SUITE, &env).await
    }

    /// The environment that points a service's exporter here, flushing every 100 ms.
    fn env(&self) -> Vec<(Service, &'static str, String)> {
        Service::SUITE
            .iter()
            .flat_map(|&service| {
                [
                    (service, "OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint.clone()),
                    (service, "OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
                ]
            })
            .collect()
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until `check` holds on the spans received so far; panics with them after `WAIT`.
    async fn wait_until(&self, what: &str, check: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let seen = Poll::new(WAIT, Duration::from_millis(100))
            .until(async || {
                let spans = self.spans();
                check(&spans).then_some(spans)
            })
            .await;
        seen.unwrap_or_else(|| panic!("{what}: not seen in {WAIT:?}; received {:#?}", self.spans()))
    }
}

type Collected = (Arc<Mutex<Vec<Span>>>, Arc<Mutex<u32>>);

async fn receive(State((spans, requests)): State<Collected>, body: Bytes) -> (StatusCode, Vec<u8>) {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    *requests.lock().unwrap() += 1;
    let mut received = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            received.push(Span {
                service: service.clone(),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent: hex(&span.parent_span_id),
                name: span.name,
                attributes: attributes(&span.attributes),
            });
        }
    }
    (StatusCode::OK, ExportTraceServiceResponse::default().encode_to_vec())
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => s.clone(),
                AnyValue::IntValue(i) => i.to_string(),
                AnyValue::BoolValue(b) => b.to_string(),
                AnyValue::DoubleValue(d) => d.to_string(),
                other => format!("{other:?}"),
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spans of one saga's trace, with helpers to walk its parent links.
struct Trace<'a> {
    spans: Vec<&'a Span>,
}

impl<'a> Trace<'a> {
    fn of(spans: &'a [Span], trace_id: &str) -> Self {
        Self { spans: spans.iter().filter(|s| s.trace_id == trace_id).collect() }
    }

    fn named(&self, service: &str, name: &str) -> Vec<&'a Span> {
        self.spans.iter().copied().filter(|s| s.service == service && s.name == name).collect()
    }

    /// Whether every `(service, name)` has arrived. Each process exports on its own schedule, so
    /// a test waits for the last span of every process it asserts on (a parent ends, and is
    /// exported, after its children) before asserting.
    fn has_all(&self, expected: &[(&str, &str)]) -> bool {
        expected.iter().all(|(service, name)| !self.named(service, name).is_empty())
    }

    fn one(&self, service: &str, name: &str) -> &'a Span {
        let found = self.named(service, name);
        assert_eq!(found.len(), 1, "one {service} span named {name:?} expected: {:#?}", self.spans);
        found[0]
    }

    fn children(&self, parent: &Span) -> Vec<&'a Span> {
        self.spans.iter().copied().filter(|s| s.parent == parent.span_id).collect()
    }

    /// Every span under `root`, at any depth.
    fn descendants(&self, root: &Span) -> Vec<&'a Span> {
        let mut found = self.children(root);
        let mut next = 0;
        while next < found.len() {
            found.extend(self.children(found[next]));
            next += 1;
        }
        found
    }

    /// The participant request a call span made, and the SQL phases under it.
    fn participant_side(&self, call: &Span, service: &str, route: &str, sql: &[&str]) {
        let requests = self.children(call);
        assert_eq!(requests.len(), 1, "{} has one child, the {service} request: {requests:#?}", call.name);
        let request = requests[0];
        assert_eq!((request.service.as_str(), request.name.as_str()), (service, route), "{request:#?}");
        // The handler may add spans of its own between the request and its SQL.
        let sql_spans: Vec<&Span> =
            self.descendants(request).into_iter().filter(|s| s.attributes.contains_key("db.system.name")).collect();
        let mut phases: Vec<&str> = sql_spans.iter().map(|s| s.attributes["db.operation.name"].as_str()).collect();
        phases.sort_unstable();
        let mut expected = sql.to_vec();
        expected.sort_unstable();
        assert_eq!(phases, expected, "SQL under {service}'s {route}");
        for span in sql_spans {
            assert_eq!(
                span.name,
                format!("{} {}", span.attributes["db.operation.name"], span.attributes["db.collection.name"])
            );
            assert_eq!(span.attributes["db.system.name"], "postgresql");
        }
    }
}

/// The span ids of a trace form one tree: every parent is in the trace, but for the root.
fn assert_one_tree(trace: &Trace<'_>, root_parent: &str) {
    let ids: Vec<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
    let roots: Vec<&&Span> = trace.spans.iter().filter(|s| !ids.contains(&s.parent.as_str())).collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    assert_eq!(roots[0].parent, root_parent, "the root's parent: {:#?}", roots[0]);
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn one_trace_per_saga_from_the_post_through_every_step_into_each_participants_sql() {
    let receiver = Receiver::start().await;
    let suite = receiver.suite(&[]).await;

    // The caller's own trace context is continued: the saga joins the caller's trace.
    let answer = suite
        .http
        .inner()
        .post(suite.url(Service::Orchestrator, "/orders"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&happy_order())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let order_id: Uuid =
        answer.json::<serde_json::Value>().await.unwrap()["order_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(suite.wait_terminal(order_id, WAIT).await["status"], "completed");
    let id = order_id.to_string();

    let spans = receiver
        .wait_until("the completed saga's spans", |spans| {
            Trace::of(spans, CALLER_TRACE).has_all(&[
                ("orchestrator", "saga"),
                ("inventory", "PUT /reservations/{order_id}"),
                ("payment", "PUT /payments/{order_id}"),
                ("shipping", "PUT /shipments/{order_id}"),
                ("notification", "PUT /notifications/{order_id}"),
            ])
        })
        .await;
    let trace = Trace::of(&spans, CALLER_TRACE);

    let post = trace.one("orchestrator", "POST /orders");
    assert_eq!(post.parent, CALLER_SPAN);
    assert_eq!(post.attributes["http.response.status_code"], "202");
    let saga = trace.one("orchestrator", "saga");
    assert_eq!(saga.parent, post.span_id, "the saga runs under the request that started it");

    let steps = [
        ("reserve_inventory", "inventory", "PUT /reservations/{order_id}"),
        ("process_payment", "payment", "PUT /payments/{order_id}"),
        ("create_shipment", "shipping", "PUT /shipments/{order_id}"),
        ("send_confirmation", "notification", "PUT /notifications/{order_id}"),
    ];
    for (step, service, route) in steps {
        let call = trace.one("orchestrator", &format!("action {step}"));
        assert_eq!(call.parent, saga.span_id, "{step}'s call is a child of the saga");
        assert_eq!(call.attributes["step"], step);
        trace.participant_side(call, service, route, &["claim", "effect", "store answer and commit"]);
    }
    // The saga log's writes are in the trace too.
    assert!(trace.children(saga).iter().any(|s| s.name == "write saga log"), "{:#?}", trace.children(saga));

    assert_one_tree(&trace, CALLER_SPAN);
    for span in &trace.spans {
        assert_eq!(span.order_id(), Some(id.as_str()), "every span names the order: {span:#?}");
    }
    // And no span of this order went to another trace.
    // (The test's own polls, `GET /orders/{id}`, are traces of their own.)
    let strays: Vec<&Span> = spans
        .iter()
        .filter(|s| s.order_id() == Some(&id) && s.trace_id != CALLER_TRACE && !s.name.starts_with("GET "))
        .collect();
    assert!(strays.is_empty(), "{strays:#?}");
}

#[tokio::test]
async fn a_compensated_saga_traces_each_compensation_and_a_resumed_saga_stays_in_its_trace() {
    let receiver = Receiver::start().await;
    // Payment will be down for a while: the default one-minute retry budget rides it out
    // (the tests' own is 2 s).
    let mut suite = receiver.suite(&[(Service::Orchestrator, "STEP_RETRY_BUDGET_MS", "60000")]).await;
    let env = receiver.env();

    // An undeliverable address: shipping refuses, payment is refunded, the reservation released.
    let order_id = suite.accepted_order(&order_body("bob", &[("WIDGET-1", 1)], "AQ")).await;
    assert_eq!(suite.wait_terminal(order_id, WAIT).await["status"], "compensated");
    let id = order_id.to_string();
    let of_order = |spans: &[Span]| -> Option<String> {
        spans.iter().find(|s| s.order_id() == Some(&id) && s.name == "POST /orders").map(|s| s.trace_id.clone())
    };
    let spans = receiver
        .wait_until("the compensated saga's spans", |spans| {
            of_order(spans).is_some_and(|trace_id| {
                Trace::of(spans, &trace_id).has_all(&[
                    ("orchestrator", "saga"),
                    ("shipping", "PUT /shipments/{order_id}"),
                    ("payment", "DELETE /payments/{order_id}"),
                    ("inventory", "DELETE /reservations/{order_id}"),
                ])
            })
        })
        .await;
    let trace_id = of_order(&spans).unwrap();
    // The order view names the trace, for a trace UI's link.
    assert_eq!(suite.order(order_id).await["trace_id"], trace_id.as_str());
    let trace = Trace::of(&spans, &trace_id);
    let post = trace.one("orchestrator", "POST /orders");
    let saga = trace.one("orchestrator", "saga");
    assert_eq!(saga.parent, post.span_id);
    let refused = trace.one("orchestrator", "action create_shipment");
    trace.participant_side(refused, "shipping", "PUT /shipments/{order_id}", &["claim", "effect"]);
    for (step, service, route) in [
        ("process_payment", "payment", "DELETE /payments/{order_id}"),
        ("reserve_inventory", "inventory", "DELETE /reservations/{order_id}"),
    ] {
        let call = trace.one("orchestrator", &format!("compensation {step}"));
        assert_eq!(call.parent, saga.span_id);
        trace.participant_side(call, service, route, &["compensate and commit"]);
    }
    assert_one_tree(&trace, "");
    assert!(trace.spans.iter().all(|s| s.order_id() == Some(id.as_str())));

    // A saga the orchestrator was driving when it died is resumed by the next one: the new run
    // joins the trace the saga was started in (its context is stored with the saga).
    suite.kill(Service::Payment).await;
    let stuck = suite.accepted_order(&happy_order()).await;
    let stuck_id = stuck.to_string();
    let stuck_trace = |spans: &[Span]| -> Option<String> {
        spans.iter().find(|s| s.order_id() == Some(&stuck_id) && s.name == "POST /orders").map(|s| s.trace_id.clone())
    };
    receiver.wait_until("the stuck saga's POST", |spans| stuck_trace(spans).is_some()).await;
    suite.kill(Service::Orchestrator).await;
    let env_of = |service: Service| -> Vec<(&str, &str)> {
        let mut vars: Vec<(&str, &str)> =
            env.iter().filter(|(s, _, _)| *s == service).map(|(_, k, v)| (*k, v.as_str())).collect();
        if service == Service::Orchestrator {
            vars.push(("STEP_RETRY_BUDGET_MS", "60000"));
        }
        vars
    };
    suite.spawn(Service::Payment, &env_of(Service::Payment)).await;
    suite.spawn(Service::Orchestrator, &env_of(Service::Orchestrator)).await;
    assert_eq!(suite.wait_terminal(stuck, WAIT).await["status"], "completed");

    let spans = receiver
        .wait_until("the resumed run's saga span", |spans| {
            stuck_trace(spans).is_some_and(|trace_id| {
                let trace = Trace::of(spans, &trace_id);
                trace.spans.iter().any(|s| s.name == "saga" && s.attributes.contains_key("order_id"))
                    && trace.has_all(&[("payment", "PUT /payments/{order_id}")])
            })
        })
        .await;
    let trace_id = stuck_trace(&spans).unwrap();
    let trace = Trace::of(&spans, &trace_id);
    let post = trace.one("orchestrator", "POST /orders");
    // The first run was killed before its span ended (never exported); the resumed one ends.
    let resumed = trace.one("orchestrator", "saga");
    assert_eq!(resumed.parent, post.span_id, "the resumed run continues the stored trace context");
    // The attempts before the crash failed (payment was down); the one after it reached payment,
    // under the resumed run.
    let calls = trace.children(resumed);
    let payment = calls.iter().find(|s| s.name == "action process_payment").expect("payment called by the resumed run");
    trace.participant_side(
        payment,
        "payment",
        "PUT /payments/{order_id}",
        &["claim", "effect", "store answer and commit"],
    );
    assert!(*receiver.requests.lock().unwrap() > 0);
}

#[tokio::test]
async fn a_malformed_traceparent_is_ignored_the_order_is_accepted_and_starts_a_trace_of_its_own() {
    let receiver = Receiver::start().await;
    let suite = receiver.suite(&[]).await;

    for garbage in ["00-not-a-trace-01", "00-00000000000000000000000000000000-0000000000000000-01", "\u{7f}x"] {
        let answer = suite
            .http
            .inner()
            .post(suite.url(Service::Orchestrator, "/orders"))
            .header("traceparent", garbage)
            .json(&happy_order())
            .send()
            .await;
        // A header value reqwest itself refuses never leaves the client: nothing to check there.
        let Ok(answer) = answer else { continue };
        assert_eq!(answer.status(), 202, "traceparent {garbage:?}");
        let order_id: Uuid =
            answer.json::<serde_json::Value>().await.unwrap()["order_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(suite.wait_terminal(order_id, WAIT).await["status"], "completed");
        let id = order_id.to_string();
        let spans = receiver
            .wait_until("the saga's spans", |spans| {
                spans.iter().any(|s| s.order_id() == Some(&id) && s.name == "POST /orders")
                    && spans.iter().any(|s| s.order_id() == Some(&id) && s.name == "saga")
            })
            .await;
        let post = spans.iter().find(|s| s.order_id() == Some(&id) && s.name == "POST /orders").unwrap();
        assert_eq!(post.parent, "", "a malformed traceparent is not a parent: {post:#?}");
        assert_ne!(post.trace_id, "00000000000000000000000000000000");
        let saga = spans.iter().find(|s| s.order_id() == Some(&id) && s.name == "saga").unwrap();
        assert_eq!((saga.trace_id.as_str(), saga.parent.as_str()), (post.trace_id.as_str(), post.span_id.as_str()));
    }
}
