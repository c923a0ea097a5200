//! `wire_enum!`: a closed set of statuses or kinds with one spelling, shared by the JSON API,
//! the database columns and the metric labels, so no service compares free-form strings.

/// Declares a `Copy` enum whose variants each have one wire spelling: serde, `as_str`, `parse`,
/// `Display`, `TryFrom<String>` (for `#[sqlx(try_from = "String")]` columns) and the OpenAPI
/// schema all use it.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        // utoipa does not see the variants' `rename` through this macro, only this: every
        // spelling must be its variant's name in snake_case (a test checks the schema).
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$variant_meta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The one spelling of this value (API, database, metric label).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// Reads the spelling back; `None` for anything else.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text).ok_or_else(|| {
                    let known: Vec<&str> = Self::ALL.iter().map(|value| value.as_str()).collect();
                    format!("{text:?} is not a valid {} (one of: {})", stringify!($name), known.join(", "))
                })
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, Self::Error> {
                Self::parse(&text).ok_or_else(|| format!("{text:?} is not a valid {}", stringify!($name)))
            }
        }
    };
}

pub(crate) use wire_enum;

#[cfg(test)]
mod tests {
    wire_enum! {
        /// A test enum.
        pub enum Colour {
            /// Red.
            Red = "red",
            /// Dark blue.
            DarkBlue = "dark_blue",
        }
    }

    /// The values the OpenAPI schema of `T` allows.
    fn schema_values<T: utoipa::PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap_or_default();
        let values = schema["enum"].as_array().cloned().unwrap_or_default();
        values.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
    }

    /// The OpenAPI document promises exactly the spellings the JSON carries.
    #[test]
    fn every_schema_lists_the_wire_spellings() {
        macro_rules! check {
            ($($name:ty),+) => {$(
                let wire: Vec<String> = <$name>::ALL.iter().map(|v| v.as_str().to_owned()).collect();
                assert_eq!(schema_values::<$name>(), wire, "{}", stringify!($name));
            )+};
        }
        use crate::api::*;
        check!(
            Colour,
            RecordState,
            ReservationStatus,
            PaymentStatus,
            ShipmentStatus,
            NotificationStatus,
            SagaStatus,
            StepStatus,
            EventKind,
            EventOutcome
        );
    }

    #[test]
    fn every_value_round_trips_through_its_one_spelling() -> Result<(), String> {
        for &colour in Colour::ALL {
            assert_eq!(Colour::parse(colour.as_str()), Some(colour));
            assert_eq!(Colour::try_from(colour.to_string())?, colour);
            let json = serde_json::to_value(colour).map_err(|e| e.to_string())?;
            assert_eq!(json, serde_json::Value::String(colour.as_str().to_owned()));
        }
        assert_eq!(Colour::parse("Red"), None);
        assert!(Colour::try_from("blue".to_owned()).is_err());
        Ok(())
    }
}
