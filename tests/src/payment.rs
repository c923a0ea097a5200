//! Payment's test helpers: a capture body and an account's balance.

use serde_json::{Value, json};

use crate::{Suite, processes::Service};

/// A `PUT /payments/{order_id}` body: take `amount` cents from `customer`.
pub fn capture(customer: &str, amount: i64) -> Value {
    json!({ "customer_id": customer, "amount_cents": amount })
}

impl Suite {
    /// `customer`'s balance in cents, read from payment.
    pub async fn balance(&self, customer: &str) -> i64 {
        let account = self.http.get(&self.url(Service::Payment, &format!("/accounts/{customer}"))).await;
        assert_eq!(account.status, 200, "{}", account.body);
        account.body["balance_cents"].as_i64().unwrap()
    }
}
