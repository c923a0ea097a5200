//! The order list's search by id prefix: which ids a prefix selects, as one range of the
//! primary key, so a search is an index range scan rather than a `like` over every id.

use uuid::Uuid;

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
