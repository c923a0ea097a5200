//! The saga console (`GET /console`): its page in a real headless Chromium while a participant
//! is dead and a saga is stuck in compensation, then after it is back (the DOM it rendered, and a
//! screenshot in `target/test-artifacts/`); an operator typing the token and acting on a saga in
//! the page (driven over the DevTools protocol); its JSON endpoints and the order list's paging,
//! filters and search; bad input; the same figures on every replica; and queries that stay on
//! indexes with 100,000 sagas in the log.

use saga_shared::api::SagaStatus;
use saga_suite::poll::Poll;
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use saga_tests::{
    Chromium, Dom, EventStream, Next, Page, SLOW_CALL_ENV, SLOW_CALL_MS, Service, Suite, artifacts_dir, happy_order,
    order_body,
};
use serde_json::{Value, json};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// The console's URL on the (first) orchestrator, with `hash` (`#status=failed`, …).
fn console_url(suite: &Suite, hash: &str) -> String {
    suite.url(Service::Orchestrator, &format!("/console{hash}"))
}

async fn overview(suite: &Suite, query: &str) -> Value {
    let answer = suite.http.get(&suite.url(Service::Orchestrator, &format!("/console/overview{query}"))).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

async fn services(suite: &Suite, replica: Service) -> Value {
    let answer = suite.http.get(&suite.url(replica, "/console/services")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

/// `GET /orders` with `query`: the ids listed, in order.
async fn listed(suite: &Suite, query: &str) -> Vec<String> {
    let answer = suite.http.get(&suite.url(Service::Orchestrator, &format!("/orders{query}"))).await;
    assert_eq!(answer.status, 200, "{query}: {}", answer.body);
    answer.body.as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_owned()).collect()
}

/// Polls the overview until `check` holds.
async fn wait_overview(suite: &Suite, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut figures = Value::Null;
    let shown = Poll::new(WAIT, Duration::from_millis(200))
        .holds(async || {
            figures = overview(suite, "?window_s=300").await;
            check(&figures)
        })
        .await;
    assert!(shown, "{what} never showed in the overview: {figures}");
    figures
}

/// A card's figure (`data-value`).
fn card(dom: &Dom, id: &str) -> f64 {
    let value = dom.by_id(id).attr("data-value").unwrap_or_default().to_owned();
    value.parse().unwrap_or_else(|_| panic!("card #{id} has no figure ({value:?}):\n{}", dom.0))
}

/// Each service in the page's list, up or not.
fn services_shown(dom: &Dom) -> HashMap<String, bool> {
    dom.elements()
        .into_iter()
        .filter(|e| e.tag == "li")
        .filter_map(|e| Some((e.attr("data-service")?.to_owned(), e.attr("data-up")? == "true")))
        .collect()
}

/// The list's rows: (order id, status), top to bottom.
fn sagas_shown(dom: &Dom) -> Vec<(String, String)> {
    dom.rows("saga-list")
        .iter()
        .map(|r| (r.attr("data-order-id").unwrap().to_owned(), r.attr("data-status").unwrap().to_owned()))
        .collect()
}

/// The open saga's timeline as `kind:step:outcome`.
fn timeline_shown(dom: &Dom) -> Vec<String> {
    dom.rows("timeline")
        .iter()
        .map(|r| {
            let attr = |name: &str| r.attr(name).unwrap_or_default().to_owned();
            format!("{}:{}:{}", attr("data-kind"), attr("data-step"), attr("data-outcome"))
        })
        .collect()
}

#[track_caller]
fn assert_rendered_without_errors(dom: &Dom) {
    assert!(dom.with("data-state", "ready").iter().any(|e| e.tag == "body"), "the page never rendered:\n{}", dom.0);
    assert!(dom.by_id("banner").attr("hidden").is_some(), "the page shows an error:\n{}", dom.0);
}

#[tokio::test]
async fn the_console_in_a_real_browser_shows_a_dead_participant_a_stuck_saga_and_its_timeline_then_the_recovery() {
    let chromium = Chromium::find();
    let mut suite = Suite::start_for_slow_calls(&Service::SUITE).await;
    // Arrange: two completed orders; then one stuck in compensation (payment dies after
    // capturing, shipping then refuses the address; shipping is slowed to leave time for the
    // kill); then two orders placed while payment is down, which compensate.
    let completed = [suite.accepted_order(&happy_order()).await, suite.accepted_order(&happy_order()).await];
    for order in completed {
        assert_eq!(suite.wait_terminal(order, WAIT).await["status"], "completed");
    }
    suite.set_faults(Service::Shipping, &serde_json::json!({ "latency_ms": SLOW_CALL_MS })).await;
    let stuck = suite.accepted_order(&order_body("bob", &[("WIDGET-1", 1)], "AQ")).await;
    suite.wait_for_step(stuck, 1, "succeeded").await;
    suite.kill(Service::Payment).await;
    let compensated = [suite.accepted_order(&happy_order()).await, suite.accepted_order(&happy_order()).await];
    for order in compensated {
        assert_eq!(suite.wait_terminal(order, WAIT).await["status"], "compensated");
    }
    suite.wait_for(stuck, &[SagaStatus::Compensating], WAIT).await;
    let figures = wait_overview(&suite, "the stuck saga", |o| o["stuck_total"] == 1).await;

    // The JSON the page reads says it first.
    assert_eq!(figures["in_flight_total"], 1, "{figures}");
    assert_eq!(figures["in_flight"][0]["status"], "compensating", "{figures}");
    assert_eq!(figures["in_flight"][0]["step"], "process_payment", "{figures}");
    assert_eq!(figures["requires_intervention"], 0, "{figures}");
    assert_eq!(figures["stuck_after_ms"], 2000, "the orchestrator's STUCK_AFTER_MS: {figures}");
    assert!(figures["oldest_in_flight_age_seconds"].as_f64().unwrap() >= 2.0, "{figures}");
    let down: Vec<Value> = services(&suite, Service::Orchestrator).await["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["up"] == false)
        .cloned()
        .collect();
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!((down[0]["name"].as_str(), down[0]["detail"].as_str()), (Some("payment"), Some("cannot connect")));

    // Act and assert in the browser: the overview, the services and the list.
    let dom = chromium.dump_dom(&console_url(&suite, "#window=300")).await;
    assert_rendered_without_errors(&dom);
    let shown = services_shown(&dom);
    let expected: HashMap<String, bool> = ["orchestrator", "inventory", "payment", "shipping", "notification"]
        .iter()
        .map(|&name| (name.to_owned(), name != "payment"))
        .collect();
    assert_eq!(shown, expected, "payment is down, the rest up");
    assert_eq!((card(&dom, "in-flight-total"), card(&dom, "stuck-total")), (1.0, 1.0));
    assert_eq!(card(&dom, "requires-intervention"), 0.0);
    assert!(card(&dom, "oldest-age") >= 2.0);
    assert!(card(&dom, "rate-started") > 0.0 && card(&dom, "rate-completed") > 0.0);
    assert!(card(&dom, "rate-compensated") > 0.0);
    assert_eq!(card(&dom, "rate-failed"), 0.0);
    let in_flight = dom.rows("in-flight");
    assert_eq!(in_flight.len(), 1, "{in_flight:?}");
    assert!(in_flight[0].has("data-status", "compensating") && in_flight[0].has("data-step", "process_payment"));
    assert!(in_flight[0].has("data-count", "1") && in_flight[0].has("data-stuck", "1"));
    let newest_first: Vec<(String, String)> = [
        (compensated[1], "compensated"),
        (compensated[0], "compensated"),
        (stuck, "compensating"),
        (completed[1], "completed"),
        (completed[0], "completed"),
    ]
    .iter()
    .map(|(id, status)| (id.to_string(), (*status).to_owned()))
    .collect();
    assert_eq!(sagas_shown(&dom), newest_first);

    // The status filter and the search, from the URL's hash like a shared link.
    let dom = chromium.dump_dom(&console_url(&suite, "#status=compensating")).await;
    assert_eq!(sagas_shown(&dom), [(stuck.to_string(), "compensating".to_owned())]);
    let dom = chromium.dump_dom(&console_url(&suite, &format!("#q={}", completed[0]))).await;
    assert_eq!(sagas_shown(&dom), [(completed[0].to_string(), "completed".to_owned())]);

    // One saga: its steps, its timeline and which actions it allows.
    let open_stuck = console_url(&suite, &format!("#order={stuck}&window=300"));
    let events_before = suite.events(stuck).await.len();
    let dom = chromium.dump_dom(&open_stuck).await;
    assert_rendered_without_errors(&dom);
    let detail = dom.by_id("order-detail");
    assert!(detail.has("data-order-id", &stuck.to_string()) && detail.has("data-status", "compensating"));
    assert!(detail.attr("hidden").is_none(), "the saga is shown");
    let steps: Vec<(String, String)> = dom
        .rows("steps")
        .iter()
        .filter(|r| r.attr("class") != Some("error-row"))
        .map(|r| (r.attr("data-step").unwrap().to_owned(), r.attr("data-status").unwrap().to_owned()))
        .collect();
    let step = |name: &str, status: &str| (name.to_owned(), status.to_owned());
    assert_eq!(
        steps,
        [
            step("reserve_inventory", "succeeded"),
            step("process_payment", "compensating"),
            step("create_shipment", "failed"),
            step("send_confirmation", "pending"),
        ]
    );
    let timeline = timeline_shown(&dom);
    for entry in ["saga::started", "action:create_shipment:permanent", "saga::compensating"] {
        assert!(timeline.iter().any(|e| e == entry), "{entry} missing from {timeline:?}");
    }
    // Payment's circuit opened on the refused connections of the two orders placed while it was
    // down, so the refund waits for it instead of being tried: the services list says so.
    let circuit_open: Vec<String> = dom
        .elements()
        .into_iter()
        .filter(|e| e.tag == "li" && e.has("data-circuit", "open"))
        .filter_map(|e| e.attr("data-service").map(str::to_owned))
        .collect();
    assert_eq!(circuit_open, ["payment"], "the console shows payment's circuit open");
    assert!(dom.0.contains("1 waiting for payment since"), "and how many sagas wait for it");
    assert!(timeline.len() >= events_before, "the whole timeline: {} of {events_before}", timeline.len());
    assert!(dom.by_id("action-retry").attr("disabled").is_some(), "only a failed saga is retried");
    assert!(dom.by_id("action-cancel").attr("disabled").is_some(), "a compensating saga is not cancelled");
    let screenshot = artifacts_dir().join("console.png");
    chromium.screenshot(&open_stuck, &screenshot).await;
    eprintln!("console screenshot: {}", screenshot.display());

    // Payment is back: the stuck saga finishes, and the console says so.
    suite.spawn(Service::Payment, &[]).await;
    assert_eq!(suite.wait_terminal(stuck, WAIT).await["status"], "compensated");
    wait_overview(&suite, "nothing in flight", |o| o["in_flight_total"] == 0).await;
    // The console shows probes up to a second old (they are shared between its viewers): the
    // saga can finish within that second of payment's return, so wait for a probe that saw it.
    let all_up = Poll::new(WAIT, Duration::from_millis(200))
        .holds(async || {
            let answer = services(&suite, Service::Orchestrator).await;
            answer["services"].as_array().is_some_and(|all| all.iter().all(|s| s["up"] == true))
        })
        .await;
    assert!(all_up, "the console's probes never saw every service up");
    let dom = chromium.dump_dom(&open_stuck).await;
    assert_rendered_without_errors(&dom);
    assert!(services_shown(&dom).values().all(|&up| up), "every service is up: {:?}", services_shown(&dom));
    assert_eq!((card(&dom, "in-flight-total"), card(&dom, "stuck-total")), (0.0, 0.0));
    assert!(dom.rows("in-flight").is_empty());
    assert!(dom.by_id("order-detail").has("data-status", "compensated"));
    assert!(timeline_shown(&dom).iter().any(|e| e == "compensation:process_payment:ok"));
    assert!(timeline_shown(&dom).iter().any(|e| e == "saga::compensated"));
    let all = chromium.dump_dom(&console_url(&suite, "")).await;
    assert!(sagas_shown(&all).iter().all(|(_, status)| status == "completed" || status == "compensated"));
    chromium.screenshot(&open_stuck, &artifacts_dir().join("console-recovered.png")).await;
}

/// Fills the console's action form and presses `button` (`action-retry` or `action-cancel`),
/// then waits for the answer it shows.
async fn act_in_console(page: &mut Page, button: &str, operator: &str, reason: &str) -> (String, String) {
    page.eval(&format!(
        "document.getElementById('action-result').dataset.status = ''; \
         document.getElementById('action-operator').value = {operator:?}; \
         document.getElementById('action-reason').value = {reason:?}; \
         document.getElementById('{button}').click()"
    ))
    .await;
    let result = "document.getElementById('action-result')";
    page.wait_until("the action's answer", &format!("['ok', 'error'].includes({result}.dataset.status)"), WAIT).await;
    let answer = page.eval(&format!("[{result}.dataset.status, {result}.textContent]")).await;
    (answer[0].as_str().unwrap().to_owned(), answer[1].as_str().unwrap().to_owned())
}

/// Types `token` into the console's token field and keeps it.
async fn keep_token(page: &mut Page, token: &str) {
    page.eval(&format!(
        "document.getElementById('token').value = {token:?}; \
         document.getElementById('token-form').requestSubmit()"
    ))
    .await;
}

#[tokio::test]
async fn an_operator_retries_a_failed_saga_from_the_console_with_the_token_typed_and_kept_in_the_tab() {
    let chromium = Chromium::find();
    let mut suite =
        Suite::start(&[Service::Inventory, Service::Payment, Service::Shipping, Service::Notification]).await;
    suite.spawn(Service::Orchestrator, &[&[("COMPENSATION_BUDGET_MS", "1500")], &SLOW_CALL_ENV[..]].concat()).await;
    // A dead-lettered saga (as in saga_failures.rs): dave is declined, and inventory is dead
    // when his reservation must be released, for longer than the compensation budget.
    suite.set_faults(Service::Payment, &serde_json::json!({ "latency_ms": SLOW_CALL_MS })).await;
    let order_id = suite.accepted_order(&order_body("dave", &[("WIDGET-1", 1)], "FR")).await;
    suite.wait_for_step(order_id, 0, "succeeded").await;
    suite.kill(Service::Inventory).await;
    assert_eq!(suite.wait_terminal(order_id, WAIT).await["status"], "failed");
    suite.spawn(Service::Inventory, &[]).await;

    let mut page = chromium.open(&console_url(&suite, &format!("#order={order_id}"))).await;
    let detail = "document.getElementById('order-detail').dataset";
    page.wait_until("the failed saga", &format!("{detail}.status === 'failed'"), WAIT).await;
    assert_eq!(page.eval("document.getElementById('requires-intervention').dataset.value").await, "1");
    assert_eq!(page.eval("document.getElementById('action-retry').disabled").await, false, "retry is offered");
    assert_eq!(page.eval("document.getElementById('action-cancel').disabled").await, true);

    // No token typed: the page asks for it and sends nothing.
    let (status, text) = act_in_console(&mut page, "action-retry", "ops-alice", "inventory is back").await;
    assert_eq!((status.as_str(), text.as_str()), ("error", "Type the operator token above first."));
    // A wrong token: the orchestrator's 403, explained.
    keep_token(&mut page, "not-the-operator-token").await;
    let (status, text) = act_in_console(&mut page, "action-retry", "ops-alice", "inventory is back").await;
    assert_eq!(status, "error");
    assert!(text.contains("refused the operator token") && text.contains("403"), "{text}");
    assert!(!suite.events(order_id).await.iter().any(|e| e["kind"] == "operator"), "nothing was done");

    // The right token: the saga resumes and compensates, and the timeline says who and why.
    keep_token(&mut page, saga_tests::ADMIN_TOKEN).await;
    let (status, text) = act_in_console(&mut page, "action-retry", "ops-alice", "inventory is back").await;
    assert_eq!(status, "ok", "{text}");
    assert!(text.starts_with("retry accepted"), "{text}");
    page.wait_until("the saga compensated", &format!("{detail}.status === 'compensated'"), WAIT).await;
    let operator_rows = "[...document.querySelectorAll('#timeline tr[data-kind=operator]')]";
    let shown =
        page.eval(&format!("{operator_rows}.map(r => r.dataset.outcome + ' by ' + r.lastChild.textContent)")).await;
    assert_eq!(shown, serde_json::json!(["retry by ops-alice"]));
    let events = suite.events(order_id).await;
    let retry = events.iter().find(|e| e["kind"] == "operator").unwrap();
    assert_eq!((retry["actor"].as_str(), retry["detail"].as_str()), (Some("ops-alice"), Some("inventory is back")));
    // The token lives in this tab's sessionStorage only: not in localStorage, not in the URL.
    let storage =
        page.eval("[sessionStorage.getItem('saga-console.operator-token'), localStorage.length, location.href]").await;
    assert_eq!(storage[0], saga_tests::ADMIN_TOKEN);
    assert_eq!(storage[1], 0);
    assert!(!storage[2].as_str().unwrap().contains(saga_tests::ADMIN_TOKEN));
}

#[tokio::test]
async fn an_operator_cancels_a_running_saga_from_the_console() {
    let chromium = Chromium::find();
    let mut suite = Suite::start(&Service::PARTICIPANTS).await;
    // Shipping takes 5 s (its step may take 10), so the saga is surely still running when the
    // operator, in a browser, cancels it.
    // Traces go to an endpoint nobody listens on: the saga still gets a trace id, which the
    // console links to TRACE_UI_URL.
    let env = [
        ("STEP_CREATE_SHIPMENT_TIMEOUT_MS", "10000"),
        ("LEASE_MS", "25000"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ("TRACE_UI_URL", "http://jaeger.test:16686"),
        ("GRAFANA_URL", "http://grafana.test:3000/"),
    ];
    suite.spawn(Service::Orchestrator, &env).await;
    suite.set_faults(Service::Shipping, &serde_json::json!({ "latency_ms": 5000 })).await;
    let mut page = chromium.open(&console_url(&suite, "")).await;
    page.wait_until("the console", "document.body.dataset.state === 'ready'", WAIT).await;
    let grafana = page
        .eval("[document.getElementById('grafana-link').hidden, document.getElementById('grafana-link').href]")
        .await;
    assert_eq!(grafana, serde_json::json!([false, "http://grafana.test:3000/d/saga-suite"]));
    keep_token(&mut page, saga_tests::ADMIN_TOKEN).await;
    let order_id = suite.accepted_order(&happy_order()).await;
    suite.wait_for_step(order_id, 1, "succeeded").await;

    // Its group in the in-flight table lists it when clicked.
    let group = "document.querySelector('#in-flight tr[data-status=running][data-step=create_shipment]')";
    page.wait_until("the running saga's group", &format!("{group} !== null"), WAIT).await;
    page.eval(&format!("{group}.click()")).await;
    page.wait_until("its group listed", "location.hash === '#status=running&step=create_shipment'", WAIT).await;
    let row = format!("document.querySelector('#saga-list tr[data-order-id=\"{order_id}\"]')");
    page.wait_until("the saga in the list", &format!("{row} !== null"), WAIT).await;
    page.eval(&format!("{row}.click()")).await;
    let detail = "document.getElementById('order-detail').dataset";
    page.wait_until("the running saga", &format!("{detail}.status === 'running'"), WAIT).await;
    // What the order is, who drives it, and its trace.
    let facts = page
        .eval(
            "['detail-customer', 'detail-items', 'detail-total', 'detail-country', 'detail-owner']\
             .map(id => document.getElementById(id).textContent)",
        )
        .await;
    assert_eq!(facts, serde_json::json!(["alice", "1 × WIDGET-1", "12.99", "FR", "orchestrator"]));
    let trace_id = suite.order(order_id).await["trace_id"].as_str().expect("a trace id").to_owned();
    let link = page.eval("document.getElementById('trace-link').href").await;
    assert_eq!(link, format!("http://jaeger.test:16686/trace/{trace_id}"));
    let (status, text) = act_in_console(&mut page, "action-cancel", "support-bob", "customer changed their mind").await;
    suite.set_faults(Service::Shipping, &serde_json::json!({})).await;

    assert_eq!(status, "ok", "{text}");
    page.wait_until("the saga compensated", &format!("{detail}.status === 'compensated'"), WAIT).await;
    let events = suite.events(order_id).await;
    assert!(events.iter().any(|e| e["kind"] == "operator" && e["outcome"] == "cancel" && e["actor"] == "support-bob"));
}

#[tokio::test]
async fn orders_are_listed_a_page_at_a_time_with_a_before_cursor_filtered_by_status_and_searched_by_id_prefix() {
    let suite = Suite::start(&Service::SUITE).await;
    let mut placed = Vec::new();
    for n in 0..7 {
        // Every third order is declined (dave's balance is too low): compensated.
        let body = if n % 3 == 2 { order_body("dave", &[("WIDGET-1", 1)], "FR") } else { happy_order() };
        placed.push(suite.accepted_order(&body).await);
    }
    for &order in &placed {
        suite.wait_terminal(order, WAIT).await;
    }
    let newest_first: Vec<String> = placed.iter().rev().map(Uuid::to_string).collect();

    // Pages of three, each after the last id of the one before, make up the whole list once.
    let first = listed(&suite, "?limit=3").await;
    let second = listed(&suite, &format!("?limit=3&before={}", first[2])).await;
    let third = listed(&suite, &format!("?limit=3&before={}", second[2])).await;
    let past_the_end = listed(&suite, &format!("?limit=3&before={}", third[0])).await;
    assert_eq!([first, second, third.clone()].concat(), newest_first);
    assert_eq!(third.len(), 1);
    assert!(past_the_end.is_empty());

    // Filters combine with the cursor.
    let compensated: Vec<String> = vec![placed[5].to_string(), placed[2].to_string()];
    assert_eq!(listed(&suite, "?status=compensated").await, compensated);
    assert_eq!(listed(&suite, &format!("?status=compensated&before={}", placed[6])).await, compensated);
    assert_eq!(listed(&suite, &format!("?status=compensated&before={}", placed[5])).await, compensated[1..]);
    assert_eq!(
        listed(&suite, &format!("?status=completed&limit=2&before={}", placed[4])).await,
        [placed[3].to_string(), placed[1].to_string()]
    );

    // Search by id prefix: any beginning of an id, with or without dashes, in any case.
    let target = placed[3].to_string();
    assert_eq!(listed(&suite, &format!("?order_id_prefix={target}")).await, [target.as_str()]);
    let simple = placed[3].simple().to_string().to_uppercase();
    assert_eq!(listed(&suite, &format!("?order_id_prefix={simple}")).await, [target.as_str()]);
    for length in [1, 8, 13, 20, 30] {
        let prefix = &target[..length];
        let expected: Vec<String> = newest_first.iter().filter(|id| id.starts_with(prefix)).cloned().collect();
        assert_eq!(listed(&suite, &format!("?order_id_prefix={prefix}")).await, expected, "prefix {prefix}");
    }
    assert!(listed(&suite, &format!("?order_id_prefix={simple}0")).await.is_empty(), "longer than an id");
    let other = if target.starts_with('f') { "0" } else { "f" };
    assert!(listed(&suite, &format!("?order_id_prefix={other}")).await.is_empty());
    let searched = format!("?order_id_prefix={}&status=completed", &target[..8]);
    assert!(listed(&suite, &searched).await.iter().all(|id| id != &placed[2].to_string()));
}

#[tokio::test]
async fn bad_list_and_console_queries_are_problem_json_400_or_422() {
    let suite = Suite::start(&[Service::Orchestrator]).await;
    let unknown = Uuid::now_v7();
    let bad_queries = [
        "/orders?before=not-a-uuid",
        "/orders?order_id_prefix=",
        "/orders?order_id_prefix=xyz",
        "/orders?order_id_prefix=-0190",
        "/orders?order_id_prefix=0190%20ab",
        "/orders?order_id_prefix=0190ab12-3456-7def-8123-456789abcdef0",
        "/orders?cursor=1",
        "/console/overview?window_s=0",
        "/console/overview?window_s=301",
        "/console/overview?window_s=-1",
        "/console/overview?window_s=ten",
        "/console/overview?status=failed",
        "/console/stream?window_s=0",
        "/console/stream?window_s=ten",
        "/console/counts?step=ship_it",
        "/console/counts?stuck=maybe",
        "/console/counts?created_after=yesterday",
        "/console/counts?order_id_prefix=xyz",
        "/orders?step=ship_it",
        "/orders?customer_id=%00",
    ];
    for query in bad_queries {
        let answer = suite.http.get(&suite.url(Service::Orchestrator, query)).await;
        assert_eq!(answer.assert_problem(400), "/problems/invalid-query", "{query}");
    }
    let unknown_cursor = suite.http.get(&suite.url(Service::Orchestrator, &format!("/orders?before={unknown}"))).await;
    assert_eq!(unknown_cursor.assert_problem(422), "/problems/validation");
    assert!(unknown_cursor.body["detail"].as_str().unwrap().contains(&unknown.to_string()));
    // A good query on an empty log is an empty list, and empty figures.
    assert!(listed(&suite, "?order_id_prefix=0190&status=failed&limit=500").await.is_empty());
    let empty = overview(&suite, "").await;
    assert_eq!((empty["window_seconds"].as_u64(), empty["in_flight_total"].as_u64()), (Some(10), Some(0)));
    assert!(empty["oldest_in_flight_age_seconds"].is_null());
}

#[tokio::test]
async fn the_page_and_its_assets_come_from_the_binary_with_a_strict_content_security_policy() {
    let suite = Suite::start(&[Service::Orchestrator]).await;
    for (path, content_type) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/api.js", "text/javascript; charset=utf-8"),
        ("/console/format.js", "text/javascript; charset=utf-8"),
        ("/console/chart.js", "text/javascript; charset=utf-8"),
        ("/console/bulk.js", "text/javascript; charset=utf-8"),
    ] {
        let response = suite.http.inner().get(suite.url(Service::Orchestrator, path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert_eq!(header("content-type"), content_type, "{path}");
        assert!(header("content-security-policy").contains("script-src 'self'"), "{path}");
        assert!(header("content-security-policy").contains("connect-src 'self'"), "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        // (The SVG namespace is a name, not an address.)
        let body = response.text().await.unwrap().replace("'http://www.w3.org/2000/svg'", "");
        assert!(!body.contains("http://") && !body.contains("https://"), "{path} loads nothing from elsewhere");
    }
    // The orchestrator's root leads a browser to the console.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let root = no_redirects.get(suite.url(Service::Orchestrator, "/")).send().await.unwrap();
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers().get("location").and_then(|v| v.to_str().ok()), Some("/console"));
    // The HTML route is not in the OpenAPI document; its JSON endpoints are.
    let document = suite.http.get(&suite.url(Service::Orchestrator, "/openapi.json")).await.body;
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.contains_key("/console/overview") && paths.contains_key("/console/services"));
    assert!(!paths.contains_key("/console"));
    let list_params: Vec<&str> = document["paths"]["/orders"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        list_params,
        [
            "status",
            "limit",
            "before",
            "order_id_prefix",
            "customer_id",
            "step",
            "reason",
            "created_after",
            "created_before",
            "stuck"
        ]
    );
    let step =
        document["paths"]["/orders"]["get"]["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "step");
    assert_eq!(
        step.map(|p| p["schema"]["enum"].clone()),
        Some(json!(["reserve_inventory", "process_payment", "create_shipment", "send_confirmation"]))
    );
}

#[tokio::test]
async fn every_replica_serves_the_same_console_figures_from_the_database() {
    let mut suite = Suite::start(&Service::SUITE).await;
    suite.spawn(Service::OrchestratorB, &[]).await;
    for body in [happy_order(), order_body("dave", &[("WIDGET-1", 1)], "FR"), happy_order()] {
        let order = suite.accepted_order(&body).await;
        suite.wait_terminal(order, WAIT).await;
    }

    let read = |replica: Service| {
        let url = suite.url(replica, "/console/overview?window_s=300");
        let http = suite.http.clone();
        async move { http.get(&url).await.body }
    };
    let (a, b) = (read(Service::Orchestrator).await, read(Service::OrchestratorB).await);

    for figure in ["rates", "in_flight", "in_flight_total", "stuck_total", "requires_intervention"] {
        assert_eq!(a[figure], b[figure], "{figure}: {a} vs {b}");
    }
    assert_eq!(a["rates"]["completed"].as_f64().unwrap() * 300.0, 2.0, "{a}");
    assert_eq!(b["rates"]["compensated"].as_f64().unwrap() * 300.0, 1.0, "{b}");
    let instance = |body: &Value| body["instance"].as_str().unwrap().to_owned();
    assert_eq!(instance(&services(&suite, Service::Orchestrator).await), "orchestrator");
    assert_eq!(instance(&services(&suite, Service::OrchestratorB).await), "orchestrator-b");
    assert!(
        services(&suite, Service::OrchestratorB).await["services"].as_array().unwrap().iter().all(|s| s["up"] == true)
    );
}

/// Sequential scans of `orchestrator.sagas` so far, as the statistics collector has them.
async fn sequential_scans(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "select seq_scan from pg_stat_user_tables where schemaname = 'orchestrator' and relname = 'sagas'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Index scans of `index` (of `orchestrator.sagas`) so far.
async fn index_scans(pool: &sqlx::PgPool, index: &str) -> i64 {
    sqlx::query_scalar(
        "select idx_scan from pg_stat_user_indexes where schemaname = 'orchestrator' and indexrelname = $1",
    )
    .bind(index)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A backend's statistics reach the collector when it goes idle, but at most once a second,
/// else up to 10 s later (Postgres' PGSTAT_IDLE_INTERVAL): wait that long for them.
const STATS_SETTLE: Duration = Duration::from_secs(11);

#[tokio::test]
async fn with_100000_sagas_in_the_log_the_console_and_list_queries_never_scan_the_whole_table() {
    let suite = Suite::start(&[Service::Orchestrator]).await;
    let db = suite.db.superuser_pool().await.unwrap();
    // One real saga (no participant runs, so it compensates at once) is the template of the
    // rest: what the list decodes must be a real request and real steps.
    let template = suite.accepted_order(&happy_order()).await;
    suite.wait_terminal(template, WAIT).await;
    // 100,000 sagas over the last 83 minutes: mostly finished, 1 % in flight (owned by a replica
    // whose lease outlasts the test, so nobody drives them), 0.1 % failed.
    sqlx::query(
        r#"insert into orchestrator.sagas (order_id, request, status, step_index, steps, owner, lease_expires_at,
                                           deadline_at, next_run_at, created_at, updated_at, progressed_at, finished_at)
           select md5('saga-' || i)::uuid, t.request, s.status, 1, t.steps,
                  case when s.status in ('running', 'compensating') then 'another-replica' end,
                  case when s.status in ('running', 'compensating') then now() + interval '1 hour' end,
                  now() + interval '1 hour', now() + interval '1 hour', at, at, at,
                  case when s.status in ('completed', 'compensated', 'failed') then at end
           from generate_series(1, 100000) i
           cross join lateral (select now() - i * interval '50 milliseconds' as at) a
           cross join lateral (select case when i % 1000 = 0 then 'failed'
                                           when i % 100 = 1 then 'running'
                                           when i % 100 = 2 then 'compensating'
                                           when i % 10 = 3 then 'compensated'
                                           else 'completed' end as status) s
           cross join (select request, steps from orchestrator.sagas where order_id = $1) t"#,
    )
    .bind(template)
    .execute(&db)
    .await
    .unwrap();
    sqlx::query("analyze orchestrator.sagas").execute(&db).await.unwrap();
    let expected_order: Vec<String> = sqlx::query_scalar(
        "select order_id::text from orchestrator.sagas order by created_at desc, order_id desc offset 50000 limit 50",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let cursor: String = sqlx::query_scalar(
        "select order_id::text from orchestrator.sagas order by created_at desc, order_id desc offset 49999 limit 1",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    tokio::time::sleep(STATS_SETTLE).await;
    let scans_before = sequential_scans(&db).await;
    let created_scans_before = index_scans(&db, "sagas_created_id").await;
    let finished_scans_before = index_scans(&db, "sagas_finished").await;

    let mut timings = Vec::new();
    let mut timed = |what: &'static str, started: Instant| timings.push(format!("{what}: {:?}", started.elapsed()));
    let started = Instant::now();
    let figures = overview(&suite, "?window_s=300").await;
    timed("overview (5 min window)", started);
    let started = Instant::now();
    overview(&suite, "").await;
    timed("overview (10 s window)", started);
    let started = Instant::now();
    assert_eq!(listed(&suite, "?limit=50").await.len(), 50);
    timed("list, first page", started);
    let started = Instant::now();
    let deep = listed(&suite, &format!("?limit=50&before={cursor}")).await;
    timed("list, page 1,001", started);
    let started = Instant::now();
    assert_eq!(listed(&suite, "?status=failed&limit=500").await.len(), 100);
    timed("list of failed", started);
    let started = Instant::now();
    assert_eq!(listed(&suite, &format!("?status=compensated&before={cursor}")).await.len(), 50);
    timed("list of compensated, deep", started);
    let started = Instant::now();
    assert_eq!(listed(&suite, &format!("?order_id_prefix={}", &cursor[..13])).await.first(), Some(&cursor));
    timed("search by id prefix", started);
    let started = Instant::now();
    let counted = suite.http.get(&suite.url(Service::Orchestrator, "/console/counts")).await.body;
    timed("counts per status", started);
    let started = Instant::now();
    let by_customer =
        suite.http.get(&suite.url(Service::Orchestrator, "/console/counts?customer_id=alice&stuck=true")).await;
    timed("counts per status, by customer, stuck", started);
    eprintln!("with 100,000 sagas: {}", timings.join(", "));

    assert_eq!(deep, expected_order, "keyset paging gives the same page as an offset");
    // Each status counted up to the cap: the 88,000 completed read "more than 10,000".
    let count = |body: &Value, status: &str| body["counts"][status].as_i64().unwrap();
    assert_eq!(counted["cap"], 10_000, "{counted}");
    assert_eq!((count(&counted, "failed"), count(&counted, "running")), (100, 1000), "{counted}");
    assert_eq!(count(&counted, "completed"), 10_001, "{counted}");
    // Stuck only counts sagas in flight: those the overview counts as stuck (give or take the
    // one that crossed the threshold between the two reads: one every 2.5 s).
    assert_eq!(by_customer.status, 200, "{}", by_customer.body);
    let stuck = count(&by_customer.body, "running") + count(&by_customer.body, "compensating");
    assert!((stuck - figures["stuck_total"].as_i64().unwrap()).abs() <= 2, "{} {figures}", by_customer.body);
    for status in ["pending", "completed", "compensated", "failed"] {
        assert_eq!(count(&by_customer.body, status), 0, "{}", by_customer.body);
    }
    assert_eq!(figures["requires_intervention"], 100, "{figures}");
    assert_eq!(figures["in_flight_total"], 2000, "{figures}");
    // One saga every 50 ms: about 6,000 in the last five minutes (fewer as the test's time passes).
    let started = figures["rates"]["started"].as_f64().unwrap() * 300.0;
    assert!((5000.0..=6001.0).contains(&started), "{figures}");
    // No statement read the whole table (the orchestrator's background ones included), and
    // the new indexes served the list and the overview (nothing else uses them).
    tokio::time::sleep(STATS_SETTLE).await;
    assert_eq!(sequential_scans(&db).await, scans_before, "a query scanned the whole sagas table");
    assert!(index_scans(&db, "sagas_created_id").await >= created_scans_before + 5, "lists and started counts");
    assert!(index_scans(&db, "sagas_finished").await >= finished_scans_before + 2, "finished counts");

    // The chart: its first read in a process counts the last 15 minutes (here 18 % of the table,
    // which Postgres rightly reads whole); every later one, whoever asks, only the last half
    // minute or so, from the indexes.
    let started = Instant::now();
    let mut first = EventStream::open(&suite.url(Service::Orchestrator, "/console/stream")).await;
    let history = first.next_named("history", WAIT).await;
    let first_read = started.elapsed();
    tokio::time::sleep(STATS_SETTLE).await;
    let scans_before = sequential_scans(&db).await;
    let started = Instant::now();
    let mut second = EventStream::open(&suite.url(Service::Orchestrator, "/console/stream")).await;
    let again = second.next_named("history", WAIT).await;
    eprintln!("the chart with 100,000 sagas: first read {first_read:?}, then {:?}", started.elapsed());
    tokio::time::sleep(STATS_SETTLE).await;
    assert_eq!(sequential_scans(&db).await, scans_before, "the chart's second read scanned the whole table");
    // One saga every 50 ms up to the insert: 200 in each 10 s bucket of the last 15 minutes
    // (the last few buckets, after the insert, have fewer); the second read says the same.
    let buckets = history["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 90, "{history}");
    assert!(buckets[..80].iter().all(|b| (199..=201).contains(&b["started"].as_i64().unwrap())), "{history}");
    let started_in = |h: &Value| -> Vec<i64> {
        h["buckets"].as_array().unwrap().iter().map(|b| b["started"].as_i64().unwrap()).collect()
    };
    let (one, two) = (started_in(&history), started_in(&again));
    let start = |h: &Value| chrono::DateTime::parse_from_rfc3339(h["buckets"][0]["start"].as_str().unwrap()).unwrap();
    let shift = usize::try_from((start(&again) - start(&history)).num_seconds() / 10).unwrap();
    assert!(shift < 10, "{shift} buckets apart");
    assert_eq!(one[shift..80], two[..80 - shift], "the same counts, from the cache and the log");
}

#[tokio::test]
async fn the_console_stream_pushes_settings_figures_and_the_chart_and_ends_when_the_orchestrator_stops() {
    let mut suite = Suite::start(&Service::PARTICIPANTS).await;
    // A drain longer than `terminate` waits: only a stream that ends on SIGTERM lets it exit.
    let env = [
        ("TRACE_UI_URL", "http://jaeger.test:16686/"),
        ("GRAFANA_URL", "http://grafana.test:3000"),
        ("SHUTDOWN_GRACE_MS", "60000"),
    ];
    suite.spawn(Service::Orchestrator, &env).await;
    let mut stream = EventStream::open(&suite.url(Service::Orchestrator, "/console/stream?window_s=60")).await;

    // First the settings (the links without their trailing slash), then the figures and the chart.
    let Next::Event(name, settings) = stream.next(WAIT).await else { panic!("the stream ended at once") };
    assert_eq!(name, "settings");
    assert_eq!(settings["trace_ui_url"], "http://jaeger.test:16686", "{settings}");
    assert_eq!(settings["grafana_url"], "http://grafana.test:3000", "{settings}");
    assert_eq!(
        settings["steps"],
        json!(["reserve_inventory", "process_payment", "create_shipment", "send_confirmation"])
    );
    let live = stream.next_named("overview", WAIT).await;
    assert_eq!(live["overview"]["window_seconds"], 60, "{live}");
    assert_eq!(live["services"]["services"].as_array().unwrap().len(), 5, "{live}");
    let history = stream.next_named("history", WAIT).await;
    assert_eq!((history["bucket_seconds"].as_i64(), history["buckets"].as_array().map(Vec::len)), (Some(10), Some(90)));
    let total = |history: &Value, series: &str| -> i64 {
        history["buckets"].as_array().unwrap().iter().map(|b| b[series].as_i64().unwrap()).sum()
    };
    assert_eq!(total(&history, "started"), 0, "{history}");

    // An order completes: the next figures count it, and so does the chart at its next push
    // (once per 10 s bucket).
    let order = suite.accepted_order(&happy_order()).await;
    assert_eq!(suite.wait_terminal(order, WAIT).await["status"], "completed");
    // (An overview sent before the saga ended may still be on its way: wait for one after.)
    let counted = Poll::new(WAIT, Duration::ZERO)
        .holds(async || {
            let live = stream.next_named("overview", WAIT).await;
            live["overview"]["rates"]["completed"].as_f64().unwrap() > 0.0
        })
        .await;
    assert!(counted, "no overview counted the completed saga");
    let history = stream.next_named("history", WAIT).await;
    assert_eq!((total(&history, "started"), total(&history, "completed")), (1, 1), "{history}");
    assert_eq!(total(&history, "compensated"), 0, "{history}");

    // SIGTERM: the stream ends instead of holding the drain for its 60 s, and the orchestrator
    // exits cleanly (`terminate` waits 15 s at most).
    let status = suite.terminate(Service::Orchestrator).await;
    assert!(status.success(), "the orchestrator exited with {status}: {}", suite.log(Service::Orchestrator));
    loop {
        match stream.next(WAIT).await {
            Next::Ended => break,
            Next::Event(name, _) => assert_ne!(name, "problem", "a read failed while stopping"),
        }
    }
}

/// Waits for the console's counts to show `count` sagas in `status`.
async fn wait_for_count(page: &mut Page, status: &str, count: usize) {
    let chip = format!("document.querySelector('#counts button[data-status=\"{status}\"]').dataset.count");
    page.wait_until(&format!("{count} {status} in the counts"), &format!("{chip} === '{count}'"), WAIT).await;
}

#[tokio::test]
async fn an_operator_filters_the_console_reads_the_counts_and_the_chart_and_retries_the_filtered_sagas_in_bulk() {
    let chromium = Chromium::find();
    let mut suite =
        Suite::start(&[Service::Inventory, Service::Payment, Service::Shipping, Service::Notification]).await;
    suite.spawn(Service::Orchestrator, &[&[("COMPENSATION_BUDGET_MS", "1500")], &SLOW_CALL_ENV[..]].concat()).await;
    // Two completed orders, then four dead-lettered ones (as in saga_failures.rs): dave's three
    // and one of load-declined's, both declined by payment while inventory is dead when their
    // reservations must be released, for longer than the compensation budget.
    for _ in 0..2 {
        let order = suite.accepted_order(&happy_order()).await;
        assert_eq!(suite.wait_terminal(order, WAIT).await["status"], "completed");
    }
    suite.set_faults(Service::Payment, &json!({ "latency_ms": SLOW_CALL_MS })).await;
    let mut daves = Vec::new();
    for _ in 0..3 {
        daves.push(suite.accepted_order(&order_body("dave", &[("WIDGET-1", 1)], "FR")).await);
    }
    let other = suite.accepted_order(&order_body("load-declined", &[("WIDGET-1", 1)], "FR")).await;
    for &order in daves.iter().chain([&other]) {
        suite.wait_for_step(order, 0, "succeeded").await;
    }
    suite.kill(Service::Inventory).await;
    for &order in daves.iter().chain([&other]) {
        assert_eq!(suite.wait_terminal(order, WAIT).await["status"], "failed");
    }

    // The failed ones, then only dave's: typed in the customer field, as an operator would.
    let mut page = chromium.open(&console_url(&suite, "#status=failed")).await;
    page.wait_until("the console", "document.body.dataset.state === 'ready'", WAIT).await;
    wait_for_count(&mut page, "failed", 4).await;
    page.eval(
        "const customer = document.getElementById('customer-filter'); customer.value = 'dave'; \
         customer.dispatchEvent(new Event('input'))",
    )
    .await;
    page.wait_until("dave's filter in the link", "location.hash === '#status=failed&customer=dave'", WAIT).await;
    wait_for_count(&mut page, "failed", 3).await;
    wait_for_count(&mut page, "completed", 0).await;
    let rows = "[...document.querySelectorAll('#saga-list tbody tr')].map(r => r.dataset.orderId)";
    page.wait_until("dave's three sagas listed", &format!("{rows}.length === 3"), WAIT).await;
    let mut listed: Vec<String> =
        serde_json::from_value(page.eval(rows).await).unwrap_or_else(|e| panic!("the list's ids: {e}"));
    listed.sort();
    let mut expected: Vec<String> = daves.iter().map(Uuid::to_string).collect();
    expected.sort();
    assert_eq!(listed, expected, "only dave's failed sagas");
    // The chart drew the last 15 minutes: six sagas started, two completed.
    let chart = "document.getElementById('chart')";
    page.wait_until("the chart", &format!("{chart}.dataset.buckets === '90'"), WAIT).await;
    let series = "[...document.querySelectorAll('#chart-svg polyline')].map(l => [l.dataset.series, l.dataset.total])";
    assert_eq!(page.eval(series).await, json!([["started", "6"], ["completed", "2"], ["compensated", "0"]]));
    page.screenshot(&artifacts_dir().join("console-filtered.png")).await;

    // A bulk retry asks first, with the count and the filter.
    suite.spawn(Service::Inventory, &[]).await;
    assert_eq!(page.eval("document.getElementById('bulk-cancel').disabled").await, true, "nothing to cancel");
    keep_token(&mut page, saga_tests::ADMIN_TOKEN).await;
    page.eval("document.getElementById('bulk-retry').click()").await;
    page.wait_until("the confirmation", "document.getElementById('bulk-dialog').open", WAIT).await;
    let asked = page
        .eval("[document.getElementById('bulk-title').textContent, document.getElementById('bulk-filter').textContent]")
        .await;
    assert_eq!(asked, json!(["Retry 3 failed sagas?", "Matching: status failed, customer_id dave"]));
    page.eval(
        "document.getElementById('bulk-operator').value = 'ops-carol'; \
         document.getElementById('bulk-reason').value = 'inventory is back'",
    )
    .await;
    page.screenshot(&artifacts_dir().join("console-bulk-confirm.png")).await;
    page.eval("document.getElementById('bulk-confirm').click()").await;
    let progress = "document.getElementById('bulk-progress')";
    page.wait_until("the batch done", &format!("{progress}.dataset.status === 'done'"), WAIT).await;
    let text = page.eval(&format!("{progress}.textContent")).await;
    assert!(text.as_str().unwrap().contains("3 of 3 acted on · 3 done, 0 refused, 0 failed"), "{text}");
    let batch_id = page.eval(&format!("{progress}.dataset.batchId")).await;
    let batch_id = batch_id.as_str().unwrap();

    // Each of dave's sagas was retried once, by the batch, and compensates; the other stays failed.
    for &order in &daves {
        assert_eq!(suite.wait_terminal(order, WAIT).await["status"], "compensated");
        let events = suite.events(order).await;
        let operator: Vec<&Value> = events.iter().filter(|e| e["kind"] == "operator").collect();
        assert_eq!(operator.len(), 1, "{events:?}");
        assert_eq!(operator[0]["actor"], "ops-carol");
        assert_eq!(operator[0]["detail"], format!("batch {batch_id}: inventory is back"));
    }
    assert_eq!(suite.order(other).await["status"], "failed", "not in the filter, not retried");
    wait_for_count(&mut page, "compensated", 3).await;
    page.screenshot(&artifacts_dir().join("console-bulk-done.png")).await;
}

#[tokio::test]
async fn a_filter_changed_on_a_later_page_lists_from_the_newest_saga() {
    let chromium = Chromium::find();
    let suite = Suite::start(&Service::SUITE).await;
    // 51 orders: two pages of the console's 50.
    let mut placed = Vec::new();
    for _ in 0..51 {
        placed.push(suite.accepted_order(&happy_order()).await);
    }
    for &order in &placed {
        suite.wait_terminal(order, WAIT).await;
    }
    let mut page = chromium.open(&console_url(&suite, "")).await;
    page.wait_until("the console", "document.body.dataset.state === 'ready'", WAIT).await;
    let info = "document.getElementById('page-info').textContent";
    page.eval("document.getElementById('older').click()").await;
    page.wait_until("the second page", &format!("{info} === 'page 2 · 1 shown'"), WAIT).await;

    // The status filter, then the customer field: each time the list starts again from the top.
    page.eval(
        "const status = document.getElementById('status-filter'); status.value = 'completed'; \
         status.dispatchEvent(new Event('change'))",
    )
    .await;
    page.wait_until("the first page of completed", &format!("{info} === 'page 1 · 50 shown'"), WAIT).await;
    let first_row = "document.querySelector('#saga-list tbody tr').dataset.orderId";
    assert_eq!(page.eval(first_row).await, placed[50].to_string(), "the newest first");
    page.eval("document.getElementById('older').click()").await;
    page.wait_until("the second page again", &format!("{info} === 'page 2 · 1 shown'"), WAIT).await;
    page.eval(
        "const customer = document.getElementById('customer-filter'); customer.value = 'alice'; \
         customer.dispatchEvent(new Event('input'))",
    )
    .await;
    page.wait_until("the first page of alice's", &format!("{info} === 'page 1 · 50 shown'"), WAIT).await;
    assert_eq!(page.eval(first_row).await, placed[50].to_string());
}
