//! Values that used to slip through: an order total that is zero or cannot be charged is a 422
//! refusal (not a 500, and not a saga stuck on an uncharged payment), and text fields refuse
//! control and bidirectional-formatting characters with a 422 naming the field.

use std::time::Duration;

use reqwest::Method;
use saga_tests::{Service, Suite, happy_order, order_body};
use serde_json::{Value, json};
use uuid::Uuid;

/// Products whose totals cannot be charged: free, priced so that 20 overflow an `i64`, and
/// priced so that 11 cost more than the 10^10 cents a payment may take.
const PRICED_WRONG: &str = "insert into inventory.products (sku, name, price_cents, available) values \
     ('FREE-1', 'Free sample', 0, 100), ('HUGE-1', 'Overflowing', 922337203685477580, 100), \
     ('DEAR-1', 'Too dear', 1000000000, 100)";

#[tokio::test]
async fn an_order_total_that_is_zero_or_cannot_be_charged_is_refused_with_422_and_takes_nothing() {
    let suite = Suite::start(&Service::SUITE).await;
    let db = suite.db.superuser_pool().await.unwrap();
    sqlx::query(PRICED_WRONG).execute(&db).await.unwrap();

    for (sku, quantity, why) in
        [("FREE-1", 1, "is zero"), ("HUGE-1", 20, "overflows"), ("DEAR-1", 11, "11000000000 cents")]
    {
        let url = suite.url(Service::Inventory, &format!("/reservations/{}", Uuid::new_v4()));
        let answer = suite.http.put(&url, &json!({ "items": [{ "sku": sku, "quantity": quantity }] })).await;
        assert_eq!(answer.assert_problem(422), "/problems/invalid-total", "{sku}: {}", answer.body);
        assert!(answer.body["detail"].as_str().unwrap_or_default().contains(why), "{sku}: {}", answer.body);
        assert_eq!(suite.http.get(&url).await.status, 404, "{sku}: a refused reservation was recorded");
        let product = suite.http.get(&suite.url(Service::Inventory, &format!("/products/{sku}"))).await;
        assert_eq!(
            (product.body["available"].as_i64(), product.body["reserved"].as_i64()),
            (Some(100), Some(0)),
            "{sku}"
        );
    }
    // A free line beside a priced one is fine: the order's total is what must be chargeable.
    let mixed = suite.url(Service::Inventory, &format!("/reservations/{}", Uuid::new_v4()));
    let answer = suite
        .http
        .put(&mixed, &json!({ "items": [{ "sku": "FREE-1", "quantity": 2 }, { "sku": "WIDGET-1", "quantity": 1 }] }))
        .await;
    assert_eq!((answer.status.as_u16(), answer.body["total_cents"].as_i64()), (201, Some(1299)), "{}", answer.body);

    // Payment refuses amounts it cannot take the same way, naming the field.
    let payment = suite.url(Service::Payment, &format!("/payments/{}", Uuid::new_v4()));
    for amount in ["0", "10000000001", "9223372036854775808", "1e30"] {
        let body = format!(r#"{{"customer_id":"alice","amount_cents":{amount}}}"#).into_bytes();
        let answer = suite.http.send_raw(Method::PUT, &payment, "application/json", body).await.unwrap();
        assert_eq!(answer.assert_problem(422), "/problems/validation", "{amount}: {}", answer.body);
        assert!(
            answer.body["detail"].as_str().unwrap_or_default().contains("amount_cents"),
            "{amount}: {}",
            answer.body
        );
    }
    assert_eq!(suite.http.get(&payment).await.status, 404);

    // Through the saga: the reservation is refused for good, and nothing is left to undo.
    let order = suite.accepted_order(&order_body("alice", &[("FREE-1", 3)], "FR")).await;
    let saga = suite.wait_terminal(order, Duration::from_secs(20)).await;
    assert_eq!(saga["status"], "compensated", "{saga}");
    assert!(suite.timeline(order).await.contains(&"action:reserve_inventory:permanent".to_owned()), "{saga}");
}

/// Characters no text field takes: bidirectional overrides, isolates and marks (which make
/// text display in another order than it is stored), and control characters, C1 included.
const REFUSED: [char; 8] = ['\u{202e}', '\u{202a}', '\u{2066}', '\u{2069}', '\u{200f}', '\u{061c}', '\u{85}', '\u{1b}'];

/// `body` with the string at `path` (dot-separated; numbers index arrays) replaced by `value`.
fn with(body: &Value, path: &str, value: &str) -> Value {
    let mut body = body.clone();
    let target = path.split('.').fold(&mut body, |node, key| match key.parse::<usize>() {
        Ok(index) => &mut node[index],
        Err(_) => &mut node[key],
    });
    *target = json!(value);
    body
}

/// Asserts a 422 problem whose detail names `field` and the refused character.
#[track_caller]
fn assert_refused(answer: &saga_tests::Answer, field: &str, c: char) {
    assert_eq!(answer.assert_problem(422), "/problems/validation", "{field} {c:?}: {}", answer.body);
    let detail = answer.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(field), "the 422 does not name {field}: {detail}");
}

#[tokio::test]
async fn text_fields_refuse_control_and_bidi_characters_with_a_422_naming_the_field() {
    let suite = Suite::start(&Service::SUITE).await;
    let orders = suite.url(Service::Orchestrator, "/orders");
    let order = happy_order();
    let fields = [
        "customer_id",
        "items.0.sku",
        "shipping_address.name",
        "shipping_address.line1",
        "shipping_address.city",
        "shipping_address.postal_code",
    ];
    for (i, field) in fields.iter().enumerate() {
        for (j, c) in REFUSED.iter().enumerate() {
            // Vary where the character sits: inside, first, last.
            let original = field.split('.').fold(&order, |node, key| match key.parse::<usize>() {
                Ok(index) => &node[index],
                Err(_) => &node[key],
            });
            let original = original.as_str().unwrap();
            let value = match (i + j) % 3 {
                0 => format!("{}{c}{}", &original[..1], &original[1..]),
                1 => format!("{c}{original}"),
                _ => format!("{original}{c}"),
            };
            let answer = suite.http.send(Method::POST, &orders, Some(&with(&order, field, &value))).await.unwrap();
            let named = field.replace(".0.", "[0].");
            assert_refused(&answer, &named, *c);
        }
    }
    let listed = suite.http.get(&suite.url(Service::Orchestrator, "/orders")).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(0), "a refused order started a saga: {}", listed.body);

    // A participant refuses them the same way, and records nothing.
    let shipment = suite.url(Service::Shipping, &format!("/shipments/{}", Uuid::new_v4()));
    let body = json!({ "address": order["shipping_address"], "items": order["items"] });
    let answer = suite.http.put(&shipment, &with(&body, "address.city", "Lon\u{202e}nod")).await;
    assert_refused(&answer, "address.city", '\u{202e}');
    assert_eq!(suite.http.get(&shipment).await.status, 404);

    // So do the operator's name and reason, recorded in the timeline and shown on the console.
    for (field, value) in [("reason", "refund \u{202e}999"), ("operator", "ops\u{2067}")] {
        let answer = suite.operator_action(Uuid::new_v4(), "cancel", Some(&json!({ field: value }))).await;
        assert_refused(&answer, field, value.chars().find(|c| !c.is_ascii()).unwrap_or(' '));
    }
    // Right-to-left letters are ordinary text.
    let hebrew = with(&order, "shipping_address.name", "\u{05d3}\u{05d5}\u{05d3} \u{05db}\u{05d4}\u{05df}");
    assert_eq!(suite.http.send(Method::POST, &orders, Some(&hebrew)).await.unwrap().status, 202);
}
