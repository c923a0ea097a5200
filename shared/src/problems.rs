//! The catalogue of problem types, written once: every `type` a service answers with
//! (`/problems/<slug>`), its title and its status. Handlers name a [`ProblemType`] and say what
//! happened; docs/api.md lists the same table, and a test keeps the two equal.

use axum::http::StatusCode;

macro_rules! problem_types {
    ($($(#[$doc:meta])* $variant:ident = ($status:ident, $slug:literal, $title:literal),)+) => {
        /// Every kind of problem a service of the suite answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemType {
            $($(#[$doc])* $variant,)+
        }

        impl ProblemType {
            /// Every problem type, in the order of the table in docs/api.md.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The last part of its `type` (`/problems/<slug>`).
            pub const fn slug(self) -> &'static str {
                match self {
                    $(Self::$variant => $slug,)+
                }
            }

            /// Its short summary (the same for every occurrence).
            pub const fn title(self) -> &'static str {
                match self {
                    $(Self::$variant => $title,)+
                }
            }

            /// The status it is answered with.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(Self::$variant => StatusCode::$status,)+
                }
            }
        }
    };
}

problem_types! {
    /// The body is not JSON.
    MalformedJson = (BAD_REQUEST, "malformed-json", "Malformed JSON"),
    /// A malformed path parameter (an order id that is not a UUID).
    InvalidPath = (BAD_REQUEST, "invalid-path", "Invalid path parameter"),
    /// Another unreadable body.
    BadRequest = (BAD_REQUEST, "bad-request", "Unreadable request body"),
    /// A malformed or out-of-range query parameter.
    InvalidQuery = (BAD_REQUEST, "invalid-query", "Invalid query string"),
    /// An `Idempotency-Key` that is not 1 to 255 visible ASCII characters.
    InvalidIdempotencyKey = (BAD_REQUEST, "invalid-idempotency-key", "Invalid Idempotency-Key"),
    /// No bearer token where one is needed.
    Unauthorized = (UNAUTHORIZED, "unauthorized", "Authentication required"),
    /// Balance too low, or the card is always declined.
    PaymentDeclined = (PAYMENT_REQUIRED, "payment-declined", "Payment declined"),
    /// The wrong token, or none configured.
    Forbidden = (FORBIDDEN, "forbidden", "Forbidden"),
    /// No such order, product, account or route.
    NotFound = (NOT_FOUND, "not-found", "Not found"),
    /// A route that does not accept that method.
    MethodNotAllowed = (METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
    /// Not enough available stock.
    OutOfStock = (CONFLICT, "out-of-stock", "Out of stock"),
    /// A `PUT` for an order that was compensated or tombstoned.
    AlreadyCompensated = (CONFLICT, "already-compensated", "This order's step was compensated"),
    /// An operator action the saga's status does not allow.
    InvalidState = (CONFLICT, "invalid-state", "Not possible in the saga's current state"),
    /// The body exceeds `BODY_LIMIT_BYTES`.
    BodyTooLarge = (PAYLOAD_TOO_LARGE, "body-too-large", "Request body too large"),
    /// No `Content-Type: application/json`.
    UnsupportedMediaType = (UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Expected application/json"),
    /// Values that break a rule.
    Validation = (UNPROCESSABLE_ENTITY, "validation", "Invalid request"),
    /// Another body for an order already done, or for an `Idempotency-Key` already used.
    IdempotencyMismatch = (UNPROCESSABLE_ENTITY, "idempotency-mismatch", "Request differs from the first one for this order"),
    /// A sku that does not exist.
    UnknownSku = (UNPROCESSABLE_ENTITY, "unknown-sku", "Unknown product"),
    /// A customer without an account.
    UnknownCustomer = (UNPROCESSABLE_ENTITY, "unknown-customer", "Unknown customer"),
    /// An undeliverable country.
    Undeliverable = (UNPROCESSABLE_ENTITY, "undeliverable", "Undeliverable address"),
    /// An order whose total payment cannot charge.
    InvalidTotal = (UNPROCESSABLE_ENTITY, "invalid-total", "The order's total cannot be charged"),
    /// A failure on our side (logged with its cause).
    Internal = (INTERNAL_SERVER_ERROR, "internal", "Internal error"),
    /// The error-rate fault.
    InjectedFault = (SERVICE_UNAVAILABLE, "injected-fault", "Injected fault"),
    /// The request ran longer than `REQUEST_TIMEOUT_MS`.
    Timeout = (SERVICE_UNAVAILABLE, "timeout", "Request timed out"),
    /// The database is unreachable or saturated.
    Unavailable = (SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
    /// More work in flight or queued than this process takes (with `Retry-After`).
    Overloaded = (SERVICE_UNAVAILABLE, "overloaded", "Overloaded"),
    /// `/readyz` while a part of the service is down.
    NotReady = (SERVICE_UNAVAILABLE, "not-ready", "Not ready"),
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::ProblemType;

    #[test]
    fn slugs_are_unique() {
        let slugs: HashSet<_> = ProblemType::ALL.iter().map(|kind| kind.slug()).collect();
        assert_eq!(slugs.len(), ProblemType::ALL.len());
    }

    #[test]
    fn docs_api_lists_exactly_the_catalogue() {
        // The rows `| 404 | `/problems/not-found` | … |` of docs/api.md, in order.
        let api = include_str!("../../docs/api.md");
        let documented: Vec<(u16, &str)> = api
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let status = cells.next()?.parse().ok()?;
                let slug = cells.next()?.strip_prefix("`/problems/")?.strip_suffix('`')?;
                Some((status, slug))
            })
            .collect();
        let catalogue: Vec<(u16, &str)> =
            ProblemType::ALL.iter().map(|kind| (kind.status().as_u16(), kind.slug())).collect();
        assert_eq!(documented, catalogue);
    }
}
