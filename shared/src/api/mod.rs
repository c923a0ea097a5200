//! Wire DTOs of the participants' HTTP contract, imported by the services and their callers alike.
//!
//! Requests are built from small validated types, so a request that deserializes is a valid one:
//! bad values are refused at the edge with 422 and never reach SQL.

mod batches;
mod orders;
mod records;
mod types;
mod wire_enum;

pub use batches::{BatchAction, BatchFilter, BatchItem, BatchRequest, BatchResult, BatchStatus, BatchView};
pub use orders::{
    EventKind, EventOutcome, OperatorAction, OrderRequest, OrderView, SagaEvent, SagaStatus, StepStatus, StepView,
};
pub use records::{NotificationStatus, PaymentStatus, RecordState, ReservationStatus, ShipmentStatus, StepRecord};

pub use types::{AmountCents, CountryCode, CustomerId, Items, Quantity, Sku, Text};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// One order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Product code.
    pub sku: Sku,
    /// Units, 1–1000.
    pub quantity: Quantity,
}

/// `PUT /reservations/{order_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationRequest {
    /// 1–50 order lines.
    pub items: Items,
}

/// A reservation as stored by inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reservation {
    /// The order this reservation belongs to.
    pub order_id: Uuid,
    /// `reserved`, or `released` once compensated.
    pub status: ReservationStatus,
    /// True when the release came before any reservation (a tombstone that refuses a late `PUT`).
    pub tombstone: bool,
    /// The reserved lines (empty for a tombstone).
    pub items: Vec<Item>,
    /// Sum of quantity × unit price at reservation time.
    pub total_cents: i64,
    /// When the row was first written.
    pub created_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

/// `GET /products/{sku}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// Product code.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Unit price in cents.
    pub price_cents: i64,
    /// Units that can still be reserved.
    pub available: i32,
    /// Units held by live reservations.
    pub reserved: i32,
}

/// `PUT /payments/{order_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// The paying customer.
    pub customer_id: CustomerId,
    /// Amount to capture, in cents.
    pub amount_cents: AmountCents,
}

/// A payment as stored by payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    /// The order paid for.
    pub order_id: Uuid,
    /// `captured`, or `refunded` once compensated.
    pub status: PaymentStatus,
    /// True when the refund came before any capture (a tombstone that refuses a late `PUT`).
    pub tombstone: bool,
    /// The paying customer (absent for a tombstone).
    pub customer_id: Option<String>,
    /// The captured amount (absent for a tombstone).
    pub amount_cents: Option<i64>,
    /// When the row was first written.
    pub created_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

/// `GET /accounts/{customer_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    /// The customer.
    pub customer_id: String,
    /// Current balance in cents.
    pub balance_cents: i64,
}

/// A delivery address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Recipient name.
    pub name: Text<100>,
    /// Street and number.
    pub line1: Text<200>,
    /// City.
    pub city: Text<100>,
    /// Postal code.
    pub postal_code: Text<16>,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: CountryCode,
}

/// `PUT /shipments/{order_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentRequest {
    /// Where to deliver.
    pub address: Address,
    /// What to ship (1–50 lines).
    pub items: Items,
}

/// A shipment as stored by shipping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Shipment {
    /// The order shipped.
    pub order_id: Uuid,
    /// `created`, or `cancelled` once compensated.
    pub status: ShipmentStatus,
    /// True when the cancellation came before any shipment (a tombstone that refuses a late `PUT`).
    pub tombstone: bool,
    /// Carrier tracking number (absent for a tombstone).
    pub tracking_number: Option<String>,
    /// Destination country (absent for a tombstone).
    pub country: Option<String>,
    /// When the row was first written.
    pub created_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

/// `PUT /notifications/{order_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationRequest {
    /// Who to notify.
    pub customer_id: CustomerId,
}

/// A notification record as stored by notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    /// The order notified about.
    pub order_id: Uuid,
    /// `sent` (confirmation sent), or `cancelled` once compensated.
    pub status: NotificationStatus,
    /// True when the cancellation came before any confirmation (no notice is then needed).
    pub tombstone: bool,
    /// The customer notified (absent for a tombstone).
    pub customer_id: Option<String>,
    /// The confirmation text sent.
    pub confirmation: Option<String>,
    /// The cancellation notice sent after a confirmation, if compensated.
    pub cancellation_notice: Option<String>,
    /// When the row was first written.
    pub created_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}
