//! What each order of a load run buys: the SKU and customer (the key distribution) and whether
//! it is meant to fail, and how. Pure and seeded, so a run can be repeated exactly.

use anyhow::ensure;
use rand::{RngExt as _, SeedableRng as _, rngs::StdRng};
use serde::Serialize;
use serde_json::{Value, json};

/// Load products seeded by `migrations/inventory/0003_load_products.sql`.
pub const LOAD_SKUS: u32 = 500;
/// Load customers seeded by `migrations/payment/0002_load_customers.sql`.
pub const LOAD_CUSTOMERS: u32 = 1000;

/// No product has this sku: inventory answers 422.
const UNKNOWN_SKU: &str = "LOAD-UNKNOWN";
/// Seeded with no stock: inventory answers 409.
const SOLD_OUT_SKU: &str = "LOAD-SOLDOUT";
/// Seeded with a zero balance: payment answers 402.
const DECLINED_CUSTOMER: &str = "load-declined";
/// Seeded as undeliverable (Antarctica): shipping answers 422.
const UNDELIVERABLE_COUNTRY: &str = "AQ";
const COUNTRY: &str = "FR";
/// Zipf's exponent: the k-th most popular key is wanted 1/k as often as the first.
const ZIPF_EXPONENT: f64 = 1.0;

/// How orders spread over the load SKUs and customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Keys {
    /// Every SKU and customer equally likely.
    Uniform,
    /// A few SKUs and customers get most orders (Zipf, exponent 1).
    Zipf,
    /// Every order wants the same SKU (customers uniform): the worst row contention.
    Hot,
}

/// What an order is meant to do: succeed, or fail at one participant on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Completes.
    Happy,
    /// Inventory refuses an unknown sku (422).
    UnknownSku,
    /// Inventory refuses a sku without stock (409).
    OutOfStock,
    /// Payment declines an empty account (402).
    Declined,
    /// Shipping refuses an undeliverable country (422).
    Undeliverable,
}

impl Intent {
    /// The failures, in the order failing orders cycle through them.
    pub const FAILURES: [Intent; 4] = [Self::UnknownSku, Self::OutOfStock, Self::Declined, Self::Undeliverable];

    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Happy => "happy",
            Self::UnknownSku => "unknown sku",
            Self::OutOfStock => "out of stock",
            Self::Declined => "declined",
            Self::Undeliverable => "undeliverable",
        }
    }

    /// Whether the saga should complete (else it should be compensated).
    pub fn should_complete(self) -> bool {
        self == Self::Happy
    }
}

/// The order mix of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mix {
    /// Fraction of orders that fail on purpose, 0 to 1.
    pub fail_ratio: f64,
    /// Key distribution.
    pub keys: Keys,
    /// How many of the load SKUs to use (1 to [`LOAD_SKUS`]).
    pub skus: u32,
    /// How many of the load customers to use (1 to [`LOAD_CUSTOMERS`]).
    pub customers: u32,
    /// Seed of the key choice.
    pub seed: u64,
}

impl Mix {
    /// Refuses a mix the seed data cannot serve.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            (0.0..=1.0).contains(&self.fail_ratio),
            "the fail ratio must be between 0 and 1, not {}",
            self.fail_ratio
        );
        ensure!((1..=LOAD_SKUS).contains(&self.skus), "--skus must be 1 to {LOAD_SKUS} (the seeded load products)");
        ensure!(
            (1..=LOAD_CUSTOMERS).contains(&self.customers),
            "--customers must be 1 to {LOAD_CUSTOMERS} (the seeded load customers)"
        );
        Ok(())
    }
}

/// One order to place.
#[derive(Debug, Clone)]
pub struct PlannedOrder {
    /// Its place in the run, from 0.
    pub index: u64,
    /// What it is meant to do.
    pub intent: Intent,
    /// The `POST /orders` body.
    pub body: Value,
}

/// Draws the orders of a run, one after the other.
#[derive(Debug)]
pub struct Planner {
    mix: Mix,
    rng: StdRng,
    sku_weights: Option<Cumulative>,
    customer_weights: Option<Cumulative>,
}

impl Planner {
    /// A planner for `mix` (validated by the caller).
    pub fn new(mix: &Mix) -> Self {
        let zipf = mix.keys == Keys::Zipf;
        Self {
            mix: mix.clone(),
            rng: StdRng::seed_from_u64(mix.seed),
            sku_weights: zipf.then(|| Cumulative::zipf(mix.skus)),
            customer_weights: zipf.then(|| Cumulative::zipf(mix.customers)),
        }
    }

    /// Order number `index` (call with 0, 1, 2, …).
    pub fn plan(&mut self, index: u64) -> PlannedOrder {
        let intent = intent_of(index, self.mix.fail_ratio);
        let sku = match self.mix.keys {
            Keys::Hot => 1,
            Keys::Uniform => self.rng.random_range(1..=self.mix.skus),
            Keys::Zipf => self.sku_weights.as_ref().map_or(1, |w| w.draw(&mut self.rng)),
        };
        let customer = match &self.customer_weights {
            Some(weights) => weights.draw(&mut self.rng),
            None => self.rng.random_range(1..=self.mix.customers),
        };
        let (mut sku, mut customer, mut country) = (sku_name(sku), customer_name(customer), COUNTRY);
        match intent {
            Intent::Happy => {}
            Intent::UnknownSku => sku = UNKNOWN_SKU.to_owned(),
            Intent::OutOfStock => sku = SOLD_OUT_SKU.to_owned(),
            Intent::Declined => customer = DECLINED_CUSTOMER.to_owned(),
            Intent::Undeliverable => country = UNDELIVERABLE_COUNTRY,
        }
        PlannedOrder { index, intent, body: order_body(&sku, &customer, country) }
    }
}

/// `LOAD-0042`.
pub fn sku_name(n: u32) -> String {
    format!("LOAD-{n:04}")
}

/// `load-0042`.
pub fn customer_name(n: u32) -> String {
    format!("load-{n:04}")
}

fn order_body(sku: &str, customer: &str, country: &str) -> Value {
    json!({
        "customer_id": customer,
        "items": [{ "sku": sku, "quantity": 1 }],
        "shipping_address": { "name": "Load Test", "line1": "1 Bench Street", "city": "Benchville",
                              "postal_code": "00000", "country": country }
    })
}

/// Failing orders are spread evenly rather than drawn at random, so that among the first `n`
/// orders exactly ⌊n·ratio⌋ fail (a run's expected outcome counts are exact), and they cycle
/// through the four kinds of failure.
fn intent_of(index: u64, ratio: f64) -> Intent {
    // The epsilon keeps 0.1·30 from landing just under 3 in floating point.
    let failures_before = |n: u64| (n as f64 * ratio + 1e-9).floor() as u64;
    let before = failures_before(index);
    if failures_before(index + 1) > before { Intent::FAILURES[(before % 4) as usize] } else { Intent::Happy }
}

/// Cumulative weights of keys 1..=n, for drawing by inverse transform.
#[derive(Debug)]
struct Cumulative(Vec<f64>);

impl Cumulative {
    fn zipf(n: u32) -> Self {
        let mut total = 0.0;
        Self(
            (1..=n)
                .map(|k| {
                    total += 1.0 / f64::from(k).powf(ZIPF_EXPONENT);
                    total
                })
                .collect(),
        )
    }

    fn draw(&self, rng: &mut StdRng) -> u32 {
        let total = self.0.last().copied().unwrap_or(0.0);
        let target = rng.random::<f64>() * total;
        let rank = self.0.partition_point(|&c| c <= target);
        // `rank` < n unless rounding put `target` on the last bound.
        (rank.min(self.0.len().saturating_sub(1)) + 1) as u32
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn mix(fail_ratio: f64, keys: Keys) -> Mix {
        Mix { fail_ratio, keys, skus: 100, customers: 50, seed: 7 }
    }

    fn intents(ratio: f64, n: u64) -> HashMap<Intent, u64> {
        let mut counts = HashMap::new();
        for i in 0..n {
            *counts.entry(intent_of(i, ratio)).or_default() += 1;
        }
        counts
    }

    #[test]
    fn exactly_the_fail_ratio_of_orders_fail_spread_over_the_four_failures() {
        let counts = intents(0.25, 40);
        assert_eq!(counts[&Intent::Happy], 30);
        assert_eq!(Intent::FAILURES.iter().map(|f| counts[f]).sum::<u64>(), 10);
        for failure in Intent::FAILURES {
            assert!((2..=3).contains(&counts[&failure]), "{counts:?}");
        }
        assert_eq!(intents(0.1, 30).get(&Intent::Happy), Some(&27));
        assert_eq!(intents(0.0, 30).get(&Intent::Happy), Some(&30));
        assert_eq!(intents(1.0, 30).get(&Intent::Happy), None);
    }

    #[test]
    fn each_failure_names_the_input_its_participant_refuses() {
        let mut planner = Planner::new(&mix(1.0, Keys::Uniform));
        let orders: Vec<PlannedOrder> = (0..4).map(|i| planner.plan(i)).collect();
        let by_intent = |intent| orders.iter().find(|o| o.intent == intent).map(|o| o.body.clone()).unwrap_or_default();
        assert_eq!(by_intent(Intent::UnknownSku)["items"][0]["sku"], UNKNOWN_SKU);
        assert_eq!(by_intent(Intent::OutOfStock)["items"][0]["sku"], SOLD_OUT_SKU);
        assert_eq!(by_intent(Intent::Declined)["customer_id"], DECLINED_CUSTOMER);
        assert_eq!(by_intent(Intent::Undeliverable)["shipping_address"]["country"], UNDELIVERABLE_COUNTRY);
    }

    #[test]
    fn the_same_seed_plans_the_same_orders() {
        let bodies = |seed| {
            let mut planner = Planner::new(&Mix { seed, ..mix(0.2, Keys::Zipf) });
            (0..50).map(|i| planner.plan(i).body).collect::<Vec<_>>()
        };
        assert_eq!(bodies(1), bodies(1));
        assert_ne!(bodies(1), bodies(2));
    }

    #[test]
    fn hot_keys_want_one_sku_and_zipf_favours_the_first_ones() {
        let skus = |keys| {
            let mut planner = Planner::new(&mix(0.0, keys));
            let mut counts: HashMap<String, u64> = HashMap::new();
            for i in 0..10_000 {
                let sku = planner.plan(i).body["items"][0]["sku"].as_str().unwrap_or_default().to_owned();
                *counts.entry(sku).or_default() += 1;
            }
            counts
        };
        assert_eq!(skus(Keys::Hot).keys().collect::<Vec<_>>(), ["LOAD-0001"]);
        let zipf = skus(Keys::Zipf);
        // Harmonic weights over 100 keys: the first gets 1/H(100) ≈ 19 %, the 100th ≈ 0.2 %.
        assert!(zipf["LOAD-0001"] > 1_500 && zipf["LOAD-0001"] < 2_400, "{}", zipf["LOAD-0001"]);
        assert!(zipf.get("LOAD-0100").copied().unwrap_or(0) < 100);
        let uniform = skus(Keys::Uniform);
        assert_eq!(uniform.len(), 100);
        assert!(uniform.values().all(|&n| (50..=160).contains(&n)), "{uniform:?}");
    }

    #[test]
    fn a_mix_beyond_the_seed_data_is_refused() {
        assert!(mix(0.5, Keys::Uniform).validate().is_ok());
        assert!(mix(1.5, Keys::Uniform).validate().is_err());
        assert!(mix(f64::NAN, Keys::Uniform).validate().is_err());
        assert!(Mix { skus: LOAD_SKUS + 1, ..mix(0.0, Keys::Uniform) }.validate().is_err());
        assert!(Mix { customers: 0, ..mix(0.0, Keys::Uniform) }.validate().is_err());
    }
}
