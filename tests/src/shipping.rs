//! Shipping's test helpers: a shipment body.

use serde_json::{Value, json};

/// A `PUT /shipments/{order_id}` body: one widget to an address in `country`.
pub fn shipment(country: &str) -> Value {
    json!({
        "address": { "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London",
                     "postal_code": "SW1Y 4JH", "country": country },
        "items": [{ "sku": "WIDGET-1", "quantity": 1 }]
    })
}
