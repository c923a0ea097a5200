//! The console's chart: sagas started, completed and compensated over the last 15 minutes, in
//! 10-second buckets, read from the saga log (so every replica draws the same picture, and a
//! restarted one has its history at once).
//!
//! Counting 15 minutes of sagas reads an index entry for each (900,000 at 1,000 sagas/s), so
//! each replica keeps the buckets that can no longer change and reads only the newer ones: after
//! the first read, a refresh costs the sagas of the last half minute, whoever is watching.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use saga_shared::api::SagaStatus;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::Mutex;
use utoipa::ToSchema;

/// Width of a bucket.
pub(super) const BUCKET_SECONDS: i64 = 10;
/// Buckets shown: 15 minutes, the one in progress included.
const BUCKETS: i64 = 90;
/// A bucket that ended this long before the database's clock no longer changes: a saga's
/// `created_at` is its orchestrator's clock when it was accepted, written a few milliseconds
/// later; `finished_at` is the database's clock at the commit.
const SETTLED_AFTER: Duration = Duration::from_secs(30);

/// The chart's data.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct History {
    /// Width of each bucket, in seconds (divide a count by it for a rate per second).
    bucket_seconds: i64,
    /// The database's clock when read (the last bucket has only run since its start until then).
    at: DateTime<Utc>,
    /// Oldest first; the last is the bucket in progress.
    buckets: Vec<Bucket>,
}

/// What happened in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub(super) struct Bucket {
    /// When the bucket starts.
    start: DateTime<Utc>,
    /// Orders accepted.
    started: i64,
    /// Sagas that completed.
    completed: i64,
    /// Sagas that compensated.
    compensated: i64,
}

/// Buckets by index (seconds since the epoch / [`BUCKET_SECONDS`]) that no longer change.
#[derive(Debug, Default)]
pub struct HistoryCache(Mutex<Settled>);

#[derive(Debug, Default)]
struct Settled {
    buckets: BTreeMap<i64, Counts>,
    /// Buckets before this one are all in `buckets` (those missing had no sagas).
    through: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    started: i64,
    completed: i64,
    compensated: i64,
}

/// One counted row: a bucket, what was counted (`started` or a terminal status), how many.
type Row = (i64, String, i64);

impl HistoryCache {
    /// The last 15 minutes, from the settled buckets and a read of the newer ones. Concurrent
    /// callers wait for one read instead of each making their own.
    pub(super) async fn read(&self, pool: &PgPool) -> Result<History, sqlx::Error> {
        let mut settled = self.0.lock().await;
        let at: DateTime<Utc> = sqlx::query_scalar("select now()").fetch_one(pool).await?;
        let now = bucket_of(at);
        let first = now - (BUCKETS - 1);
        let from = settled.through.map_or(first, |through| through.max(first));
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            r#"select floor(extract(epoch from created_at) / $2)::int8, 'started', count(*)
               from sagas where created_at >= to_timestamp($1 * $2) group by 1
               union all
               select floor(extract(epoch from finished_at) / $2)::int8, status, count(*)
               from sagas where finished_at >= to_timestamp($1 * $2) and status in ({ended}) group by 1, 2"#,
            ended = SagaStatus::sql_list(&[SagaStatus::Completed, SagaStatus::Compensated])
        )))
        .bind(from)
        .bind(BUCKET_SECONDS)
        .fetch_all(pool)
        .await?;
        let fresh = counts(&rows);
        let settled_through = bucket_of(at - SETTLED_AFTER);
        let buckets = settled.merge(fresh, from, first, settled_through, now);
        Ok(History { bucket_seconds: BUCKET_SECONDS, at, buckets })
    }
}

impl Settled {
    /// Keeps what `fresh` (every bucket from `from` on) says of the buckets before
    /// `settled_through`, forgets those before `first`, and returns `first..=now`.
    fn merge(
        &mut self,
        fresh: BTreeMap<i64, Counts>,
        from: i64,
        first: i64,
        settled_through: i64,
        now: i64,
    ) -> Vec<Bucket> {
        self.buckets.retain(|&bucket, _| bucket >= first && bucket < from);
        // A clock that went back (NTP, a failover to a host behind) may put the settled end before
        // `from`: nothing new is settled then.
        let settled_through = settled_through.max(from);
        self.buckets.extend(fresh.range(from..settled_through).map(|(&bucket, &counts)| (bucket, counts)));
        self.through = Some(settled_through);
        (first..=now)
            .map(|bucket| {
                let counts = self.buckets.get(&bucket).or_else(|| fresh.get(&bucket)).copied().unwrap_or_default();
                Bucket {
                    start: DateTime::from_timestamp(bucket * BUCKET_SECONDS, 0).unwrap_or_default(),
                    started: counts.started,
                    completed: counts.completed,
                    compensated: counts.compensated,
                }
            })
            .collect()
    }
}

fn bucket_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(BUCKET_SECONDS)
}

fn counts(rows: &[Row]) -> BTreeMap<i64, Counts> {
    let mut buckets: BTreeMap<i64, Counts> = BTreeMap::new();
    for (bucket, what, count) in rows {
        let counts = buckets.entry(*bucket).or_default();
        match what.as_str() {
            "started" => counts.started += count,
            "completed" => counts.completed += count,
            "compensated" => counts.compensated += count,
            _ => {}
        }
    }
    buckets
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(bucket: i64, what: &str, count: i64) -> Row {
        (bucket, what.to_owned(), count)
    }

    fn shown(buckets: &[Bucket]) -> Vec<(i64, i64, i64)> {
        buckets.iter().map(|b| (b.started, b.completed, b.compensated)).collect()
    }

    #[test]
    fn rows_become_buckets_and_a_bucket_without_sagas_is_zero() {
        let mut settled = Settled::default();
        let fresh = counts(&[row(100, "started", 5), row(100, "completed", 3), row(102, "compensated", 1)]);
        let history = settled.merge(fresh, 100, 100, 101, 100 + BUCKETS - 1);
        assert_eq!(history.len(), BUCKETS as usize);
        assert_eq!(history[0].start, DateTime::from_timestamp(100 * BUCKET_SECONDS, 0).unwrap());
        assert_eq!(shown(&history)[..3], [(5, 3, 0), (0, 0, 0), (0, 0, 1)]);
    }

    #[test]
    fn settled_buckets_are_kept_and_only_newer_ones_come_from_the_next_read() {
        let mut settled = Settled::default();
        let now = 200;
        let first = now - (BUCKETS - 1);
        let fresh = counts(&[row(first, "started", 7), row(now - 1, "started", 2), row(now, "started", 1)]);
        // Settled up to (not including) now - 3: the first bucket is kept, the last three not.
        settled.merge(fresh, first, first, now - 3, now);
        assert_eq!(settled.through, Some(now - 3));
        assert_eq!(settled.buckets.keys().copied().collect::<Vec<_>>(), [first]);

        // Ten seconds later: the next read starts where the settled ones end, and says more of
        // the bucket that was in progress.
        let now = now + 1;
        let fresh = counts(&[row(now - 2, "started", 4), row(now, "completed", 6)]);
        let history = settled.merge(fresh, now - 4, now - (BUCKETS - 1), now - 3, now);
        let last_three: Vec<_> = shown(&history)[BUCKETS as usize - 3..].to_vec();
        assert_eq!(last_three, [(4, 0, 0), (0, 0, 0), (0, 6, 0)]);
        // The bucket that was first left the window, and is forgotten.
        assert_eq!(shown(&history)[0], (0, 0, 0));
        assert!(!settled.buckets.contains_key(&first));
        assert_eq!(history.len(), BUCKETS as usize);
    }

    #[test]
    fn a_clock_that_goes_back_settles_nothing_new_and_loses_nothing() {
        let mut settled = Settled::default();
        let now = 500;
        let fresh = counts(&[row(now - 10, "started", 3)]);
        settled.merge(fresh, now - 89, now - 89, now - 3, now);
        assert_eq!(settled.through, Some(now - 3));
        // The clock is back by a minute: the read starts where the settled buckets end, which is
        // after the new settled end.
        let now = now - 6;
        let history = settled.merge(BTreeMap::new(), now + 3, now - 89, now - 3, now);
        assert_eq!(settled.through, Some(now + 3));
        assert_eq!(history.len(), BUCKETS as usize);
        assert_eq!(history.iter().map(|b| b.started).sum::<i64>(), 3, "the settled bucket is still shown");
    }

    #[test]
    fn a_bucket_is_placed_by_euclidean_division_even_before_the_epoch() {
        assert_eq!(bucket_of(DateTime::from_timestamp(-1, 0).unwrap()), -1);
        assert_eq!(bucket_of(DateTime::from_timestamp(19, 0).unwrap()), 1);
    }
}
