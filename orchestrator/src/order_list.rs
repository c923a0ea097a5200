//! Which sagas an operator means: the filter of `GET /orders`, `/console/counts` and batch
//! operations, read and checked in one place, and the search by id prefix (which ids a prefix
//! selects, as one range of the primary key, so a search is an index range scan rather than a
//! `like` over every id).

use std::time::Duration;

use chrono::{DateTime, Utc};
use saga_engine::log::SagaFilter;
use saga_shared::api::SagaStatus;
use uuid::Uuid;

/// Longest `customer_id` filter (an order's customer id is at most this long).
const MAX_CUSTOMER_LENGTH: usize = 64;
/// Longest `reason` filter.
const MAX_REASON_LENGTH: usize = 200;

/// A filter as an operator writes it (query parameters or a batch's JSON).
#[derive(Debug, Default, Clone, Copy)]
pub struct FilterText<'a> {
    pub status: Option<SagaStatus>,
    pub order_id_prefix: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub step: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub stuck: bool,
}

impl FilterText<'_> {
    /// The filter it means, for a saga of `step_names`, where `stuck_after` without progress is
    /// stuck; or why it means nothing (the message names the parameter).
    pub fn resolve(&self, step_names: &[&str], stuck_after: Duration) -> Result<SagaFilter, String> {
        let id_range = match self.order_id_prefix.map(id_prefix).transpose()? {
            Some(IdPrefix::Range(first, last)) => Some((first, last)),
            // More digits than an id: an empty range.
            Some(IdPrefix::Nothing) => Some((Uuid::max(), Uuid::nil())),
            None => None,
        };
        let step_index = match self.step {
            Some(name) => {
                let index = step_names
                    .iter()
                    .position(|step| *step == name)
                    .ok_or_else(|| format!("step must be one of {}", step_names.join(", ")))?;
                Some(i32::try_from(index).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let too_long_or_nul =
            |text: Option<&str>, max: usize| text.is_some_and(|t| t.chars().count() > max || t.contains('\0'));
        if too_long_or_nul(self.customer_id, MAX_CUSTOMER_LENGTH) || too_long_or_nul(self.reason, MAX_REASON_LENGTH) {
            return Err(format!(
                "customer_id is at most {MAX_CUSTOMER_LENGTH} characters, reason at most {MAX_REASON_LENGTH}, neither with NUL"
            ));
        }
        Ok(SagaFilter {
            status: self.status,
            id_range,
            customer_id: self.customer_id.map(str::to_owned),
            step_index,
            reason: self.reason.map(str::to_owned),
            created_after: self.created_after,
            created_before: self.created_before,
            stuck_for: self.stuck.then_some(stuck_after),
        })
    }
}

/// Longest accepted prefix: a whole id, dashes included.
pub const MAX_PREFIX_LENGTH: usize = 36;

/// The ids an `order_id_prefix` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdPrefix {
    /// Every id from the first to the last, both included.
    Range(Uuid, Uuid),
    /// No id: the prefix has more hex digits than an id.
    Nothing,
}

/// Reads a prefix of an order id (what the pattern of `order_id_prefix` in the OpenAPI document
/// says, no more and no less, so every schema-valid prefix gets a list): hex digits in either case, starting with one; dashes are
/// ignored, so the beginning of an id can be pasted as it is printed. Postgres compares ids
/// byte by byte, that is as their hex spelling reads, so the ids that start with a prefix are
/// the range from the prefix padded with `0`s to the prefix padded with `f`s.
pub fn id_prefix(text: &str) -> Result<IdPrefix, String> {
    let starts_with_digit = text.chars().next().is_some_and(|c| c.is_ascii_hexdigit());
    if text.len() > MAX_PREFIX_LENGTH || !starts_with_digit || !text.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    {
        return Err(format!(
            "order_id_prefix must be 1-{MAX_PREFIX_LENGTH} hex digits or dashes, starting with a hex digit"
        ));
    }
    let digits: String = text.chars().filter(char::is_ascii_hexdigit).map(|c| c.to_ascii_lowercase()).collect();
    if digits.len() > 32 {
        return Ok(IdPrefix::Nothing);
    }
    let padded = |pad: char| {
        let hex: String = digits.chars().chain(std::iter::repeat(pad)).take(32).collect();
        Uuid::try_parse(&hex).map_err(|e| format!("order_id_prefix: {e}"))
    };
    Ok(IdPrefix::Range(padded('0')?, padded('f')?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn range(text: &str) -> (String, String) {
        match id_prefix(text).unwrap() {
            IdPrefix::Range(first, last) => (first.to_string(), last.to_string()),
            IdPrefix::Nothing => panic!("{text} selects nothing"),
        }
    }

    const STEPS: [&str; 2] = ["reserve_inventory", "process_payment"];

    #[test]
    fn a_filter_names_steps_by_name_and_refuses_what_it_cannot_mean() {
        let resolve = |text: FilterText<'_>| text.resolve(&STEPS, Duration::from_secs(60));
        let filter =
            resolve(FilterText { step: Some("process_payment"), stuck: true, ..FilterText::default() }).unwrap();
        assert_eq!((filter.step_index, filter.stuck_for), (Some(1), Some(Duration::from_secs(60))));
        let unknown = resolve(FilterText { step: Some("ship"), ..FilterText::default() }).unwrap_err();
        assert_eq!(unknown, "step must be one of reserve_inventory, process_payment");
        let long = "x".repeat(65);
        assert!(resolve(FilterText { customer_id: Some(&long), ..FilterText::default() }).is_err());
        assert!(resolve(FilterText { reason: Some("a\0b"), ..FilterText::default() }).is_err());
        assert!(resolve(FilterText { order_id_prefix: Some("xyz"), ..FilterText::default() }).is_err());
        let nothing = resolve(FilterText { order_id_prefix: Some(&"a".repeat(33)), ..FilterText::default() }).unwrap();
        let (first, last) = nothing.id_range.unwrap();
        assert!(first > last, "an empty range");
    }

    #[test]
    fn a_prefix_selects_the_ids_from_its_zero_padding_to_its_f_padding() {
        assert_eq!(
            range("0190aB"),
            ("0190ab00-0000-0000-0000-000000000000".to_owned(), "0190abff-ffff-ffff-ffff-ffffffffffff".to_owned())
        );
    }

    #[test]
    fn dashes_are_ignored_so_a_printed_id_can_be_pasted() {
        let id = "0190ab12-3456-7def-8123-456789abcdef";
        assert_eq!(range(id), (id.to_owned(), id.to_owned()));
        assert_eq!(range("0190ab12-34"), range("0190ab1234"));
    }

    #[test]
    fn a_prefix_longer_than_an_id_selects_nothing() {
        assert_eq!(id_prefix("0190ab12-3456-7def-8123-456789abcdef0").ok(), None, "37 characters is too long");
        assert_eq!(id_prefix(&"a".repeat(33)).unwrap(), IdPrefix::Nothing);
    }

    #[test]
    fn anything_but_hex_digits_and_dashes_is_refused() {
        for bad in ["", "-0190", "xyz", "0190 ab", "0190%", "é"] {
            assert!(id_prefix(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
