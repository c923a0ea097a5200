//! Validated primitives: each can only hold a value our rules accept, and its OpenAPI schema
//! states the same rule (so generated clients and fuzzers agree with the server).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::openapi::{ArrayBuilder, ObjectBuilder, RefOr, Schema, schema::Type};

/// Declares a string newtype validated by `check`, with an OpenAPI string schema.
macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, pattern = $pattern:expr, max = $max:expr, check = $check:expr, expect = $expect:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The validated value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                let check: fn(&str) -> bool = $check;
                if check(&value) {
                    Ok(Self(value))
                } else {
                    Err(format!("{:?} is not a valid {}: expected {}", value, stringify!($name), $expect))
                }
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some($pattern))
                    .min_length(Some(1))
                    .max_length(Some($max))
                    .description(Some($expect))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

validated_string!(
    /// A product code: upper-case letters, digits and dashes, starting with a letter or digit.
    Sku,
    pattern = "^[A-Z0-9][A-Z0-9-]{0,31}$",
    max = 32,
    check = |s| {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c.is_ascii_digit())
            && s.len() <= 32
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
    },
    expect = "1-32 characters of A-Z, 0-9 and '-', not starting with '-'"
);

validated_string!(
    /// A customer id: lower-case letters, digits, '_' and '-'.
    CustomerId,
    pattern = "^[a-z0-9][a-z0-9_-]{0,63}$",
    max = 64,
    check = |s| {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.len() <= 64
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    },
    expect = "1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"
);

validated_string!(
    /// An ISO 3166-1 alpha-2 country code in upper case.
    CountryCode,
    pattern = "^[A-Z]{2}$",
    max = 2,
    check = |s| s.len() == 2 && s.chars().all(|c| c.is_ascii_uppercase()),
    expect = "two upper-case letters (ISO 3166-1 alpha-2)"
);

/// Free text of at most `MAX` characters, with at least one visible character, and none that is
/// a control character or changes the text's direction (see [`is_refused_in_text`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text<const MAX: usize>(String);

/// The characters `Text` refuses, as a regex character class (for the schema; the check is
/// [`is_refused_in_text`]).
macro_rules! refused_class {
    () => {
        "\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069"
    };
}

/// The rule of `Text`, written once for the check and (as a regex) for the schema.
const TEXT_PATTERN: &str =
    concat!("^[^", refused_class!(), "]*[^\\x20", refused_class!(), "][^", refused_class!(), "]*$");

/// Whether `Text` refuses `c`:
/// - control characters (C0, DEL and C1): Postgres cannot store NUL, and none belongs in a
///   name, an address or a reason; line breaks would forge lines in logs and timelines;
/// - the line and paragraph separators U+2028 and U+2029, line breaks by another name;
/// - the bidirectional formatting characters (U+061C, U+200E, U+200F, U+202A–U+202E,
///   U+2066–U+2069): they make text display in another order than it is stored (an address
///   or an operator's reason that reads differently on the console than in the database).
pub(crate) fn is_refused_in_text(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl<const MAX: usize> Text<MAX> {
    /// The validated value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> TryFrom<String> for Text<MAX> {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let length = value.chars().count();
        if length == 0 || length > MAX {
            Err(format!("text must be 1-{MAX} characters long, got {length}"))
        } else if let Some(c) = value.chars().find(|&c| is_refused_in_text(c)) {
            Err(format!(
                "text must not contain control or bidirectional-formatting characters (found U+{:04X})",
                u32::from(c)
            ))
        } else if value.chars().all(|c| c == ' ') {
            Err("text must not be blank".to_owned())
        } else {
            Ok(Self(value))
        }
    }
}

impl<const MAX: usize> From<Text<MAX>> for String {
    fn from(value: Text<MAX>) -> String {
        value.0
    }
}

impl<const MAX: usize> utoipa::PartialSchema for Text<MAX> {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(TEXT_PATTERN))
            .min_length(Some(1))
            .max_length(Some(MAX))
            .into()
    }
}

impl<const MAX: usize> utoipa::ToSchema for Text<MAX> {
    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("Text{MAX}"))
    }
}

/// Units of one line: 1–1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Quantity(u32);

impl Quantity {
    /// Largest quantity one line may ask for.
    pub const MAX: u32 = 1000;

    /// The validated value.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Quantity {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        match u32::try_from(value) {
            Ok(q) if (1..=Self::MAX).contains(&q) => Ok(Self(q)),
            _ => Err(format!("quantity must be between 1 and {}, got {value}", Self::MAX)),
        }
    }
}

impl From<Quantity> for i64 {
    fn from(value: Quantity) -> i64 {
        i64::from(value.0)
    }
}

impl utoipa::PartialSchema for Quantity {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int32)))
            .minimum(Some(1))
            .maximum(Some(Self::MAX))
            .into()
    }
}

impl utoipa::ToSchema for Quantity {}

/// A positive amount of money in cents, at most 10^10 (100 million in currency units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct AmountCents(i64);

impl AmountCents {
    /// Largest amount accepted.
    pub const MAX: i64 = 10_000_000_000;

    /// The validated value.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for AmountCents {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("amount_cents must be between 1 and {}, got {value}", Self::MAX))
        }
    }
}

impl From<AmountCents> for i64 {
    fn from(value: AmountCents) -> i64 {
        value.0
    }
}

impl utoipa::PartialSchema for AmountCents {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
            .minimum(Some(1))
            .maximum(Some(Self::MAX))
            .into()
    }
}

impl utoipa::ToSchema for AmountCents {}

/// 1–50 order lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<super::Item>", into = "Vec<super::Item>")]
pub struct Items(Vec<super::Item>);

impl Items {
    /// Most lines one order may have.
    pub const MAX: usize = 50;

    /// The lines, in request order.
    pub fn as_slice(&self) -> &[super::Item] {
        &self.0
    }

    /// Quantities summed per sku, sorted by sku (a stable lock order for the rows they touch).
    pub fn merged(&self) -> Vec<(String, i64)> {
        let mut totals = std::collections::BTreeMap::<&str, i64>::new();
        for item in &self.0 {
            *totals.entry(item.sku.as_str()).or_default() += i64::from(item.quantity);
        }
        totals.into_iter().map(|(sku, q)| (sku.to_owned(), q)).collect()
    }
}

impl TryFrom<Vec<super::Item>> for Items {
    type Error = String;
    fn try_from(items: Vec<super::Item>) -> Result<Self, Self::Error> {
        if items.is_empty() || items.len() > Self::MAX {
            Err(format!("items must have 1 to {} lines, got {}", Self::MAX, items.len()))
        } else {
            Ok(Self(items))
        }
    }
}

impl From<Items> for Vec<super::Item> {
    fn from(value: Items) -> Self {
        value.0
    }
}

impl utoipa::PartialSchema for Items {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(<super::Item as utoipa::PartialSchema>::schema())
            .min_items(Some(1))
            .max_items(Some(Self::MAX))
            .into()
    }
}

impl utoipa::ToSchema for Items {
    // The array schema inlines `Item`, which refers to `Sku` and `Quantity` by name: register
    // them so every document that uses `Items` resolves.
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((<Sku as utoipa::ToSchema>::name().into_owned(), <Sku as utoipa::PartialSchema>::schema()));
        schemas
            .push((<Quantity as utoipa::ToSchema>::name().into_owned(), <Quantity as utoipa::PartialSchema>::schema()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_follow_the_documented_pattern() {
        assert!(Sku::try_from("WIDGET-1".to_owned()).is_ok());
        for bad in ["", "-X", "widget", "A B", &"A".repeat(33)] {
            assert!(Sku::try_from(bad.to_owned()).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn quantities_must_be_between_one_and_a_thousand() {
        assert!(Quantity::try_from(1).is_ok());
        assert!(Quantity::try_from(1000).is_ok());
        for bad in [0, -1, 1001, i64::MAX] {
            assert!(Quantity::try_from(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn text_refuses_control_characters_and_blanks() {
        assert!(Text::<10>::try_from("Ada".to_owned()).is_ok());
        for bad in ["", "   ", "a\u{0}b", "line\nbreak", "01234567890", "a\u{85}b", "a\u{7f}"] {
            assert!(Text::<10>::try_from(bad.to_owned()).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn text_refuses_every_bidirectional_formatting_character_and_names_it() {
        let bidi = ['\u{061c}', '\u{200e}', '\u{200f}', '\u{2028}', '\u{2029}']
            .into_iter()
            .chain('\u{202a}'..='\u{202e}')
            .chain('\u{2066}'..='\u{2069}');
        for c in bidi {
            let refused = Text::<20>::try_from(format!("evil{c}txt.exe"));
            assert!(refused.as_ref().is_err_and(|e| e.contains(&format!("U+{:04X}", u32::from(c)))), "{refused:?}");
        }
        // Letters of right-to-left scripts are text like any other; only the overrides are refused.
        for fine in
            ["\u{05e9}\u{05dc}\u{05d5}\u{05dd}", "Zo\u{eb} M\u{fc}ller", "\u{6771}\u{4eac}", "caf\u{e9} \u{2014} 12"]
        {
            assert!(Text::<20>::try_from(fine.to_owned()).is_ok(), "{fine:?} refused");
        }
    }

    #[test]
    fn merged_items_sum_quantities_per_sku_in_sku_order() -> Result<(), String> {
        let item = |sku: &str, q: i64| -> Result<super::super::Item, String> {
            Ok(super::super::Item { sku: Sku::try_from(sku.to_owned())?, quantity: Quantity::try_from(q)? })
        };
        let items = Items::try_from(vec![item("B", 1)?, item("A", 2)?, item("B", 3)?])?;
        assert_eq!(items.merged(), vec![("A".to_owned(), 2), ("B".to_owned(), 4)]);
        Ok(())
    }
}
